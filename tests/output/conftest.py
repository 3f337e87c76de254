"""Fixtures of the output tests: input clips and an object store without rename."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest

from ferbatch.output.location import OutputLocation, resolve_output

import clips


@pytest.fixture(scope="session")
def inputs(tmp_path_factory: pytest.TempPathFactory, face_image: Any) -> dict[str, Path]:
    """A short face clip and a broken file (a failed video)."""
    root = tmp_path_factory.mktemp("uri_videos")
    face = root / "face.mp4"
    clips.make_face_clip(face, face_image, n_frames=8, fps=8, size=(320, 240))
    return {"face": face, "bad": clips.make_zero_byte(root / "bad.mp4")}


class NoRenameHandler(pafs.FSSpecHandler):
    """An object store's semantics: no rename (the protocol must never need one)."""

    def move(self, src: str, dest: str) -> None:
        raise AssertionError(f"rename used on an object store: {src} -> {dest}")


@pytest.fixture()
def memfs() -> Iterator[OutputLocation]:
    """A fresh prefix on an in-memory filesystem (fsspec's store is process-wide)."""
    fsspec_memory = pytest.importorskip("fsspec.implementations.memory")
    mem = fsspec_memory.MemoryFileSystem()
    bucket = f"bucket-{uuid.uuid4().hex[:8]}"
    # a leading "/": fsspec's memory store reports paths so, and pyarrow datasets want them to match
    yield OutputLocation(pafs.PyFileSystem(NoRenameHandler(mem)), f"/{bucket}/out")
    if mem.exists(f"/{bucket}"):
        mem.rm(f"/{bucket}", recursive=True)


@pytest.fixture(params=["object_store", "local"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OutputLocation]:
    """An empty output: on the in-memory object store, then in a local folder."""
    if request.param == "local":
        yield resolve_output(tmp_path / "out")
    else:
        yield request.getfixturevalue("memfs")
