"""Fixtures of the trainer's tests: a small FER2013 file, one tiny training run, one thread.

``fer_files`` and ``trained_run`` are built once per session, on first use; the autouse
``one_torch_thread`` applies to the tests under ``tests/train/`` only; ``own_cache_dir`` points
the dataset cache (``$FERBATCH_CACHE_DIR``) at a folder of the test's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from train_data import tiny_args, write_fer_csv


@pytest.fixture(scope="session")
def fer_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(FER2013 CSV, FER+ votes) with 300 rows: 200 train, 50 val, 50 test."""
    return write_fer_csv(tmp_path_factory.mktemp("fer"), 300)


@pytest.fixture(scope="session")
def trained_run(fer_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run folder of a tiny 2-epoch training on ``fer_files`` with ``--eval-test`` (trained once
    per session)."""
    import torch

    from ferbatch.train.main import main

    out = tmp_path_factory.mktemp("run")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        main(tiny_args(fer_files[0], out, epochs=2, eval_test=True))
    finally:
        torch.set_num_threads(before)
    return out


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run each trainer test on one torch thread (restored afterwards): on a small machine that
    is busy with other work, two threads mostly wait for each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def own_cache_dir(tmp_path_factory: pytest.TempPathFactory,
                  monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty ``$FERBATCH_CACHE_DIR`` for one test (parsed CSVs, teacher logits), so it
    neither reads nor fills the user's cache."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("FERBATCH_CACHE_DIR", str(folder))
    return folder
