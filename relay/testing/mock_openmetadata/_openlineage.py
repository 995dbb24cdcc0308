"""OpenMetadata's native OpenLineage endpoints: ``POST /v1/openlineage/lineage[/batch]``.

Semantics follow OpenMetadata's ``OpenLineageResource`` and mapper:
- only event types in ``event_type_filter`` (default COMPLETE) with at least one input and
  one output are processed; others are skipped (success, no edges);
- each dataset resolves to a table: name from the first ``symlinks`` identifier, else the
  dataset name; its last two dot-parts are schema and table; looked up first under the service
  mapped from the namespace (exact, then prefix), then under the ``datasource`` facet's name,
  then by FQN suffix ``schema.table``; with ``auto_create_entities`` a missing table is created
  in the first schema of that name (columns from the ``schema`` facet);
- the pipeline is the parent job (``run.facets.parent.job``) if any, else the event's job,
  named ``<namespace with non [A-Za-z0-9_-] as _>-<name>`` under ``default_pipeline_service``
  (created when allowed and that service exists); edges are written without it otherwise;
- one edge per (input, output) with ``source: "OpenLineage"`` and column lineage from the
  output's ``columnLineage`` facet;
- an event whose datasets did not resolve and that wrote no edge is a failure (400 for a
  single event); a batch answers 200 with ``failedEvents`` unless every event failed (400).

The settings and the mock's *event failures* live in ``_ol_settings.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import _fqn
from ._errors import ApiError
from ._lineage import LineageGraph
from ._ol_settings import EventFailure, OpenLineageSettings
from ._ownership import facet_owners, new_owners
from ._store import Store, reference

OPENLINEAGE_USER = "openlineage"


@dataclass(slots=True)
class Outcome:
    """What processing one event did."""

    status: str  # success | partial | failure | skipped | injected
    edges: int = 0
    unresolved: int = 0
    reason: str = ""
    retriable: bool = False

    @property
    def message(self) -> str:
        if self.status == "injected":
            return f"Error processing event: {self.reason}"
        if self.status == "failure":
            return f"No lineage edges created: {self.unresolved} dataset(s) could not be resolved"
        if self.status == "partial":
            return (
                f"Created {self.edges} lineage edge(s); "
                f"{self.unresolved} dataset(s) could not be resolved"
            )
        if self.edges:
            return f"Created {self.edges} lineage edge(s)"
        return "Event processed, no lineage edges created"


_DATA_TYPES = (
    ("STRING", "VARCHAR"),
    ("VARCHAR", "VARCHAR"),
    ("CHAR", "VARCHAR"),
    ("INT", "INT"),
    ("LONG", "BIGINT"),
    ("DOUBLE", "DOUBLE"),
    ("FLOAT", "DOUBLE"),
    ("DECIMAL", "DECIMAL"),
    ("NUMERIC", "DECIMAL"),
    ("BOOL", "BOOLEAN"),
    ("DATE", "DATE"),
    ("TIMESTAMP", "TIMESTAMP"),
    ("TIME", "TIME"),
    ("ARRAY", "ARRAY"),
    ("MAP", "MAP"),
    ("STRUCT", "STRUCT"),
    ("BINARY", "BINARY"),
    ("BYTES", "BINARY"),
    ("JSON", "JSON"),
)


def _data_type(ol_type: str | None) -> str:
    upper = (ol_type or "").upper()
    for needle, data_type in _DATA_TYPES:
        if needle in upper:
            return data_type
    return "UNKNOWN"


class OpenLineageProcessor:
    """Turns OpenLineage RunEvents into lineage edges in the mock's catalog."""

    def __init__(self, store: Store, lineage: LineageGraph, settings: OpenLineageSettings) -> None:
        self._store = store
        self._lineage = lineage
        self.settings = settings
        self.failures: list[EventFailure] = []
        self._failure_used: list[int] = []
        # What resolution derives from the catalog and the settings, valid while neither
        # changed (every entity write bumps the store's generation; settings are replaced,
        # never mutated): tables by FQN suffix, datasets and jobs to their references.
        self._suffix_cache: dict[str, list[dict[str, Any]]] = {}
        self._table_cache: dict[tuple[Any, ...], dict[str, Any] | None] = {}
        self._pipeline_cache: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._cache_generation = -1
        self._cache_settings: OpenLineageSettings | None = None

    def _check_caches(self) -> None:
        if (
            self._cache_generation != self._store.generation
            or self._cache_settings is not self.settings
        ):
            self._suffix_cache.clear()
            self._table_cache.clear()
            self._pipeline_cache.clear()
            self._cache_generation = self._store.generation
            self._cache_settings = self.settings

    def set_failures(self, failures: Sequence[EventFailure]) -> None:
        self.failures = list(failures)
        self._failure_used = [0] * len(self.failures)

    def _injected(self, event: Mapping[str, Any]) -> EventFailure | None:
        for index, failure in enumerate(self.failures):
            if failure.times is not None and self._failure_used[index] >= failure.times:
                continue
            if failure.matches(event):
                self._failure_used[index] += 1
                return failure
        return None

    def process(self, event: dict[str, Any]) -> Outcome:
        injected = self._injected(event)
        if injected is not None:
            return Outcome("injected", reason=injected.reason, retriable=injected.retriable)
        event_type = event.get("eventType") or "COMPLETE"
        inputs, outputs = event.get("inputs") or [], event.get("outputs") or []
        if event_type not in self.settings.event_type_filter or not inputs or not outputs:
            return Outcome("skipped")
        unresolved: set[str] = set()
        resolved_inputs = self._resolve_all(inputs, unresolved)
        resolved_outputs = self._resolve_all(outputs, unresolved)
        pipeline = self._resolve_pipeline(event)
        if pipeline is not None and self._store.server_v2:
            pipeline = self._own(event, pipeline)
        edges = 0
        for output, output_ref in resolved_outputs:
            column_lineage = self._column_lineage(output, resolved_inputs, output_ref)
            for _, input_ref in resolved_inputs:
                prefix = input_ref["fullyQualifiedName"] + "."
                relevant = [
                    {
                        **item,
                        "fromColumns": [c for c in item["fromColumns"] if c.startswith(prefix)],
                    }
                    for item in column_lineage
                    if any(c.startswith(prefix) for c in item["fromColumns"])
                ]
                details: dict[str, Any] = {
                    "source": "OpenLineage",
                    "description": _description(event),
                }
                if pipeline is not None:
                    details["pipeline"] = {"id": pipeline["id"], "type": "pipeline"}
                sql = ((event.get("job") or {}).get("facets") or {}).get("sql") or {}
                if sql.get("query"):
                    details["sqlQuery"] = sql["query"]
                if relevant:
                    details["columnsLineage"] = relevant
                edge = {
                    "fromEntity": {"id": input_ref["id"], "type": input_ref["type"]},
                    "toEntity": {"id": output_ref["id"], "type": output_ref["type"]},
                    "lineageDetails": details,
                }
                try:
                    key = self._lineage.upsert(edge, OPENLINEAGE_USER)
                except ApiError:
                    continue  # OpenMetadata logs and skips an edge it cannot write
                stamp = _event_time_ms(event)
                if stamp is not None:
                    self._lineage.edges[key]["lineageDetails"].update(
                        createdAt=stamp, updatedAt=stamp
                    )
                edges += 1
        if unresolved:
            return Outcome("partial" if edges else "failure", edges, len(unresolved))
        return Outcome("success", edges)

    def _own(self, event: dict[str, Any], pipeline: dict[str, Any]) -> dict[str, Any]:
        """Apply the job's ``ownership`` facet to the pipeline (2.0; see ``_ownership``)."""
        owners = facet_owners(event)
        if not owners:
            return pipeline
        merged = new_owners(
            owners,
            pipeline.get("owners") or [],
            self._store.principals,
            self.settings.ownership_update_mode,
        )
        if merged is None:
            return pipeline
        patch = [{"op": "add", "path": "/owners", "value": merged}]
        updated, _ = self._store.patch("pipeline", pipeline, patch, OPENLINEAGE_USER)
        return updated

    def _resolve_all(
        self, datasets: list[dict[str, Any]], unresolved: set[str]
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        resolved = []
        for dataset in datasets:
            ref = self._resolve_table(dataset)
            if ref is None:
                unresolved.add(f"{dataset.get('namespace')}/{dataset.get('name')}")
            else:
                resolved.append((dataset, ref))
        return resolved

    def _resolve_table(self, dataset: dict[str, Any]) -> dict[str, Any] | None:
        """The table a dataset names (a shared reference: callers only read it)."""
        facets = dataset.get("facets") or {}
        identifiers = (facets.get("symlinks") or {}).get("identifiers") or []
        table_name = identifiers[0]["name"] if identifiers else dataset["name"]
        datasource = (facets.get("datasource") or {}).get("name")
        # Everything the lookups below read from the event. The schema facet only matters
        # when a table is auto-created, and creating one bumps the generation.
        key = (table_name, dataset.get("namespace"), datasource)
        self._check_caches()
        if key in self._table_cache:
            return self._table_cache[key]
        found = self._lookup_table(table_name, dataset.get("namespace"), datasource, facets)
        if self._cache_generation == self._store.generation:  # nothing was created meanwhile
            self._table_cache[key] = found
        return found

    def _lookup_table(
        self, table_name: str, namespace: str | None, datasource: Any, facets: dict[str, Any]
    ) -> dict[str, Any] | None:
        parts = table_name.split(".")
        if len(parts) < 2:
            return None
        schema, table = parts[-2], parts[-1]
        suffix = f"{schema}.{table}"
        # Only tables whose FQN ends with "<schema>.<table>" can match any of the three
        # lookups (OpenMetadata's SQL LIKE patterns); plain string tests keep this fast.
        tables = self._tables_ending_with(suffix)
        candidates: list[str] = []
        service = self._mapped_service(namespace)
        if service is not None:
            candidates.append(f"{service}.")
        if datasource:
            candidates.append(f"{datasource}.")
        for prefix in candidates:
            for entity in tables:
                fqn = entity["fullyQualifiedName"]
                if fqn.startswith(prefix) and len(fqn) > len(prefix) + len(suffix):
                    return reference(entity, "table")
        if tables:
            return reference(tables[0], "table")
        if not self.settings.auto_create_entities:
            return None
        return self._create_table(schema, table, facets)

    def _tables_ending_with(self, suffix: str) -> list[dict[str, Any]]:
        self._check_caches()
        found = self._suffix_cache.get(suffix)
        if found is None:
            found = [
                entity
                for entity in self._store.entities("table")
                if entity["fullyQualifiedName"].endswith(suffix)
            ]
            self._suffix_cache[suffix] = found
        return found

    def _mapped_service(self, namespace: str | None) -> str | None:
        mapping = self.settings.namespace_to_service
        if namespace is None or not mapping:
            return None
        if namespace in mapping:
            return mapping[namespace]
        for key, service in mapping.items():
            if namespace.startswith(key) or key.startswith(namespace):
                return service
        return None

    def _create_table(
        self, schema: str, table: str, facets: dict[str, Any]
    ) -> dict[str, Any] | None:
        schemas = [
            entity
            for entity in self._store.entities("databaseSchema")
            if entity["fullyQualifiedName"].endswith(schema)
        ]
        if not schemas:
            return None
        fields = (facets.get("schema") or {}).get("fields") or []
        request: dict[str, Any] = {
            "name": table,
            "databaseSchema": schemas[0]["fullyQualifiedName"],
            "columns": [
                {
                    "name": item["name"],
                    "dataType": _data_type(item.get("type")),
                    "dataTypeDisplay": item.get("type"),
                    **({"description": item["description"]} if item.get("description") else {}),
                }
                for item in fields
                if item.get("name")
            ],
        }
        description = (facets.get("documentation") or {}).get("description")
        if description:
            request["description"] = description
        try:
            entity, _ = self._store.put("table", request, OPENLINEAGE_USER)
        except (ApiError, ValueError):
            return None
        return reference(entity, "table")

    def _resolve_pipeline(self, event: dict[str, Any]) -> dict[str, Any] | None:
        parent_job = (((event.get("run") or {}).get("facets") or {}).get("parent") or {}).get("job")
        job = parent_job if parent_job and parent_job.get("name") else event.get("job") or {}
        if not job.get("name"):
            return None
        key = (str(job.get("namespace") or ""), str(job["name"]))
        self._check_caches()
        if key in self._pipeline_cache:
            return self._pipeline_cache[key]
        found = self._find_pipeline(job)
        if self._cache_generation == self._store.generation:  # nothing was created meanwhile
            self._pipeline_cache[key] = found
        return found

    def _find_pipeline(self, job: dict[str, Any]) -> dict[str, Any] | None:
        namespace = job.get("namespace") or ""
        name = (
            f"{re.sub(r'[^a-zA-Z0-9_-]', '_', namespace)}-{job['name']}"
            if namespace
            else job["name"]
        )
        service = self.settings.default_pipeline_service
        found = self._store.find_by_fqn("pipeline", _fqn.build(service, name))
        if found is not None:
            return found
        if not self.settings.auto_create_entities:
            return None
        if self._store.find_by_fqn("pipelineService", service) is None:
            return None
        try:
            entity, _ = self._store.put(
                "pipeline",
                {
                    "name": name,
                    "service": _fqn.quote_name(service),
                    "description": "Pipeline created from OpenLineage event",
                },
                OPENLINEAGE_USER,
            )
        except (ApiError, ValueError):
            return None  # OpenMetadata logs and writes the edges without a pipeline
        return entity

    @staticmethod
    def _column_lineage(
        output: dict[str, Any],
        inputs: list[tuple[dict[str, Any], dict[str, Any]]],
        output_ref: dict[str, Any],
    ) -> list[dict[str, Any]]:
        facet = (output.get("outputFacets") or {}).get("columnLineage") or (
            output.get("facets") or {}
        ).get("columnLineage")
        if not facet or not facet.get("fields"):
            return []
        input_fqns = {
            f"{dataset['namespace']}/{dataset['name']}": ref["fullyQualifiedName"]
            for dataset, ref in inputs
        }
        result = []
        for column, info in facet["fields"].items():
            from_columns = []
            for source in info.get("inputFields") or []:
                fqn = input_fqns.get(f"{source.get('namespace')}/{source.get('name')}")
                if fqn is not None:
                    from_columns.append(f"{fqn}.{source.get('field')}")
            if from_columns:
                item: dict[str, Any] = {
                    "fromColumns": from_columns,
                    "toColumn": f"{output_ref['fullyQualifiedName']}.{column}",
                }
                if info.get("transformationDescription"):
                    item["function"] = info["transformationDescription"]
                result.append(item)
        return result


def _description(event: dict[str, Any]) -> str:
    job = event.get("job") or {}
    text = f"Lineage from OpenLineage event for job: {job.get('namespace')}/{job.get('name')}"
    run_id = (event.get("run") or {}).get("runId")
    return f"{text} (run: {run_id})" if run_id else text


def _event_time_ms(event: dict[str, Any]) -> int | None:
    try:
        return int(datetime.fromisoformat(event["eventTime"]).timestamp() * 1000)
    except (KeyError, TypeError, ValueError):
        return None


def single_response(outcome: Outcome) -> tuple[int, dict[str, Any]]:
    """HTTP status and body for ``POST /v1/openlineage/lineage``."""
    if outcome.status == "injected":
        # A retriable failure looks like the server's exception path (500); a permanent one
        # like an event it could not use (400).
        status = 500 if outcome.retriable else 400
        return status, {"status": "failure", "message": outcome.message, "lineageEdgesCreated": 0}
    body_status = {"partial": "partial_success", "failure": "failure"}.get(
        outcome.status, "success"
    )
    body = {"status": body_status, "message": outcome.message, "lineageEdgesCreated": outcome.edges}
    return (400 if body_status == "failure" else 200), body


def batch_response(outcomes: list[Outcome]) -> tuple[int, dict[str, Any]]:
    """HTTP status and body for ``POST /v1/openlineage/lineage/batch``."""
    successful = partial = skipped = edges = 0
    failed_events: list[dict[str, Any]] = []
    for index, outcome in enumerate(outcomes):
        edges += outcome.edges
        if outcome.status in ("failure", "injected"):
            failed_events.append(
                {"index": index, "reason": outcome.message, "retriable": outcome.retriable}
            )
        elif outcome.status == "partial":
            partial += 1
        elif outcome.status == "skipped" or not outcome.edges:
            skipped += 1
        else:
            successful += 1
    failed = len(failed_events)
    received = len(outcomes)
    status = "success"
    if failed or partial:
        status = "partial_success" if successful + partial else "failure"
    body: dict[str, Any] = {
        "status": status,
        "message": (
            f"Processed {received} events: {successful} successful, {partial} partial, "
            f"{failed} failed, {skipped} skipped. Created {edges} lineage edges."
        ),
        # 1.13's summary has no "partial": a partial event counts as successful there.
        "summary": {
            "received": received,
            "successful": successful + partial,
            "failed": failed,
            "skipped": skipped,
        },
        "lineageEdgesCreated": edges,
    }
    if failed_events:
        body["failedEvents"] = failed_events
    all_failed = received > 0 and failed == received
    return (400 if all_failed else 200), body
