"""The in-memory catalog: entities created with PUT/POST, found by FQN or id.

Create-or-update follows OpenMetadata: the first PUT creates (201, ``entityCreated``), a later
PUT with the same FQN updates in place (200, ``entityUpdated`` and a version bump, or
``entityNoChange``), and the ``id`` never changes. Each entity keeps the create request it was
built from, so an update is "the old request overlaid with the new one".
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import _fqn, _models, _models_v2
from ._errors import ApiError, not_found
from ._jsonpatch import apply_patch
from ._validation import Obj, strip_nulls, validate

DEFAULT_USER = "ingestion-bot"


@dataclass(frozen=True, slots=True)
class EntityKind:
    """One entity type: its REST collection, create model and parent."""

    type: str
    collection: str
    model: Obj
    parent_field: str | None = None
    parent_type: str | None = None
    # Fields OpenMetadata only returns when asked for with ``?fields=``.
    optional_fields: frozenset[str] = frozenset({"owners", "tags", "followers"})
    # The parent's fields a child entity carries too (a table: its database, service and
    # serviceType; most: the serviceType of the service it is under).
    inherits: tuple[str, ...] = ("serviceType",)


KINDS: dict[str, EntityKind] = {
    kind.type: kind
    for kind in (
        EntityKind("databaseService", "services/databaseServices", _models.CREATE_DATABASE_SERVICE),
        EntityKind("pipelineService", "services/pipelineServices", _models.CREATE_PIPELINE_SERVICE),
        EntityKind("storageService", "services/storageServices", _models.CREATE_STORAGE_SERVICE),
        EntityKind("database", "databases", _models.CREATE_DATABASE, "service", "databaseService"),
        EntityKind(
            "databaseSchema",
            "databaseSchemas",
            _models.CREATE_DATABASE_SCHEMA,
            "database",
            "database",
            inherits=("service", "serviceType"),
        ),
        EntityKind(
            "table",
            "tables",
            _models.CREATE_TABLE,
            "databaseSchema",
            "databaseSchema",
            inherits=("database", "service", "serviceType"),
        ),
        EntityKind(
            "container",
            "containers",
            _models.CREATE_CONTAINER,
            "service",
            "storageService",
            frozenset({"owners", "tags", "followers", "dataModel", "children"}),
        ),
        EntityKind(
            "pipeline",
            "pipelines",
            _models.CREATE_PIPELINE,
            "service",
            "pipelineService",
            frozenset({"owners", "tags", "followers", "tasks", "pipelineStatus"}),
        ),
    )
}
KINDS_BY_COLLECTION = {kind.collection: kind for kind in KINDS.values()}


def now_ms() -> int:
    return int(time.time() * 1000)


def reference(entity: dict[str, Any], entity_type: str) -> dict[str, Any]:
    """The ``EntityReference`` of an entity, as OpenMetadata embeds it."""
    ref = {
        "id": entity["id"],
        "type": entity_type,
        "name": entity["name"],
        "fullyQualifiedName": entity["fullyQualifiedName"],
        "deleted": False,
    }
    for key in ("displayName", "description", "href"):
        if key in entity:
            ref[key] = entity[key]
    return ref


def column_fqns(columns: list[dict[str, Any]]) -> Iterator[str]:
    """Every column FQN of a column tree (nested ``children`` included)."""
    for column in columns:
        yield column["fullyQualifiedName"]
        yield from column_fqns(column.get("children") or [])


def _with_column_fqns(columns: list[dict[str, Any]], parent_fqn: str) -> list[dict[str, Any]]:
    out = []
    for column in columns:
        column = dict(column)
        column["fullyQualifiedName"] = f"{parent_fqn}.{_fqn.quote_name(column['name'])}"
        column.setdefault("tags", [])
        if column.get("children"):
            column["children"] = _with_column_fqns(column["children"], column["fullyQualifiedName"])
        out.append(column)
    return out


class Store:
    """Entities by type and FQN, and by id."""

    def __init__(self, *, server_v2: bool = True) -> None:
        self.base_url = "http://127.0.0.1:8585/api"
        # Which request models apply: OpenMetadata 2.x's or 1.13's.
        self.server_v2 = server_v2
        self.clear()

    def clear(self) -> None:
        # Bumped on every write, so readers can cache what they derive from the catalog.
        self.generation = getattr(self, "generation", 0) + 1
        self._by_fqn: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self._by_id: dict[str, tuple[str, dict[str, Any]]] = {}
        self._requests: dict[str, dict[str, Any]] = {}
        # pipeline id -> timestamp -> status
        self.statuses: dict[str, dict[int, dict[str, Any]]] = {}
        # ("user" | "team", lower-case name) -> reference: who can own entities
        self.principals: dict[tuple[str, str], dict[str, Any]] = {}

    def add_principal(self, kind: str, name: str, entity_id: str | None = None) -> None:
        """A user or team (the catalog's ``users`` / ``teams``) that can own entities."""
        self.principals[(kind, name.lower())] = {
            "id": entity_id or str(uuid.uuid4()),
            "type": kind,
            "name": name,
            "fullyQualifiedName": _fqn.quote_name(name),
            "deleted": False,
        }

    # -- reads -------------------------------------------------------------------------------

    def get_by_fqn(
        self, entity_type: str, fqn: str, *, include_deleted: bool = False
    ) -> dict[str, Any]:
        entity = self.find_by_fqn(entity_type, fqn, include_deleted=include_deleted)
        if entity is None:
            raise not_found(entity_type, fqn)
        return entity

    def find_by_fqn(
        self, entity_type: str, fqn: str, *, include_deleted: bool = False
    ) -> dict[str, Any] | None:
        entity = self._by_fqn[entity_type].get(fqn)
        if entity is None or (entity["deleted"] and not include_deleted):
            return None
        return entity

    def get_by_id(
        self, entity_type: str, entity_id: str, *, include_deleted: bool = False
    ) -> dict[str, Any]:
        found = self._by_id.get(entity_id)
        if (
            found is None
            or found[0] != entity_type
            or (found[1]["deleted"] and not include_deleted)
        ):
            raise not_found(entity_type, entity_id)
        return found[1]

    def type_of(self, entity_id: str) -> str | None:
        found = self._by_id.get(entity_id)
        return found[0] if found else None

    def entities(self, entity_type: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        return [
            entity
            for entity in self._by_fqn[entity_type].values()
            if include_deleted or not entity["deleted"]
        ]

    def counts(self) -> dict[str, int]:
        """Live (not deleted) entities per type."""
        return {kind: len(self.entities(kind)) for kind in self._by_fqn}

    def view(self, entity_type: str, entity: dict[str, Any], fields: str | None) -> dict[str, Any]:
        """The entity as a GET returns it: optional fields only when ``?fields=`` names them."""
        wanted = {part.strip() for part in (fields or "").split(",") if part.strip()}
        if "*" in wanted:
            return entity
        hidden = KINDS[entity_type].optional_fields - wanted
        return {key: value for key, value in entity.items() if key not in hidden}

    # -- writes ------------------------------------------------------------------------------

    def _model(self, kind: EntityKind) -> Obj:
        """The create request model of the server version the mock answers as."""
        if self.server_v2:
            return _models_v2.CREATE_MODELS.get(kind.type, kind.model)
        return kind.model

    def put(
        self,
        entity_type: str,
        body: Any,
        user: str = DEFAULT_USER,
        *,
        entity_id: str | None = None,
    ) -> tuple[dict[str, Any], str]:
        """Create or update from a create request; returns (entity, X-OpenMetadata-Change).

        ``entity_id`` pins the id of a new entity (catalog seeding); it is ignored on update.
        """
        kind = KINDS[entity_type]
        validate(self._model(kind), body)
        request = strip_nulls(body)
        fqn, parents = self._resolve_parents(kind, request)
        existing = self._by_fqn[entity_type].get(fqn)
        if existing is None:
            new_id = entity_id or str(uuid.uuid4())
            if new_id in self._by_id:
                raise ApiError(409, f"Entity with id {new_id} already exists")
            entity = self._build(kind, request, fqn, parents, new_id, 0.1, user)
            self._insert(entity_type, entity, request)
            return entity, "entityCreated"
        old_request = self._requests[existing["id"]]
        merged = {**old_request, **request}
        if merged == old_request and not existing["deleted"]:
            return existing, "entityNoChange"
        version = round(float(existing["version"]) + 0.1, 1)
        entity = self._build(kind, merged, fqn, parents, existing["id"], version, user)
        if "pipelineStatus" in existing:
            entity["pipelineStatus"] = existing["pipelineStatus"]
        self._insert(entity_type, entity, merged)
        # A PUT on a soft-deleted entity brings it back.
        return entity, "entityRestored" if existing["deleted"] else "entityUpdated"

    def delete(
        self, entity_type: str, entity_id: str, *, hard: bool, user: str = DEFAULT_USER
    ) -> tuple[dict[str, Any], str]:
        """Soft delete (``deleted: true``, hidden from lookups) or hard delete (gone)."""
        entity = self.get_by_id(entity_type, entity_id, include_deleted=hard)
        if hard:
            self.generation += 1
            del self._by_fqn[entity_type][entity["fullyQualifiedName"]]
            del self._by_id[entity_id]
            del self._requests[entity_id]
            self.statuses.pop(entity_id, None)
            return entity, "entityDeleted"
        self.generation += 1
        entity["deleted"] = True
        entity["version"] = round(float(entity["version"]) + 0.1, 1)
        entity["updatedAt"] = now_ms()
        entity["updatedBy"] = user
        return entity, "entitySoftDeleted"

    def patch(
        self, entity_type: str, entity: dict[str, Any], patch: Any, user: str = DEFAULT_USER
    ) -> tuple[dict[str, Any], str]:
        """Apply a JSON Patch to a stored entity; returns (entity, X-OpenMetadata-Change).

        The patched entity is read back as its create request (the fields a client can set),
        checked like one, and rebuilt: derived fields (FQNs, references, version) cannot be
        patched, and renaming is not modelled (400).
        """
        kind = KINDS[entity_type]
        patched = apply_patch(entity, patch, server_v2=self.server_v2)
        if not isinstance(patched, dict) or patched.get("name") != entity["name"]:
            raise ApiError(400, f"the mock cannot rename a {entity_type}; patch other fields")
        request = dict(self._requests[entity["id"]])
        model = self._model(kind)
        for field_name in model.fields:
            if field_name == kind.parent_field:
                continue
            if patched.get(field_name) is not None:
                request[field_name] = patched[field_name]
            else:
                request.pop(field_name, None)
        validate(model, request)
        request = strip_nulls(request)
        fqn, parents = self._resolve_parents(kind, request)
        rebuilt = self._build(kind, request, fqn, parents, entity["id"], entity["version"], user)
        unstamped = {"updatedAt", "updatedBy", "pipelineStatus", "href"}
        if all(rebuilt.get(k) == entity.get(k) for k in (set(rebuilt) | set(entity)) - unstamped):
            return entity, "entityNoChange"
        rebuilt["version"] = round(float(entity["version"]) + 0.1, 1)
        if "pipelineStatus" in entity:
            rebuilt["pipelineStatus"] = entity["pipelineStatus"]
        self._insert(entity_type, rebuilt, request)
        return rebuilt, "entityUpdated"

    def create(self, entity_type: str, body: Any, user: str = DEFAULT_USER) -> dict[str, Any]:
        """POST semantics: create, or 409 when the FQN exists."""
        kind = KINDS[entity_type]
        validate(self._model(kind), body)
        fqn, _ = self._resolve_parents(kind, strip_nulls(body))
        if self.find_by_fqn(entity_type, fqn, include_deleted=True) is not None:
            raise ApiError(409, "Entity already exists")
        entity, _ = self.put(entity_type, body, user)
        return entity

    def set_latest_status(self, pipeline_id: str, status: dict[str, Any] | None) -> None:
        _, entity = self._by_id[pipeline_id]
        if status is None:
            entity.pop("pipelineStatus", None)
        else:
            entity["pipelineStatus"] = status

    def _insert(self, entity_type: str, entity: dict[str, Any], request: dict[str, Any]) -> None:
        self.generation += 1
        self._by_fqn[entity_type][entity["fullyQualifiedName"]] = entity
        self._by_id[entity["id"]] = (entity_type, entity)
        self._requests[entity["id"]] = copy.deepcopy(request)

    def _resolve_parents(
        self, kind: EntityKind, request: dict[str, Any]
    ) -> tuple[str, dict[str, dict[str, Any]]]:
        """The new entity's FQN and the parent entities it references."""
        name = request["name"]
        if kind.parent_field is None or kind.parent_type is None:
            return _fqn.quote_name(name), {}
        parent = self.get_by_fqn(kind.parent_type, request[kind.parent_field])
        parents = {kind.parent_type: parent}
        prefix = parent["fullyQualifiedName"]
        if kind.type == "container" and "parent" in request:
            container = self.get_by_id("container", request["parent"]["id"])
            parents["container"] = container
            prefix = container["fullyQualifiedName"]
        return f"{prefix}.{_fqn.quote_name(name)}", parents

    def _build(
        self,
        kind: EntityKind,
        request: dict[str, Any],
        fqn: str,
        parents: dict[str, dict[str, Any]],
        entity_id: str,
        version: float,
        user: str,
    ) -> dict[str, Any]:
        entity: dict[str, Any] = {"id": entity_id, **copy.deepcopy(request)}
        entity.update(
            {
                "fullyQualifiedName": fqn,
                "version": version,
                "updatedAt": now_ms(),
                "updatedBy": user,
                "href": f"{self.base_url}/v1/{kind.collection}/{entity_id}",
                "deleted": False,
            }
        )
        entity.setdefault("tags", [])
        entity.setdefault("owners", [])
        entity.setdefault("followers", [])
        if kind.parent_field is not None and kind.parent_type is not None:
            entity.pop(kind.parent_field, None)
        self._link_parents(kind, entity, parents)
        if kind.type == "table":
            entity.setdefault("tableType", "Regular")
            entity["columns"] = _with_column_fqns(entity["columns"], fqn)
        elif kind.type == "container":
            model = entity.get("dataModel")
            if model:
                model["columns"] = _with_column_fqns(model.get("columns") or [], fqn)
        elif kind.type == "pipeline":
            entity["tasks"] = [
                {**task, "fullyQualifiedName": f"{fqn}.{_fqn.quote_name(task['name'])}"}
                for task in entity.get("tasks") or []
            ]
        return entity

    def _link_parents(
        self, kind: EntityKind, entity: dict[str, Any], parents: dict[str, dict[str, Any]]
    ) -> None:
        """Embed parent references as OpenMetadata does (service, database, schema)."""
        if kind.parent_field is None or kind.parent_type is None:
            return
        parent = parents[kind.parent_type]
        entity[kind.parent_field] = reference(parent, kind.parent_type)
        for key in kind.inherits:
            entity[key] = parent[key]
        if "container" in parents:  # a container inside another
            entity["parent"] = reference(parents["container"], "container")
