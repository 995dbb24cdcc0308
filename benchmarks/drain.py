"""Drain throughput: spool -> forwarder -> native OpenLineage batch endpoint of a mock.

    python benchmarks/drain.py [--quick] [--events N] [--latency-ms 20] [--pool 10]
                               [--batch 500] [--outage-s 10] [--target mock|stub|both]

0. Measures each stage alone on the same events, the most a drain can reach through it: the
   spool's lease, its ack, both overlapped as the forwarder does, building the sink's body, and
   the mock without latency (its own process, prebuilt bodies, `--pool` calls in flight).
1. Fills a spool with N real sample events (the project's Spark fixtures, each round with new
   run ids, as new Spark runs would be).
2. Starts the mock OpenMetadata in a child process (its own core) with `--latency-ms` per call,
   runs the forwarder (pool `--pool`, batches of `--batch`) until the spool is empty, and prints
   events/s, calls, and the ratio to the theoretical maximum pool x batch / latency.
   With `--target stub` (or both), the same is measured against a minimal endpoint that only
   reads the body, waits the latency and answers success, which shows how much of the gap is
   the mock's own processing (decoding each batch, checking it against its request models,
   resolving datasets, writing lineage) and not the relay. Relay and mock each need about a
   core: on a 2-core machine the drain through the mock stays below both "relay alone" (the
   stub run) and "mock alone" (step 0), since they share the cores.
3. A second run puts the mock down (connections refused) for `--outage-s` in the middle of
   the drain, then brings it back, and prints the time from recovery to an empty backlog.
4. The `rest` sink (`benchmarks/drain_rest.py`): `--rest-events` events through the forwarder
   and the rest sink to the mock with `--latency-ms`, caches warm: OpenMetadata calls per
   COMPLETE event (goal: at most the edges it carries + 1) and events/s.

Ends with `RESULT drain_events_per_s=...`, `RESULT drain_ratio=...`, `RESULT recovery_s=...`
(and `RESULT drain_stub_events_per_s=...` / `drain_stub_ratio` when the stub ran, and
`RESULT drain_slowest_stage_events_per_s=...`, the slowest stage of step 0), and
`RESULT rest_calls_per_complete=...`, `RESULT rest_drain_events_per_s=...`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from _proc import cpu_s
from aiohttp import web
from drain_rest import RestResult, rest_drain

from relay._clock import SystemClock
from relay._config import (
    BreakerConfig,
    ForwarderConfig,
    OpenMetadataConfig,
    SpoolConfig,
)
from relay._events import EventKey, SpooledEvent
from relay._forward.breaker import BreakerState
from relay._forward.forwarder import Forwarder
from relay._ingest.envelope import parse_event
from relay._observe.metrics import Metrics
from relay._secrets import make_token_provider
from relay._sinks.client import OpenMetadataClient
from relay._sinks.openlineage import OpenLineageSink, batch_body
from relay._spool import Spool

REPO = Path(__file__).resolve().parent.parent
SPARK = REPO / "tests" / "fixtures" / "events" / "spark"
CATALOG = REPO / "tests" / "fixtures" / "openmetadata" / "catalog_spark.json"
READY = "drain-target-ready"
TOKEN = "bench-token"  # noqa: S105 -- what the mock child accepts, not a secret


# -- the target (child process) ------------------------------------------------------------


async def _serve_mock(latency_ms: int) -> None:
    from relay.testing.mock_openmetadata import MockOpenMetadata

    mock = MockOpenMetadata(
        tokens=[TOKEN], catalog=CATALOG, latency_ms=latency_ms,
        request_log_limit=50, event_log_limit=50,
    )  # fmt: skip
    await mock.start()
    print(READY, mock.url, mock.control_url, flush=True)
    await _until_stdin_closes()
    await mock.aclose()


async def _serve_stub(latency_ms: int) -> None:
    """The cheapest honest endpoint: read the whole body, wait, answer success."""

    async def batch(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(latency_ms / 1000)
        return web.json_response({"status": "success", "failedEvents": []})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/api/v1/openlineage/lineage/batch", batch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(READY, f"http://127.0.0.1:{port}/api", "-", flush=True)
    await _until_stdin_closes()
    await runner.cleanup()


async def _until_stdin_closes() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


@dataclass
class Target:
    process: subprocess.Popen[str]
    url: str
    control_url: str

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


def start_target(kind: str, latency_ms: int) -> Target:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--latency-ms", str(latency_ms)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline().split()
    if not line or line[0] != READY:
        process.kill()
        raise RuntimeError(f"the {kind} target did not start: {line}")
    return Target(process, line[1], line[2])


# -- the relay side --------------------------------------------------------------------------


def sample_events(n: int, *, small: bool = False) -> list[tuple[bytes, EventKey]]:
    """N events from the Spark samples, each round with new run ids.

    `small`: only the application run's START and COMPLETE (about 1.4 KiB), to see the
    forwarder's own pace where the spool's byte throughput is not the limit.
    """
    paths = sorted(SPARK.glob("*.json"))
    if small:
        paths = [p for p in paths if p.stat().st_size < 4096]
    samples = [p.read_bytes() for p in paths]
    originals: list[str] = []
    for body in samples:
        run_id = parse_event(body).run_id
        if run_id and run_id not in originals:
            originals.append(run_id)
    items: list[tuple[bytes, EventKey]] = []
    while len(items) < n:
        mapping = {old.encode(): str(uuid.uuid4()).encode() for old in originals}
        for body in samples:
            for old, new in mapping.items():
                body = body.replace(old, new)
            items.append((body, parse_event(body)))
    return items[:n]


async def fill(spool: Spool, items: list[tuple[bytes, EventKey]]) -> None:
    for start in range(0, len(items), 2000):
        await spool.append(items[start : start + 2000])


@dataclass
class DrainResult:
    events: int
    bytes: int
    seconds: float
    calls: float
    recovery_s: float | None = None
    outage_calls: float | None = None
    probe_wait_s: float | None = None  # from recovery until the breaker closed
    call_ms: float | None = None  # mean duration of a call, seen by the client
    target_cpu: float | None = None  # share of one core the target used during the drain
    relay_cpu: float | None = None  # share of one core this process (forwarder + spool) used


def calls_made(metrics: Metrics) -> float:
    total = 0.0
    for metric in metrics.openmetadata_requests.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                total += sample.value
    return total


async def drain(
    directory: Path,
    items: list[tuple[bytes, EventKey]],
    target: Target,
    *,
    pool: int,
    batch: int,
    outage_s: float | None = None,
    recovery_timeout_s: float = 5.0,
) -> DrainResult:
    metrics = Metrics()
    spool = await Spool.open(SpoolConfig(dir=directory), metrics=metrics)
    await fill(spool, items)
    om = OpenMetadataConfig(
        host_port=target.url,
        connection_pool_size=pool,
        jwt_token_env="BENCH_OM_TOKEN",  # noqa: S106
    )
    tokens = make_token_provider(om, clock=SystemClock(), environ={"BENCH_OM_TOKEN": TOKEN})
    client = OpenMetadataClient(om, metrics=metrics, tokens=tokens)
    sink = OpenLineageSink(client, om)
    forwarder = Forwarder(
        spool, sink,
        forwarder=ForwarderConfig(max_batch_events=batch),
        openmetadata=om,
        breaker=BreakerConfig(recovery_timeout_s=recovery_timeout_s),
        metrics=metrics,
    )  # fmt: skip
    total_bytes = sum(len(body) for body, _ in items)
    recovery_s: float | None = None
    outage_calls: float | None = None
    closed_at: float | None = None
    probe_wait_s: float | None = None
    started = time.perf_counter()
    target_cpu_start = cpu_s(target.process.pid)
    relay_cpu_start = time.process_time()
    await forwarder.start()
    try:
        if outage_s is not None:
            while metrics.events_sent._value.get() < len(items) / 3:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            async with aiohttp.ClientSession() as http:
                await http.put(f"{target.control_url}/mock/faults", json={"mode": "down"})
                before = calls_made(metrics)
                await asyncio.sleep(outage_s)
                outage_calls = calls_made(metrics) - before
                await http.delete(f"{target.control_url}/mock/faults")
            recovered = time.perf_counter()
        while spool.stats().events:
            if closed_at is None and forwarder.breaker.state is BreakerState.CLOSED:
                closed_at = time.perf_counter()
            await asyncio.sleep(0.005)
        seconds = time.perf_counter() - started
        if outage_s is not None:
            recovery_s = time.perf_counter() - recovered
            probe_wait_s = (closed_at or recovered) - recovered
        target_cpu_end = cpu_s(target.process.pid)
        relay_cpu = (time.process_time() - relay_cpu_start) / seconds
    finally:
        await forwarder.aclose()
        await sink.aclose()
        await tokens.aclose()
        await spool.aclose()
    count = metrics.registry.get_sample_value("openmetadata_lineage_send_duration_seconds_count")
    total = metrics.registry.get_sample_value("openmetadata_lineage_send_duration_seconds_sum")
    call_ms = total / count * 1000 if count and total is not None else None
    target_cpu = (
        None
        if target_cpu_start is None or target_cpu_end is None
        else (target_cpu_end - target_cpu_start) / seconds
    )
    return DrainResult(
        events=len(items), bytes=total_bytes, seconds=seconds, calls=calls_made(metrics),
        recovery_s=recovery_s, outage_calls=outage_calls, probe_wait_s=probe_wait_s,
        call_ms=call_ms, target_cpu=target_cpu, relay_cpu=relay_cpu,
    )  # fmt: skip


@dataclass
class Stage:
    name: str
    events: int
    seconds: float
    cpu_s: float | None  # CPU the stage's process used meanwhile (all its threads)
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds


async def spool_stages(
    directory: Path, items: list[tuple[bytes, EventKey]], *, batch: int, pool: int
) -> list[Stage]:
    """The spool's share, each part alone: lease, ack, and both as the forwarder overlaps
    them (up to `pool` batches leased while the oldest is acked); plus the sink's body."""
    spool = await Spool.open(SpoolConfig(dir=directory), metrics=Metrics())
    try:
        await fill(spool, items)
        limit = 5 * 1024 * 1024
        cpu = [time.process_time()]
        started = time.perf_counter()
        batches: list[list[SpooledEvent]] = []
        while events := await spool.lease(max_events=batch, max_bytes=limit, lease_s=600):
            batches.append(events)
        leased = time.perf_counter()
        cpu.append(time.process_time())
        built = [batch_body(events) for events in batches]
        bodies = time.perf_counter()
        cpu.append(time.process_time())
        for events in batches:
            await spool.ack([e.id for e in events])
        acked = time.perf_counter()
        cpu.append(time.process_time())
        await fill(spool, items)
        cpu.append(time.process_time())
        overlap_started = time.perf_counter()
        held: list[list[SpooledEvent]] = []
        while True:
            events = await spool.lease(max_events=batch, max_bytes=limit, lease_s=600)
            if events:
                held.append(events)
            if held and (len(held) >= pool or not events):
                await spool.ack([e.id for e in held.pop(0)])
            if not events and not held:
                break
        overlapped = time.perf_counter()
        cpu.append(time.process_time())
    finally:
        await spool.aclose()
    n = len(items)
    del built
    return [
        Stage("spool lease", n, leased - started, cpu[1] - cpu[0],
              "read bodies, check CRCs, decode keys"),
        Stage("spool ack", n, acked - bodies, cpu[3] - cpu[2],
              "delete rows and bodies, fsync'd commit"),
        Stage("spool lease+ack", n, overlapped - overlap_started, cpu[5] - cpu[4],
              f"overlapped as the forwarder does ({pool} batches held)"),
        Stage("sink body building", n, bodies - leased, cpu[2] - cpu[1],
              '{"events":[raw,...]} from raw bytes'),
    ]  # fmt: skip


async def mock_alone(items: list[tuple[bytes, EventKey]], *, batch: int, pool: int) -> Stage:
    """The mock without its latency: prebuilt batch bodies, `pool` calls in flight."""
    events = [SpooledEvent(id=i, body=b, key=k, received_at=0.0) for i, (b, k) in enumerate(items)]
    bodies = [batch_body(events[i : i + batch]) for i in range(0, len(events), batch)]
    target = start_target("mock", 0)
    try:
        url = f"{target.url}/v1/openlineage/lineage/batch"
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        connector = aiohttp.TCPConnector(limit=pool)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
            queue = list(reversed(bodies))

            async def worker() -> None:
                while queue:
                    async with http.post(url, data=io.BytesIO(queue.pop())) as resp:
                        await resp.read()
                        if resp.status not in (200, 400):
                            raise RuntimeError(f"the mock answered {resp.status}")

            cpu_before = cpu_s(target.process.pid)
            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(pool)))
            seconds = time.perf_counter() - started
            cpu_after = cpu_s(target.process.pid)
    finally:
        target.stop()
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return Stage("mock alone", len(items), seconds, cpu, "decode, check, resolve; no latency")


def row(name: str, r: DrainResult, theoretical: float) -> str:
    rate = r.events / r.seconds
    call = "-" if r.call_ms is None else f"{r.call_ms:.0f}"
    target = "-" if r.target_cpu is None else f"{r.target_cpu:.0%}"
    relay = "-" if r.relay_cpu is None else f"{r.relay_cpu:.0%}"
    return (
        f"| {name:<22} | {r.events:>8} | {r.bytes / 1e6:>8.1f} | {r.seconds:>8.2f} | "
        f"{int(r.calls):>6} | {rate:>11.0f} | {rate / theoretical:>6.3f} | {call:>8} | "
        f"{relay:>9} | {target:>10} |"
    )


async def main(args: argparse.Namespace) -> None:
    # One line per failed batch during the outage would drown the table.
    logging.basicConfig(level=logging.ERROR)
    # Quick still drains 8 rounds of pool x batch: one round measures only the start-up.
    n = args.events or (20_000 if args.quick else 50_000)
    theoretical = args.pool * args.batch / (args.latency_ms / 1000)
    items = sample_events(n, small=args.small)
    avg_bytes = sum(len(b) for b, _ in items) / n
    print(
        f"events={n} (Spark samples, {sum(len(b) for b, _ in items) / n / 1024:.1f} KiB avg), "
        f"pool={args.pool}, batch={args.batch}, latency={args.latency_ms} ms, "
        f"theoretical max = pool x batch / latency = {theoretical:.0f} events/s"
    )
    results: dict[str, DrainResult] = {}
    with tempfile.TemporaryDirectory(prefix="drain-bench-") as tmp:
        stages = await spool_stages(Path(tmp) / "stages", items, batch=args.batch, pool=args.pool)
        stages.append(await mock_alone(items, batch=args.batch, pool=args.pool))
        print("each stage alone (the most any drain can reach through it):")
        # CPU per event is the steadier figure on a shared machine: wall time also counts
        # the moments another process had the core.
        print(
            f"| {'stage':<20} | {'events/s':>9} | {'MB/s':>7} | {'ratio':>6} | {'cpu_us/ev':>9} "
            f"| {'per core/s':>10} | what it does |"
        )
        print("|---|---:|---:|---:|---:|---:|---|")
        for stage in stages:
            cpu_us = None if stage.cpu_s is None else stage.cpu_s / stage.events * 1e6
            print(
                f"| {stage.name:<20} | {stage.rate:>9.0f} | {stage.rate * avg_bytes / 1e6:>7.0f} | "
                f"{stage.rate / theoretical:>6.3f} | "
                + ("        - |          -" if cpu_us is None else
                   f"{cpu_us:>9.1f} | {1e6 / cpu_us:>10.0f}")
                + f" | {stage.note} |"
            )  # fmt: skip
        print()
        print(
            f"| {'run':<22} | {'events':>8} | {'MB':>8} | {'s':>8} | {'calls':>6} | "
            f"{'events/s':>11} | {'ratio':>6} | {'call_ms':>8} | {'relay_cpu':>9} | "
            f"{'target_cpu':>10} |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        kinds = ["mock", "stub"] if args.target == "both" else [args.target]
        for kind in kinds:
            target = start_target(kind, args.latency_ms)
            try:
                result = await drain(
                    Path(tmp) / f"spool-{kind}", items, target, pool=args.pool, batch=args.batch,
                )  # fmt: skip
            finally:
                target.stop()
            results[kind] = result
            print(row(f"drain ({kind})", result, theoretical), flush=True)
        if args.outage_s > 0:
            # Enough for the outage to hit mid-drain: pool x batch events go out at once.
            outage_items = items + sample_events(
                max(0, 3 * args.pool * args.batch - n), small=args.small
            )
            target = start_target("mock", args.latency_ms)
            try:
                outage = await drain(
                    Path(tmp) / "spool-outage", outage_items, target, pool=args.pool,
                    batch=args.batch,
                    outage_s=args.outage_s,
                    recovery_timeout_s=args.recovery_timeout_s,
                )  # fmt: skip
            finally:
                target.stop()
            print(row(f"outage {args.outage_s:g}s (mock)", outage, theoretical))
            recovery, probe_wait = outage.recovery_s or 0.0, outage.probe_wait_s or 0.0
            print(
                f"  during the outage: {int(outage.outage_calls or 0)} calls (breaker probes "
                f"every {args.recovery_timeout_s:g} s doubling); from recovery to empty backlog: "
                f"{recovery:.2f} s = {probe_wait:.2f} s until the next probe closed the breaker + "
                f"{recovery - probe_wait:.2f} s draining the backlog"
            )
        # after the runs' table, which its line would cut in two
        rest = await _rest_run(Path(tmp), args)
    mock = results.get("mock")
    if mock is not None and mock.target_cpu is not None:
        per_event_ms = mock.target_cpu * mock.seconds / mock.events * 1000
        print(
            f"the mock process was busy {mock.target_cpu:.0%} of one core during its drain: "
            f"{per_event_ms:.3f} ms CPU per event (decode, check, resolve, write lineage)"
        )
    slowest = min(stages, key=lambda stage: stage.rate)
    print(
        f"the theoretical maximum is {theoretical:.0f} events/s = "
        f"{theoretical * avg_bytes / 1e6:.0f} MB/s of JSON for these "
        f"{avg_bytes / 1024:.1f} KiB events; the slowest stage alone ({slowest.name}) "
        f"reaches {slowest.rate:.0f} events/s, and the relay (spool + forwarder + client, one "
        f"process) and the mock each need about a core of the {os.cpu_count()} here"
    )
    first = results[kinds[0]]
    rate = first.events / first.seconds
    print(f"RESULT drain_events_per_s={rate:.0f}")
    print(f"RESULT drain_ratio={rate / theoretical:.3f}")
    print(f"RESULT drain_slowest_stage_events_per_s={slowest.rate:.0f}")
    if rest is not None:
        print(f"RESULT rest_calls_per_complete={rest.calls_per_complete:.2f}")
        print(f"RESULT rest_drain_events_per_s={rest.events_per_s:.0f}")
    if "stub" in results and kinds[0] != "stub":
        stub = results["stub"]
        print(f"RESULT drain_stub_events_per_s={stub.events / stub.seconds:.0f}")
        print(f"RESULT drain_stub_ratio={stub.events / stub.seconds / theoretical:.3f}")
    if args.outage_s > 0 and outage.recovery_s is not None:
        print(f"RESULT recovery_s={outage.recovery_s:.2f}")


async def _rest_run(tmp: Path, args: argparse.Namespace) -> RestResult | None:
    """Step 4: the rest sink, caches warm, through the mock with its latency."""
    n = args.rest_events or (1_000 if args.quick else 5_000)
    if n <= 0:
        return None
    samples = sample_events(5)  # one round: the application and its action, new run ids
    target = start_target("mock", args.latency_ms)
    try:
        result = await rest_drain(
            tmp / "spool-rest", samples, sample_events(n), target, token=TOKEN,
            pool=args.pool, batch=args.batch,
        )  # fmt: skip
    finally:
        target.stop()
    print(
        f"rest sink: {result.events} events in {result.seconds:.2f} s = "
        f"{result.events_per_s:.0f} events/s at {args.latency_ms} ms per call; "
        f"{result.calls} calls for {result.completes} COMPLETE events = "
        f"{result.calls_per_complete:.2f} per COMPLETE (goal <= edges + 1 = {result.goal:.2f})"
    )
    return result


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20k events (< 60 s in all)")
    parser.add_argument("--events", type=int, default=0, help="events in the spool")
    parser.add_argument("--latency-ms", type=int, default=20, help="latency per call at the mock")
    parser.add_argument("--pool", type=int, default=10, help="openmetadata.connection_pool_size")
    parser.add_argument("--batch", type=int, default=500, help="forwarder.max_batch_events")
    parser.add_argument("--outage-s", type=float, default=10.0, help="0: no outage run")
    parser.add_argument("--recovery-timeout-s", type=float, default=5.0,
                        help="breaker.recovery_timeout_s for the outage run")  # fmt: skip
    parser.add_argument("--target", choices=["mock", "stub", "both"], default="both")
    parser.add_argument(
        "--rest-events", type=int, default=0, help="events for the rest sink run (-1: none)"
    )
    parser.add_argument(
        "--small",
        action="store_true",
        help="only the small samples (START/COMPLETE of the application run)",
    )
    parser.add_argument("--serve", choices=["mock", "stub"], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    if arguments.serve == "mock":
        asyncio.run(_serve_mock(arguments.latency_ms))
    elif arguments.serve == "stub":
        asyncio.run(_serve_stub(arguments.latency_ms))
    else:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main(arguments))
