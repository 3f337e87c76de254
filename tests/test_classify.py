"""The emotion classifier (``ferbatch.classify``): labels, probabilities, batching, a real face,
BatchNorm folding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ferbatch.classify import EmotionClassifier, fold_batch_norm
from ferbatch.crop import crop_faces, to_grey
from ferbatch.models.checkpoint import load_checkpoint
from ferbatch.models.preprocess import center_crop, normalize
from ferbatch.models.registry import create_model, list_models

from clips import face_scene


def test_classifier_uses_the_checkpoint_labels_and_returns_probabilities() -> None:
    clf = EmotionClassifier(None, device="cpu", batch_size=7)
    assert clf.labels == load_checkpoint(None).labels
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 255, (20, 48, 48), dtype=np.uint8)
    probs = clf(faces)
    assert probs.shape == (20, len(clf.labels)) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    # batching does not change results
    np.testing.assert_allclose(EmotionClassifier(None, device="cpu", batch_size=256)(faces), probs, atol=1e-5)
    assert clf(np.zeros((0, 48, 48), np.uint8)).shape == (0, len(clf.labels))


def test_classifier_reads_a_smiling_real_face_as_happy(stages, face_image: np.ndarray) -> None:
    """The astronaut (Eileen Collins) smiles broadly in the photo: the bundled model says so."""
    frame = face_scene(face_image, (100, 80))
    (d,) = stages.detector([frame])
    clf = stages.classifier  # the bundled model on the CPU
    crops = crop_faces(to_grey(frame), d.boxes, d.landmarks, clf.preprocess)
    probs = clf(crops)
    assert clf.labels[int(probs[0].argmax())] == "happy"


def _batch_norms(model: torch.nn.Module) -> int:
    return sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


@pytest.mark.parametrize("arch", list_models())
def test_folding_batch_norm_keeps_every_architecture_s_function(arch: str) -> None:
    """Every registered network: each BatchNorm2d after a convolution is folded away, the
    logits stay the same (BatchNorm statistics made non-trivial first), the original is intact."""
    torch.manual_seed(0)
    model = create_model(arch, num_classes=7, input_size=40).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    before = _batch_norms(model)
    folded = fold_batch_norm(model)
    x = torch.randn(3, 1, 40, 40)
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), model(x), atol=1e-4, rtol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert _batch_norms(model) == before  # Grad-CAM and export still see the trained network


def test_the_classifier_runs_the_folded_network_with_the_same_probabilities() -> None:
    """The stage's probabilities are those of the checkpoint's network as trained."""
    clf = EmotionClassifier(None, device="cpu")
    assert _batch_norms(clf.model) > 0 and _batch_norms(clf.inference_model) == 0
    faces = np.random.default_rng(1).integers(0, 255, (9, 48, 48), dtype=np.uint8)
    pre = clf.preprocess
    x = normalize(center_crop(torch.from_numpy(faces), pre.input_size), pre.mean, pre.std)
    with torch.inference_mode():
        expected = torch.softmax(load_checkpoint(None).build()(x) / clf.temperature, 1).numpy()
    np.testing.assert_allclose(clf(faces), expected, atol=1e-5)


def test_a_network_fx_cannot_trace_runs_unfolded() -> None:
    class DataDependent(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.bn(self.conv(x))
            return y if bool(y.sum() > 0) else -y  # control flow on values: fx cannot trace it

    model = DataDependent().eval()
    assert fold_batch_norm(model) is model
