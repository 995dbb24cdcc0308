"""The `Sink` protocol: how the forwarder hands a batch of spooled events to a destination.

A sink sends one batch and answers per event:

- it returns one `EventResult` per event (same order) when the destination answered,
  which may mix delivered, retriable and permanent outcomes (a partial success);
- it raises `RetriableSinkError` (incl. `SinkTimeout`, `SinkSetupError`) when the call as
  a whole failed and every event should be kept and retried;
- it raises `PermanentSinkError` when the destination refused the batch as a whole; the
  forwarder then splits the batch to find the events at fault before dead-lettering.

It raises nothing else: foreign exceptions (aiohttp, OS) are translated in
`relay/_sinks/client.py`. Two sinks implement it: `rest` (the default, `relay/_sinks/rest/`)
and `openlineage` (the native endpoint).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .._events import SpooledEvent

__all__ = ["DELIVERED", "EventResult", "Outcome", "Sink"]


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRIABLE = "retriable"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class EventResult:
    """What became of one event; `reason` says why it was not delivered."""

    outcome: Outcome
    reason: str = ""

    @classmethod
    def retriable(cls, reason: str) -> EventResult:
        return cls(Outcome.RETRIABLE, reason)

    @classmethod
    def permanent(cls, reason: str) -> EventResult:
        return cls(Outcome.PERMANENT, reason)


DELIVERED = EventResult(Outcome.DELIVERED)


@runtime_checkable
class Sink(Protocol):
    """A destination for batches of raw OpenLineage events."""

    @property
    def name(self) -> str:
        """Short name for logs and health (`openlineage`, `rest`, `memory`)."""
        ...

    async def send(self, events: Sequence[SpooledEvent]) -> Sequence[EventResult]:
        """Deliver `events` (in order); one result per event, or raise a `SinkError`."""
        ...

    async def aclose(self) -> None:
        """Release connections; idempotent."""
        ...
