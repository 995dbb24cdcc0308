"""Which OpenMetadata entity an OpenLineage dataset is: the lookup to run, never a guess.

The ordered `[[openmetadata.mapping]]` rules apply to the namespace of the dataset's TABLE
symlink when it has one (a Spark catalog table), else to the dataset's own namespace; the
first rule whose `namespace` glob matches decides:

- `entity = "table"`: the (symlink) name split on `.` fills `database.schema.table` from the
  right, missing parts from the rule; with all four parts the FQN
  `service.database.schema.table` is looked up exactly, else the tables of that service
  whose FQN ends with the known parts (exactly one must match);
- `entity = "container"`: the container of that storage service whose `fullPath` is the
  dataset's URI.

Without a matching rule a file-like namespace is a container found by `fullPath` in any
storage service, and anything else (a TABLE symlink first) a table whose FQN ends with
`.<name>`, accepted only when exactly one table matches.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .._config import MappingRule
from ._model import Dataset
from ._names import build_fqn

__all__ = ["FILE_SCHEMES", "Lookup", "dataset_uri", "lookup_for"]

FILE_SCHEMES = frozenset({"file", "hdfs", "s3", "s3a", "s3n", "gs", "abfss", "abfs", "wasbs"})
_S3_ALIASES = ("s3a://", "s3n://")


@dataclass(frozen=True, slots=True)
class Lookup:
    """How to find one dataset's entity.

    Exactly one way applies: `fqn` (a table by exact FQN), `full_path` (a container, within
    `service` when set), or `name_parts` (tables whose FQN ends with these parts, within
    `service` when set).
    """

    kind: Literal["table", "container"]
    namespace: str  # what the rules were matched against (and the metric label)
    display: str  # `namespace/name` as the event names it, for logs
    fqn: str = ""
    full_path: str = ""
    name_parts: tuple[str, ...] = ()
    service: str = ""
    rule: MappingRule | None = None
    # what auto_create needs for a table: database and schema names under the rule's service
    database: str = ""
    schema: str = ""

    @property
    def key(self) -> tuple[str, str, str, tuple[str, ...], str]:
        """A cache key: two datasets with the same key are the same entity."""
        return (self.kind, self.fqn, self.full_path, self.name_parts, self.service)


def dataset_uri(namespace: str, name: str) -> str:
    """`s3://bucket/key`, `hdfs://host:port/path`, `file:///abs/path` (s3a/s3n read as s3)."""
    base = namespace.rstrip("/")
    for alias in _S3_ALIASES:
        if base.startswith(alias):
            base = "s3://" + base[len(alias) :]
    if base == "file":
        base = "file://"
    path = name if name.startswith("/") else "/" + name
    uri = base + path
    return uri.rstrip("/") if len(uri) > len(base) + 1 else uri


def _scheme(namespace: str) -> str:
    head, sep, _ = namespace.partition("://")
    return (head if sep else namespace).lower()


def _match(rules: Sequence[MappingRule], namespace: str) -> MappingRule | None:
    for rule in rules:
        if fnmatch.fnmatchcase(namespace, rule.namespace):
            return rule
    return None


def lookup_for(dataset: Dataset, rules: Sequence[MappingRule]) -> Lookup:
    """The lookup that finds `dataset`'s entity (pure: no catalog access)."""
    link = dataset.table_symlink
    namespace = link.namespace if link is not None else dataset.namespace
    name = link.name if link is not None else dataset.name
    display = f"{dataset.namespace.rstrip('/')}/{dataset.name.lstrip('/')}"
    rule = _match(rules, namespace)
    if rule is not None and rule.entity == "container":
        return Lookup(
            kind="container", namespace=namespace, display=display,
            full_path=dataset_uri(dataset.namespace, dataset.name), service=rule.service,
            rule=rule,
        )  # fmt: skip
    if rule is not None:
        parts = [part for part in name.split(".") if part]
        table = parts[-1] if parts else name
        schema = parts[-2] if len(parts) >= 2 else rule.schema
        database = ".".join(parts[:-2]) if len(parts) >= 3 else rule.database
        if database and schema:
            return Lookup(
                kind="table", namespace=namespace, display=display,
                fqn=build_fqn(rule.service, database, schema, table), service=rule.service,
                rule=rule, database=database, schema=schema,
            )  # fmt: skip
        known = tuple(part for part in (schema, table) if part)
        return Lookup(
            kind="table", namespace=namespace, display=display, name_parts=known,
            service=rule.service, rule=rule, schema=schema,
        )  # fmt: skip
    if link is None and _scheme(dataset.namespace) in FILE_SCHEMES:
        return Lookup(
            kind="container", namespace=namespace, display=display,
            full_path=dataset_uri(dataset.namespace, dataset.name),
        )  # fmt: skip
    suffix = tuple(part for part in name.split(".") if part) or (name,)
    return Lookup(kind="table", namespace=namespace, display=display, name_parts=suffix)
