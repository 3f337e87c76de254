"""``ferbatch serve`` on a real Ray Serve app on loopback: answers on real faces, error codes as
JSON, concurrent requests, and the replica still serving after bad requests."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from clips import face_scene, make_face_clip

#: the token of the session's app (``tests/serve/conftest.py``)
AUTH = {"Authorization": "Bearer test-token-7f3a"}


def call(url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         method: str | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, headers={**AUTH, **(headers or {})}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def encode(image: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def scene(face_image: np.ndarray) -> np.ndarray:
    return face_scene(face_image, (100, 80))


def test_healthz_and_models(serve_url: str) -> None:
    assert call(f"{serve_url}/healthz", headers={"Authorization": ""})[0] == 200
    status, _, body = call(f"{serve_url}/v1/models")
    (model,) = json.loads(body)["models"]
    assert status == 200 and model["labels"][3] == "happy" and len(model["sha256"]) == 64
    assert model["preprocessing"]["image_size"] == 48 and model["temperature"] > 0


@pytest.mark.parametrize("fmt,media", [("JPEG", "image/jpeg"), ("PNG", "image/png"),
                                       ("WEBP", "image/webp")])
def test_image_gives_the_smiling_face_with_box_landmarks_and_probabilities(
        serve_url: str, scene: np.ndarray, fmt: str, media: str) -> None:
    status, headers, body = call(f"{serve_url}/v1/analyze/image", encode(scene, fmt),
                                 {"Content-Type": media})
    assert status == 200, body
    answer = json.loads(body)
    assert answer["width"] == scene.shape[1] and answer["model"].startswith("vgg_gap_ensemble:default.pt:")
    (face,) = answer["faces"]
    x1, y1, x2, y2 = face["box"]
    assert 60 < x1 < x2 < 400 and 40 < y1 < y2 < 400 and face["det_score"] > 0.9
    assert len(face["landmarks"]) == 5 and face["emotion"] == "happy"
    assert face["confidence"] == max(face["probabilities"].values())
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)


def test_real_photo_as_multipart(serve_url: str, shared_dir: Path) -> None:
    photo = shared_dir / "images" / "single_face.jpg"
    if not photo.is_file():
        pytest.skip(f"not found: {photo}")
    boundary = "ferbatchboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"single_face.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() \
        + photo.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    status, _, answer = call(f"{serve_url}/v1/analyze/image", body,
                             {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, answer
    assert len(json.loads(answer)["faces"]) == 1


def test_errors_are_json_4xx_and_the_replica_keeps_serving(serve_url: str, scene: np.ndarray) -> None:
    image = f"{serve_url}/v1/analyze/image"
    cases = [
        (call(image, b"hello", {"Content-Type": "text/plain"}), 415, "not an image"),
        (call(image, b"GIF89a" + b"\0" * 20, {"Content-Type": "application/octet-stream"}), 415,
         "not a JPEG, PNG or WebP"),
        (call(image, b"\xff\xd8\xff\xe0" + b"\0" * 64, {"Content-Type": "image/jpeg"}), 400,
         "cannot decode JPEG"),
        (call(image, b"\xff\xd8\xff" + b"\0" * (3 * 2**20), {"Content-Type": "image/jpeg"}), 413,
         "larger than the limit of 2 MiB"),
        (call(image, b"", {"Content-Type": "image/png"}), 400, "empty request body"),
        (call(image, encode(scene, "PNG"), {"Content-Type": "image/png", "Authorization": ""}),
         401, "missing Authorization"),
        (call(image, encode(scene, "PNG"), {"Content-Type": "image/png",
                                            "Authorization": "Bearer wrong"}), 401, "wrong token"),
        (call(f"{serve_url}/v1/analyze/video?fps=-1", b"x", {"Content-Type": "video/mp4"}), 400,
         "fps must be > 0"),
        (call(f"{serve_url}/v1/analyze/video?every=abc", b"x", {"Content-Type": "video/mp4"}), 400,
         "every"),
        (call(f"{serve_url}/v1/analyze/video", b"not a video", {"Content-Type": "video/mp4"}), 400,
         "cannot analyse the uploaded video"),
        (call(f"{serve_url}/v1/analyze/video", b"x", {"Content-Type": "image/png"}), 415,
         "not a video"),
        (call(f"{serve_url}/nowhere"), 404, "Not Found"),
    ]
    for (status, headers, body), want, text in cases:
        assert status == want, (want, text, body)
        assert headers["content-type"] == "application/json"
        error = json.loads(body)
        assert error["status"] == want and text in error["error"], error
        assert "Traceback" not in error["error"] and "ferbatch-serve-" not in error["error"]
    status, _, body = call(image, encode(scene, "PNG"), {"Content-Type": "image/png"})
    assert status == 200 and json.loads(body)["faces"][0]["emotion"] == "happy"


def test_concurrent_requests_all_answered_alike(serve_url: str, scene: np.ndarray) -> None:
    """12 clients at once (batched by @serve.batch): every answer correct and identical."""
    payloads = [encode(scene, "PNG"), encode(np.ascontiguousarray(scene[:, ::-1]), "JPEG"),
                encode(np.zeros((64, 64, 3), np.uint8), "PNG")]

    def one(i: int) -> tuple[int, dict]:
        status, _, body = call(f"{serve_url}/v1/analyze/image", payloads[i % 3],
                               {"Content-Type": "application/octet-stream"})
        return status, json.loads(body)

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(one, range(12)))
    assert all(status == 200 for status, _ in answers)
    for i, (_, answer) in enumerate(answers):
        assert answer["faces"] == answers[i % 3][1]["faces"]
        assert len(answer["faces"]) == (0 if i % 3 == 2 else 1)


def test_video_timeline_as_json_and_parquet(serve_url: str, clips_dir: Path, face_image: np.ndarray) -> None:
    clip = clips_dir / "serve_face.mp4"
    make_face_clip(clip, face_image, n_frames=12, fps=12, size=(320, 240))
    data = clip.read_bytes()
    status, _, body = call(f"{serve_url}/v1/analyze/video?fps=4", data, {"Content-Type": "video/mp4"})
    assert status == 200, body
    answer = json.loads(body)
    assert answer["video"]["status"] == "ok" and answer["video"]["frames_analyzed"] == 4
    # the request's own sampling, and the geometry / time facts of a videos.parquet row
    assert answer["video"]["sampling"] == "fps=4"
    assert answer["video"]["flip"] == "none" and answer["video"]["time_source"] == "pts"
    assert len(answer["faces"]) == 4 and all(isinstance(f["face_id"], int) for f in answer["faces"])
    assert answer["faces"][0]["emotion"] == "happy" and len(answer["faces"][0]["landmarks"]) == 5
    status, headers, body = call(f"{serve_url}/v1/analyze/video?fps=4", data,
                                 {"Content-Type": "video/mp4",
                                  "Accept": "application/vnd.apache.parquet"})
    assert status == 200 and headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(body))
    assert table.num_rows == 4 and table.column("emotion").to_pylist() == ["happy"] * 4
    assert table.column("timestamp_s").to_pylist() == [f["timestamp_s"] for f in answer["faces"]]


def test_cli_refuses_bad_options_before_starting_anything(tmp_path: Path) -> None:
    """A bad --device / --model / --token-file is a one-line error naming the option, given
    before Ray or Serve start (ServeConfig.run_config, then the token file)."""
    from click.testing import CliRunner

    from ferbatch.cli import cli

    runner = CliRunner()
    for args, option in ((["--device", "tpu"], "device"), (["--model", "no-such-model"], "--model"),
                         (["--token-file", str(tmp_path / "absent")], "--token-file")):
        result = runner.invoke(cli, ["serve", *args, "--address", "127.0.0.1:1"])
        assert result.exit_code == 1 and option in result.output, (args, result.output)
        assert "Traceback" not in result.output
