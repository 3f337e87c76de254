"""Model zoo, metrics, augmentation and the checkpoint round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ferbatch.cli import cli
from ferbatch.errors import ModelError
from ferbatch.models import create_model, list_models
from ferbatch.models.checkpoint import load_checkpoint, save_checkpoint
from ferbatch.train.engine import predict_proba
from ferbatch.train.main import make_checkpoint
from ferbatch.train.metrics import classification_report, confusion_matrix
from ferbatch.train.transforms import PRESETS, augment_batch

from train_fixtures import TINY_MODEL, one_torch_thread, tiny_args  # noqa: F401

# small options so building every model stays quick (the tv_* backbones take no width)
FAST_KWARGS = {"vgg_gap": TINY_MODEL, "resnet18_cifar": {"width": 4}}


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


def test_models_command_lists_registry() -> None:
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split()[0] for line in lines] == list_models()
    assert all(len(line.split()) > 1 for line in lines)  # each has a description


# ---------------------------------------------------------------- metrics vs scikit-learn

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn(seed: int) -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    k = 6
    y = rng.integers(0, k, 400)
    pred = np.where(rng.random(400) < 0.6, y, rng.integers(0, k, 400))
    cm = confusion_matrix(y, pred, k)
    assert np.array_equal(cm, sk.confusion_matrix(y, pred, labels=list(range(k))))
    labels = [f"c{i}" for i in range(k)]
    report = classification_report(cm, labels)
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert report["macro_f1"] == pytest.approx(sk.f1_score(y, pred, average="macro"))
    assert report["weighted_f1"] == pytest.approx(sk.f1_score(y, pred, average="weighted"))
    p, r, f, s = sk.precision_recall_fscore_support(y, pred, labels=list(range(k)),
                                                    zero_division=0)
    for i, name in enumerate(labels):
        m = report["per_class"][name]
        assert (m["precision"], m["recall"], m["f1"], m["support"]) == pytest.approx(
            (p[i], r[i], f[i], s[i]))
    assert report["n"] == 400 and report["confusion_matrix"] == cm.tolist()


# ---------------------------------------------------------------- augmentation

@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_augment_batch_shape_range_determinism(preset: str) -> None:
    images = torch.randint(0, 256, (8, 48, 48), dtype=torch.uint8)
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = augment_batch(images, 40, PRESETS[preset], gen_a)
    b = augment_batch(images, 40, PRESETS[preset], gen_b)
    assert a.shape == (8, 1, 40, 40) and a.dtype == torch.float32
    assert float(a.min()) >= 0.0 and float(a.max()) <= 255.0
    assert torch.equal(a, b)
    if preset != "none":
        c = augment_batch(images, 40, PRESETS[preset], torch.Generator().manual_seed(4))
        assert not torch.equal(a, c)
    else:  # no augmentation = the centre crop
        assert torch.allclose(a, images[:, 4:44, 4:44].float().unsqueeze(1), atol=1e-3)


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
