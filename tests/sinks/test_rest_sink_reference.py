"""The `rest` sink on the real Spark events of the reference folder (skipped without it):
the mock seeded with their tables, exactly the expected pipeline, tasks, status and edges."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rest_support import (
    TOKEN,
    bodies_in,
    deliver,
    interleaved,
    rest_config,
    rest_sink,
    snapshot,
    spooled,
)

from relay._config import MappingRule
from relay._observe.metrics import Metrics
from relay.testing.mock_openmetadata import MockOpenMetadata

DATAPROC = "spark-real/dataproc-hive-hdfs-1.23.0"
CLL = "spark-real/cll-hive-ctas-with-logicalplan-1.19.0-SNAPSHOT"


def _hive_catalog(service: str, database: str, tables: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "databaseServices": [{"name": service, "serviceType": "Hive"}],
        "databases": [{"name": database, "service": service}],
        "databaseSchemas": [{"name": "default", "database": f"{service}.{database}"}],
        "tables": [
            {"name": name, "databaseSchema": f"{service}.{database}.default",
             "columns": [{"name": c, "dataType": "STRING"} for c in columns]}
            for name, columns in tables.items()
        ],
    }  # fmt: skip


@pytest.mark.parametrize("seed", [0, 7])
async def test_the_reference_dataproc_events(shared_dir: Path, tmp_path: Path, seed: int) -> None:
    bodies = bodies_in(shared_dir / "openlineage-samples" / DATAPROC)
    catalog = _hive_catalog("dataproc", "hive", {"t1": ["a", "b"], "t2": ["a", "b"]})
    rule = MappingRule(namespace="hive://*", service="dataproc", database="hive")
    t1, t2 = "dataproc.hive.default.t1", "dataproc.hive.default.t2"
    async with MockOpenMetadata(tokens=[TOKEN], catalog=catalog) as mock:
        async with rest_sink(rest_config(mock, mapping=(rule,)), tmp_path, Metrics()) as sink:
            await deliver(sink, spooled(bodies if not seed else interleaved(bodies, seed)))
        tasks = [
            "drop_table", "execute_create_hive_table_as_select_command.default_t2",
            "execute_create_table_command.warehouse_t1",
            "execute_insert_into_hive_table.warehouse_t1",
            "execute_insert_into_hive_table.warehouse_t2",
        ]  # fmt: skip
        assert await snapshot(mock) == {
            "pipelines": {"spark.cl_i_test_application": tasks},
            "statuses": {
                "spark.cl_i_test_application": [
                    ("Successful", dict.fromkeys(tasks, "Successful"))
                ]
            },
            "edges": {
                (t1, t2): {
                    "pipeline": "spark.cl_i_test_application", "source": "SparkLineage",
                    "sql": True, "columns": [(f"{t1}.a", f"{t2}.a"), (f"{t1}.b", f"{t2}.b")],
                }
            },
        }  # fmt: skip


async def test_the_reference_column_lineage_events(shared_dir: Path, tmp_path: Path) -> None:
    bodies = bodies_in(shared_dir / "openlineage-samples" / CLL)
    catalog = _hive_catalog("local", "spark_catalog", {
        "cll_source1": ["a", "b"], "cll_source2": ["a", "c"], "tbl1": ["ident", "trans", "agg"],
    })  # fmt: skip
    rule = MappingRule(namespace="file:*", service="local", database="spark_catalog")
    s1, s2, out = (
        f"local.spark_catalog.default.{t}" for t in ("cll_source1", "cll_source2", "tbl1")
    )
    async with MockOpenMetadata(tokens=[TOKEN], catalog=catalog) as mock:
        async with rest_sink(rest_config(mock, mapping=(rule,)), tmp_path, Metrics()) as sink:
            await deliver(sink, spooled(bodies))
        state = await snapshot(mock)
    pipeline = "spark.open_lineage_integration_create_table"
    assert state["pipelines"] == {
        pipeline: [
            "execute_create_hive_table_as_select_command.default_tbl1",
            "execute_create_table_command.cll_test_cll_source1",
            "execute_create_table_command.cll_test_cll_source2",
        ]
    }
    assert state["statuses"][pipeline][0][0] == "Successful"
    assert {key: edge["columns"] for key, edge in state["edges"].items()} == {
        (s1, out): [(f"{s1}.a", f"{out}.ident"), (f"{s1}.b", f"{out}.trans")],
        (s2, out): [(f"{s2}.c", f"{out}.agg")],
    }
