"""The audit log: one JSON line per write to OpenMetadata, rotated by size, no secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ops_support import INPUT_TABLE, OUTPUT_TABLE, TOKEN, post_events, run_pair
from relay_support import StartRelay
from wait_support import wait_until

from relay._config import AuditConfig, Config
from relay._exceptions import ConfigError
from relay._observe.audit import AuditLog, AuditSubject
from relay.testing.mock_openmetadata import MockOpenMetadata

NATIVE_URL_END = "/api/v1/openlineage/lineage/batch"


def audit_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of the audit file and its rotated copies, oldest file first."""
    files = [*sorted(path.parent.glob(path.name + ".*"), reverse=True), path]
    return [json.loads(line) for f in files if f.exists() for line in f.read_text().splitlines()]


def test_the_audit_log_is_off_by_default() -> None:
    assert Config().audit.enabled is False
    with pytest.raises(ValueError, match="audit"):
        AuditLog(AuditConfig())


async def test_each_write_leaves_one_line_with_what_it_wrote_and_no_token(
    tmp_path: Path, mock: MockOpenMetadata, start_forwarding_relay: StartRelay
) -> None:
    audit = tmp_path / "audit" / "audit.jsonl"
    relay = await start_forwarding_relay(**{"audit.path": str(audit)})
    try:
        async with aiohttp.ClientSession() as http:
            first, second = run_pair(job="audited_one"), run_pair(job="audited_two")
            await post_events(http, relay.url, first)
            await wait_until(lambda: len(mock.openlineage_events) == 2)
            await post_events(http, relay.url, second)
            await wait_until(lambda: len(mock.openlineage_events) == 4)
    finally:
        await relay.aclose()  # flushes the audit writer
    calls = [r for r in mock.requests if r["path"] == NATIVE_URL_END]

    lines = audit_lines(audit)
    assert len(lines) == len(calls) >= 2  # one line per write call, not per event
    run_ids = {json.loads(b)["run"]["runId"] for b in first + second}
    assert {r for line in lines for r in line["run_ids"]} == run_ids
    for line in lines:
        assert line["operation"] == "openlineage_batch"
        assert (
            line["method"] == "POST" and line["url"] == mock.url + "/v1/openlineage/lineage/batch"
        )
        assert line["outcome"] == "written" and line["status"] == 200
        assert line["duration_ms"] >= 0 and line["time"].endswith("+00:00")
        assert "hive://metastore:9083/warehouse.sales.orders" in line["entities"]
        assert "hive://metastore:9083/warehouse.reporting.revenue_by_country" in line["entities"]
    assert {e for line in lines for e in line["entities"] if e.startswith("job:")} == {
        "job:ops/audited_one",
        "job:ops/audited_two",
    }
    assert sum(line["events"] for line in lines) == 4
    text = audit.read_text()
    assert TOKEN not in text and "Bearer" not in text and "eventTime" not in text  # no bodies


async def test_refused_and_failed_writes_are_audited_too(
    tmp_path: Path, mock: MockOpenMetadata, start_forwarding_relay: StartRelay
) -> None:
    audit = tmp_path / "audit.jsonl"
    wrong_token = tmp_path / "wrong-token"
    wrong_token.write_text("another-token")  # the mock takes TOKEN only
    relay = await start_forwarding_relay(
        **{"audit.path": str(audit), "openmetadata.jwt_token_file": str(wrong_token)}
    )
    try:
        async with aiohttp.ClientSession() as http:
            await post_events(http, relay.url, run_pair())
            await wait_until(lambda: any(r["status"] == 401 for r in mock.requests))
            await mock.set_faults({"mode": "down"})
            await wait_until(
                lambda: (
                    relay.metrics.connection_status._value.get() == 0
                    and _lines_with(audit, "failed") > 0
                )
            )
    finally:
        await relay.aclose()
    lines = audit_lines(audit)
    refused = [line for line in lines if line["outcome"] == "refused"]
    failed = [line for line in lines if line["outcome"] == "failed"]
    assert refused and all(line["status"] == 401 for line in refused)
    assert all("Invalid Token" in line["error"] for line in refused)
    assert failed and all(line["status"] is None and line["error"] for line in failed)
    assert TOKEN not in audit.read_text() and "another-token" not in audit.read_text()


async def test_the_file_rotates_by_size_and_every_line_stays_whole(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(AuditConfig(path=str(path), max_bytes=1000, backup_count=2))
    subject = AuditSubject(operation="put_lineage", entities=("a.b.c.d", "a.b.c.e"), run_ids=("r",))
    for i in range(40):
        log.record(subject, method="PUT", url=f"http://om/api/v1/lineage?i={i}", outcome="written",
                   status=200, duration_s=0.001)  # fmt: skip
    await log.aclose()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 1000
        for line in (tmp_path / name).read_text().splitlines():
            assert json.loads(line)["operation"] == "put_lineage"
    # The newest lines are kept, in order, across the rotated files.
    urls = [line["url"] for line in audit_lines(path)]
    assert urls[-1].endswith("i=39") and urls == sorted(urls, key=lambda u: int(u.split("=")[1]))


async def test_an_unwritable_audit_path_is_refused_with_the_key_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"audit\.path"):
        AuditLog(AuditConfig(path=str(blocker / "audit.jsonl")))


def _lines_with(path: Path, outcome: str) -> int:
    if not path.exists():
        return 0
    # The writer thread may be mid-line: count whole lines only.
    return sum(
        1 for line in path.read_text().splitlines() if line.endswith("}") and f'"{outcome}"' in line
    )


async def test_the_rest_sink_names_the_entities_and_the_run_of_each_write(
    tmp_path: Path, mock: MockOpenMetadata, start_forwarding_relay: StartRelay
) -> None:
    audit = tmp_path / "audit.jsonl"
    relay = await start_forwarding_relay(**{"audit.path": str(audit), "openmetadata.sink": "rest"})
    try:
        async with aiohttp.ClientSession() as http:
            pair = run_pair(job="audited_rest")
            await post_events(http, relay.url, pair)

            def edge_written() -> bool:
                return any(
                    r["method"] == "PUT" and r["path"] == "/api/v1/lineage" for r in mock.requests
                )

            await wait_until(edge_written)
    finally:
        await relay.aclose()
    writes = [r for r in mock.requests if r["method"] != "GET"]

    lines = audit_lines(audit)
    assert [(line["method"], line["status"]) for line in lines] == [
        (r["method"], r["status"]) for r in writes
    ]  # every write, in order, and nothing else
    run_id = json.loads(pair[0])["run"]["runId"]
    by_operation = {line["operation"]: line for line in lines}
    assert "unknown" not in by_operation
    lineage = by_operation["put_lineage"]
    assert lineage["entities"] == [INPUT_TABLE, OUTPUT_TABLE] and lineage["run_ids"] == [run_id]
    status = by_operation["put_pipeline_status"]
    assert status["run_ids"] == [run_id] and status["entities"][0].endswith("audited_rest")
    assert by_operation["put_pipeline"]["entities"] == status["entities"]
    assert by_operation["put_pipeline_service"]["entities"] == ["spark"]
    assert all(line["outcome"] == "written" for line in lines)
    assert TOKEN not in audit.read_text()
