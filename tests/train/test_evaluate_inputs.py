"""``ferbatch evaluate`` takes FER2013's own split names and infers the dataset kind from
``--data`` (issue 10, kind 14): a folder, a FER2013 CSV, FER+'s votes file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ferbatch.cli import cli
from ferbatch.errors import ConfigError, DataError
from ferbatch.train.datasets.infer import canonical_split, infer_dataset

from train_data import write_fer_csv, write_image_folder


@pytest.fixture(scope="module")
def fer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``fer.csv`` (60 rows: 40 Training, 10 PublicTest, 10 PrivateTest) and ``fernew.csv``."""
    return write_fer_csv(tmp_path_factory.mktemp("fer"), 60)


def _evaluate(tmp_path: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    out = tmp_path / f"e{len(list(tmp_path.glob('*.json')))}.json"
    result = CliRunner().invoke(cli, ["evaluate", *args, "--json", str(out), "--quiet",
                                      "--device", "cpu"])
    report = json.loads(out.read_text()) if out.is_file() else {}
    return result.exit_code, result.output, report


@pytest.mark.parametrize(("given", "split", "n"), [("PrivateTest", "test", 10),
                                                   ("publictest", "val", 10),
                                                   ("Training", "train", 40),
                                                   ("FER2013Test", "test", 10),
                                                   ("fer2013valid", "val", 10)])
def test_fer2013_split_names_are_accepted_and_the_csv_is_recognised(
        fer: tuple[Path, Path], tmp_path: Path, given: str, split: str, n: int) -> None:
    code, text, report = _evaluate(tmp_path, "--data", str(fer[0]), "--split", given)
    assert code == 0, text
    assert report["dataset"] == "fer2013" and report["split"] == split and report["n"] == n
    code, text, same = _evaluate(tmp_path, "--data", str(fer[0]), "--split", split,
                                 "--dataset", "fer2013")
    assert code == 0, text
    assert same["accuracy"] == report["accuracy"] and same["n"] == n


def test_the_ferplus_votes_file_as_data_evaluates_ferplus(fer: tuple[Path, Path], tmp_path: Path) -> None:
    code, text, report = _evaluate(tmp_path, "--data", str(fer[1]), "--split", "PrivateTest")
    assert code == 0, text
    assert report["dataset"] == "ferplus" and report["split"] == "test"
    assert report["data"] == str(fer[0]) and report["ferplus"] == str(fer[1])  # the CSV beside it
    code, text, given = _evaluate(tmp_path, "--data", str(fer[0]), "--ferplus", str(fer[1]),
                                  "--split", "test")
    assert code == 0, text
    assert given["dataset"] == "ferplus" and given["n"] == report["n"]
    assert given["accuracy"] == report["accuracy"]


def test_an_image_folder_is_recognised_with_fer2013_split_folder_names(tmp_path: Path) -> None:
    """Variant: a folder whose split sub-folders carry FER2013's names."""
    root = tmp_path / "faces"
    write_image_folder(root / "PrivateTest", {"angry": 2, "happy": 3}, size=(48, 48))
    write_image_folder(root / "Training", {"angry": 4, "happy": 4}, size=(48, 48), seed=1)
    code, text, report = _evaluate(tmp_path, "--data", str(root), "--split", "test")
    assert code == 0, text
    assert report["dataset"] == "folder" and report["n"] == 5
    assert report["evaluated_labels"] == ["angry", "happy"]
    code, text, train = _evaluate(tmp_path, "--data", str(root), "--split", "train")
    assert code == 0 and train["n"] == 8, text
    code, text, _ = _evaluate(tmp_path, "--data", str(root), "--split", "val")
    assert code == 1 and "no val or validation or PublicTest or FER2013Valid folder for split 'val'" in text
    flat = write_image_folder(tmp_path / "flat", {"sad": 2}, size=(48, 48))
    code, text, report = _evaluate(tmp_path, "--data", str(flat), "--split", "PublicTest")
    assert code == 0 and report["n"] == 2 and report["dataset"] == "folder", text


def test_ferplus_split_names_and_folders_and_evaluate_without_json(
        fer: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Variant: FER+'s split names (its generator's FER2013Train/Valid/Test folders) for the
    votes file and for an image folder; without --json the figures are printed, no file."""
    code, text, report = _evaluate(tmp_path, "--data", str(fer[1]), "--split", "FER2013Test")
    assert code == 0, text
    assert report["dataset"] == "ferplus" and report["split"] == "test"
    root = tmp_path / "ferplus_images"
    write_image_folder(root / "FER2013Valid", {"neutral": 2, "happy": 2}, size=(48, 48))
    code, text, report = _evaluate(tmp_path, "--data", str(root), "--split", "PublicTest")
    assert code == 0 and report["n"] == 4 and report["split"] == "val", text
    before = sorted(p.name for p in tmp_path.iterdir())
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    result = CliRunner().invoke(cli, ["evaluate", "--data", str(root), "--split", "val",
                                      "--device", "cpu", "--quiet"])
    assert result.exit_code == 0 and "accuracy" in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "cwd"])
    assert list(work.iterdir()) == []  # nothing written where it ran either


def test_what_cannot_be_inferred_is_a_clear_error(fer: tuple[Path, Path], tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ConfigError, match=r"cannot tell what --data .*other.csv is \(a,b,c\)"):
        infer_dataset(other)
    lonely = tmp_path / "alone" / "fer2013new.csv"
    lonely.parent.mkdir()
    lonely.write_bytes(fer[1].read_bytes())
    with pytest.raises(ConfigError, match="FER\\+'s votes file; it holds no images and no FER2013"):
        infer_dataset(lonely)
    with pytest.raises(DataError, match="not found"):
        infer_dataset(tmp_path / "nope.csv")
    code, text, _ = _evaluate(tmp_path, "--data", str(other))
    assert code == 1 and "give --dataset" in text and "Traceback" not in text
    with pytest.raises(ConfigError, match="unknown split 'holdout'; choose test, val, train, PrivateTest"):
        canonical_split("holdout")
    gz = write_fer_csv(tmp_path / "gz", 30, gz=True)[0]
    assert infer_dataset(gz).dataset == "fer2013"
