"""What `PlanWalker.describe` finds in real Spark jobs: datasets, schema, symlinks, lifecycle,
statistics and column lineage, for each kind of job the issue lists.

The QueryExecution of every execution is captured by a real QueryExecutionListener registered in
the shared session's JVM (the same object the SQL END event carries), and described right inside
the callback, as the plugin's listener does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from spark_plugin._events import merge_executions
from spark_plugin._model import ColumnSource, DatasetRef, ExecutionLineage
from spark_plugin._plans import PlanWalker, lineage_from_digest

pytestmark = pytest.mark.spark

Captured = list[tuple[str, ExecutionLineage | BaseException | None]]
DIGESTS: list[dict[str, Any]] = []


class _Capture:
    """py4j QueryExecutionListener: describes each finished or failed execution."""

    class Java:
        implements: ClassVar[list[str]] = ["org.apache.spark.sql.util.QueryExecutionListener"]

    def __init__(self, walker: PlanWalker) -> None:
        self.walker = walker
        self.seen: Captured = []
        self.lock = threading.Lock()

    def _record(self, func: str, qe: Any) -> None:
        digest: dict[str, Any] = {}
        try:
            digest = self.walker.digest(qe)
            result: ExecutionLineage | BaseException | None = lineage_from_digest(digest)
        except Exception as exc:  # recorded, asserted on by the test
            result = exc
        with self.lock:
            self.seen.append((func, result))
            DIGESTS.append(digest)

    def onSuccess(self, func: str, qe: Any, duration_ns: int) -> None:
        self._record(func, qe)

    def onFailure(self, func: str, qe: Any, error: Any) -> None:
        self._record(f"failed {func}", qe)

    def equals(self, other: object) -> bool:
        return other is self

    def hashCode(self) -> int:
        return id(self) & 0x7FFFFFFF

    def toString(self) -> str:
        return "lineage-relay test capture"


Run = Callable[[Callable[[], object]], Captured]


@pytest.fixture(scope="module")
def walker(spark: Any) -> PlanWalker:
    return PlanWalker(spark._jsparkSession, spark.sparkContext._gateway)


@pytest.fixture(scope="module")
def run(spark: Any, walker: PlanWalker) -> Iterator[Run]:
    """run(action) -> [(funcName, lineage)] of the executions the action caused."""
    from spark_plugin._callback import start_callback_server

    gateway = spark.sparkContext._gateway
    jvm = spark._jvm
    start_callback_server(gateway)  # as enable() does: authenticated on the shared session
    capture = _Capture(walker)
    # one JVM proxy kept in an Object[] so that unregister finds the same object
    holder = jvm.java.util.ArrayList()
    holder.add(capture)
    args = holder.toArray()
    types = gateway.new_array(jvm.java.lang.Class, 1)
    types[0] = jvm.java.lang.Class.forName("org.apache.spark.sql.util.QueryExecutionListener")
    manager = spark._jsparkSession.listenerManager()
    manager.getClass().getMethod("register", types).invoke(manager, args)
    bus = spark.sparkContext._jsc.sc().listenerBus()

    def _run(action: Callable[[], object]) -> Captured:
        bus.waitUntilEmpty()
        with capture.lock:
            capture.seen.clear()
            DIGESTS.clear()
        try:
            action()
        except Exception as exc:
            if "boom" not in str(exc):
                raise
        bus.waitUntilEmpty()
        with capture.lock:
            return list(capture.seen)

    yield _run
    manager.getClass().getMethod("unregister", types).invoke(manager, args)


def _one(captured: Captured, node: str) -> ExecutionLineage:
    found = [r for _, r in captured if isinstance(r, ExecutionLineage) and r.node_name == node]
    errors = [r for _, r in captured if isinstance(r, BaseException)]
    assert not errors, errors
    assert len(found) == 1, [(f, getattr(r, "node_name", r)) for f, r in captured]
    return found[0]


def _fields(ref: DatasetRef) -> list[tuple[str, str]]:
    return [(f.name, f.type) for f in ref.schema]


def _src(sources: tuple[ColumnSource, ...]) -> set[tuple[str, str, tuple[str, ...]]]:
    """{(dataset basename, field, subtypes)}"""
    return {
        (s.name.rsplit("/", 1)[-1], s.field, tuple(t.subtype for t in s.transformations))
        for s in sources
    }


@pytest.fixture(scope="module")
def data(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("datasets")
    people = spark.createDataFrame(
        [(1, "ann", 10, 100.0), (2, "bob", 20, 200.0), (3, "cid", 10, 300.0)],
        "id int, name string, dept_id int, salary double",
    )
    depts = spark.createDataFrame([(10, "eng"), (20, "ops")], "dept_id int, dept string")
    people.write.parquet(str(base / "people.parquet"))
    people.write.option("header", True).csv(str(base / "people.csv"))
    people.write.json(str(base / "people.json"))
    people.write.orc(str(base / "people.orc"))
    people.selectExpr("name").write.text(str(base / "names.txt"))
    depts.write.parquet(str(base / "depts.parquet"))
    people.write.partitionBy("dept_id").parquet(str(base / "by_dept"))
    return base


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json", "orc", "text"])
def test_file_to_file_each_format(spark: Any, run: Run, data: Path, fmt: str) -> None:
    source = data / ("names.txt" if fmt == "text" else f"people.{fmt}")
    out = data / f"out_{fmt}"
    reader = spark.read.option("header", True) if fmt == "csv" else spark.read
    df = reader.format(fmt).load(str(source))
    column = "value" if fmt == "text" else "name"
    captured = run(
        lambda: (
            df.selectExpr(f"{column} as who", f"upper({column}) as loud")
            .write.mode("overwrite")
            .format("parquet")
            .save(str(out))
        )
    )
    lineage = _one(captured, "execute_insert_into_hadoop_fs_relation_command")
    (src,) = lineage.inputs
    assert (src.namespace, src.name) == ("file", str(source))
    assert column in [f.name for f in src.schema]
    (dst,) = lineage.outputs
    assert (dst.namespace, dst.name) == ("file", str(out))
    assert _fields(dst) == [("who", "string"), ("loud", "string")]
    assert dst.lifecycle_state == "OVERWRITE"
    assert dst.row_count == 3
    assert dst.size_bytes is not None and dst.size_bytes > 0
    assert _src(dst.column_lineage["who"]) == {(source.name, column, ("IDENTITY",))}
    assert _src(dst.column_lineage["loud"]) == {(source.name, column, ("TRANSFORMATION",))}


def test_insert_overwrite_directory(spark: Any, run: Run, data: Path) -> None:
    spark.read.parquet(str(data / "depts.parquet")).createOrReplaceTempView("depts_v")
    out = data / "dir_out"
    # the path is the test's own temporary directory
    statement = f"INSERT OVERWRITE DIRECTORY '{out}' USING parquet SELECT dept FROM depts_v"  # noqa: S608
    captured = run(lambda: spark.sql(statement))
    lineage = _one(captured, "execute_insert_into_data_source_dir_command")
    (dst,) = lineage.outputs
    assert (dst.namespace, dst.name, dst.lifecycle_state) == ("file", str(out), "OVERWRITE")
    assert _src(dst.column_lineage["dept"]) == {("depts.parquet", "dept", ("IDENTITY",))}


def test_partitioned_directory_read_and_write(spark: Any, run: Run, data: Path) -> None:
    out = data / "by_dept_copy"
    df = spark.read.parquet(str(data / "by_dept")).where("dept_id = 10")
    captured = run(lambda: df.write.mode("append").partitionBy("dept_id").parquet(str(out)))
    lineage = _one(captured, "execute_insert_into_hadoop_fs_relation_command")
    assert [(i.namespace, i.name) for i in lineage.inputs] == [("file", str(data / "by_dept"))]
    assert ("dept_id", "integer") in _fields(lineage.inputs[0])
    (dst,) = lineage.outputs
    assert (dst.name, dst.lifecycle_state) == (str(out), None)
    assert _src(dst.dataset_lineage) == {("by_dept", "dept_id", ("FILTER",))}


def test_join_aggregate_save_as_table(spark: Any, run: Run, data: Path) -> None:
    spark.sql("DROP TABLE IF EXISTS dept_totals")
    people = spark.read.parquet(str(data / "people.parquet"))
    depts = spark.read.parquet(str(data / "depts.parquet"))
    result = (
        people.join(depts, "dept_id")
        .where("salary > 50")
        .groupBy("dept")
        .agg({"salary": "sum", "id": "count"})
        .withColumnRenamed("sum(salary)", "total")
        .withColumnRenamed("count(id)", "heads")
    )
    captured = run(lambda: result.write.mode("overwrite").saveAsTable("dept_totals"))
    warehouse = Path(spark.conf.get("spark.sql.warehouse.dir").removeprefix("file:"))
    location = str(warehouse / "dept_totals")
    assert sorted(str(r.node_name) for _, r in captured if isinstance(r, ExecutionLineage)) == [
        "execute_create_data_source_table_as_select_command",
        "execute_insert_into_hadoop_fs_relation_command",
        "execute_save_as_v1_table_command",
    ]
    outer = _one(captured, "execute_save_as_v1_table_command")
    (dst,) = outer.outputs
    assert (dst.namespace, dst.name) == ("file", location)
    (link,) = dst.symlinks
    assert (link.name, link.type) == ("default.dept_totals", "TABLE")
    assert link.namespace == f"file:{warehouse}"
    assert dst.lifecycle_state == "CREATE"
    assert {(i.namespace, i.name) for i in outer.inputs} == {
        ("file", str(data / "people.parquet")),
        ("file", str(data / "depts.parquet")),
    }
    assert _src(dst.column_lineage["dept"]) == {("depts.parquet", "dept", ("IDENTITY",))}
    assert _src(dst.column_lineage["total"]) == {("people.parquet", "salary", ("AGGREGATION",))}
    assert _src(dst.column_lineage["heads"]) == {("people.parquet", "id", ("AGGREGATION",))}
    assert _src(dst.dataset_lineage) == {
        ("depts.parquet", "dept", ("GROUP_BY",)),
        ("depts.parquet", "dept_id", ("JOIN",)),
        ("people.parquet", "dept_id", ("JOIN",)),
        ("people.parquet", "salary", ("FILTER",)),
    }
    inner = _one(captured, "execute_insert_into_hadoop_fs_relation_command")
    assert inner.outputs[0].name == location
    assert inner.outputs[0].row_count == 2


def test_sql_ctas_with_cte_subquery_case_and_masking(spark: Any, run: Run, data: Path) -> None:
    spark.read.parquet(str(data / "people.parquet")).createOrReplaceTempView("people_v")
    spark.sql("DROP TABLE IF EXISTS ctas_out")
    captured = run(
        lambda: spark.sql(
            """
            CREATE TABLE ctas_out USING parquet AS
            WITH rich AS (SELECT id, name, salary FROM people_v WHERE salary > 150)
            SELECT id,
                   CASE WHEN salary > 250 THEN name ELSE 'x' END AS label,
                   sha2(name, 256) AS hashed,
                   (SELECT max(salary) FROM people_v) AS top
            FROM rich
            WHERE id IN (SELECT id FROM people_v WHERE dept_id = 10)
            """
        )
    )
    lineage = _one(captured, "execute_create_data_source_table_as_select_command")
    assert [(i.name.rsplit("/", 1)[-1]) for i in lineage.inputs] == ["people.parquet"]
    (dst,) = lineage.outputs
    assert dst.lifecycle_state == "CREATE"
    assert dst.symlinks[0].name == "default.ctas_out"
    assert _fields(dst) == [
        ("id", "integer"),
        ("label", "string"),
        ("hashed", "string"),
        ("top", "double"),
    ]
    cl = dst.column_lineage
    assert _src(cl["id"]) == {("people.parquet", "id", ("IDENTITY",))}
    assert _src(cl["label"]) == {
        ("people.parquet", "name", ("TRANSFORMATION",)),
        ("people.parquet", "salary", ("CONDITIONAL",)),
    }
    (hashed,) = cl["hashed"]
    assert [(t.subtype, t.masking) for t in hashed.transformations] == [("TRANSFORMATION", True)]
    assert _src(cl["top"]) == {("people.parquet", "salary", ("AGGREGATION",))}
    assert _src(dst.dataset_lineage) == {
        ("people.parquet", "salary", ("FILTER",)),
        ("people.parquet", "id", ("FILTER",)),
        ("people.parquet", "dept_id", ("FILTER",)),
    }


def test_union_insert_into(spark: Any, run: Run, data: Path) -> None:
    spark.sql("DROP TABLE IF EXISTS staff")
    spark.sql("CREATE TABLE staff (who STRING, pay DOUBLE) USING parquet")
    parquet = spark.read.parquet(str(data / "people.parquet"))
    csv = (
        spark.read.option("header", True).option("inferSchema", True).csv(str(data / "people.csv"))
    )
    union = parquet.selectExpr("name", "salary").unionByName(
        csv.selectExpr("name", "salary * 2 as salary")
    )
    captured = run(lambda: union.write.insertInto("staff"))
    lineage = _one(captured, "execute_insert_into_hadoop_fs_relation_command")
    (dst,) = lineage.outputs
    assert dst.symlinks[0].name == "default.staff"
    assert dst.lifecycle_state is None
    assert _fields(dst) == [("who", "string"), ("pay", "double")]
    assert _src(dst.column_lineage["who"]) == {
        ("people.parquet", "name", ("IDENTITY",)),
        ("people.csv", "name", ("IDENTITY",)),
    }
    assert _src(dst.column_lineage["pay"]) == {
        ("people.parquet", "salary", ("IDENTITY",)),
        ("people.csv", "salary", ("TRANSFORMATION",)),
    }


def test_jdbc_write_and_read_derby(spark: Any, run: Run, data: Path) -> None:
    url = "jdbc:derby:memory:lineage_tests;create=true"
    people = spark.read.parquet(str(data / "people.parquet"))
    captured = run(
        lambda: people.select("id", "name").write.jdbc(url, "APP.PEOPLE_COPY", mode="overwrite")
    )
    lineage = _one(captured, "execute_save_into_data_source_command")
    (dst,) = lineage.outputs
    assert (dst.namespace, dst.name) == ("derby:memory:lineage_tests", "APP.PEOPLE_COPY")
    assert dst.lifecycle_state == "OVERWRITE"
    assert _src(dst.column_lineage["name"]) == {("people.parquet", "name", ("IDENTITY",))}

    spark.sql("DROP TABLE IF EXISTS jdbc_people")
    spark.sql(
        "CREATE TABLE jdbc_people USING jdbc OPTIONS "
        "(url 'jdbc:derby:memory:lineage_tests', dbtable 'APP.PEOPLE_COPY')"
    )
    captured = run(
        lambda: spark.sql("INSERT INTO jdbc_people SELECT id + 10, name FROM jdbc_people")
    )
    lineage = _one(captured, "execute_insert_into_data_source_command")
    (dst,) = lineage.outputs
    assert (dst.namespace, dst.name) == ("derby:memory:lineage_tests", "APP.PEOPLE_COPY")
    assert [(i.namespace, i.name) for i in lineage.inputs] == [(dst.namespace, dst.name)]
    assert _src(dst.column_lineage["id"]) == {("APP.PEOPLE_COPY", "id", ("TRANSFORMATION",))}

    out = data / "from_jdbc"
    jdbc = spark.read.jdbc("jdbc:derby:memory:lineage_tests", "APP.PEOPLE_COPY")
    captured = run(lambda: jdbc.write.mode("overwrite").parquet(str(out)))
    lineage = _one(captured, "execute_insert_into_hadoop_fs_relation_command")
    (src,) = lineage.inputs
    assert (src.namespace, src.name) == ("derby:memory:lineage_tests", "APP.PEOPLE_COPY")
    assert _fields(src) == [("id", "integer"), ("name", "string")]
    assert _src(lineage.outputs[0].column_lineage["name"]) == {
        ("APP.PEOPLE_COPY", "name", ("IDENTITY",))
    }


def test_datasource_v2_catalog_table(spark: Any, run: Run, data: Path) -> None:
    """A JDBCTableCatalog (shipped with Spark) exposes v2 tables with identifiers."""
    url = "jdbc:derby:memory:lineage_v2;create=true"
    spark.conf.set(
        "spark.sql.catalog.v2cat",
        "org.apache.spark.sql.execution.datasources.v2.jdbc.JDBCTableCatalog",
    )
    spark.conf.set("spark.sql.catalog.v2cat.url", url)
    spark.conf.set("spark.sql.catalog.v2cat.driver", "org.apache.derby.jdbc.EmbeddedDriver")
    spark.read.parquet(str(data / "depts.parquet")).write.jdbc(url, "APP.DEPTS", mode="overwrite")
    spark.sql("CREATE TABLE IF NOT EXISTS v2cat.APP.DEPT_NAMES (dept STRING)")
    captured = run(
        lambda: spark.sql(
            "INSERT INTO v2cat.APP.DEPT_NAMES SELECT upper(dept) FROM v2cat.APP.DEPTS"
        )
    )
    # the JDBC v2 write runs a nested foreachPartition execution that only reads
    lineage = _one(captured, "append_data_exec_v1")
    (src,) = lineage.inputs
    assert (src.namespace, src.name) == ("derby:memory:lineage_v2", "APP.DEPTS")
    (dst,) = lineage.outputs
    assert (dst.namespace, dst.name) == ("derby:memory:lineage_v2", "APP.DEPT_NAMES")
    assert _src(dst.column_lineage["dept"]) == {("APP.DEPTS", "dept", ("TRANSFORMATION",))}


def test_hive_tables(spark: Any, run: Run, data: Path) -> None:
    for table in ("hive_src", "hive_text", "hive_ctas"):
        spark.sql(f"DROP TABLE IF EXISTS {table}")
    captured = run(lambda: spark.sql("CREATE TABLE hive_src (a INT, b STRING) STORED AS PARQUET"))
    created = _one(captured, "execute_create_table_command")
    assert created.outputs[0].lifecycle_state == "CREATE"
    assert created.outputs[0].symlinks[0].name == "default.hive_src"
    assert _fields(created.outputs[0]) == [("a", "integer"), ("b", "string")]

    spark.sql("INSERT INTO hive_src VALUES (1, 'x'), (2, 'y')")
    spark.sql("CREATE TABLE hive_text (a INT, b STRING) STORED AS TEXTFILE")
    captured = run(lambda: spark.sql("INSERT OVERWRITE TABLE hive_text SELECT a, b FROM hive_src"))
    lineage = _one(captured, "execute_insert_into_hive_table")
    (src,) = lineage.inputs
    assert src.name.endswith("/hive_src")
    assert src.symlinks[0].name == "default.hive_src"
    (dst,) = lineage.outputs
    assert dst.name.endswith("/hive_text") and dst.namespace == "file"
    assert dst.symlinks[0].name == "default.hive_text"
    assert dst.lifecycle_state == "OVERWRITE"
    assert dst.row_count == 2
    assert _src(dst.column_lineage["b"]) == {("hive_src", "b", ("IDENTITY",))}

    captured = run(
        lambda: spark.sql(
            "CREATE TABLE hive_ctas STORED AS PARQUET AS SELECT a * 2 AS a2 FROM hive_text"
        )
    )
    lineage = _one(captured, "execute_create_hive_table_as_select_command")
    assert lineage.inputs[0].symlinks[0].name == "default.hive_text"
    spark.sql("CREATE OR REPLACE VIEW hive_view AS SELECT a AS x FROM hive_src WHERE b <> 'z'")
    captured = run(lambda: spark.sql("INSERT INTO hive_text SELECT x, 'v' FROM hive_view"))
    (through_view,) = _one(captured, "execute_insert_into_hive_table").outputs
    assert _src(through_view.column_lineage["a"]) == {("hive_src", "a", ("IDENTITY",))}
    assert _src(through_view.dataset_lineage) == {("hive_src", "b", ("FILTER",))}
    assert lineage.outputs[0].symlinks[0].name == "default.hive_ctas"
    assert _src(lineage.outputs[0].column_lineage["a2"]) == {
        ("hive_text", "a", ("TRANSFORMATION",))
    }


def test_window_and_explode(spark: Any, run: Run, data: Path) -> None:
    people = spark.read.parquet(str(data / "people.parquet"))
    people.createOrReplaceTempView("people_w")
    out = data / "windowed"
    df = spark.sql(
        """
        SELECT name,
               sum(salary) OVER (PARTITION BY dept_id ORDER BY id) AS running,
               row_number() OVER (PARTITION BY dept_id ORDER BY salary) AS rn,
               letter
        FROM people_w LATERAL VIEW explode(split(name, '')) t AS letter
        ORDER BY name
        """
    )
    captured = run(lambda: df.write.mode("overwrite").parquet(str(out)))
    (dst,) = _one(captured, "execute_insert_into_hadoop_fs_relation_command").outputs
    cl = dst.column_lineage
    assert _src(cl["running"]) == {
        ("people.parquet", "salary", ("AGGREGATION",)),
        ("people.parquet", "dept_id", ("WINDOW",)),
        ("people.parquet", "id", ("WINDOW",)),
    }
    assert _src(cl["rn"]) == {
        ("people.parquet", "dept_id", ("WINDOW",)),
        ("people.parquet", "salary", ("WINDOW",)),
    }
    assert _src(cl["letter"]) == {("people.parquet", "name", ("TRANSFORMATION",))}
    assert ("people.parquet", "name", ("SORT",)) in _src(dst.dataset_lineage)


def test_failing_write_still_names_its_datasets(spark: Any, run: Run, data: Path) -> None:
    out = data / "never_written"
    df = spark.read.parquet(str(data / "people.parquet")).selectExpr(
        "id", "raise_error(concat('boom ', name)) AS fail"
    )
    captured = run(lambda: df.write.mode("overwrite").parquet(str(out)))
    failed = [r for f, r in captured if f.startswith("failed")]
    assert failed, captured
    lineage = failed[-1]
    assert isinstance(lineage, ExecutionLineage)
    assert lineage.inputs[0].name == str(data / "people.parquet")
    assert (lineage.outputs[0].namespace, lineage.outputs[0].name) == ("file", str(out))


def test_drop_table(spark: Any, run: Run) -> None:
    spark.sql("DROP TABLE IF EXISTS to_drop")
    spark.sql("CREATE TABLE to_drop (a INT) USING parquet")
    spark.sql("INSERT INTO to_drop VALUES (1)")
    captured = run(lambda: spark.sql("TRUNCATE TABLE to_drop"))
    (truncated,) = _one(captured, "execute_truncate_table_command").outputs
    assert (truncated.lifecycle_state, truncated.symlinks[0].name) == (
        "TRUNCATE",
        "default.to_drop",
    )
    captured = run(lambda: spark.sql("DROP TABLE to_drop"))
    lineage = _one(captured, "drop_table")
    (dst,) = lineage.outputs
    warehouse = spark.conf.get("spark.sql.warehouse.dir").removeprefix("file:")
    assert (dst.namespace, dst.name) == ("file", f"{warehouse}/to_drop")
    assert dst.lifecycle_state == "DROP"
    assert dst.symlinks[0].name == "default.to_drop"


def test_datasource_v2_file_read(spark: Any, run: Run, data: Path) -> None:
    key = "spark.sql.sources.useV1SourceList"
    previous = spark.conf.get(key)
    spark.conf.set(key, "")
    try:
        df = spark.read.parquet(str(data / "depts.parquet"))
        out = data / "from_v2"
        captured = run(lambda: df.selectExpr("dept").write.mode("overwrite").csv(str(out)))
    finally:
        spark.conf.set(key, previous)
    lineage = _one(captured, "execute_insert_into_hadoop_fs_relation_command")
    (src,) = lineage.inputs
    assert (src.namespace, src.name) == ("file", str(data / "depts.parquet"))
    assert _src(lineage.outputs[0].column_lineage["dept"]) == {
        ("depts.parquet", "dept", ("IDENTITY",))
    }


def test_analysis_failure_is_none(spark: Any, walker: PlanWalker) -> None:
    from pyspark.errors import AnalysisException

    with pytest.raises(AnalysisException):
        spark.sql("SELECT * FROM no_such_table_anywhere")
    qe = spark._jsparkSession.sessionState().executePlan(
        spark._jsparkSession.sessionState().sqlParser().parsePlan("SELECT * FROM no_such_table"),
        spark._jvm.org.apache.spark.sql.execution.CommandExecutionMode.ALL(),
    )
    assert walker.describe(qe) is None


def test_noop_sink_reports_only_its_inputs(spark: Any, run: Run, data: Path) -> None:
    df = spark.read.parquet(str(data / "depts.parquet"))
    captured = run(lambda: df.write.format("noop").mode("overwrite").save())
    results = [r for _, r in captured]
    (lineage,) = [r for r in results if isinstance(r, ExecutionLineage)]
    assert all(r is None for r in results if r is not lineage), results
    assert [i.name for i in lineage.inputs] == [str(data / "depts.parquet")]
    assert lineage.outputs == ()


def test_digest_errors_come_back_as_errors(spark: Any, walker: PlanWalker) -> None:
    from spark_plugin._plans import PlanDigestError

    not_a_query = spark._jvm.java.lang.StringBuilder("not a QueryExecution")
    with pytest.raises(PlanDigestError, match="NoSuchMethodException"):
        walker.describe(not_a_query)
    # the helper is still usable afterwards
    df = spark.range(2)
    assert walker.describe(df._jdf.queryExecution()) is None


def test_describe_start_of_an_unknown_execution_is_none(walker: PlanWalker) -> None:
    assert walker.describe_start(10**12) is None


def test_nothing_to_report_is_none(spark: Any, run: Run) -> None:
    captured = run(lambda: spark.range(3).selectExpr("id * 2").collect())
    assert [r for _, r in captured] == [None]


def test_read_only_query_reports_inputs(spark: Any, walker: PlanWalker, data: Path) -> None:
    df = spark.read.parquet(str(data / "people.parquet")).where("id > 1")
    df.collect()
    result = walker.describe(df._jdf.queryExecution())
    assert result is not None
    assert [i.name for i in result.inputs] == [str(data / "people.parquet")]
    assert result.outputs == ()
    # the executed plan root, unwrapped from WholeStageCodegen as the integration does
    assert result.node_name == "filter"


def test_column_cap(spark: Any, run: Run, data: Path) -> None:
    df = spark.read.parquet(str(data / "people.parquet"))
    out = data / "capped"
    captured = run(lambda: df.write.mode("overwrite").parquet(str(out)))
    _one(captured, "execute_insert_into_hadoop_fs_relation_command")
    (digest,) = DIGESTS
    full = lineage_from_digest(digest)
    capped = lineage_from_digest(digest, max_columns=2)
    assert full is not None and capped is not None
    assert list(full.outputs[0].column_lineage) == ["id", "name", "dept_id", "salary"]
    assert list(capped.outputs[0].column_lineage) == ["id", "name"]
    assert len(capped.outputs[0].schema) == 4


@pytest.mark.parametrize(
    ("mode", "exists", "state"),
    [
        ("errorifexists", False, "CREATE"),
        ("overwrite", True, "CREATE"),
        ("append", True, None),
        ("append", False, "CREATE"),
        ("ignore", False, "CREATE"),
    ],
)
def test_save_as_table_modes(
    spark: Any, run: Run, data: Path, mode: str, exists: bool, state: str | None
) -> None:
    table = f"modes_{mode}_{int(exists)}"
    spark.sql(f"DROP TABLE IF EXISTS {table}")
    df = spark.read.parquet(str(data / "depts.parquet"))
    if exists:
        df.write.saveAsTable(table)
    captured = run(lambda: df.write.mode(mode).saveAsTable(table))
    spark.sql(f"DROP TABLE IF EXISTS {table}")
    lineages = [r for _, r in captured if isinstance(r, ExecutionLineage)]
    assert lineages, captured
    # nested executions end innermost first; the listener merges them outermost first
    merged = merge_executions(lineages[::-1])
    warehouse = spark.conf.get("spark.sql.warehouse.dir").removeprefix("file:")
    (output,) = merged.outputs
    assert (output.namespace, output.name) == ("file", f"{warehouse}/{table}")
    assert output.lifecycle_state == state
    assert [s.name for s in output.symlinks] == [f"default.{table}"]
    assert [f.name for f in output.schema] == ["dept_id", "dept"]
    assert [i.name for i in merged.inputs] == [str(data / "depts.parquet")]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json", "orc", "text"])
def test_file_sink_each_format(spark: Any, run: Run, data: Path, fmt: str) -> None:
    out = data / f"sink_{fmt}"
    people = spark.read.parquet(str(data / "people.parquet"))
    df = people.selectExpr("name") if fmt == "text" else people.selectExpr("id", "name")
    captured = run(lambda: df.write.mode("overwrite").format(fmt).save(str(out)))
    lineage = _one(captured, "execute_insert_into_hadoop_fs_relation_command")
    (dst,) = lineage.outputs
    assert (dst.namespace, dst.name, dst.lifecycle_state) == ("file", str(out), "OVERWRITE")
    assert dst.row_count == 3
    expected = [("name", "string")] if fmt == "text" else [("id", "integer"), ("name", "string")]
    assert _fields(dst) == expected
    assert _src(dst.column_lineage["name"]) == {("people.parquet", "name", ("IDENTITY",))}
