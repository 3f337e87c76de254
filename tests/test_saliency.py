"""Grad-CAM explanations (ferbatch.saliency, ``ferbatch.explain``, ``ferbatch explain``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import ferbatch
from ferbatch.cli import cli
from ferbatch.errors import FerbatchError
from ferbatch.saliency import explain_face, last_conv_layer, load_explainer, overlay


@pytest.fixture(scope="module")
def clf():
    return load_explainer()


@pytest.fixture(scope="module")
def grey_face(face_image):
    """The astronaut's face as a 48×48 grey crop."""
    return cv2.resize(cv2.cvtColor(face_image, cv2.COLOR_RGB2GRAY), (48, 48), interpolation=cv2.INTER_AREA)


def _centre_of_mass(m: np.ndarray) -> tuple[float, float]:
    ys, xs = np.mgrid[:m.shape[0], :m.shape[1]]
    return float((xs * m).sum() / m.sum()), float((ys * m).sum() / m.sum())


def test_map_has_the_crops_shape_and_is_finite(face_image, clf):
    heat = ferbatch.explain(face_image, model=clf)
    assert heat.shape == face_image.shape[:2] and heat.dtype == np.float32
    assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() == pytest.approx(1.0, abs=1e-3)
    grey = cv2.cvtColor(face_image, cv2.COLOR_RGB2GRAY)[:100, :77]
    assert ferbatch.explain(grey, model=clf).shape == (100, 77)


def test_map_moves_with_the_face(grey_face, clf):
    """The same face on the left and on the right of a wider crop: the map's centre of mass
    follows it."""
    com = []
    for x0 in (0, 48):
        canvas = np.full((96, 96), 128, np.uint8)
        canvas[24:72, x0:x0 + 48] = grey_face
        heat = ferbatch.explain(canvas, model=clf)
        assert heat.sum() > 0
        com.append(_centre_of_mass(heat))
    assert com[1][0] - com[0][0] > 12  # pixels, of a 48-pixel shift
    assert abs(com[1][1] - com[0][1]) < 12


def test_map_in_a_frame_stays_on_the_face(face_image, clf):
    """With a box, the face is cropped as the pipeline crops it and the map is warped back:
    nothing outside the crop, its centre of mass inside the box."""
    frame = np.full((400, 600, 3), 90, np.uint8)
    h, w = face_image.shape[:2]
    frame[50:50 + h, 250:250 + w] = face_image
    box = np.array([250 + 0.2 * w, 50 + 0.15 * h, 250 + 0.8 * w, 50 + 0.75 * h])
    ex = explain_face(frame, clf, box=box)
    assert ex.map.shape == (400, 600) and np.isfinite(ex.map).all()
    assert ex.map[:, :200].max() == 0 and ex.map[:, 560:].max() == 0
    cx, cy = _centre_of_mass(ex.map)
    assert box[0] < cx < box[2] and box[1] < cy < box[3]
    assert ex.label in clf.labels and 0 < ex.probability <= 1
    assert explain_face(frame, clf, box=box, target="sad").label == "sad"
    with pytest.raises(FerbatchError, match="not one of the model's"):
        explain_face(frame, clf, box=box, target="bored")


def test_overlay_and_layer(clf, grey_face):
    assert type(last_conv_layer(clf.model)).__name__ in {"ReLU", "BatchNorm2d", "Conv2d"}
    heat = np.zeros((48, 48), np.float32)
    assert (overlay(grey_face, heat)[..., 0] == grey_face).all()  # no heat: the image unchanged
    heat[10:20, 10:20] = 1
    assert not (overlay(grey_face, heat)[10:20, 10:20, 0] == grey_face[10:20, 10:20]).all()


def test_cli_writes_a_png_and_reports_bad_input(user_folder: Path, tmp_path: Path):
    out = tmp_path / "x.png"
    r = CliRunner().invoke(cli, ["explain", str(user_folder / "face.mp4"), "--at", "1.0", "--out", str(out)])
    assert r.exit_code == 0, r.output
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] == 224 and img.shape[1] > 300
    assert "at 1.00 s" in r.output
    r = CliRunner().invoke(cli, ["explain", str(user_folder / "face.mp4"), "--at", "1.0",
                                 "--face-id", "3", "--out", str(out)])
    assert r.exit_code == 1 and "no face 3" in r.output
    r = CliRunner().invoke(cli, ["explain", str(user_folder / "random.mp4"), "--at", "0", "--out", str(out)])
    assert r.exit_code == 1 and "random.mp4" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["explain", str(user_folder / "face.mp4"), "--at", "60", "--out", str(out)])
    assert r.exit_code == 1 and "no frame at 60" in r.output and "the video ends at" in r.output


def test_a_boxed_face_is_explained_on_the_pipelines_own_crop(face_image, clf):
    """The probabilities explained are the run's: the crop is ferbatch.crop.crop_faces'."""
    from ferbatch.crop import crop_faces, to_grey
    from ferbatch.detect import FaceDetector

    frame = np.ascontiguousarray(face_image)
    det = FaceDetector(device="cpu")([frame])[0]
    assert len(det) >= 1
    box, marks = det.boxes[0], det.landmarks[0]
    ex = explain_face(frame, clf, box=box, landmarks=marks)
    crop = crop_faces(to_grey(frame), det.boxes[:1], det.landmarks[:1], clf.preprocess)
    np.testing.assert_allclose(ex.probs, clf(crop)[0], atol=1e-5)


def test_cli_explains_a_still_image(face_image, user_folder: Path, tmp_path: Path):
    """A JPEG/PNG/WebP is its own single frame: no --at; --results (a video's rows) is refused;
    a video still needs --at; a corrupt image is one error line naming it."""
    photo = tmp_path / "astronaut.jpg"
    assert cv2.imwrite(str(photo), cv2.cvtColor(np.ascontiguousarray(face_image), cv2.COLOR_RGB2BGR))
    out = tmp_path / "photo.png"
    r = CliRunner().invoke(cli, ["explain", str(photo), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("happy ") and " at " not in r.output
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] == 224
    r = CliRunner().invoke(cli, ["explain", str(photo), "--results", str(tmp_path), "--out", str(out)])
    assert r.exit_code == 2 and "--results is for a video" in r.output and "is an image" in r.output
    r = CliRunner().invoke(cli, ["explain", str(photo), "--at", "3", "--out", str(out)])
    assert r.exit_code == 2 and "--at is for a video" in r.output
    r = CliRunner().invoke(cli, ["explain", str(user_folder / "face.mp4"), "--out", str(out)])
    assert r.exit_code == 2 and "--at SECONDS is required for a video" in r.output
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    r = CliRunner().invoke(cli, ["explain", str(broken), "--out", str(out)])
    assert r.exit_code == 1 and "broken.jpg: cannot decode JPEG" in r.output
    assert "Traceback" not in r.output
