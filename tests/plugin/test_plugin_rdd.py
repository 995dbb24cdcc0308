"""RDD API jobs (issue 11): one run per Spark job outside any SQL execution, with the Hadoop
inputs its final RDD depends on and the output directory of its save, named as the OpenLineage
Spark integration names them; shown on the shared real SparkSession with the plugin enabled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from plugin_support import Events, SpecValidator, dataset_names, events_per_action

from spark_plugin._rdd import glob_base, rdd_lineage

APP = "lineage_relay_tests"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/data/in/*.txt", "/data/in"),
        ("/data/2024-*/x", "/data"),
        ("file:/tmp/a/part-0000?", "file:/tmp/a"),
        ("hdfs://nn:8020/a/b/{x,y}", "hdfs://nn:8020/a/b"),
        ("/plain/file.txt", "/plain/file.txt"),
    ],
)
def test_glob_input_is_named_by_its_directory(path: str, expected: str) -> None:
    assert glob_base(path) == expected


def test_rdd_lineage_from_a_digest() -> None:
    digest = {
        "name": "map_partitions_hadoop",
        "inputs": ["file:/in/a.txt", "file:/in/*.csv", "file:/in"],
        "output": "file:/out/x",
    }
    lineage = rdd_lineage(digest, records=3, size_bytes=12)
    assert lineage is not None
    assert [(i.namespace, i.name) for i in lineage.inputs] == [
        ("file", "/in/a.txt"),
        ("file", "/in"),
    ]
    (out,) = lineage.outputs
    assert (out.name, out.row_count, out.size_bytes) == ("/out/x", 3, 12)
    assert (lineage.job_type, lineage.node_name) == ("RDD_JOB", "map_partitions_hadoop")
    assert rdd_lineage({"name": "parallel_collection", "inputs": [], "output": None}) is None


# ---------------------------------------------------------------------------- real jobs


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("rdd")
    (base / "words").mkdir()
    (base / "words" / "a.txt").write_text("to be or not\nto be\n")
    (base / "words" / "b.txt").write_text("that is the question\n")
    (base / "more.txt").write_text("be quick\n")
    return base


@pytest.fixture(scope="module")
def shown(spark: Any, text: Path) -> dict[str, Events]:
    """{job kind: the run events its action caused}, each job run with the plugin enabled."""
    sc = spark.sparkContext
    out = text / "out"

    def word_count() -> None:
        (
            sc.textFile(str(text / "words"))
            .flatMap(lambda line: line.split())
            .filter(lambda w: len(w) > 1)
            .map(lambda w: (w, 1))
            .reduceByKey(lambda a, b: a + b)
            .saveAsTextFile(str(out / "counts"))
        )

    def parallelize() -> None:
        sc.parallelize(range(10), 2).map(str).saveAsTextFile(str(out / "numbers"))

    def union() -> None:
        first = sc.textFile(str(text / "words" / "a.txt"))
        second = sc.textFile(str(text / "more.txt"))
        first.union(second).saveAsTextFile(str(out / "union"))

    def glob() -> None:
        sc.textFile(str(text / "words" / "*.txt")).map(str.upper).saveAsTextFile(str(out / "glob"))

    def hadoop_formats() -> None:
        pairs = sc.parallelize([(1, "a"), (2, "b")])
        pairs.saveAsNewAPIHadoopFile(
            str(out / "seq_new"),
            "org.apache.hadoop.mapreduce.lib.output.SequenceFileOutputFormat",
            keyClass="org.apache.hadoop.io.IntWritable",
            valueClass="org.apache.hadoop.io.Text",
        )
        sc.sequenceFile(str(out / "seq_new")).saveAsHadoopFile(
            str(out / "seq_old"),
            "org.apache.hadoop.mapred.SequenceFileOutputFormat",
            keyClass="org.apache.hadoop.io.IntWritable",
            valueClass="org.apache.hadoop.io.Text",
        )

    def failing() -> None:
        def _boom(x: int) -> int:  # local: pickled by value for the Python workers
            if x == 3:
                raise ValueError("boom in an RDD job")
            return x

        try:
            sc.parallelize(range(5), 1).map(_boom).map(str).saveAsTextFile(str(out / "never"))
        except Exception as exc:
            if "boom in an RDD job" not in str(exc):
                raise

    def dataframe_and_collect() -> None:
        # a DataFrame write (its SQL run only) and RDD actions that write nothing
        spark.range(3).write.mode("overwrite").parquet(str(out / "frame"))
        sc.textFile(str(text / "more.txt")).collect()
        spark.read.parquet(str(out / "frame")).rdd.map(lambda r: r[0]).collect()

    jobs = {
        "word_count": word_count,
        "parallelize": parallelize,
        "union": union,
        "glob": glob,
        "hadoop_formats": hadoop_formats,
        "failing": failing,
        "dataframe_and_collect": dataframe_and_collect,
    }
    _, per_job = events_per_action(spark, jobs)
    return {
        kind: [e for e in events if "parent" in e["run"]["facets"]]
        for kind, events in per_job.items()
    }


def _one_run(events: Events) -> tuple[dict[str, Any], dict[str, Any]]:
    assert len(events) == 2, [(e["eventType"], e["job"]["name"]) for e in events]
    start, end = events
    assert start["eventType"] == "START" and end["eventType"] in ("COMPLETE", "FAIL")
    assert start["run"]["runId"] == end["run"]["runId"]
    assert start["job"] == end["job"] and start["job"]["name"].startswith(APP + ".")
    job_type = end["job"]["facets"]["jobType"]
    assert (job_type["jobType"], job_type["processingType"]) == ("RDD_JOB", "BATCH")
    assert end["run"]["facets"]["parent"]["job"]["name"] == APP
    return start, end


@pytest.mark.spark
def test_text_file_to_save_as_text_file(shown: dict[str, Events], text: Path) -> None:
    start, end = _one_run(shown["word_count"])
    assert end["eventType"] == "COMPLETE"
    for event in (start, end):
        assert dataset_names(event["inputs"]) == [("file", str(text / "words"))]
        assert dataset_names(event["outputs"]) == [("file", str(text / "out" / "counts"))]
    stats = end["outputs"][0]["outputFacets"]["outputStatistics"]
    assert stats["rowCount"] == 8 and stats["size"] > 0  # distinct words longer than one letter
    assert end["job"]["name"].endswith(".out_counts")


@pytest.mark.spark
def test_parallelize_has_no_input(shown: dict[str, Events], text: Path) -> None:
    _, end = _one_run(shown["parallelize"])
    assert end["inputs"] == []
    assert dataset_names(end["outputs"]) == [("file", str(text / "out" / "numbers"))]
    assert "parallel_collection" in end["job"]["name"]


@pytest.mark.spark
def test_union_of_two_text_files(shown: dict[str, Events], text: Path) -> None:
    _, end = _one_run(shown["union"])
    assert sorted(dataset_names(end["inputs"])) == [
        ("file", str(text / "more.txt")),
        ("file", str(text / "words" / "a.txt")),
    ]
    assert dataset_names(end["outputs"]) == [("file", str(text / "out" / "union"))]


@pytest.mark.spark
def test_glob_input_named_by_its_directory(shown: dict[str, Events], text: Path) -> None:
    _, end = _one_run(shown["glob"])
    assert dataset_names(end["inputs"]) == [("file", str(text / "words"))]


@pytest.mark.spark
def test_hadoop_output_formats_and_sequence_file_input(
    shown: dict[str, Events], text: Path
) -> None:
    events = shown["hadoop_formats"]
    runs = [events[i : i + 2] for i in range(0, len(events), 2)]
    assert len(runs) == 2, [(e["eventType"], e["job"]["name"]) for e in events]
    _, new_api = _one_run(runs[0])
    assert new_api["inputs"] == []
    assert dataset_names(new_api["outputs"]) == [("file", str(text / "out" / "seq_new"))]
    _, old_api = _one_run(runs[1])
    assert dataset_names(old_api["inputs"]) == [("file", str(text / "out" / "seq_new"))]
    assert dataset_names(old_api["outputs"]) == [("file", str(text / "out" / "seq_old"))]


@pytest.mark.spark
def test_failing_rdd_job_gives_fail(shown: dict[str, Events], text: Path) -> None:
    _, end = _one_run(shown["failing"])
    assert end["eventType"] == "FAIL"
    assert "boom in an RDD job" in end["run"]["facets"]["errorMessage"]["message"]
    assert dataset_names(end["outputs"]) == [("file", str(text / "out" / "never"))]


@pytest.mark.spark
def test_no_double_reporting_and_silent_reads(shown: dict[str, Events], text: Path) -> None:
    events = shown["dataframe_and_collect"]
    assert len(events) == 2, [(e["eventType"], e["job"]["name"]) for e in events]
    assert {e["job"]["facets"]["jobType"]["jobType"] for e in events} == {"SQL_JOB"}
    assert dataset_names(events[-1]["outputs"]) == [("file", str(text / "out" / "frame"))]


@pytest.mark.spark
def test_rdd_events_are_valid_openlineage(
    shown: dict[str, Events], validator: SpecValidator
) -> None:
    for kind, events in shown.items():
        assert events, kind
        for event in events:
            assert validator.errors(event) == [], (kind, event["eventType"])
