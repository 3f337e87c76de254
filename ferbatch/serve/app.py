"""The Ray Serve application of ``ferbatch serve``.

One deployment, :class:`EmotionService`, with a FastAPI ingress. Each replica loads the
pipeline's models once (:class:`ferbatch.pipeline.Stages`); images of concurrent requests are
gathered by ``@serve.batch`` into one detector call and one classifier call
(:func:`ferbatch.serve.analysis.analyze_images`). Endpoints:

* ``GET /healthz`` — ``{"status": "ok"}`` (no token needed: for load balancers);
* ``GET /v1/models`` — the model's name, SHA-256, labels, preprocessing, temperature;
* ``POST /v1/analyze/image`` — a JPEG/PNG/WebP body (or multipart field ``file``) → its faces;
* ``POST /v1/analyze/video`` — a short clip (body or multipart), ``?fps=`` / ``?every=`` as
  ``ferbatch run``'s options → the per-face timeline as JSON, or Parquet with
  ``Accept: application/vnd.apache.parquet``.

Errors are JSON (:mod:`.http`): 415 not a supported image/video type, 413 body over
``--max-body-mb``, 400 undecodable, 401 missing/wrong token; the replica keeps serving.
"""

# no `from __future__ import annotations`: FastAPI must see the endpoints' real annotation
# objects (Serve's class-based view rebuilds their signatures outside this module).

import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import RunConfig, ServeConfig
from ..errors import FerbatchError, ImageError, UnsupportedImageError
from .http import HTTPError, check_token, error_response, read_upload

log = logging.getLogger(__name__)

PARQUET = "application/vnd.apache.parquet"
IMAGE_TYPES = {"image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/webp"}
#: media types that say nothing about the content (the bytes decide)
NEUTRAL_TYPES = {"", "application/octet-stream"}
VIDEO_EXTENSIONS = {"video/mp4": ".mp4", "video/quicktime": ".mov", "video/x-matroska": ".mkv",
                    "video/webm": ".webm", "video/x-msvideo": ".avi", "video/mpeg": ".mpg",
                    "video/mp2t": ".ts"}


app = FastAPI(title="ferbatch", summary="Facial-emotion analysis of images and short clips",
              docs_url=None, redoc_url=None)


@app.exception_handler(HTTPError)
async def _client_error(request: Request, exc: HTTPError) -> JSONResponse:
    return error_response(exc.status, exc.message)


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return error_response(exc.status_code, str(exc.detail))


@app.exception_handler(RequestValidationError)
async def _bad_params(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                         for e in exc.errors())
    return error_response(400, f"bad request parameters: {problems}")


@app.exception_handler(Exception)
async def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc,
              exc_info=exc)
    return error_response(500, f"internal error ({type(exc).__name__}); the server log has details")


def _video_config(settings: ServeConfig, fps: float | None, every: int | None) -> RunConfig:
    try:
        return settings.run_config(fps, every)
    except FerbatchError as exc:
        raise HTTPError(400, str(exc).replace("--", "")) from exc


@serve.deployment(name="ferbatch")
@serve.ingress(app)
class EmotionService:
    """A replica: the models loaded once, the endpoints above."""

    def __init__(self, settings: ServeConfig) -> None:
        from ..pipeline import Stages
        from .analysis import model_info

        self.settings = settings
        self.stages = Stages(settings.run_config())
        self.info = model_info(self.stages)
        self._analyze.set_max_batch_size(settings.max_batch_size)
        self._analyze.set_batch_wait_timeout_s(settings.batch_wait_s)
        log.info("replica ready: %s on %s", self.info["name"], self.info["device"])

    @serve.batch(max_batch_size=ServeConfig.max_batch_size,
                 batch_wait_timeout_s=ServeConfig.batch_wait_s)
    async def _analyze(self, images: list[Any]) -> list[list[dict[str, Any]]]:
        """One detector and one classifier call for the images of concurrent requests."""
        from .analysis import analyze_images

        return await asyncio.to_thread(analyze_images, self.stages, images)

    @app.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models(self, request: Request) -> dict[str, Any]:
        check_token(request, self.settings.token)
        return {"models": [self.info]}

    @app.post("/v1/analyze/image")
    async def analyze_image(self, request: Request) -> dict[str, Any]:
        from ..decode.image import decode_image

        check_token(request, self.settings.token)
        upload = await read_upload(request, self.settings.max_body_bytes)
        if upload.content_type not in IMAGE_TYPES | NEUTRAL_TYPES:
            raise HTTPError(415, f"{upload.name}: media type {upload.content_type!r} is not an "
                                 f"image; send image/jpeg, image/png or image/webp")
        try:
            image = await asyncio.to_thread(decode_image, upload.data, upload.name)
        except UnsupportedImageError as exc:
            status = 400 if upload.content_type in IMAGE_TYPES else 415
            raise HTTPError(status, str(exc)) from exc
        except ImageError as exc:
            raise HTTPError(400, str(exc)) from exc
        faces = await self._analyze(image)
        return {"model": self.info["name"], "model_sha256": self.info["sha256"],
                "width": int(image.shape[1]), "height": int(image.shape[0]), "faces": faces}

    @app.post("/v1/analyze/video")
    async def analyze_video(self, request: Request, fps: float | None = None,
                            every: int | None = None) -> Response:
        from .analysis import analyze_video, video_json, video_parquet

        check_token(request, self.settings.token)
        config = _video_config(self.settings, fps, every)
        upload = await read_upload(request, self.settings.max_body_bytes)
        kind = upload.content_type
        if not (kind.startswith("video/") or kind in NEUTRAL_TYPES):
            raise HTTPError(415, f"{upload.name}: media type {kind!r} is not a video; send "
                                 f"video/mp4, video/webm, video/quicktime… or application/octet-stream")
        with tempfile.TemporaryDirectory(prefix="ferbatch-serve-") as tmp:
            clip = Path(tmp) / f"upload{VIDEO_EXTENSIONS.get(kind, '')}"
            clip.write_bytes(upload.data)
            result = await asyncio.to_thread(analyze_video, self.stages, clip, config)
            # the server's temp path means nothing to the client: name its upload instead
            error = str(result.row.get("error") or "").replace(str(clip), upload.name)
        if result.status == "failed":
            raise HTTPError(400, f"cannot analyse the uploaded video: {error}")
        result.row["error"] = error or None
        if PARQUET in request.headers.get("accept", ""):
            return Response(video_parquet(result), media_type=PARQUET)
        return JSONResponse({"model": self.info["name"], "model_sha256": self.info["sha256"],
                             **video_json(result)})


def build_app(settings: ServeConfig) -> Any:
    """The Serve application (``serve.run`` it): ``settings.replicas`` copies of
    :class:`EmotionService`, each reserving ``cpus_per_replica`` / ``gpus_per_replica``."""
    options: dict[str, Any] = {"num_cpus": settings.cpus_per_replica}
    if settings.gpus_per_replica:
        options["num_gpus"] = settings.gpus_per_replica
    return EmotionService.options(num_replicas=settings.replicas,
                                  ray_actor_options=options).bind(settings)
