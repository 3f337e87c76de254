"""Temperature scaling and calibration metrics (:mod:`ferbatch.train.calibration`), the
temperature stored with the weights and applied by the pipeline's classifier, and models by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ferbatch.classify import EmotionClassifier
from ferbatch.cli import cli
from ferbatch.errors import ConfigError, ModelError
from ferbatch.models.bundled import bundled_names, resolve_model
from ferbatch.models.checkpoint import load_checkpoint, save_checkpoint
from ferbatch.train.calibration import (
    calibration_metrics,
    ece_warning,
    fit_temperature,
    reliability_bins,
    softmax_t,
)


def test_metrics_on_hand_computed_examples() -> None:
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    targets = np.array([0, 1, 1, 1])  # the 0.6 prediction is wrong
    m = calibration_metrics(probs, targets, bins=10)
    # bins: 0.9 (acc 1), 0.6 (acc 0), 0.7 (acc 1), 0.8 (acc 1); ECE = mean |acc - conf|
    assert m["ece"] == pytest.approx((0.1 + 0.6 + 0.3 + 0.2) / 4)
    assert m["mce"] == pytest.approx(0.6)
    assert m["nll"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.7, 0.8])))
    assert m["brier"] == pytest.approx(np.mean([0.02, 0.72, 0.18, 0.08]))
    rel = reliability_bins(probs, targets, bins=10)
    assert sum(rel["count"]) == 4 and rel["count"][5] == 1 and rel["accuracy"][5] == 0.0


def test_perfectly_calibrated_probabilities_have_small_ece() -> None:
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 20000)
    targets = (rng.uniform(size=conf.size) > conf).astype(int)  # class 0 right with prob conf
    probs = np.stack([conf, 1 - conf], axis=1)
    assert calibration_metrics(probs, targets)["ece"] < 0.015


def test_fit_temperature_recovers_the_temperature_that_made_the_labels() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(20000, 5, generator=gen) * 3
    true_t = 2.0
    targets = torch.multinomial(torch.softmax(logits / true_t, 1), 1, generator=gen).squeeze(1)
    t = fit_temperature(logits, targets)
    assert t == pytest.approx(true_t, rel=0.05)
    before = calibration_metrics(softmax_t(logits, 1.0).numpy(), targets.numpy())
    after = calibration_metrics(softmax_t(logits, t).numpy(), targets.numpy())
    assert after["nll"] < before["nll"] and after["ece"] < before["ece"]


def test_a_fit_that_raises_the_ece_is_reported() -> None:
    # 40 faces (seed 3): the fitted temperature lowers the NLL, what it minimises, and raises
    # the 15-bin ECE
    rng = np.random.default_rng(3)
    logits = torch.from_numpy(rng.normal(0, 2, (40, 7)))
    targets = logits.argmax(1).clone()
    targets[:4] = (targets[:4] + 1) % 7  # mostly right, overconfident at T = 1 on 4 faces
    t = fit_temperature(logits, targets)
    before = calibration_metrics(softmax_t(logits, 1.0).numpy(), targets.numpy())
    after = calibration_metrics(softmax_t(logits, t).numpy(), targets.numpy())
    assert after["nll"] < before["nll"] and after["ece"] > before["ece"]
    cal = {"fitted_on": "fer2013:val", "n": 40, "before": before, "after": after}
    text = ece_warning(cal)
    assert text and "raised the ECE on fer2013:val" in text and "40 faces" in text
    assert "too few faces" in text
    lower = {**cal, "after": {**after, "ece": before["ece"] - 0.01}}
    assert ece_warning(lower) is None
    assert ece_warning({**cal, "after": {**after, "ece": before["ece"] + 1e-9}}) is None  # noise
    assert ece_warning({**cal, "after": {**after, "nll": before["nll"]}}) is None  # NLL not lowered
    higher = {**cal, "n": 3589, "after": {**after, "ece": before["ece"] + 0.01}}
    text = ece_warning(higher)
    assert text and f"{before['ece']:.4f} -> {before['ece'] + 0.01:.4f}" in text
    assert "too few" not in text


def test_the_classifier_applies_the_stored_temperature(tmp_path: Path) -> None:
    faces = np.random.default_rng(1).integers(0, 256, (12, 48, 48), dtype=np.uint8)
    ckpt = load_checkpoint(None)
    ckpt.calibration = {"method": "temperature", "temperature": 1.0}
    save_checkpoint(ckpt, tmp_path / "t1.pt")
    ckpt.calibration = {"method": "temperature", "temperature": 0.5}
    save_checkpoint(ckpt, tmp_path / "t05.pt")
    p1 = EmotionClassifier(tmp_path / "t1.pt", device="cpu")(faces)
    p05 = EmotionClassifier(tmp_path / "t05.pt", device="cpu")(faces)
    np.testing.assert_allclose(p05.sum(1), 1.0, atol=1e-5)
    assert (p05.argmax(1) == p1.argmax(1)).all()  # the top label never changes
    assert (p05.max(1) >= p1.max(1) - 1e-6).all() and (p05.max(1) > p1.max(1)).any()
    # T = 0.5 squares the odds: p05 ∝ p1 ** 2
    expected = p1.astype(np.float64) ** 2
    np.testing.assert_allclose(p05, expected / expected.sum(1, keepdims=True), atol=2e-3)
    assert load_checkpoint(tmp_path / "t05.pt").temperature == 0.5


def test_the_bundled_default_is_calibrated() -> None:
    ckpt = load_checkpoint(None)
    cal = ckpt.calibration
    assert cal["method"] == "temperature" and 0.5 < cal["temperature"] < 1.5
    assert cal["after"]["nll"] <= cal["before"]["nll"]


def test_models_resolve_by_name_and_unknown_names_list_the_valid_ones(tmp_path: Path) -> None:
    assert "default" in bundled_names()
    assert resolve_model("default") == resolve_model(None)
    assert resolve_model("default").name == "default.pt"
    with pytest.raises(ModelError, match="bundled: default"):
        resolve_model("no-such-model")
    from ferbatch.config import ClassifyConfig

    with pytest.raises(ConfigError, match="no-such-model"):
        ClassifyConfig(model="no-such-model").validate()
    ClassifyConfig(model="default").validate()
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0 and "default" in result.output and "angry disgust" in result.output
    # each figure names its split: FER2013's held-out split is PrivateTest, FER+'s its own
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:4]}
    assert "(PrivateTest acc " in lines["default"] and "(FER+ test acc " in lines["ferplus"]
    bad = CliRunner().invoke(cli, ["run", str(tmp_path), "--out", str(tmp_path / "o"),
                                   "--model", "no-such-model"])
    assert bad.exit_code != 0 and "bundled: default" in bad.output
    assert "Traceback" not in bad.output


def test_calibrate_temperature_cli_stores_it_and_keeps_the_labels(
        trained_run: Path, fer_files: tuple[Path, Path], tmp_path: Path) -> None:
    src = load_checkpoint(trained_run / "best.pt")
    src.calibration = {}
    save_checkpoint(src, tmp_path / "raw.pt")
    result = CliRunner().invoke(cli, ["calibrate-temperature", "--data", str(fer_files[0]),
                                      "--checkpoint", str(tmp_path / "raw.pt"),
                                      "--out", str(tmp_path / "cal.pt"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "temperature" in result.output and "ECE" in result.output
    cal = load_checkpoint(tmp_path / "cal.pt")
    assert cal.calibration["fitted_on"] == "fer2013:val" and cal.calibration["n"] > 0
    assert load_checkpoint(tmp_path / "raw.pt").calibration == {}  # --out leaves the input alone
    faces = np.random.default_rng(2).integers(0, 256, (8, 48, 48), dtype=np.uint8)
    raw = EmotionClassifier(tmp_path / "raw.pt", device="cpu")(faces)
    calibrated = EmotionClassifier(tmp_path / "cal.pt", device="cpu")(faces)
    assert (raw.argmax(1) == calibrated.argmax(1)).all()


def test_calibrate_temperature_cli_warns_when_the_fit_raised_the_ece(
        trained_run: Path, fer_files: tuple[Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import ferbatch.train.calibration as calibration

    def fit(ckpt, data, device, split_name):  # what a fit on a few noisy faces can give
        ckpt.calibration = {"method": "temperature", "temperature": 1.3, "fitted_on": split_name,
                            "n": len(data), "bins": 15,
                            "before": {"ece": 0.020, "nll": 0.90, "brier": 0.40},
                            "after": {"ece": 0.050, "nll": 0.85, "brier": 0.40}}
        return ckpt.calibration

    monkeypatch.setattr(calibration, "calibrate_temperature", fit)
    result = CliRunner().invoke(cli, ["calibrate-temperature", "--data", str(fer_files[0]),
                                      "--checkpoint", str(trained_run / "best.pt"),
                                      "--out", str(tmp_path / "cal.pt"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert ("warning: temperature scaling raised the ECE on fer2013:val (0.0200 -> 0.0500, "
            "50 faces) while lowering the NLL") in result.output
    assert load_checkpoint(tmp_path / "cal.pt").temperature == pytest.approx(1.3)
