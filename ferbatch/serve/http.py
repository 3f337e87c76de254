"""HTTP plumbing of ``ferbatch serve`` (FastAPI / Starlette): JSON errors, the bearer token,
bodies read with a size limit, uploads taken from a raw body or a multipart form.

Every error a client can cause is an :class:`HTTPError`, answered as
``{"error": "...", "status": N}``; anything else becomes a 500 with a one-line message (the
traceback goes to the replica's log, never to the client).
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse

log = logging.getLogger(__name__)

MULTIPART = "multipart/form-data"


class HTTPError(Exception):
    """A client error: HTTP ``status`` and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def check_token(request: Request, token: str | None) -> None:
    """401 unless ``Authorization: Bearer <token>`` matches (no token configured: all pass)."""
    if token is None:
        return
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if not given:
        raise HTTPError(401, "missing Authorization header: send 'Authorization: Bearer <token>'")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise HTTPError(401, "wrong token in the Authorization header")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, at most ``max_bytes`` (413 past that, checked on Content-Length first
    and again while reading, so an oversized upload is never held whole)."""
    limit_mb = max_bytes / 2**20
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPError(413, f"request body of {int(declared) / 2**20:.1f} MiB is larger than "
                             f"the limit of {limit_mb:g} MiB (--max-body-mb)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPError(413, f"request body is larger than the limit of {limit_mb:g} MiB "
                                 f"(--max-body-mb)")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class Upload:
    """One uploaded file: its bytes, declared media type and name (for messages)."""

    data: bytes
    content_type: str
    name: str


async def read_upload(request: Request, max_bytes: int, field: str = "file") -> Upload:
    """The uploaded file of a raw body (``Content-Type`` its media type) or of a multipart form
    (the part named ``field``, else the only file part). 400 for an empty body or a form
    without a file."""
    body = await read_body(request, max_bytes)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != MULTIPART:
        if not body:
            raise HTTPError(400, "empty request body: send the file as the body or as a "
                                 "multipart form field 'file'")
        return Upload(body, content_type, "request body")

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=4, max_fields=32)
    except Exception as exc:  # noqa: BLE001 - python-multipart's parse errors
        raise HTTPError(400, f"malformed multipart form: {exc}") from exc
    files = [(key, value) for key, value in form.multi_items() if hasattr(value, "read")]
    chosen = next((v for k, v in files if k == field), files[0][1] if len(files) == 1 else None)
    if chosen is None:
        raise HTTPError(400, f"multipart form has no file field {field!r}"
                        + (f" (fields: {', '.join(k for k, _ in files)})" if files else ""))
    data = await chosen.read()
    if not data:
        raise HTTPError(400, f"uploaded file {chosen.filename or field!r} is empty")
    return Upload(data, (chosen.content_type or "").split(";")[0].strip().lower(),
                  chosen.filename or field)
