"""Pure: application context + run state + `ExecutionLineage` -> OpenLineage RunEvent dicts.

The shapes follow what the OpenLineage Spark integration emits (and the 2-0-2 spec):

- the application run: job `<app_name_snake>`, `jobType` APPLICATION / processingType NONE, START
  (with `spark_applicationDetails`) and COMPLETE; it carries a `parent` facet only when a parent
  run was configured (e.g. by Airflow through `spark.openlineage.parentRunId`);
- one run per root SQL execution (or RDD API job): job `<app>.<node>[.<output>]`, `jobType`
  SQL_JOB (RDD_JOB) / BATCH,
  `parent` -> the application run (and `root` -> the configured root or parent run), `sql` when
  the query text is known, START then COMPLETE or FAIL (FAIL carries `errorMessage`, the spec's
  facet, and `spark.exception`, the integration's);
- every run event carries `processing_engine` and `spark_properties`.

Nothing here does I/O or touches py4j, so every shape is tested from hand-built values.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from ._model import ColumnSource, DatasetRef, ExecutionLineage, SchemaField

__all__ = [
    "PLUGIN_VERSION",
    "PRODUCER",
    "AppContext",
    "ErrorInfo",
    "RunRef",
    "application_event",
    "execution_event",
    "iso_time",
    "merge_executions",
    "new_run_id",
]

PLUGIN_VERSION = "0.1.0"
PRODUCER = f"https://github.com/lineage-relay/lineage-relay/tree/{PLUGIN_VERSION}/spark_plugin"
_SPEC = "https://openlineage.io/spec"
RUN_EVENT_SCHEMA = f"{_SPEC}/2-0-2/OpenLineage.json#/$defs/RunEvent"
_RUN_FACET = f"{_SPEC}/2-0-2/OpenLineage.json#/$defs/RunFacet"
_JOB_FACET = f"{_SPEC}/2-0-2/OpenLineage.json#/$defs/JobFacet"
_MAX_STACK_CHARS = 8192

EventType = Literal["START", "COMPLETE", "FAIL", "ABORT", "RUNNING"]


def _schema(path: str, name: str) -> str:
    return f"{_SPEC}/facets/{path}.json#/$defs/{name}"


# Each standard facet names the version of its schema that defines every field we emit (the
# versions of the spec snapshot the tests validate against): `root` in `parent` needs
# ParentRunFacet >= 1-1-0, the `dataset` key of `columnLineage` (indirect lineage at dataset
# level) ColumnLineageDatasetFacet 1-2-0; the integration's 1.23 events cite older versions
# where they emit less.
_SCHEMAS = {
    "parent": _schema("1-2-0/ParentRunFacet", "ParentRunFacet"),
    "processing_engine": _schema("1-1-1/ProcessingEngineRunFacet", "ProcessingEngineRunFacet"),
    "errorMessage": _schema("1-0-1/ErrorMessageRunFacet", "ErrorMessageRunFacet"),
    "jobType": _schema("2-0-4/JobTypeJobFacet", "JobTypeJobFacet"),
    "sql": _schema("1-1-0/SQLJobFacet", "SQLJobFacet"),
    "dataSource": _schema("1-0-1/DatasourceDatasetFacet", "DatasourceDatasetFacet"),
    "schema": _schema("1-2-0/SchemaDatasetFacet", "SchemaDatasetFacet"),
    "symlinks": _schema("1-0-1/SymlinksDatasetFacet", "SymlinksDatasetFacet"),
    "lifecycleStateChange": _schema(
        "1-0-1/LifecycleStateChangeDatasetFacet", "LifecycleStateChangeDatasetFacet"
    ),
    "columnLineage": _schema("1-2-0/ColumnLineageDatasetFacet", "ColumnLineageDatasetFacet"),
    "outputStatistics": _schema(
        "1-0-2/OutputStatisticsOutputDatasetFacet", "OutputStatisticsOutputDatasetFacet"
    ),
    "inputSubset": _schema("1-0-0/BaseSubsetDatasetFacet", "InputSubsetInputDatasetFacet"),
    "outputSubset": _schema("1-0-0/BaseSubsetDatasetFacet", "OutputSubsetOutputDatasetFacet"),
}


def _facet(kind: str, **body: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": _SCHEMAS[kind], **body}


def _custom_run_facet(**body: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": _RUN_FACET, **body}


def _custom_job_facet(**body: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": _JOB_FACET, **body}


def new_run_id(now_ms: int | None = None) -> str:
    """A UUIDv7 (time-ordered, as the Spark integration uses) as a string."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= (rand >> 68) << 64 & (0xFFF << 64)  # rand_a, 12 bits
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    return str(uuid.UUID(int=value))


def iso_time(epoch_ms: float) -> str:
    """`2024-10-17T09:18:11.500Z`: UTC with milliseconds, as the integration writes it."""
    moment = datetime.fromtimestamp(epoch_ms / 1000.0, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class RunRef:
    """A run of a job, as a `parent` or `root` facet names it."""

    namespace: str
    name: str
    run_id: str

    def as_facet_part(self) -> dict[str, Any]:
        return {
            "run": {"runId": self.run_id},
            "job": {"namespace": self.namespace, "name": self.name},
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AppContext:
    """What every event of one Spark application shares."""

    namespace: str
    app_name: str  # as the user named it, e.g. "CLI test application"
    app_job_name: str  # snake case, e.g. "cl_i_test_application"
    app_run_id: str
    spark_version: str
    properties: Mapping[str, str] = field(default_factory=dict)  # spark_properties facet
    application_details: Mapping[str, str] = field(default_factory=dict)  # app START only
    parent: RunRef | None = None  # configured parent of the application run (Airflow task)
    root: RunRef | None = None  # configured root run, if any
    openmetadata: Mapping[str, str] = field(default_factory=dict)  # job facet pass-through

    @property
    def app_run(self) -> RunRef:
        return RunRef(self.namespace, self.app_job_name, self.app_run_id)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a SQL execution failed."""

    message: str
    stack_trace: str = ""


def _common_run_facets(ctx: AppContext) -> dict[str, Any]:
    return {
        "processing_engine": _facet(
            "processing_engine",
            version=ctx.spark_version,
            name="spark",
            openlineageAdapterVersion=PLUGIN_VERSION,
        ),
        "spark_properties": _custom_run_facet(properties=dict(ctx.properties)),
    }


def _job_facets(
    ctx: AppContext, *, job_type: str, processing: str, sql: str | None
) -> dict[str, Any]:
    facets: dict[str, Any] = {
        "jobType": _facet(
            "jobType", processingType=processing, integration="SPARK", jobType=job_type
        )
    }
    if sql:
        facets["sql"] = _facet("sql", query=sql)
    if ctx.openmetadata:
        facets["openmetadata"] = _custom_job_facet(**ctx.openmetadata)
    return facets


def _parent_facet(parent: RunRef, root: RunRef | None) -> dict[str, Any]:
    body = parent.as_facet_part()
    if root is not None:
        body["root"] = root.as_facet_part()
    return _facet("parent", **body)


def _event(
    event_type: EventType,
    epoch_ms: float,
    run_id: str,
    run_facets: dict[str, Any],
    namespace: str,
    job_name: str,
    job_facets: dict[str, Any],
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "eventTime": iso_time(epoch_ms),
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT_SCHEMA,
        "eventType": event_type,
        "run": {"runId": run_id, "facets": run_facets},
        "job": {"namespace": namespace, "name": job_name, "facets": job_facets},
        "inputs": inputs,
        "outputs": outputs,
    }


def application_event(ctx: AppContext, event_type: EventType, epoch_ms: float) -> dict[str, Any]:
    """The application run's START (with `spark_applicationDetails`) or COMPLETE."""
    run_facets = _common_run_facets(ctx)
    if ctx.parent is not None:
        run_facets["parent"] = _parent_facet(ctx.parent, ctx.root)
    if event_type == "START" and ctx.application_details:
        run_facets["spark_applicationDetails"] = _custom_run_facet(**ctx.application_details)
    job_facets = _job_facets(ctx, job_type="APPLICATION", processing="NONE", sql=None)
    return _event(
        event_type, epoch_ms, ctx.app_run_id, run_facets, ctx.namespace, ctx.app_job_name,
        job_facets, [], [],
    )  # fmt: skip


def _input_field(source: ColumnSource) -> dict[str, Any]:
    return {
        "namespace": source.namespace,
        "name": source.name,
        "field": source.field,
        "transformations": [
            {"type": t.type, "subtype": t.subtype, "description": "", "masking": t.masking}
            for t in source.transformations
        ],
    }


def _schema_field(field: SchemaField) -> dict[str, Any]:
    out: dict[str, Any] = {"name": field.name, "type": field.type}
    if field.fields:
        out["fields"] = [_schema_field(f) for f in field.fields]
    return out


def _dataset(ref: DatasetRef, *, output: bool, full: bool) -> dict[str, Any]:
    facets: dict[str, Any] = {
        "dataSource": _facet("dataSource", name=ref.namespace, uri=ref.namespace)
    }
    if ref.schema:
        facets["schema"] = _facet("schema", fields=[_schema_field(f) for f in ref.schema])
    if ref.symlinks:
        facets["symlinks"] = _facet(
            "symlinks",
            identifiers=[
                {"namespace": s.namespace, "name": s.name, "type": s.type} for s in ref.symlinks
            ],
        )
    dataset: dict[str, Any] = {"namespace": ref.namespace, "name": ref.name, "facets": facets}
    # a trimmed name (see _trimming): the full names it stands for, as the integration keeps them
    condition = {"type": "location", "locations": list(ref.locations)}
    if not output:
        dataset["inputFacets"] = (
            {"subset": _facet("inputSubset", inputCondition=condition)} if ref.locations else {}
        )
        return dataset
    if ref.lifecycle_state:
        facets["lifecycleStateChange"] = _facet(
            "lifecycleStateChange", lifecycleStateChange=ref.lifecycle_state
        )
    output_facets: dict[str, Any] = {}
    if ref.locations:
        output_facets["subset"] = _facet("outputSubset", outputCondition=condition)
    if full and (ref.column_lineage or ref.dataset_lineage):
        lineage: dict[str, Any] = {
            "fields": {
                column: {"inputFields": [_input_field(s) for s in sources]}
                for column, sources in ref.column_lineage.items()
            }
        }
        if ref.dataset_lineage:
            lineage["dataset"] = [_input_field(s) for s in ref.dataset_lineage]
        facets["columnLineage"] = _facet("columnLineage", **lineage)
    if full and ref.row_count is not None:
        stats: dict[str, Any] = {"rowCount": ref.row_count}
        if ref.size_bytes is not None:
            stats["size"] = ref.size_bytes
        if ref.file_count is not None:
            stats["fileCount"] = ref.file_count
        output_facets["outputStatistics"] = _facet("outputStatistics", **stats)
    dataset["outputFacets"] = output_facets
    return dataset


def execution_event(
    ctx: AppContext,
    event_type: EventType,
    epoch_ms: float,
    *,
    run_id: str,
    job_name: str,
    lineage: ExecutionLineage,
    error: ErrorInfo | None = None,
) -> dict[str, Any]:
    """One event of a root SQL execution's run (START, COMPLETE or FAIL).

    START stays light (datasets with schema and symlinks); COMPLETE and FAIL add column lineage
    and output statistics, as the integration does once the plan has run.
    """
    full = event_type != "START"
    run_facets = _common_run_facets(ctx)
    run_facets["parent"] = _parent_facet(ctx.app_run, ctx.root or ctx.parent)
    if error is not None:
        stack = error.stack_trace[:_MAX_STACK_CHARS]
        body: dict[str, Any] = {"message": error.message, "programmingLanguage": "JAVA"}
        if stack:
            body["stackTrace"] = stack
        run_facets["errorMessage"] = _facet("errorMessage", **body)
        run_facets["spark.exception"] = _custom_run_facet(message=error.message, stackTrace=stack)
    job_facets = _job_facets(
        ctx, job_type=lineage.job_type, processing=lineage.processing, sql=lineage.sql
    )
    return _event(
        event_type,
        epoch_ms,
        run_id,
        run_facets,
        ctx.namespace,
        job_name,
        job_facets,
        [_dataset(d, output=False, full=full) for d in lineage.inputs],
        [_dataset(d, output=True, full=full) for d in lineage.outputs],
    )


def _merge_refs(first: DatasetRef, other: DatasetRef) -> DatasetRef:
    """One dataset described by two executions of the same action: keep every known fact."""
    return DatasetRef(
        namespace=first.namespace,
        name=first.name,
        schema=first.schema or other.schema,
        symlinks=tuple(dict.fromkeys((*first.symlinks, *other.symlinks))),
        locations=tuple(dict.fromkeys((*first.locations, *other.locations))),
        lifecycle_state=first.lifecycle_state or other.lifecycle_state,
        row_count=first.row_count if first.row_count is not None else other.row_count,
        size_bytes=first.size_bytes if first.size_bytes is not None else other.size_bytes,
        file_count=first.file_count if first.file_count is not None else other.file_count,
        column_lineage=first.column_lineage or other.column_lineage,
        dataset_lineage=first.dataset_lineage or other.dataset_lineage,
    )


def _is_location(ref: DatasetRef) -> bool:
    """Named by its storage location rather than by its table identifier."""
    return not any(s.name == ref.name for s in ref.symlinks)


def _merge_datasets(groups: list[tuple[DatasetRef, ...]]) -> tuple[DatasetRef, ...]:
    merged: list[DatasetRef] = []
    for refs in groups:
        for ref in refs:
            for i, known in enumerate(merged):
                same_name = (known.namespace, known.name) == (ref.namespace, ref.name)
                same_table = bool({s.name for s in known.symlinks} & {s.name for s in ref.symlinks})
                if same_name or same_table:
                    if _is_location(ref) and not _is_location(known):
                        merged[i] = _merge_refs(ref, known)
                    else:
                        merged[i] = _merge_refs(known, ref)
                    break
            else:
                merged.append(ref)
    return tuple(merged)


def merge_executions(lineages: list[ExecutionLineage]) -> ExecutionLineage:
    """One user action's nested executions (saveAsTable, CTAS) as one run, outermost first.

    The job is named after the outermost execution; datasets seen by several executions are
    merged by name, and by table identifier (the outer command names the table, the inner
    insert its location: the location wins as the dataset name, as the integration does).
    """
    if len(lineages) == 1:
        return lineages[0]
    outputs = _merge_datasets([lin.outputs for lin in lineages])
    outer = lineages[0]
    if any(word in outer.node_name for word in _TABLE_CREATING_NODES):
        outputs = tuple(_created_or_appended(ref, outer) for ref in outputs)
    return ExecutionLineage(
        node_name=outer.node_name,
        inputs=_merge_datasets([lin.inputs for lin in lineages]),
        outputs=outputs,
        sql=next((lin.sql for lin in lineages if lin.sql), None),
        job_type=outer.job_type,
        processing=outer.processing,
        stream=next((lin.stream for lin in lineages if lin.stream), None),
    )


# outer commands that create their table unless it exists (CTAS, saveAsTable)
_TABLE_CREATING_NODES = ("table_as_select", "save_as_v1_table")


def _created_or_appended(ref: DatasetRef, outer: ExecutionLineage) -> DatasetRef:
    """A CTAS in Append mode (`saveAsTable(mode="append")`) says nothing about the table's
    lifecycle: it creates the table when it does not exist, writing it through a nested insert
    in Overwrite mode, and appends through a nested insert in Append mode when it does. So an
    OVERWRITE from the nested insert under an outer command that reported no state is a CREATE.
    """
    outer_states = {(o.namespace, o.name): o.lifecycle_state for o in outer.outputs}
    key = (ref.namespace, ref.name)
    if key in outer_states and outer_states[key] is None and ref.lifecycle_state == "OVERWRITE":
        return dataclasses.replace(ref, lifecycle_state="CREATE")
    return ref
