"""`lineage-relay status`: one screen from a running relay's /health and /metrics."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from ops_support import REPO, TOKEN, post_events, run_pair
from relay_support import StartRelay
from wait_support import wait_until

from relay._status import quantile
from relay.testing.mock_openmetadata import MockOpenMetadata


async def status(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relay", "status", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def line(screen: str, label: str) -> str:
    (found,) = [row for row in screen.splitlines() if row.strip().startswith(label)]
    return found


async def test_one_screen_of_a_healthy_relay_then_of_one_whose_openmetadata_is_down(
    mock: MockOpenMetadata, start_forwarding_relay: StartRelay
) -> None:
    relay = await start_forwarding_relay(**{"breaker.failure_threshold": 1})
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            await post_events(http, relay.url, run_pair())
        await wait_until(lambda: len(mock.openlineage_events) == 6)

        code, screen, err = await status("--url", relay.url, "--interval", "0.3")
        assert code == 0, screen + err
        assert screen.startswith(f"lineage-relay at {relay.url}: healthy")
        assert "(total 6)" in line(screen, "received")
        assert "(total 6)" in line(screen, "delivered")
        assert "events/s" in line(screen, "delivered")
        assert line(screen, "backlog").split()[1:3] == ["0", "events,"]
        assert "p50" in line(screen, "ingest") and "p99" in line(screen, "ingest")
        assert "since start" in line(screen, "send")  # nothing sent in the interval
        assert "closed" in line(screen, "breaker")
        assert line(screen, "openmetadata").split()[1:4] == ["up,", "sink", "openlineage,"]
        assert "0 held" in line(screen, "dead letters")
        assert TOKEN not in screen

        await mock.set_faults({"mode": "down"})
        await post_events(http, relay.url, run_pair())

        async def breaker_open() -> bool:
            async with http.get(f"{relay.url}/health") as response:
                document = await response.json()
            return bool(document["components"]["breaker"]["state"] == "open")

        await wait_until(breaker_open)
        code, screen, err = await status("--url", relay.url, "--interval", "0.3")
        assert code == 1, screen + err
        assert screen.startswith(f"lineage-relay at {relay.url}: DEGRADED")
        assert line(screen, "backlog").split()[1] == "2"
        assert "open" in line(screen, "breaker")
        assert line(screen, "openmetadata").split()[1] == "down,"
        assert "cannot connect" in line(screen, "last error")
        assert "breaker" in line(screen, "degraded")


async def test_a_relay_that_does_not_answer_is_said_so(tmp_path: Path) -> None:
    code, screen, _ = await status("--url", "http://127.0.0.1:9", "--interval", "0.1")
    assert code == 1
    assert (
        "NOT ANSWERING" in screen
        and "cannot connect" in screen
        and "is the relay running" in screen
    )


async def test_watch_redraws_in_place_until_interrupted(start_forwarding_relay: StartRelay) -> None:
    relay = await start_forwarding_relay()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relay", "status", "--url", relay.url, "--watch",
        "--interval", "0.2", stdout=asyncio.subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        seen = b""
        async with asyncio.timeout(30):
            while seen.count(b"\x1b[H\x1b[2J") < 3:
                seen += await proc.stdout.read(4096)
        proc.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
        assert proc.returncode == 0
        screens = (seen + rest).split(b"\x1b[H\x1b[2J")[1:]
        assert all(s.startswith(b"lineage-relay at ") for s in screens)
        assert all(b"Ctrl-C to stop" in s for s in screens[:3])
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.25, 0.0075), (0.5, 0.01), (0.7, 0.03), (1.0, 0.1)],
)
def test_quantiles_interpolate_within_buckets_as_prometheus_does(q: float, expected: float) -> None:
    # 20 observations, cumulative per upper bound: 10 in (5, 10] ms, 8 in (10, 50], 2 above.
    buckets = [(0.005, 0.0), (0.01, 10.0), (0.05, 18.0), (0.1, 20.0), (float("inf"), 20.0)]
    assert quantile(q, buckets) == pytest.approx(expected)
    assert quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None
