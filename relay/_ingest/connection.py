"""The HTTP connection: protocol errors answered in JSON, and a header read timeout.

aiohttp parses requests in its `RequestHandler` (one per connection) and answers a
request it cannot parse (a bad chunk size, two Content-Lengths, a 100 KB header...)
from `handle_error`, in text/plain, logging a traceback at error level. Client
garbage is not the operator's problem: `Connection` answers `{"error": ...}` and logs
one `info` line per refused connection; only a 500 (a bug of ours) keeps the
traceback. aiohttp has no hook for this (aio-libs/aiohttp#3287), so the site that
listens (`ListenSite`) builds `Connection`s instead of plain `RequestHandler`s.

aiohttp closes idle connections itself (`keepalive_timeout`, also before the first
request) but gives a client any time to finish its headers: `Connection` answers 408
and closes when a request's headers are not complete `header_timeout_s` after its
first byte.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from .routes import json_error

__all__ = ["Connection", "ListenSite"]

log = logging.getLogger(__name__)

_MAX_DETAIL_CHARS = 200
_QUOTED_BYTES = re.compile(r"""\bb['"]""")  # the repr of bytes: b'...' or b"..."


class Connection(RequestHandler):
    """One client connection, with the relay's answers to what aiohttp's parser refuses."""

    def __init__(
        self,
        manager: web.Server,
        *,
        header_timeout_s: float,
        on_refused: Callable[[str], None] = lambda reason: None,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout_s = header_timeout_s
        self._on_refused = on_refused  # counts refusals by reason (the ingest metric)
        self._header_timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:  # a request's headers are complete
            self._stop_header_timer()
        elif data and self._header_timer is None and self._awaiting_request():
            self._header_timer = self._loop.call_later(
                self._header_timeout_s, self._header_timed_out
            )

    def _awaiting_request(self) -> bool:
        """True while these bytes can only be a new request's: not a body aiohttp is still
        reading or, after an early answer, discarding."""
        if self._request_in_progress:
            return False
        if self._request_count == 0:
            return True  # the connection's first request (aiohttp may not be waiting yet)
        waiter = self._waiter
        return waiter is not None and not waiter.done()

    # aiohttp declares None; asyncio.Protocol.eof_received returns bool | None.
    def eof_received(self) -> bool:  # type: ignore[override]
        # A client may send its request and then shut its side down (nc, a raw socket, an
        # HTTP/1.0 client): the answer must still go out. asyncio closes the transport at
        # once unless this returns True; aiohttp closes it after the answer.
        waiter = self._waiter
        if waiter is not None and not waiter.done() and not self._messages:
            return False  # idle: nothing to answer
        request = self._current_request
        if request is not None and not request.content.is_eof():
            return False  # the body can never complete: the request is cut short
        self.close()
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        waiter = self._waiter
        transport = self.transport
        if transport is None or waiter is None or waiter.done():
            return  # a request's headers completed meanwhile (it is being handled)
        message = (
            f"the request headers did not arrive within ingest.header_timeout_s = "
            f"{self._header_timeout_s:g} s; send the whole request promptly"
        )
        log.info(
            "refused connection",
            extra={"status": 408, "reason": "header_timeout", "remote": _remote(self)},
        )
        self._on_refused("header_timeout")
        body = orjson.dumps({"error": message})
        transport.write(
            b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            # Our bug, not the client's: the traceback is what the maintainer needs.
            log.error(
                "request failed", exc_info=exc, extra={"status": status, "remote": request.remote}
            )
            text = "the relay failed on this request; its log has the details"
            self._on_refused("internal_error")
        else:
            detail = _detail(exc, message)
            log.info(
                "refused connection",
                extra={
                    "status": status,
                    "reason": "bad_http",
                    "error": detail,
                    "remote": request.remote,
                },
            )
            self._on_refused("bad_http")
            text = (
                f"malformed HTTP request ({detail}): send a well-formed HTTP/1.1 request, "
                "its body framed by Content-Length or chunked encoding"
            )
        if request.writer.output_size > 0:  # an answer is already on its way: just close
            raise ConnectionError("the response was already started")
        response = json_error(status, text)
        response.force_close()
        return response


class ListenSite(web.BaseSite):
    """A TCP site whose connections are `Connection`s (aiohttp's `TCPSite` otherwise)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        backlog: int,
        connection: Callable[[web.Server], Connection],
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._connection = connection

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        if server is None:
            raise RuntimeError("the runner is not set up")
        self._server = await asyncio.get_running_loop().create_server(
            lambda: self._connection(server), self._host, self._port, backlog=self._backlog
        )


def _detail(exc: BaseException | None, message: str | None) -> str:
    """The parser's complaint without the request bytes it may quote (a header holding a
    token, say): first line, up to the first quoted bytes, short."""
    text = (message or (str(exc) if exc is not None else "")).strip()
    first = text.splitlines()[0] if text else ""
    first = _QUOTED_BYTES.split(first, maxsplit=1)[0].rstrip(" :")
    return first[:_MAX_DETAIL_CHARS] or "bad request"


def _remote(connection: Connection) -> str | None:
    peer = connection.peername
    return peer[0] if isinstance(peer, tuple) else peer
