"""Ingest throughput and latency: the relay against a bare aiohttp handler.

Each server runs in its own process on 127.0.0.1; all are loaded in the same run,
with a real Spark COMPLETE event (the project's own sample under tests/fixtures), at 16
concurrent keep-alive connections. Every request carries its own runId, as real jobs'
events do: one body posted again and again would be a client retry storm, which the
forwarder drops as duplicates, and that work would be counted as ingest cost.

    bare      aiohttp POST handler: reads the body, answers 201 (no parsing, no storing)
    envelope  the bare handler plus the relay's own envelope check (msgspec parse, body
              hash) and its 201 JSON answer, still storing nothing: the ceiling of any
              relay that checks what it acknowledges, on this machine
    floor     the envelope handler plus the relay's spool (`Spool.append`: SQLite, fsync'd
              group commit) and nothing else: no admission, metrics, logging or delivery.
              What any relay that checks and durably stores each event on this store costs
    logfloor  the envelope handler plus an append-only log file instead of SQLite: one thread
              writes each group of events once (length, CRC-32, body) and fdatasyncs it before
              their 201s, handed over as the spool does (a queue in, the loop's call_soon_-
              threadsafe out). Not a store (no leases, acks or recovery): what a relay on a
              store that writes each event once could cost, against `floor`
    relay     `lineage-relay serve` as shipped: envelope check, SQLite spool with fsync'd
              group commit, metrics, delivery part running (towards an address where
              nothing listens, so it backs off); log level info, as shipped

Then bare, logfloor and relay again at ONE connection: the latency of a lone client, which no
group commit can hide. The servers run side by side and are loaded in turn, in 3 rounds (1 with
--quick); every RESULT is the median over the rounds of the figure (ratios taken per round).
Each server's CPU time (user + system, all threads, from /proc) is read over the measured
window, so what one acknowledged event costs the host is known, not only how many pass: the
relay shares its host with a Spark driver.

The load generator is `wrk` with a Lua POST script when installed, else an aiohttp
client in a separate process. Output: a table, then

    RESULT ingest_ratio=<relay req/s / bare req/s>
    RESULT ingest_p99_ms=<relay p99 latency in ms>
    RESULT ingest_envelope_ratio=<envelope req/s / bare req/s>
    RESULT ingest_cpu_ratio=<relay CPU per acknowledged event / bare CPU per request>
    RESULT ingest_floor_cpu_ratio=<floor CPU per acknowledged event / bare CPU per request>
    RESULT ingest_single_p50_over_limit_ms=<relay p50 - (bare p50 + 1.5 x fsync p50)>, 1 conn.
    RESULT ingest_log_floor_ratio= / _p99_ms= / _cpu_ratio= / _single_p50_over_limit_ms=
           (the same four figures for logfloor)

(the last one is <= 0 when a lone client waits no longer than the bare handler plus one and a
half fsyncs of this disk, measured in the same run.)

Usage: python benchmarks/ingest.py [--quick] [--duration S] [--connections N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from _ingest_servers import BASELINES, PATH, start_baseline, start_relay
from _proc import cpu_s, stop

REPO = Path(__file__).resolve().parent.parent
EVENT = (
    REPO / "tests" / "fixtures" / "events" / "spark" / "04_COMPLETE_insert_revenue_by_country.json"
)


@dataclass
class Result:
    name: str
    requests: int
    non_2xx: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_s: float | None = None  # the server's CPU time over the measured window

    @property
    def acknowledged(self) -> int:
        return self.requests - self.non_2xx

    @property
    def cpu_us_per_request(self) -> float | None:
        if self.cpu_s is None or not self.acknowledged:
            return None
        return self.cpu_s / self.acknowledged * 1e6


# -- load generators ----------------------------------------------------------------------

# Each request gets its own runId: the first 13 characters of the sample's ("0193a1f3-0b11")
# become a request counter and the load run's number, so neither the warm-up and the measured
# run nor two requests ever send the same event.
_RUN_ID_FIELD = b'"runId":"'
_RUN_ID_PREFIX_CHARS = 13
_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_EVENT"), "rb"))
local body = f:read("*a")
f:close()
local _, e = string.find(body, '"runId":"', 1, true)
local head, tail = string.sub(body, 1, e), string.sub(body, e + 14)
local run = tonumber(os.getenv("BENCH_RUN"))
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, head .. string.format("%08x-%04x", n, run) .. tail)
end
"""
_load_runs = itertools.count(1)


def event_parts(body: bytes) -> tuple[bytes, bytes]:
    """The sample event around the run id's first 13 characters (see `_LUA`)."""
    start = body.index(_RUN_ID_FIELD) + len(_RUN_ID_FIELD)
    return body[:start], body[start + _RUN_ID_PREFIX_CHARS :]


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def load_wrk(name: str, url: str, duration_s: int, connections: int, workdir: Path) -> Result:
    script = workdir / "post.lua"
    script.write_text(_LUA)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", "-s", str(script),
         url + PATH],
        capture_output=True, text=True,
        env={**os.environ, "BENCH_EVENT": str(EVENT), "BENCH_RUN": str(next(_load_runs) % 65536)},
        timeout=duration_s + 60, check=True,
    ).stdout  # fmt: skip
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Result(
        name=name,
        requests=requests,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        errors=sum(int(g) for g in errors.groups()) if errors else 0,
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(re.search(r"\n\s+50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        p99_ms=_ms(re.search(r"\n\s+99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
    )


def loadgen_child(url: str, duration_s: float, connections: int, run: int) -> None:
    """Child process: aiohttp client load; prints one JSON line of results."""
    import aiohttp

    head, tail = event_parts(EVENT.read_bytes())
    sent = itertools.count(1)
    latencies: list[float] = []
    counts = {"non_2xx": 0, "errors": 0}

    async def worker(http: aiohttp.ClientSession, until: float) -> None:
        while time.monotonic() < until:
            started = time.perf_counter()
            try:
                body = head + b"%08x-%04x" % (next(sent), run) + tail
                async with http.post(
                    url + PATH, data=body, headers={"Content-Type": "application/json"}
                ) as resp:
                    await resp.read()
                    if not 200 <= resp.status < 300:
                        counts["non_2xx"] += 1
            except aiohttp.ClientError:
                counts["errors"] += 1
            latencies.append(time.perf_counter() - started)

    async def main() -> float:
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector) as http:
            started = time.monotonic()
            until = started + duration_s
            await asyncio.gather(*(worker(http, until) for _ in range(connections)))
            return time.monotonic() - started

    elapsed = asyncio.run(main())
    latencies.sort()
    print(json.dumps({
        "requests": len(latencies), "elapsed": elapsed, **counts,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }))  # fmt: skip


def load_aiohttp(name: str, url: str, duration_s: int, connections: int) -> Result:
    out = subprocess.run(
        [sys.executable, __file__, "--loadgen", url, str(duration_s), str(connections),
         str(next(_load_runs) % 65536)],
        capture_output=True, text=True, timeout=duration_s + 60, check=True,
    ).stdout  # fmt: skip
    data = json.loads(out.strip().splitlines()[-1])
    return Result(
        name=name, requests=data["requests"], non_2xx=data["non_2xx"], errors=data["errors"],
        rps=data["requests"] / data["elapsed"], p50_ms=data["p50"] * 1000,
        p99_ms=data["p99"] * 1000,
    )  # fmt: skip


# -- main ---------------------------------------------------------------------------------


def fsync_latency_ms(directory: Path, samples: int = 100) -> tuple[float, float]:
    """p50/p99 of write+fsync of one event-sized block: the floor under every durable ack."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    times: list[float] = []
    try:
        for _ in range(samples):
            os.write(fd, b"x" * 8192)
            started = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99) - 1]


def received_by_relay(url: str) -> int:
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:  # noqa: S310 -- loopback
        text = resp.read().decode()
    match = re.search(
        r'lineage_relay_events_received_total\{endpoint="/api/v1/lineage"\} (\S+)', text
    )
    return int(float(match.group(1))) if match else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (< 60 s in total)")
    parser.add_argument("--duration", type=int, help="seconds of load per server")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--tool", choices=("auto", "wrk", "aiohttp"), default="auto")
    args = parser.parse_args()
    duration = args.duration or (7 if args.quick else 30)
    use_wrk = args.tool == "wrk" or (args.tool == "auto" and shutil.which("wrk") is not None)
    tool = "wrk (1 thread, Lua POST script)" if use_wrk else "aiohttp client (separate process)"
    body = EVENT.read_bytes()
    print(f"event: {EVENT.relative_to(REPO)} ({len(body)} bytes, a Spark COMPLETE RunEvent)")
    print(f"load: {tool}, {args.connections} connections, {duration} s per server, "
          f"{os.cpu_count()} CPUs")  # fmt: skip

    def load(
        name: str, url: str, pid: int, workdir: Path, *, connections: int, seconds: int
    ) -> Result:
        # A short warm-up so every server is measured with warm connections and caches.
        if use_wrk:
            load_wrk(name, url, 1, connections, workdir)
        else:
            load_aiohttp(name, url, 1, connections)
        before = cpu_s(pid)
        if use_wrk:
            result = load_wrk(name, url, seconds, connections, workdir)
        else:
            result = load_aiohttp(name, url, seconds, connections)
        after = cpu_s(pid)
        if before is not None and after is not None:
            result.cpu_s = after - before
        return result

    # The servers run side by side and are loaded in turn, round after round: the machine's
    # speed drifts (other tenants, clock frequency) by more than the differences measured, and
    # a server loaded only at the start and another only at the end would carry that drift.
    # Each figure is the median over the rounds.
    rounds = 1 if args.quick else 3
    per_round = max(3, duration // rounds)
    single_s = max(3, duration // 2 // rounds)
    many: dict[str, list[Result]] = {}
    one: dict[str, list[Result]] = {"bare": [], "logfloor": [], "relay": []}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(tmp)
        fsync_p50, fsync_p99 = fsync_latency_ms(workdir)
        print(f"disk: fsync of an 8 KiB write p50 {fsync_p50:.2f} ms, p99 {fsync_p99:.2f} ms "
              f"(with {args.connections} connections, group commit caps the relay near "
              f"{args.connections * 1000 / fsync_p50:.0f} req/s)")  # fmt: skip
        print(f"{rounds} round(s): each server {per_round} s at {args.connections} connections, "
              f"then bare, logfloor and relay {single_s} s at one")  # fmt: skip
        servers: dict[str, tuple[subprocess.Popen[str] | subprocess.Popen[bytes], str]] = {}
        try:
            for kind in BASELINES:
                servers[kind] = start_baseline(kind, workdir / f"{kind}-spool")
            servers["relay"] = start_relay(workdir / "spool", workdir / "relay.log")
            for _ in range(rounds):
                for name, (proc, url) in servers.items():
                    many.setdefault(name, []).append(
                        load(name, url, proc.pid, workdir, connections=args.connections,
                             seconds=per_round)
                    )  # fmt: skip
                for name, results in one.items():
                    proc, url = servers[name]
                    results.append(
                        load(name, url, proc.pid, workdir, connections=1, seconds=single_s)
                    )
            stored = received_by_relay(servers["relay"][1])
        finally:
            for proc, _ in servers.values():
                stop(proc)

    def cpu(r: Result) -> str:
        us = r.cpu_us_per_request
        return "-" if us is None else f"{us:.0f}"

    print()
    print(f"| {'server':<9} | {'conns':>5} | {'round':>5} | {'requests':>9} | {'req/s':>9} | "
          f"{'p50 ms':>8} | {'p99 ms':>8} | {'non-2xx':>8} | {'errors':>7} | "
          f"{'CPU us/req':>10} |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = [(r, args.connections, i) for results in many.values() for i, r in enumerate(results)]
    rows += [(r, 1, i) for results in one.values() for i, r in enumerate(results)]
    for r, conns, i in rows:
        print(f"| {r.name:<9} | {conns:>5} | {i + 1:>5} | {r.requests:>9} | {r.rps:>9.0f} | "
              f"{r.p50_ms:>8.2f} | {r.p99_ms:>8.2f} | {r.non_2xx:>8} | {r.errors:>7} | "
              f"{cpu(r):>10} |")  # fmt: skip
    print(
        f"relay acknowledged and spooled {stored} events (incl. warm-ups), each fsync'd "
        "before its 201"
    )

    def ratio(name: str, of: Callable[[Result], float | None]) -> float | None:
        """Median over the rounds of `of(name's result) / of(bare's result)`."""
        values = [(of(r), of(b)) for r, b in zip(many[name], many["bare"], strict=True)]
        ratios = [a / b for a, b in values if a is not None and b]
        return statistics.median(ratios) if ratios else None

    def rps(r: Result) -> float:
        return r.rps

    def cpu_us(r: Result) -> float | None:
        return r.cpu_us_per_request

    def p99(name: str) -> float:
        return statistics.median(r.p99_ms for r in many[name])

    def single_p50(name: str) -> float:
        return statistics.median(r.p50_ms for r in one[name])

    bare_p50 = single_p50("bare")
    limit_ms = bare_p50 + 1.5 * fsync_p50
    print(
        f"one connection (medians): relay p50 {single_p50('relay'):.2f} ms, logfloor p50 "
        f"{single_p50('logfloor'):.2f} ms, against bare p50 {bare_p50:.2f} ms + 1.5 x fsync "
        f"p50 {fsync_p50:.2f} ms = {limit_ms:.2f} ms"
    )
    refused = sorted({r.name for r, _, _ in rows if r.non_2xx or r.errors})
    if refused:
        names = ", ".join(refused)
        print(f"WARNING: {names} refused or dropped requests; the figures are not clean")
    figures = {
        "ingest_ratio": ratio("relay", rps),
        "ingest_p99_ms": p99("relay"),
        "ingest_envelope_ratio": ratio("envelope", rps),
        "ingest_cpu_ratio": ratio("relay", cpu_us),
        "ingest_floor_cpu_ratio": ratio("floor", cpu_us),
        "ingest_single_p50_over_limit_ms": single_p50("relay") - limit_ms,
        "ingest_log_floor_ratio": ratio("logfloor", rps),
        "ingest_log_floor_p99_ms": p99("logfloor"),
        "ingest_log_floor_cpu_ratio": ratio("logfloor", cpu_us),
        "ingest_log_floor_single_p50_over_limit_ms": single_p50("logfloor") - limit_ms,
    }
    for name, value in figures.items():
        if value is not None:
            print(f"RESULT {name}={value:.3f}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--loadgen"]:
        loadgen_child(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        raise SystemExit(main())
