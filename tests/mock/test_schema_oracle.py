"""The mock and OpenMetadata's own JSON Schemas agree on every body we send.

Each case is a valid request body and variations of it (unknown field, missing required
field, wrong type, bad enum value, explicit null on an optional field, ...). The schemas (the
oracle, from the reference folder) judge each body; the mock must accept exactly what they
accept and refuse with 400 what they refuse.

One documented divergence: OpenMetadata's server treats an explicit ``null`` on an optional
field as absent (the schemas alone reject it), so the oracle judges bodies with such nulls
removed, and the test also asserts that the raw schemas do reject them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import schema_oracle as oracle
from mock_support import ORDERS, REVENUE, run_event

from relay.testing.mock_openmetadata import MockOpenMetadata, _models, _models_openlineage

Body = dict[str, Any]
Context = dict[str, str]
STAMP = 1_764_150_000_000


@pytest.fixture
def server_version() -> str:
    """The oracle is OpenMetadata 1.13's schemas: judge a mock answering as 1.13 (where 2.0
    differs, ``test_versions.py`` compares both)."""
    return "1.13.0"


def _strip_nulls(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: _strip_nulls(v) for k, v in body.items() if v is not None}
    if isinstance(body, list):
        return [_strip_nulls(v) for v in body]
    return body


def _with(body: Body, path: str, value: Any) -> Body:
    """A copy of ``body`` with ``path`` (dotted, list indexes allowed) set; ``...`` deletes."""
    out = copy.deepcopy(body)
    *parents, last = path.split(".")
    node: Any = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


def _lineage(ctx: Context) -> Body:
    return {
        "edge": {
            "fromEntity": {"id": ctx["orders"], "type": "table"},
            "toEntity": {"id": ctx["revenue"], "type": "table"},
            "lineageDetails": {
                "pipeline": {"id": ctx["pipeline"], "type": "pipeline"},
                "source": "SparkLineage",
                "sqlQuery": "INSERT INTO daily_revenue SELECT ...",
                "columnsLineage": [
                    {"fromColumns": [f"{ORDERS}.amount"], "toColumn": f"{REVENUE}.revenue"}
                ],
            },
        }
    }


def _status(ctx: Context) -> Body:
    return {
        "timestamp": STAMP,
        "executionStatus": "Successful",
        "endTime": STAMP + 1000,
        "executionId": "app-20261126101530-0001",
        "taskStatus": [
            {
                "name": "write_revenue",
                "executionStatus": "Successful",
                "startTime": STAMP,
                "endTime": STAMP + 1000,
                "logLink": "http://spark-history:18080/history/app-1",
            }
        ],
    }


def _pipeline(ctx: Context) -> Body:
    return {
        "name": "nightly_etl",
        "service": "spark",
        "displayName": "Nightly ETL",
        "sourceUrl": "http://spark-history:18080/history/app-1",
        "state": "Active",
        "tasks": [{"name": "write_revenue", "taskType": "SparkSQL", "downstreamTasks": []}],
    }


def _pipeline_service(ctx: Context) -> Body:
    return {"name": "spark", "serviceType": "Spark", "connection": {"config": {"type": "Spark"}}}


def _table(ctx: Context) -> Body:
    return {
        "name": "refunds",
        "databaseSchema": "hive_prod.warehouse.sales",
        "tableType": "Regular",
        "columns": [
            {"name": "refund_id", "dataType": "BIGINT", "constraint": "PRIMARY_KEY"},
            {"name": "reason", "dataType": "VARCHAR", "dataLength": 200},
        ],
    }


def _container(ctx: Context) -> Body:
    return {
        "name": "exports",
        "service": "s3_lake",
        "fullPath": "s3://lake-bucket/exports",
        "fileFormats": ["parquet"],
        "dataModel": {"isPartitioned": False, "columns": [{"name": "id", "dataType": "STRING"}]},
    }


def _batch(ctx: Context) -> Body:
    return {"events": [run_event(run_id="3f5e7c9a-1b2d-4e6f-8a0b-1c2d3e4f5a6b")]}


# (case id, schema, collection path under /api, base body, variations: (id, path, value))
Variation = tuple[str, str, Any]
CASES: list[tuple[str, str, str, Callable[[Context], Body], list[Variation]]] = [
    (
        "pipelineService",
        oracle.CREATE_PIPELINE_SERVICE,
        "/v1/services/pipelineServices",
        _pipeline_service,
        [
            ("unknown-field", "owner", "me"),
            ("missing-serviceType", "serviceType", ...),
            ("wrong-type-name", "name", 42),
            ("bad-enum", "serviceType", "Sparky"),
            ("null-optional", "description", None),
            ("name-with-double-colon", "name", "a::b"),
            ("name-too-long", "name", "x" * 257),
            ("connection-unknown-field", "connection.extra", True),
        ],
    ),
    (
        "pipeline",
        oracle.CREATE_PIPELINE,
        "/v1/pipelines",
        _pipeline,
        [
            ("unknown-field", "runId", "abc"),
            ("missing-service", "service", ...),
            ("null-required", "name", None),
            ("agent-null-sourceUrl", "sourceUrl", None),
            ("bad-enum-state", "state", "Running"),
            ("tasks-not-array", "tasks", {"name": "t"}),
            ("task-unknown-field", "tasks.0.status", "ok"),
            ("task-missing-name", "tasks.0.name", ...),
            ("wrong-type-concurrency", "concurrency", "3"),
        ],
    ),
    (
        "addLineage",
        oracle.ADD_LINEAGE,
        "/v1/lineage",
        _lineage,
        [
            ("top-level-description", "description", "spark lineage"),
            ("edge-unknown-field", "edge.weight", 1),
            ("missing-toEntity", "edge.toEntity", ...),
            ("ref-missing-type", "edge.fromEntity.type", ...),
            ("ref-id-not-uuid", "edge.fromEntity.id", "orders"),
            ("ref-unknown-field", "edge.toEntity.kind", "table"),
            ("bad-enum-source", "edge.lineageDetails.source", "Spark"),
            ("null-optional-sqlQuery", "edge.lineageDetails.sqlQuery", None),
            ("columns-lineage-not-array", "edge.lineageDetails.columnsLineage", {}),
            ("edge-description", "edge.description", "written by the relay"),
        ],
    ),
    (
        "pipelineStatus",
        oracle.PIPELINE_STATUS,
        "/v1/pipelines/spark.nightly_etl/status",
        _status,
        [
            ("running", "executionStatus", "Running"),
            ("missing-timestamp", "timestamp", ...),
            ("timestamp-as-string", "timestamp", "1764150000000"),
            ("unknown-field", "runId", "x"),
            ("task-missing-status", "taskStatus.0.executionStatus", ...),
            ("task-unknown-field", "taskStatus.0.attempt", 2),
            ("task-bad-enum", "taskStatus.0.executionStatus", "Succeeded"),
            ("null-optional", "executionId", None),
        ],
    ),
    (
        "table",
        oracle.CREATE_TABLE,
        "/v1/tables",
        _table,
        [
            ("missing-columns", "columns", ...),
            ("column-bad-dataType", "columns.0.dataType", "LONGINT"),
            ("column-missing-dataType", "columns.1.dataType", ...),
            ("column-unknown-field", "columns.0.nullable", True),
            ("bad-tableType", "tableType", "Managed"),
            ("null-optional", "description", None),
        ],
    ),
    (
        "container",
        oracle.CREATE_CONTAINER,
        "/v1/containers",
        _container,
        [
            ("unknown-field", "bucket", "lake-bucket"),
            ("bad-fileFormat", "fileFormats", ["orc"]),
            ("dataModel-missing-columns", "dataModel.columns", ...),
            ("wrong-type-size", "size", "12kb"),
        ],
    ),
    (
        "openLineageBatch",
        oracle.OPENLINEAGE_BATCH,
        "/v1/openlineage/lineage/batch",
        _batch,
        [
            ("empty-events", "events", []),
            ("unknown-top-level-field", "source", "spark"),
            ("event-missing-schemaURL", "events.0.schemaURL", ...),
            ("event-bad-eventType", "events.0.eventType", "FINISHED"),
            ("event-unknown-field", "events.0.lineage", {}),
            ("event-runId-not-uuid", "events.0.run.runId", "run-1"),
            ("event-job-missing-name", "events.0.job.name", ...),
            (
                "custom-run-facet",
                "events.0.run.facets",
                {"spark_version": {"spark-version": "4.0"}},
            ),
        ],
    ),
]

PARAMS = [
    pytest.param(
        schema, path, base, variation, id=f"{case}-{variation[0] if variation else 'valid'}"
    )
    for case, schema, path, base, variations in CASES
    for variation in [None, *variations]
]


@pytest.fixture
async def context(mock: MockOpenMetadata, client: aiohttp.ClientSession) -> Context:
    async with client.put(
        f"{mock.url}/v1/services/pipelineServices", json=_pipeline_service({})
    ) as r:
        assert r.status == 201
    async with client.put(f"{mock.url}/v1/pipelines", json=_pipeline({})) as r:
        pipeline_id: str = (await r.json())["id"]
    orders, revenue = mock.entity("table", ORDERS), mock.entity("table", REVENUE)
    assert orders is not None and revenue is not None
    return {"orders": orders["id"], "revenue": revenue["id"], "pipeline": pipeline_id}


@pytest.mark.parametrize(("schema", "path", "base", "variation"), PARAMS)
async def test_mock_agrees_with_the_schemas(
    shared_dir: Path,
    mock: MockOpenMetadata,
    client: aiohttp.ClientSession,
    context: Context,
    schema: str,
    path: str,
    base: Callable[[Context], Body],
    variation: Variation | None,
) -> None:
    body = base(context)
    if variation is not None:
        body = _with(body, variation[1], variation[2])
    errors = oracle.schema_errors(shared_dir, schema, _strip_nulls(body))
    if body != _strip_nulls(body):
        # The server (and so the mock) treats null optionals as absent; the raw schemas do not.
        assert oracle.schema_errors(shared_dir, schema, body), "schemas should refuse raw nulls"
    method = "POST" if "openlineage" in path else "PUT"
    async with client.request(method, mock.url + path, json=body) as resp:
        status, answer = resp.status, await resp.read()
    if errors:
        assert status == 400, f"schemas refuse ({errors}) but the mock answered {status} {answer!r}"
    else:
        assert status in (200, 201), f"schemas accept but the mock answered {status} {answer!r}"


async def test_mock_responses_follow_the_schemas(
    shared_dir: Path, mock: MockOpenMetadata, client: aiohttp.ClientSession, context: Context
) -> None:
    """What the mock answers is itself valid per the schemas."""
    async with client.post(
        f"{mock.url}/v1/openlineage/lineage/batch", json=_batch(context)
    ) as resp:
        assert (
            oracle.schema_errors(shared_dir, oracle.OPENLINEAGE_RESPONSE, await resp.json()) == []
        )
    bad = {"events": [run_event(inputs=[{"namespace": "x", "name": "a.b"}])]}
    async with client.post(f"{mock.url}/v1/openlineage/lineage/batch", json=bad) as resp:
        body = await resp.json()
        assert body["failedEvents"]
        assert oracle.schema_errors(shared_dir, oracle.OPENLINEAGE_RESPONSE, body) == []
    async with client.put(f"{mock.url}/v1/lineage", json=_lineage(context)) as resp:
        assert resp.status == 200
    async with client.get(
        f"{mock.url}/v1/lineage/table/name/{quote(REVENUE, safe='')}?upstreamDepth=2"
    ) as resp:
        graph = await resp.json()
    assert graph["upstreamEdges"]
    assert oracle.schema_errors(shared_dir, oracle.ENTITY_LINEAGE, graph) == []
    for entity_path, schema in (
        (f"/v1/tables/name/{ORDERS}?fields=*", "entity/data/table.json"),
        ("/v1/pipelines/name/spark.nightly_etl?fields=*", "entity/data/pipeline.json"),
        ("/v1/containers/name/s3_lake.lake-bucket.events?fields=*", "entity/data/container.json"),
        ("/v1/services/pipelineServices/name/spark", "entity/services/pipelineService.json"),
    ):
        async with client.get(mock.url + entity_path) as resp:
            entity = await resp.json()
        assert oracle.schema_errors(shared_dir, schema, entity) == [], entity_path


@pytest.mark.parametrize(
    ("schema_file", "pointer", "ours"),
    [
        ("entity/data/table.json", "definitions/dataType/enum", "COLUMN_DATA_TYPES"),
        ("entity/data/table.json", "definitions/tableType/enum", "TABLE_TYPES"),
        ("entity/data/table.json", "definitions/fileFormat/enum", "TABLE_FILE_FORMATS"),
        ("entity/data/container.json", "definitions/fileFormat/enum", "CONTAINER_FILE_FORMATS"),
        ("entity/data/pipeline.json", "definitions/statusType/enum", "STATUS_TYPES"),
        (
            "entity/services/pipelineService.json",
            "definitions/pipelineServiceType/enum",
            "PIPELINE_SERVICE_TYPES",
        ),
        (
            "entity/services/databaseService.json",
            "definitions/databaseServiceType/enum",
            "DATABASE_SERVICE_TYPES",
        ),
        (
            "entity/services/storageService.json",
            "definitions/storageServiceType/enum",
            "STORAGE_SERVICE_TYPES",
        ),
        (
            "type/entityLineage.json",
            "definitions/lineageDetails/properties/source/enum",
            "LINEAGE_SOURCES",
        ),
        (
            "api/lineage/openlineage/openLineageRunEvent.json",
            "definitions/eventType/enum",
            "OPENLINEAGE_EVENT_TYPES",
        ),
    ],
)
def test_enums_match_the_schemas(
    shared_dir: Path, schema_file: str, pointer: str, ours: str
) -> None:
    node: Any = json.loads((shared_dir / "openmetadata-schemas" / schema_file).read_text())
    for key in pointer.split("/"):
        node = node[key]
    assert list(getattr(_models, ours)) == node


@pytest.mark.parametrize(
    ("model", "schema_file", "pointer"),
    [
        ("CREATE_PIPELINE_SERVICE", oracle.CREATE_PIPELINE_SERVICE, ""),
        ("CREATE_DATABASE_SERVICE", oracle.CREATE_DATABASE_SERVICE, ""),
        ("CREATE_STORAGE_SERVICE", oracle.CREATE_STORAGE_SERVICE, ""),
        ("CREATE_DATABASE", oracle.CREATE_DATABASE, ""),
        ("CREATE_DATABASE_SCHEMA", oracle.CREATE_DATABASE_SCHEMA, ""),
        ("CREATE_TABLE", oracle.CREATE_TABLE, ""),
        ("CREATE_CONTAINER", oracle.CREATE_CONTAINER, ""),
        ("CREATE_PIPELINE", oracle.CREATE_PIPELINE, ""),
        ("ADD_LINEAGE", oracle.ADD_LINEAGE, ""),
        ("ENTITIES_EDGE", "type/entityLineage.json", "definitions/entitiesEdge"),
        ("LINEAGE_DETAILS", "type/entityLineage.json", "definitions/lineageDetails"),
        ("COLUMN_LINEAGE", "type/entityLineage.json", "definitions/columnLineage"),
        ("ENTITY_REFERENCE", "type/entityReference.json", ""),
        ("TAG_LABEL", "type/tagLabel.json", ""),
        ("COLUMN", "entity/data/table.json", "definitions/column"),
        ("TABLE_CONSTRAINT", "entity/data/table.json", "definitions/tableConstraint"),
        ("CONTAINER_DATA_MODEL", "entity/data/container.json", "definitions/containerDataModel"),
        ("TASK", "entity/data/pipeline.json", "definitions/task"),
        ("TASK_STATUS", "entity/data/pipeline.json", "definitions/taskStatus"),
        ("PIPELINE_STATUS", "entity/data/pipeline.json", "definitions/pipelineStatus"),
        ("OPENLINEAGE_RUN_EVENT", oracle.OPENLINEAGE_EVENT, ""),
        ("OPENLINEAGE_BATCH", oracle.OPENLINEAGE_BATCH, ""),
    ],
)
def test_models_have_the_schemas_fields(
    shared_dir: Path, model: str, schema_file: str, pointer: str
) -> None:
    """Same field names, same required fields, closed exactly where the schema is."""
    node: Any = json.loads((shared_dir / "openmetadata-schemas" / schema_file).read_text())
    for key in filter(None, pointer.split("/")):
        node = node[key]
    ours = getattr(_models, model, None) or getattr(_models_openlineage, model)
    assert sorted(ours.fields) == sorted(node["properties"])
    assert ours.required == frozenset(node.get("required", ()))
    assert ours.closed == (node.get("additionalProperties") is False)
