"""``ferbatch export`` (ONNX fp32 / int8) and the ``onnxruntime`` classification backend, on real
faces: the astronaut's crop and, where ../shared is present, FER2013's PublicTest/PrivateTest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ferbatch.classify import EmotionClassifier
from ferbatch.cli import cli
from ferbatch.crop import crop_faces, to_grey
from ferbatch.errors import ConfigError, ModelError

from clips import face_scene

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from ferbatch.export import OnnxEmotionModel, export_model  # noqa: E402


@pytest.fixture(scope="module")
def real_crops(stages, face_image: np.ndarray) -> np.ndarray:
    """The astronaut's face cropped as the pipeline does, plus 15 noise faces (16×48×48 uint8)."""
    frame = face_scene(face_image, (100, 80))
    (d,) = stages.detector([frame])
    crop = crop_faces(to_grey(frame), d.boxes, d.landmarks, stages.classifier.preprocess)
    noise = np.random.default_rng(1).integers(0, 256, (15, 48, 48), dtype=np.uint8)
    return np.concatenate([crop[:1], noise])


@pytest.fixture(scope="module")
def fp32_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "default.onnx"
    report = export_model("default", out)
    assert report.max_abs_diff_fp32 <= 1e-4 and report.size_bytes == out.stat().st_size
    return out


def test_fp32_export_is_self_describing_with_a_dynamic_batch_axis(fp32_file: Path) -> None:
    model = onnx.load(str(fp32_file))
    meta = {p.key: p.value for p in model.metadata_props}
    clf = EmotionClassifier("default", device="cpu")
    assert meta["ferbatch.format"] == "ferbatch-onnx/1"
    assert json.loads(meta["labels"]) == clf.labels
    assert json.loads(meta["preprocess"])["input_size"] == clf.preprocess.input_size
    assert float(meta["temperature"]) == pytest.approx(clf.temperature)
    assert meta["source_sha256"] == clf.sha256
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param == "batch" and not batch_dim.HasField("dim_value")
    assert [o.name for o in model.graph.output] == ["logits", "probabilities"]


def test_onnx_runtime_matches_pytorch_on_a_real_face_at_any_batch_size(
        fp32_file: Path, real_crops: np.ndarray) -> None:
    clf = EmotionClassifier("default", device="cpu")
    session = OnnxEmotionModel(fp32_file)
    assert session.labels == clf.labels
    want = clf(real_crops)
    for n in (1, 3, len(real_crops)):
        np.testing.assert_allclose(session(real_crops[:n]), want[:n], atol=1e-4, rtol=0)
    assert clf.labels[int(session(real_crops[:1])[0].argmax())] == "happy"
    one = real_crops[0].copy()
    one.flags.writeable = False  # e.g. np.asarray of a PIL image: read-only, no warning
    np.testing.assert_allclose(session(one), want[:1], atol=1e-4, rtol=0)
    for bad, why in ((real_crops.astype(np.float32) / 255, "float32 16×48×48"),
                     (np.zeros((2, 64, 64), np.uint8), "uint8 2×64×64"),
                     (np.zeros((2, 48, 48, 3), np.uint8), "uint8 2×48×48×3")):
        with pytest.raises(ValueError, match=f"must be uint8 N×48×48 .*got {why}"):
            session(bad)


def test_onnxruntime_backend_of_the_classifier_matches_torch(real_crops: np.ndarray) -> None:
    torch_clf = EmotionClassifier("default", device="cpu", tta_flip=True)
    ort_clf = EmotionClassifier("default", device="cpu", tta_flip=True, backend="onnxruntime")
    np.testing.assert_allclose(ort_clf(real_crops), torch_clf(real_crops), atol=1e-4, rtol=0)
    assert ort_clf.name == torch_clf.name  # same model, same provenance
    with pytest.raises(ConfigError, match="backend"):
        EmotionClassifier("default", device="cpu", backend="tensorrt")


def test_export_refuses_int8_without_calibration_data(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--int8 needs --data"):
        export_model("default", tmp_path / "m.onnx", int8=True)
    result = CliRunner().invoke(cli, ["export", "--int8", "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1 and "--int8 needs --data" in result.output
    assert not (tmp_path / "m.onnx").exists()


def test_export_says_each_step_on_stderr_unless_quiet(tmp_path: Path) -> None:
    """The CLI prints a line as each step starts (stderr; stdout keeps the results); ``-q``
    silences them and changes nothing else."""
    loud = CliRunner().invoke(cli, ["export", "--out", str(tmp_path / "a.onnx")])
    assert loud.exit_code == 0, loud.output
    assert loud.stderr.splitlines() == [
        f"exporting {EmotionClassifier('default', device='cpu').name} to ONNX …",
        "checking ONNX Runtime against PyTorch on 256 random noise faces …"]
    assert loud.stdout.startswith(f"wrote {tmp_path / 'a.onnx'} (fp32, ")
    quiet = CliRunner().invoke(cli, ["export", "-q", "--out", str(tmp_path / "b.onnx")])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert quiet.stdout.replace("b.onnx", "a.onnx") == loud.stdout
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def test_loading_a_foreign_or_broken_onnx_file_names_it(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)]),
              str(foreign))
    with pytest.raises(ModelError, match="foreign.onnx: not an ONNX model exported by ferbatch"):
        OnnxEmotionModel(foreign)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx at all")
    with pytest.raises(ModelError, match="broken.onnx"):
        OnnxEmotionModel(broken)


@pytest.mark.slow
@pytest.mark.shared
def test_int8_export_keeps_privatetest_accuracy_within_one_point(shared_dir: Path, tmp_path: Path) -> None:
    """Calibrated on PublicTest, scored on all of PrivateTest (the README's figures)."""
    data = shared_dir / "data" / "fer2013" / "fer2013.csv.gz"
    if not data.is_file():
        pytest.skip(f"FER2013 not found: {data}")
    out = tmp_path / "int8.onnx"
    result = CliRunner().invoke(cli, ["export", "--int8", "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "int8 (calibrated on 1000 PublicTest faces)" in result.stdout
    # each step says what it does while it runs (the export takes minutes)
    assert [line.split(" ")[0] for line in result.stderr.splitlines()] == [
        "exporting", "reading", "checking", "quantising", "scoring"], result.stderr
    assert "quantising to int8, calibrated on 1000 PublicTest faces …" in result.stderr
    session = OnnxEmotionModel(out)
    q = session.info.quantization
    assert q["privatetest_n"] == 3589
    assert q["privatetest_accuracy_fp32"] - q["privatetest_accuracy_int8"] <= 0.01
    assert q["privatetest_accuracy_int8"] > 0.6  # a working classifier, not a broken quantisation


def test_a_video_run_with_the_onnxruntime_backend_gives_the_torch_rows(user_folder: Path, stages) -> None:
    from ferbatch.config import ClassifyConfig, RunConfig
    from ferbatch.pipeline import Stages, process_video

    config = RunConfig(device="cpu", classify=ClassifyConfig(backend="onnxruntime"))
    ort_stages = Stages(config)
    clip = user_folder / "face.mp4"
    want = process_video(clip, RunConfig(device="cpu"), stages=stages).faces
    got = process_video(clip, config, stages=ort_stages).faces
    assert got.num_rows == want.num_rows > 0
    assert got.column("emotion").to_pylist() == want.column("emotion").to_pylist()
    for label in stages.labels:
        np.testing.assert_allclose(got.column(f"p_{label}").to_numpy(),
                                   want.column(f"p_{label}").to_numpy(), atol=1e-4, rtol=0)
    assert ort_stages.fingerprint == stages.fingerprint  # a backend does not change the rows
