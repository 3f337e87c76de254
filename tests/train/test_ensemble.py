"""Logit-averaging ensembles (``ferbatch.models.ensemble``, ``ferbatch ensemble``): the result
computes the mean of its members' logits, loads as an ordinary checkpoint everywhere (the
classifier with its folded batch-norm, Grad-CAM) and refuses members that do not belong
together, naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ferbatch.classify import EmotionClassifier
from ferbatch.cli import cli
from ferbatch.errors import ModelError
from ferbatch.models import create_model
from ferbatch.models.checkpoint import Checkpoint, Preprocess, load_checkpoint, save_checkpoint
from ferbatch.models.ensemble import make_ensemble
from ferbatch.saliency import explain_face, gradcam_layers

LABELS = ["angry", "happy", "sad"]


def _member(seed: int, width: int = 4, labels: list[str] = LABELS,
            pre: Preprocess | None = None, **kw: int) -> Checkpoint:
    torch.manual_seed(seed)
    model = create_model("vgg_gap", num_classes=len(labels), input_size=40, width=width,
                         convs_per_block=1, **kw).eval()
    for m in model.modules():  # non-trivial batch-norm statistics, so folding them matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return Checkpoint(arch="vgg_gap", arch_kwargs={"width": width, "convs_per_block": 1, **kw},
                      labels=list(labels), preprocess=pre or Preprocess(input_size=40),
                      state_dict={k: v.clone() for k, v in model.state_dict().items()},
                      train_config={"seed": seed}, metrics={"val": {"accuracy": 0.5}})


def test_the_ensemble_is_the_mean_of_its_members_logits() -> None:
    a, b = _member(0), _member(1, width=6)  # widths may differ
    ens = make_ensemble([("a.pt", a), ("b.pt", b)])
    assert ens.arch == "vgg_gap_ensemble" and ens.arch_kwargs["widths"] == [4, 6]
    assert ens.calibration == {} and ens.metrics == {}
    members = ens.extra["ensemble"]["members"]
    assert [m["file"] for m in members] == ["a.pt", "b.pt"]
    assert members[1]["weights_sha256"] == b.weights_sha256()
    assert members[0]["train_config"] == {"seed": 0}
    x = torch.randn(5, 1, 40, 40)
    with torch.no_grad():
        want = (a.build()(x) + b.build()(x)) / 2
        got = ens.build()(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # a member's own output is not the ensemble's (the test can fail)
    assert not torch.allclose(got, a.build()(x).detach(), atol=1e-3)


def test_the_pipeline_classifier_loads_it_and_folds_its_batch_norm(tmp_path: Path) -> None:
    a, b = _member(0), _member(1)
    path = save_checkpoint(make_ensemble([("a.pt", a), ("b.pt", b)]), tmp_path / "ens.pt")
    clf = EmotionClassifier(str(path), device="cpu")
    faces = np.random.default_rng(0).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    probs = clf(faces)
    assert probs.shape == (6, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    x = clf.preprocess.to_input(torch.from_numpy(faces))
    with torch.no_grad():
        mean = (a.build()(x) + b.build()(x)) / 2
    np.testing.assert_allclose(probs, torch.softmax(mean, 1).numpy(), atol=1e-4)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in clf.model.modules()) == 2 * 4
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in clf.inference_model.modules())


def test_gradcam_weighs_every_members_last_layer(tmp_path: Path) -> None:
    ens = make_ensemble([("a.pt", _member(0)), ("b.pt", _member(1))])
    model = ens.build()
    layers = gradcam_layers(model)
    assert len(layers) == 2 and layers[0] is not layers[1]
    assert all(any(layer is m for m in member.modules())
               for layer, member in zip(layers, model.members))
    path = save_checkpoint(ens, tmp_path / "ens.pt")
    face = np.random.default_rng(1).integers(0, 256, (64, 64), dtype=np.uint8)
    ex = explain_face(face, EmotionClassifier(str(path), device="cpu"))
    assert ex.map.shape == (64, 64) and np.isfinite(ex.map).all()
    assert 0.0 <= ex.map.min() and ex.map.max() <= 1.0
    assert ex.label in LABELS


@pytest.mark.parametrize("other, reason", [
    (lambda: _member(2, labels=["angry", "happy", "fear"]), "labels"),
    (lambda: _member(2, pre=Preprocess(input_size=36)), "input_size"),
    (lambda: _member(2, pre=Preprocess(input_size=40, mean=0.4)), "mean"),
    (lambda: _member(2, dropout=0.5), "dropout"),
])
def test_members_that_do_not_belong_together_are_refused(other, reason: str) -> None:
    with pytest.raises(ModelError, match=rf"odd\.pt: its (preprocessing )?{reason}"):
        make_ensemble([("a.pt", _member(0)), ("odd.pt", other())])


def test_not_vgg_gap_a_single_member_or_the_same_weights_twice_are_refused() -> None:
    with pytest.raises(ModelError, match="at least two members"):
        make_ensemble([("a.pt", _member(0))])
    with pytest.raises(ModelError, match="copy.pt: the same weights as a.pt"):
        make_ensemble([("a.pt", _member(0)), ("b.pt", _member(1)), ("copy.pt", _member(0))])
    with pytest.raises(ModelError, match="/x/copy.pt: the same weights as /x/a.pt"):
        make_ensemble([("/x/a.pt", _member(0)), ("/x/copy.pt", _member(0))])
    torch.manual_seed(0)
    net = create_model("baseline_cnn", num_classes=3, input_size=40)
    other = Checkpoint(arch="baseline_cnn", arch_kwargs={}, labels=LABELS,
                       preprocess=Preprocess(input_size=40), state_dict=net.state_dict())
    with pytest.raises(ModelError, match="cnn.pt: an ensemble member must be a vgg_gap"):
        make_ensemble([("a.pt", _member(0)), ("cnn.pt", other)])


def test_cli_writes_a_checkpoint_and_names_a_bad_member(tmp_path: Path) -> None:
    a = save_checkpoint(_member(0), tmp_path / "a.pt")
    b = save_checkpoint(_member(1), tmp_path / "b.pt")
    out = tmp_path / "ens.pt"
    res = CliRunner().invoke(cli, ["ensemble", str(a), str(b), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "2 members (vgg_gap widths [4, 4])" in res.output
    assert load_checkpoint(out).arch == "vgg_gap_ensemble"
    bad = tmp_path / "notes.pt"
    bad.write_text("not a model\n")
    res = CliRunner().invoke(cli, ["ensemble", str(a), str(bad), "--out", str(tmp_path / "x.pt")])
    assert res.exit_code == 1 and "notes.pt" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.pt").exists()


def test_cli_never_replaces_a_special_file(tmp_path: Path) -> None:
    """``--out /dev/full`` once replaced the device with a regular file (an atomic rename); a
    FIFO stands in for the device here."""
    import os
    import stat

    a = save_checkpoint(_member(0), tmp_path / "a.pt")
    b = save_checkpoint(_member(1), tmp_path / "b.pt")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for out, reason in [(str(fifo), f"cannot write {fifo}: it exists and is not a regular file"),
                        ("", "cannot write an empty path")]:
        res = CliRunner().invoke(cli, ["ensemble", str(a), str(b), "--out", out])
        assert res.exit_code == 1 and reason in res.output, res.output
    assert stat.S_ISFIFO(fifo.stat().st_mode)
