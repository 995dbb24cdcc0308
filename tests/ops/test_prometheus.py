"""The shipped alert rules: promtool checks them, and a real Prometheus evaluates them.

Needs the Debian package `prometheus` (promtool and the server); `.ci/run` installs it.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from ops_support import REPO, exported_series, post_events, queried_metrics, run_pair
from relay_support import StartRelay
from wait_support import wait_until

from relay._observe.metrics import Metrics
from relay.testing.mock_openmetadata import MockOpenMetadata

RULES_DIR = REPO / "deploy" / "prometheus"
ALERTS = RULES_DIR / "alerts.yml"
# The alerts our users' rules already have: names and expressions exactly as they are.
USERS_ALERTS = {
    "OpenMetadataDown": ("openmetadata_connection_status == 0", "5m"),
    "LineageEventsSendingFailed": ("rate(openmetadata_lineage_events_sent_total[5m]) == 0", "10m"),
    "HighLineageSendLatency": (
        "histogram_quantile(0.95, rate(openmetadata_lineage_send_duration_seconds_bucket[5m])) > 5",
        "5m",
    ),
}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} is not installed (Debian package `prometheus`; .ci/run installs it when "
            "apt-get is available)"
        )
    return path


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_promtool_checks_the_shipped_rules() -> None:
    result = subprocess.run(
        [tool("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_promtool_unit_tests_of_the_shipped_rules_pass() -> None:
    result = subprocess.run(
        [tool("promtool"), "test", "rules", "alerts.test.yml"],
        capture_output=True, text=True, cwd=RULES_DIR,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    names = {
        case["alertname"]
        for test in yaml.safe_load((RULES_DIR / "alerts.test.yml").read_text())["tests"]
        for case in test["alert_rule_test"]
    }
    assert names == {rule["alert"] for rule in rules()}  # every alert has a unit test


def test_the_users_alerts_keep_their_names_and_expressions_and_the_rest_exist() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    for name, (expr, duration) in USERS_ALERTS.items():
        assert by_name[name]["expr"] == expr
        assert by_name[name]["for"] == duration
    # Backlog age, dead letters, breaker open too long, relay down.
    extra = {name: rule["expr"] for name, rule in by_name.items() if name not in USERS_ALERTS}
    assert "lineage_relay_spool_oldest_event_age_seconds" in extra["LineageRelayBacklogOld"]
    assert "lineage_relay_dead_letters_total" in extra["LineageRelayDeadLetters"]
    assert "lineage_relay_circuit_state" in extra["LineageRelayBreakerOpen"]
    assert extra["LineageRelayDown"] == 'up{job="lineage-relay"} == 0'
    # Every metric a rule reads is one the relay exports.
    exported = exported_series(Metrics().render().decode())
    for rule in rules():
        assert queried_metrics(rule["expr"]) <= exported, rule["alert"]
    for rule in rules():
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrometheusServer:
    """A real Prometheus on loopback scraping one target every second, with alerts.yml."""

    def __init__(self, tmp_path: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp_path / "prometheus.yml"
        config.write_text(
            yaml.safe_dump({
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(ALERTS)],  # the shipped file, unchanged
                "scrape_configs": [
                    {"job_name": "lineage-relay", "static_configs": [{"targets": [target]}]}
                ],
            })
        )  # fmt: skip
        self.log_path = tmp_path / "prometheus.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    tool("prometheus"),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log, stderr=log, cwd=tmp_path,
            )  # fmt: skip

    async def api(self, http: aiohttp.ClientSession, path: str, **params: str) -> Any:
        async with http.get(f"{self.url}/api/v1/{path}", params=params) as response:
            document = await response.json()
        assert document["status"] == "success", document
        return document["data"]

    async def ready(self, http: aiohttp.ClientSession) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log_path.read_text()}")
        try:
            async with http.get(f"{self.url}/-/ready") as response:
                return response.status == 200
        except aiohttp.ClientConnectionError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_real_prometheus_scrapes_the_relay_and_the_down_alert_goes_pending(
    tmp_path: Path,
    http: aiohttp.ClientSession,
    mock: MockOpenMetadata,
    start_forwarding_relay: StartRelay,
) -> None:
    tool("prometheus")
    relay = await start_forwarding_relay()
    prometheus = PrometheusServer(tmp_path, relay.url.removeprefix("http://"))
    try:
        await wait_until(lambda: prometheus.ready(http), within_s=30)

        # The rules load and evaluate; before any call OpenMetadata is not "down".
        async def rules_evaluated() -> bool:
            data = await prometheus.api(http, "rules")
            loaded = [r for g in data["groups"] for r in g["rules"]]
            return len(loaded) == 7 and all(r["health"] == "ok" for r in loaded)

        async def alert_names() -> set[str]:
            data = await prometheus.api(http, "alerts")
            return {a["labels"]["alertname"] for a in data["alerts"]}

        await wait_until(rules_evaluated, within_s=20)
        assert "OpenMetadataDown" not in await alert_names()
        await post_events(http, relay.url, run_pair())

        async def sample(query: str) -> float | None:
            result = await prometheus.api(http, "query", query=query)
            series = result["result"]
            return float(series[0]["value"][1]) if series else None

        async def delivered_and_scraped() -> bool:
            sent = await sample('openmetadata_lineage_events_sent_total{job="lineage-relay"}')
            up = await sample('openmetadata_connection_status{job="lineage-relay"}')
            return sent == 2 and up == 1

        # The relay's metrics arrive, with their values.
        await wait_until(delivered_and_scraped, within_s=20)
        assert await sample("sum(lineage_relay_events_received_total)") == 2
        assert await sample('up{job="lineage-relay"}') == 1

        data = await prometheus.api(http, "rules")
        assert {r["name"] for g in data["groups"] for r in g["rules"]} == {
            rule["alert"] for rule in rules()
        }
        assert "OpenMetadataDown" not in await alert_names()

        # OpenMetadata goes down: the next delivery fails and the alert goes pending.
        await mock.set_faults({"mode": "down"})
        await post_events(http, relay.url, run_pair())

        async def down_alert_pending() -> bool:
            data = await prometheus.api(http, "alerts")
            return any(
                a["labels"]["alertname"] == "OpenMetadataDown" and a["state"] == "pending"
                for a in data["alerts"]
            )

        await wait_until(down_alert_pending, within_s=20)
        assert await sample('openmetadata_connection_status{job="lineage-relay"}') == 0
    finally:
        await asyncio.to_thread(prometheus.stop)
