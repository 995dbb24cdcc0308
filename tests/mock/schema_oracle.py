"""OpenMetadata's own JSON Schemas as the oracle for what its server accepts.

The schemas live in the read-only reference folder; every file is registered under the URL its
path gives (``https://open-metadata.org/schema/<path>``) and under its own ``$id``, so the
relative ``$ref``s resolve inside that folder.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker  # type: ignore[import-untyped]  # no stubs in dev deps
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

BASE = "https://open-metadata.org/schema/"

# Formats the server's Java types really parse (a UUID field refuses "abc"); the rest
# ("uri", "url", ...) are documentation only.
_FORMATS = FormatChecker(formats=["uuid"])

CREATE_PIPELINE_SERVICE = "api/services/createPipelineService.json"
CREATE_DATABASE_SERVICE = "api/services/createDatabaseService.json"
CREATE_STORAGE_SERVICE = "api/services/createStorageService.json"
CREATE_DATABASE = "api/data/createDatabase.json"
CREATE_DATABASE_SCHEMA = "api/data/createDatabaseSchema.json"
CREATE_TABLE = "api/data/createTable.json"
CREATE_CONTAINER = "api/data/createContainer.json"
CREATE_PIPELINE = "api/data/createPipeline.json"
ADD_LINEAGE = "api/lineage/addLineage.json"
PIPELINE_STATUS = "entity/data/pipeline.json#/definitions/pipelineStatus"
OPENLINEAGE_BATCH = "api/lineage/openlineage/openLineageBatchRequest.json"
OPENLINEAGE_EVENT = "api/lineage/openlineage/openLineageRunEvent.json"
OPENLINEAGE_RESPONSE = "api/lineage/openlineage/openLineageResponse.json"
ENTITY_LINEAGE = "type/entityLineage.json"


@cache
def _registry(root: Path) -> Registry:
    resources: list[tuple[str, Resource[Any]]] = []
    for path in sorted(root.rglob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(contents, default_specification=DRAFT7)
        relative = path.relative_to(root).as_posix()
        resources.append((BASE + relative, resource))
        if isinstance(contents, dict) and isinstance(contents.get("$id"), str):
            resources.append((contents["$id"], resource))
    registry: Registry = Registry().with_resources(resources)
    return registry


def schema_errors(shared_dir: Path, schema: str, body: Any) -> list[str]:
    """Messages of every violation of ``schema`` (a path under the schema root, with an
    optional ``#fragment``) by ``body``; empty when the schemas accept it."""
    root = shared_dir / "openmetadata-schemas"
    validator = Draft7Validator(
        {"$ref": BASE + schema}, registry=_registry(root), format_checker=_FORMATS
    )
    return [error.message for error in validator.iter_errors(body)]


_COLLECTIONS = {
    "/api/v1/services/pipelineServices": CREATE_PIPELINE_SERVICE,
    "/api/v1/services/databaseServices": CREATE_DATABASE_SERVICE,
    "/api/v1/services/storageServices": CREATE_STORAGE_SERVICE,
    "/api/v1/databases": CREATE_DATABASE,
    "/api/v1/databaseSchemas": CREATE_DATABASE_SCHEMA,
    "/api/v1/tables": CREATE_TABLE,
    "/api/v1/containers": CREATE_CONTAINER,
    "/api/v1/pipelines": CREATE_PIPELINE,
    "/api/v1/lineage": ADD_LINEAGE,
    "/api/v1/openlineage/lineage": OPENLINEAGE_EVENT,
    "/api/v1/openlineage/lineage/batch": OPENLINEAGE_BATCH,
}
# How OpenMetadata words a refused body (Jackson and bean validation), as opposed to a
# well-formed body it cannot use (unknown ids, task or column names, unresolved datasets).
_VALIDATION_MARKERS = (
    "Unrecognized field",
    "Cannot deserialize",
    " must not be null]",
    " must match ",
    " size must be between ",
    "Request body must not be null",
    "Unable to process JSON",
)


def schema_for(method: str, path: str) -> str | None:
    """The request schema of a body-carrying API call, or None."""
    if method not in ("PUT", "POST"):
        return None
    if method == "PUT" and path.startswith("/api/v1/pipelines/") and path.endswith("/status"):
        return PIPELINE_STATUS
    return _COLLECTIONS.get(path)


def strip_nulls(body: Any) -> Any:
    """OpenMetadata treats an explicit null as an absent field."""
    if isinstance(body, dict):
        return {key: strip_nulls(value) for key, value in body.items() if value is not None}
    if isinstance(body, list):
        return [strip_nulls(value) for value in body]
    return body


def disagreements(shared_dir: Path, recorded: list[dict[str, Any]]) -> list[str]:
    """Requests the mock judged differently from the schemas (faults and auth failures aside)."""
    found = []
    for request in recorded:
        schema = schema_for(request["method"], request["path"])
        if schema is None or request["fault"] is not None or request["status"] in (0, 401):
            continue
        errors = schema_errors(shared_dir, schema, strip_nulls(request["body"]))
        message = request["error"] or ""
        refused = request["status"] == 400 and any(m in message for m in _VALIDATION_MARKERS)
        if bool(errors) != refused:
            found.append(
                f"{request['method']} {request['path']} -> {request['status']} {message!r}; "
                f"schemas: {errors or 'valid'}"
            )
    return found
