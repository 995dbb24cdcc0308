"""Where the app tests find the checkout and its sample events (relays start from
relay_support)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
EVENTS = REPO / "tests" / "fixtures" / "events"
