"""`lineage_from_digest` over hand-written JVM digests: the cases a local session cannot produce
(a remote Hive metastore, HDFS and S3 locations, PostgreSQL), without Spark."""

from __future__ import annotations

from typing import Any

from spark_plugin._model import SchemaField, Symlink
from spark_plugin._plans import lineage_from_digest

HIVE = {
    "spark.sql.catalogImplementation": "hive",
    "hive.metastore.uris": "thrift://metastore.prod:9083",
}


def _table(db: str, name: str, location: str, schema: list[Any]) -> dict[str, Any]:
    return {
        "db": db,
        "name": name,
        "catalog": "spark_catalog",
        "type": "MANAGED",
        "provider": "hive",
        "location": location,
        "schema": schema,
    }


def test_hive_insert_from_hdfs_with_remote_metastore_and_statistics() -> None:
    source = _table(
        "default",
        "t1",
        "hdfs://nn:8020/user/hive/warehouse/t1",
        [["a", "integer"], ["b", "string"]],
    )
    target = _table(
        "default",
        "t2",
        "hdfs://nn:8020/user/hive/warehouse/t2",
        [["a", "integer"], ["b", "string"]],
    )
    digest = {
        "root": 2,
        "job_node": "Execute InsertIntoHiveTable",
        "metrics": {"numOutputRows": 2, "numOutputBytes": 8, "numFiles": 1},
        "sys": HIVE,
        "nodes": [
            {
                "k": "HiveTableRelation",
                "c": [],
                "o": [["a", 1, "integer"], ["b", 2, "string"]],
                "rel": {"t": "hive", "table": source},
            },
            {"k": "Project", "c": [0], "o": [["a", 1, "integer"], ["b", 2, "string"]]},
            {
                "k": "InsertIntoHiveTable",
                "c": [1],
                "o": [],
                "cmd": {
                    "t": "insert_hive",
                    "overwrite": False,
                    "table": target,
                    "cols": ["a", "b"],
                },
            },
        ],
    }
    lineage = lineage_from_digest(digest)
    assert lineage is not None
    assert lineage.node_name == "execute_insert_into_hive_table"
    (src,) = lineage.inputs
    assert (src.namespace, src.name) == ("hdfs://nn:8020", "/user/hive/warehouse/t1")
    assert src.symlinks == (Symlink(namespace="hive://metastore.prod:9083", name="default.t1"),)
    (dst,) = lineage.outputs
    assert (dst.namespace, dst.name) == ("hdfs://nn:8020", "/user/hive/warehouse/t2")
    assert (dst.row_count, dst.size_bytes, dst.lifecycle_state) == (2, 8, None)
    assert [s.field for s in dst.column_lineage["b"]] == ["b"]


def test_s3_write_with_nested_schema_and_overwrite() -> None:
    struct = ["struct", [["street", "string"], ["zip", "integer"]]]
    digest = {
        "root": 1,
        "job_node": "Execute InsertIntoHadoopFsRelationCommand",
        "metrics": {},
        "sys": {},
        "nodes": [
            {
                "k": "LogicalRelation",
                "c": [],
                "o": [["addr", 1, struct]],
                "rel": {"t": "fs", "fmt": "JSON", "paths": ["s3a://raw/in/2024"], "table": None},
            },
            {
                "k": "InsertIntoHadoopFsRelationCommand",
                "c": [0],
                "o": [],
                "cmd": {
                    "t": "insert_fs",
                    "path": "s3a://lake/out/addr",
                    "mode": "Overwrite",
                    "fmt": "Parquet",
                    "table": None,
                    "cols": ["addr"],
                },
            },
        ],
    }
    lineage = lineage_from_digest(digest)
    assert lineage is not None
    assert [(i.namespace, i.name) for i in lineage.inputs] == [("s3://raw", "in/2024")]
    (dst,) = lineage.outputs
    assert (dst.namespace, dst.name, dst.lifecycle_state) == ("s3://lake", "out/addr", "OVERWRITE")
    assert dst.schema == (
        SchemaField(
            "addr", "struct", (SchemaField("street", "string"), SchemaField("zip", "integer"))
        ),
    )
    assert (dst.row_count, dst.size_bytes) == (None, None)


def test_postgres_jdbc_read_by_query_and_write() -> None:
    url = "jdbc:postgresql://pg.internal/sales?user=etl&password=hunter2"
    digest = {
        "root": 2,
        "job_node": "Execute SaveIntoDataSourceCommand",
        "metrics": {},
        "sys": {},
        "nodes": [
            {
                "k": "LogicalRelation",
                "c": [],
                "o": [["id", 1, "integer"], ["total", 2, "double"]],
                "rel": {
                    "t": "jdbc",
                    "url": url,
                    "dbtable": None,
                    "query": "SELECT o.id, sum(l.amount) AS total FROM public.orders o "
                    "JOIN public.lines l ON l.order_id = o.id GROUP BY o.id",
                    "table": None,
                },
            },
            {"k": "Project", "c": [0], "o": [["id", 1, "integer"], ["total", 2, "double"]]},
            {
                "k": "SaveIntoDataSourceCommand",
                "c": [1],
                "o": [],
                "cmd": {
                    "t": "save_ds",
                    "provider": "org.apache.spark.sql.execution.datasources."
                    "jdbc.JdbcRelationProvider",
                    "mode": "Append",
                    "url": url,
                    "dbtable": "reporting.order_totals",
                    "path": None,
                },
            },
        ],
    }
    lineage = lineage_from_digest(digest)
    assert lineage is not None
    assert [(i.namespace, i.name) for i in lineage.inputs] == [
        ("postgres://pg.internal:5432", "sales.public.orders"),
        ("postgres://pg.internal:5432", "sales.public.lines"),
    ]
    (dst,) = lineage.outputs
    assert (dst.namespace, dst.name) == (
        "postgres://pg.internal:5432",
        "sales.reporting.order_totals",
    )
    assert dst.lifecycle_state is None
    # which table each query column comes from is unknown: no guessed column lineage
    assert dst.column_lineage == {"id": (), "total": ()}
    assert "hunter2" not in repr(lineage) and "etl" not in repr(lineage)


def test_analysis_error_and_empty_plans_are_none() -> None:
    assert lineage_from_digest({"error": "AnalysisException: no table", "analysis": True}) is None
    digest = {
        "root": 0,
        "job_node": "LocalTableScan",
        "metrics": {},
        "sys": {},
        "nodes": [{"k": "LocalRelation", "c": [], "o": [["x", 1, "integer"]]}],
    }
    assert lineage_from_digest(digest) is None


def test_query_tables_skip_function_syntax() -> None:
    from spark_plugin._plans import _query_tables

    assert _query_tables(
        "SELECT EXTRACT(YEAR FROM o.ts) AS y, TRIM(BOTH ' ' FROM name) FROM sales.orders o "
        "LEFT JOIN (SELECT id FROM sales.customers) c ON c.id = o.cid"
    ) == ["sales.orders", "sales.customers"]
    assert _query_tables(None) == []
    assert _query_tables("(SELECT a FROM app.src WHERE a > 1) AS t") == ["app.src"]


def test_v2_sink_without_identity_is_not_a_dataset() -> None:
    digest = {
        "root": 1,
        "job_node": "OverwriteByExpression",
        "metrics": {},
        "sys": {},
        "nodes": [
            {"k": "Range", "c": [], "o": [["id", 1, "long"]]},
            {
                "k": "OverwriteByExpression",
                "c": [0],
                "o": [],
                "cmd": {
                    "t": "v2_write",
                    "overwrite": True,
                    "rel": {
                        "t": "v2",
                        "name": "noop-table",
                        "ident": None,
                        "catalog": None,
                        "location": None,
                        "schema": [],
                    },
                },
            },
        ],
    }
    assert lineage_from_digest(digest) is None
