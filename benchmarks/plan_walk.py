"""Cost of describing one SQL execution: the JVM digest (one py4j call) vs walking over py4j.

    python benchmarks/plan_walk.py [--quick] [--repeat N]

1. Starts a local SparkSession (local[2]), writes two small parquet inputs, then runs one write
   whose analyzed plan has about 30 nodes (3 file relations, 2 joins, an aggregate, a union, a
   window, filters, a sort and a limit under an InsertIntoHadoopFsRelationCommand), and keeps
   the QueryExecution that a QueryExecutionListener received for it.
2. Times `PlanWalker.describe(qe)` on it `--repeat` times: Janino-compiled helper in the JVM
   returning a JSON digest, then naming and column lineage in Python. The first call in the JVM
   (and the one-off compile) are reported apart.
3. Times a node-by-node py4j walk of the same plan, reading only what lineage needs (class
   names, children, output attributes with exprIds, expression references), which is what the
   feasibility probe measured at 20-30 ms.

4. Times the other two kinds of job the plugin describes: an RDD API job whose lineage has 30
   stages (29 `reduceByKey` after a `textFile`, then `saveAsTextFile`: `PlanWalker.describe_job`
   on its ActiveJob, one py4j call walking the RDD graph), and a Structured Streaming
   micro-batch (file source -> projection -> parquet sink: `describe` on its
   IncrementalExecution). Every describe is timed with the dataset name trimmers applied, as
   the listener applies them.

Ends with `RESULT plan_walk_ms_30_nodes=<median describe ms>`, `RESULT plan_walk_py4j_ms=...`,
`RESULT plan_walk_nodes=<plan size>`, `RESULT plan_walk_ms_rdd_30_stages=...`,
`RESULT plan_walk_rdds=<RDDs walked>` and `RESULT plan_walk_ms_streaming=...`; the goal for each
`plan_walk_ms_*` is < 5 ms per query.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import orjson

from relay.testing.spark import local_session
from spark_plugin._plans import PlanWalker, lineage_from_digest
from spark_plugin._trimming import NameTrimming


class _Keep:
    """QueryExecutionListener keeping the QueryExecution of the last command."""

    class Java:
        implements: ClassVar[list[str]] = ["org.apache.spark.sql.util.QueryExecutionListener"]

    def __init__(self) -> None:
        self.qe: Any = None
        self.done = threading.Event()

    def onSuccess(self, func: str, qe: Any, duration_ns: int) -> None:
        if qe.analyzed().getClass().getSimpleName() == "InsertIntoHadoopFsRelationCommand":
            self.qe = qe
            self.done.set()

    def onFailure(self, func: str, qe: Any, error: Any) -> None:
        self.done.set()


class _KeepJob:
    """SparkListener keeping the ActiveJob of the last job run outside any SQL execution (taken
    at its start, as the plugin's JVM filter does) and the QueryExecution of the last streaming
    micro-batch (which no QueryExecutionListener is told about)."""

    class Java:
        implements: ClassVar[list[str]] = ["org.apache.spark.scheduler.SparkListenerInterface"]

    def __init__(self, spark_context: Any) -> None:
        self.jobs = spark_context.dagScheduler().jobIdToActiveJob()
        self.job: Any = None
        self.stream_qe: Any = None

    def onOtherEvent(self, event: Any) -> None:
        if event.getClass().getSimpleName() == "SparkListenerSQLExecutionEnd":
            qe = event.qe()
            if qe is not None and qe.getClass().getSimpleName() == "IncrementalExecution":
                self.stream_qe = qe

    def onJobStart(self, event: Any) -> None:
        if event.properties().getProperty("spark.sql.execution.id") is None:
            found = self.jobs.get(event.jobId())
            if found.isDefined():
                self.job = found.get()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on"):
            return lambda *args: None
        raise AttributeError(name)


def _rdd_job(spark: Any, keep: _KeepJob, base: Path) -> Any:
    """An RDD job with 30 stages; its ActiveJob."""
    sc = spark.sparkContext
    (base / "words.txt").write_text("a b c d e f\n" * 20)
    rdd = sc.textFile(str(base / "words.txt")).flatMap(str.split).map(lambda w: (w, 1))
    for _ in range(29):
        # map drops the partitioner, so each reduceByKey is a shuffle: a stage of its own
        rdd = rdd.map(lambda kv: (kv[0], kv[1])).reduceByKey(lambda a, b: a + b, 2)
    rdd.saveAsTextFile(str(base / "rdd_out"))
    sc._jsc.sc().listenerBus().waitUntilEmpty()
    if keep.job is None:
        raise SystemExit("no ActiveJob captured")
    return keep.job


def _stream_batch(spark: Any, keep: _KeepJob, base: Path) -> Any:
    """The IncrementalExecution of a micro-batch: json files -> projection -> parquet."""
    (base / "stream_in").mkdir()
    (base / "stream_in" / "a.json").write_text('{"id": 1, "name": "a"}\n')
    (
        spark.readStream.schema("id int, name string")
        .json(str(base / "stream_in"))
        .selectExpr("id", "upper(name) AS loud")
        .writeStream.format("parquet")
        .option("checkpointLocation", str(base / "ck"))
        .trigger(availableNow=True)
        .start(str(base / "stream_out"))
        .awaitTermination(120)
    )
    spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty()
    if keep.stream_qe is None:
        raise SystemExit("no micro-batch QueryExecution captured")
    return keep.stream_qe


def _timed(samples: list[float], call: Any) -> None:
    started = time.perf_counter()
    call()
    samples.append((time.perf_counter() - started) * 1000)


def _py4j_walk(plan: Any) -> int:
    """What a Python walker must read per node; returns the number of round trips' nodes."""
    count = 0
    stack = [plan]
    while stack:
        node = stack.pop()
        count += 1
        node.getClass().getSimpleName()
        it = node.output().iterator()
        while it.hasNext():
            attr = it.next()
            attr.name()
            attr.exprId().id()
        ex = node.expressions().iterator()
        while ex.hasNext():
            refs = ex.next().references().iterator()
            while refs.hasNext():
                refs.next().exprId().id()
        children = node.children().iterator()
        while children.hasNext():
            stack.append(children.next())
    return count


def _ms(samples: list[float]) -> str:
    return f"{statistics.median(samples):8.2f} | {min(samples):8.2f} | {max(samples):8.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (< 60 s)")
    parser.add_argument("--repeat", type=int, default=0)
    args = parser.parse_args()
    repeat = args.repeat or (30 if args.quick else 200)

    from pyspark.java_gateway import ensure_callback_server_started

    with tempfile.TemporaryDirectory(prefix="plan-walk-") as tmp:
        base = Path(tmp)
        # in-memory catalog: no `base` for local_session (that would bring Hive)
        spark = local_session(
            "plan walk benchmark", conf={"spark.sql.warehouse.dir": str(base / "wh")}
        )
        try:
            gateway = spark.sparkContext._gateway
            ensure_callback_server_started(gateway)  # type: ignore[no-untyped-call]
            keep = _Keep()
            spark._jsparkSession.listenerManager().register(keep)

            people = spark.createDataFrame(
                [(i, f"n{i}", i % 3, float(i)) for i in range(50)],
                "id int, name string, dept_id int, salary double",
            )
            depts = spark.createDataFrame(
                [(i, f"d{i}") for i in range(3)], "dept_id int, dept string"
            )
            people.write.parquet(str(base / "people"))
            depts.write.parquet(str(base / "depts"))
            spark.read.parquet(str(base / "people")).createOrReplaceTempView("p")
            spark.read.parquet(str(base / "depts")).createOrReplaceTempView("d")
            query = spark.sql(
                """
                WITH j AS (
                  SELECT p.id, p.name, d.dept, p.salary * 1.1 AS raised
                  FROM p JOIN d ON p.dept_id = d.dept_id WHERE p.salary > 3
                ), agg AS (
                  SELECT dept, sum(raised) AS total, count(id) AS heads FROM j GROUP BY dept
                )
                SELECT u.dept, total, heads,
                       rank() OVER (ORDER BY total DESC) AS rk
                FROM (SELECT dept, total, heads FROM agg
                      UNION ALL
                      SELECT upper(name), salary, 1 FROM p WHERE id < 5) u
                JOIN d ON u.dept = d.dept
                ORDER BY total DESC LIMIT 100
                """
            )
            keep.done.clear()
            query.write.mode("overwrite").parquet(str(base / "out"))
            keep.done.wait(30)
            qe = keep.qe
            if qe is None:
                raise SystemExit("no QueryExecution captured")

            started = time.perf_counter()
            walker = PlanWalker(spark._jsparkSession, gateway)
            init_ms = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            lineage = walker.describe(qe)
            first_ms = (time.perf_counter() - started) * 1000
            nodes = len(walker.digest(qe)["nodes"])
            # the JVM interprets the helper at first; steady state is what every query pays
            for _ in range(20):
                walker.describe(qe)
            assert lineage is not None and lineage.outputs[0].column_lineage

            keep_job = _KeepJob(spark.sparkContext._jsc.sc())
            spark.sparkContext._jsc.sc().addSparkListener(keep_job)
            job = _rdd_job(spark, keep_job, base)
            stream_qe = _stream_batch(spark, keep_job, base)
            trimming = NameTrimming()
            rdd_lineage = walker.describe_job(job)
            rdds = int(orjson.loads(walker._helper.rddDigest(job))["rdds"])
            stream_lineage = walker.describe(stream_qe)
            assert rdd_lineage is not None and rdd_lineage.outputs
            assert stream_lineage is not None and stream_lineage.stream is not None
            for _ in range(20):  # warm the helper's other code paths up, as above
                walker.describe_job(job)
                walker.describe(stream_qe)

            # interleaved, so that load from elsewhere hits every method alike
            rdd_samples: list[float] = []
            stream_samples: list[float] = []
            jvm_samples: list[float] = []
            digest_samples: list[float] = []
            pure_samples: list[float] = []
            py4j_samples: list[float] = []
            analyzed = qe.analyzed()
            for i in range(repeat):
                _timed(jvm_samples, lambda: trimming.apply(walker.describe(qe) or lineage))
                _timed(
                    rdd_samples, lambda: trimming.apply(walker.describe_job(job, 9, 99) or lineage)
                )
                _timed(
                    stream_samples, lambda: trimming.apply(walker.describe(stream_qe) or lineage)
                )
                started = time.perf_counter()
                digest = walker.digest(qe)
                digest_samples.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                lineage_from_digest(digest)
                pure_samples.append((time.perf_counter() - started) * 1000)
                if i % 3 == 0:
                    started = time.perf_counter()
                    _py4j_walk(analyzed)
                    py4j_samples.append((time.perf_counter() - started) * 1000)
        finally:
            spark.stop()

    print(f"plan: {nodes} logical nodes (incl. subquery/CTE plans), {repeat} repetitions")
    print(
        f"helper compile + instantiate (once per JVM): {init_ms:.0f} ms; first describe: "
        f"{first_ms:.1f} ms"
    )
    print(f"| {'ms per query':44} | {'median':>8} | {'min':>8} | {'max':>8} |")
    print(f"|{'-' * 46}|{'-' * 9}:|{'-' * 9}:|{'-' * 9}:|")
    print(f"| {'describe: JVM digest + lineage + trimmers':44} | {_ms(jvm_samples)} |")
    print(f"| {'- the JVM digest call (py4j + orjson)':44} | {_ms(digest_samples)} |")
    print(f"| {'- naming + column lineage (pure Python)':44} | {_ms(pure_samples)} |")
    print(f"| {'py4j node-by-node walk (lineage fields only)':44} | {_ms(py4j_samples)} |")
    print(f"| {f'RDD job, 30 stages ({rdds} RDDs) + trimmers':44} | {_ms(rdd_samples)} |")
    print(f"| {'streaming micro-batch + trimmers':44} | {_ms(stream_samples)} |")
    print(f"RESULT plan_walk_ms_30_nodes={statistics.median(jvm_samples):.2f}")
    print(f"RESULT plan_walk_py4j_ms={statistics.median(py4j_samples):.2f}")
    print(f"RESULT plan_walk_nodes={nodes}")
    print(f"RESULT plan_walk_ms_rdd_30_stages={statistics.median(rdd_samples):.2f}")
    print(f"RESULT plan_walk_rdds={rdds}")
    print(f"RESULT plan_walk_ms_streaming={statistics.median(stream_samples):.2f}")


if __name__ == "__main__":
    main()
