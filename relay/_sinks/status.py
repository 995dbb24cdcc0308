"""What an HTTP answer means for the events of the call: status classification and the
server's `Retry-After` hint. Pure; the client (`client.py`) applies it, the forwarder consumes the
errors it raises.
"""

from __future__ import annotations

import enum
import math
from email.utils import parsedate_to_datetime

__all__ = ["Disposition", "cap_retry_after", "classify_status", "parse_retry_after"]


class Disposition(enum.Enum):
    """What an HTTP status means for the events of the call."""

    DELIVERED = "delivered"  # 2xx
    RETRY = "retry"  # 408, 429, 5xx: the server may take them later
    AUTH = "auth"  # 401: re-fetch the token once, then a retriable failure
    SETUP = "setup"  # 403, 3xx: a configuration problem; keep the events, degrade health
    PERMANENT = "permanent"  # any other 4xx: dead-letter with the server's message


def classify_status(status: int) -> Disposition:
    """Classify an HTTP status the way Vector and OTel do, with 401/403 kept apart."""
    if 200 <= status < 300:
        return Disposition.DELIVERED
    if status == 401:
        return Disposition.AUTH
    if status == 403 or 300 <= status < 400:
        return Disposition.SETUP
    if status in (408, 429) or status >= 500:
        return Disposition.RETRY
    return Disposition.PERMANENT


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP-date).

    `now` is epoch seconds (for the HTTP-date form). Returns None when the header is
    absent or unreadable, never a negative number.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def cap_retry_after(seconds: float | None, max_s: float) -> float | None:
    """Bound a server's hint: a wrong `Retry-After: 86400` must not stall delivery for a day."""
    if seconds is None:
        return None
    return min(seconds, max_s)
