"""The OpenMetadata calls of the `rest` sink, each with its answer interpreted once.

`get` answers the decoded entity or None on 404 (not there: the caller parks, creates or
invalidates a cache); `put` and the others answer the decoded body. Every other status
goes through `raise_for_status`: 408/429/5xx/transport -> `RetriableSinkError` (the
forwarder retries, the breaker counts), 401/403/redirect -> `SinkSetupError`, any other
4xx -> `PermanentSinkError` (the event goes to the dead letters with the server's words).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..._clock import Clock
from ..._observe.audit import AuditSubject
from ..client import HttpAnswer, OpenMetadataClient, raise_for_status

__all__ = ["Api"]


class Api:
    """Thin JSON layer over `OpenMetadataClient` for the REST endpoints."""

    def __init__(self, client: OpenMetadataClient, *, clock: Clock, retry_after_max_s: float):
        self.client = client
        self._clock = clock
        self._retry_after_max_s = retry_after_max_s
        self.calls = 0  # every call made, for the benchmark's calls-per-event figure

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        endpoint: str,
        audit: AuditSubject | None = None,
        content_type: str = "application/json",
    ) -> HttpAnswer:
        """One call; the answer as it came (no status interpreted)."""
        self.calls += 1
        raw = None if body is None else orjson.dumps(body)
        return await self.client.request(
            method, path, raw, endpoint=endpoint, audit=audit, content_type=content_type
        )

    def check(self, answer: HttpAnswer) -> Any:
        """The decoded body of a 2xx; raises the generic error of any other status."""
        if not 200 <= answer.status < 300:
            raise_for_status(answer, clock=self._clock, retry_after_max_s=self._retry_after_max_s)
        return answer.json()

    async def get(self, path: str, *, endpoint: str) -> Any:
        """The decoded body, or None when the server answers 404."""
        answer = await self.call("GET", path, endpoint=endpoint)
        if answer.status == 404:
            return None
        return self.check(answer)

    async def put(
        self, path: str, body: Any, *, endpoint: str, audit: AuditSubject | None = None
    ) -> Any:
        return self.check(await self.call("PUT", path, body, endpoint=endpoint, audit=audit))
