"""`lineage-relay smoke`: passes through a relay to the mock, fails clearly when it cannot.

The relay and the mock run in the test's loop. `smoke` runs in-process from its parsed
command line (what the command runs), and as a child process, as a deployment gate runs it,
where the exit status is the point.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from ops_support import INPUT_TABLE, OUTPUT_TABLE, REPO, TOKEN
from relay_support import StartRelay

from relay._app import Relay
from relay._cli import _parser
from relay._config import load_config
from relay._smoke import smoke as run_smoke
from relay._smoke import usage_problem
from relay.testing.mock_openmetadata import MockOpenMetadata


def write_config(tmp_path: Path, mock_url: str, token: str = TOKEN, **openmetadata: Any) -> Path:
    token_file = tmp_path / "smoke-token"
    token_file.write_text(token)
    settings = {"host_port": mock_url, "sink": "openlineage", "jwt_token_file": str(token_file)}
    settings.update(openmetadata)
    path = tmp_path / "smoke.toml"
    path.write_text(
        "[openmetadata]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
    )
    return path


async def smoke(config: Path, relay_url: str, *args: str, cli: bool = False) -> tuple[int, str]:
    """(exit status, output) of `lineage-relay smoke --config config --url relay_url *args`."""
    if not cli:
        parsed = _parser().parse_args(["smoke", "--config", str(config), "--url", relay_url, *args])
        problem = usage_problem(parsed)
        if problem:
            return 2, problem
        ok, text = await run_smoke(load_config(parsed.config), parsed)
        assert TOKEN not in text and "wrong-token" not in text  # no token in any output
        return (0 if ok else 1), text
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relay", "smoke", "--config", str(config), "--url", relay_url,
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=REPO,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
    text = out.decode()
    assert TOKEN not in text and "wrong-token" not in text  # no token in any output
    assert proc.returncode is not None
    return proc.returncode, text


@pytest.fixture
async def relay(start_forwarding_relay: StartRelay) -> Relay:
    return await start_forwarding_relay()


def edges_between(mock: MockOpenMetadata, source: str, target: str) -> list[dict[str, Any]]:
    return [
        e for e in mock._state.lineage.edges.values()
        if e["fromEntity"].get("fullyQualifiedName") == source
        and e["toEntity"].get("fullyQualifiedName") == target
    ]  # fmt: skip


async def test_smoke_passes_through_the_relay_to_the_mock(
    tmp_path: Path, mock: MockOpenMetadata, relay: Relay
) -> None:
    config = write_config(tmp_path, mock.url)
    code, text = await smoke(config, relay.url, "--input", INPUT_TABLE, "--output", OUTPUT_TABLE,
                             "--timeout", "30", cli=True)  # fmt: skip
    assert code == 0, text
    assert f"{relay.url} took START and COMPLETE (201, 201)" in text
    assert f"edge         {INPUT_TABLE} -> {OUTPUT_TABLE}: seen after" in text
    assert "run status" not in text  # the openlineage sink writes none
    assert text.rstrip().splitlines()[-1].startswith("smoke PASSED after")
    # What arrived is the smoke's run: a unique job, START and COMPLETE.
    job = text.splitlines()[0].split("job ")[1].split(",")[0]
    arrived = [
        e for e in mock.openlineage_events if f"{e['job']['namespace']}/{e['job']['name']}" == job
    ]
    assert [e["eventType"] for e in arrived] == ["START", "COMPLETE"]
    assert len({e["run"]["runId"] for e in arrived}) == 1
    assert len(edges_between(mock, INPUT_TABLE, OUTPUT_TABLE)) == 1


async def test_an_older_edge_between_the_tables_is_not_taken_for_this_run(
    tmp_path: Path, mock: MockOpenMetadata, start_forwarding_relay: StartRelay
) -> None:
    # A relay that spools but does not deliver, after an earlier smoke left its edge.
    config = write_config(tmp_path, mock.url)
    delivering = await start_forwarding_relay()
    try:
        code, _ = await smoke(config, delivering.url, "--input", INPUT_TABLE,
                              "--output", OUTPUT_TABLE)  # fmt: skip
        assert code == 0
    finally:
        await delivering.aclose()
    holding = await start_forwarding_relay(**{"forwarder.enabled": False})
    code, text = await smoke(config, holding.url, "--input", INPUT_TABLE,
                             "--output", OUTPUT_TABLE, "--timeout", "2")  # fmt: skip
    assert code == 1, text
    assert f"edge         {INPUT_TABLE} -> {OUTPUT_TABLE} of this run: NOT SEEN" in text
    assert "relay says" in text and "2 events waiting in its spool" in text
    assert text.rstrip().splitlines()[-1].startswith("smoke FAILED after")


async def test_test_entities_are_created_and_removed(
    tmp_path: Path, mock: MockOpenMetadata, relay: Relay
) -> None:
    config = write_config(tmp_path, mock.url)
    schema = "hive_prod.warehouse.sales"
    code, text = await smoke(config, relay.url, "--create-test-entities", "--schema", schema,
                             "--timeout", "30")  # fmt: skip
    assert code == 0, text
    (created,) = [line for line in text.splitlines() if line.strip().startswith("tables")]
    source, target = created.split("created ")[1].split(" -> ")
    assert source.startswith(f"{schema}.lineage_relay_smoke_") and source.endswith("_in")
    assert target.startswith(f"{schema}.lineage_relay_smoke_") and target.endswith("_out")
    assert "removed 2 of 2 test entities" in text
    names = {t["fullyQualifiedName"] for t in mock._state.store.entities("table")}
    assert source not in names and target not in names
    assert not edges_between(mock, source, target)


async def test_smoke_fails_clearly_with_the_mock_down(
    tmp_path: Path, mock: MockOpenMetadata, relay: Relay
) -> None:
    config = write_config(tmp_path, mock.url)
    await mock.set_faults({"mode": "down"})
    code, text = await smoke(config, relay.url, "--input", INPUT_TABLE, "--output", OUTPUT_TABLE,
                             "--timeout", "5")  # fmt: skip
    assert code == 1, text
    assert "cannot connect" in text and "is OpenMetadata up?" in text
    assert "smoke FAILED" in text


async def test_smoke_fails_clearly_with_a_wrong_token(
    tmp_path: Path, mock: MockOpenMetadata, relay: Relay
) -> None:
    config = write_config(tmp_path, mock.url, token="wrong-token")
    code, text = await smoke(config, relay.url, "--input", INPUT_TABLE, "--output", OUTPUT_TABLE,
                             "--timeout", "5", cli=True)  # fmt: skip
    assert code == 1, text
    assert "OpenMetadata refused the token (401: Not Authorized! Invalid Token)" in text
    assert "lineage-relay doctor" in text


async def test_smoke_fails_clearly_when_the_relay_is_not_running(
    tmp_path: Path, mock: MockOpenMetadata
) -> None:
    config = write_config(tmp_path, mock.url)
    code, text = await smoke(config, "http://127.0.0.1:9", "--input", INPUT_TABLE,
                             "--output", OUTPUT_TABLE, "--timeout", "5")  # fmt: skip
    assert code == 1, text
    assert "the relay does not take events" in text and "is it running?" in text


async def test_smoke_refuses_wrong_arguments_with_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9/api")
    code, text = await smoke(config, "http://127.0.0.1:9", "--input", INPUT_TABLE, cli=True)
    assert code == 2 and "--create-test-entities" in text
    code, text = await smoke(config, "http://127.0.0.1:9", "--create-test-entities")
    assert code == 2 and "--schema" in text


async def test_with_the_rest_sink_smoke_also_sees_the_run_status(
    tmp_path: Path, mock: MockOpenMetadata, start_forwarding_relay: StartRelay
) -> None:
    rest = await start_forwarding_relay(**{"openmetadata.sink": "rest"})
    config = write_config(tmp_path, mock.url, sink="rest")
    code, text = await smoke(config, rest.url, "--input", INPUT_TABLE,
                             "--output", OUTPUT_TABLE, "--timeout", "30")  # fmt: skip
    assert code == 0, text
    assert f"edge         {INPUT_TABLE} -> {OUTPUT_TABLE}: seen after" in text
    job = text.splitlines()[0].split("job lineage-relay-smoke/")[1].split(",")[0]
    assert f"run status   Successful on pipeline spark.{job}: seen after" in text

    schema = "hive_prod.warehouse.sales"
    code, text = await smoke(config, rest.url, "--create-test-entities",
                             "--schema", schema, "--timeout", "30")  # fmt: skip
    assert code == 0, text
    assert "run status   Successful on pipeline" in text
    assert "removed 3 of 3 test entities" in text  # two tables and the smoke pipeline
    job = text.splitlines()[0].split("job lineage-relay-smoke/")[1].split(",")[0]
    pipelines = {p["fullyQualifiedName"] for p in mock._state.store.entities("pipeline")}
    assert f"spark.{job}" not in pipelines


async def test_smoke_sends_the_ingest_token_the_relay_requires(
    tmp_path: Path, mock: MockOpenMetadata, start_forwarding_relay: StartRelay
) -> None:
    ingest_token = tmp_path / "ingest-token"
    ingest_token.write_text("smoke-ingest-secret\n")
    guarded = await start_forwarding_relay(**{"ingest.token_file": str(ingest_token)})
    without = write_config(tmp_path, mock.url)
    code, text = await smoke(without, guarded.url, "--input", INPUT_TABLE,
                             "--output", OUTPUT_TABLE, "--timeout", "5")  # fmt: skip
    assert code == 1 and "answered 401" in text, text
    with_token = write_config(tmp_path, mock.url)
    with_token.write_text(with_token.read_text() + f'[ingest]\ntoken_file = "{ingest_token}"\n')
    code, text = await smoke(with_token, guarded.url, "--input", INPUT_TABLE,
                             "--output", OUTPUT_TABLE, "--timeout", "30")  # fmt: skip
    assert code == 0, text
    assert "smoke-ingest-secret" not in text
