"""The relay through an OpenMetadata outage: steady load while OpenMetadata degrades and dies.

    python benchmarks/outage.py [--quick] [--phase-s S] [--rate N]

Starts the mock OpenMetadata and the relay (each its own process, 127.0.0.1), then posts real
Spark events (the project's samples under tests/fixtures/events/spark, each with a new run id)
at a steady `--rate` per second while the mock goes through five phases of `--phase-s` each:
healthy -> slow (2 s per call) -> erroring (503) -> down (connections refused) -> healthy.
Every 100 ms it samples the ingest latency of the requests answered in that window, the relay's
backlog (`lineage_relay_spool_events`), the delivery rate (`openmetadata_lineage_events_sent_total`)
and the breaker (`lineage_relay_circuit_state`). The load is this process's own aiohttp client:
wrk would take less CPU but reports no latency over time, and at this rate the client needs a
few percent of a core.

Writes `benchmarks/results/outage.png` (four aligned panels over time, the fault phases shaded
and named), prints a table per phase, and ends with

    RESULT outage_events_lost=<acknowledged events that never reached the mock; must be 0>
    RESULT outage_ingest_p99_ms=<p99 ingest latency over the whole run>
    RESULT outage_drain_s=<from the mock healthy again to the backlog back at its healthy level>

The relay delivers with the `openlineage` sink (the mock's native endpoint records every event,
so each acknowledged run id is looked for there), with short retry and breaker timeouts
(`--recovery-timeout-s`, default 2 s): the drain measures the relay, not a 30 s wait for its
first probe.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from relay.testing.processes import MockProcess, RelayProcess, exit_on_sigterm, metric_samples

REPO = Path(__file__).resolve().parent.parent
SPARK = REPO / "tests" / "fixtures" / "events" / "spark"
CATALOG = REPO / "tests" / "fixtures" / "openmetadata" / "catalog_spark.json"
# the runner (benchmarks/_runner.py) names the results directory
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or Path(__file__).resolve().parent / "results")
TOKEN = "bench-token"  # noqa: S105 -- what the mock accepts, not a secret
SAMPLE_S = 0.1
BREAKER = {0: "closed", 1: "half-open", 2: "open"}
PHASES: list[tuple[str, dict[str, Any] | None]] = [
    ("healthy", None),
    ("slow", {"mode": "slow", "latency_ms": 2000}),
    ("erroring", {"mode": "error", "status": 503}),
    ("down", {"mode": "down"}),
    ("healthy again", None),
]


@dataclass
class Sample:
    t: float
    latencies_ms: list[float]
    backlog: float
    sent: float
    breaker: float


@dataclass
class Run:
    phase_starts: list[tuple[str, float]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (t answered, ms)
    acked: set[str] = field(default_factory=set)
    refused: int = 0
    window: list[float] = field(default_factory=list)


def sample_events() -> list[tuple[bytes, str]]:
    """(body, its run id) of each sample Spark event."""
    events = []
    for path in sorted(SPARK.glob("*.json")):
        raw = path.read_bytes()
        events.append((raw, json.loads(raw)["run"]["runId"]))
    return events


async def load(
    http: aiohttp.ClientSession, url: str, rate: float, run: Run, stop: asyncio.Event
) -> None:
    """Open-loop load: one event every 1/rate s, whatever the answers take."""
    events = sample_events()
    began = time.monotonic()
    tasks: set[asyncio.Task[None]] = set()

    async def post(raw: bytes, run_id: str) -> None:
        sent = time.monotonic()
        try:
            async with http.post(url, data=raw, headers={"Content-Type": "application/json"}) as r:
                await r.read()
                ok = r.status in (200, 201)
        except aiohttp.ClientError:
            ok = False
        done = time.monotonic()
        latency_ms = (done - sent) * 1000
        run.latencies.append((done - began, latency_ms))
        run.window.append(latency_ms)
        if ok:
            run.acked.add(run_id)
        else:
            run.refused += 1

    n = 0
    while not stop.is_set():
        raw, old_id = events[n % len(events)]
        new_id = str(uuid.uuid4())
        task = asyncio.create_task(post(raw.replace(old_id.encode(), new_id.encode()), new_id))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
        delay = began + n / rate - time.monotonic()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    if tasks:
        await asyncio.wait(tasks, timeout=30)


async def sampler(http: aiohttp.ClientSession, relay_url: str, run: Run, began: float) -> None:
    while True:
        async with http.get(relay_url + "/metrics") as resp:
            metrics = metric_samples(await resp.text())
        window, run.window = run.window, []
        run.samples.append(
            Sample(
                t=time.monotonic() - began,
                latencies_ms=window,
                backlog=metrics.get("lineage_relay_spool_events", 0.0),
                sent=metrics.get("openmetadata_lineage_events_sent_total", 0.0),
                breaker=metrics.get("lineage_relay_circuit_state", 0.0),
            )
        )
        await asyncio.sleep(SAMPLE_S)


async def drive(args: argparse.Namespace, mock: MockProcess, relay: RelayProcess) -> Run:
    run = Run()
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as http:
        began = time.monotonic()
        sampling = asyncio.create_task(sampler(http, relay.url, run, began))
        loading = asyncio.create_task(
            load(http, relay.url + "/api/v1/lineage", args.rate, run, stop)
        )
        for name, fault in PHASES:
            run.phase_starts.append((name, time.monotonic() - began))
            if fault is None:
                await asyncio.to_thread(mock.clear_faults)
            else:
                await asyncio.to_thread(mock.set_faults, fault)
            await asyncio.sleep(args.phase_s)
        stop.set()
        await loading
        run.phase_starts.append(("after the load", time.monotonic() - began))
        deadline = time.monotonic() + args.drain_timeout_s
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            if run.samples and run.samples[-1].backlog == 0:
                break
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
    return run


def delivered_run_ids(mock: MockProcess) -> set[str]:
    events = mock.control("/mock/openlineage-events")
    return {str((event.get("run") or {}).get("runId")) for event in events}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def phase_of(run: Run, t: float) -> str:
    name = run.phase_starts[0][0]
    for phase, start in run.phase_starts:
        if t >= start:
            name = phase
    return name


def drain_s(run: Run) -> float:
    """From the mock healthy again to the backlog back at the first healthy phase's level."""
    first_end = run.phase_starts[1][1]
    healthy_level = max([s.backlog for s in run.samples if s.t < first_end] or [0.0])
    recovered_at = run.phase_starts[len(PHASES) - 1][1]
    for s in run.samples:
        if s.t >= recovered_at and s.backlog <= healthy_level:
            return s.t - recovered_at
    return float("nan")


def table(run: Run) -> None:
    print("| phase | s | events answered | ingest p50 ms | p99 ms | max ms | backlog max "
          "| delivered/s | breaker |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    bounds = [*run.phase_starts[1:], ("", run.samples[-1].t if run.samples else 0.0)]
    for (name, start), (_, end) in zip(run.phase_starts, bounds, strict=False):
        lat = [ms for t, ms in run.latencies if start <= t < end]
        inside = [s for s in run.samples if start <= s.t < end]
        if not inside:
            continue
        rate = (inside[-1].sent - inside[0].sent) / max(inside[-1].t - inside[0].t, 1e-9)
        states = sorted({BREAKER.get(int(s.breaker), "?") for s in inside})
        backlog = max(s.backlog for s in inside)
        print(f"| {name} | {end - start:.1f} | {len(lat)} | {percentile(lat, 0.5):.1f} | "
              f"{percentile(lat, 0.99):.1f} | {max(lat, default=float('nan')):.1f} | "
              f"{backlog:.0f} | {rate:.0f} | {', '.join(states)} |")  # fmt: skip


def plot(run: Run, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s.t for s in run.samples]
    p99 = [percentile(s.latencies_ms, 0.99) for s in run.samples]
    p50 = [percentile(s.latencies_ms, 0.5) for s in run.samples]
    # delivered over the last second: batches leave every linger_ms, 100 ms steps would saw
    rate = []
    for i, s in enumerate(run.samples):
        j = i
        while j > 0 and s.t - run.samples[j - 1].t <= 1.0:
            j -= 1
        first = run.samples[j]
        rate.append((s.sent - first.sent) / (s.t - first.t) if s.t > first.t else 0.0)
    fig, axes = plt.subplots(4, 1, sharex=True, figsize=(11, 8.5), constrained_layout=True)
    axes[0].plot(t, p99, lw=1, color="tab:red", label="p99")
    axes[0].plot(t, p50, lw=1, color="tab:blue", label="p50")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("ingest latency\n(ms, per 100 ms)")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[1].plot(t, [s.backlog for s in run.samples], color="tab:purple")
    axes[1].set_ylabel("backlog\n(events in spool)")
    axes[2].plot(t, rate, lw=1, color="tab:green")
    axes[2].set_ylabel("delivered\n(events/s, 1 s window)")
    axes[3].step(t, [s.breaker for s in run.samples], where="post", color="black")
    axes[3].set_yticks([0, 1, 2], ["closed", "half-open", "open"])
    axes[3].set_ylabel("breaker")
    axes[3].set_xlabel("time (s)")
    shades = {"slow": "#fff3c4", "erroring": "#ffd8c4", "down": "#f4c4c4"}
    bounds = [*run.phase_starts[1:], ("", t[-1] if t else 0.0)]
    for (name, start), (_, end) in zip(run.phase_starts, bounds, strict=False):
        for ax in axes:
            if name in shades:
                ax.axvspan(start, end, color=shades[name], lw=0)
            ax.axvline(start, color="grey", lw=0.5, ls=":")
        if end - start < 2:  # the short tail after the load: no room for a label
            continue
        axes[0].text((start + end) / 2, 1.02, name, transform=axes[0].get_xaxis_transform(),
                     ha="center", va="bottom", fontsize=9)  # fmt: skip
    fig.suptitle("lineage-relay under an OpenMetadata outage (steady load)", fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s phases (< 60 s in all)")
    parser.add_argument("--phase-s", type=float, help="seconds per phase (default 15; quick 5)")
    parser.add_argument("--rate", type=float, default=100.0, help="events posted per second")
    parser.add_argument("--recovery-timeout-s", type=float, default=2.0)
    parser.add_argument("--drain-timeout-s", type=float, default=60.0)
    parser.add_argument("--plot", type=Path, default=RESULTS / "outage.png")
    args = parser.parse_args()
    args.phase_s = args.phase_s or (5.0 if args.quick else 15.0)
    exit_on_sigterm()
    env = {
        # the native endpoint keeps every event it receives: what the lost count checks
        "LINEAGE_RELAY_OPENMETADATA_SINK": "openlineage",
        "LINEAGE_RELAY_OPENMETADATA_JWT_TOKEN_ENV": "BENCH_OPENMETADATA_TOKEN",
        "BENCH_OPENMETADATA_TOKEN": TOKEN,
        "LINEAGE_RELAY_OPENMETADATA_RETRY_DELAY_MS": "200",
        "LINEAGE_RELAY_OPENMETADATA_RETRY_MAX_DELAY_MS": "2000",
        "LINEAGE_RELAY_BREAKER_RECOVERY_TIMEOUT_S": str(args.recovery_timeout_s),
        "LINEAGE_RELAY_BREAKER_MAX_RECOVERY_TIMEOUT_S": str(2 * args.recovery_timeout_s),
    }
    with tempfile.TemporaryDirectory(prefix="bench-outage-") as tmp:
        work = Path(tmp)
        mock_args = ["--event-log-limit", "1000000", "--request-log-limit", "100"]
        with MockProcess(work, catalog=CATALOG, token=TOKEN, args=mock_args) as mock:
            env["LINEAGE_RELAY_OPENMETADATA_HOST_PORT"] = mock.url
            with RelayProcess(work, work / "spool", env=env) as relay:
                run = asyncio.run(drive(args, mock, relay))
                delivered = delivered_run_ids(mock)
    lost = len(run.acked - delivered)
    all_ms = [ms for _, ms in run.latencies]
    mode = "quick" if args.quick else "full"
    print(f"outage ({mode}): {len(PHASES)} phases of {args.phase_s:g} s, {args.rate:g} events/s, "
          f"{len(run.acked)} acknowledged, {run.refused} refused, {len(delivered)} runs "
          "reached the mock")  # fmt: skip
    print()
    table(run)
    print()
    plot(run, args.plot)
    shown = args.plot.resolve()  # the report is committed: no machine's path in it
    print(f"plot: {shown.relative_to(REPO) if shown.is_relative_to(REPO) else shown.name}")
    print()
    print(f"RESULT outage_events_lost={lost}")
    print(f"RESULT outage_ingest_p99_ms={percentile(all_ms, 0.99):.2f}")
    print(f"RESULT outage_drain_s={drain_s(run):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
