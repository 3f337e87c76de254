"""Knowledge distillation (``ferbatch train --teacher``): a student learns from the softened
outputs of one or more teacher checkpoints as well as from the labels.

The loss is Hinton, Vinyals & Dean's ("Distilling the Knowledge in a Neural Network", 2015)::

    (1 - alpha) * CE(student, labels) + alpha * T² * KL(softmax(t / T) ‖ softmax(s / T))

with ``t`` the teachers' logits averaged over the ensemble (so the target is the normalised
geometric mean of the teachers' softened distributions, one of the two ensemble targets Hinton
et al. name) and ``T`` the distillation temperature; the ``T²`` factor keeps the soft term's
gradients on the scale of the hard term's. ``--class-weights`` weighs the label term only.

The teachers' logits are computed once per training image, before the first epoch, on the
centre crop and its mirror (averaged), and reused under every augmentation of that image:
*offline* distillation, as in Label Refinery (Bagherinezhad et al., 2018) and FKD (Shen & Xing,
2021). On a CPU this keeps an epoch's cost that of training the student alone; on-line
distillation would add one forward pass per teacher and batch. The ensemble's logits are cached
in the run folder (``teacher_logits.pt``, keyed by the teachers' files and the training images),
so ``--resume`` does not recompute them, and each teacher's own logits in the dataset cache
(:func:`~ferbatch.train.data.cache_dir`, ``teacher-logits/``, keyed by the teacher file's SHA-256
and the images it scored), so another run with a teacher already scored there (a new seed, an
ensemble adding one member) does not score it again. ``FERBATCH_CACHE_DIR=off`` turns the latter
off.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import ConfigError, ModelError
from ..models.bundled import resolve_model
from ..models.checkpoint import Checkpoint, file_sha256, load_checkpoint, safe_torch_load
from ..output.atomic import atomic_write
from .data import FaceData, cache_dir
from .labels import canonical_label, label_positions

__all__ = ["CACHE", "SHARED_CACHE", "Distillation", "kd_loss", "build_distillation", "teacher_logits"]

log = logging.getLogger(__name__)

#: file name of the cached teacher logits in a run folder
CACHE = "teacher_logits.pt"

#: the views each teacher scores per training image (averaged): centre crop and its mirror
TEACHER_TTA = "flip"

#: sub-folder of :func:`~ferbatch.train.data.cache_dir` holding each teacher's logits
SHARED_CACHE = "teacher-logits"


@dataclass
class Distillation:
    """What :func:`~ferbatch.train.engine.train_one_epoch` distils from: ``logits`` float32 N×C
    (row i: training image i, columns in the student's label order), the soft term's weight
    ``alpha`` in [0, 1] and the temperature ``temperature`` (> 0)."""

    logits: torch.Tensor
    alpha: float
    temperature: float


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over the batch of ``T² · KL(softmax(teacher / T) ‖ softmax(student / T))``; both
    N×C logits (Hinton et al., 2015). Zero when the two agree up to a constant per row."""
    t = float(temperature)
    log_p_student = F.log_softmax(student.float() / t, dim=1)
    log_p_teacher = F.log_softmax(teacher.float() / t, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * (t * t)


def check_options(alpha: float, temperature: float, mixup: float) -> None:
    """Raise :class:`ConfigError` for ``--kd-alpha`` outside [0, 1], ``--kd-temperature`` ≤ 0,
    or ``--mixup`` with teachers (a mixed image has no per-image teacher target)."""
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"--kd-alpha must be in [0, 1], got {alpha}")
    if not temperature > 0:
        raise ConfigError(f"--kd-temperature must be > 0, got {temperature}")
    if mixup > 0:
        raise ConfigError("--mixup cannot be combined with --teacher: the teachers' targets "
                          "are per image and a mixed image has none; drop one of them")


def _teacher_columns(name: str, teacher_labels: list[str], labels: list[str]) -> list[int]:
    """Column of each student label in the teacher's output, matched by canonical name
    (``happiness`` = ``happy``, :func:`~ferbatch.train.labels.canonical_label`). Raises
    :class:`ConfigError` when the teacher lacks one, or names one twice (``anger``, ``angry``)."""
    columns = label_positions(labels, teacher_labels)
    missing = [label for label, col in zip(labels, columns) if col < 0]
    if missing:
        raise ConfigError(f"--teacher {name}: its labels {teacher_labels} lack "
                          f"{', '.join(missing)}, which the student is trained on")
    names = [canonical_label(label) for label in teacher_labels]
    repeated = sorted({n for n in names if names.count(n) > 1} & {names[c] for c in columns})
    if repeated:
        raise ConfigError(f"--teacher {name}: its labels {teacher_labels} name "
                          f"{', '.join(repeated)} more than once; which column to distil from "
                          "is ambiguous")
    return columns


def _teacher_checkpoint(name: str) -> Checkpoint:
    """The checkpoint of ``--teacher name``, a failure a :class:`~ferbatch.errors.ModelError`
    that names the teacher."""
    try:
        return load_checkpoint(resolve_model(name))
    except (ModelError, ConfigError) as exc:
        raise ModelError(f"--teacher {name}: {str(exc).splitlines()[0]}") from exc


def _teacher_network(name: str, ckpt: Checkpoint) -> torch.nn.Module:
    """``ckpt``'s network, a failure a :class:`~ferbatch.errors.ModelError` naming the teacher."""
    try:
        return ckpt.build()
    except (ModelError, ConfigError) as exc:
        raise ModelError(f"--teacher {name}: {str(exc).splitlines()[0]}") from exc


def _teacher_sha256(name: str) -> str:
    """SHA-256 of ``--teacher name``'s file; :class:`ModelError` naming it when unreadable."""
    path = resolve_model(name)
    try:
        return file_sha256(path)
    except OSError as exc:
        raise ModelError(f"--teacher {name}: cannot read {path}: "
                         f"{exc.strerror or exc}") from exc


def _images_sha256(images: torch.Tensor) -> str:
    digest = hashlib.sha256(str(tuple(images.shape)).encode())
    digest.update(images.contiguous().numpy().tobytes())
    return digest.hexdigest()


def _shared_file(teacher_sha: str, images_sha: str) -> Path | None:
    """Where one teacher's logits on one set of images live in the dataset cache, or ``None``
    when the cache is off."""
    folder = cache_dir()
    if folder is None:
        return None
    key = hashlib.sha256(f"{teacher_sha}\0{TEACHER_TTA}\0{images_sha}".encode()).hexdigest()
    return folder / SHARED_CACHE / f"{key[:40]}.pt"


def _read_shared(file: Path | None, name: str) -> tuple[list[str], torch.Tensor] | None:
    """The labels and full logits stored in ``file``; ``None`` when absent or unusable (an
    unreadable entry is a warning, never fatal)."""
    if file is None or not file.is_file():
        return None
    try:
        stored = safe_torch_load(file, "teacher logits")
    except ModelError as exc:
        log.warning("--teacher %s: ignoring the cached logits %s: %s", name, file, exc)
        return None
    if not (isinstance(stored, dict) and isinstance(stored.get("labels"), list)
            and isinstance(stored.get("logits"), torch.Tensor)):
        log.warning("--teacher %s: ignoring the cached logits %s: not a logits file", name, file)
        return None
    return stored["labels"], stored["logits"].float()


def _write_shared(file: Path | None, name: str, labels: list[str],
                  logits: torch.Tensor) -> None:
    if file is None:
        return
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(file, lambda tmp: torch.save({"teacher": name, "labels": list(labels),
                                                   "logits": logits}, tmp))
    except OSError as exc:  # only an optimisation
        log.warning("--teacher %s: cannot cache its logits in %s: %s", name, file,
                    exc.strerror or exc)


def teacher_logits(teachers: list[str], data: FaceData, device: torch.device,
                   batch_size: int = 512) -> torch.Tensor:
    """float32 N×C: the mean logits of the ``teachers`` (bundled names or checkpoint files) on
    ``data``'s images (centre crop and mirror averaged, each teacher with its own stored
    preprocessing), columns in ``data.labels``' order (a teacher with more classes keeps the
    student's columns). Each teacher's logits are read from, or written to, the dataset cache
    (``teacher-logits/``, keyed by the teacher file's SHA-256 and the images it scores).

    Raises :class:`ConfigError` when a teacher lacks one of ``data.labels`` and
    :class:`~ferbatch.errors.ModelError` when one cannot be read or built (both name it).
    """
    from .engine import predict_proba

    total: torch.Tensor | None = None
    image_shas: dict[int, str] = {}
    for name in teachers:
        sha = _teacher_sha256(name)
        ckpt = _teacher_checkpoint(name)
        columns = _teacher_columns(name, ckpt.labels, data.labels)
        pre = ckpt.preprocess
        images = data.at_size(pre.image_size).images
        if pre.image_size not in image_shas:
            image_shas[pre.image_size] = _images_sha256(images)
        shared = _shared_file(sha, image_shas[pre.image_size])
        cached = _read_shared(shared, name)
        if cached is not None and cached[0] == list(ckpt.labels) \
                and cached[1].shape == (len(images), len(ckpt.labels)):
            full = cached[1]
            log.info("--teacher %s: logits of %d training images read from %s",
                     name, len(data), shared)
        else:
            model = _teacher_network(name, ckpt).to(device)
            full = predict_proba(model, images, device=device, preprocess=pre,
                                 batch_size=batch_size, tta=TEACHER_TTA, logits=True)
            _write_shared(shared, name, ckpt.labels, full)
            log.info("--teacher %s: scored %d training images", name, len(data))
        out = full[:, columns]
        total = out if total is None else total + out
    if total is None:
        raise ConfigError("no teacher given")
    return total / len(teachers)


def _cache_key(teachers: list[str], data: FaceData) -> str:
    digest = hashlib.sha256()
    for name in teachers:
        digest.update(_teacher_sha256(name).encode())
    digest.update(TEACHER_TTA.encode())
    digest.update("\0".join(data.labels).encode())
    digest.update(data.images.contiguous().numpy().tobytes())
    return digest.hexdigest()


def build_distillation(teachers: list[str], data: FaceData, *, alpha: float,
                       temperature: float, device: torch.device,
                       cache: Path | None = None) -> Distillation:
    """The :class:`Distillation` of a run: :func:`teacher_logits` for the training split
    ``data``, read from ``cache`` when it holds them for the same teacher files and images,
    else computed (without moving torch's global random state) and written there (atomically;
    a failed write is a warning). Errors as :func:`teacher_logits`, every one naming the
    teacher."""
    key = _cache_key(teachers, data)
    if cache is not None and cache.is_file():
        try:
            stored = safe_torch_load(cache, "teacher logits")
        except ModelError as exc:  # an unreadable cache is recomputed, not fatal
            log.warning("ignoring the teacher-logit cache %s: %s", cache, exc)
            stored = None
        if isinstance(stored, dict) and stored.get("key") == key:
            log.info("--teacher: logits read from %s", cache)
            return Distillation(stored["logits"], alpha, temperature)
    # building a teacher draws initial weights from torch's global generator: forked, so a
    # run's augmentation stream is the same whether the logits came from the cache or not
    with torch.random.fork_rng(devices=[]):
        logits = teacher_logits(teachers, data, device)
    if cache is not None:
        stored = {"key": key, "teachers": list(teachers), "logits": logits}
        try:
            atomic_write(cache, lambda tmp: torch.save(stored, tmp))
        except OSError as exc:  # only an optimisation: the run goes on without it
            log.warning("cannot write the teacher-logit cache %s: %s; --resume will score "
                        "the teachers again", cache, exc.strerror or exc)
    return Distillation(logits, alpha, temperature)
