"""Read a request body within bounds: size on the wire, size decompressed, time.

gzip is recognised by `Content-Encoding: gzip` and, because some OpenLineage Java
clients have sent gzip bodies without that header, by the gzip magic bytes
`1f 8b` (no JSON text can start with them). Decompression is streamed with an
output cap, so a gzip bomb costs at most `max_body_bytes` of memory before it is
refused with 413.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import PayloadEncodingError

from .._exceptions import IngestError
from .limits import Hold, Pace

__all__ = ["BadGzip", "Body", "BodyLimits", "IncompleteBody", "read_body"]

_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_FEED_SLICE_BYTES = 2048
# Clients send one member; a few concatenated ones are legal, 400k empty ones cost seconds.
_MAX_GZIP_MEMBERS = 1024


class BadGzip(IngestError):
    """The body is not gzip, or a truncated one, although it claims or looks to be."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


class IncompleteBody(IngestError):
    """The client went away, or declared more than it sent; nobody may read the answer."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


@dataclass(frozen=True, slots=True, kw_only=True)
class BodyLimits:
    max_body_bytes: int  # decompressed
    max_compressed_bytes: int  # on the wire, when gzip
    read_timeout_s: float  # the whole body must arrive within this
    min_bytes_per_s: int = 0  # after grace_s, on average since the start; 0 = no minimum
    grace_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Body:
    data: bytes  # decompressed
    wire_bytes: int
    gzip: bool


async def read_body(request: web.BaseRequest, limits: BodyLimits, hold: Hold) -> Body:
    """The request's decompressed body, or `IngestError` (400, 408, 413, 415, 503).

    `hold` is charged the decompressed bytes as they accumulate (503 beyond the budget);
    the caller releases it once the request is answered.
    """
    declared_gzip = _declared_gzip(request.headers.getall("Content-Encoding", []))
    wire_limit = limits.max_compressed_bytes if declared_gzip else limits.max_body_bytes
    length = request.content_length
    if length is not None and length > wire_limit:
        raise _too_large(length, wire_limit, compressed=declared_gzip)
    try:
        if request.content.is_eof():
            # The whole body is already buffered (the usual case for an event of a few
            # KiB): taken in one piece, no read loop, and no timer (nothing can stall).
            body = _Accumulator(limits, hold, declared_gzip=declared_gzip)
            body.feed(request.content.read_nowait())
            return body.finish()
        loop = asyncio.get_running_loop()
        pace = Pace(loop.time(), limits.read_timeout_s, limits.min_bytes_per_s, limits.grace_s)
        progress = _Progress(pace)
        try:
            async with asyncio.timeout_at(pace.deadline(0)) as timer:
                progress.timer = timer
                return await _read(request, limits, hold, progress, declared_gzip=declared_gzip)
        except TimeoutError:
            raise pace.expired(loop.time(), progress.wire_bytes) from None
    except (ConnectionError, PayloadEncodingError) as exc:
        raise IncompleteBody(f"the request body was cut short: {exc}") from None


class _Progress:
    """Moves the read's deadline as the body arrives (see `Pace`)."""

    __slots__ = ("pace", "timer", "wire_bytes")

    def __init__(self, pace: Pace) -> None:
        self.pace = pace
        self.timer: asyncio.Timeout | None = None
        self.wire_bytes = 0

    def advance(self, wire_bytes: int) -> None:
        self.wire_bytes = wire_bytes
        if self.timer is not None:
            self.timer.reschedule(self.pace.deadline(wire_bytes))


class _Accumulator:
    """The body as its bytes arrive: gzip recognised by its header or its magic bytes, the
    size limit of either, the in-flight budget charged as the decompressed body grows."""

    __slots__ = ("_gunzip", "_hold", "_limits", "_plain", "_undecided", "_wire_limit", "wire")

    def __init__(self, limits: BodyLimits, hold: Hold, *, declared_gzip: bool) -> None:
        self.wire = 0
        self._limits = limits
        self._hold = hold
        self._gunzip: _Gunzip | None = _Gunzip(limits.max_body_bytes) if declared_gzip else None
        # Without the header, the first two bytes decide; a chunk may hold just one of them.
        self._undecided = not declared_gzip
        self._plain = bytearray()
        self._wire_limit = limits.max_compressed_bytes if declared_gzip else limits.max_body_bytes

    def feed(self, chunk: bytes) -> None:
        self.wire += len(chunk)
        if self._undecided:
            self._plain += chunk
            if len(self._plain) < len(_GZIP_MAGIC):
                return
            self._undecided = False
            if self._plain.startswith(_GZIP_MAGIC):
                self._gunzip = _Gunzip(self._limits.max_body_bytes)
                self._wire_limit = self._limits.max_compressed_bytes
                chunk, self._plain = bytes(self._plain), bytearray()
            else:
                chunk = b""
        if self.wire > self._wire_limit:
            raise _too_large(self.wire, self._wire_limit, compressed=self._gunzip is not None)
        if self._gunzip is not None:
            self._gunzip.feed(chunk)
            self._hold.grow_to(self._gunzip.size)
        else:
            self._plain += chunk
            self._hold.grow_to(len(self._plain))

    def finish(self) -> Body:
        if self._gunzip is not None:
            return Body(self._gunzip.finish(), self.wire, True)
        return Body(bytes(self._plain), self.wire, False)


async def _read(
    request: web.BaseRequest,
    limits: BodyLimits,
    hold: Hold,
    progress: _Progress,
    *,
    declared_gzip: bool,
) -> Body:
    """The body of a request still arriving, chunk by chunk; `progress` moves its deadline."""
    body = _Accumulator(limits, hold, declared_gzip=declared_gzip)
    stream = request.content
    while chunk := await stream.readany():
        body.feed(chunk)
        progress.advance(body.wire)
    return body.finish()


class _Gunzip:
    """Streaming gzip decoder (concatenated members allowed) with an output cap."""

    def __init__(self, limit_bytes: int) -> None:
        self._limit = limit_bytes
        self._out = bytearray()
        self._d: zlib._Decompress | None = zlib.decompressobj(_GZIP_WBITS)
        self._members = 1
        self._fed = False

    def feed(self, data: bytes) -> None:
        self._fed = self._fed or bool(data)
        view = memoryview(data)
        pos = 0
        try:
            while pos < len(view):
                if self._d is None:  # a new member starts after a finished one
                    self._members += 1
                    if self._members > _MAX_GZIP_MEMBERS:
                        raise BadGzip(
                            f"request body has more than {_MAX_GZIP_MEMBERS} concatenated gzip "
                            "members: compress the body as one gzip stream"
                        )
                    self._d = zlib.decompressobj(_GZIP_WBITS)
                # Small slices: zlib copies what follows a member's end into unused_data,
                # so a body of many tiny members would otherwise copy the rest of the chunk
                # once per member (quadratic loop CPU).
                piece = view[pos : pos + _FEED_SLICE_BYTES]
                self._out += self._d.decompress(piece, self._limit - len(self._out) + 1)
                if len(self._out) > self._limit:
                    raise _too_large(len(self._out), self._limit, compressed=False)
                pos += len(piece) - len(self._d.unused_data)
                if self._d.eof:
                    self._d = None
        except zlib.error as exc:
            raise BadGzip(f"request body is not valid gzip: {exc}") from None

    @property
    def size(self) -> int:
        """Decompressed bytes so far."""
        return len(self._out)

    def finish(self) -> bytes:
        if self._d is not None and self._fed:  # the last member never reached its end
            raise BadGzip("request body is truncated gzip: the stream does not end")
        return bytes(self._out)


def _declared_gzip(values: list[str]) -> bool:
    codings = [
        c.strip().lower() for v in values for c in v.split(",") if c.strip().lower() != "identity"
    ]
    codings = [c for c in codings if c]
    if not codings:
        return False
    if codings in (["gzip"], ["x-gzip"]):
        return True
    raise IngestError(
        415,
        f"Content-Encoding {', '.join(codings)!r} is not supported: send gzip or no encoding",
    )


def _too_large(size: int, limit: int, *, compressed: bool) -> IngestError:
    key = "ingest.max_compressed_bytes" if compressed else "ingest.max_body_bytes"
    what = "compressed body" if compressed else "body"
    return IngestError(
        413,
        f"{what} of at least {size} bytes exceeds {key} = {limit}: "
        "split the batch or raise the limit",
    )
