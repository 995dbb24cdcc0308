"""Helpers for the ingest tests (a real relay, real spool)."""

from __future__ import annotations

from pathlib import Path

from relay._app import Relay
from relay._events import SpooledEvent

EVENTS = Path(__file__).resolve().parent.parent / "fixtures" / "events"


async def spooled(relay: Relay) -> list[SpooledEvent]:
    """Every pending event, in id order (leased briefly, then given back)."""
    assert relay.spool is not None
    events = await relay.spool.lease(max_events=100_000, max_bytes=1 << 40, lease_s=60)
    await relay.spool.release([e.id for e in events])
    return events
