"""The relay and the mock OpenMetadata as child processes on free loopback ports.

For demos and benchmarks that want each server in its own process (its own core, its own
event loop), and to read what they report::

    with MockProcess(log_dir, catalog=catalog) as mock, RelayProcess(
        log_dir, spool_dir, env={"LINEAGE_RELAY_OPENMETADATA_HOST_PORT": mock.url}
    ) as relay:
        mock.set_faults({"mode": "down"})
        status, health = relay.health()
        relay.metrics()["lineage_relay_spool_events"]

Both bind 127.0.0.1 only, log to a file in `log_dir`, and are stopped (SIGTERM, then kill
after a bound) when the `with` block ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["MockProcess", "RelayProcess", "exit_on_sigterm", "http_json", "metric_samples"]

_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 30.0
_MOCK_READY = "mock-openmetadata listening on "


def http_json(
    method: str, url: str, body: Any = None, *, token: str = "", timeout_s: float = 10.0
) -> tuple[int, Any]:
    """One loopback HTTP call with an optional JSON body; (status, decoded JSON or None).

    Error statuses are returned, not raised (`/health` answers 503 when degraded)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 -- loopback
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:  # noqa: S310
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return status, raw.decode(errors="replace")


def exit_on_sigterm() -> None:
    """Turn SIGTERM into `SystemExit`, so that `with` blocks still stop their children
    (Python's default for SIGTERM ends the process at once and would orphan them)."""

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def metric_samples(text: str) -> dict[str, float]:
    """Prometheus exposition -> {'name{label="v",...}': value} (no braces without labels)."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples


class _Child:
    """A child process whose output goes to a log file; stopped with SIGTERM, then killed."""

    def __init__(self, command: Sequence[str], log_path: Path, env: Mapping[str, str]) -> None:
        self._command = list(command)
        self._env = dict(env)
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self._proc = subprocess.Popen(  # noqa: S603 -- this interpreter, our arguments
                self._command, stdout=log, stderr=log, env=self._env, cwd=Path.cwd()
            )
        return self._proc

    def _wait_for(self, found: Any, what: str) -> Any:
        """Poll the log until `found(text)` returns something (bounded)."""
        proc = self._proc
        if proc is None:
            raise RuntimeError(f"{what} was not started")
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            result = found(text)
            if result is not None:
                return result
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}:\n{text[-4000:]}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{what} did not start within {_START_TIMEOUT_S:g} s")

    @property
    def pid(self) -> int:
        return self._proc.pid if self._proc is not None else 0

    def send_signal(self, sig: signal.Signals) -> None:
        """Send `sig` (SIGKILL for a crash, SIGTERM or SIGINT for a stop); `wait()` for the end.

        Nothing when the process is not running (never started, or stopped and waited for, as
        after a failed `start()`), as `Popen.send_signal` does for an ended process: cleanup in
        a `finally` must not hide the error that got it there."""
        if self._proc is not None:
            self._proc.send_signal(sig)

    def wait(self, timeout_s: float = _STOP_TIMEOUT_S) -> int:
        """Wait up to `timeout_s` for the process to end by itself; its exit status."""
        proc = self._proc
        if proc is None:
            return self.returncode if self.returncode is not None else 0
        self.returncode = proc.wait(timeout_s)
        self._proc = None
        return self.returncode

    def stop(self, timeout_s: float = _STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait up to `timeout_s`, then SIGKILL; the exit status. Idempotent."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()  # wait() below reaps it: a killed process ends at once
        return self.wait()


class MockProcess(_Child):
    """`lineage-relay mock-openmetadata` on ephemeral loopback ports (API and control)."""

    def __init__(
        self,
        log_dir: Path,
        *,
        catalog: Path | None = None,
        token: str = "",
        args: Sequence[str] = (),
        name: str = "mock",
    ) -> None:
        command = [sys.executable, "-m", "relay.testing.mock_openmetadata",
                   "--listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0"]  # fmt: skip
        if catalog is not None:
            command += ["--catalog", str(catalog)]
        if token:
            command += ["--token", token]
        super().__init__([*command, *args], log_dir / f"{name}.log", os.environ)
        self.token = token
        self.url = ""  # the API base, ".../api": the relay's openmetadata.host_port
        self.control_url = ""

    def start(self) -> MockProcess:
        self._spawn()

        def ready(text: str) -> tuple[str, str] | None:
            for line in text.splitlines():
                if line.startswith(_MOCK_READY):
                    url, _, control = line[len(_MOCK_READY) :].partition(" (control ")
                    return url, control.rstrip(")")
            return None

        self.url, self.control_url = self._wait_for(ready, "the mock OpenMetadata")
        return self

    def __enter__(self) -> MockProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def api(self, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        """A call to the API (`path` after `/api`, e.g. `/v1/tables?limit=100`)."""
        return http_json(method, self.url + path, body, token=self.token or "demo")

    def control(self, path: str, method: str = "GET", body: Any = None) -> Any:
        """A call to the control API (`/mock/...`); raises unless it answered 2xx."""
        status, answer = http_json(method, self.control_url + path, body)
        if not 200 <= status < 300:
            raise RuntimeError(f"{method} {path} on the mock's control API: {status} {answer}")
        return answer

    def set_faults(self, rules: Any) -> None:
        """`PUT /mock/faults` (`{"mode": "down"}`, `{"mode": "slow", "latency_ms": 2000}`...)."""
        self.control("/mock/faults", "PUT", rules)

    def clear_faults(self) -> None:
        """Healthy again (a `down` API port listens again, on the same port)."""
        self.control("/mock/faults", "DELETE")


class RelayProcess(_Child):
    """`lineage-relay serve` on an ephemeral loopback port, spool in `spool_dir`.

    `env` adds `LINEAGE_RELAY_*` settings (the parent's own are not inherited); `program`
    replaces `python -m relay` (the installed `lineage-relay` console script, say)."""

    def __init__(
        self,
        log_dir: Path,
        spool_dir: Path,
        *,
        config: Path | None = None,
        env: Mapping[str, str] | None = None,
        name: str = "relay",
        program: Sequence[str] = (),
    ) -> None:
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_RELAY_")}
        child_env.update(env or {})
        command = [*(program or (sys.executable, "-m", "relay")), "serve",
                   "--listen", "127.0.0.1:0", "--spool-dir", str(spool_dir)]  # fmt: skip
        if config is not None:
            command += ["--config", str(config)]
        super().__init__(command, log_dir / f"{name}.log", child_env)
        self.url = ""

    def start(self) -> RelayProcess:
        self._spawn()

        def listening(text: str) -> str | None:
            for line in text.splitlines():
                entry = json.loads(line) if line.startswith("{") else {}
                if entry.get("msg") == "relay listening" and entry.get("url"):
                    return str(entry["url"])
            return None

        self.url = self._wait_for(listening, "the relay")
        return self

    def __enter__(self) -> RelayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def health(self) -> tuple[int, dict[str, Any]]:
        """`GET /health`: (200 or 503, the report)."""
        status, report = http_json("GET", self.url + "/health")
        return status, report if isinstance(report, dict) else {}

    def metrics(self) -> dict[str, float]:
        """`GET /metrics` as {'name{labels}': value}."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as resp:  # noqa: S310
            return metric_samples(resp.read().decode())
