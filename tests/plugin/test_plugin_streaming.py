"""Structured Streaming queries (issue 11): one job per query, START / RUNNING per micro-batch /
COMPLETE or FAIL, the source directory as input, the sink (or the `foreachBatch` writes) as
output, with per-batch output statistics; shown on the shared real SparkSession with
`trigger(availableNow=True)`, and from hand-built digests for what needs Kafka.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from plugin_support import Events, SpecValidator, dataset_names, events_per_action

from spark_plugin._naming import kafka_datasets
from spark_plugin._plans import lineage_from_digest

APP = "lineage_relay_tests"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"kafka.bootstrap.servers": "broker1:9092,broker2:9092", "subscribe": "orders,refunds"},
            [("kafka://broker1:9092", "orders"), ("kafka://broker1:9092", "refunds")],
        ),
        (
            {"kafka.bootstrap.servers": "b:9092", "assign": '{"orders":[0,1],"t2":[0]}'},
            [("kafka://b:9092", "orders"), ("kafka://b:9092", "t2")],
        ),
        ({"kafka.bootstrap.servers": "b:9092", "topic": "out"}, [("kafka://b:9092", "out")]),
        ({"kafka.bootstrap.servers": "b:9092", "subscribePattern": "o.*"}, []),
    ],
)
def test_kafka_naming(options: dict[str, str], expected: list[tuple[str, str]]) -> None:
    assert kafka_datasets(options) == expected


def test_kafka_source_and_sink_from_a_digest() -> None:
    """A micro-batch from Kafka to Kafka as the JVM digest describes it (no Kafka here)."""
    kafka = {"kafka.bootstrap.servers": "broker:9092"}
    digest = {
        "root": 1,
        "stream": {"id": "q", "run": "r", "batch": "3"},
        "nodes": [
            {
                "k": "StreamingDataSourceV2ScanRelation",
                "c": [],
                "o": [["value", 1, "binary"]],
                "rel": {"t": "stream_v2", "options": {**kafka, "subscribe": "orders"}},
            },
            {
                "k": "WriteToMicroBatchDataSource",
                "c": [0],
                "o": [],
                "cmd": {
                    "t": "stream_sink",
                    "kind": "KafkaTable",
                    "options": {**kafka, "topic": "enriched"},
                },
            },
        ],
    }
    lineage = lineage_from_digest(digest)
    assert lineage is not None and lineage.stream is not None
    assert (lineage.stream.run_id, lineage.stream.batch_id) == ("r", 3)
    assert [(i.namespace, i.name) for i in lineage.inputs] == [("kafka://broker:9092", "orders")]
    assert [(o.namespace, o.name) for o in lineage.outputs] == [("kafka://broker:9092", "enriched")]
    assert (lineage.node_name, lineage.processing) == ("kafka_table", "STREAMING")


# ---------------------------------------------------------------------------- real queries


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("streaming")
    (base / "json_in").mkdir()
    (base / "json_in" / "a.json").write_text('{"id":1,"name":"ann"}\n{"id":2,"name":"bob"}\n')
    (base / "json_in" / "b.json").write_text('{"id":3,"name":"cid"}\n')
    (base / "csv_in").mkdir()
    (base / "csv_in" / "a.csv").write_text("id,name\n1,ann\n2,bob\n")
    return base


@pytest.fixture(scope="module")
def shown(spark: Any, source: Path) -> dict[str, Events]:
    """{query kind: the streaming run events it caused}."""
    base = source

    def json_to_parquet() -> None:
        (
            spark.readStream.schema("id int, name string")
            .json(str(base / "json_in"))
            .selectExpr("id", "upper(name) AS loud")
            .writeStream.format("parquet")
            .option("checkpointLocation", str(base / "ck_json"))
            .trigger(availableNow=True)
            .start(str(base / "json_out"))
            .awaitTermination(120)
        )

    def csv_to_parquet_named() -> None:
        (
            spark.readStream.option("header", True)
            .schema("id int, name string")
            .csv(str(base / "csv_in"))
            .writeStream.queryName("Nightly CSV copy")
            .format("parquet")
            .option("checkpointLocation", str(base / "ck_csv"))
            .trigger(availableNow=True)
            .start(str(base / "csv_out"))
            .awaitTermination(120)
        )

    out = str(base / "batches_out")

    def write_batch(frame: Any, batch_id: int) -> None:
        frame.write.mode("append").parquet(out)

    def foreach_batch() -> None:
        (
            spark.readStream.schema("id int, name string")
            .json(str(base / "json_in"))
            .writeStream.foreachBatch(write_batch)
            .option("checkpointLocation", str(base / "ck_fb"))
            .trigger(availableNow=True)
            .start()
            .awaitTermination(120)
        )

    def failing_batch(frame: Any, batch_id: int) -> None:
        raise ValueError("boom in a streaming batch")

    def failing() -> None:
        query = (
            spark.readStream.schema("id int, name string")
            .json(str(base / "json_in"))
            .writeStream.foreachBatch(failing_batch)
            .queryName("failing query")
            .option("checkpointLocation", str(base / "ck_fail"))
            .trigger(availableNow=True)
            .start()
        )
        try:
            query.awaitTermination(120)
        except Exception as exc:
            if "boom in a streaming batch" not in str(exc):
                raise

    queries = {
        "json_to_parquet": json_to_parquet,
        "csv_to_parquet_named": csv_to_parquet_named,
        "foreach_batch": foreach_batch,
        "failing": failing,
    }
    app_start, per_query = events_per_action(spark, queries)
    return {**per_query, "app": app_start}


def _run(events: Events) -> list[dict[str, Any]]:
    """The query's one run: START, RUNNING..., then COMPLETE or FAIL."""
    assert len({e["run"]["runId"] for e in events}) == 1, [
        (e["eventType"], e["job"]["name"]) for e in events
    ]
    types = [e["eventType"] for e in events]
    assert types[0] == "START" and types[-1] in ("COMPLETE", "FAIL"), types
    assert set(types[1:-1]) <= {"RUNNING"}, types
    assert len({e["job"]["name"] for e in events}) == 1
    for event in events:
        job_type = event["job"]["facets"]["jobType"]
        assert (job_type["jobType"], job_type["processingType"]) == ("SQL_JOB", "STREAMING")
    return events


@pytest.mark.spark
def test_json_source_to_parquet_sink(shown: dict[str, Events], source: Path) -> None:
    events = _run(shown["json_to_parquet"])
    start, *running, end = events
    assert end["eventType"] == "COMPLETE" and running
    for event in events:
        assert dataset_names(event["inputs"]) == [("file", str(source / "json_in"))]
        assert dataset_names(event["outputs"]) == [("file", str(source / "json_out"))]
    # no name: named after the sink and its output
    assert start["job"]["name"] == f"{APP}.file_stream_sink.{source.name}_json_out"
    stats = [r["outputs"][0]["outputFacets"]["outputStatistics"] for r in running]
    assert sum(s["rowCount"] for s in stats) == 3
    assert all(s["size"] > 0 for s in stats)
    fields = running[0]["outputs"][0]["facets"]["columnLineage"]["fields"]
    assert [f["field"] for f in fields["loud"]["inputFields"]] == ["name"]
    app_run = shown["app"][0]["run"]["runId"]
    assert {e["run"]["facets"]["parent"]["run"]["runId"] for e in events} == {app_run}


@pytest.mark.spark
def test_csv_source_named_query(shown: dict[str, Events], source: Path) -> None:
    events = _run(shown["csv_to_parquet_named"])
    assert events[0]["job"]["name"] == f"{APP}.nightly_csv_copy"
    assert dataset_names(events[-1]["inputs"]) == [("file", str(source / "csv_in"))]
    assert dataset_names(events[-1]["outputs"]) == [("file", str(source / "csv_out"))]
    running = [e for e in events if e["eventType"] == "RUNNING"]
    assert running[0]["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 2


@pytest.mark.spark
def test_foreach_batch_writes_are_outputs(shown: dict[str, Events], source: Path) -> None:
    events = _run(shown["foreach_batch"])
    assert events[-1]["eventType"] == "COMPLETE"
    running = [e for e in events if e["eventType"] == "RUNNING"]
    assert running
    for event in events:
        assert dataset_names(event["inputs"]) == [("file", str(source / "json_in"))]
        assert dataset_names(event["outputs"]) == [("file", str(source / "batches_out"))]
    assert (
        sum(r["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] for r in running) == 3
    )
    assert events[0]["job"]["name"].startswith(f"{APP}.foreach_batch_sink")


@pytest.mark.spark
def test_failing_query_gives_fail(shown: dict[str, Events]) -> None:
    events = _run(shown["failing"])
    end = events[-1]
    assert end["eventType"] == "FAIL"
    assert end["job"]["name"] == f"{APP}.failing_query"
    assert "boom in a streaming batch" in end["run"]["facets"]["errorMessage"]["message"]


@pytest.mark.spark
def test_micro_batches_are_no_runs_of_their_own(shown: dict[str, Events]) -> None:
    for kind in ("json_to_parquet", "csv_to_parquet_named", "foreach_batch", "failing"):
        for event in shown[kind]:
            assert event["job"]["facets"]["jobType"]["processingType"] == "STREAMING", kind


@pytest.mark.spark
def test_streaming_events_are_valid_openlineage(
    shown: dict[str, Events], validator: SpecValidator
) -> None:
    for kind, events in shown.items():
        for event in events:
            assert validator.errors(event) == [], (kind, event["eventType"])


CHILD = Path(__file__).resolve().parent / "streaming_stop_job.py"
FLUSH_TIMEOUT_S = 1.0  # what the child configures
HANG_GUARD_S = 20.0  # only catches a hang; speed figures come from benchmarks/


@pytest.mark.spark
@pytest.mark.slow
def test_stop_returns_promptly_with_an_active_query_and_the_relay_down() -> None:
    proc = subprocess.run(
        [sys.executable, str(CHILD)],
        capture_output=True,
        text=True,
        timeout=170,  # under pytest's 180 s per-test timeout
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    record = json.loads(line)
    assert record["active"] and record["batches"]
    assert record["stop_s"] < FLUSH_TIMEOUT_S + 1 + HANG_GUARD_S
    # the query's START and RUNNING were built and offered; none could be delivered
    assert record["submitted"] >= 3 and record["emitted"] == 0 and record["pending"] == 0
    assert record["listener_errors"] == 0
