"""One output, one label set (``ferbatch.output.labelset``), through the CLI: a model with
another label set may replace an output's results only with ``--overwrite`` and every video of
the output among the inputs; every reader then sees one label set."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import ferbatch
from ferbatch.cli import cli

from helpers import REPO_ROOT

FOUR = ["happy", "sad", "surprise", "neutral"]


@pytest.fixture(scope="module")
def four_class_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model cut down to 4 of its 7 classes (rows of its last layer, of each member of
    an ensemble)."""
    from ferbatch.models.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(None)
    keep = [ckpt.labels.index(label) for label in FOUR]
    heads = [k for k in ckpt.state_dict if k.endswith(("fc.weight", "fc.bias"))]  # each member's
    assert heads
    ckpt.state_dict = dict(ckpt.state_dict, **{k: ckpt.state_dict[k][keep] for k in heads})
    ckpt.labels = list(FOUR)
    return save_checkpoint(ckpt, tmp_path_factory.mktemp("model") / "four.pt")


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["run", *args, "-q", "--local"])
    return result.exit_code, result.output


def test_another_label_set_must_redo_the_whole_output(user_folder: Path, tmp_path: Path,
                                                      four_class_model: Path) -> None:
    out = str(tmp_path / "out")
    face, noface = str(user_folder / "face.mp4"), str(user_folder / "noface.mkv")
    code, text = _run(face, noface, "--out", out)
    assert code == 0, text
    # the case: --overwrite with a 4-class model on one video of a 7-class output
    code, text = _run(face, "--out", out, "--model", str(four_class_model))
    assert code == 1 and "an output holds one label set" in text and "--overwrite" in text
    code, text = _run(face, "--out", out, "--model", str(four_class_model), "--overwrite")
    assert code == 1 and "1 of them are not among the inputs" in text and "noface.mkv" in text
    assert ferbatch.load(out).labels[:2] == ["angry", "disgust"]  # untouched
    code, text = _run(face, noface, "--out", out, "--model", str(four_class_model), "--overwrite")
    assert code == 0, text
    res = ferbatch.load(out)
    assert res.labels == FOUR and len(res.faces) and set(res.faces["emotion"]) <= set(FOUR)
    assert [c for c in res.faces.columns if c.startswith("p_")] == [f"p_{lb}" for lb in FOUR]
    report = CliRunner().invoke(cli, ["report", out, "--no-html", "-q"])
    assert report.exit_code == 0, report.output
    share = subprocess.run([sys.executable, str(REPO_ROOT / "examples" / "emotion_share.py"), out],
                           capture_output=True, text=True, timeout=60)
    assert share.returncode == 0, share.stderr
    assert "mostly" in share.stdout
