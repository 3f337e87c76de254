"""Dataset loaders: FER2013 CSV (plain, .gz, malformed), FER+ votes, image folders."""

from __future__ import annotations

import csv
import gzip
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from ferbatch.errors import DataError
from ferbatch.train.datasets.fer2013 import FER2013_LABELS, load_fer2013
from ferbatch.train.datasets.ferplus import FERPLUS_LABELS, load_ferplus
from ferbatch.train.datasets.folder import load_folder, load_folder_splits, stratified_split

from train_data import write_fer_csv, write_image_folder, write_pixels_csv, write_votes

# ---------------------------------------------------------------- FER2013 CSV

def test_fer2013_plain_and_gz_agree(tmp_path: Path) -> None:
    plain, _ = write_fer_csv(tmp_path / "plain", 300)
    gz, _ = write_fer_csv(tmp_path / "gz", 300, gz=True)
    a = load_fer2013(plain, cache_dir=tmp_path / "cache")
    b = load_fer2013(gz, cache_dir=tmp_path / "cache")
    assert {k: len(v) for k, v in a.items()} == {"train": 200, "val": 50, "test": 50}
    for split in a:
        assert a[split].images.dtype == torch.uint8 and a[split].images.shape[1:] == (48, 48)
        assert a[split].labels == FER2013_LABELS
        assert torch.equal(a[split].images, b[split].images)
        assert torch.equal(a[split].targets, b[split].targets)
    assert len(list((tmp_path / "cache").glob("fer2013-*.npz"))) == 2
    again = load_fer2013(plain, cache_dir=tmp_path / "cache")  # from the .npz cache
    assert torch.equal(again["test"].images, a["test"].images)


def test_fer2013_classes_subset(tmp_path: Path) -> None:
    plain, _ = write_fer_csv(tmp_path, 300)
    splits = load_fer2013(plain, ["happiness", "sad", "calm"], cache_dir=tmp_path / "c")
    assert splits["train"].labels == ["happy", "sad", "neutral"]
    full = load_fer2013(plain, cache_dir=tmp_path / "c")["train"]
    expected = int(np.isin(full.targets.numpy(), [3, 4, 6]).sum())
    assert len(splits["train"]) == expected
    assert set(splits["train"].targets.tolist()) <= {0, 1, 2}
    with pytest.raises(DataError, match="not in this dataset"):
        load_fer2013(plain, ["contempt"], cache_dir=tmp_path / "c")


def _write_rows(path: Path, header: list[str], rows: list[list[str]], gz: bool = False) -> Path:
    with (gzip.open if gz else open)(path, "wt", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_fer2013_malformed(tmp_path: Path, gz: bool) -> None:
    good = " ".join(["1"] * 2304)
    header = ["emotion", "pixels", "Usage"]
    ext = ".csv.gz" if gz else ".csv"
    cache = tmp_path / "cache"
    short = _write_rows(tmp_path / f"short{ext}", header,
                        [["0", good, "Training"], ["1", " ".join(["1"] * 2303), "Training"]], gz)
    with pytest.raises(DataError, match="row 3 has 2303 pixels"):
        load_fer2013(short, cache_dir=cache)
    missing = _write_rows(tmp_path / f"missing{ext}", ["emotion", "pixels"], [["0", good]], gz)
    with pytest.raises(DataError, match="missing column"):
        load_fer2013(missing, cache_dir=cache)
    bad_label = _write_rows(tmp_path / f"label{ext}", header, [["9", good, "Training"]], gz)
    with pytest.raises(DataError, match="0..6"):
        load_fer2013(bad_label, cache_dir=cache)
    empty_label = _write_rows(tmp_path / f"empty{ext}", header, [["", good, "Training"]], gz)
    with pytest.raises(DataError, match="empty emotion"):
        load_fer2013(empty_label, cache_dir=cache)
    with pytest.raises(DataError, match="not found"):
        load_fer2013(tmp_path / f"nope{ext}", cache_dir=cache)


# ---------------------------------------------------------------- FER+

# (usage, image name, votes): what each row tests is in the comment
FERPLUS_ROWS = [
    ("Training", "a.png", {"happiness": 8, "neutral": 2}),            # clear happy
    ("Training", "b.png", {"neutral": 4, "sadness": 4, "anger": 1, "unknown": 1}),  # no majority
    ("Training", "c.png", {"NF": 6, "happiness": 4}),                  # NF wins → dropped
    ("Training", "d.png", {"unknown": 5, "surprise": 5}),              # unknown ties → dropped
    ("PublicTest", "", {"happiness": 10}),                             # no image name → dropped
    ("PublicTest", "f.png", {"contempt": 7, "anger": 3}),              # contempt
    ("PrivateTest", "g.png", {"fear": 6, "surprise": 1, "disgust": 1, "sadness": 1, "unknown": 1}),
    ("PrivateTest", "h.png", {c: 1 for c in ["neutral", "happiness", "surprise", "sadness",
                                             "anger", "disgust", "fear", "contempt", "unknown",
                                             "NF"]}),                  # all single votes
]


@pytest.fixture()
def ferplus_files(tmp_path: Path) -> tuple[Path, Path]:
    usages = [r[0] for r in FERPLUS_ROWS]
    csv_path = write_pixels_csv(tmp_path / "fer.csv", [0] * len(usages), usages)
    return csv_path, write_votes(tmp_path / "votes.csv", FERPLUS_ROWS)


def _idx(name: str) -> int:
    return FERPLUS_LABELS.index(name)


def test_ferplus_majority(ferplus_files: tuple[Path, Path], tmp_path: Path) -> None:
    splits = load_ferplus(*ferplus_files, "majority", None, cache_dir=tmp_path / "c")
    assert splits["train"].labels == FERPLUS_LABELS
    assert splits["train"].targets.tolist() == [_idx("happy")]
    assert splits["val"].targets.tolist() == [_idx("contempt")]
    # fear 6 of 9 votes; the three single votes are outliers (set to 0) → 6/6 > half
    assert splits["test"].targets.tolist() == [_idx("fear")]
    assert not splits["train"].soft_sampling
    # what was dropped, and why (evaluate reports it): c, d, h by the first rule; b; e
    not_emotion = "unknown/not-a-face votes tie or beat the top emotion"
    assert splits["train"].left_out == {
        not_emotion: 2, "no emotion has more than half of the votes (no majority label)": 1}
    assert splits["val"].left_out == {"no Image name (FER+: not a face)": 1}
    assert splits["test"].left_out == {not_emotion: 1}
    assert splits["test"].subset([0]).left_out == {}  # the counts are the whole split's


def test_ferplus_soft_modes(ferplus_files: tuple[Path, Path], tmp_path: Path) -> None:
    prob = load_ferplus(*ferplus_files, "probability", None, cache_dir=tmp_path / "c")
    ce = load_ferplus(*ferplus_files, "crossentropy", None, cache_dir=tmp_path / "c")
    for splits in (prob, ce):
        for data in splits.values():
            assert data.targets.dtype == torch.float32
            assert data.targets.shape[1] == 8
            assert torch.allclose(data.targets.sum(1), torch.ones(len(data)))
    assert prob["train"].soft_sampling and not ce["train"].soft_sampling
    # rows a and b kept (b has no majority but soft modes keep it); c, d dropped
    assert len(prob["train"]) == 2 and len(ce["train"]) == 2
    b_prob, b_ce = prob["train"].targets[1], ce["train"].targets[1]
    assert b_prob[_idx("neutral")] == pytest.approx(0.5) and b_prob[_idx("angry")] == 0
    # crossentropy keeps single votes: anger 1 of 9 emotion votes
    assert b_ce[_idx("angry")] == pytest.approx(1 / 9)
    assert b_ce[_idx("neutral")] == pytest.approx(4 / 9)
    assert prob["train"].targets[0, _idx("happy")] == pytest.approx(0.8)
    assert len(prob["val"]) == 1  # row without image name dropped
    assert len(prob["test"]) == 1  # all-single-vote row dropped


def test_ferplus_classes_subset(ferplus_files: tuple[Path, Path], tmp_path: Path) -> None:
    splits = load_ferplus(*ferplus_files, "crossentropy", ["happiness", "neutral"],
                          cache_dir=tmp_path / "c")
    assert splits["train"].labels == ["happy", "neutral"]
    # row b's top emotion is sad (ties resolve in label order) → outside the subset → dropped
    assert splits["train"].targets.tolist() == [pytest.approx([0.8, 0.2])]
    assert len(splits["val"]) == 0
    rule, outside = ("unknown/not-a-face votes tie or beat the top emotion",
                     "top emotion outside the chosen classes")
    assert splits["train"].left_out == {rule: 2, outside: 1}
    assert splits["val"].left_out == {outside: 1, "no Image name (FER+: not a face)": 1}
    assert splits["test"].left_out == {rule: 1, outside: 1}


def test_ferplus_row_mismatch(ferplus_files: tuple[Path, Path], tmp_path: Path) -> None:
    csv_path, _ = ferplus_files
    short = write_votes(tmp_path / "short.csv", FERPLUS_ROWS[:-1])
    with pytest.raises(DataError) as info:
        load_ferplus(csv_path, short, "majority", None, cache_dir=tmp_path / "c")
    assert str(short) in str(info.value) and str(csv_path) in str(info.value)
    with pytest.raises(DataError, match="unknown FER\\+ mode"):
        load_ferplus(*ferplus_files, "vote", None, cache_dir=tmp_path / "c")


def test_ferplus_real_rows(shared_dir: Path, tmp_path: Path) -> None:
    """The first 300 real rows: FER+'s own decisions on rows checked by hand."""
    csv_path, votes_path = write_fer_csv(tmp_path / "fer", 300)
    majority = load_ferplus(csv_path, votes_path, "majority", None, cache_dir=tmp_path / "c")
    soft = load_ferplus(csv_path, votes_path, "crossentropy", None, cache_dir=tmp_path / "c")
    assert 0 < sum(len(s) for s in majority.values()) < sum(len(s) for s in soft.values()) <= 300
    # row 0 votes neutral 4, anger 3, disgust 2, sadness 1: no majority after the outlier
    # rule (4 of 9) → not in majority; crossentropy keeps the raw distribution
    assert not torch.equal(majority["train"].images[0], soft["train"].images[0])
    assert soft["train"].targets[0].tolist() == pytest.approx(
        [0.3, 0.2, 0, 0, 0.1, 0, 0.4, 0])


# ---------------------------------------------------------------- image folders

def test_folder_aliases_and_skipped_class(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = write_image_folder(tmp_path / "faces", {"anger": 3, "happiness": 4, "contempt": 2,
                                                   "sad": 0})
    (root / "anger" / "broken.png").write_bytes(b"not a png")
    (root / "anger" / "notes.txt").write_text("ignored")
    problems: list[str] = []
    with caplog.at_level(logging.WARNING, logger="ferbatch"):
        data, skipped = load_folder(root, 48, warnings_out=problems)
    assert "unreadable" in caplog.text
    assert skipped == []
    assert data.labels == ["angry", "happy", "contempt"]  # FER+ order; empty "sad" left out
    assert data.images.shape == (9, 48, 48) and data.images.dtype == torch.uint8
    assert torch.bincount(data.targets, minlength=3).tolist() == [3, 4, 2]
    assert len(problems) == 1 and "broken.png" in problems[0]

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ferbatch"):
        model_view, skipped = load_folder(root, 40, labels=FER2013_LABELS)
    assert "unreadable" in caplog.text
    assert skipped == ["contempt"]
    assert model_view.labels == FER2013_LABELS
    assert model_view.images.shape == (7, 40, 40)
    assert set(model_view.targets.tolist()) == {FER2013_LABELS.index("angry"),
                                                FER2013_LABELS.index("happy")}


def test_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "empty" / "happy").mkdir(parents=True)
    with pytest.raises(DataError, match="no readable"):
        load_folder(tmp_path / "empty", 48)
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        load_folder(tmp_path / "flat", 48)
    with pytest.raises(DataError, match="not found"):
        load_folder(tmp_path / "missing", 48)


def test_folder_splits_flat_and_tree(tmp_path: Path) -> None:
    flat = write_image_folder(tmp_path / "flat", {"happy": 10, "sad": 20}, size=(48, 48))
    splits, digest = load_folder_splits(flat, None, None, 48, seed=1)
    assert {k: len(v) for k, v in splits.items()} == {"train": 24, "val": 3, "test": 3}
    for k in ("val", "test"):
        assert torch.bincount(splits[k].targets).tolist() == [1, 2]  # stratified
    again, digest2 = load_folder_splits(flat, None, None, 48, seed=1)
    assert digest == digest2 and torch.equal(again["val"].images, splits["val"].images)
    _, digest3 = load_folder_splits(flat, None, None, 48, seed=2)
    assert digest3 != digest

    subset, _ = load_folder_splits(flat, None, ["sadness"], 48, seed=1)
    assert subset["train"].labels == ["sad"] and len(subset["train"]) == 16
    with pytest.raises(DataError, match="no training image for class.*fear"):
        load_folder_splits(flat, None, ["sad", "fear"], 48, seed=1)

    tree = tmp_path / "tree"
    write_image_folder(tree / "train", {"happy": 6, "angry": 6})
    write_image_folder(tree / "test", {"happy": 2, "angry": 2, "fear": 1}, seed=3)
    val_root = write_image_folder(tmp_path / "val", {"anger": 2}, seed=4)
    splits, _ = load_folder_splits(tree, str(val_root), None, 48, seed=0)
    assert splits["train"].labels == ["angry", "happy"]
    assert len(splits["train"]) == 12 and len(splits["val"]) == 2 and len(splits["test"]) == 4
    no_val, _ = load_folder_splits(tree, None, None, 48, seed=0)
    assert len(no_val["train"]) + len(no_val["val"]) == 12 and len(no_val["val"]) == 2


def test_stratified_split_small_classes() -> None:
    targets = np.array([0] * 10 + [1] * 2 + [2])
    train, val, test = stratified_split(targets, (0.8, 0.1, 0.1), seed=0)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(13))
    assert set(targets[train].tolist()) == {0, 1, 2}  # every class keeps a training sample


# ---------------------------------------------------------------- the registry

def test_unknown_dataset_lists_the_registry(tmp_path: Path) -> None:
    from ferbatch.errors import ConfigError
    from ferbatch.train.datasets import dataset_names, get_dataset

    assert dataset_names() == ["fer2013", "ferplus", "folder"]
    with pytest.raises(ConfigError, match="fer2013, ferplus, folder"):
        get_dataset("affectnet")


def test_dataset_cache_follows_xdg_and_can_move_or_be_off(trained_run: Path,
                                                          fer_files: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    """``ferbatch evaluate`` caches the parsed CSV in $XDG_CACHE_HOME/ferbatch, in
    $FERBATCH_CACHE_DIR when set, nowhere with FERBATCH_CACHE_DIR=off."""
    from click.testing import CliRunner

    from ferbatch.cli import cli

    def evaluate(**env: str | None) -> None:
        args = ["evaluate", "--data", str(fer_files[0]), "--model", str(trained_run / "best.pt"),
                "--json", str(tmp_path / "e.json"), "--quiet", "--device", "cpu"]
        result = CliRunner().invoke(cli, args, env={"FERBATCH_CACHE_DIR": None, **env})
        assert result.exit_code == 0, result.output

    def cached(folder: Path) -> list[str]:
        return sorted(p.name for p in folder.glob("fer2013-*.npz")) if folder.is_dir() else []

    xdg, own = tmp_path / "xdg", tmp_path / "own"
    evaluate(XDG_CACHE_HOME=str(xdg), FERBATCH_CACHE_DIR="off")
    assert cached(xdg / "ferbatch") == []
    evaluate(XDG_CACHE_HOME=str(xdg))
    assert len(cached(xdg / "ferbatch")) == 1
    evaluate(XDG_CACHE_HOME=str(xdg), FERBATCH_CACHE_DIR=str(own))
    assert cached(own) == cached(xdg / "ferbatch")
