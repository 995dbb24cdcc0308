"""Dataset and job naming rules of the OpenLineage Spark integration, without Spark."""

from __future__ import annotations

import pytest

from spark_plugin._model import DatasetRef, ExecutionLineage, Symlink
from spark_plugin._naming import (
    hive_symlink,
    jdbc_dataset,
    job_name,
    output_suffix,
    path_dataset,
    snake,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Execute InsertIntoHadoopFsRelationCommand",
            "execute_insert_into_hadoop_fs_relation_command",
        ),
        ("Execute CreateHiveTableAsSelectCommand", "execute_create_hive_table_as_select_command"),
        ("AdaptiveSparkPlan", "adaptive_spark_plan"),
        ("DropTable", "drop_table"),
        ("Open Lineage Integration Hive", "open_lineage_integration_hive"),
        ("  shakespeare on Spark!  ", "shakespeare_on_spark"),
        ("someACRONYMInside", "some_acronym_inside"),
        ("café crème", "cafe_creme"),
        ("job2run", "job2_run"),
    ],
)
def test_snake(text: str, expected: str) -> None:
    assert snake(text) == expected


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file:/tmp/out/p1", ("file", "/tmp/out/p1")),
        ("file:///tmp/out/p1/", ("file", "/tmp/out/p1")),
        ("/tmp/out/p1", ("file", "/tmp/out/p1")),
        (
            "hdfs://namenode:8020/user/hive/warehouse/t1",
            ("hdfs://namenode:8020", "/user/hive/warehouse/t1"),
        ),
        ("hdfs://dataproc-m/user/x", ("hdfs://dataproc-m", "/user/x")),
        ("s3a://bucket/wh/sf/waymo", ("s3://bucket", "wh/sf/waymo")),
        ("s3n://bucket/key", ("s3://bucket", "key")),
        ("s3://bucket/a/b/", ("s3://bucket", "a/b")),
        ("gs://bucket/data/x.parquet", ("gs://bucket", "data/x.parquet")),
        (
            "abfs://container@account.dfs.core.windows.net/dir/f",
            ("abfss://container@account.dfs.core.windows.net", "dir/f"),
        ),
        ("wasb://c@a.blob.core.windows.net/d", ("wasbs://c@a.blob.core.windows.net", "d")),
    ],
)
def test_path_dataset(uri: str, expected: tuple[str, str]) -> None:
    assert path_dataset(uri) == expected


@pytest.mark.parametrize(
    ("url", "table", "expected"),
    [
        (
            "jdbc:postgresql://db.example.com/sales?user=u&password=secret",
            "public.orders",
            ("postgres://db.example.com:5432", "sales.public.orders"),
        ),
        (
            "jdbc:postgresql://u:pw@Db.Example.com:6543/sales",
            "orders",
            ("postgres://db.example.com:6543", "sales.orders"),
        ),
        ("jdbc:mysql://h1:3307/shop", "items", ("mysql://h1:3307", "shop.items")),
        ("jdbc:mysql://h1/shop?password=x", "items", ("mysql://h1:3306", "shop.items")),
        (
            "jdbc:sqlserver://sql1;databaseName=erp;password=pw",
            "dbo.t",
            ("sqlserver://sql1:1433", "erp.dbo.t"),
        ),
        (
            "jdbc:oracle:thin:@//ora.host:1522/ORCLPDB",
            "HR.EMP",
            ("oracle://ora.host:1522", "ORCLPDB.HR.EMP"),
        ),
        ("jdbc:oracle:thin:@ora.host:1521:SID1", "EMP", ("oracle://ora.host:1521", "SID1.EMP")),
        (
            "jdbc:clickhouse://localhost:8123/mydb",
            "myschema.mytable",
            ("clickhouse://localhost:8123", "mydb.myschema.mytable"),
        ),
        ("jdbc:derby:memory:t1;create=true", "APP.X", ("derby:memory:t1", "APP.X")),
        ("jdbc:derby:/var/db/meta;create=true", "APP.X", ("file:/var/db/meta", "APP.X")),
        ("jdbc:derby:;databaseName=mdb;create=true", "T", ("file:/home/spark/mdb", "T")),
        ("jdbc:derby:rel/db", "T", ("file:/home/spark/rel/db", "T")),
    ],
)
def test_jdbc_dataset(url: str, table: str, expected: tuple[str, str]) -> None:
    namespace, name = jdbc_dataset(url, table, derby_home="/home/spark")
    assert (namespace, name) == expected
    assert "secret" not in namespace + name and "pw" not in namespace


def test_hive_symlink_with_metastore_uri() -> None:
    conf = {
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.hive.metastore.uris": "thrift://metastore.internal:9083,thrift://m2:9083",
    }
    link = hive_symlink("default", "t1", "hdfs://nn/user/hive/warehouse/t1", conf)
    assert link == Symlink(namespace="hive://metastore.internal:9083", name="default.t1")


def test_hive_symlink_embedded_metastore_uses_the_table_parent() -> None:
    conf = {"spark.sql.catalogImplementation": "hive"}
    link = hive_symlink("default", "t1", "file:/tmp/wh/t1", conf)
    assert link == Symlink(namespace="file:/tmp/wh", name="default.t1", type="TABLE")
    # a metastore URI only counts with the Hive catalog, as in the integration
    in_memory = {"spark.sql.hive.metastore.uris": "thrift://m:9083"}
    assert hive_symlink("db", "t", "file:/w/db.db/t", in_memory).namespace == "file:/w/db.db"


def _out(name: str, *, namespace: str = "file", table: str | None = None) -> DatasetRef:
    links = (Symlink(namespace="hive://m:9083", name=table),) if table else ()
    return DatasetRef(namespace=namespace, name=name, symlinks=links)


def test_output_suffix_and_job_name() -> None:
    assert output_suffix(_out("/user/hive/warehouse/t1"), prefer_table=False) == "warehouse_t1"
    assert output_suffix(_out("/tmp/outputs/1729097570970"), prefer_table=False) == (
        "outputs_1729097570970"
    )
    assert output_suffix(_out("/wh/t2", table="default.t2"), prefer_table=True) == "default_t2"
    assert output_suffix(
        _out("sales.public.orders", namespace="postgres://h:5432"), prefer_table=False
    ) == ("sales_public_orders")
    insert = ExecutionLineage(
        node_name="execute_insert_into_hive_table",
        outputs=(_out("/user/hive/warehouse/t1", table="default.t1"),),
    )
    assert job_name("CLI test application", insert) == (
        "cli_test_application.execute_insert_into_hive_table.warehouse_t1"
    )
    ctas = ExecutionLineage(
        node_name="execute_create_hive_table_as_select_command",
        outputs=(_out("/user/hive/warehouse/t2", table="default.t2"),),
    )
    assert job_name("App", ctas) == "app.execute_create_hive_table_as_select_command.default_t2"
    read = ExecutionLineage(node_name="adaptive_spark_plan", inputs=(_out("/in"),))
    assert job_name("Shakespeare on Spark", read) == "shakespeare_on_spark.adaptive_spark_plan"


def test_drop_table_job_has_no_suffix() -> None:
    dropped = DatasetRef(
        namespace="hdfs://m", name="/user/hive/warehouse/t1", lifecycle_state="DROP"
    )
    lineage = ExecutionLineage(node_name="drop_table", outputs=(dropped,))
    assert job_name("CLI test application", lineage) == "cli_test_application.drop_table"
