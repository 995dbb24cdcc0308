"""How many calls per second the mock OpenMetadata itself sustains.

Starts the mock as a separate process (``python -m relay.testing.mock_openmetadata``) with a
generated catalog, then loads it from this process with an aiohttp client: a cheap GET
(table by FQN), ``PUT /api/v1/lineage`` and the native batch endpoint (100-event batches).
Each phase is bounded by a call count and a duration and stops by itself.

    python benchmarks/mock_capacity.py --quick

Prints a table and ends with ``RESULT mock_calls_per_s=...``: the lowest call rate of the
three phases, so a benchmark that stays below it knows the mock is not its bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
TOKEN = "benchmark-token"  # noqa: S105 - the mock's throwaway test token
SERVICE = "bench_hive"
TABLES = 200
BATCH_EVENTS = 100
READY = re.compile(r"mock-openmetadata listening on (\S+) \(control (\S+)\)")


@dataclass(frozen=True, slots=True)
class PhaseResult:
    name: str
    calls: int
    seconds: float
    latencies_ms: list[float]

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def percentile_ms(self, fraction: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def write_catalog(directory: Path) -> Path:
    columns = [{"name": f"col_{i}", "dataType": "VARCHAR"} for i in range(10)]
    catalog = {
        "databaseServices": [{"name": SERVICE, "serviceType": "Hive"}],
        "databases": [{"name": "warehouse", "service": SERVICE}],
        "databaseSchemas": [{"name": "bench", "database": f"{SERVICE}.warehouse"}],
        "tables": [
            {"name": f"t{i}", "databaseSchema": f"{SERVICE}.warehouse.bench", "columns": columns}
            for i in range(TABLES)
        ],
        "pipelineServices": [{"name": "openlineage", "serviceType": "OpenLineage"}],
    }
    path = directory / "catalog.json"
    path.write_text(json.dumps(catalog), encoding="utf-8")
    return path


def event(rng: random.Random) -> dict[str, Any]:
    source, target = rng.sample(range(TABLES), 2)

    def dataset(index: int) -> dict[str, Any]:
        return {
            "namespace": "hdfs://namenode:8020",
            "name": f"/warehouse/bench.db/t{index}",
            "facets": {
                "symlinks": {
                    "_producer": "benchmark",
                    "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/SymlinksDatasetFacet.json",
                    "identifiers": [
                        {
                            "namespace": "hive://metastore:9083",
                            "name": f"bench.t{index}",
                            "type": "TABLE",
                        }
                    ],
                }
            },
        }

    return {
        "eventTime": "2026-11-26T10:15:30.123Z",
        "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.20.0/integration/spark",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "eventType": "COMPLETE",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "default", "name": f"bench_app.insert_t{target}"},
        "inputs": [dataset(source)],
        "outputs": [dataset(target)],
    }


async def start_mock(catalog: Path) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay.testing.mock_openmetadata",
        "--listen",
        "127.0.0.1:0",
        "--token",
        TOKEN,
        "--catalog",
        str(catalog),
        "--request-log-limit",
        "100",
        "--event-log-limit",
        "1000",
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), timeout=60)).decode()
    match = READY.match(line)
    if not match:
        process.kill()
        await process.wait()
        raise RuntimeError(f"the mock did not start: {line!r}")
    return process, match.group(1)


async def run_phase(
    name: str,
    call: Callable[[random.Random], Awaitable[None]],
    *,
    concurrency: int,
    max_calls: int,
    max_seconds: float,
) -> PhaseResult:
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + max_seconds
    issued = 0

    async def worker(seed: int) -> None:
        nonlocal issued
        rng = random.Random(seed)
        while issued < max_calls and time.perf_counter() < deadline:
            issued += 1
            begin = time.perf_counter()
            await call(rng)
            latencies.append((time.perf_counter() - begin) * 1000.0)

    await asyncio.gather(*(worker(seed) for seed in range(concurrency)))
    return PhaseResult(name, len(latencies), time.perf_counter() - started, latencies)


async def measure(args: argparse.Namespace) -> list[PhaseResult]:
    with tempfile.TemporaryDirectory() as tmp:
        process, url = await start_mock(write_catalog(Path(tmp)))
        try:
            connector = aiohttp.TCPConnector(limit=args.concurrency)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
                return await _phases(session, url, args)
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), timeout=30)


async def _phases(
    session: aiohttp.ClientSession, url: str, args: argparse.Namespace
) -> list[PhaseResult]:
    ids: list[str] = []
    for index in range(TABLES):
        async with session.get(f"{url}/v1/tables/name/{SERVICE}.warehouse.bench.t{index}") as resp:
            ids.append((await resp.json())["id"])
    batches = [[event(random.Random(i * 1000 + j)) for j in range(BATCH_EVENTS)] for i in range(20)]
    bodies = [json.dumps({"events": batch}).encode() for batch in batches]

    async def expect(resp: aiohttp.ClientResponse, ok: tuple[int, ...]) -> None:
        await resp.read()
        if resp.status not in ok:
            raise RuntimeError(f"{resp.method} {resp.url.path} answered {resp.status}")

    async def get_table(rng: random.Random) -> None:
        fqn = f"{SERVICE}.warehouse.bench.t{rng.randrange(TABLES)}"
        async with session.get(f"{url}/v1/tables/name/{fqn}") as resp:
            await expect(resp, (200,))

    async def put_lineage(rng: random.Random) -> None:
        source, target = rng.sample(ids, 2)
        body = {
            "edge": {
                "fromEntity": {"id": source, "type": "table"},
                "toEntity": {"id": target, "type": "table"},
                "lineageDetails": {"source": "SparkLineage"},
            }
        }
        async with session.put(f"{url}/v1/lineage", json=body) as resp:
            await expect(resp, (200,))

    async def post_batch(rng: random.Random) -> None:
        body = rng.choice(bodies)
        async with session.post(
            f"{url}/v1/openlineage/lineage/batch",
            data=body,
            headers={"Content-Type": "application/json"},
        ) as resp:
            await expect(resp, (200,))

    seconds = 3.0 if args.quick else 10.0
    results = []
    for name, call, max_calls in (
        ("GET table by FQN", get_table, 50_000),
        ("PUT lineage", put_lineage, 50_000),
        (f"POST batch ({BATCH_EVENTS} events)", post_batch, 5_000),
    ):
        results.append(
            await run_phase(
                name,
                call,
                concurrency=args.concurrency,
                max_calls=max_calls,
                max_seconds=seconds,
            )
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 s per phase instead of 10 s")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent client requests")
    args = parser.parse_args(argv)
    results = asyncio.run(measure(args))
    print(f"mock OpenMetadata capacity (client concurrency {args.concurrency}, separate process)")
    print(f"| {'call':<28} | {'calls':>7} | {'seconds':>8} | {'calls/s':>9} | {'p50 ms':>8} | "
          f"{'p99 ms':>8} |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for result in results:
        print(
            f"| {result.name:<28} | {result.calls:>7} | {result.seconds:>8.2f} | "
            f"{result.calls_per_s:>9.0f} | {result.percentile_ms(0.5):>8.2f} | "
            f"{result.percentile_ms(0.99):>8.2f} |"
        )
    get, put, batch = results
    print(f"RESULT mock_get_calls_per_s={get.calls_per_s:.0f}")
    print(f"RESULT mock_put_lineage_calls_per_s={put.calls_per_s:.0f}")
    print(f"RESULT mock_batch_calls_per_s={batch.calls_per_s:.0f}")
    print(f"RESULT mock_batch_events_per_s={batch.calls_per_s * BATCH_EVENTS:.0f}")
    print(f"RESULT mock_calls_per_s={min(r.calls_per_s for r in results):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
