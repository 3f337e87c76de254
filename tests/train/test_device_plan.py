"""Training plans for a lent machine (``ferbatch.train.device_plan``, ``jobs/train_on_device.py``)
and the packed FER2013 they train on (``pack_fer2013`` / ``read_packed``), run here on the CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ferbatch.errors import ConfigError, DataError, OutputError
from ferbatch.train.args import TrainArgs
from ferbatch.train.datasets.fer2013 import load_fer2013, pack_fer2013, read_fer2013
from ferbatch.train.device_output import MAX_FILES, RUN_TEXTS, bring_back
from ferbatch.train.device_plan import (
    MIN_EPOCHS,
    DevicePlan,
    PlannedRun,
    Stage,
    fit_epochs,
    load_plan,
    probe_seconds_per_epoch,
    run_plan,
)

from train_data import TINY_MODEL

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("own_cache_dir")


@pytest.fixture(scope="module")
def packed(fer_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("packed") / "fer_train_val.npz.xz"
    assert pack_fer2013(fer_files[0], out, ["Training", "PublicTest"]) == out.stat().st_size
    return out


def test_a_packed_file_reads_as_the_csvs_rows_of_its_splits(fer_files: tuple[Path, Path],
                                                            packed: Path) -> None:
    images, emotion, usage = read_fer2013(fer_files[0])
    p_images, p_emotion, p_usage = read_fer2013(packed)
    keep = np.isin(usage, ["Training", "PublicTest"])
    assert np.array_equal(p_images, images[keep]) and p_images.dtype == np.uint8
    assert np.array_equal(p_emotion, emotion[keep]) and p_emotion.dtype == np.int64
    assert list(p_usage) == list(usage[keep])
    csv_splits, packed_splits = load_fer2013(fer_files[0]), load_fer2013(packed)
    for split in ("train", "val"):
        assert torch.equal(packed_splits[split].images, csv_splits[split].images)
        assert torch.equal(packed_splits[split].targets, csv_splits[split].targets)
    assert len(packed_splits["test"]) == 0 < len(csv_splits["test"])


def test_evaluate_takes_a_packed_file(packed: Path, trained_run: Path) -> None:
    from click.testing import CliRunner

    from ferbatch.cli import cli
    from ferbatch.train.datasets.infer import infer_dataset

    assert infer_dataset(packed).dataset == "fer2013"
    result = CliRunner().invoke(cli, ["evaluate", "--data", str(packed), "--split", "PublicTest",
                                      "--model", str(trained_run / "best.pt")])
    assert result.exit_code == 0 and "accuracy" in result.output, result.output


def test_packing_and_reading_faults_name_the_file(fer_files: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"must end in \.npz\.xz"):
        pack_fer2013(fer_files[0], tmp_path / "x.npz")
    with pytest.raises(ConfigError, match="unknown FER2013 usage.*'Test'"):
        pack_fer2013(fer_files[0], tmp_path / "x.npz.xz", ["Training", "Test"])
    nested = tmp_path / "new" / "folder" / "p.npz.xz"  # folders made as needed
    assert pack_fer2013(fer_files[0], nested, ["PublicTest"]) == nested.stat().st_size
    assert set(read_fer2013(nested)[2]) == {"PublicTest"}
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OutputError, match=r"a_file/p\.npz\.xz: cannot write the packed"):
        pack_fer2013(fer_files[0], tmp_path / "a_file" / "p.npz.xz")
    bad = tmp_path / "bad.npz.xz"
    bad.write_bytes(b"not xz at all")
    with pytest.raises(DataError, match=r"bad\.npz\.xz: not a packed FER2013"):
        read_fer2013(bad)
    import io
    import lzma

    buf = io.BytesIO()
    np.savez(buf, images=np.zeros((2, 40, 40), np.uint8), emotion=np.zeros(2), usage=np.array(["a", "b"]))
    odd = tmp_path / "odd.npz.xz"
    odd.write_bytes(lzma.compress(buf.getvalue()))
    with pytest.raises(DataError, match=r"odd\.npz\.xz: packed FER2013 with unexpected arrays"):
        read_fer2013(odd)


def _plan(tmp_path: Path, plan: dict) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def test_plans_are_checked_before_anything_runs(tmp_path: Path) -> None:
    def load(plan: dict) -> None:
        load_plan(_plan(tmp_path, plan), "data.npz.xz", tmp_path / "out")

    run = {"name": "a", "args": {"epochs": 2}}
    ok = {"budget_s": 60, "stages": [{"runs": [run]}]}
    load(ok)
    cases = [({"budget_s": 0, "stages": ok["stages"]}, "budget_s"),
             ({"budget_s": 60, "stages": []}, "non-empty 'stages'"),
             ({"budget_s": 60, "stages": [{"share": 1.5, "runs": [run]}]}, "'share' must be"),
             ({"budget_s": 60, "stages": [{"runs": [{"name": "a", "args": {"epoch": 2}}]}]},
              r"unknown TrainArgs field\(s\) \['epoch'\]"),
             ({"budget_s": 60, "stages": [{"runs": [{"name": "a", "args": {"out": "x"}}]}]},
              "set by the job"),
             ({"budget_s": 60, "stages": [{"runs": [run, run]}]}, "'a' is used twice"),
             ({"budget_s": 60, "stages": [{"runs": [{"name": "../x"}]}]}, "plain 'name'"),
             ({"budget_s": 60, "stages": [{"runs": [{"name": "b", "args": {"teacher": ["@a"]}}]},
                                          {"runs": [run]}]}, "@a names no run of an earlier"),
             ]
    for plan, words in cases:
        with pytest.raises(ConfigError, match=words):
            load(plan)
    plan = load_plan(_plan(tmp_path, {
        "budget_s": 60, "defaults": {"epochs": 7, "lr": 0.01},
        "stages": [{"name": "t", "share": 0.5, "runs": [run]},
                   {"runs": [{"name": "s", "args": {"teacher": ["@a", "default"], "init": "@a"}}]}]}),
        "d.npz.xz", tmp_path / "out")
    student = plan.stages[1].runs[0].args
    assert student.teacher == [str(tmp_path / "out" / "a" / "best.pt"), "default"]
    assert student.init == str(tmp_path / "out" / "a" / "best.pt")
    assert (student.data, student.out, student.epochs, student.lr) == (
        "d.npz.xz", str(tmp_path / "out" / "s"), 7, 0.01)
    assert plan.stages[0].runs[0].args.epochs == 2 and plan.stages[0].share == 0.5
    assert [r.bring_back for st in plan.stages for r in st.runs] == [False, True]  # the last stage
    with pytest.raises(ConfigError, match="'bring_back' must be true or false"):
        load({"budget_s": 60, "stages": [{"runs": [{"name": "a", "bring_back": "yes"}]}]})
    chosen = load_plan(_plan(tmp_path, {"budget_s": 60, "stages": [
        {"runs": [{"name": "a", "bring_back": True}]}, {"runs": [{"name": "b"}]}]}), "d", tmp_path)
    assert [r.bring_back for st in chosen.stages for r in st.runs] == [True, False]


def test_epochs_are_scaled_to_the_stage_budget() -> None:
    def stage(*epochs: int) -> Stage:
        return Stage("s", 1.0, [PlannedRun(f"r{i}", TrainArgs(data="d", out="o", epochs=e))
                                for i, e in enumerate(epochs)])

    # 100 + 50 epochs at 1 s and 2 s: 200 s (270 s with the safety margin)
    assert fit_epochs(stage(100, 50), {"r0": 1.0, "r1": 2.0}, 1000) == {"r0": 100, "r1": 50}
    fitted = fit_epochs(stage(100, 50), {"r0": 1.0, "r1": 2.0}, 135)
    assert fitted == {"r0": 50, "r1": 25}  # half the time: half the epochs, never more
    assert fit_epochs(stage(100), {"r0": 1.0}, MIN_EPOCHS * 1.35) == {"r0": MIN_EPOCHS}
    with pytest.raises(ConfigError, match=f"even {MIN_EPOCHS} epochs per run"):
        fit_epochs(stage(100, 100), {"r0": 1.0, "r1": 1.0}, 5)


def test_the_probe_times_a_training_step() -> None:
    args = TrainArgs(data="d", out="o", model_kwargs=TINY_MODEL, batch_size=8, amp=False,
                     channels_last=False)
    seconds = probe_seconds_per_epoch(args, 80, torch.device("cpu"), steps=3, warmup=1)
    assert 0 < seconds < 10
    assert probe_seconds_per_epoch(args, 800, torch.device("cpu"), steps=3, warmup=1) > seconds


def _tiny(**extra) -> dict:
    return {"model_kwargs": TINY_MODEL, "batch_size": 16, "amp": False, "channels_last": False,
            "augment": "light", "device": "cpu", **extra}


@pytest.mark.slow
def test_a_two_stage_plan_trains_a_teacher_then_its_student(packed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = load_plan(_plan(tmp_path, {
        "budget_s": 300, "defaults": _tiny(),
        "stages": [{"name": "teachers", "share": 0.5, "runs": [{"name": "t", "args": {"epochs": 2}}]},
                   {"name": "students", "runs": [{"name": "s", "args": {
                       "epochs": 2, "teacher": ["@t"], "kd_alpha": 0.5, "seed": 1}}]}]}),
        str(packed), out)
    summary = run_plan(plan, out, cores=2)
    assert json.loads((out / "device_plan.json").read_text()) == summary
    teachers, students = summary["stages"]
    assert teachers["fitted_epochs"] == {"t": 2} and students["fitted_epochs"] == {"s": 2}
    for stage, name in ((teachers, "t"), (students, "s")):
        (run,) = stage["runs"]
        assert run["rc"] == 0 and run["epochs_run"] == 2 and not run["stopped_at_deadline"]
        assert 0 <= run["best_val_acc"] <= 1 and (out / name / "best.pt").is_file()
        assert "best epoch" in (out / name / "train.log").read_text()
    config = json.loads((out / "s" / "config.json").read_text())
    assert config["teacher"] == [str(out / "t" / "best.pt")] and config["threads"] == 2
    # what comes back: few files, the last stage's best.pt, every run's logs in one archive
    dest = tmp_path / "OUT"
    files = bring_back(summary, plan, out, dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in files) == [
        "device_plan.json", "runs.tar.xz", "s.pt"]
    assert (dest / "s.pt").read_bytes() == (out / "s" / "best.pt").read_bytes()
    with tarfile.open(dest / "runs.tar.xz") as tar:
        names = set(tar.getnames())
    assert {f"{r}/{f}" for r in "ts" for f in RUN_TEXTS} <= names
    back = json.loads((dest / "device_plan.json").read_text())
    assert back["brought_back"] == ["s.pt"] and back["not_brought_back"] == {}
    assert back["stages"] == summary["stages"]


@pytest.mark.slow
@pytest.mark.allow_error_logs  # "stage second not run: …"
def test_a_stage_that_cannot_fit_is_recorded_and_skipped(packed: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import ferbatch.train.device_plan as device_plan

    monkeypatch.setattr(device_plan, "probe_seconds_per_epoch",
                        lambda args, n, dev: 1000.0 if "huge" in args.out else 0.01)
    out = tmp_path / "out"
    plan = load_plan(_plan(tmp_path, {
        "budget_s": 120, "defaults": _tiny(epochs=1),
        "stages": [{"name": "first", "share": 0.5, "runs": [{"name": "a"}]},
                   {"name": "second", "runs": [{"name": "huge"}]},
                   {"name": "third", "runs": [{"name": "b", "args": {"init": "@a"}}]}]}),
        str(packed), out)
    summary = run_plan(plan, out, cores=1)
    first, second, third = summary["stages"]
    assert first["runs"][0]["rc"] == 0 and third["runs"][0]["rc"] == 0
    assert second["runs"] == [] and f"even {MIN_EPOCHS} epochs per run" in second["error"]
    assert json.loads((out / "device_plan.json").read_text()) == summary


def test_bring_back_keeps_within_the_device_tools_limits(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import ferbatch.train.device_output as device_output

    runs = [PlannedRun(f"r{i}", TrainArgs(data="d", out=str(tmp_path / f"r{i}")), True)
            for i in range(9)]
    for i, run in enumerate(runs):
        Path(run.args.out).mkdir()
        if i != 3:
            (Path(run.args.out) / "best.pt").write_bytes(b"x" * (2000 if i == 5 else 10))
    monkeypatch.setattr(device_output, "MAX_FILE_BYTES", 1000)
    plan = DevicePlan(60, [Stage("s", 1.0, runs)])
    files = bring_back({"stages": []}, plan, tmp_path, tmp_path / "OUT")
    assert len(files) == MAX_FILES == len(list((tmp_path / "OUT").iterdir()))
    back = json.loads((tmp_path / "OUT" / "device_plan.json").read_text())
    assert back["brought_back"] == ["r0.pt", "r1.pt", "r2.pt", "r4.pt", "r6.pt", "r7.pt"]
    assert back["not_brought_back"] == {"r3": "no best.pt", "r5": "best.pt is 0.0 MiB",
                                        "r8": f"more than {MAX_FILES} files"}


@pytest.mark.slow
def test_a_run_still_going_at_its_deadline_is_stopped_and_keeps_its_best(
        packed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = load_plan(_plan(tmp_path, {"budget_s": 25, "defaults": _tiny(epochs=100000),
                                      "stages": [{"runs": [{"name": "long"}]}]}),
                     str(packed), out)
    # as when the job runs in the background or under nohup: SIGINT ignored, which the runs
    # inherit; they must still take the deadline's SIGINT (130), not wait for SIGKILL (-9)
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        summary = run_plan(plan, out, fit=False, cores=1)
    finally:
        signal.signal(signal.SIGINT, before)
    (run,) = summary["stages"][0]["runs"]
    assert run["stopped_at_deadline"] and run["rc"] == 130 and run["seconds"] < 60
    assert run["epochs_run"] >= 1 and (out / "long" / "best.pt").is_file()
    assert (out / "long" / "last.pt").is_file()  # --resume could go on from it


#: modules the lent GPU machine lacks: the job must not import them
ABSENT_ON_DEVICE = ("av", "ray", "click", "matplotlib", "facenet_pytorch", "jinja2", "onnxruntime",
                    "captum")
_BLOCKER = f"""
import importlib.abc, importlib.machinery, sys
class _Absent(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    # a spec whose loading fails: ``import`` raises ImportError, as for a missing package
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {ABSENT_ON_DEVICE!r}:
            return importlib.machinery.ModuleSpec(name, self)
    def create_module(self, spec):
        raise ImportError("not installed on the lent machine: " + spec.name)
    def exec_module(self, module):
        pass
sys.meta_path.insert(0, _Absent())
"""


@pytest.mark.slow
def test_the_job_script_runs_without_the_packages_the_device_lacks(
        fer_files: tuple[Path, Path], tmp_path: Path) -> None:
    """Pack, check a plan, train a one-run plan and bring it back, with PyAV, Ray, click,
    matplotlib … unimportable (a ``sitecustomize`` blocks them in the job and its runs)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_BLOCKER)
    env = {**os.environ, "PYTHONPATH": str(site)}
    script = [sys.executable, str(ROOT / "jobs" / "train_on_device.py")]

    def job(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*script, *argv], capture_output=True, text=True, cwd=tmp_path,
                              env=env, timeout=300)

    probe = subprocess.run([sys.executable, "-c", "import click"], env=env, capture_output=True)
    assert probe.returncode != 0  # the blocker works
    data = tmp_path / "d.npz.xz"
    packed = job("pack", "--data", str(fer_files[0]), "--out", str(data))
    assert packed.returncode == 0 and "Training, PublicTest" in packed.stdout, packed.stderr
    dry = job("run", "--plan", str(ROOT / "jobs" / "device_plan.json"), "--data", str(data),
              "--out", str(tmp_path / "o"), "--work", str(tmp_path / "w"), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("stage ") >= 2 and not (tmp_path / "o").exists()
    plan = _plan(tmp_path, {"budget_s": 120, "defaults": _tiny(epochs=1),
                            "stages": [{"runs": [{"name": "one"}]}]})
    ran = job("run", "--plan", str(plan), "--data", str(data), "--out", str(tmp_path / "OUT"),
              "--work", str(tmp_path / "w"))
    assert ran.returncode == 0, ran.stdout + ran.stderr + (tmp_path / "w/one/train.log").read_text()
    assert sorted(p.name for p in (tmp_path / "OUT").iterdir()) == [
        "device_plan.json", "one.pt", "runs.tar.xz"]
    assert "curves.png not written: matplotlib cannot be imported" in \
        (tmp_path / "w" / "one" / "train.log").read_text()
    bad = job("run", "--plan", str(tmp_path / "none.json"), "--data", str(data), "--out",
              str(tmp_path / "o"))
    assert bad.returncode == 1 and "none.json: cannot read the plan" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_job_brings_back_what_there_is_when_it_stops_early(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_on_device",
                                                  ROOT / "jobs" / "train_on_device.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    work, dest = tmp_path / "work", tmp_path / "OUT"

    def crash(plan, folder, fit):
        (folder / "t").mkdir(parents=True)
        (folder / "t" / "best.pt").write_bytes(b"weights")
        (folder / "t" / "train.log").write_text("epoch 1/9 …\n")
        (folder / "device_plan.json").write_text(json.dumps({"stages": [{"name": "s"}]}))
        raise RuntimeError("the machine went away")

    monkeypatch.setattr(job, "run_plan", crash)
    plan = _plan(tmp_path, {"budget_s": 60, "defaults": _tiny(),
                            "stages": [{"name": "s", "runs": [{"name": "t"}]}]})
    data = tmp_path / "d.npz.xz"
    data.write_bytes(b"")  # the plan check wants the file; the crash comes first
    with pytest.raises(RuntimeError, match="went away"):
        job.main(["run", "--plan", str(plan), "--data", str(data), "--out", str(dest),
                  "--work", str(work)])
    back = json.loads((dest / "device_plan.json").read_text())
    assert back["stages"] == [{"name": "s"}] and "stopped early" in back["error"]
    assert (dest / "t.pt").read_bytes() == b"weights"
    with tarfile.open(dest / "runs.tar.xz") as tar:
        assert tar.getnames() == ["t/train.log"]


def test_check_plan_lists_every_problem_before_anything_runs(packed: Path, tmp_path: Path,
                                                              trained_run: Path) -> None:
    from ferbatch.train.plan_check import check_plan

    def plan(runs: list[dict], data: Path = packed) -> object:
        return load_plan(_plan(tmp_path, {"budget_s": 60, "defaults": _tiny(epochs=1),
                                          "stages": [{"name": "t", "runs": [{"name": "ok"}]},
                                                     {"name": "s", "runs": runs}]}),
                         str(data), tmp_path / "work")

    check_plan(plan([{"name": "fine", "args": {"teacher": ["@ok", str(trained_run / "best.pt"),
                                                           "default"], "init": "@ok"}}]))
    bad = plan([{"name": "a", "args": {"epochs": "2", "lr": True}},
                {"name": "b", "args": {"optimizer": "adam", "augment": "wild"}},
                {"name": "c", "args": {"model": "vgg_gapp"}},
                {"name": "d", "args": {"model_kwargs": {"widht": 4}}},
                {"name": "e", "args": {"teacher": ["@ok", str(tmp_path / "gone.pt")]}}])
    with pytest.raises(ConfigError) as info:
        check_plan(bad)
    text = str(info.value)
    for words in ("s/a: epochs must be int, got '2'", "s/a: lr must be float, got True",
                  "s/b: optimizer 'adam' is not one of sgd, adamw", "s/b: unknown augmentation",
                  "s/c: ", "vgg_gapp", "s/d: bad options for model 'vgg_gap'",
                  f"s/e: teacher {tmp_path / 'gone.pt'} is neither a file nor a bundled model"):
        assert words in text, words
    assert "s/e: teacher @ok" not in text and str(tmp_path / "work" / "ok") not in text
    with pytest.raises(ConfigError, match=r"t/ok: data .*nope\.npz\.xz not found"):
        check_plan(plan([{"name": "x"}], data=tmp_path / "nope.npz.xz"))
    with pytest.raises(ConfigError, match=r"'teacher' must be a list .*\[\"@ok\"\]"):
        plan([{"name": "x", "args": {"teacher": "@ok"}}])


def test_packing_a_usage_the_file_lacks_is_an_error(tmp_path: Path) -> None:
    from train_data import write_pixels_csv

    csv = write_pixels_csv(tmp_path / "only_train.csv", [0, 1, 2], ["Training"] * 3)
    with pytest.raises(DataError, match=r"only_train\.csv: no rows with Usage PublicTest "
                                        r"\(it has Training\)"):
        pack_fer2013(csv, tmp_path / "x.npz.xz", ["Training", "PublicTest"])
    assert not (tmp_path / "x.npz.xz").exists()


def test_the_job_fails_when_a_stage_was_skipped(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_on_device2",
                                                  ROOT / "jobs" / "train_on_device.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    data = tmp_path / "d.npz.xz"
    data.write_bytes(b"")
    plan = _plan(tmp_path, {"budget_s": 60, "defaults": _tiny(),
                            "stages": [{"name": "s", "runs": [{"name": "t"}]}]})
    argv = ["run", "--plan", str(plan), "--data", str(data), "--out", str(tmp_path / "OUT"),
            "--work", str(tmp_path / "w")]
    done = {"name": "t", "epochs_planned": 2, "epochs_run": 2, "seconds": 3.0}
    for stages, rc in (([{"name": "s", "error": "no time", "runs": []}], 1),
                       ([{"name": "s", "runs": [{**done, "rc": 130}]}], 1),
                       ([{"name": "s", "runs": [{**done, "rc": 0}]}], 0)):
        monkeypatch.setattr(job, "run_plan", lambda plan, work, fit, st=stages: {"stages": st})
        assert job.main(argv) == rc


def test_a_plan_that_fails_its_check_leaves_no_work_folder(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Without --work the job makes a fresh folder in the temp dir, but only for a plan that
    passed its check: a bad one leaves nothing behind."""
    import importlib.util
    import tempfile

    spec = importlib.util.spec_from_file_location("train_on_device3",
                                                  ROOT / "jobs" / "train_on_device.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    plan = _plan(tmp_path, {"budget_s": 60, "defaults": _tiny(),
                            "stages": [{"name": "s", "runs": [{"name": "t"}]}]})
    argv = ["run", "--plan", str(plan), "--data", str(tmp_path / "missing.npz.xz"),
            "--out", str(tmp_path / "OUT")]
    assert job.main(argv) == 1
    assert "missing.npz.xz" in capsys.readouterr().err
    assert list(temp.iterdir()) == []
