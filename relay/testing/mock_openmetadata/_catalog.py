"""Catalog seeding: load services, databases, schemas, tables, containers and pipelines.

A catalog is a JSON object whose keys are REST collections and whose values are lists of the
same create-request bodies the API takes, e.g.::

    {
      "databaseServices": [{"name": "hive_prod", "serviceType": "Hive"}],
      "databases": [{"name": "warehouse", "service": "hive_prod"}],
      "databaseSchemas": [{"name": "sales", "database": "hive_prod.warehouse"}],
      "tables": [{"name": "orders", "databaseSchema": "hive_prod.warehouse.sales",
                  "columns": [{"name": "id", "dataType": "BIGINT"}]}],
      "storageServices": [{"name": "s3_prod", "serviceType": "S3"}],
      "containers": [{"name": "lake", "service": "s3_prod", "fullPath": "s3://lake"},
                     {"name": "events", "service": "s3_prod", "parentFqn": "s3_prod.lake",
                      "fullPath": "s3://lake/events"}],
      "pipelineServices": [{"name": "spark", "serviceType": "Spark"}],
      "pipelines": [{"name": "nightly", "service": "spark"}]
    }

Two catalog-only keys are allowed on any item: ``id`` pins the entity's id, and on containers
``parentFqn`` names the parent container (the API needs its id, unknown before seeding).
``users`` and ``teams`` (``[{"name": "jdoe"}]``, a team with ``"teamType"``, default
``Group``) are the principals that can own entities, e.g. through an OpenLineage job's
``ownership`` facet; the mock serves no endpoints for them.
Items are validated exactly like API bodies; an invalid item stops loading with a message
naming the collection and position.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._errors import ApiError
from ._store import KINDS_BY_COLLECTION, Store
from ._validation import Invalid

# Parents before children.
LOAD_ORDER = (
    "services/databaseServices",
    "services/storageServices",
    "services/pipelineServices",
    "databases",
    "databaseSchemas",
    "tables",
    "containers",
    "pipelines",
)
_ALIASES = {
    "databaseServices": "services/databaseServices",
    "storageServices": "services/storageServices",
    "pipelineServices": "services/pipelineServices",
}


_PRINCIPALS = {"users": "user", "teams": "team"}


class CatalogError(ValueError):
    """A catalog file or item that cannot be loaded; the message says which and why."""


def read_catalog(path: str | Path) -> dict[str, Any]:
    """Parse a catalog file (JSON)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"cannot read catalog file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise CatalogError(f"catalog file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogError(f"catalog file {path} must hold a JSON object of collections")
    return data


def load_catalog(store: Store, catalog: Mapping[str, Any]) -> int:
    """Create every item of the catalog in the store; returns how many entities were loaded."""
    collections = {_ALIASES.get(key, key): value for key, value in catalog.items()}
    unknown = sorted(set(collections) - set(LOAD_ORDER) - set(_PRINCIPALS))
    if unknown:
        known = sorted(set(_ALIASES) | set(LOAD_ORDER) - set(_ALIASES.values()) | set(_PRINCIPALS))
        raise CatalogError(f"unknown catalog collection(s) {unknown}; known: {known}")
    loaded = _load_principals(store, collections)
    for collection in LOAD_ORDER:
        items = collections.get(collection) or []
        if not isinstance(items, list):
            raise CatalogError(f"catalog collection {collection!r} must be a list")
        kind = KINDS_BY_COLLECTION[collection]
        for position, item in enumerate(items):
            where = f"catalog {collection}[{position}]"
            if not isinstance(item, dict):
                raise CatalogError(f"{where} must be an object")
            body = dict(item)
            entity_id = body.pop("id", None)
            parent_fqn = body.pop("parentFqn", None) if kind.type == "container" else None
            try:
                if parent_fqn is not None:
                    parent = store.get_by_fqn("container", parent_fqn)
                    body["parent"] = {"id": parent["id"], "type": "container"}
                store.put(kind.type, body, entity_id=entity_id)
            except Invalid as exc:
                raise CatalogError(f"{where} is invalid: {exc}") from exc
            except ApiError as exc:
                raise CatalogError(f"{where} cannot be created: {exc.message}") from exc
            loaded += 1
    return loaded


def _load_principals(store: Store, collections: Mapping[str, Any]) -> int:
    loaded = 0
    for collection, kind in _PRINCIPALS.items():
        items = collections.get(collection) or []
        if not isinstance(items, list):
            raise CatalogError(f"catalog collection {collection!r} must be a list")
        for position, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str) or not name:
                raise CatalogError(f"catalog {collection}[{position}] needs a non-empty name")
            # Only Group teams own entities (OpenMetadata's rule); other teams are left out.
            if kind == "team" and item.get("teamType", "Group") != "Group":
                continue
            store.add_principal(kind, name, item.get("id"))
            loaded += 1
    return loaded
