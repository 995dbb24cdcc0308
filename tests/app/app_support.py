"""Run `lineage-relay serve` as a real subprocess and talk to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from relay._config import load_config

REPO = Path(__file__).resolve().parent.parent.parent
EVENTS = REPO / "tests" / "fixtures" / "events"
CONSOLE_SCRIPT = Path(sys.executable).with_name("lineage-relay")


class RelayProcess:
    """A relay process on an ephemeral port; its JSON log lines go to `log_path`."""

    def __init__(
        self,
        spool_dir: Path,
        log_path: Path,
        *args: str,
        console_script: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        command = (
            [str(CONSOLE_SCRIPT)]
            if console_script and CONSOLE_SCRIPT.exists()
            else [sys.executable, "-m", "relay"]
        )
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 -- closed in wait()
        extra_env = env or {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_RELAY_")}
        # Delivery runs as in production, towards a port where nothing listens: events
        # stay in the spool (leases are in memory and void after a kill).
        env["LINEAGE_RELAY_OPENMETADATA_HOST_PORT"] = "http://127.0.0.1:9/api"
        # Nothing to drain towards: a stop signal ends the process at once (the drain's own
        # tests set LINEAGE_RELAY_RELAY_DRAIN_TIMEOUT_S).
        env["LINEAGE_RELAY_RELAY_DRAIN_TIMEOUT_S"] = "0"
        env.update(extra_env)
        self.proc = subprocess.Popen(
            [*command, "serve", "--listen", "127.0.0.1:0", "--spool-dir", str(spool_dir), *args],
            stdout=self._log,
            stderr=self._log,
            env=env,
            cwd=REPO,
        )
        self.url = ""

    def logs(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def wait_listening(self, timeout_s: float = 30.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for entry in self.logs():
                if entry.get("msg") == "relay listening" and entry.get("url"):
                    self.url = str(entry["url"])
                    return self.url
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"relay exited {self.proc.returncode}: {self.log_path.read_text()}"
                )
            time.sleep(0.02)
        raise AssertionError(f"relay did not start: {self.log_path.read_text()}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout_s)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()


def spool_config(spool_dir: Path) -> Any:
    return load_config(None, environ={}, overrides={"spool.dir": str(spool_dir)}).spool
