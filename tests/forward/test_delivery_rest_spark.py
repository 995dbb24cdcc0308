"""A real PySpark job, the plugin's events, a real relay with the `rest` sink, the mock seeded
with the job's tables and containers, a mapping rule for the session's catalog: the pipeline,
its tasks, the run status (a failed action fails it), and the container and table edges with
column lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openmetadata_support import MOCK_TOKEN
from relay_support import ThreadedRelay
from wait_support import wait_until

from relay.testing.mock_openmetadata import MockOpenMetadata
from spark_plugin import _state, enable

pytestmark = pytest.mark.spark

SRC_TABLE, DST_TABLE = "rest_sink_src", "rest_sink_dst"
# The session's embedded metastore names tables in the warehouse's location (file:/...).
CATALOG_RULE = {"namespace": "file:/*", "service": "spark_hive", "database": "spark_catalog"}


def _catalog(source: Path, sink: Path) -> dict[str, Any]:
    columns = [{"name": "id", "dataType": "BIGINT"}, {"name": "tripled", "dataType": "BIGINT"}]
    return {
        "storageServices": [{"name": "local_files", "serviceType": "CustomStorage"}],
        "containers": [
            {"name": path.name, "service": "local_files", "fullPath": f"file://{path}",
             "dataModel": {"columns": columns}}
            for path in (source, sink)
        ],
        "databaseServices": [{"name": "spark_hive", "serviceType": "Hive"}],
        "databases": [{"name": "spark_catalog", "service": "spark_hive"}],
        "databaseSchemas": [{"name": "default", "database": "spark_hive.spark_catalog"}],
        "tables": [
            {"name": name, "databaseSchema": "spark_hive.spark_catalog.default",
             "columns": columns}
            for name in (SRC_TABLE, DST_TABLE)
        ],
    }  # fmt: skip


def test_a_pyspark_job_becomes_a_pipeline_a_status_and_an_edge(spark: Any, tmp_path: Path) -> None:
    source, sink = tmp_path / "source", tmp_path / "sink"
    mock = MockOpenMetadata(tokens=[MOCK_TOKEN], catalog=_catalog(source, sink))
    try:
        # The relay and the mock on a loop thread of their own, while Spark runs here.
        with ThreadedRelay(
            tmp_path / "spool",
            mock,
            **{"openmetadata.sink": "rest", "openmetadata.mapping": [CATALOG_RULE]},
        ) as threaded:
            _state.reset()
            handle = enable(spark, url=threaded.url)
            spark.range(20).selectExpr("id", "id * 3 AS tripled").write.mode("overwrite").parquet(
                str(source)
            )
            spark.read.parquet(str(source)).where("tripled > 9").write.mode("overwrite").parquet(
                str(sink)
            )
            spark.read.parquet(str(source)).write.mode("overwrite").saveAsTable(SRC_TABLE)
            spark.table(SRC_TABLE).where("tripled > 9").write.mode("overwrite").saveAsTable(
                DST_TABLE
            )
            failing = spark.read.parquet(str(source)).selectExpr("raise_error('boom') AS x")
            with pytest.raises(Exception, match="boom"):
                failing.write.mode("overwrite").parquet(str(tmp_path / "never_written"))
            assert handle.close(30)
            assert handle.dropped == 0  # (a failed POST under load is retried: `failed` counts it)

            assert threaded.relay is not None and threaded.relay.spool is not None
            spool = threaded.relay.spool
            threaded.run(wait_until(lambda: spool.stats().events == 0, within_s=30))
            pipelines = [p for p in threaded.run(_pipelines(mock)) if p["name"] != "openlineage"]
    finally:
        for table in (SRC_TABLE, DST_TABLE):
            spark.sql(f"DROP TABLE IF EXISTS {table}")

    (pipeline,) = pipelines
    assert pipeline["fullyQualifiedName"] == "spark.lineage_relay_tests"
    tasks = sorted(t["name"] for t in pipeline["tasks"])
    assert len(tasks) == 5 and all(t.startswith("execute_") for t in tasks)
    (status,) = mock.pipeline_statuses("spark.lineage_relay_tests")
    # The failed action fails the run, though the application completed afterwards.
    assert status["executionStatus"] == "Failed"
    by_status = sorted(t["executionStatus"] for t in status["taskStatus"])
    assert by_status == ["Failed"] + ["Successful"] * 4
    (failed,) = [t for t in status["taskStatus"] if t["executionStatus"] == "Failed"]
    assert failed["name"].endswith("never_written")
    edges = {
        (e["fromEntity"]["fullyQualifiedName"], e["toEntity"]["fullyQualifiedName"]): e
        for e in mock.lineage_edges
    }
    src_table = f"spark_hive.spark_catalog.default.{SRC_TABLE}"
    dst_table = f"spark_hive.spark_catalog.default.{DST_TABLE}"
    # The container the first table was written from is an input of that write too.
    assert set(edges) == {
        ("local_files.source", "local_files.sink"),
        ("local_files.source", src_table),
        (src_table, dst_table),
    }
    for (src, out), edge in edges.items():
        details = edge["lineageDetails"]
        assert details["pipeline"]["fullyQualifiedName"] == "spark.lineage_relay_tests"
        assert details["source"] == "SparkLineage"
        assert sorted((c["fromColumns"], c["toColumn"]) for c in details["columnsLineage"]) == [
            ([f"{src}.id"], f"{out}.id"), ([f"{src}.tripled"], f"{out}.tripled"),
        ]  # fmt: skip


async def _pipelines(mock: MockOpenMetadata) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{mock.url}/v1/pipelines?fields=tasks&limit=100",
            headers={"Authorization": f"Bearer {MOCK_TOKEN}"},
        ) as response,
    ):
        data: list[dict[str, Any]] = (await response.json())["data"]
        return data
