"""The emotion classifier (``ferbatch.classify``): labels, probabilities, batching, a real face."""

from __future__ import annotations

import numpy as np

from ferbatch.classify import EmotionClassifier
from ferbatch.crop import crop_faces, to_grey
from ferbatch.models.checkpoint import load_checkpoint

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
