"""The model registry and zoo (``ferbatch.models``), the ``models`` command and the checkpoint
round trip (``ferbatch.models.checkpoint``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ferbatch.cli import cli
from ferbatch.errors import ModelError
from ferbatch.models import create_model, is_model, list_models, model_entrypoint
from ferbatch.models.checkpoint import load_checkpoint, save_checkpoint
from ferbatch.train.engine import predict_proba
from ferbatch.train.main import make_checkpoint

from train_data import TINY_MODEL, tiny_args

# small options so building every model stays quick (the tv_* backbones take no width)
FAST_KWARGS = {"vgg_gap": TINY_MODEL, "resnet18_cifar": {"width": 4},
               "vgg_gap_ensemble": {"widths": [4, 4], "convs_per_block": 1}}


@pytest.mark.parametrize("name", list_models())
def test_every_model_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    size = 32  # the smallest face input every architecture takes (5 poolings → 1×1)
    model = create_model(name, num_classes=5, input_size=size, **FAST_KWARGS.get(name, {}))
    model.train()
    x = torch.randn(2, 1, size, size)
    out = model(x)
    assert out.shape == (2, 5)
    out.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads[:1])
    model.eval()
    with torch.no_grad():
        assert model(x[:1]).shape == (1, 5)


def test_unknown_model_and_bad_option() -> None:
    with pytest.raises(ModelError, match="available"):
        create_model("nope", num_classes=7)
    with pytest.raises(ModelError, match="bad options"):
        create_model("vgg_gap", num_classes=7, depth=3)


def test_registry_public_api() -> None:
    names = list_models()
    assert "vgg_gap" in names and names == sorted(names)
    assert is_model("vgg_gap") and not is_model("nope")
    builder = model_entrypoint("vgg_gap")
    assert callable(builder) and builder.__name__ == "vgg_gap"
    with pytest.raises(ModelError, match="available: .*vgg_gap"):
        model_entrypoint("nope")


def test_models_command_lists_registry() -> None:
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    text = result.output.strip()
    assert text.startswith("bundled models (--model NAME):\n  default ")
    lines = text.split("architectures (ferbatch train --model ARCH):\n", 1)[1].splitlines()
    assert [line.split()[0] for line in lines] == list_models()
    assert all(len(line.split()) > 1 for line in lines)  # each has a description


# ---------------------------------------------------------------- checkpoint round trip

@pytest.mark.parametrize("half", [False, True])
def test_checkpoint_round_trip(tmp_path: Path, half: bool) -> None:
    torch.manual_seed(0)
    args = tiny_args(tmp_path / "data.csv", tmp_path, classes=["happy", "sad"])
    labels = ["happy", "sad"]
    model = create_model("vgg_gap", num_classes=2, input_size=40, **TINY_MODEL)
    # non-trivial BN statistics
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 1, 40, 40) * 2 + 0.5)
    model.eval()
    path = save_checkpoint(make_checkpoint(model, args, labels, "hash", {"x": 1},
                                           args.preprocess(), half=half), tmp_path / "m.pt")
    ckpt = load_checkpoint(path)
    assert ckpt.labels == labels and ckpt.arch == "vgg_gap" and ckpt.data_hash == "hash"
    assert ckpt.preprocess.input_size == 40 and ckpt.train_config["classes"] == labels
    faces = torch.randint(0, 256, (6, 48, 48), dtype=torch.uint8)
    kw = dict(device=torch.device("cpu"), preprocess=args.preprocess())
    expected = predict_proba(model, faces, **kw)
    got = predict_proba(ckpt.build(), faces, **kw)
    if half:
        assert torch.allclose(got, expected, atol=2e-2)
    else:
        assert torch.allclose(got, expected, atol=1e-6)
