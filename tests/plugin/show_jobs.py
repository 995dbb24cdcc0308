"""The kinds of job issue 2's "Show" section lists, as plain functions over a SparkSession.

Shared by the in-process event tests (`test_plugin_show.py`, on the shared session) and the
never-block child process (`never_block_job.py`, which must call `spark.stop()`), so that both
run the same jobs. `prepare` writes the inputs and creates the tables the jobs need; it runs
before lineage is enabled, so the jobs' events are only the jobs' own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PEOPLE = "id int, name string, dept_id int, salary double"
# spark.sql() text of the SQL jobs, also what their `sql` job facet must carry
CTAS = (
    "CREATE TABLE {prefix}_ctas USING parquet AS "
    "SELECT dept_id, max(salary) AS top FROM parquet.`{people}` GROUP BY dept_id"
)
HIVE_INSERT = "INSERT OVERWRITE TABLE {prefix}_hive_out SELECT a, upper(b) AS b FROM {prefix}_hive"
WINDOW_EXPLODE = """
    SELECT name,
           sum(salary) OVER (PARTITION BY dept_id ORDER BY id) AS running,
           letter
    FROM parquet.`{people}` LATERAL VIEW explode(split(name, '')) t AS letter
    ORDER BY name
    LIMIT 100
"""


@dataclass(frozen=True)
class ShowData:
    """Where one run of the jobs keeps its files, tables and JDBC database."""

    base: Path
    prefix: str  # table name prefix, unique per run on a session
    derby: str  # JDBC URL of an in-memory Derby database (Derby ships with Spark)
    hive: bool  # whether the session has Hive support (enableHiveSupport)

    @property
    def people(self) -> Path:
        return self.base / "people.parquet"

    @property
    def people_csv(self) -> Path:
        return self.base / "people.csv"

    @property
    def depts(self) -> Path:
        return self.base / "depts.parquet"

    def table(self, name: str) -> str:
        return f"{self.prefix}_{name}"


def _tables(data: ShowData) -> list[str]:
    names = ["totals", "ctas", "staff", "hive", "hive_out"]
    return [data.table(n) for n in names]


def show_data(base: Path, name: str) -> ShowData:
    """A run named `name` (its table prefix and Derby database) in a new folder below `base`,
    on a session with Hive support."""
    folder = base / name
    folder.mkdir(parents=True)
    return ShowData(
        base=folder, prefix=name, derby=f"jdbc:derby:memory:{name};create=true", hive=True
    )


def prepare(spark: Any, data: ShowData) -> None:
    """Inputs and target tables; no lineage is enabled yet."""
    people = spark.createDataFrame(
        [(1, "ann", 10, 100.0), (2, "bob", 20, 200.0), (3, "cid", 10, 300.0)],
        PEOPLE,
    )
    depts = spark.createDataFrame([(10, "eng"), (20, "ops")], "dept_id int, dept string")
    people.write.mode("overwrite").parquet(str(data.people))
    people.write.mode("overwrite").option("header", True).csv(str(data.people_csv))
    depts.write.mode("overwrite").parquet(str(data.depts))
    cleanup(spark, data)
    spark.sql(f"CREATE TABLE {data.table('staff')} (who STRING, pay DOUBLE) USING parquet")
    people.select("id", "name").write.jdbc(data.derby, "APP.PEOPLE", mode="overwrite")
    if data.hive:
        spark.sql(f"CREATE TABLE {data.table('hive')} (a INT, b STRING) STORED AS PARQUET")
        # the table names are the test's own
        spark.sql(f"INSERT INTO {data.table('hive')} VALUES (1, 'x'), (2, 'y')")  # noqa: S608
        spark.sql(f"CREATE TABLE {data.table('hive_out')} (a INT, b STRING) STORED AS TEXTFILE")


def cleanup(spark: Any, data: ShowData) -> None:
    for table in _tables(data):
        spark.sql(f"DROP TABLE IF EXISTS {table}")


def _csv(spark: Any, data: ShowData) -> Any:
    # an explicit schema: inferring it would run read-only jobs of its own
    return spark.read.option("header", True).schema(PEOPLE).csv(str(data.people_csv))


def file_to_file(spark: Any, data: ShowData) -> object:
    source = _csv(spark, data)
    return (
        source.selectExpr("id", "upper(name) AS loud", "salary * 2 AS doubled")
        .write.mode("overwrite")
        .parquet(str(data.base / "file_out"))
    )


def join_aggregate_save_as_table(spark: Any, data: ShowData) -> object:
    people = spark.read.parquet(str(data.people))
    depts = spark.read.parquet(str(data.depts))
    result = (
        people.join(depts, "dept_id")
        .where("salary > 50")
        .groupBy("dept")
        .agg({"salary": "sum"})
        .withColumnRenamed("sum(salary)", "total")
    )
    return result.write.mode("overwrite").saveAsTable(data.table("totals"))


def sql_ctas(spark: Any, data: ShowData) -> object:
    return spark.sql(CTAS.format(prefix=data.prefix, people=data.people))


def union_insert_into(spark: Any, data: ShowData) -> object:
    parquet = spark.read.parquet(str(data.people)).selectExpr("name", "salary")
    csv = _csv(spark, data)
    union = parquet.unionByName(csv.selectExpr("name", "salary * 2 AS salary"))
    return union.write.insertInto(data.table("staff"))


def jdbc_write(spark: Any, data: ShowData) -> object:
    people = spark.read.parquet(str(data.people))
    return people.selectExpr("id", "name AS who").write.jdbc(
        data.derby, "APP.WHO", mode="overwrite"
    )


def jdbc_read(spark: Any, data: ShowData) -> object:
    jdbc = spark.read.jdbc(data.derby.split(";")[0], "APP.PEOPLE")
    return jdbc.where("id > 1").write.mode("overwrite").parquet(str(data.base / "from_jdbc"))


def hive_insert(spark: Any, data: ShowData) -> object:
    return spark.sql(HIVE_INSERT.format(prefix=data.prefix))


def window_explode(spark: Any, data: ShowData) -> object:
    df = spark.sql(WINDOW_EXPLODE.format(people=data.people))
    return df.write.mode("overwrite").parquet(str(data.base / "windowed"))


def failing_write(spark: Any, data: ShowData) -> object:
    df = spark.read.parquet(str(data.people)).selectExpr(
        "id", "raise_error(concat('boom ', name)) AS fail"
    )
    try:
        return df.write.mode("overwrite").parquet(str(data.base / "never_written"))
    except Exception as exc:  # the job fails by design; anything else is a real failure
        if "boom" not in str(exc):
            raise
        return None


JOBS: dict[str, Callable[[Any, ShowData], object]] = {
    "file_to_file": file_to_file,
    "join_aggregate_save_as_table": join_aggregate_save_as_table,
    "sql_ctas": sql_ctas,
    "union_insert_into": union_insert_into,
    "jdbc_write": jdbc_write,
    "jdbc_read": jdbc_read,
    "hive_insert": hive_insert,
    "window_explode": window_explode,
    "failing_write": failing_write,
}


def jobs_for(data: ShowData) -> dict[str, Callable[[Any, ShowData], object]]:
    """The jobs this session can run (the Hive one needs Hive support)."""
    return {k: v for k, v in JOBS.items() if data.hive or k != "hive_insert"}


def verify(spark: Any, data: ShowData) -> dict[str, int]:
    """Rows the jobs wrote (so a caller can tell they really ran), by job kind."""
    counts = {
        "file_to_file": spark.read.parquet(str(data.base / "file_out")).count(),
        "join_aggregate_save_as_table": spark.table(data.table("totals")).count(),
        "sql_ctas": spark.table(data.table("ctas")).count(),
        "union_insert_into": spark.table(data.table("staff")).count(),
        "jdbc_write": spark.read.jdbc(data.derby.split(";")[0], "APP.WHO").count(),
        "jdbc_read": spark.read.parquet(str(data.base / "from_jdbc")).count(),
        "window_explode": spark.read.parquet(str(data.base / "windowed")).count(),
    }
    if data.hive:
        counts["hive_insert"] = spark.table(data.table("hive_out")).count()
    return counts


# what `verify` finds after one run of the jobs
EXPECTED_ROWS = {
    "file_to_file": 3,
    "join_aggregate_save_as_table": 2,
    "sql_ctas": 2,
    "union_insert_into": 6,
    "jdbc_write": 3,
    "jdbc_read": 2,
    "window_explode": 9,
    "hive_insert": 2,
}
