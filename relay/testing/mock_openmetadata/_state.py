"""Everything the mock remembers, shared by the API app and the control app."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ._auth import TokenCheck
from ._catalog import load_catalog
from ._faults import FaultPlan, FaultRule
from ._lineage import LineageGraph
from ._ol_settings import OpenLineageSettings
from ._openlineage import OpenLineageProcessor
from ._search import Search
from ._store import Store

DEFAULT_SERVER_VERSION = "2.0.7"
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:[-+.][0-9A-Za-z.-]*)?")


def parse_server_version(text: str) -> tuple[int, int, int]:
    """``major.minor.patch`` (a suffix such as ``-SNAPSHOT`` allowed) as numbers."""
    match = _VERSION.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"server version {text!r} is not MAJOR.MINOR.PATCH; use e.g. "
            f"{DEFAULT_SERVER_VERSION} or 1.13.0"
        )
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


@dataclass(slots=True)
class RecordedRequest:
    """One request the API port received (bodies are decoded only when read)."""

    method: str
    path: str
    query: str
    status: int  # 0 when no response was sent (hang, reset)
    time_s: float
    duration_ms: float
    body: bytes
    fault: str | None
    error: str | None = None  # the "message" of an error answer
    # The decoded body, kept once decoded: tests poll the log, bodies can be large.
    _decoded: Any = field(default=None, repr=False, compare=False)
    _is_decoded: bool = field(default=False, repr=False, compare=False)

    def decoded_body(self) -> Any:
        if not self._is_decoded:
            body: Any = None
            if self.body:
                try:
                    body = orjson.loads(self.body)
                except orjson.JSONDecodeError:
                    body = self.body.decode("utf-8", "replace")
            self._decoded, self._is_decoded = body, True
        return self._decoded

    def to_json(self) -> dict[str, Any]:
        body = self.decoded_body()
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "time": self.time_s,
            "duration_ms": round(self.duration_ms, 3),
            "body": body,
            "fault": self.fault,
            "error": self.error,
        }


class MockState:
    """Catalog, lineage, statuses, faults, tokens and the logs of what arrived."""

    def __init__(
        self,
        *,
        tokens: Iterable[str] | None,
        catalog: Mapping[str, Any] | None,
        faults: Sequence[FaultRule],
        latency_ms: int,
        error_rate: float,
        openlineage_endpoints: bool,
        openlineage: OpenLineageSettings,
        request_log_limit: int | None,
        event_log_limit: int | None,
        seed: int | None,
        version: str,
    ) -> None:
        if latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate {error_rate} must be between 0 and 1")
        self.version = version.strip()
        # Whether the mock behaves as OpenMetadata 2.x (else as 1.13).
        self.server_v2 = parse_server_version(version) >= (2, 0, 0)
        self.latency_ms = latency_ms
        self.error_rate = error_rate
        self.openlineage_endpoints = openlineage_endpoints
        self.catalog = dict(catalog or {})
        self.tokens = TokenCheck(tokens)
        self.faults = FaultPlan(faults, seed)
        self.store = Store(server_v2=self.server_v2)
        self.lineage = LineageGraph(self.store)
        self.search = Search(self.store)
        self.openlineage = OpenLineageProcessor(self.store, self.lineage, openlineage)
        self.requests: deque[RecordedRequest] = deque(maxlen=request_log_limit)
        self.events: deque[dict[str, Any]] = deque(maxlen=event_log_limit)
        self.events_received = 0
        # Set when the mock closes, so hanging requests end.
        self.closing = asyncio.Event()
        load_catalog(self.store, self.catalog)

    def set_version(self, version: str) -> None:
        """The version the mock reports; behaviour that changed in 2.0 follows it."""
        self.server_v2 = parse_server_version(version) >= (2, 0, 0)
        self.version = version.strip()
        self.store.server_v2 = self.server_v2

    def reset(self) -> None:
        """Back to the seeded catalog: no lineage, statuses, logs, faults or event failures."""
        self.store.clear()
        self.lineage.clear()
        load_catalog(self.store, self.catalog)
        self.requests.clear()
        self.events.clear()
        self.events_received = 0
        self.faults.replace([])
        self.openlineage.set_failures([])

    def summary(self) -> dict[str, Any]:
        return {
            "entities": self.store.counts(),
            "lineage_edges": len(self.lineage.edges),
            "pipeline_statuses": sum(len(series) for series in self.store.statuses.values()),
            "requests": len(self.requests),
            "openlineage_events": self.events_received,
        }
