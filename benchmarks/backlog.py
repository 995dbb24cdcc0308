"""A big backlog: the relay's memory while it builds up, and its cold start after kill -9.

    python benchmarks/backlog.py [--quick] [--events N] [--concurrency C] [--batch B]

1. Starts `lineage-relay serve` (a process, as shipped) with OpenMetadata down (nothing listens
   at its address yet) and posts N real sample events (the project's Spark fixtures with new
   run ids, about 3 KB each on average) to /api/v1/lineage/batch, C requests at a time, B
   events each. The relay's RSS is sampled all along (VmRSS from /proc) and once more after.
2. Kills the relay with SIGKILL while the backlog waits, starts the mock OpenMetadata on the
   address the relay was told, and starts the relay again on the same spool.
3. Measures, from the moment the new process is spawned (interpreter start and imports
   included), the time until `GET /health` answers (any status: OpenMetadata's state is not
   the question) and until the mock has received the first event from the backlog (through
   the native OpenLineage endpoint: `openmetadata.sink = "openlineage"`).

Ends with `RESULT backlog_rss_mb=` (the highest RSS seen while building), `RESULT
restart_ready_s=` and `RESULT restart_first_delivery_s=`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from _proc import rss_mb, stop

REPO = Path(__file__).resolve().parent.parent
SPARK = REPO / "tests" / "fixtures" / "events" / "spark"
# About 3 KB on average: two application-run events, a small and a large action-run event.
SAMPLES = (
    "01_START_orders_daily.json",
    "04_COMPLETE_insert_revenue_by_country.json",
    "05_COMPLETE_orders_daily.json",
    "01_START_orders_daily.json",
)
TOKEN = "bench-token"  # noqa: S105 -- what the mock child accepts, not a secret


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def batches(n: int, size: int) -> list[bytes]:
    """`n` events as JSON array bodies of `size` events; every event gets new run ids."""
    samples = [json.loads((SPARK / name).read_bytes()) for name in SAMPLES]
    bodies: list[bytes] = []
    chunk: list[bytes] = []
    for i in range(n):
        event = samples[i % len(samples)]
        event["run"]["runId"] = str(uuid.uuid4())
        chunk.append(json.dumps(event, separators=(",", ":")).encode())
        if len(chunk) == size or i == n - 1:
            bodies.append(b"[" + b",".join(chunk) + b"]")
            chunk = []
    return bodies


def start_relay(spool: Path, port: int, om_port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_RELAY_")}
    env["LINEAGE_RELAY_OPENMETADATA_HOST_PORT"] = f"http://127.0.0.1:{om_port}/api"
    env["LINEAGE_RELAY_OPENMETADATA_JWT_TOKEN"] = TOKEN
    # The native endpoint: the mock keeps every event it received there, which is what tells
    # the first delivery (the rest sink's calls depend on the catalog it finds).
    env["LINEAGE_RELAY_OPENMETADATA_SINK"] = "openlineage"
    out = open(log, "ab")  # noqa: SIM115 -- the child keeps it; closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--listen", f"127.0.0.1:{port}",
         "--spool-dir", str(spool), "--log-level", "warning"],
        stdout=out, stderr=out, env=env, cwd=REPO,
    )  # fmt: skip


def start_mock(port: int, control_port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "relay", "mock-openmetadata", "--listen", f"127.0.0.1:{port}",
         "--control-listen", f"127.0.0.1:{control_port}", "--token", TOKEN,
         "--request-log-limit", "100", "--event-log-limit", "1000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
    )  # fmt: skip


async def wait_answer(http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes],
                      timeout_s: float = 60.0) -> float:  # fmt: skip
    """Poll `url` every 5 ms until it answers with any status; the monotonic time it did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                await resp.read()
                return time.monotonic()
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the process exited with {proc.returncode}")
        await asyncio.sleep(0.005)
    raise SystemExit(f"{url} did not answer within {timeout_s} s")


async def wait_delivered(http: aiohttp.ClientSession, control: str, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.get(f"{control}/mock/openlineage-events") as resp:
                if resp.status == 200 and (await resp.json()):
                    return time.monotonic()
        await asyncio.sleep(0.01)
    raise SystemExit(f"no event reached the mock within {timeout_s} s")


async def build(url: str, bodies: list[bytes], concurrency: int, pid: int) -> tuple[float, float]:
    """Post every body; return (seconds, highest RSS in MB seen meanwhile)."""
    peak = 0.0
    pending = list(reversed(bodies))
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb(pid) or 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.2)

    async def client(http: aiohttp.ClientSession) -> None:
        while pending:
            body = pending.pop()
            for _attempt in range(100):
                async with http.post(
                    f"{url}/api/v1/lineage/batch", data=body,
                    headers={"Content-Type": "application/json"},
                ) as resp:  # fmt: skip
                    await resp.read()
                    if resp.status == 201:
                        break
                    if resp.status != 503:
                        raise SystemExit(f"the relay answered {resp.status}: {await resp.text()}")
                await asyncio.sleep(0.05)

    started = time.monotonic()
    sampler = asyncio.create_task(sample())
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    seconds = time.monotonic() - started
    done.set()
    await sampler
    return seconds, max(peak, rss_mb(pid) or 0.0)


async def run(args: argparse.Namespace) -> None:
    bodies = batches(args.events, args.batch)
    body_bytes = sum(len(b) for b in bodies) - 2 * len(bodies)
    print(f"backlog: {args.events} events, {body_bytes / args.events:.0f} bytes each on average, "
          f"posted {args.batch} per request, {args.concurrency} requests at a time; "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    relay_port, om_port, control_port = free_port(), free_port(), free_port()
    url = f"http://127.0.0.1:{relay_port}"
    with tempfile.TemporaryDirectory(prefix="bench-backlog-") as tmp:
        spool, log = Path(tmp) / "spool", Path(tmp) / "relay.log"
        relay = start_relay(spool, relay_port, om_port, log)
        mock: subprocess.Popen[bytes] | None = None
        try:
            async with aiohttp.ClientSession() as http:
                await wait_answer(http, f"{url}/health", relay)
                build_s, peak = await build(url, bodies, args.concurrency, relay.pid)
                await asyncio.sleep(1.0)  # let the forwarder's first attempts settle
                after = rss_mb(relay.pid) or 0.0
                relay.send_signal(signal.SIGKILL)
                relay.wait()
                spool_mb = sum(p.stat().st_size for p in spool.iterdir() if p.is_file()) / 2**20
                mock = start_mock(om_port, control_port)
                control = f"http://127.0.0.1:{control_port}"
                await wait_answer(http, f"{control}/mock/health", mock)
                spawned = time.monotonic()
                relay = start_relay(spool, relay_port, om_port, log)
                ready = await wait_answer(http, f"{url}/health", relay)
                delivered = await wait_delivered(http, control, 120)
                ready_rss = rss_mb(relay.pid) or 0.0
        finally:
            for proc in (relay, mock):
                if proc is not None and proc.poll() is None:
                    stop(proc, 30)

    print()
    print("| step | figure |")
    print("|---|---|")
    print(f"| build: {args.events} events posted | {build_s:.1f} s "
          f"({args.events / build_s:.0f} events/s) |")  # fmt: skip
    print(f"| spool on disk at the kill | {spool_mb:.0f} MB |")
    print(f"| relay RSS while building (highest) | {peak:.0f} MB |")
    print(f"| relay RSS after building | {after:.0f} MB |")
    print(f"| restart: /health answers | {ready - spawned:.3f} s after spawn |")
    print(f"| restart: first event at the mock | {delivered - spawned:.3f} s after spawn |")
    print(f"| restarted relay RSS at first delivery | {ready_rss:.0f} MB |")
    print(f"RESULT backlog_rss_mb={peak:.0f}")
    print(f"RESULT restart_ready_s={ready - spawned:.3f}")
    print(f"RESULT restart_first_delivery_s={delivered - spawned:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 40k-event backlog (< 60 s)")
    parser.add_argument("--events", type=int, help="backlog size (default 200000)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    if args.events is None:
        args.events = 40_000 if args.quick else 200_000
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
