"""``ferbatch evaluate`` (FER2013, FER+, folders with mismatched classes) and ``ferbatch tune``."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ferbatch.cli import cli
from ferbatch.models.checkpoint import load_checkpoint
from ferbatch.train.data import FaceData, resize_faces
from ferbatch.train.datasets.fer2013 import load_fer2013
from ferbatch.train.engine import evaluate
from ferbatch.train.evaluate import evaluate_main, format_summary, match_labels
from ferbatch.train.labels import label_positions

from train_data import write_image_folder

REQUIRED_KEYS = {"accuracy", "macro_f1", "per_class", "confusion_matrix", "labels", "n", "model",
                 "data", "split", "tta", "skipped_classes"}


def test_evaluate_cli_fer2013(trained_run: Path, fer_files: tuple[Path, Path],
                              tmp_path: Path) -> None:
    out_json = tmp_path / "eval" / "test.json"
    result = CliRunner().invoke(cli, ["evaluate", "--data", str(fer_files[0]), "--model",
                                      str(trained_run / "best.pt"), "--json", str(out_json),
                                      "--tta", "flip"])
    assert result.exit_code == 0, result.output
    assert "macro-F1" in result.output and "precision" in result.output
    report = json.loads(out_json.read_text())
    assert REQUIRED_KEYS <= set(report)
    assert report["n"] == 50 and report["split"] == "test" and report["tta"] == "flip"
    assert report["skipped_classes"] == []
    assert (tmp_path / "eval" / "test_confusion.png").is_file()
    with open(tmp_path / "eval" / "test_confusion.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][1:] == report["labels"] and len(rows) == 1 + len(report["labels"])
    assert sum(int(v) for row in rows[1:] for v in row[1:]) == 50
    # same figures as the engine on the same split
    ckpt = load_checkpoint(trained_run / "best.pt")
    direct = evaluate(ckpt.build(), load_fer2013(fer_files[0])["test"], device=torch.device("cpu"),
                      preprocess=ckpt.preprocess, tta="flip")
    assert report["accuracy"] == pytest.approx(direct["accuracy"])
    assert report["confusion_matrix"] == direct["confusion_matrix"]
    # calibration: at the checkpoint's temperature, with the figures at T = 1 beside them
    cal = report["calibration"]
    assert cal["temperature"] == pytest.approx(ckpt.temperature) and cal["bins"] == 15
    assert {"ece", "nll", "brier", "reliability", "uncalibrated"} <= set(cal)
    assert sum(cal["reliability"]["count"]) == 50
    assert direct["calibration"]["nll"] == pytest.approx(cal["uncalibrated"]["nll"])
    assert "ECE" in result.output and "Brier" in result.output
    assert (tmp_path / "eval" / "test_reliability.png").is_file()
    # a second evaluation into the same folder keeps the first one's files: named after the JSON
    again = CliRunner().invoke(cli, ["evaluate", "--data", str(fer_files[0]), "--model",
                                     str(trained_run / "best.pt"), "--json",
                                     str(tmp_path / "eval" / "none.json"), "--quiet"])
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == [
        "none.json", "none_confusion.csv", "none_confusion.png", "none_reliability.png",
        "test.json", "test_confusion.csv", "test_confusion.png", "test_reliability.png"]
    # the network is named by its weights, whatever the file and its metadata
    assert report["weights_sha256"] == ckpt.weights_sha256()
    assert report["temperature"] == pytest.approx(ckpt.temperature)


def test_the_weights_digest_follows_the_weights_not_the_metadata(trained_run: Path,
                                                                 tmp_path: Path) -> None:
    from dataclasses import replace as dc_replace

    from ferbatch.models.checkpoint import save_checkpoint

    ckpt = load_checkpoint(trained_run / "best.pt")
    digest = ckpt.weights_sha256()
    assert len(digest) == 64
    renamed = dc_replace(ckpt, metrics={"test": {"accuracy": 1.0}}, calibration={},
                         extra={"note": "moved"})
    save_checkpoint(renamed, tmp_path / "elsewhere.pt")
    assert load_checkpoint(tmp_path / "elsewhere.pt").weights_sha256() == digest
    state = {k: v.clone() for k, v in ckpt.state_dict.items()}
    first = next(k for k, v in state.items() if v.is_floating_point() and v.numel())
    state[first].view(-1)[0] += 1
    assert dc_replace(ckpt, state_dict=state).weights_sha256() != digest


def test_evaluate_ferplus_skips_contempt(trained_run: Path, fer_files: tuple[Path, Path],
                                         tmp_path: Path) -> None:
    report = evaluate_main(str(trained_run / "best.pt"), str(fer_files[0]), dataset="ferplus",
                           split="val", json_path=tmp_path / "fp.json", ferplus=str(fer_files[1]),
                           device="cpu")
    assert report["dataset"] == "ferplus" and report["split"] == "val"
    assert "contempt" not in report["labels"]
    assert report["skipped_classes"] in ([], ["contempt"])
    assert (tmp_path / "fp_confusion.csv").is_file()


def test_evaluate_ferplus_says_which_rows_its_rules_left_out(trained_run: Path,
                                                             tmp_path: Path) -> None:
    from train_data import write_pixels_csv, write_votes

    rows = [("PrivateTest", "a.png", {"happiness": 8, "neutral": 2}),
            ("PrivateTest", "b.png", {"neutral": 4, "sadness": 4, "anger": 2}),  # no majority
            ("PrivateTest", "c.png", {"NF": 6, "happiness": 4}),                 # not a face
            ("PrivateTest", "", {"surprise": 10}),                                # no image name
            ("PrivateTest", "e.png", {"fear": 9, "surprise": 1})]
    usages = [r[0] for r in rows]
    data = write_pixels_csv(tmp_path / "fer.csv", [0] * len(usages), usages)
    votes = write_votes(tmp_path / "votes.csv", rows)
    report = evaluate_main(str(trained_run / "best.pt"), str(data), dataset="ferplus",
                           split="test", ferplus=str(votes), device="cpu")
    assert report["n"] == 2
    assert report["left_out"] == {
        "unknown/not-a-face votes tie or beat the top emotion": 1,
        "no emotion has more than half of the votes (no majority label)": 1,
        "no Image name (FER+: not a face)": 1}
    summary = format_summary(report)
    assert ("left out by the dataset's rules: 1 face(s): no emotion has more than half of the "
            "votes (no majority label)") in summary


def test_evaluate_folder_class_mismatch(trained_run: Path, tmp_path: Path) -> None:
    """Folder classes the model lacks are skipped; metrics cover the folder's classes only."""
    sk = pytest.importorskip("sklearn.metrics")
    root = write_image_folder(tmp_path / "faces" / "test",
                              {"anger": 5, "happiness": 6, "contempt": 3}, size=(64, 64))
    report = evaluate_main(str(trained_run / "best.pt"), str(tmp_path / "faces"),
                           dataset="folder", split="test", json_path=tmp_path / "f.json",
                           out_dir=tmp_path / "figs", device="cpu")
    assert report["skipped_classes"] == ["contempt"]
    assert report["n"] == 11
    assert report["evaluated_labels"] == ["angry", "happy"]
    assert set(report["per_class"]) == {"angry", "happy"}
    assert len(report["labels"]) == 7  # the model's full label set, full argmax
    cm = np.array(report["confusion_matrix"])
    y = np.repeat(np.arange(7), cm.sum(1))
    pred = np.concatenate([np.repeat(np.arange(7), row) for row in cm])
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert report["macro_f1"] == pytest.approx(
        sk.f1_score(y, pred, labels=[0, 3], average="macro", zero_division=0))
    assert (tmp_path / "figs" / "f_confusion.png").is_file()
    assert root.is_dir()


def test_evaluate_errors_are_clean(trained_run: Path, fer_files: tuple[Path, Path],
                                   tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["evaluate", "--data", str(fer_files[0]), "--model",
                                  str(tmp_path / "nope.pt"), "--json", str(tmp_path / "x.json")])
    assert missing.exit_code == 1 and "neither a checkpoint file nor a bundled model" in missing.output
    assert "Traceback" not in missing.output
    no_votes = runner.invoke(cli, ["evaluate", "--data", str(fer_files[0]), "--dataset", "ferplus",
                                   "--model", str(trained_run / "best.pt"),
                                   "--json", str(tmp_path / "x.json")])
    assert no_votes.exit_code == 1 and "--ferplus" in no_votes.output


def test_resize_faces() -> None:
    faces = torch.full((3, 48, 48), 100, dtype=torch.uint8)
    out = resize_faces(faces, 64)
    assert out.shape == (3, 64, 64) and out.dtype == torch.uint8 and int(out.min()) == 100
    assert resize_faces(faces, 48) is faces
    data = FaceData(faces, torch.tensor([0, 1, 0]), ["angry", "happy"], "t", left_out={"x": 2})
    assert data.at_size(48) is data
    big = data.at_size(64)
    assert big.images.shape == (3, 64, 64) and big.labels == data.labels
    assert big.left_out == {"x": 2} and torch.equal(big.targets, data.targets)


def test_match_labels_by_canonical_name() -> None:
    faces = torch.arange(4, dtype=torch.uint8).view(4, 1, 1).expand(4, 2, 2).contiguous()
    soft = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1]])
    data = FaceData(faces, soft, ["anger", "happiness", "contempt"], "t", soft_sampling=True,
                    left_out={"no majority": 3})
    assert label_positions(data.labels, ["happy", "sad", "angry"]) == [2, 0, -1]
    assert label_positions(["angry"], ["anger", "angry"]) == [0]  # the first of a repeated name
    matched, skipped = match_labels(data, ["happy", "sad", "angry"])
    assert skipped == ["contempt"] and matched.labels == ["happy", "sad", "angry"]
    assert matched.targets.tolist() == [2, 0, 0] and not matched.soft_sampling
    assert matched.images[:, 0, 0].tolist() == [0, 1, 3] and matched.left_out == {"no majority": 3}


@pytest.mark.slow
def test_tune_two_trials(fer_files: tuple[Path, Path], tmp_path: Path, ray_session: None) -> None:
    pytest.importorskip("ray.tune")
    out = tmp_path / "tune"
    result = CliRunner().invoke(cli, [
        "tune", "--data", str(fer_files[0]), "--out", str(out), "--search", "grid",
        "--epochs", "1", "--lr", "0.01,0.05", "--batch-size", "32", "--dropout", "0.2",
        "--model", "vgg_gap", "--model-kw", "width=4", "--model-kw", "convs_per_block=1",
        "--augment", "light", "--num-cpus", "2", "--cpus-per-trial", "1", "--limit", "200",
        "--set", "amp=false", "--set", "warmup_epochs=0", "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "tune_results.json").read_text())
    trials = summary["trials"]
    assert len(trials) == 2 and sorted(t["lr"] for t in trials) == [0.01, 0.05]
    assert all(t["error"] == "" and t["epochs"] == 1 for t in trials)
    accs = [t["best_val_acc"] for t in trials]
    assert accs == sorted(accs, reverse=True) and summary["best"] == trials[0]
    assert "ferbatch train" in summary["train_command"]
    with open(out / "tune_results.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2


def test_record_stores_the_figures_in_the_checkpoint(trained_run: Path, fer_files: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    ckpt_path = tmp_path / "model.pt"
    shutil.copy(trained_run / "best.pt", ckpt_path)
    before = load_checkpoint(ckpt_path).metrics["test"]
    report = evaluate_main(str(ckpt_path), str(fer_files[0]), split="PrivateTest",
                           json_path=tmp_path / "m.json", record=True)
    stored = load_checkpoint(ckpt_path).metrics
    assert stored["test"]["accuracy"] == report["accuracy"]
    assert stored["test"]["dataset"] == "fer2013" and stored["test"]["tta"] == "none"
    assert set(stored["test"]["calibration"]) == {"ece", "nll", "brier"}
    assert stored["test_trainer"]["confusion_matrix"] == before["confusion_matrix"]  # kept beside
    evaluate_main(str(ckpt_path), str(fer_files[0]), split="test", json_path=tmp_path / "n.json",
                  record=True)
    kept = load_checkpoint(ckpt_path).metrics["test_trainer"]
    assert kept["confusion_matrix"] == before["confusion_matrix"]  # not overwritten
