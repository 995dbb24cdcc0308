"""`lineage-relay status [--url URL] [--config FILE] [--watch]`: one screen of a running relay.

Reads `/health` and `/metrics` twice, `--interval` apart (rates need two samples), and shows
received and delivered rates, the backlog and its age, p50/p99 of ingest and send latency
over the interval (since the start when nothing happened in it), the breaker, dead letters
by reason and the last error. `--watch` redraws the screen in place every interval (plain
ANSI: home the cursor, clear, print) until Ctrl-C.

Exit status (one shot): 0 healthy, 1 degraded or the relay did not answer; 2 when the
configuration (for `relay.listen`) is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from prometheus_client.parser import text_string_to_metric_families

from ._admin import CallFailed, HttpCaller, relay_url
from ._config import load_config
from ._exceptions import ConfigError

__all__ = ["Snapshot", "render", "run"]

_CLEAR = "\x1b[H\x1b[2J"
Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One reading of the relay: its /health document and /metrics samples."""

    at: float  # monotonic seconds
    healthy: bool = False
    health: Mapping[str, Any] = field(default_factory=dict)
    samples: Mapping[str, Mapping[Labels, float]] = field(default_factory=dict)
    error: str = ""

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(v for k, v in self.samples.get(name, {}).items() if wanted <= set(k))

    def by_label(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, value in self.samples.get(name, {}).items():
            tag = dict(key).get(label, "")
            out[tag] = out.get(tag, 0.0) + value
        return out

    def buckets(self, name: str) -> list[tuple[float, float]]:
        """(upper bound, cumulative count) of a histogram, ascending."""
        rows = self.by_label(f"{name}_bucket", "le")
        return sorted((float(le), count) for le, count in rows.items())


async def read(http: HttpCaller) -> Snapshot:
    """Read /health and /metrics; an unreachable relay gives a snapshot with `error`."""
    now = time.monotonic()
    try:
        health = await http.call("GET", "/health", auth=False)
        metrics = await http.call("GET", "/metrics", auth=False)
    except CallFailed as exc:
        return Snapshot(at=now, error=f"{exc}: is the relay running?")
    document = health.json()
    if not isinstance(document, dict) or metrics.status != 200:
        return Snapshot(
            at=now,
            error=f"{http.base_url} does not answer like a lineage-relay "
            f"(/health {health.status}, /metrics {metrics.status}): check --url",
        )
    samples: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(metrics.body.decode("utf-8", "replace")):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return Snapshot(at=now, healthy=health.status == 200, health=document, samples=samples)


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus's `histogram_quantile` over cumulative buckets; None without observations."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is all we know
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def _delta(
    previous: Sequence[tuple[float, float]], current: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    before = dict(previous)
    return [(bound, count - before.get(bound, 0.0)) for bound, count in current]


def _latency(name: str, previous: Snapshot | None, current: Snapshot) -> str:
    buckets = current.buckets(name)
    window = "since start"
    if previous is not None:
        recent = _delta(previous.buckets(name), buckets)
        if recent and recent[-1][1] > 0:
            buckets, window = recent, f"last {current.at - previous.at:.0f} s"
    p50, p99 = quantile(0.5, buckets), quantile(0.99, buckets)
    if p50 is None or p99 is None:
        return "no calls yet"
    return f"p50 {_duration(p50)}  p99 {_duration(p99)}  ({window})"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def _rate(name: str, previous: Snapshot | None, current: Snapshot) -> str:
    total = current.value(name)
    if previous is None or current.at <= previous.at:
        return f"total {total:.0f}"
    per_s = max(0.0, total - previous.value(name)) / (current.at - previous.at)
    return f"{per_s:8.1f} events/s  (total {total:.0f})"


_BREAKER = {0.0: "closed", 1.0: "half-open", 2.0: "open"}


def render(url: str, previous: Snapshot | None, current: Snapshot) -> str:
    """The screen for two consecutive readings (pure: tested without a terminal)."""
    if current.error:
        return f"lineage-relay at {url}: NOT ANSWERING\n  {current.error}\n"
    components: Mapping[str, Any] = current.health.get("components", {})
    om = components.get("openmetadata", {})
    breaker = components.get("breaker", {})
    state = "healthy" if current.healthy else "DEGRADED"
    lines = [f"lineage-relay at {url}: {state}"]
    lines.append(
        f"  received     {_rate('lineage_relay_events_received_total', previous, current)}"
    )
    lines.append(
        f"  delivered    {_rate('openmetadata_lineage_events_sent_total', previous, current)}"
    )
    refused = current.by_label("lineage_relay_events_rejected_total", "reason")
    if any(refused.values()):
        shown = ", ".join(f"{k} {v:.0f}" for k, v in sorted(refused.items()) if v)
        lines.append(f"  refused      {shown}")
    age = current.value("lineage_relay_spool_oldest_event_age_seconds")
    lines.append(
        f"  backlog      {current.value('lineage_relay_spool_events'):.0f} events, "
        f"{_size(current.value('lineage_relay_spool_bytes'))}, oldest {age:.1f} s"
    )
    ingest = _latency("lineage_relay_ingest_duration_seconds", previous, current)
    send = _latency("openmetadata_lineage_send_duration_seconds", previous, current)
    lines.append(f"  ingest       {ingest}")
    lines.append(f"  send         {send}")
    if breaker:
        lines.append(
            f"  breaker      {breaker.get('state', '?')} (opened {breaker.get('times_opened', 0)}"
            f" times, in flight limit {breaker.get('in_flight_limit', '?')})"
        )
    else:
        state_value = current.value("lineage_relay_circuit_state")
        lines.append(f"  breaker      {_BREAKER.get(state_value, '?')}")
    connection = current.value("openmetadata_connection_status")
    link = "no call yet" if math.isnan(connection) else "up" if connection == 1 else "down"
    sink = om.get("sink", "?")
    version = f", version {om['version']}" if om.get("version") else ""
    lines.append(f"  openmetadata {link}, sink {sink}{version}, {om.get('url', '')}".rstrip(", "))
    held = current.value("lineage_relay_dead_letter_events")
    reasons = current.by_label("lineage_relay_dead_letters_total", "reason")
    by_reason = ", ".join(f"{k} {v:.0f}" for k, v in sorted(reasons.items()) if v) or "none"
    lines.append(f"  dead letters {held:.0f} held; since start by reason: {by_reason}")
    problem = om.get("problem") or om.get("error")
    if problem:
        lines.append(f"  problem      {problem}")
    if om.get("last_error"):
        lines.append(f"  last error   {om['last_error']} (at {om.get('last_error_at')})")
    degraded = [
        f"{name}: {detail.get('error') or detail.get('problem') or 'degraded'}"
        for name, detail in components.items()
        if isinstance(detail, dict) and detail.get("status") != "healthy"
    ]
    for item in degraded:
        lines.append(f"  degraded     {item}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    stream = out if out is not None else sys.stdout
    if args.url:
        url = args.url.rstrip("/")
    else:
        try:
            url = relay_url(load_config(args.config))
        except ConfigError as exc:
            print(f"lineage-relay status: configuration refused: {exc}", file=sys.stderr)
            return 2
    if args.interval <= 0:
        print("lineage-relay status: --interval must be > 0", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_status(url, args.watch, args.interval, stream))
    except KeyboardInterrupt:
        return 0


async def _status(url: str, watch: bool, interval_s: float, out: TextIO) -> int:
    async with HttpCaller(url, timeout_s=5.0) as http:
        previous = await read(http)
        if previous.error:
            out.write(render(url, None, previous))
            if not watch:
                return 1
        while True:
            await asyncio.sleep(interval_s)
            current = await read(http)
            screen = render(url, None if previous.error else previous, current)
            if not watch:
                out.write(screen)
                return 0 if current.healthy else 1
            out.write(_CLEAR + screen + f"\n(every {interval_s:g} s; Ctrl-C to stop)\n")
            out.flush()
            previous = current
