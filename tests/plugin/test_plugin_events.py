"""_events: RunEvent dicts from hand-built lineage, checked for shape and against the spec."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from plugin_support import SpecValidator

from spark_plugin._events import (
    AppContext,
    ErrorInfo,
    RunRef,
    application_event,
    execution_event,
    iso_time,
    merge_executions,
    new_run_id,
)
from spark_plugin._model import (
    ColumnSource,
    DatasetRef,
    ExecutionLineage,
    SchemaField,
    Symlink,
    Transformation,
)

AIRFLOW_RUN = "0191f3c2-8d6e-7a52-b3a5-7f6a54b2c9d1"
IDENTITY = Transformation("DIRECT", "IDENTITY")
AGGREGATION = Transformation("DIRECT", "AGGREGATION")
GROUP_BY = Transformation("INDIRECT", "GROUP_BY")


def make_context(**overrides: Any) -> AppContext:
    values: dict[str, Any] = {
        "namespace": "prod",
        "app_name": "Nightly Orders",
        "app_job_name": "nightly_orders",
        "app_run_id": new_run_id(),
        "spark_version": "4.3.0",
        "properties": {"spark.master": "local[2]", "spark.app.name": "Nightly Orders"},
        "application_details": {"master": "local[2]", "appName": "Nightly Orders"},
    }
    values.update(overrides)
    return AppContext(**values)


ORDERS = DatasetRef(
    namespace="file",
    name="/data/orders",
    schema=(SchemaField("id", "long"), SchemaField("amount", "decimal(10,2)")),
)
TOTALS = DatasetRef(
    namespace="file",
    name="/warehouse/totals",
    schema=(
        SchemaField("id", "long"),
        SchemaField("total", "decimal(20,2)"),
        SchemaField("meta", "struct", fields=(SchemaField("source", "string"),)),
    ),
    symlinks=(Symlink("file:/warehouse", "default.totals"),),
    lifecycle_state="OVERWRITE",
    row_count=42,
    size_bytes=1234,
    file_count=2,
    column_lineage={
        "id": (ColumnSource("file", "/data/orders", "id", (IDENTITY,)),),
        "total": (ColumnSource("file", "/data/orders", "amount", (AGGREGATION,)),),
    },
    dataset_lineage=(ColumnSource("file", "/data/orders", "id", (GROUP_BY,)),),
)
LINEAGE = ExecutionLineage(
    node_name="execute_insert_into_hadoop_fs_relation_command",
    inputs=(ORDERS,),
    outputs=(TOTALS,),
    sql="INSERT OVERWRITE totals SELECT id, sum(amount) FROM orders GROUP BY id",
)


def run_event(event_type: str, ctx: AppContext, **kwargs: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {"run_id": new_run_id(), "job_name": "nightly_orders.x.totals"}
    defaults.update(kwargs)
    defaults.setdefault("lineage", LINEAGE)
    return execution_event(ctx, event_type, 1_700_000_000_123, **defaults)  # type: ignore[arg-type]


def test_run_ids_are_time_ordered_uuid7() -> None:
    first, second = new_run_id(1_700_000_000_000), new_run_id(1_700_000_000_001)
    assert uuid.UUID(first).version == 7 and uuid.UUID(first).variant == uuid.RFC_4122
    assert first < second
    assert len({new_run_id(5) for _ in range(100)}) == 100
    assert iso_time(1_729_156_691_500) == "2024-10-17T09:18:11.500Z"


def test_application_events_shape() -> None:
    ctx = make_context(openmetadata={"pipelineServiceName": "spark_prod"})
    start = application_event(ctx, "START", 1_700_000_000_000)
    complete = application_event(ctx, "COMPLETE", 1_700_000_001_000)
    assert start["eventType"] == "START" and complete["eventType"] == "COMPLETE"
    assert start["run"]["runId"] == complete["run"]["runId"] == ctx.app_run_id
    assert start["job"] == complete["job"]
    assert start["job"]["name"] == "nightly_orders" and start["job"]["namespace"] == "prod"
    job_type = start["job"]["facets"]["jobType"]
    assert (job_type["jobType"], job_type["processingType"], job_type["integration"]) == (
        "APPLICATION",
        "NONE",
        "SPARK",
    )
    assert start["job"]["facets"]["openmetadata"]["pipelineServiceName"] == "spark_prod"
    assert "spark_applicationDetails" in start["run"]["facets"]
    assert "spark_applicationDetails" not in complete["run"]["facets"]
    assert "parent" not in start["run"]["facets"]  # no parent configured
    engine = start["run"]["facets"]["processing_engine"]
    assert (engine["name"], engine["version"]) == ("spark", "4.3.0")
    assert start["run"]["facets"]["spark_properties"]["properties"]["spark.master"] == "local[2]"
    assert start["inputs"] == [] and start["outputs"] == []


def test_application_run_links_to_the_configured_parent_and_actions_to_the_application() -> None:
    airflow = RunRef("airflow", "dag.load_orders", AIRFLOW_RUN)
    ctx = make_context(parent=airflow)
    app = application_event(ctx, "START", 1)
    assert app["run"]["facets"]["parent"]["run"] == {"runId": AIRFLOW_RUN}
    assert app["run"]["facets"]["parent"]["job"] == {
        "namespace": "airflow",
        "name": "dag.load_orders",
    }
    action = run_event("START", ctx)
    parent = action["run"]["facets"]["parent"]
    assert parent["run"] == {"runId": ctx.app_run_id}
    assert parent["job"] == {"namespace": "prod", "name": "nightly_orders"}
    assert parent["root"]["run"] == {"runId": AIRFLOW_RUN}  # the root is the Airflow run


def test_sql_run_start_is_light_complete_is_full() -> None:
    ctx = make_context()
    start = run_event("START", ctx)
    complete = run_event("COMPLETE", ctx)
    assert start["job"]["facets"]["jobType"]["jobType"] == "SQL_JOB"
    assert start["job"]["facets"]["jobType"]["processingType"] == "BATCH"
    assert start["job"]["facets"]["sql"]["query"].startswith("INSERT OVERWRITE totals")
    assert (
        start["inputs"][0]["namespace"] == "file" and start["inputs"][0]["name"] == "/data/orders"
    )
    out_start, out_complete = start["outputs"][0], complete["outputs"][0]
    assert "columnLineage" not in out_start["facets"] and out_start["outputFacets"] == {}
    assert out_start["facets"]["symlinks"]["identifiers"] == [
        {"namespace": "file:/warehouse", "name": "default.totals", "type": "TABLE"}
    ]
    assert out_start["facets"]["lifecycleStateChange"]["lifecycleStateChange"] == "OVERWRITE"
    assert out_start["facets"]["schema"]["fields"][2] == {
        "name": "meta",
        "type": "struct",
        "fields": [{"name": "source", "type": "string"}],
    }
    fields = out_complete["facets"]["columnLineage"]["fields"]
    assert fields["total"]["inputFields"] == [
        {
            "namespace": "file",
            "name": "/data/orders",
            "field": "amount",
            "transformations": [
                {"type": "DIRECT", "subtype": "AGGREGATION", "description": "", "masking": False}
            ],
        }
    ]
    assert out_complete["facets"]["columnLineage"]["dataset"][0]["field"] == "id"
    assert out_complete["outputFacets"]["outputStatistics"]["rowCount"] == 42
    assert out_complete["outputFacets"]["outputStatistics"]["size"] == 1234
    assert out_complete["outputFacets"]["outputStatistics"]["fileCount"] == 2


def test_fail_carries_the_error_in_both_facets() -> None:
    error = ErrorInfo(
        "[USER_RAISED_EXCEPTION] boom", "org.apache.spark.SparkException: boom\n\tat x"
    )
    event = run_event("FAIL", make_context(), error=error)
    facets = event["run"]["facets"]
    assert event["eventType"] == "FAIL"
    assert facets["errorMessage"]["message"] == "[USER_RAISED_EXCEPTION] boom"
    assert facets["errorMessage"]["programmingLanguage"] == "JAVA"
    assert facets["errorMessage"]["stackTrace"].startswith("org.apache.spark.SparkException")
    assert facets["spark.exception"]["message"] == "[USER_RAISED_EXCEPTION] boom"


def test_no_sql_facet_when_the_query_text_is_unknown() -> None:
    lineage = ExecutionLineage(node_name="collect_limit", inputs=(ORDERS,))
    event = run_event("COMPLETE", make_context(), lineage=lineage)
    assert "sql" not in event["job"]["facets"]
    assert event["outputs"] == []


def test_nested_executions_merge_into_one_run() -> None:
    table = Symlink("file:/wh", "default.t_agg")
    outer = ExecutionLineage(
        node_name="save_as_v1_table_command",
        inputs=(ORDERS,),
        outputs=(DatasetRef(namespace="file", name="default.t_agg", symlinks=(table,)),),
    )
    create = ExecutionLineage(
        node_name="create_data_source_table_as_select_command",
        outputs=(
            DatasetRef(
                namespace="file",
                name="default.t_agg",
                symlinks=(table,),
                lifecycle_state="CREATE",
            ),
        ),
        sql="CREATE TABLE t_agg AS SELECT 1",
    )
    insert = ExecutionLineage(
        node_name="execute_insert_into_hadoop_fs_relation_command",
        inputs=(ORDERS,),
        outputs=(
            DatasetRef(
                namespace="file",
                name="/wh/t_agg",
                schema=(SchemaField("id", "long"),),
                symlinks=(table,),
                row_count=3,
                column_lineage={"id": (ColumnSource("file", "/data/orders", "id", (IDENTITY,)),)},
            ),
        ),
    )
    merged = merge_executions([outer, create, insert])
    assert merged.node_name == "save_as_v1_table_command"
    assert merged.inputs == (ORDERS,)
    assert len(merged.outputs) == 1
    output = merged.outputs[0]
    assert (output.namespace, output.name) == ("file", "/wh/t_agg")  # the location names it
    assert output.symlinks == (table,)
    assert output.lifecycle_state == "CREATE" and output.row_count == 3
    assert set(output.column_lineage) == {"id"}
    assert merged.sql == "CREATE TABLE t_agg AS SELECT 1"
    assert merge_executions([insert]) is insert


def test_events_are_valid_against_the_openlineage_spec(shared_dir: Path) -> None:
    pytest.importorskip("jsonschema")
    validator = SpecValidator(shared_dir / "openlineage-samples" / "spec")
    assert {"parent", "schema", "columnLineage", "errorMessage", "jobType"} <= (
        validator.facet_keys_checked()
    )
    ctx = make_context(
        parent=RunRef("airflow", "dag.task", AIRFLOW_RUN),
        openmetadata={"pipelineServiceName": "spark_prod"},
    )
    events = [
        application_event(ctx, "START", 1_700_000_000_000),
        run_event("START", ctx),
        run_event("COMPLETE", ctx),
        run_event("FAIL", ctx, error=ErrorInfo("boom", "trace")),
        application_event(ctx, "COMPLETE", 1_700_000_009_000),
    ]
    for event in events:
        assert validator.errors(event) == []
    broken = run_event("COMPLETE", ctx)
    broken["run"]["facets"]["parent"]["run"]["runId"] = "not-a-uuid"
    del broken["outputs"][0]["facets"]["columnLineage"]["fields"]["id"]["inputFields"][0]["field"]
    assert len(validator.errors(broken)) == 2  # the check can fail
    # a facet citing a schema version that does not define what it carries fails too: the
    # `dataset` key of columnLineage exists from 1-2-0 on
    stale = run_event("COMPLETE", ctx)
    lineage_facet = stale["outputs"][0]["facets"]["columnLineage"]
    lineage_facet["_schemaURL"] = lineage_facet["_schemaURL"].replace("/1-2-0/", "/1-1-0/")
    assert [e for e in validator.errors(stale) if "columnLineage" in e] != []
    custom = run_event("COMPLETE", ctx)
    custom["run"]["facets"]["spark_properties"]["_schemaURL"] = "https://example.com/x.json"
    assert [e for e in validator.errors(custom) if "spark_properties" in e] != []


@pytest.mark.parametrize(("inner_state", "merged_state"), [("OVERWRITE", "CREATE"), (None, None)])
def test_append_mode_ctas_creates_or_appends_as_its_nested_insert_says(
    inner_state: str | None, merged_state: str | None
) -> None:
    table = Symlink("file:/wh", "default.t")
    outer = ExecutionLineage(
        node_name="execute_save_as_v1_table_command",
        outputs=(DatasetRef(namespace="file", name="/wh/t", symlinks=(table,)),),
    )
    insert = ExecutionLineage(
        node_name="execute_insert_into_hadoop_fs_relation_command",
        outputs=(
            DatasetRef(
                namespace="file", name="/wh/t", symlinks=(table,), lifecycle_state=inner_state
            ),
        ),
    )
    assert merge_executions([outer, insert]).outputs[0].lifecycle_state == merged_state
    # a plain overwrite stays one
    assert merge_executions([insert, insert]).outputs[0].lifecycle_state == inner_state
