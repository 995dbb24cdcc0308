"""Sink `openlineage`: OpenMetadata's native endpoint `POST /v1/openlineage/lineage/batch`.

The body `{"events": [...]}` is assembled from the spooled bytes as they were received:
no event is parsed or re-serialised on the way out (it is also the cheapest path).

The answer (`openLineageResponse`) is `{"status": "success" | "partial_success" |
"failure", "summary": {...}, "failedEvents": [{"index", "reason", "retriable"}]}`; events
listed in `failedEvents` are retried or dead-lettered one by one, the others are
delivered (skipped ones too: the server chose not to act on them, e.g. non-COMPLETE
events under its default filter). OpenMetadata answers 400 when every event failed, with
the same body. A 404 means the server predates the endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from .._clock import Clock, SystemClock
from .._config import OpenMetadataConfig
from .._events import SpooledEvent
from .._exceptions import SinkSetupError
from .._observe.audit import AuditSubject
from .base import DELIVERED, EventResult
from .client import HttpAnswer, OpenMetadataClient, raise_for_status, server_message

__all__ = ["BATCH_PATH", "OpenLineageSink", "audit_subject", "batch_body"]

BATCH_PATH = "/v1/openlineage/lineage/batch"


def batch_body(events: Sequence[SpooledEvent]) -> bytes:
    """`{"events":[<raw>,<raw>,...]}` from the raw bodies, joined without parsing them."""
    parts = [b'{"events":[']
    for i, event in enumerate(events):
        if i:
            parts.append(b",")
        parts.append(event.body.strip())
    parts.append(b"]}")
    return b"".join(parts)


class OpenLineageSink:
    """Delivers batches to the native OpenLineage endpoint of OpenMetadata (>= 1.12)."""

    def __init__(
        self,
        client: OpenMetadataClient,
        config: OpenMetadataConfig,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._client = client
        self._config = config
        self._clock = clock if clock is not None else SystemClock()

    @property
    def name(self) -> str:
        return "openlineage"

    @property
    def client(self) -> OpenMetadataClient:
        return self._client

    async def send(self, events: Sequence[SpooledEvent]) -> Sequence[EventResult]:
        if not events:
            return []
        subject = audit_subject(events) if self._client.auditing else None
        answer = await self._client.post(
            BATCH_PATH, batch_body(events), endpoint=BATCH_PATH, audit=subject
        )
        if answer.status == 404:
            raise SinkSetupError(
                f"POST {answer.url} answered 404: this OpenMetadata has no native OpenLineage "
                "endpoint (older than the release that added /api/v1/openlineage, or "
                "openmetadata.host_port lacks the '/api' base). The events are kept; set "
                'openmetadata.sink = "rest" (the default: plain REST calls every OpenMetadata '
                "1.x and 2.x serves) or upgrade OpenMetadata, and restart the relay",
                status=404,
            )
        if answer.status in (200, 201, 202, 207, 400):
            results = _per_event_results(answer, len(events))
            if results is not None:
                return results
        raise_for_status(
            answer, clock=self._clock, retry_after_max_s=self._config.retry_after_max_s
        )
        return [DELIVERED] * len(events)

    async def aclose(self) -> None:
        await self._client.aclose()


def audit_subject(events: Sequence[SpooledEvent]) -> AuditSubject:
    """What a batch writes, for the audit log: its jobs, datasets and runs.

    The server resolves OpenLineage names to entities itself, so the entities are named as
    the events name them: `job:<namespace>/<name>` and `<namespace>/<name>` per dataset.
    Parsing the bodies costs only when the audit log is on.
    """
    entities: dict[str, None] = {}  # ordered and unique
    run_ids: dict[str, None] = {}
    for event in events:
        key = event.key
        if key.run_id:
            run_ids[key.run_id] = None
        if key.job_namespace is not None and key.job_name is not None:
            entities[f"job:{key.job_namespace}/{key.job_name}"] = None
        try:
            doc = orjson.loads(event.body)
        except orjson.JSONDecodeError:
            continue
        for side in ("inputs", "outputs"):
            datasets = doc.get(side) if isinstance(doc, dict) else None
            for dataset in datasets if isinstance(datasets, list) else ():
                if isinstance(dataset, dict):
                    namespace, name = dataset.get("namespace"), dataset.get("name")
                    if isinstance(namespace, str) and isinstance(name, str):
                        entities[f"{namespace.rstrip('/')}/{name.lstrip('/')}"] = None
    return AuditSubject(
        operation="openlineage_batch",
        entities=tuple(entities),
        run_ids=tuple(run_ids),
        events=len(events),
    )


def _per_event_results(answer: HttpAnswer, count: int) -> list[EventResult] | None:
    """Per-event outcomes from an `openLineageResponse`, or None when the body has none.

    A 2xx without a readable body means all delivered (returned as None so the generic
    rule applies); a 400 without `failedEvents` is a whole-batch refusal.
    """
    doc = answer.json()
    if not isinstance(doc, dict):
        return None
    failed = doc.get("failedEvents")
    status = doc.get("status")
    if not isinstance(failed, list) or not failed:
        if answer.status == 400:
            return None
        if status == "failure":
            # A 2xx that says "failure" without naming events: keep them all, try again.
            message = doc.get("message")
            said = message if isinstance(message, str) and message else "status failure"
            return [EventResult.retriable(f"HTTP {answer.status}: {said}")] * count
        return [DELIVERED] * count if 200 <= answer.status < 300 else None
    results: list[EventResult] = [DELIVERED] * count
    listed = False
    for item in failed:
        if not isinstance(item, dict):
            continue
        index = item.get("index")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            continue
        listed = True
        reason = item.get("reason")
        text = reason if isinstance(reason, str) and reason else "refused by OpenMetadata"
        text = f"HTTP {answer.status}: {text}"
        results[index] = (
            EventResult.retriable(text)
            if item.get("retriable") is True
            else EventResult.permanent(text)
        )
    if not listed:
        return None
    if answer.status == 400:
        # "400 when every event failed": an event the server did not list was not written.
        message = f"HTTP 400: {server_message(answer)}"
        results = [r if r is not DELIVERED else EventResult.permanent(message) for r in results]
    return results
