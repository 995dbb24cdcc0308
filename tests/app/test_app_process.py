"""`lineage-relay serve` as a real process: kill -9, graceful stop, refused configuration."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from app_support import EVENTS, REPO
from relay_support import CONSOLE_SCRIPT, RelayProcess, relay_config

from relay._clock import SystemClock
from relay._observe.metrics import Metrics
from relay._spool import Spool

pytestmark = pytest.mark.slow

COMPLETE = (EVENTS / "spark" / "04_COMPLETE_insert_revenue_by_country.json").read_bytes()
RUN_ID = b"0193a1f3-0b11-7f6a-8c2d-5e7f90a1b3c6"
assert RUN_ID in COMPLETE


def unique_event() -> bytes:
    return COMPLETE.replace(RUN_ID, str(uuid.uuid4()).encode())


class _Later(SystemClock):
    """A day ahead: events the forwarder scheduled for a retry are due again."""

    def time(self) -> float:
        return super().time() + 86_400


async def spool_bodies(spool_dir: Path) -> list[bytes]:
    """Every pending event in the spool, whatever its retry time."""
    spool = await Spool.open(relay_config(spool_dir).spool, metrics=Metrics(), clock=_Later())
    async with spool:
        events = await spool.lease(max_events=1_000_000, max_bytes=1 << 40, lease_s=60)
    return [e.body for e in events]


async def test_sigkill_never_loses_an_acknowledged_event(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    rng = random.Random()
    acknowledged: set[bytes] = set()
    rounds = 5
    for round_no in range(rounds):
        relay = RelayProcess(tmp_path, spool_dir, name=f"relay{round_no}")
        try:
            base = (await asyncio.to_thread(relay.start)).url
            stop = asyncio.Event()
            acked_this_round = 0

            async def client(
                http: aiohttp.ClientSession,
                batch: bool,
                base: str = base,
                stop: asyncio.Event = stop,
            ) -> None:
                nonlocal acked_this_round
                while not stop.is_set():
                    # Single events, and batches of three that are acknowledged as a whole.
                    events = [unique_event() for _ in range(3 if batch else 1)]
                    url, data = (
                        (base + "/api/v1/lineage/batch", b"[" + b",".join(events) + b"]")
                        if batch
                        else (base + "/api/v1/lineage", events[0])
                    )
                    try:
                        async with http.post(url, data=data) as resp:
                            if resp.status == 201:
                                acknowledged.update(events)
                                acked_this_round += len(events)
                    except (TimeoutError, aiohttp.ClientError):
                        return  # the relay is gone

            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as http:
                clients = [asyncio.create_task(client(http, i % 4 == 0)) for i in range(8)]
                # Kill at a random moment once traffic flows.
                while acked_this_round < 5:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(rng.uniform(0.05, 0.6))
                relay.send_signal(signal.SIGKILL)
                assert await asyncio.to_thread(relay.wait) == -signal.SIGKILL
                stop.set()
                await asyncio.gather(*clients)
        finally:
            relay.stop()
        stored = set(await spool_bodies(spool_dir))
        missing = acknowledged - stored
        assert not missing, f"round {round_no}: {len(missing)} acknowledged event(s) lost"
    assert len(acknowledged) >= 5 * rounds


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_stop_signal_finishes_in_flight_requests_and_exits_0(
    tmp_path: Path, sig: signal.Signals
) -> None:
    spool_dir = tmp_path / "spool"
    relay = RelayProcess(tmp_path, spool_dir, console_script=True)
    try:
        base = (await asyncio.to_thread(relay.start)).url
        release = asyncio.Event()
        slow_body = unique_event()

        async def slow() -> AsyncIterator[bytes]:
            yield slow_body[:1000]
            await release.wait()
            yield slow_body[1000:]

        async with aiohttp.ClientSession() as http:
            slow_post = asyncio.create_task(http.post(base + "/api/v1/lineage", data=slow()))

            async def health() -> tuple[int, dict[str, object]]:
                async with http.get(base + "/health") as resp:
                    return resp.status, await resp.json()

            while (await health())[1]["components"]["ingest"]["in_flight"] != 1:  # type: ignore[index]
                await asyncio.sleep(0.02)
            relay.send_signal(sig)
            # New requests are refused while the in-flight one finishes.
            while True:
                async with http.post(base + "/api/v1/lineage", data=unique_event()) as resp:
                    if resp.status == 503:
                        assert "shutting down" in (await resp.json())["error"]
                        assert resp.headers["Retry-After"] == "1"
                        break
                    assert resp.status == 201  # sent before the signal landed
                await asyncio.sleep(0.02)
            status, document = await health()
            assert status == 503 and document["status"] == "degraded"
            release.set()
            async with await slow_post as resp:
                assert resp.status == 201
        assert await asyncio.to_thread(relay.wait) == 0
    finally:
        relay.stop()
    assert slow_body in await spool_bodies(spool_dir)
    messages = [entry["msg"] for entry in relay.logs()]
    assert f"received {sig.name}; stopping" in messages and messages[-1] == "relay stopped"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        capture_output=True, text=True, timeout=60, cwd=REPO, env=env,
    )  # fmt: skip


def test_bad_configuration_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text("[ingest]\nmax_body_byte = 5\n")
    result = run_cli("serve", "--config", str(config), "--spool-dir", str(tmp_path))
    assert result.returncode == 2
    assert "ingest.max_body_byte" in result.stderr and "max_body_bytes" in result.stderr
    config.write_text('[spool]\nwhen_full = "block"\n')
    result = run_cli("serve", "--config", str(config))
    assert result.returncode == 2 and "spool.when_full" in result.stderr
    env = {"PATH": "/usr/bin:/bin", "LINEAGE_RELAY_INGEST_READ_TIMEOUT_S": "soon"}
    result = run_cli("serve", "--spool-dir", str(tmp_path), env=env)
    assert result.returncode == 2 and "LINEAGE_RELAY_INGEST_READ_TIMEOUT_S" in result.stderr
    result = run_cli("serve", "--listen", "localhost")
    assert result.returncode == 2 and "relay.listen" in result.stderr


def test_help_lists_the_commands() -> None:
    if not CONSOLE_SCRIPT.exists():
        pytest.skip("the console script is not installed in this environment")
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for flag in ("--config", "--listen", "--spool-dir"):
        assert flag in result.stdout
    # The mock's own parser answers for its subcommand.
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "mock-openmetadata", "--help"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0 and "lineage-relay mock-openmetadata" in result.stdout
