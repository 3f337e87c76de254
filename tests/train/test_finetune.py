"""``--init``: fine-tuning from a checkpoint copies weights by shape and classifier rows by label."""

from __future__ import annotations

import pytest
import torch

from ferbatch.errors import ConfigError
from ferbatch.models import create_model
from ferbatch.models.checkpoint import Checkpoint, Preprocess
from ferbatch.train.args import TrainArgs
from ferbatch.train.finetune import args_from_init, init_weights

SEVEN = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def _ckpt(labels: list[str]) -> Checkpoint:
    torch.manual_seed(1)
    model = create_model("baseline_cnn", num_classes=len(labels), input_size=40)
    return Checkpoint(arch="baseline_cnn", arch_kwargs={}, labels=labels,
                      preprocess=Preprocess(crop_scale=1.1), state_dict=model.state_dict())


def _head(model: torch.nn.Module) -> tuple[str, torch.Tensor]:
    """The last 2-D weight (the classifier)."""
    return [(k, v) for k, v in model.state_dict().items() if v.ndim == 2][-1]


@pytest.mark.parametrize("labels", [["happy", "sad", "surprise", "neutral"], SEVEN + ["contempt"]])
def test_head_rows_copied_by_label(labels: list[str]) -> None:
    ckpt = _ckpt(SEVEN)
    torch.manual_seed(2)
    model = create_model("baseline_cnn", num_classes=len(labels), input_size=40)
    counts = init_weights(model, ckpt, labels)
    key, head = _head(model)
    old = ckpt.state_dict[key]
    for i, name in enumerate(labels):
        if name in SEVEN:
            assert torch.equal(head[i], old[SEVEN.index(name)])
        else:  # contempt keeps its fresh initialisation
            assert not any(torch.equal(head[i], row) for row in old)
    assert counts["head_rows"] == 2 * sum(n in SEVEN for n in labels)  # weight + bias
    body = [k for k, v in ckpt.state_dict.items() if v.ndim == 4]
    assert all(torch.equal(model.state_dict()[k], ckpt.state_dict[k]) for k in body)


def test_same_labels_copy_everything() -> None:
    ckpt = _ckpt(SEVEN)
    model = create_model("baseline_cnn", num_classes=7, input_size=40)
    init_weights(model, ckpt, SEVEN)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ckpt.state_dict.items())


def test_args_follow_the_checkpoint_unless_given() -> None:
    ckpt = _ckpt(SEVEN)
    args = TrainArgs(data="d", out="o", init="x.pt")
    taken = args_from_init(args, ckpt, explicit={"data", "out", "init"})
    assert (taken.model, taken.crop_scale) == ("baseline_cnn", 1.1)
    assert taken.preprocess() == ckpt.preprocess
    with pytest.raises(ConfigError, match="model .*vgg_gap.*baseline_cnn"):
        args_from_init(TrainArgs(data="d", out="o", init="x.pt", model="vgg_gap"), ckpt,
                       explicit={"data", "out", "init", "model"})
