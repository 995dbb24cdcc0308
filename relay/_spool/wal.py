"""Torn-WAL detection: SQLite's WAL read by us, so that lost transactions are counted."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["WalDamage", "WalPrefix", "inspect_wal", "read_wal_prefix"]

# SQLite silently stops WAL replay at the first frame whose checksum fails, so a torn or
# bit-flipped WAL loses the transactions after it without a word. We read the WAL ourselves
# (format documented at sqlite.org/fileformat2.html#walformat) before SQLite opens it, to count.

_WAL_MAGIC_LE = 0x377F0682
_WAL_MAGIC_BE = 0x377F0683
_WAL_HEADER = 32
_FRAME_HEADER = 24


def _wal_checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


@dataclass(frozen=True, slots=True)
class WalDamage:
    """What `inspect_wal` found. Frames after the first damaged one are lost to SQLite too."""

    damaged_frames: int = 0  # of the current WAL generation, from the first damaged one on
    lost_commits: int = 0  # commit frames after the damage: transactions that had been synced
    uncommitted_frames: int = 0  # intact frames after the last commit (a crash mid-write)

    def __bool__(self) -> bool:
        return self.damaged_frames > 0


def inspect_wal(wal: Path, *, valid: WalPrefix | None = None) -> WalDamage:
    """Find a torn or corrupt tail in the current WAL generation (SQLite drops it silently).

    A partial last frame or a checksum break with no commit after it is what a crash during a
    write leaves (that transaction was never acknowledged); a commit frame after the break means
    synced, acknowledged transactions were damaged later (bad disk, bit flip).

    `valid`: the prefix SQLite itself verified when it opened the WAL (`read_wal_prefix`); only
    the frames after it are checked, seeded with its running checksum, so a large WAL costs a
    header read instead of a pass of Python over every word of it.
    """
    try:
        f = wal.open("rb")
    except FileNotFoundError:
        return WalDamage()
    with f:
        return _scan_wal(f, valid)


@dataclass(frozen=True, slots=True)
class WalPrefix:
    """What SQLite's wal-index header says of the WAL: its first `frames` frames are valid
    (the last of them a commit) and `checksum` is the running checksum after them."""

    frames: int
    checksum: tuple[int, int]
    salt: tuple[int, int]


_WAL_INDEX_VERSION = 3007000
_WAL_INDEX_HEADER = struct.Struct("=IIIBBHII2I2I2I")  # native byte order, 48 bytes
_WAL_INDEX_SALT_OFFSET = 32


def read_wal_prefix(shm: Path) -> WalPrefix | None:
    """The valid WAL prefix from the wal-index (`-shm`) header, as the connection that just
    opened the database left it (documented at sqlite.org/walformat.html, "WAL-index format").

    None when the header cannot be trusted (missing, another version, its two copies differ,
    not initialised): the caller then checks every frame itself.
    """
    try:
        with shm.open("rb") as f:
            raw = f.read(2 * _WAL_INDEX_HEADER.size)
    except OSError:
        return None
    if len(raw) < 2 * _WAL_INDEX_HEADER.size:
        return None
    first, second = raw[: _WAL_INDEX_HEADER.size], raw[_WAL_INDEX_HEADER.size :]
    if first != second:  # a writer was changing it, or it is stale: do not guess
        return None
    (version, _unused, _change, is_init, _big_end, _page, frames, _pages, c0, c1, _salt1, _salt2,
     _h0, _h1) = _WAL_INDEX_HEADER.unpack(first)  # fmt: skip
    if version != _WAL_INDEX_VERSION or not is_init:
        return None
    # SQLite copies the salts byte for byte from the WAL header (big-endian there).
    salt1, salt2 = struct.unpack_from(">2I", first, _WAL_INDEX_SALT_OFFSET)
    return WalPrefix(frames=frames, checksum=(c0, c1), salt=(salt1, salt2))


def _scan_wal(f: BinaryIO, valid: WalPrefix | None = None) -> WalDamage:
    """`inspect_wal` on an open file, a frame at a time (a WAL can be large)."""
    header = f.read(_WAL_HEADER)
    if not header:
        return WalDamage()
    if len(header) < _WAL_HEADER:
        return WalDamage(damaged_frames=1)
    magic, _version, page_size, _seq, salt1, salt2, c0, c1 = struct.unpack(">8I", header)
    if magic not in (_WAL_MAGIC_LE, _WAL_MAGIC_BE):
        return WalDamage(damaged_frames=1)
    big = magic == _WAL_MAGIC_BE
    s0, s1 = _wal_checksum(header[:24], 0, 0, big)
    if (s0, s1) != (c0, c1) or page_size < 512 or page_size & (page_size - 1):
        # A broken header makes SQLite ignore the whole WAL.
        size = f.seek(0, os.SEEK_END)
        frames = (size - _WAL_HEADER) // (_FRAME_HEADER + max(int(page_size), 512))
        return WalDamage(damaged_frames=max(1, frames), lost_commits=max(1, frames))
    frame_size = _FRAME_HEADER + page_size
    if valid is not None and valid.salt == (salt1, salt2) and valid.frames > 0:
        # SQLite checked these frames when it opened the WAL: resume after them.
        f.seek(_WAL_HEADER + valid.frames * frame_size)
        s0, s1 = valid.checksum
    damaged, lost_commits, ok, pending = 0, 0, True, 0
    while True:
        frame = f.read(frame_size)
        if len(frame) < frame_size:
            if frame:
                damaged += 1  # SQLite writes whole frames: a partial one is a torn write
            break
        hdr = frame[:_FRAME_HEADER]
        _pgno, commit, f_salt1, f_salt2, f0, f1 = struct.unpack(">6I", hdr)
        if (f_salt1, f_salt2) != (salt1, salt2):
            break  # an older generation's frame: already checkpointed, not ours to count
        if ok:
            s0, s1 = _wal_checksum(hdr[:8], s0, s1, big)
            s0, s1 = _wal_checksum(frame[_FRAME_HEADER:], s0, s1, big)
            ok = (s0, s1) == (f0, f1)
            pending = 0 if ok and commit else pending + ok
        elif commit:
            lost_commits += 1
        if not ok:
            damaged += 1
    return WalDamage(damaged_frames=damaged, lost_commits=lost_commits, uncommitted_frames=pending)


# ---------------------------------------------------------------------------------------------
# open + recovery
