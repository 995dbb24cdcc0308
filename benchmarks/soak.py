"""Soak: the whole relay under kill -9, OpenMetadata faults and token rotation; nothing lost.

    python benchmarks/soak.py --quick          # ~45 s, at least 3 kills
    python benchmarks/soak.py --duration 600   # the full soak

The relay runs as a real process (`python -m relay serve`, on a fixed loopback port so
clients find it again after a restart) in front of the mock OpenMetadata (a process too,
`sink = "openlineage"`). Several clients post the real sample Spark events, each with a
run id of its own, and record every 201. A fault schedule meanwhile:

- kills the relay with SIGKILL at random moments and restarts it; some kills land during
  start-up (before it listens: the spool's recovery), the next start must then succeed;
- flips the mock between healthy, slow, 5xx, 429 with Retry-After, hanging and down;
- rotates the OpenMetadata JWT file (the mock accepts both tokens) and the ingest token
  file (a client answered 401 reads the file again).

At the end, faults off, the backlog drains and the mock's record is compared with the
acknowledgements: `soak_lost` (acknowledged, never delivered; must be 0),
`soak_duplicates` (delivered more than once: at-least-once after a kill, counted),
`soak_kills`, `soak_crash_loops` (a start that exited or never listened on its own),
`soak_max_rss_mb` (the relay's peak resident memory).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from _proc import rss_mb, stop

from relay.testing.processes import MockProcess, http_json, metric_samples

REPO = Path(__file__).resolve().parent.parent
SAMPLES = [p.read_bytes() for p in sorted((REPO / "tests/fixtures/events/spark").glob("*.json"))]
START_TIMEOUT_S = 30.0
FAULTS: list[dict[str, Any]] = [
    {"mode": "healthy"},
    {"mode": "slow", "latency_ms": 400},
    {"mode": "error", "status": 503},
    {"mode": "error", "status": 429, "retry_after_s": 1},
    {"mode": "hang"},
    {"mode": "down"},
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Relay:
    """`lineage-relay serve` as a child process on a fixed port; killed and restarted."""

    def __init__(self, work: Path, port: int, env: dict[str, str]) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = work / "relay.log"
        self._command = [sys.executable, "-m", "relay", "serve", "--listen",
                         f"127.0.0.1:{port}", "--spool-dir", str(work / "spool")]  # fmt: skip
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_RELAY_")}
        self._env.update(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.startup_kills = 0
        self.crash_loops = 0
        self.max_rss_mb = 0.0

    def spawn(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self._command, stdout=log, stderr=log, env=self._env)

    def start(self) -> None:
        """Start and wait until it answers; a start that exits or hangs counts as a crash loop."""
        while True:
            self.spawn()
            if self._wait_listening():
                return
            self.crash_loops += 1
            self.kill(count=False)

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                status, _ = http_json("GET", self.url + "/health")
                if status in (200, 503):
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def kill(self, *, count: bool = True) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            self.max_rss_mb = max(self.max_rss_mb, (rss_mb(proc.pid) or 0.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self.kills += count
        self.proc = None

    def kill_during_startup(self, rng: random.Random) -> None:
        """Kill, start, and kill again before it listens (recovery under way)."""
        self.kill()
        self.spawn()
        time.sleep(rng.uniform(0.0, 0.3))
        self.kill()
        self.startup_kills += 1
        self.start()

    def sample_rss(self) -> None:
        if self.proc is not None:
            self.max_rss_mb = max(self.max_rss_mb, (rss_mb(self.proc.pid) or 0.0))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop(self.proc, 30)
        self.proc = None


class Client(threading.Thread):
    """Posts sample events with fresh run ids; retries each until a 201; records the 201s."""

    def __init__(self, relay_url: str, token_file: Path, seed: int, stop: threading.Event):
        super().__init__(daemon=True)
        self._host, _, port = relay_url.removeprefix("http://").partition(":")
        self._port = int(port)
        self._token_file = token_file
        self._rng = random.Random(seed)
        self._halt = stop
        self.acknowledged: list[str] = []
        self.attempts = 0

    def run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        token = self._token_file.read_text().strip()
        while not self._halt.is_set():
            event = json.loads(self._rng.choice(SAMPLES))
            run_id = str(uuid.uuid4())
            event["run"]["runId"] = run_id
            body = json.dumps(event).encode()
            while not self._halt.is_set():  # the same event until acknowledged
                self.attempts += 1
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(self._host, self._port, timeout=10)
                    headers = {
                        "Content-Type": "application/json",
                        "Authorization": f"Bearer {token}",
                    }
                    conn.request("POST", "/api/v1/lineage", body, headers)
                    response = conn.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException):
                    if conn is not None:
                        conn.close()
                    conn = None
                    time.sleep(0.05)  # the relay is down or restarting
                    continue
                if response.status == 201:
                    self.acknowledged.append(run_id)
                    break
                if response.status == 401:  # the ingest token was rotated: read it again
                    token = self._token_file.read_text().strip()
                time.sleep(min(0.5, float(response.headers.get("Retry-After") or 0.05)))
            time.sleep(0.01)
        if conn is not None:
            conn.close()


def _jwt(tag: str) -> str:
    return f"eyJhbGciOiJIUzI1NiJ9.soak-{tag}-{uuid.uuid4().hex}.sig"


def _rotate(path: Path, value: str) -> None:
    fresh = path.with_suffix(".new")
    fresh.write_text(value)
    fresh.replace(path)  # atomic, like a Kubernetes secret update


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="~45 s, at least 3 kills")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds under faults")
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    duration = 30.0 if args.quick else args.duration
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="lineage-relay-soak-"))
    jwt_a, jwt_b = _jwt("a"), _jwt("b")
    jwt_file, ingest_file = work / "om-token", work / "ingest-token"
    jwt_file.write_text(jwt_a)
    ingest_file.write_text(f"ingest-{uuid.uuid4().hex}")
    started = time.monotonic()
    with MockProcess(work, token=jwt_a, args=["--token", jwt_b]) as mock:
        relay = Relay(work, _free_port(), {
            "LINEAGE_RELAY_OPENMETADATA_HOST_PORT": mock.url,
            "LINEAGE_RELAY_OPENMETADATA_SINK": "openlineage",
            "LINEAGE_RELAY_OPENMETADATA_JWT_TOKEN_FILE": str(jwt_file),
            "LINEAGE_RELAY_INGEST_TOKEN_FILE": str(ingest_file),
            "LINEAGE_RELAY_OPENMETADATA_READ_TIMEOUT_MS": "2000",
            "LINEAGE_RELAY_OPENMETADATA_CONNECTION_TIMEOUT_MS": "1000",
            "LINEAGE_RELAY_OPENMETADATA_RETRY_DELAY_MS": "200",
            "LINEAGE_RELAY_OPENMETADATA_RETRY_MAX_DELAY_MS": "1000",
            "LINEAGE_RELAY_OPENMETADATA_RETRY_AFTER_MAX_S": "1",
            "LINEAGE_RELAY_BREAKER_RECOVERY_TIMEOUT_S": "1",
            "LINEAGE_RELAY_BREAKER_MAX_RECOVERY_TIMEOUT_S": "2",
            "LINEAGE_RELAY_FORWARDER_LINGER_MS": "50",
        })  # fmt: skip
        relay.start()
        try:
            status = _soak(
                args, rng, duration, started, mock, relay, jwt_file, jwt_a, jwt_b, ingest_file
            )
        finally:
            relay.stop()
    if status == 0:
        shutil.rmtree(work, ignore_errors=True)
    else:  # the spool and both logs, for a look at what went wrong
        print(f"kept for inspection: {work}", file=sys.stderr)
    return status


def _take_run_ids(mock: MockProcess) -> list[str]:
    return [e["run"]["runId"] for e in mock.control("/mock/openlineage-events/take", "POST")]


def _soak(
    args: argparse.Namespace,
    rng: random.Random,
    duration: float,
    started: float,
    mock: MockProcess,
    relay: Relay,
    jwt_file: Path,
    jwt_a: str,
    jwt_b: str,
    ingest_file: Path,
) -> int:
    flips = rotations = 0
    stop = threading.Event()
    clients = [Client(relay.url, ingest_file, args.seed + i, stop) for i in range(args.clients)]
    for client in clients:
        client.start()
    # Quick: a fixed schedule (kills at about 6, 13, 20 and 26 s, one in start-up);
    # full: a kill every 5-20 s, every fourth during start-up.
    next_kill = 6.0
    next_flip = 2.0
    next_rotation = 10.0
    kill_number = 0
    # Delivered events are taken from the mock as they come: its record is bounded (100k).
    received: Counter[str] = Counter()
    next_take = 5.0
    while (now := time.monotonic() - started) < duration:
        relay.sample_rss()
        if now >= next_take:
            received.update(_take_run_ids(mock))
            next_take = now + 5.0
        if now >= next_kill:
            kill_number += 1
            if kill_number % 4 == 2:
                relay.kill_during_startup(rng)
            else:
                time.sleep(rng.uniform(0, 0.5))
                relay.kill()
                relay.start()
            next_kill = now + (rng.uniform(6.0, 7.5) if args.quick else rng.uniform(5, 20))
        if now >= next_flip:
            mock.set_faults(rng.choice(FAULTS))
            flips += 1
            next_flip = now + rng.uniform(1.5, 4.0)
        if now >= next_rotation:
            _rotate(jwt_file, jwt_b if rotations % 2 == 0 else jwt_a)
            _rotate(ingest_file, f"ingest-{uuid.uuid4().hex}")
            rotations += 1
            next_rotation = now + (10.0 if args.quick else 60.0)
        time.sleep(0.1)
    stop.set()
    for client in clients:
        client.join(30)
    mock.clear_faults()
    if relay.proc is None or relay.proc.poll() is not None:
        relay.start()
    drain_started = time.monotonic()
    drain_limit = 20.0 if args.quick else 300.0
    left = -1.0
    while time.monotonic() - drain_started < drain_limit:
        relay.sample_rss()
        status, text = _metrics(relay.url)
        left = metric_samples(text).get("lineage_relay_spool_events", -1.0) if status else -1
        if left == 0:
            break
        time.sleep(0.2)
    drain_s = time.monotonic() - drain_started
    relay.sample_rss()
    received.update(_take_run_ids(mock))
    acknowledged = [run_id for client in clients for run_id in client.acknowledged]
    lost = sum(1 for run_id in acknowledged if run_id not in received)
    duplicates = sum(count - 1 for count in received.values())
    rows = [
        ("clients", args.clients),
        ("seconds under faults", round(duration, 1)),
        ("events acknowledged", len(acknowledged)),
        ("client attempts", sum(c.attempts for c in clients)),
        ("events delivered (distinct)", len(received)),
        ("lost (acknowledged, never delivered)", lost),
        ("delivered more than once", duplicates),
        ("kills (SIGKILL)", relay.kills),
        ("of those during start-up", relay.startup_kills),
        ("crash loops", relay.crash_loops),
        ("mock fault flips", flips),
        ("token rotations (JWT and ingest)", rotations),
        ("left in the spool after the drain", int(left)),
        ("drain seconds", round(drain_s, 1)),
        ("relay max RSS MB", round(relay.max_rss_mb, 1)),
    ]
    print("| soak | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(f"RESULT soak_lost={lost}")
    print(f"RESULT soak_duplicates={duplicates}")
    print(f"RESULT soak_kills={relay.kills}")
    print(f"RESULT soak_crash_loops={relay.crash_loops}")
    print(f"RESULT soak_max_rss_mb={relay.max_rss_mb:.1f}")
    print(f"RESULT soak_acknowledged={len(acknowledged)}")
    return 1 if lost or left != 0 else 0


def _metrics(url: str) -> tuple[int, str]:
    try:
        status, text = http_json("GET", url + "/metrics")
    except OSError:
        return 0, ""
    return status, text if isinstance(text, str) else ""


if __name__ == "__main__":
    sys.exit(main())
