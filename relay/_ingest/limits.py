"""Limits that keep one client from taking what every client needs: memory and time.

`BodyBudget` bounds the decompressed body bytes held by all requests together
(`ingest.max_body_bytes_in_flight`): beyond it a request gets 503 with Retry-After,
so `max_concurrent_requests x max_body_bytes` is no longer what memory must hold.
`Pace` turns `ingest.read_timeout_s`, `min_body_bytes_per_s` and `body_grace_s` into
the deadline of the next body chunk: after the grace period a body must keep arriving
at the minimum rate (on average since the request started), or the request gets 408
and frees what it held.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._exceptions import IngestError

__all__ = ["BodyBudget", "Hold", "OverBudget", "Pace", "TooSlow"]


class OverBudget(IngestError):
    """Taking this body would exceed the bytes every request may hold at once."""

    def __init__(self, message: str) -> None:
        super().__init__(503, message)


class TooSlow(IngestError):
    """The body arrives below the minimum rate, or not within the read timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(408, message)


class BodyBudget:
    """Decompressed body bytes held by all requests at once, up to `limit_bytes`."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.held_bytes = 0

    def hold(self) -> Hold:
        return Hold(self)


class Hold:
    """What one request holds of a `BodyBudget`; `release()` gives it all back."""

    __slots__ = ("_budget", "_bytes")

    def __init__(self, budget: BodyBudget) -> None:
        self._budget = budget
        self._bytes = 0

    def grow_to(self, total_bytes: int) -> None:
        """This request now holds `total_bytes`; raise `OverBudget` if that is too much."""
        extra = total_bytes - self._bytes
        if extra <= 0:
            return
        budget = self._budget
        if budget.held_bytes + extra > budget.limit_bytes:
            raise OverBudget(
                f"too many request body bytes in flight (ingest.max_body_bytes_in_flight = "
                f"{budget.limit_bytes}); retry shortly"
            )
        budget.held_bytes += extra
        self._bytes = total_bytes

    def release(self) -> None:
        self._budget.held_bytes -= self._bytes
        self._bytes = 0


@dataclass(frozen=True, slots=True)
class Pace:
    """When the next chunk of a body must have arrived (loop time), given what did."""

    started: float  # loop time the body began to be read
    read_timeout_s: float
    min_bytes_per_s: int  # 0 = no minimum rate
    grace_s: float

    def deadline(self, wire_bytes: int) -> float:
        last = self.started + self.read_timeout_s
        if self.min_bytes_per_s <= 0:
            return last
        return min(last, self.started + self.grace_s + wire_bytes / self.min_bytes_per_s)

    def expired(self, now: float, wire_bytes: int) -> TooSlow:
        """The error for a body whose deadline passed at `now`."""
        if now >= self.started + self.read_timeout_s:
            return TooSlow(
                f"request body did not arrive within ingest.read_timeout_s = "
                f"{self.read_timeout_s:g} s; send the whole body promptly"
            )
        return TooSlow(
            f"request body arrived too slowly ({wire_bytes} bytes in "
            f"{now - self.started:.1f} s; ingest.min_body_bytes_per_s = {self.min_bytes_per_s} "
            f"after ingest.body_grace_s = {self.grace_s:g} s); send the whole body promptly"
        )
