"""The one Serve application of the test session: started on first use on the suite's shared Ray
instance (``ray_session``), on a free loopback port, with a bearer token; stopped at the end.

The replica reserves no CPU (``cpus_per_replica=0``) so the Ray tests that run after it still
find the instance's 2 CPUs free.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray.serve")
pytest.importorskip("fastapi")

TOKEN = "test-token-7f3a"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def serve_url(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ferbatch.config import ServeConfig
    from ferbatch.serve.server import read_token, start, stop

    token_file: Path = tmp_path_factory.mktemp("serve") / "token"
    token_file.write_text(TOKEN + "\n")
    settings = ServeConfig(host="127.0.0.1", port=free_port(), cpus_per_replica=0, device="cpu",
                           max_body_mb=2, token=read_token(str(token_file)))
    url = start(settings)
    yield url
    stop()
