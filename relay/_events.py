"""Plain data passed between ingest, spool and forwarder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["EventKey", "SpooledEvent"]

EventKind = Literal["run", "dataset", "job"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EventKey:
    """What the relay needs to know of an event without keeping it parsed.

    Built by the ingest envelope check; stored beside the raw bytes so the
    forwarder can order and dedupe without parsing the body again.
    """

    kind: EventKind
    event_time: str
    producer: str
    event_type: str | None = None  # START, RUNNING, COMPLETE, ABORT, FAIL, OTHER (run events)
    run_id: str | None = None
    job_namespace: str | None = None
    job_name: str | None = None
    body_hash: str = ""  # hex digest of the raw body, for duplicate detection


@dataclass(frozen=True, slots=True, kw_only=True)
class SpooledEvent:
    """One event as the spool hands it to the forwarder."""

    id: int  # spool sequence number, increasing with arrival order
    body: bytes  # the bytes the client sent (decompressed), never re-serialised
    key: EventKey
    received_at: float  # epoch seconds when the append became durable
    attempts: int = 0
