"""Pipeline status: upsert per timestamp, validation, listing by time range."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from relay.testing.mock_openmetadata import MockOpenMetadata

START_MS = 1_764_150_000_000


@pytest.fixture
async def pipeline(mock: MockOpenMetadata, client: aiohttp.ClientSession) -> str:
    async with client.put(
        f"{mock.url}/v1/services/pipelineServices", json={"name": "spark", "serviceType": "Spark"}
    ) as resp:
        assert resp.status == 201
    body = {"name": "app.job", "service": "spark", "tasks": [{"name": "write_orders"}]}
    async with client.put(f"{mock.url}/v1/pipelines", json=body) as resp:
        assert resp.status == 201
        fqn: str = (await resp.json())["fullyQualifiedName"]
    assert fqn == 'spark."app.job"'
    return fqn


async def _put_status(
    client: aiohttp.ClientSession, mock: MockOpenMetadata, fqn: str, body: Any
) -> tuple[int, dict[str, Any]]:
    from urllib.parse import quote

    async with client.put(
        f"{mock.url}/v1/pipelines/{quote(fqn, safe='')}/status", json=body
    ) as resp:
        return resp.status, await resp.json()


async def test_pending_then_successful_at_the_same_timestamp_upserts(
    mock: MockOpenMetadata, client: aiohttp.ClientSession, pipeline: str
) -> None:
    pending = {
        "timestamp": START_MS,
        "executionStatus": "Pending",
        "taskStatus": [
            {"name": "write_orders", "executionStatus": "Pending", "startTime": START_MS}
        ],
    }
    status, body = await _put_status(client, mock, pipeline, pending)
    assert status == 200
    assert body["pipelineStatus"]["executionStatus"] == "Pending"
    done = {**pending, "executionStatus": "Successful", "endTime": START_MS + 5000}
    status, body = await _put_status(client, mock, pipeline, done)
    assert (status, body["pipelineStatus"]["executionStatus"]) == (200, "Successful")
    later = {"timestamp": START_MS + 60_000, "executionStatus": "Failed"}
    assert (await _put_status(client, mock, pipeline, later))[0] == 200
    assert [s["executionStatus"] for s in mock.pipeline_statuses(pipeline)] == [
        "Successful",
        "Failed",
    ]

    async with client.get(
        f"{mock.url}/v1/pipelines/{pipeline}/status",
        params={"startTs": str(START_MS), "endTs": str(START_MS + 120_000)},
    ) as resp:
        listing = await resp.json()
    assert [s["timestamp"] for s in listing["data"]] == [
        START_MS + 60_000,
        START_MS,
    ]  # newest first
    assert listing["paging"]["total"] == 2
    async with client.get(
        f"{mock.url}/v1/pipelines/{pipeline}/status", params={"startTs": "0"}
    ) as resp:
        assert (resp.status, (await resp.json())["message"]) == (
            400,
            "[query param endTs must not be null]",
        )
    async with client.get(f"{mock.url}/v1/pipelines/name/{pipeline}?fields=pipelineStatus") as resp:
        assert (await resp.json())["pipelineStatus"]["timestamp"] == START_MS + 60_000


async def test_unknown_task_name_is_400(
    mock: MockOpenMetadata, client: aiohttp.ClientSession, pipeline: str
) -> None:
    body = {
        "timestamp": START_MS,
        "executionStatus": "Successful",
        "taskStatus": [{"name": "ghost_task", "executionStatus": "Successful"}],
    }
    assert await _put_status(client, mock, pipeline, body) == (
        400,
        {"code": 400, "message": "Invalid task name ghost_task"},
    )


async def test_running_is_not_a_status(
    mock: MockOpenMetadata, client: aiohttp.ClientSession, pipeline: str
) -> None:
    status, body = await _put_status(
        client, mock, pipeline, {"timestamp": START_MS, "executionStatus": "Running"}
    )
    assert status == 400
    assert 'from String "Running": not one of the values accepted' in body["message"]
    assert "[Successful, Failed, Pending, Skipped]" in body["message"]
    assert mock.pipeline_statuses(pipeline) == []


async def test_unknown_pipeline_is_404(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    status, body = await _put_status(
        client, mock, "spark.ghost", {"timestamp": START_MS, "executionStatus": "Successful"}
    )
    assert (status, body["message"]) == (404, "pipeline instance for spark.ghost not found")


async def test_bulk_upserts_all_or_nothing(
    mock: MockOpenMetadata, client: aiohttp.ClientSession, pipeline: str
) -> None:
    url = f"{mock.url}/v1/pipelines/{pipeline}/status/bulk"
    statuses = [
        {"timestamp": START_MS, "executionStatus": "Successful"},
        {"timestamp": START_MS + 1, "executionStatus": "Failed"},
    ]
    async with client.put(url, json=statuses) as resp:
        assert resp.status == 200
        assert (await resp.json())["pipelineStatus"]["timestamp"] == START_MS + 1
    bad = [
        {"timestamp": START_MS + 2, "executionStatus": "Skipped"},
        {"timestamp": START_MS + 3, "executionStatus": "Running"},
    ]
    async with client.put(url, json=bad) as resp:
        assert resp.status == 400
        assert (await resp.json())["message"].startswith("[1]: Cannot deserialize")
    assert [s["timestamp"] for s in mock.pipeline_statuses(pipeline)] == [START_MS, START_MS + 1]
