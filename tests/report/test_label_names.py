"""Labels that are not Python identifiers work end to end (issue 10, kind 12): a model trained on
an image folder keeps class names like ``very happy``; ``ferbatch run`` and ``ferbatch report``
then name every column after them (:mod:`ferbatch.output.schema`), and the HTML shows them
escaped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import ferbatch
from ferbatch.cli import cli
from ferbatch.models.checkpoint import DEFAULT_WEIGHTS, safe_torch_load
from ferbatch.output.schema import mean_column, prob_column, share_column, smooth_column

import clips

#: the default model's 7 classes, renamed: index 3 is its "happy"
ODD = ["angry", "dis gust", "fear & <co>", "very happy", "sad.ish", "50% surprise", "p_neutral"]


@pytest.fixture(scope="module")
def odd_run(tmp_path_factory: pytest.TempPathFactory, face_image: Any) -> Path:
    """A 2 s clip of a smiling face analysed by the default model under the names ``ODD``,
    and its report."""
    root = tmp_path_factory.mktemp("odd")
    data = safe_torch_load(DEFAULT_WEIGHTS)
    data["labels"] = ODD
    torch.save(data, root / "odd.pt")
    clips.make_face_clip(root / "smile.mp4", face_image, n_frames=16, fps=8, size=(160, 120))
    out = root / "out"
    runner = CliRunner()
    ran = runner.invoke(cli, ["run", str(root / "smile.mp4"), "--out", str(out), "--local", "-q",
                              "--device", "cpu", "--model", str(root / "odd.pt")])
    assert ran.exit_code == 0, ran.output
    report = runner.invoke(cli, ["report", str(out), "--no-thumbnails"])
    assert report.exit_code == 0, report.output
    return out


def test_columns_are_named_after_any_label(odd_run: Path) -> None:
    faces = pd.read_parquet(odd_run / "faces")
    assert [c for c in faces.columns if c.startswith("p_")] == [prob_column(lb) for lb in ODD]
    assert prob_column("very happy") == "p_very happy" and prob_column("p_neutral") == "p_p_neutral"
    assert (faces["emotion"] == "very happy").all()  # the astronaut smiles
    assert faces["p_very happy"].min() > 0.5
    results = ferbatch.load(odd_run)
    assert list(results.faces["emotion"].cat.categories) == ODD
    assert results.labels == ODD


def test_summary_episodes_and_html_use_the_labels(odd_run: Path) -> None:
    summary = pd.read_parquet(odd_run / "summary.parquet")
    for label in ODD:
        assert share_column(label) in summary.columns and mean_column(label) in summary.columns
    assert summary.loc[0, "share_very happy"] == pytest.approx(1.0)
    assert summary.loc[0, "dominant_emotion"] == "very happy"
    assert summary.loc[0, "mean_p_very happy"] > 0.5
    assert smooth_column("very happy") == "s_very happy"
    per_face = pd.read_parquet(odd_run / "summary_faces.parquet")
    assert set(per_face["dominant_emotion"]) == {"very happy"}
    episodes = pd.read_parquet(odd_run / "episodes.parquet")
    assert set(episodes["emotion"]) == {"very happy"} and len(episodes) >= 1
    html = "\n".join(p.read_text() for p in (odd_run / "report").glob("*.html"))
    assert "very happy" in html and "fear &amp; &lt;co&gt;" in html
    assert "<co>" not in html  # escaped, never markup
