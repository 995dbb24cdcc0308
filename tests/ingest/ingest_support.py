"""Helpers for the ingest tests (a real relay, real spool)."""

from __future__ import annotations

from pathlib import Path

from relay_support import spooled

__all__ = ["EVENTS", "spooled"]

EVENTS = Path(__file__).resolve().parent.parent / "fixtures" / "events"
