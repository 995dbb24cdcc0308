"""Events from files: NDJSON lines (spill files, offload objects) or a JSON document.

Pure functions, no I/O. Each event goes through the same envelope check as an HTTP post
(`envelope.event_key`), and its bytes are kept as they are. A line that is not an event
(not JSON, cut short, no envelope) is reported with its line number and reason, never
raised: the caller keeps the good events and quarantines the rest.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field

import orjson

from .._events import EventKey
from .._exceptions import IngestError
from .envelope import event_key, split_batch

__all__ = [
    "BadLine",
    "Parsed",
    "content_key",
    "decompress",
    "gzip_lines",
    "parse_document",
    "parse_ndjson",
]

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class BadLine:
    number: int  # 1-based line number in the (decompressed) file
    reason: str
    raw: bytes


@dataclass(slots=True)
class Parsed:
    items: list[tuple[bytes, EventKey]] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)


def content_key(key: EventKey) -> bytes:
    """The identity of an event's exact bytes (16 bytes of its SHA-256): the same event
    queued twice from files (a spill file, a replayed file or offload) has the same key."""
    return bytes.fromhex(key.body_hash)[:16]


def decompress(data: bytes, *, max_bytes: int) -> bytes:
    """`data`, gunzipped when it starts with the gzip magic; `IngestError` beyond `max_bytes`
    (a gzip bomb stops there) or when the gzip stream is damaged."""
    if not data.startswith(_GZIP_MAGIC):
        return data
    out = zlib.decompressobj(wbits=31)
    try:
        text = out.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise IngestError(400, f"not a valid gzip stream: {exc}") from None
    if len(text) > max_bytes:
        raise IngestError(413, f"more than {max_bytes} bytes once decompressed")
    if not out.eof:
        raise IngestError(400, "the gzip stream is cut short")
    return text


def parse_ndjson(data: bytes) -> Parsed:
    """One event per line; blank lines are skipped, bad lines reported."""
    parsed = Parsed()
    for number, line in enumerate(data.split(b"\n"), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = orjson.loads(line)
            parsed.items.append((line, event_key(obj, line, where=f"line {number}")))
        except orjson.JSONDecodeError as exc:
            parsed.bad.append(BadLine(number, f"line {number} is not JSON: {exc}", line))
        except IngestError as exc:
            parsed.bad.append(BadLine(number, exc.message, line))
    return parsed


def parse_document(data: bytes) -> Parsed:
    """A JSON file as a user would hand it over: one event, an array of events,
    `{"events": [...]}`, or NDJSON (one event per line)."""
    start = data.lstrip()[:1]
    if start == b"[" or start == b"{":
        try:
            whole = orjson.loads(data)
        except orjson.JSONDecodeError:
            whole = None  # NDJSON, most likely: one object per line
        if isinstance(whole, list):
            return _batch(data, wrapped=False)
        if isinstance(whole, dict) and isinstance(whole.get("events"), list):
            return _batch(data, wrapped=True)
        if isinstance(whole, dict):  # one event, maybe pretty-printed over many lines
            body = data.strip()
            try:
                return Parsed(items=[(body, event_key(whole, body))])
            except IngestError as exc:
                return Parsed(bad=[BadLine(1, exc.message, body[:2000])])
    return parse_ndjson(data)


def _batch(data: bytes, *, wrapped: bool) -> Parsed:
    try:
        return Parsed(items=split_batch(data, wrapped=wrapped))
    except IngestError as exc:
        return Parsed(bad=[BadLine(1, exc.message, data[:2000])])


def gzip_lines(bodies: list[bytes]) -> bytes:
    """NDJSON of `bodies`, gzip'd. A body posted pretty-printed carries newlines, which may
    only be whitespace between JSON tokens: they become spaces, the event stays the same."""
    text = b"".join(body.replace(b"\r", b" ").replace(b"\n", b" ") + b"\n" for body in bodies)
    return gzip.compress(text, compresslevel=6)
