"""What ``ferbatch run`` does with its inputs, through the CLI: no videos at all is an error,
files left out (a second name of one file, hidden files) are reported, ``partial`` videos are
skipped on a re-run unless ``--retry-partial``, and ids keep the letters of non-ASCII names."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

from click.testing import CliRunner

import ferbatch
from ferbatch.cli import cli
from ferbatch.output.layout import video_id_for

import clips


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["run", *args, "-q", "--local"])
    return result.exit_code, result.output


def test_a_folder_without_videos_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / ".cache").mkdir(parents=True)
    (folder / "notes.txt").write_text("not a video")
    (folder / ".cache" / "clip.mp4").write_bytes(b"hidden")
    code, text = _run(str(folder), "--out", str(tmp_path / "out"))
    assert code == 1
    assert f"Error: no video files in {folder} (folders are searched recursively for" in text
    assert f"1 file skipped: {folder / '.cache' / 'clip.mp4'} (hidden)" in text
    assert not (tmp_path / "out").exists()  # nothing written


def test_second_names_and_hidden_files_are_reported(user_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(user_folder / "noface.mkv", folder / "clip.mkv")
    os.symlink(folder / "clip.mkv", folder / "link.mkv")
    shutil.copy(user_folder / "noface.mkv", folder / ".draft.mkv")
    code, text = _run(str(folder), "--out", str(tmp_path / "out"))
    assert code == 0, text
    assert "1 video: 1 ok" in text
    assert (f"2 files skipped: {folder / '.draft.mkv'} (hidden), {folder / 'link.mkv'} (same file "
            f"as {folder / 'clip.mkv'})") in text.splitlines()


def test_retry_partial_redoes_partial_videos(tmp_path: Path) -> None:
    path = tmp_path / "cut.mkv"
    clips.make_clip(path, n_frames=40, fps=10, size=(160, 120))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    out = str(tmp_path / "out")
    assert _run(str(path), "--out", out)[0] == 1
    code, text = _run(str(path), "--out", out)  # skipped like a complete video
    assert code == 1 and "partial*" in text and "1 already done (*)" in text
    code, text = _run(str(path), "--out", out, "--retry-partial")
    assert code == 1 and "partial*" not in text and "0 already done (*)" in text
    assert ferbatch.load(out).videos["status"].tolist() == ["partial"]


def _old_video_id(path: Path) -> str:
    """video_id_for before the transliteration, for ASCII names."""
    resolved = str(Path(path).resolve())
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem).strip("._-")[:48] or "video"
    return f"{stem}-{hashlib.sha1(resolved.encode()).hexdigest()[:10]}"


def test_video_ids_keep_letters_of_non_ascii_names_and_ascii_ids_are_unchanged(
        user_folder: Path, tmp_path: Path) -> None:
    for name in ("face.mp4", "My Clip (1).final.mov", "__x__.mkv", "a b-c_d.e.mp4", "!!!.mp4"):
        assert video_id_for(tmp_path / name) == _old_video_id(tmp_path / name), name
    named = tmp_path / "été 😀.mkv"
    shutil.copy(user_folder / "noface.mkv", named)
    digest = hashlib.sha1(str(named.resolve()).encode()).hexdigest()[:10]
    assert video_id_for(named) == f"ete-{digest}"
    assert video_id_for(tmp_path / "Ångström Ørsted.mp4").startswith("Angstrom_rsted-")
    assert video_id_for(tmp_path / "😀.mp4").startswith("video-")
    code, text = _run(str(named), "--out", str(tmp_path / "out"))
    assert code == 0, text
    assert ferbatch.load(tmp_path / "out").videos["video_id"].astype(str).tolist() == [f"ete-{digest}"]


def test_a_file_skipped_in_a_folder_is_listed_once_and_only_dropped_when_named(tmp_path: Path) -> None:
    """A FIFO both named and found in a searched folder is the named input alone; a hidden link
    to a file found elsewhere is still listed as hidden."""
    import os

    from ferbatch.runner.plan import find_inputs

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(b"x")
    (folder / ".b.mp4").symlink_to(folder / "a.mp4")
    os.mkfifo(folder / "f.mp4")
    found, ignored = find_inputs([folder / "f.mp4", folder])
    assert found == [folder / "f.mp4", folder / "a.mp4"]
    assert [(i.path.name, i.reason) for i in ignored] == [(".b.mp4", "hidden")]
    found, ignored = find_inputs([folder])
    assert found == [folder / "a.mp4"]
    assert sorted((i.path.name, i.reason) for i in ignored) == [
        (".b.mp4", "hidden"), ("f.mp4", "not a regular file (a FIFO (named pipe))")]
