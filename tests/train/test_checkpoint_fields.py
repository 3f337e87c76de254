"""A checkpoint's fields are checked when it is loaded (issue 10, kind 11): a bad label set or an
insane preprocessing size is a ``ModelError`` naming the field, before any work."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from ferbatch.cli import cli
from ferbatch.errors import ModelError
from ferbatch.models.checkpoint import (
    DEFAULT_WEIGHTS,
    Checkpoint,
    load_checkpoint,
    safe_torch_load,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def default_dict() -> dict[str, Any]:
    return safe_torch_load(DEFAULT_WEIGHTS)


def _write(data: dict[str, Any], folder: Path, **changes: Any) -> Path:
    """A copy of ``data`` with ``changes`` (``preprocess__image_size=…`` sets a nested key)."""
    data = copy.copy(data)
    data["preprocess"] = dict(data["preprocess"])
    data["calibration"] = dict(data.get("calibration") or {})
    for key, value in changes.items():
        if "__" in key:
            outer, inner = key.split("__")
            data[outer][inner] = value
        else:
            data[key] = value
    path = folder / "model.pt"
    torch.save(data, path)
    return path


@pytest.mark.parametrize(("changes", "message"), [
    ({"labels": ["happy"] * 7}, "labels: must be unique, but 'happy' appears more than once"),
    ({"labels": "abcdefg"}, "labels: must be a list of class names, got str 'abcdefg'"),
    ({"preprocess__image_size": 20000},
     "preprocess.image_size: must be an integer in [8, 1024] px, got 20000"),
])
def test_the_issue_cases_fail_before_any_work(default_dict: dict[str, Any], tmp_path: Path,
                                              changes: dict[str, Any], message: str) -> None:
    model = _write(default_dict, tmp_path, **changes)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(DEFAULT_WEIGHTS), "--out", str(out), "--local",
                                      "--model", str(model), "-q"])
    assert result.exit_code == 1, result.output
    assert f"{model}: bad checkpoint field {message}" in result.output
    assert not out.exists()  # nothing written, no model built
    with pytest.raises(ModelError, match="bad checkpoint field"):
        load_checkpoint(model)


@pytest.mark.parametrize(("changes", "field"), [
    ({"labels": ["angry", "happy", ""]}, "labels: must not be empty or blank"),
    ({"labels": ["happy"]}, "labels: must name at least 2 classes, got 1"),
    ({"labels": ["happy", 3]}, "labels: must be strings, got int 3"),
    ({"labels": ["happy", "sad\n"]}, "labels: must not hold control characters"),
    ({"preprocess__input_size": 64}, "preprocess.input_size: 64 px must not exceed image_size (48 px)"),
    ({"preprocess__image_size": True}, "preprocess.image_size: must be an integer"),
    ({"preprocess__std": 0.0}, "preprocess.std: must be a finite number > 0, got 0.0"),
    ({"preprocess__mean": float("nan")}, "preprocess.mean: must be a finite number, got nan"),
    ({"preprocess__crop_scale": -1.0}, "preprocess.crop_scale: must be a number in (0, 4], got -1.0"),
    ({"preprocess__crop_shift_y": 3}, "preprocess.crop_shift_y: must be a number in [-1, 1], got 3"),
    ({"preprocess__zoom": 2}, "preprocess: unknown field(s) zoom"),
    ({"calibration__temperature": 0}, "calibration.temperature: must be a finite number > 0, got 0"),
    ({"arch": 5}, "arch: must be a model name, got 5"),
])
def test_more_bad_fields_are_named(default_dict: dict[str, Any], tmp_path: Path,
                                   changes: dict[str, Any], field: str) -> None:
    model = _write(default_dict, tmp_path, **changes)
    with pytest.raises(ModelError) as info:
        load_checkpoint(model)
    assert str(info.value).startswith(f"{model}: bad checkpoint field {field}")


def test_labels_that_are_not_identifiers_are_fine_and_saving_checks_too(
        default_dict: dict[str, Any], tmp_path: Path) -> None:
    labels = ["very happy", "sad-ish", "Ärger", "p_x", "50%", "a.b", "neutral"]
    ckpt = load_checkpoint(_write(default_dict, tmp_path, labels=labels))
    assert ckpt.labels == labels
    bad = Checkpoint(ckpt.arch, ckpt.arch_kwargs, ["x", "x"], ckpt.preprocess, ckpt.state_dict)
    with pytest.raises(ModelError, match="labels: must be unique"):
        save_checkpoint(bad, tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()


@pytest.mark.parametrize("labels", [["angry", "disgust", "fear", "happy", "sad", "surprise"],
                                    ["a", "b", "c", "d", "e", "f", "g", "h"]])
def test_labels_that_do_not_match_the_classifier_are_named(
        default_dict: dict[str, Any], tmp_path: Path, labels: list[str]) -> None:
    path = _write(default_dict, tmp_path, labels=labels)
    with pytest.raises(ModelError, match=rf"lists {len(labels)} labels \({labels[0]}, .*\) but its "
                                         r"classifier \(.+\) outputs 7 classes"):
        load_checkpoint(path).build()
    result = CliRunner().invoke(cli, ["run", str(DEFAULT_WEIGHTS), "--out", str(tmp_path / "o"),
                                      "--model", str(path), "--local", "-q"])
    assert result.exit_code == 1 and f"lists {len(labels)} labels" in result.output, result.output
    assert not (tmp_path / "o").exists()
    assert "Traceback" not in result.output and "size mismatch" not in result.output
