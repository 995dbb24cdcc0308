"""deploy/: the systemd unit, the Kubernetes sidecar, spark-defaults.conf, the Grafana dashboard.

Each file is parsed, and what it names (ports, paths, probes, flags, metrics) is checked
against the relay itself: its config loader, its command line, a running relay.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import aiohttp
import pytest
import yaml
from ops_support import REPO, exported_series, queried_metrics, run_pair
from relay_support import StartRelay
from wait_support import wait_until

from relay._cli import _parser
from relay._config import load_config

DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "systemd" / "lineage-relay.service"
KUBERNETES = DEPLOY / "kubernetes"
SPARK_DEFAULTS = DEPLOY / "spark" / "spark-defaults.conf"
DASHBOARD = DEPLOY / "grafana" / "lineage-relay.json"


# -- systemd ------------------------------------------------------------------------------------


def unit_settings(text: str) -> dict[str, list[str]]:
    """`Key=value` lines of the [Service] section; a key may repeat (systemd appends)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        if section == "[Service]":
            settings.setdefault(key, []).append(value)
    return settings


def test_the_systemd_unit_is_hardened_and_runs_the_relay_on_its_state_directory() -> None:
    service = unit_settings(UNIT.read_text())
    one = {key: values[-1] for key, values in service.items()}
    for key, value in {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "2",  # a refused configuration does not crash-loop
        "StateDirectory": "lineage-relay",
        "KillSignal": "SIGTERM",
    }.items():
        assert one[key] == value, key
    assert one["CapabilityBoundingSet"] == ""
    # ProtectSystem=strict leaves only the state and logs directories writable: the
    # documented audit path must be in the latter.
    sample = tomllib.loads((REPO / "examples" / "relay.toml").read_text())
    assert "LogsDirectory" in one and one["LogsDirectory"] == "lineage-relay"
    assert "/var/log/lineage-relay/" in (REPO / "examples" / "relay.toml").read_text()
    assert sample["audit"]["path"] == ""  # off by default
    argv = shlex.split(one["ExecStart"])
    assert PurePosixPath(argv[0]).name == "lineage-relay"
    args = _parser().parse_args(argv[1:])  # the flags are ones `serve` takes
    assert args.command == "serve"
    assert args.spool_dir == "/var/lib/" + one["StateDirectory"]  # the spool is the state dir
    # The token comes from a systemd credential, as a file the relay re-reads.
    credential, _, source = one["LoadCredential"].partition(":")
    assert source.startswith("/")
    assert one["Environment"] == f"LINEAGE_RELAY_OPENMETADATA_JWT_TOKEN_FILE=%d/{credential}"
    # Stop time covers the drain, an offload and the shutdown steps, at their defaults.
    defaults = load_config(None, environ={})
    stop_s = (
        defaults.relay.drain_timeout_s + defaults.offload.timeout_s
        + defaults.relay.shutdown_timeout_s
    )  # fmt: skip
    assert int(one["TimeoutStopSec"]) >= stop_s


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    console_script = Path(sys.executable).with_name("lineage-relay")
    if not console_script.exists():
        pytest.skip("the lineage-relay console script is not installed in this environment")
    unit = tmp_path / "lineage-relay.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/lineage-relay", str(console_script)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lineage-relay.service" not in result.stderr, result.stderr  # no warning about it


# -- Kubernetes ---------------------------------------------------------------------------------


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """Every Kubernetes object of deploy/kubernetes, by (kind, name)."""
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert document["apiVersion"] and document["kind"], path
            name = document.get("metadata", {}).get("name", path.stem)
            objects[(document["kind"], name)] = document
    return objects


def sidecar_template() -> tuple[dict[str, Any], dict[str, Any]]:
    pod = manifests()[("Pod", "driver-pod-template")]
    (relay,) = [c for c in pod["spec"]["initContainers"] if c["name"] == "lineage-relay"]
    return pod, relay


def test_the_sidecar_config_map_is_a_valid_relay_configuration(tmp_path: Path) -> None:
    config_map = manifests()[("ConfigMap", "lineage-relay")]
    path = tmp_path / "relay.toml"
    path.write_text(config_map["data"]["relay.toml"])
    config = load_config(path, environ={})  # validated as the relay validates it
    assert config.ingest.token_file  # not loopback: ingest requires the token
    assert config.openmetadata.jwt_token_file and not config.openmetadata.jwt_token


def test_the_sidecar_mounts_ports_and_probes_match_its_configuration(tmp_path: Path) -> None:
    objects = manifests()
    pod, relay = sidecar_template()
    config_map = objects[("ConfigMap", "lineage-relay")]
    path = tmp_path / "relay.toml"
    path.write_text(config_map["data"]["relay.toml"])
    config = load_config(path, environ={})

    assert relay["restartPolicy"] == "Always"  # a native sidecar: outlives the driver
    args = _parser().parse_args(relay["args"])
    assert relay["command"] == ["lineage-relay"] and args.command == "serve"
    mounts = {m["mountPath"]: m for m in relay["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}

    def volume_at(directory: str) -> dict[str, Any]:
        volume: dict[str, Any] = volumes[mounts[directory]["name"]]
        return volume

    # The config file comes from the ConfigMap.
    config_dir = str(PurePosixPath(args.config).parent)
    assert volume_at(config_dir)["configMap"]["name"] == "lineage-relay"
    assert PurePosixPath(args.config).name in config_map["data"]
    # The spool lives on an emptyDir.
    assert "emptyDir" in volume_at(str(config.spool.dir))
    # Tokens are files from Secrets, whose keys are the file names the config names.
    secrets = {name: obj for (kind, name), obj in objects.items() if kind == "Secret"}
    for token_file in (config.openmetadata.jwt_token_file, config.ingest.token_file):
        file = PurePosixPath(token_file)
        secret = volume_at(str(file.parent))["secret"]["secretName"]
        assert file.name in secrets[secret]["stringData"], token_file
        assert mounts[str(file.parent)]["readOnly"] is True
    # Ports and probes.
    port = config.relay.port
    (container_port,) = relay["ports"]
    assert container_port["containerPort"] == port
    for probe in ("startupProbe", "readinessProbe"):
        get = relay[probe]["httpGet"]
        assert get["path"] == "/health" and get["port"] == container_port["name"]
    liveness = " ".join(relay["livenessProbe"]["exec"]["command"])
    assert "/health" in liveness and f"'127.0.0.1', {port}" in liveness
    # preStop and the grace period leave the drain its time.
    pre_stop_s = relay["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace_s = pod["spec"]["terminationGracePeriodSeconds"]
    assert config.offload.enabled  # an emptyDir spool: what is left at the end goes to S3
    assert grace_s >= (
        pre_stop_s + config.relay.drain_timeout_s + config.offload.timeout_s
        + config.relay.shutdown_timeout_s
    )  # fmt: skip
    # The scrape annotation and the network policy name the same port.
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    policy = objects[("NetworkPolicy", "lineage-relay-sidecar")]
    labels = pod["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert any(p["port"] == port for rule in policy["spec"]["ingress"] for p in rule["ports"])
    # The driver container sends to the sidecar over loopback.
    (driver,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in driver["env"]}
    assert env["LINEAGE_RELAY_URL"] == f"http://127.0.0.1:{port}/api/v1/lineage"


async def test_the_liveness_probe_command_passes_on_a_running_relay_and_fails_without(
    start_relay: StartRelay,
) -> None:
    _, relay_container = sidecar_template()
    command = relay_container["livenessProbe"]["exec"]["command"]
    assert command[:2] == ["python3", "-c"]
    # Degraded (503: OpenMetadata unreachable, the breaker open) still counts as alive.
    relay = await start_relay(
        delivery=True, **{"breaker.failure_threshold": 1, "forwarder.linger_ms": 0}
    )
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{relay.url}/api/v1/lineage/batch", data=b"[" + b",".join(run_pair()) + b"]"
        ) as r:
            assert r.status == 201

        async def degraded() -> bool:
            async with http.get(f"{relay.url}/health") as response:
                return response.status == 503

        await wait_until(degraded)
        port = relay.url.rsplit(":", 1)[1]
        script = command[2].replace("5055", port)
        alive = await _run_python(script)
    await relay.aclose()
    assert alive == 0
    assert await _run_python(script) != 0  # nothing listens any more


async def _run_python(script: str) -> int:
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return await proc.wait()


# -- spark-defaults.conf ------------------------------------------------------------------------


def test_spark_defaults_point_the_listener_and_the_plugin_at_the_relay() -> None:
    conf: dict[str, str] = {}
    for line in SPARK_DEFAULTS.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, value = line.split(None, 1)
            conf[key] = value.strip()
    assert conf["spark.extraListeners"] == "io.openlineage.spark.agent.OpenLineageSparkListener"
    assert re.fullmatch(r"io\.openlineage:openlineage-spark_2\.1[23]:[0-9.]+",
                        conf["spark.jars.packages"])  # fmt: skip
    assert conf["spark.openlineage.transport.type"] == "http"
    default = load_config(None, environ={}).relay
    assert conf["spark.openlineage.transport.url"] == f"http://{default.host}:{default.port}"
    assert conf["spark.openlineage.transport.endpoint"] == "/api/v1/lineage"
    assert 0 < int(conf["spark.openlineage.transport.timeoutInMillis"]) <= 5000
    # The PySpark plugin reads the same keys and posts to the relay's ingest endpoint.
    from spark_plugin._config import load_plugin_config

    plugin = load_plugin_config(conf, environ={})
    assert plugin.post_url == f"http://{default.host}:{default.port}/api/v1/lineage"
    assert plugin.timeout_s <= 5


# -- Grafana ------------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_the_dashboard_is_a_grafana_dashboard_model() -> None:
    model = dashboard()
    assert model["uid"] == "lineage-relay" and model["title"]
    assert isinstance(model["schemaVersion"], int) and model["schemaVersion"] >= 36
    assert model["time"] == {"from": "now-6h", "to": "now"}
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in model["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"].lower() for p in model["panels"])
    for topic in ("received", "latency", "spooled", "breaker", "dead"):
        assert topic in titles
    for panel in model["panels"]:
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= grid.keys() and grid["x"] + grid["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["type"] in ("timeseries", "stat", "state-timeline", "gauge")
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"]
        for target in panel["targets"]:
            assert target["refId"] and target["expr"]
            assert target["datasource"] == panel["datasource"]


async def test_every_metric_the_dashboard_queries_is_exported_by_a_running_relay(
    start_relay: StartRelay,
) -> None:
    relay = await start_relay(delivery=True)
    async with aiohttp.ClientSession() as http, http.get(f"{relay.url}/metrics") as response:
        exported = exported_series(await response.text())
    queried: set[str] = set()
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            queried |= queried_metrics(target["expr"])
    for variable in dashboard()["templating"]["list"]:
        if isinstance(variable.get("query"), dict):
            queried |= queried_metrics(variable["query"]["query"])
    assert len(queried) >= 12
    assert queried <= exported, queried - exported


def test_deploy_files_carry_no_secret_values() -> None:
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.", text), path  # no JWT
            assert "BEGIN PRIVATE KEY" not in text, path
    assert os.path.getsize(DASHBOARD) > 0
