"""A real PySpark job, the plugin's events, a real relay with the `rest` sink, the mock: the
pipeline, its tasks, the run status and the container-to-container edge with column lineage."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from relay._app import Relay
from relay._config import load_config
from relay.testing.mock_openmetadata import MockOpenMetadata
from spark_plugin import _state, enable

pytestmark = pytest.mark.spark

TOKEN = "relay-bot-token"
T = TypeVar("T")


class _LoopThread:
    """An event loop on a thread: the relay and the mock live there while Spark runs here."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def _catalog(source: Path, sink: Path) -> dict[str, Any]:
    columns = [{"name": "id", "dataType": "BIGINT"}, {"name": "tripled", "dataType": "BIGINT"}]
    return {
        "storageServices": [{"name": "local_files", "serviceType": "CustomStorage"}],
        "containers": [
            {"name": path.name, "service": "local_files", "fullPath": f"file://{path}",
             "dataModel": {"columns": columns}}
            for path in (source, sink)
        ],
    }  # fmt: skip


async def _wait(predicate: Any, within_s: float = 30.0) -> None:
    async with asyncio.timeout(within_s):
        while not predicate():
            await asyncio.sleep(0.02)


def test_a_pyspark_job_becomes_a_pipeline_a_status_and_an_edge(spark: Any, tmp_path: Path) -> None:
    source, sink = tmp_path / "source", tmp_path / "sink"
    loop = _LoopThread()
    mock = MockOpenMetadata(tokens=[TOKEN], catalog=_catalog(source, sink))
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    relay: Relay | None = None
    try:
        loop.run(mock.start())
        config = load_config(None, environ={}, overrides={
            "relay.listen": "127.0.0.1:0", "spool.dir": str(tmp_path / "spool"),
            "openmetadata.host_port": mock.url, "openmetadata.jwt_token_file": str(token_file),
            "forwarder.linger_ms": 20,
        })  # fmt: skip
        relay = Relay(config)
        loop.run(relay.start())

        _state.reset()
        handle = enable(spark, url=relay.url)
        spark.range(20).selectExpr("id", "id * 3 AS tripled").write.mode("overwrite").parquet(
            str(source)
        )
        spark.read.parquet(str(source)).where("tripled > 9").write.mode("overwrite").parquet(
            str(sink)
        )
        assert handle.close(30)
        assert handle.dropped == 0  # (a failed POST under load is retried: `failed` counts it)

        spool = relay.spool
        assert spool is not None
        loop.run(_wait(lambda: spool.stats().events == 0))
        pipelines = [p for p in loop.run(_pipelines(mock)) if p["name"] != "openlineage"]
    finally:
        if relay is not None:
            loop.run(relay.aclose())
        loop.run(mock.aclose())
        loop.close()

    (pipeline,) = pipelines
    assert pipeline["fullyQualifiedName"] == "spark.lineage_relay_tests"
    tasks = sorted(t["name"] for t in pipeline["tasks"])
    assert len(tasks) == 2 and all(t.startswith("execute_") for t in tasks)
    (status,) = mock.pipeline_statuses("spark.lineage_relay_tests")
    assert status["executionStatus"] == "Successful"
    assert {t["name"]: t["executionStatus"] for t in status["taskStatus"]} == dict.fromkeys(
        tasks, "Successful"
    )
    (edge,) = mock.lineage_edges
    src, out = "local_files.source", "local_files.sink"
    assert (edge["fromEntity"]["fullyQualifiedName"], edge["toEntity"]["fullyQualifiedName"]) == (
        src, out,
    )  # fmt: skip
    details = edge["lineageDetails"]
    assert details["pipeline"]["fullyQualifiedName"] == "spark.lineage_relay_tests"
    assert details["source"] == "SparkLineage"
    assert sorted((c["fromColumns"], c["toColumn"]) for c in details["columnsLineage"]) == [
        ([f"{src}.id"], f"{out}.id"), ([f"{src}.tripled"], f"{out}.tripled"),
    ]  # fmt: skip


async def _pipelines(mock: MockOpenMetadata) -> list[dict[str, Any]]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{mock.url}/v1/pipelines?fields=tasks&limit=100",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response,
    ):
        data: list[dict[str, Any]] = (await response.json())["data"]
        return data
