"""Issue 2's "Show": each kind of job, run with the plugin enabled on the shared real session, and
the events it posted: types and order per run, inputs and outputs by namespace and name,
symlinks, schema, column lineage with transformation types, statistics, lifecycle, the parent
facet, job names and facets, and validity against the OpenLineage JSON Schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from plugin_support import SpecValidator, receiving
from show_jobs import (
    CTAS,
    HIVE_INSERT,
    JOBS,
    WINDOW_EXPLODE,
    ShowData,
    cleanup,
    jobs_for,
    prepare,
    show_data,
)

from spark_plugin import _state, enable

pytestmark = pytest.mark.spark

APP = "lineage_relay_tests"
NAMESPACE = "show"
Events = list[dict[str, Any]]
JOB_KINDS = list(JOBS)


@pytest.fixture(scope="module")
def shown(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """{job kind: the events its action caused}, plus "app" (application START/COMPLETE)."""
    _state.reset()  # no handle left open by another module on the shared session
    data = show_data(tmp_path_factory.mktemp("show"), "show")
    prepare(spark, data)
    per_job: dict[str, Events] = {}
    with receiving() as receiver:
        handle = enable(spark, url=receiver.url, namespace=NAMESPACE)
        assert handle.flush(30)
        app_start = receiver.events()
        for kind, job in jobs_for(data).items():
            before = len(receiver.events())
            job(spark, data)
            assert handle.flush(30), kind
            per_job[kind] = receiver.events()[before:]
        assert handle.close(30)
        per_job["app"] = [*app_start, *receiver.events()[-1:]]
        yield {
            "events": per_job,
            "handle": handle,
            "data": data,
            "all": receiver.events(),
            "spark_version": spark.version,
        }
    cleanup(spark, data)


def one_run(shown: dict[str, Any], kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The job's only run: its START and its end event, checked for what every run shares."""
    events: Events = shown["events"][kind]
    assert len(events) == 2, [(e["eventType"], e["job"]["name"]) for e in events]
    start, end = events
    assert start["eventType"] == "START"
    assert end["eventType"] in ("COMPLETE", "FAIL")
    assert start["run"]["runId"] == end["run"]["runId"] != shown["handle"].app_run_id
    assert start["job"] == end["job"]
    assert start["job"]["namespace"] == NAMESPACE
    assert start["eventTime"] <= end["eventTime"]
    for event in events:
        run_facets, job_facets = event["run"]["facets"], event["job"]["facets"]
        parent = run_facets["parent"]
        assert parent["run"] == {"runId": shown["handle"].app_run_id}
        assert parent["job"] == {"namespace": NAMESPACE, "name": APP}
        engine = run_facets["processing_engine"]
        assert (engine["name"], engine["version"]) == ("spark", shown["spark_version"])
        assert run_facets["spark_properties"]["properties"] == {
            "spark.master": "local[2]",
            "spark.app.name": "lineage relay tests",
        }
        job_type = job_facets["jobType"]
        assert (job_type["jobType"], job_type["processingType"], job_type["integration"]) == (
            "SQL_JOB",
            "BATCH",
            "SPARK",
        )
    # START is light: datasets with schema and symlinks; lineage and statistics come at the end
    for output in start["outputs"]:
        assert "columnLineage" not in output["facets"]
        assert output["outputFacets"] == {}
    assert [(d["namespace"], d["name"]) for d in start["inputs"]] == [
        (d["namespace"], d["name"]) for d in end["inputs"]
    ]
    assert [(d["namespace"], d["name"]) for d in start["outputs"]] == [
        (d["namespace"], d["name"]) for d in end["outputs"]
    ]
    return start, end


def datasets(event: dict[str, Any], side: str) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in event[side]]


def schema(dataset: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["name"], f["type"]) for f in dataset["facets"]["schema"]["fields"]]


def symlinks(dataset: dict[str, Any]) -> list[tuple[str, str, str]]:
    identifiers = dataset["facets"].get("symlinks", {}).get("identifiers", [])
    return [(s["namespace"], s["name"], s["type"]) for s in identifiers]


def lifecycle(dataset: dict[str, Any]) -> str | None:
    facet = dataset["facets"].get("lifecycleStateChange")
    return None if facet is None else str(facet["lifecycleStateChange"])


def statistics(dataset: dict[str, Any]) -> dict[str, Any]:
    facet = dataset["outputFacets"].get("outputStatistics", {})
    return {k: v for k, v in facet.items() if not k.startswith("_")}


Lineage = set[tuple[str, str, str, tuple[tuple[str, str], ...]]]


def _summary(input_fields: list[dict[str, Any]]) -> Lineage:
    return {
        (
            f["namespace"],
            f["name"],
            f["field"],
            tuple((t["type"], t["subtype"]) for t in f["transformations"]),
        )
        for f in input_fields
    }


def column_lineage(dataset: dict[str, Any]) -> dict[str, Lineage]:
    facet = dataset["facets"]["columnLineage"]
    return {column: _summary(v["inputFields"]) for column, v in facet["fields"].items()}


def dataset_lineage(dataset: dict[str, Any]) -> Lineage:
    return _summary(dataset["facets"]["columnLineage"].get("dataset", []))


IDENTITY = (("DIRECT", "IDENTITY"),)
TRANSFORMATION = (("DIRECT", "TRANSFORMATION"),)
AGGREGATION = (("DIRECT", "AGGREGATION"),)
FILTER = (("INDIRECT", "FILTER"),)
JOIN = (("INDIRECT", "JOIN"),)
GROUP_BY = (("INDIRECT", "GROUP_BY"),)
WINDOW = (("INDIRECT", "WINDOW"),)
SORT = (("INDIRECT", "SORT"),)


def warehouse(spark: Any) -> str:
    return str(spark.conf.get("spark.sql.warehouse.dir")).removeprefix("file:")


def table_link(spark: Any, table: str) -> tuple[str, str, str]:
    """The embedded metastore has no URI: the identifier lives in the table's parent folder."""
    return (f"file:{warehouse(spark)}", f"default.{table}", "TABLE")


def test_file_to_file(shown: dict[str, Any]) -> None:
    data: ShowData = shown["data"]
    start, end = one_run(shown, "file_to_file")
    assert end["eventType"] == "COMPLETE"
    out = data.base / "file_out"
    assert end["job"]["name"] == (
        f"{APP}.execute_insert_into_hadoop_fs_relation_command.{data.base.name}_file_out"
    )
    assert "sql" not in end["job"]["facets"]  # a DataFrame action has no SQL text
    assert datasets(end, "inputs") == [("file", str(data.people_csv))]
    assert schema(start["inputs"][0]) == [
        ("id", "integer"),
        ("name", "string"),
        ("dept_id", "integer"),
        ("salary", "double"),
    ]
    assert datasets(end, "outputs") == [("file", str(out))]
    (output,) = end["outputs"]
    assert schema(output) == [("id", "integer"), ("loud", "string"), ("doubled", "double")]
    assert symlinks(output) == []
    assert lifecycle(output) == lifecycle(start["outputs"][0]) == "OVERWRITE"
    stats = statistics(output)
    assert stats["rowCount"] == 3 and stats["size"] > 0 and stats["fileCount"] >= 1
    csv = ("file", str(data.people_csv))
    assert column_lineage(output) == {
        "id": {(*csv, "id", IDENTITY)},
        "loud": {(*csv, "name", TRANSFORMATION)},
        "doubled": {(*csv, "salary", TRANSFORMATION)},
    }
    assert dataset_lineage(output) == set()


def test_join_aggregate_save_as_table(shown: dict[str, Any], spark: Any) -> None:
    data: ShowData = shown["data"]
    _start, end = one_run(shown, "join_aggregate_save_as_table")  # 3 nested executions, 1 run
    assert end["eventType"] == "COMPLETE"
    table = data.table("totals")
    assert end["job"]["name"] == f"{APP}.execute_save_as_v1_table_command.default_{table}"
    people, depts = ("file", str(data.people)), ("file", str(data.depts))
    assert datasets(end, "inputs") == [people, depts]
    (output,) = end["outputs"]  # the table and its location are one dataset
    assert (output["namespace"], output["name"]) == ("file", f"{warehouse(spark)}/{table}")
    assert symlinks(output) == [table_link(spark, table)]
    assert schema(output) == [("dept", "string"), ("total", "double")]
    assert lifecycle(output) == "CREATE"
    assert statistics(output)["rowCount"] == 2
    assert column_lineage(output) == {
        "dept": {(*depts, "dept", IDENTITY)},
        "total": {(*people, "salary", AGGREGATION)},
    }
    assert dataset_lineage(output) == {
        (*people, "dept_id", JOIN),
        (*depts, "dept_id", JOIN),
        (*people, "salary", FILTER),
        (*depts, "dept", GROUP_BY),
    }


def test_sql_ctas(shown: dict[str, Any], spark: Any) -> None:
    data: ShowData = shown["data"]
    start, end = one_run(shown, "sql_ctas")  # the command and its nested insert, 1 run
    table = data.table("ctas")
    statement = CTAS.format(prefix=data.prefix, people=data.people)
    assert start["job"]["facets"]["sql"]["query"] == end["job"]["facets"]["sql"]["query"]
    assert end["job"]["facets"]["sql"]["query"] == statement
    assert end["job"]["name"] == (
        f"{APP}.execute_create_data_source_table_as_select_command.default_{table}"
    )
    people = ("file", str(data.people))
    assert datasets(end, "inputs") == [people]
    (output,) = end["outputs"]
    assert (output["namespace"], output["name"]) == ("file", f"{warehouse(spark)}/{table}")
    assert symlinks(output) == [table_link(spark, table)]
    assert schema(output) == [("dept_id", "integer"), ("top", "double")]
    assert lifecycle(output) == "CREATE"
    assert statistics(output)["rowCount"] == 2
    assert column_lineage(output) == {
        "dept_id": {(*people, "dept_id", IDENTITY)},
        "top": {(*people, "salary", AGGREGATION)},
    }
    assert dataset_lineage(output) == {(*people, "dept_id", GROUP_BY)}


def test_union_insert_into(shown: dict[str, Any], spark: Any) -> None:
    data: ShowData = shown["data"]
    _start, end = one_run(shown, "union_insert_into")
    table = data.table("staff")
    assert end["job"]["name"] == (
        f"{APP}.execute_insert_into_hadoop_fs_relation_command.warehouse_{table}"
    )
    people, csv = ("file", str(data.people)), ("file", str(data.people_csv))
    assert datasets(end, "inputs") == [people, csv]
    (output,) = end["outputs"]
    assert (output["namespace"], output["name"]) == ("file", f"{warehouse(spark)}/{table}")
    assert symlinks(output) == [table_link(spark, table)]
    assert schema(output) == [("who", "string"), ("pay", "double")]  # the table's names
    assert lifecycle(output) is None  # an append
    assert statistics(output)["rowCount"] == 6
    assert column_lineage(output) == {
        "who": {(*people, "name", IDENTITY), (*csv, "name", IDENTITY)},
        "pay": {(*people, "salary", IDENTITY), (*csv, "salary", TRANSFORMATION)},
    }


def test_jdbc_to_derby(shown: dict[str, Any]) -> None:
    data: ShowData = shown["data"]
    _start, end = one_run(shown, "jdbc_write")
    assert end["job"]["name"] == f"{APP}.execute_save_into_data_source_command.APP_WHO"
    people = ("file", str(data.people))
    assert datasets(end, "inputs") == [people]
    derby = "derby:memory:show"
    assert datasets(end, "outputs") == [(derby, "APP.WHO")]
    (output,) = end["outputs"]
    assert schema(output) == [("id", "integer"), ("who", "string")]
    assert lifecycle(output) == "OVERWRITE"
    # a JDBC write is no file-writing command: Spark keeps no row/byte metrics for it
    assert statistics(output) == {}
    assert column_lineage(output) == {
        "id": {(*people, "id", IDENTITY)},
        "who": {(*people, "name", IDENTITY)},
    }


def test_jdbc_from_derby(shown: dict[str, Any]) -> None:
    data: ShowData = shown["data"]
    start, end = one_run(shown, "jdbc_read")
    source = ("derby:memory:show", "APP.PEOPLE")
    assert datasets(end, "inputs") == [source]
    assert schema(start["inputs"][0]) == [("id", "integer"), ("name", "string")]
    assert datasets(end, "outputs") == [("file", str(data.base / "from_jdbc"))]
    (output,) = end["outputs"]
    assert statistics(output)["rowCount"] == 2
    assert column_lineage(output) == {
        "id": {(*source, "id", IDENTITY)},
        "name": {(*source, "name", IDENTITY)},
    }
    assert dataset_lineage(output) == {(*source, "id", FILTER)}


def test_hive_tables_through_the_embedded_metastore(shown: dict[str, Any], spark: Any) -> None:
    data: ShowData = shown["data"]
    assert spark.conf.get("spark.sql.catalogImplementation") == "hive"
    _start, end = one_run(shown, "hive_insert")
    source, target = data.table("hive"), data.table("hive_out")
    assert end["job"]["facets"]["sql"]["query"] == HIVE_INSERT.format(prefix=data.prefix)
    assert end["job"]["name"] == f"{APP}.execute_insert_into_hive_table.warehouse_{target}"
    src = ("file", f"{warehouse(spark)}/{source}")
    assert datasets(end, "inputs") == [src]
    assert symlinks(end["inputs"][0]) == [table_link(spark, source)]
    assert schema(end["inputs"][0]) == [("a", "integer"), ("b", "string")]
    (output,) = end["outputs"]
    assert (output["namespace"], output["name"]) == ("file", f"{warehouse(spark)}/{target}")
    assert symlinks(output) == [table_link(spark, target)]
    assert lifecycle(output) == "OVERWRITE"
    assert statistics(output)["rowCount"] == 2
    assert column_lineage(output) == {
        "a": {(*src, "a", IDENTITY)},
        "b": {(*src, "b", TRANSFORMATION)},
    }


def test_window_and_explode(shown: dict[str, Any]) -> None:
    data: ShowData = shown["data"]
    _start, end = one_run(shown, "window_explode")
    assert end["job"]["facets"]["sql"]["query"] == WINDOW_EXPLODE.format(people=data.people)
    people = ("file", str(data.people))
    (output,) = end["outputs"]
    assert (output["namespace"], output["name"]) == ("file", str(data.base / "windowed"))
    assert statistics(output)["rowCount"] == 9  # one row per letter
    assert column_lineage(output) == {
        "name": {(*people, "name", IDENTITY)},
        "running": {
            (*people, "salary", AGGREGATION),
            (*people, "dept_id", WINDOW),
            (*people, "id", WINDOW),
        },
        "letter": {(*people, "name", TRANSFORMATION)},
    }
    # through the Sort and the Limit: the order is indirect lineage of the whole dataset
    assert dataset_lineage(output) == {(*people, "name", SORT)}


def test_failing_write_is_a_fail_with_the_error(shown: dict[str, Any]) -> None:
    data: ShowData = shown["data"]
    _start, end = one_run(shown, "failing_write")
    assert end["eventType"] == "FAIL"
    assert datasets(end, "inputs") == [("file", str(data.people))]
    assert datasets(end, "outputs") == [("file", str(data.base / "never_written"))]
    error = end["run"]["facets"]["errorMessage"]
    assert "boom ann" in error["message"] and error["programmingLanguage"] == "JAVA"
    assert "raiseError" in error["stackTrace"]
    assert end["run"]["facets"]["spark.exception"]["message"] == error["message"]


def test_application_start_and_complete(shown: dict[str, Any]) -> None:
    handle = shown["handle"]
    start, complete = shown["events"]["app"]
    assert (start, complete) == (shown["all"][0], shown["all"][-1])  # first and last
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == complete["run"]["runId"] == handle.app_run_id
    assert start["job"] == complete["job"]
    assert (start["job"]["namespace"], start["job"]["name"]) == (NAMESPACE, APP)
    job_type = start["job"]["facets"]["jobType"]
    assert (job_type["jobType"], job_type["processingType"]) == ("APPLICATION", "NONE")
    assert "parent" not in start["run"]["facets"]  # no parent configured
    assert (handle.emitted, handle.dropped, handle.failed_posts) == (len(shown["all"]), 0, 0)


@pytest.mark.parametrize("kind", ["app", *JOB_KINDS])
def test_every_event_is_valid_openlineage(
    shown: dict[str, Any], validator: SpecValidator, kind: str
) -> None:
    events = shown["events"][kind]
    assert events
    for event in events:
        assert validator.errors(event) == [], (kind, event["eventType"])
