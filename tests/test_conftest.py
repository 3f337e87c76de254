"""The suite's own autouse check (``tests/conftest.py``): a test that logs ERROR under
``ferbatch`` fails unless it is marked ``allow_error_logs``. Run in a bare pytester folder with
a copy of the conftest, so the failures stay there."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")

INNER = '''
import logging

import pytest

log = logging.getLogger("ferbatch.pipeline")


def test_error_fails():
    log.error("detector exploded")


def test_exception_fails():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("unexpected")


def test_critical_of_the_root_package_fails():
    logging.getLogger("ferbatch").critical("out of memory")


@pytest.mark.allow_error_logs
def test_marked_error_passes(no_error_logs):
    log.error("expected failure")
    assert [r.getMessage() for r in no_error_logs] == ["expected failure"]


def test_warning_passes():
    log.warning("only a warning")


def test_other_loggers_pass():
    logging.getLogger("ray").error("not ours")
    logging.getLogger("ferbatchx").error("a lookalike name, not ours")


def test_level_and_handlers_are_restored():
    logger = logging.getLogger("ferbatch")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(logging.NullHandler())


def test_after_restore():
    logger = logging.getLogger("ferbatch")
    assert logger.level == logging.NOTSET
    assert not [h for h in logger.handlers if type(h) is logging.NullHandler]
'''


def test_error_logs_fail_the_test_unless_allowed(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makeini("[pytest]\nmarkers =\n    allow_error_logs: ERROR records expected\n")
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    # the three failing tests pass their call and fail at teardown
    result.assert_outcomes(passed=8, errors=3)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_error_fails*",
        "*1 unexpected ERROR log record(s) from 'ferbatch'*",
        "*ERROR ferbatch.pipeline: detector exploded*",
    ])
    text = result.stdout.str()
    for name in ("test_exception_fails", "test_critical_of_the_root_package_fails"):
        assert f"ERROR at teardown of {name}" in text
    for name in ("test_marked_error_passes", "test_warning_passes", "test_other_loggers_pass"):
        assert f"teardown of {name}" not in text
    assert "CRITICAL ferbatch: out of memory" in text

