"""What the spool's front end asks its thread: one typed request per operation.

Each carries its own arguments and the future its caller awaits (`NO_FUTURE`: nobody waits,
as for the requests the integrity scan and the housekeeping post). `STOP` ends the thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from .._events import EventKey, SpooledEvent

__all__ = [
    "NO_FUTURE",
    "STOP",
    "Ack",
    "Append",
    "Bury",
    "Expire",
    "Lease",
    "ListDeadLetters",
    "MoveToDeadLetters",
    "Quarantine",
    "QuarantineOrphans",
    "Release",
    "Replay",
    "Request",
    "Salvage",
    "Scan",
    "Scanned",
    "ScheduleRetry",
    "WaitingRuns",
    "settle",
    "settle_all",
]

NO_FUTURE: Final[Any] = object()
STOP: Final = object()


@dataclass(slots=True)
class Request:
    future: asyncio.Future[Any] = field(default=NO_FUTURE, kw_only=True, repr=False)


@dataclass(slots=True)
class Append(Request):
    """Store one request's events, in order; answered with their ids after the commit."""

    items: list[tuple[bytes, EventKey]]


@dataclass(slots=True)
class Lease(Request):
    max_events: int
    max_bytes: int
    lease_s: float


@dataclass(slots=True)
class Ack(Request):
    ids: Sequence[int]


@dataclass(slots=True)
class ScheduleRetry(Request):
    """Available again at `when`; `attempts` grows by `step` (0: held back, not tried)."""

    ids: Sequence[int]
    when: float
    error: str
    step: int


@dataclass(slots=True)
class Release(Request):
    ids: Sequence[int]


@dataclass(slots=True)
class MoveToDeadLetters(Request):
    ids: Sequence[int]
    reason: str


@dataclass(slots=True)
class Bury(Request):
    """A delivered event (gone from the queue) put straight into the dead letters."""

    event: SpooledEvent
    reason: str


@dataclass(slots=True)
class ListDeadLetters(Request):
    limit: int


@dataclass(slots=True)
class Replay(Request):
    ids: list[int] | None  # None: every dead letter


@dataclass(slots=True)
class Expire(Request):
    """Drop what is older than spool.max_age_s."""


@dataclass(slots=True)
class WaitingRuns(Request):
    pass


@dataclass(slots=True)
class Scan(Request):
    after_id: int
    max_events: int
    max_bytes: int


# From the integrity scan (IntegrityScan.post):


@dataclass(slots=True)
class Quarantine(Request):
    found: list[tuple[int, str]]  # (id, reason)


@dataclass(slots=True)
class QuarantineOrphans(Request):
    body_ids: list[int]


@dataclass(slots=True)
class Salvage(Request):
    problems: list[str]


@dataclass(slots=True)
class Scanned(Request):
    state: object  # the scan's final ScanState


def settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def settle_all(
    answers: Sequence[tuple[asyncio.Future[Any], Any, BaseException | None]],
) -> None:
    for future, result, error in answers:
        settle(future, result, error)
