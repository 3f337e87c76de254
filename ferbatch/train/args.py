"""Every option of a training run, each default written once.

:class:`TrainArgs` is the single source of the ``ferbatch train`` defaults: the click options
read them from here (:func:`field_default`), ``ferbatch tune`` starts its trials from them, and
the preprocessing defaults come from :class:`~ferbatch.models.preprocess.Preprocess`, which
the checkpoint stores. Importing this module does not import torch.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from typing import Any

from ..models.preprocess import Preprocess

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "plateau", "none")
CLASS_WEIGHTS = ("none", "balanced", "sqrt")
TTA_MODES = ("none", "flip", "tencrop")
FERPLUS_MODES = ("majority", "probability", "crossentropy")

#: Options that define what the weights are; ``--resume`` takes them from the stored run.
RUN_IDENTITY = ("model", "model_kwargs", "input_size", "image_size", "mean", "std", "classes")


@dataclass
class TrainArgs:
    """Every option of a training run (written to ``config.json`` beside the checkpoint).

    Sizes are pixels, ``lr`` is the peak learning rate, ``warmup_epochs`` / ``epochs`` /
    ``patience`` count epochs, ``mean`` / ``std`` normalise grey levels scaled to [0, 1].
    """

    data: str
    out: str
    dataset: str = "fer2013"  # a name of ferbatch.train.datasets.DATASETS
    ferplus: str | None = None  # path of fer2013new.csv for dataset=ferplus
    ferplus_mode: str = "majority"  # one of FERPLUS_MODES
    val_data: str | None = None  # for dataset=folder: a separate validation folder
    classes: list[str] | None = None
    model: str = "vgg_gap"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None
    init: str | None = None  # checkpoint (name or path) whose weights start the run
    image_size: int = Preprocess.image_size
    input_size: int = Preprocess.input_size
    mean: float = Preprocess.mean
    std: float = Preprocess.std
    epochs: int = 50
    batch_size: int = 128
    optimizer: str = "sgd"  # one of OPTIMIZERS
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # one of SCHEDULES
    warmup_epochs: int = 1
    augment: str = "standard"
    mixup: float = 0.0
    label_smoothing: float = 0.1
    class_weights: str = "none"  # one of CLASS_WEIGHTS
    patience: int = 0  # early stopping on validation accuracy; 0 = off
    eval_test: bool = False  # evaluate best.pt on the test split (FER2013: PrivateTest) at the end
    eval_tta: str = "none"  # one of TTA_MODES
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    threads: int = 0
    resume: bool = False
    limit: int = 0  # use only the first N training images (tests, smoke runs)
    crop_scale: float = Preprocess.crop_scale
    crop_shift_y: float = Preprocess.crop_shift_y
    half_weights: bool = True  # store best.pt weights as fp16 (half the size, same accuracy)
    snapshot_from: int = 0  # keep the weights of every epoch from this one on (1-based); 0 = none
    teacher: list[str] = field(default_factory=list)  # distil from these checkpoints (names/paths)
    kd_alpha: float = 0.5  # weight of the distillation term (0: labels only, 1: teachers only)
    kd_temperature: float = 4.0  # softmax temperature of the distillation term
    quiet: bool = False

    def preprocess(self) -> Preprocess:
        """The run's one :class:`Preprocess`: what training feeds the model and what the
        checkpoint tells inference to do."""
        return Preprocess(image_size=self.image_size, input_size=self.input_size,
                          mean=self.mean, std=self.std, crop_scale=self.crop_scale,
                          crop_shift_y=self.crop_shift_y)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy of every field (``config.json``, ``Checkpoint.train_config``)."""
        return dataclasses.asdict(self)


def field_default(cls: type, name: str) -> Any:
    """The default of dataclass field ``name`` of ``cls`` (calling a ``default_factory``).

    Raises :class:`KeyError` for an unknown field or one without a default.
    """
    spec = cls.__dataclass_fields__[name]  # type: ignore[attr-defined]
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    raise KeyError(f"{cls.__name__}.{name} has no default")


def non_default(args: TrainArgs) -> set[str]:
    """Names of the fields of ``args`` that differ from their defaults (``data``/``out``
    always count): the options a caller of the Python API evidently chose."""
    out = set()
    for spec in fields(TrainArgs):
        try:
            default = field_default(TrainArgs, spec.name)
        except KeyError:
            out.add(spec.name)
            continue
        if getattr(args, spec.name) != default:
            out.add(spec.name)
    return out


#: Fields left out of a rendered command line (run control, not configuration).
_NOT_RENDERED = {"data", "out", "resume", "quiet", "limit"}


def command_line(args: TrainArgs, out: str) -> list[str]:
    """``ferbatch train`` arguments that reproduce ``args`` into ``out``.

    Options at their default are left out; the option of field ``x_y`` is ``--x-y`` (booleans
    ``--x-y`` / ``--no-x-y``, ``model_kwargs`` one ``--model-kw KEY=JSON`` per key, ``classes``
    comma-separated, ``teacher`` one ``--teacher NAME`` per entry), which is how
    :mod:`ferbatch.cli_train` names them.
    """
    parts = ["ferbatch", "train", "--data", args.data, "--out", out]
    for spec in fields(TrainArgs):
        name, value = spec.name, getattr(args, spec.name)
        if name in _NOT_RENDERED or value == field_default(TrainArgs, name):
            continue
        flag = "--" + name.replace("_", "-")
        if name == "model_kwargs":
            for key, item in value.items():
                parts += ["--model-kw", f"{key}={json.dumps(item)}"]
        elif isinstance(value, bool):
            parts.append(flag if value else "--no-" + name.replace("_", "-"))
        elif name == "classes":
            parts += [flag, ",".join(value)]
        elif name == "teacher":
            for teacher in value:
                parts += [flag, teacher]
        elif isinstance(value, float):
            parts += [flag, repr(value)]  # shortest exact spelling
        else:
            parts += [flag, str(value)]
    return parts
