"""Spool append throughput and latency (durable: every append waits for its fsync'd commit).

    python benchmarks/spool_append.py [--quick] [--seconds S] [--size BYTES] [--dir DIR]

Closed loop: C tasks each append one ~3.5 KB event at a time, for concurrency 1, 16 and 64.
Prints a table and ends with `RESULT spool_appends_per_s=...` and `RESULT spool_append_p99_ms=...`
(both at concurrency 16). With --drain, a forwarder-like task leases and acks 500 at a time
concurrently, so the spool stays small and commits carry deletes too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import orjson

from relay._config import SpoolConfig
from relay._events import EventKey
from relay._observe.metrics import Metrics
from relay._spool import Spool


def make_event(size: int) -> tuple[bytes, EventKey]:
    """A Spark COMPLETE RunEvent-shaped body padded to about `size` bytes."""
    fields = [
        {"name": f"column_{i}", "type": "string", "description": "a column of the table"}
        for i in range(12)
    ]
    event: dict[str, object] = {
        "eventType": "COMPLETE",
        "eventTime": "2026-11-26T10:00:00.000Z",
        "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.20.0/integration/spark",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": "0191d9a1-7c4e-7b7e-8a5b-3f4c2d1e0f9a", "facets": {}},
        "job": {"namespace": "spark-prod", "name": "etl.orders_daily", "facets": {}},
        "inputs": [{"namespace": "hive://metastore", "name": "raw.orders",
                    "facets": {"schema": {"fields": fields}}}],
        "outputs": [{"namespace": "hive://metastore", "name": "mart.orders_daily",
                     "facets": {"schema": {"fields": fields}}}],
    }  # fmt: skip
    raw = orjson.dumps(event)
    event["pad"] = "x" * max(0, size - len(raw) - 10)
    raw = orjson.dumps(event)
    key = EventKey(
        kind="run", event_time="2026-11-26T10:00:00.000Z", producer="bench",
        event_type="COMPLETE", run_id="0191d9a1", job_namespace="spark-prod",
        job_name="etl.orders_daily",
    )  # fmt: skip
    return raw, key


async def run_level(
    directory: Path, concurrency: int, seconds: float, size: int, drain: bool
) -> dict[str, float]:
    event = make_event(size)
    config = SpoolConfig(dir=directory, max_bytes=50 * 1024**3)
    latencies: list[float] = []
    async with await Spool.open(config, metrics=Metrics()) as spool:
        commits_before = spool.stats().commits
        deadline = time.perf_counter() + seconds
        stop = False

        async def client() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await spool.append([event])
                latencies.append(time.perf_counter() - started)

        async def drainer() -> None:
            while not stop:
                leased = await spool.lease(max_events=500, max_bytes=5 * 1024**2, lease_s=30)
                if leased:
                    await spool.ack([e.id for e in leased])
                else:
                    await spool.wait_for_events(0.05)

        started = time.perf_counter()
        drain_task = asyncio.create_task(drainer()) if drain else None
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        stop = True
        if drain_task is not None:
            await drain_task
        commits = spool.stats().commits - commits_before
    latencies.sort()
    return {
        "rate": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "per_commit": len(latencies) / max(1, commits),
    }


def fsync_floor(directory: Path, seconds: float = 1.0) -> tuple[float, float]:
    """p50/p99 ms of write(4 KiB) + fdatasync in `directory`: what one commit cannot beat."""
    path = directory / "fsync-probe"
    latencies: list[float] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            os.pwrite(fd, b"x" * 4096, 0)
            started = time.perf_counter()
            os.fdatasync(fd)
            latencies.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()
    latencies.sort()
    return 1000 * latencies[len(latencies) // 2], 1000 * latencies[int(len(latencies) * 0.99)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per level (< 60 s in all)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per level")
    parser.add_argument("--size", type=int, default=3500, help="event size in bytes")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the scratch spools")
    parser.add_argument("--drain", action="store_true", help="lease+ack concurrently")
    args = parser.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    with tempfile.TemporaryDirectory(prefix="spool-bench-", dir=args.dir) as scratch:
        await run(args, seconds, Path(scratch))


async def run(args: argparse.Namespace, seconds: float, base: Path) -> None:
    floor_p50, floor_p99 = fsync_floor(base)
    drain = ", with drain" if args.drain else ""
    print(f"spool append benchmark: {args.size}-byte events, {seconds:g} s per level, "
          f"synchronous=FULL, spool in a scratch directory{drain}")  # fmt: skip
    print(f"disk: write 4 KiB + fdatasync p50 {floor_p50:.2f} ms, p99 {floor_p99:.2f} ms")
    print(f"| {'concurrency':>11} | {'appends/s':>10} | {'p50 ms':>8} | {'p99 ms':>8} | "
          f"{'per commit':>10} |")  # fmt: skip
    print(f"|{'-' * 12}:|{'-' * 11}:|{'-' * 9}:|{'-' * 9}:|{'-' * 11}:|")
    results: dict[int, dict[str, float]] = {}
    for concurrency in (1, 16, 64):
        r = await run_level(base / f"c{concurrency}", concurrency, seconds, args.size, args.drain)
        results[concurrency] = r
        print(f"| {concurrency:>11} | {r['rate']:>10.0f} | {r['p50_ms']:>8.2f} | "
              f"{r['p99_ms']:>8.2f} | {r['per_commit']:>10.1f} |")  # fmt: skip
    print(f"RESULT spool_appends_per_s={results[16]['rate']:.0f}")
    print(f"RESULT spool_append_p99_ms={results[16]['p99_ms']:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
