"""The watched-file reader both token files use (ingest.token_file, openmetadata.jwt_token_file)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from relay._watched_file import WatchedFile


def test_unread_counts_as_changed_and_a_read_settles_it(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"one")
    watched = WatchedFile(path)
    assert watched.changed()
    assert watched.read_bytes() == b"one"
    assert not watched.changed()


def test_a_kubernetes_style_symlink_swap_is_a_change(tmp_path: Path) -> None:
    """A secret volume points `token` at `..data/token` and swaps `..data` atomically."""
    for version, text in (("v1", b"aaaa"), ("v2", b"bbbb")):  # same size on purpose
        (tmp_path / version).mkdir()
        (tmp_path / version / "token").write_bytes(text)
    os.symlink("v1", tmp_path / "..data")
    os.symlink("..data/token", tmp_path / "token")
    watched = WatchedFile(tmp_path / "token")
    assert watched.read_bytes() == b"aaaa"
    os.symlink("v2", tmp_path / "..data_new")
    os.replace(tmp_path / "..data_new", tmp_path / "..data")
    assert watched.changed()
    assert watched.read_bytes() == b"bbbb"


def test_a_same_size_rewrite_with_the_old_mtime_is_still_a_change(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"aaaa")
    before = os.stat(path)
    watched = WatchedFile(path)
    watched.read_bytes()
    path.write_bytes(b"bbbb")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # the ctime moves anyway
    if os.stat(path).st_ctime_ns == before.st_ctime_ns:
        pytest.skip("this file system's ctime did not move (coarse timestamps)")
    assert watched.changed()


def test_a_vanished_file_is_one_change_until_it_comes_back(tmp_path: Path) -> None:
    """Callers keep the last good token and warn once, not on every check while it is gone."""
    path = tmp_path / "token"
    path.write_bytes(b"one")
    watched = WatchedFile(path)
    watched.read_bytes()
    path.unlink()
    assert watched.changed()
    with pytest.raises(FileNotFoundError):
        watched.read_bytes()
    assert not watched.changed()
    path.write_bytes(b"two")
    assert watched.changed()
    assert watched.read_bytes() == b"two"
