"""Create requests for `auto_create = true`: a missing table (with its database and schema
under the rule's service) or container, built from the dataset's `schema` facet."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ._datasets import Lookup
from ._model import Dataset, Field
from ._names import build_fqn

__all__ = ["column_type", "container_request", "table_requests"]

_TYPES = {
    "string": "STRING", "varchar": "VARCHAR", "char": "CHAR", "boolean": "BOOLEAN",
    "bool": "BOOLEAN", "byte": "TINYINT", "tinyint": "TINYINT", "short": "SMALLINT",
    "smallint": "SMALLINT", "int": "INT", "integer": "INT", "long": "BIGINT",
    "bigint": "BIGINT", "float": "FLOAT", "real": "FLOAT", "double": "DOUBLE",
    "decimal": "DECIMAL", "numeric": "NUMERIC", "date": "DATE", "timestamp": "TIMESTAMP",
    "timestamp_ntz": "TIMESTAMP", "timestamp_ltz": "TIMESTAMPZ", "binary": "BINARY",
    "array": "ARRAY", "map": "MAP", "struct": "STRUCT", "interval": "INTERVAL",
}  # fmt: skip
_WORD = re.compile(r"[a-z_]+")
_MAX_CONTAINER_NAME = 256


def column_type(spark_type: str) -> str:
    """OpenMetadata's `dataType` for a Spark / OpenLineage schema type (`UNKNOWN` if none)."""
    match = _WORD.match(spark_type.strip().lower())
    return _TYPES.get(match.group(0), "UNKNOWN") if match else "UNKNOWN"


def _column(field: Field) -> dict[str, Any]:
    data_type = column_type(field.type)
    column: dict[str, Any] = {"name": field.name, "dataType": data_type}
    if field.type:
        column["dataTypeDisplay"] = field.type
    if data_type == "ARRAY":  # the server refuses an ARRAY without its element type
        column["arrayDataType"] = "UNKNOWN"
    return column


def table_requests(lookup: Lookup, dataset: Dataset) -> list[tuple[str, dict[str, Any]]]:
    """(collection, create-or-update body) for database, schema and table, parents first.

    Empty when the lookup does not name the service, database and schema (no rule, or a
    rule without the missing parts): nothing can be created without guessing.
    """
    if lookup.kind != "table" or not lookup.fqn or lookup.rule is None:
        return []
    service, database, schema = lookup.rule.service, lookup.database, lookup.schema
    table = (dataset.table_symlink.name if dataset.table_symlink else dataset.name).split(".")[-1]
    table_request: dict[str, Any] = {
        "name": table,
        "databaseSchema": build_fqn(service, database, schema),
        "columns": [_column(f) for f in dataset.fields],
    }
    return [
        ("databases", {"name": database, "service": service}),
        ("databaseSchemas", {"name": schema, "database": build_fqn(service, database)}),
        ("tables", table_request),
    ]


def container_request(lookup: Lookup, dataset: Dataset) -> dict[str, Any] | None:
    """The container create body (named by its path, `fullPath` = the dataset URI)."""
    if lookup.kind != "container" or not lookup.service:
        return None
    path = lookup.full_path.partition("://")[2].strip("/").replace("::", "_") or "root"
    if len(path) > _MAX_CONTAINER_NAME:
        digest = hashlib.sha256(path.encode()).hexdigest()[:8]
        path = f"{path[: _MAX_CONTAINER_NAME - 9]}_{digest}"
    request: dict[str, Any] = {
        "name": path,
        "service": lookup.service,
        "fullPath": lookup.full_path,
    }
    if dataset.fields:
        request["dataModel"] = {"columns": [_column(f) for f in dataset.fields]}
    return request
