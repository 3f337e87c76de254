"""Knowledge distillation (``ferbatch.train.distill``, ``ferbatch train --teacher``)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from ferbatch.cli import cli
from ferbatch.errors import ConfigError, ModelError
from ferbatch.models.checkpoint import load_checkpoint, save_checkpoint
from ferbatch.models.preprocess import Preprocess
from ferbatch.train.args import command_line
from ferbatch.train.data import FaceData
from ferbatch.train.distill import (
    Distillation,
    build_distillation,
    check_options,
    kd_loss,
    teacher_logits,
)
from ferbatch.train.engine import EpochStats, predict_proba, train_one_epoch
from ferbatch.train.main import main
from ferbatch.train.transforms import PRESETS

from train_data import TINY_MODEL, tiny_args

CPU = torch.device("cpu")

#: no test here reads or fills the user's dataset cache (each teacher's logits go there)
pytestmark = pytest.mark.usefixtures("own_cache_dir")


def test_kd_loss_is_t2_times_the_kl_of_the_softened_outputs() -> None:
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 7), torch.randn(5, 7) * 3
    t = 4.0
    p = F.softmax(teacher / t, 1)
    by_hand = (p * (p.log() - F.log_softmax(student / t, 1))).sum(1).mean() * t * t
    assert float(kd_loss(student, teacher, t)) == pytest.approx(float(by_hand), rel=1e-5)
    assert float(kd_loss(student, teacher, t)) > 0
    # the same outputs up to a constant per row: nothing to learn
    assert float(kd_loss(teacher + 2.5, teacher, t)) == pytest.approx(0.0, abs=1e-6)


def test_kd_loss_pulls_the_student_to_the_teacher() -> None:
    torch.manual_seed(0)
    teacher = torch.randn(8, 4) * 2
    student = torch.zeros(8, 4, requires_grad=True)
    opt = torch.optim.SGD([student], lr=1.0)
    first = float(kd_loss(student, teacher, 2.0).detach())
    for _ in range(200):
        opt.zero_grad()
        kd_loss(student, teacher, 2.0).backward()
        opt.step()
    assert float(kd_loss(student, teacher, 2.0).detach()) < first / 50
    assert torch.equal(student.argmax(1), teacher.argmax(1))


@pytest.mark.parametrize("alpha, temperature, mixup, words", [
    (1.5, 4.0, 0.0, "--kd-alpha"), (-0.1, 4.0, 0.0, "--kd-alpha"),
    (0.5, 0.0, 0.0, "--kd-temperature"), (0.5, 4.0, 0.2, "--mixup")])
def test_options_are_checked(alpha: float, temperature: float, mixup: float, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        check_options(alpha, temperature, mixup)


def _train_split(fer_files: tuple[Path, Path], run: Path) -> FaceData:
    """The Training split of the tiny CSV, in the labels of the run's checkpoint."""
    from ferbatch.train.evaluate import load_eval_data

    labels = load_checkpoint(run / "best.pt").labels
    return load_eval_data(str(fer_files[0]), "fer2013", "train", labels, 48, None)[0]


def test_teacher_logits_are_the_ensemble_mean_in_the_students_label_order(
        trained_run: Path, fer_files: tuple[Path, Path], tmp_path: Path) -> None:
    teacher = trained_run / "best.pt"
    data = _train_split(fer_files, trained_run)
    ckpt = load_checkpoint(teacher)
    own = predict_proba(ckpt.build(), data.images, device=CPU, preprocess=ckpt.preprocess,
                        tta="flip", logits=True)
    one = teacher_logits([str(teacher)], data, CPU)
    assert one.shape == (len(data), 7) and one.dtype == torch.float32
    assert torch.allclose(one, own, atol=1e-5)
    # a second teacher: same weights, the classifier's output doubled (its bias and weight ×2)
    double = replace(ckpt, state_dict={k: v * 2 if k.startswith("fc.") else v
                                       for k, v in ckpt.state_dict.items()})
    save_checkpoint(double, tmp_path / "double.pt")
    mean = teacher_logits([str(teacher), str(tmp_path / "double.pt")], data, CPU)
    assert torch.allclose(mean, own * 1.5, atol=1e-4)
    # a student on three of the teacher's classes gets those columns, in its own order
    labels = ["sad", "happy", "neutral"]
    sub = FaceData(data.images, data.targets.clamp(max=2), labels, data.source)
    picked = teacher_logits([str(teacher)], sub, CPU)
    index = [ckpt.labels.index(label) for label in labels]
    assert torch.allclose(picked, own[:, index], atol=1e-5)


def test_a_teacher_without_the_students_classes_is_refused(trained_run: Path,
                                                           fer_files: tuple[Path, Path]) -> None:
    data = _train_split(fer_files, trained_run)
    extra = FaceData(data.images, data.targets, [*data.labels[:-1], "contempt"], data.source)
    with pytest.raises(ConfigError, match="lack contempt"):
        teacher_logits([str(trained_run / "best.pt")], extra, CPU)



def test_a_teacher_naming_a_class_twice_is_refused() -> None:
    from ferbatch.train.distill import _teacher_columns

    assert _teacher_columns("t.pt", ["happiness", "sad", "anger"], ["angry", "happy"]) == [2, 0]
    with pytest.raises(ConfigError, match="name angry more than once"):
        _teacher_columns("t.pt", ["anger", "angry", "happy"], ["happy", "angry"])
    # a repeated class the student does not use is no ambiguity
    assert _teacher_columns("t.pt", ["fear", "afraid", "happy"], ["happy"]) == [2]


def test_logits_are_cached_per_teacher_file_and_images(
        trained_run: Path, fer_files: tuple[Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import ferbatch.train.distill as distill

    teacher = str(trained_run / "best.pt")
    data = _train_split(fer_files, trained_run)
    cache = tmp_path / "teacher_logits.pt"
    first = build_distillation([teacher], data, alpha=0.3, temperature=2.0, device=CPU,
                               cache=cache)
    assert cache.is_file() and first.alpha == 0.3 and first.temperature == 2.0
    calls: list[int] = []
    real = distill.teacher_logits

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(distill, "teacher_logits", counting)
    again = build_distillation([teacher], data, alpha=0.3, temperature=2.0, device=CPU,
                               cache=cache)
    assert calls == [] and torch.equal(again.logits, first.logits)
    # other images (a subset): recomputed, and the cache now holds those
    part = build_distillation([teacher], data.subset(torch.arange(10)), alpha=0.3,
                              temperature=2.0, device=CPU, cache=cache)
    assert calls == [1] and torch.equal(part.logits, first.logits[:10])
    # the same weights in another teacher file: recomputed
    ckpt = load_checkpoint(teacher)
    other = tmp_path / "other.pt"
    save_checkpoint(ckpt, other)
    build_distillation([str(other)], data, alpha=0.3, temperature=2.0, device=CPU, cache=cache)
    assert calls == [1, 1]
    ckpt.metrics = {"changed": 1}  # a changed file (same weights): the key follows its bytes
    save_checkpoint(ckpt, other)
    build_distillation([str(other)], data, alpha=0.3, temperature=2.0, device=CPU, cache=cache)
    assert calls == [1, 1, 1]
    cache.write_bytes(b"not a checkpoint")  # a corrupt cache: a warning, then recomputed
    with caplog.at_level(logging.WARNING, logger="ferbatch.train.distill"):
        build_distillation([str(other)], data, alpha=0.3, temperature=2.0, device=CPU,
                           cache=cache)
    assert calls == [1, 1, 1, 1] and "ignoring the teacher-logit cache" in caplog.text


def test_each_teachers_logits_are_shared_across_runs(
        trained_run: Path, fer_files: tuple[Path, Path], tmp_path: Path, own_cache_dir: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Another run (its own run-folder cache empty) reuses a teacher's logits from the dataset
    cache, for any ensemble and student label set containing it; other images, a corrupt entry
    or ``FERBATCH_CACHE_DIR=off`` score the teacher again."""
    import ferbatch.train.engine as engine
    from ferbatch.train.distill import SHARED_CACHE

    teacher = str(trained_run / "best.pt")
    data = _train_split(fer_files, trained_run)
    calls: list[int] = []
    real = engine.predict_proba

    def counting(*args, **kwargs):
        calls.append(len(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "predict_proba", counting)
    first = build_distillation([teacher], data, alpha=0.3, temperature=1.0, device=CPU,
                               cache=tmp_path / "run1_teacher_logits.pt")
    shared = sorted((own_cache_dir / SHARED_CACHE).glob("*.pt"))
    assert calls == [len(data)] and len(shared) == 1
    # a second run, an ensemble naming the teacher twice: read, not scored
    with caplog.at_level(logging.INFO, logger="ferbatch.train.distill"):
        pair = build_distillation([teacher, teacher], data, alpha=0.3, temperature=1.0,
                                  device=CPU, cache=tmp_path / "run2_teacher_logits.pt")
    assert calls == [len(data)] and torch.allclose(pair.logits, first.logits)
    assert f"logits of {len(data)} training images read from" in caplog.text
    # a student trained on two of the classes takes the teacher's two columns from the entry
    two = replace(data, labels=["sad", "happy"])
    cols = [data.labels.index("sad"), data.labels.index("happy")]
    assert torch.equal(teacher_logits([teacher], two, CPU), first.logits[:, cols])
    assert calls == [len(data)]
    # other images: scored, and a second entry
    part = teacher_logits([teacher], data.subset(torch.arange(10)), CPU)
    assert calls == [len(data), 10] and torch.allclose(part, first.logits[:10])
    assert len(list((own_cache_dir / SHARED_CACHE).glob("*.pt"))) == 2
    # a corrupt entry: a warning naming the teacher, scored again and rewritten
    shared[0].write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="ferbatch.train.distill"):
        again = teacher_logits([teacher], data, CPU)
    assert calls == [len(data), 10, len(data)] and torch.allclose(again, first.logits)
    assert f"--teacher {teacher}: ignoring the cached logits" in caplog.text
    assert teacher_logits([teacher], data, CPU).shape == first.logits.shape
    assert len(calls) == 3
    # the cache off: scored every time, nothing written
    off = tmp_path / "elsewhere"
    monkeypatch.setenv("FERBATCH_CACHE_DIR", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(off))
    teacher_logits([teacher], data, CPU)
    teacher_logits([teacher], data, CPU)
    assert len(calls) == 5 and not off.exists()


def _epoch(data: FaceData, distill: Distillation | None,
           stats: list[EpochStats] | None = None) -> dict[str, torch.Tensor]:
    from ferbatch.models import create_model

    torch.manual_seed(0)
    model = create_model("vgg_gap", num_classes=len(data.labels), input_size=40, **TINY_MODEL)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    epoch = train_one_epoch(model, data, opt, device=CPU, batch_size=16,
                            preprocess=Preprocess(input_size=40), preset=PRESETS["light"],
                            class_weights=None, label_smoothing=0.1, mixup_alpha=0.0,
                            amp=False, channels_last=False,
                            generator=torch.Generator().manual_seed(0),
                            distill=distill)
    if stats is not None:
        stats.append(epoch)
    return model.state_dict()


def test_alpha_weighs_labels_against_teachers() -> None:
    torch.manual_seed(1)
    n, labels = 64, ["a", "b", "c"]
    images = torch.randint(0, 256, (n, 48, 48), dtype=torch.uint8)
    targets = torch.randint(0, 3, (n,))
    other = (targets + 1) % 3
    teacher = torch.randn(n, 3) * 3
    real, wrong = FaceData(images, targets, labels, "t"), FaceData(images, other, labels, "t")

    def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
        return all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)

    # alpha 1: the labels play no part; alpha 0: the teachers play none
    only_teacher = Distillation(teacher, alpha=1.0, temperature=4.0)
    assert same(_epoch(real, only_teacher), _epoch(wrong, only_teacher))
    assert same(_epoch(real, Distillation(teacher, 0.0, 4.0)), _epoch(real, None))
    # in between both count
    half = Distillation(teacher, 0.5, 4.0)
    assert not same(_epoch(real, half), _epoch(wrong, half))
    assert not same(_epoch(real, half), _epoch(real, None))
    # the label term is reported on its own: the whole loss at alpha 0, absent without teachers
    stats: list[EpochStats] = []
    for distill in (None, Distillation(teacher, 0.0, 4.0), only_teacher):
        _epoch(real, distill, stats)
    plain, zero, full = stats
    assert plain.label_loss is None
    assert zero.label_loss == pytest.approx(zero.loss) == pytest.approx(plain.loss)
    assert full.label_loss is not None and full.label_loss > 0.5 and full.loss != full.label_loss


def test_training_with_teachers_records_them_and_resumes_from_the_cache(
        trained_run: Path, fer_files: tuple[Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import ferbatch.train.distill as distill

    teacher = str(trained_run / "best.pt")
    out = tmp_path / "student"
    args = tiny_args(fer_files[0], out, teacher=[teacher, teacher], kd_alpha=0.8,
                     kd_temperature=3.0)
    main(args)
    config = json.loads((out / "config.json").read_text())
    assert config["teacher"] == [teacher, teacher] and config["kd_alpha"] == 0.8
    assert load_checkpoint(out / "best.pt").train_config["kd_temperature"] == 3.0
    assert (out / "teacher_logits.pt").is_file()
    line = command_line(args, str(out))
    assert line.count("--teacher") == 2 and line[line.index("--kd-alpha") + 1] == "0.8"

    def fail(*_a, **_k):
        raise AssertionError("recomputed")

    monkeypatch.setattr(distill, "teacher_logits", fail)
    main(replace(args, epochs=2, resume=True))  # the logits come from the run's cache
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert len(history) == 2 and all(h["train_label_loss"] > 0 for h in history)
    with caplog.at_level(logging.WARNING, logger="ferbatch.train.main"):  # --teacher forgotten
        main(replace(args, epochs=3, resume=True, teacher=[]))
    assert "previous part of this run trained with --teacher" in caplog.text
    assert "this part trains with none" in caplog.text
    last = json.loads((out / "history.jsonl").read_text().splitlines()[-1])
    assert "train_label_loss" not in last


def test_cli_teacher_errors_name_the_problem(trained_run: Path, fer_files: tuple[Path, Path],
                                             tmp_path: Path) -> None:
    base = ["train", "--data", str(fer_files[0]), "--out", str(tmp_path / "r"), "--model-kw",
            "width=4", "--model-kw", "convs_per_block=1", "--epochs", "1", "--no-amp", "--quiet"]
    runner = CliRunner()
    missing = runner.invoke(cli, [*base, "--teacher", str(tmp_path / "nope.pt")])
    assert missing.exit_code != 0 and "nope.pt" in missing.output and "bundled" in missing.output
    assert "Traceback" not in missing.output
    mixed = runner.invoke(cli, [*base, "--teacher", str(trained_run / "best.pt"),
                                "--mixup", "0.2"])
    assert mixed.exit_code != 0 and "--mixup cannot be combined with --teacher" in mixed.output
    alpha = runner.invoke(cli, [*base, "--teacher", str(trained_run / "best.pt"),
                                "--kd-alpha", "1.5"])
    assert alpha.exit_code == 2 and "--kd-alpha" in alpha.output


def test_the_cache_does_not_change_the_runs_random_stream(trained_run: Path,
                                                          fer_files: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    """A teacher is built (its initial weights drawn) only on a cache miss: the global random
    state after set-up must not depend on it, or a rerun would augment differently."""
    from ferbatch.train.build import build_training

    data = _train_split(fer_files, trained_run)
    args = tiny_args(fer_files[0], tmp_path, teacher=[str(trained_run / "best.pt")])
    states = []
    for _ in range(2):  # a miss that writes the cache, then a hit
        build_training(args, data, teacher_cache=tmp_path / "teacher_logits.pt")
        states.append(torch.get_rng_state())
    assert torch.equal(states[0], states[1])


def test_teachers_with_other_sizes_label_spellings_and_faults(
        trained_run: Path, fer_files: tuple[Path, Path], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    from ferbatch.train.data import resize_faces

    data = _train_split(fer_files, trained_run)
    ckpt = load_checkpoint(trained_run / "best.pt")
    # a teacher trained on 56 px faces scores the 48 px images resized to 56
    big = replace(ckpt, preprocess=replace(ckpt.preprocess, image_size=56),
                  labels=["anger" if label == "angry" else label for label in ckpt.labels])
    save_checkpoint(big, tmp_path / "big.pt")
    want = predict_proba(big.build(), resize_faces(data.images, 56), device=CPU,
                         preprocess=big.preprocess, tta="flip", logits=True)
    assert torch.allclose(teacher_logits([str(tmp_path / "big.pt")], data, CPU), want, atol=1e-5)
    # weights that do not fit the stored architecture: the error names the teacher
    wide = replace(ckpt, arch_kwargs={**ckpt.arch_kwargs, "width": 8})
    save_checkpoint(wide, tmp_path / "wide.pt")
    with pytest.raises(ModelError, match=r"--teacher .*wide\.pt: "):
        teacher_logits([str(trained_run / "best.pt"), str(tmp_path / "wide.pt")], data, CPU)
    # a cache that cannot be written: a warning, and the logits all the same
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    with caplog.at_level(logging.WARNING, logger="ferbatch.train.distill"):
        got = build_distillation([str(trained_run / "best.pt")], data, alpha=0.5,
                                 temperature=4.0, device=CPU, cache=blocked)
    assert got.logits.shape == (len(data), 7) and "cannot write the teacher-logit cache" in caplog.text


def test_alpha_zero_skips_the_teachers(trained_run: Path, fer_files: tuple[Path, Path],
                                       tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ferbatch.train.build import build_training

    data = _train_split(fer_files, trained_run)
    args = tiny_args(fer_files[0], tmp_path, teacher=[str(tmp_path / "never-read.pt")],
                     kd_alpha=0.0)
    with caplog.at_level(logging.WARNING, logger="ferbatch.train.build"):
        run = build_training(args, data, teacher_cache=tmp_path / "teacher_logits.pt")
    assert run.distill is None and "--kd-alpha 0" in caplog.text
    assert not (tmp_path / "teacher_logits.pt").exists()


def test_tune_refuses_teachers_cleanly(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["tune", "--data", str(tmp_path / "none.csv"), "--out",
                                      str(tmp_path / "t"), "--set", "teacher=default"])
    assert result.exit_code == 1 and "tune does not distil" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_the_cache_benchmark_prints_its_figures(trained_run: Path, fer_files: tuple[Path, Path],
                                                 own_cache_dir: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(root / "bench" / "bench_teacher_cache.py"),
                           "--data", str(fer_files[0]), "--teacher", str(trained_run / "best.pt"),
                           "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "on 200 training faces, 1 threads: scored in" in done.stdout
    assert "read from the cache in" in done.stdout
    assert not list((own_cache_dir / "teacher-logits").glob("*.pt"))  # its own temporary cache
