"""Start and stop the Serve application on a Ray instance (joined or started by the caller)."""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request

from ..config import ServeConfig
from ..errors import ConfigError, RunError
from .app import build_app

log = logging.getLogger(__name__)

APP_NAME = "ferbatch"


def read_token(path: str) -> str:
    """The bearer token in ``path`` (surrounding whitespace dropped); :class:`ConfigError` for
    a missing, unreadable or empty file."""
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--token-file {path}: cannot read it: {exc}") from exc
    if not token or any(c.isspace() for c in token):
        raise ConfigError(f"--token-file {path}: holds no token (empty, or whitespace inside)")
    return token


def start(settings: ServeConfig, ready_timeout_s: float = 300.0) -> str:
    """Run the application on the connected Ray instance, listening on ``settings.host`` /
    ``settings.port``; returns its base URL once ``/healthz`` answers. Raises
    :class:`RunError` when it does not come up (the replica's error, e.g. an unreadable model,
    is in the message)."""
    from ray import serve

    host, port = settings.host, settings.port
    if settings.replicas < 1:
        raise ConfigError(f"--replicas must be >= 1, got {settings.replicas}")
    serve.start(http_options={"host": host, "port": port}, logging_config={"log_level": "WARNING"})
    try:
        serve.run(build_app(settings), name=APP_NAME, route_prefix="/", blocking=False)
    except Exception as exc:  # noqa: BLE001 - Serve wraps the replica's constructor error
        serve.delete(APP_NAME, _blocking=False)
        raise RunError(f"the ferbatch serve application did not start: {exc}") from exc
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
    deadline = time.monotonic() + ready_timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as resp:
                if resp.status == 200:
                    return url
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RunError(f"ferbatch serve did not answer on {url}/healthz within {ready_timeout_s:g} s")
        time.sleep(0.2)


def stop() -> None:
    """Remove the application and stop Serve on the connected Ray instance."""
    from ray import serve

    serve.shutdown()
