"""Plain Python lineage of one Spark SQL execution, as the plan walker finds it.

`_plans.py` turns a JVM QueryExecution into an `ExecutionLineage`; `_events.py`
turns it (plus run state) into OpenLineage RunEvent dicts. Nothing here touches
py4j, so events are tested from hand-built values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ColumnSource",
    "DatasetRef",
    "ExecutionLineage",
    "SchemaField",
    "StreamBatch",
    "Symlink",
    "Transformation",
]


@dataclass(frozen=True, slots=True)
class SchemaField:
    name: str
    type: str  # Spark typeName, as the integration emits it: "integer", "long", "decimal(13,1)"
    fields: tuple[SchemaField, ...] = ()  # a struct's nested fields, as the schema facet nests them


@dataclass(frozen=True, slots=True)
class Symlink:
    namespace: str  # e.g. "hive://localhost:9083" or the catalog's namespace
    name: str  # e.g. "default.t1"
    type: str = "TABLE"


@dataclass(frozen=True, slots=True)
class Transformation:
    """An OpenLineage column-lineage transformation."""

    type: Literal["DIRECT", "INDIRECT"]
    # DIRECT: IDENTITY, TRANSFORMATION, AGGREGATION;
    # INDIRECT: JOIN, FILTER, GROUP_BY, SORT, WINDOW, CONDITIONAL
    subtype: str
    masking: bool = False


@dataclass(frozen=True, slots=True)
class ColumnSource:
    """One input column feeding an output column (or the whole output dataset)."""

    namespace: str
    name: str
    field: str
    transformations: tuple[Transformation, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetRef:
    """An input or output dataset named the way the OpenLineage Spark integration names it."""

    namespace: str  # "file", "hdfs://host:port", "s3://bucket", "postgres://host:5432", ...
    name: str  # "/abs/path", "key/without/leading/slash", "db.schema.table"
    schema: tuple[SchemaField, ...] = ()
    symlinks: tuple[Symlink, ...] = ()
    # the full names a trimmed name stands for (the `subset` facet's location condition)
    locations: tuple[str, ...] = ()
    # outputs only
    lifecycle_state: str | None = None  # CREATE, OVERWRITE, DROP, TRUNCATE, ALTER, RENAME
    row_count: int | None = None
    size_bytes: int | None = None
    file_count: int | None = None
    column_lineage: dict[str, tuple[ColumnSource, ...]] = field(default_factory=dict)
    dataset_lineage: tuple[ColumnSource, ...] = ()  # INDIRECT sources for the whole dataset


@dataclass(frozen=True, slots=True)
class StreamBatch:
    """The Structured Streaming query run and micro-batch an execution belongs to."""

    query_id: str
    run_id: str  # the query run's id (a restarted query gets a new one)
    batch_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionLineage:
    """What one (root) SQL execution read and wrote."""

    # the plan node that names the job, snake case,
    # e.g. "execute_insert_into_hadoop_fs_relation_command"
    node_name: str
    inputs: tuple[DatasetRef, ...] = ()
    outputs: tuple[DatasetRef, ...] = ()
    sql: str | None = None
    job_type: str = "SQL_JOB"  # the jobType facet: SQL_JOB, RDD_JOB
    processing: str = "BATCH"  # its processingType: BATCH, STREAMING
    stream: StreamBatch | None = None  # set for a streaming query's micro-batch
