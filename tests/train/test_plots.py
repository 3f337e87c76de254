"""Training figures (:mod:`ferbatch.train.plots`): what the learning curves show."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferbatch.train.plots import plot_curves


def _history(distilled: bool) -> list[dict]:
    out = []
    for epoch in (1, 2, 3):
        record = {"epoch": epoch, "train_loss": 2.0 / epoch, "train_acc": 0.3 * epoch,
                  "val_loss": 1.5 / epoch, "val_acc": 0.25 * epoch}
        if distilled:
            record["train_label_loss"] = 1.0 / epoch
        out.append(record)
    return out


@pytest.mark.parametrize("distilled", [False, True])
def test_curves_of_a_distilled_run_plot_the_label_term_beside_the_objective(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, distilled: bool) -> None:
    import matplotlib.pyplot as plt

    figures: list = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to look at it
    path = plot_curves(_history(distilled), tmp_path / "curves.png")
    try:
        assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"
        lines = {line.get_label(): list(line.get_ydata()) for line in figures[0].axes[0].get_lines()}
    finally:
        for fig in figures:
            real_close(fig)
    if distilled:
        assert lines == {"train (label CE)": [1.0, 0.5, pytest.approx(1 / 3)],
                         "train objective (CE + KD)": [2.0, 1.0, pytest.approx(2 / 3)],
                         "validation": [1.5, 0.75, 0.5]}
    else:
        assert lines == {"train": [2.0, 1.0, pytest.approx(2 / 3)], "validation": [1.5, 0.75, 0.5]}
