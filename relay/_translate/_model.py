"""OpenLineage run events as the `rest` sink needs them: a small typed model, parsed leniently.

Only what translation reads is kept: the event type and time, the run and its job, the
application it belongs to, the `sql` job facet, the error message of a failure, and per
dataset its name, `symlinks`, `schema` fields and `columnLineage` (its DIRECT input
fields: OpenMetadata's column lineage says where a column's values come from, so join keys
and filter columns, INDIRECT in OpenLineage, are not sources). A facet of the wrong
shape is skipped (clients do not validate; the ingest already accepted the envelope), so
parsing never fails on a facet; it fails only on a body that is no run event at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

import orjson

__all__ = [
    "AppRun",
    "Dataset",
    "Field",
    "InputField",
    "RunEvent",
    "Symlink",
    "parse_run_event",
    "parse_time_ms",
]


@dataclass(frozen=True, slots=True)
class Symlink:
    namespace: str
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class Field:
    """A column of the dataset's `schema` facet."""

    name: str
    type: str


@dataclass(frozen=True, slots=True)
class InputField:
    """One source of an output column, as the `columnLineage` facet names it."""

    namespace: str
    name: str
    field: str


@dataclass(frozen=True, slots=True)
class Dataset:
    namespace: str
    name: str
    symlinks: tuple[Symlink, ...] = ()
    fields: tuple[Field, ...] = ()
    # output column -> its input fields (outputs only)
    column_lineage: tuple[tuple[str, tuple[InputField, ...]], ...] = ()

    @property
    def table_symlink(self) -> Symlink | None:
        """The first `TABLE` symlink (the catalog name of a Spark table), if any."""
        for link in self.symlinks:
            if link.type.upper() == "TABLE":
                return link
        return None

    def is_named(self, namespace: str, name: str) -> bool:
        """Whether (namespace, name) names this dataset, physically or by a symlink."""
        if (self.namespace, self.name) == (namespace, name):
            return True
        return any((link.namespace, link.name) == (namespace, name) for link in self.symlinks)


@dataclass(frozen=True, slots=True)
class AppRun:
    """The application run an event belongs to: its pipeline and its run status."""

    namespace: str
    name: str
    run_id: str


@dataclass(frozen=True, slots=True)
class RunEvent:
    event_type: str  # START, RUNNING, COMPLETE, ABORT, FAIL, OTHER
    event_time_ms: int
    run_id: str
    job_namespace: str
    job_name: str
    producer: str
    app: AppRun
    sql: str = ""
    error_message: str = ""
    inputs: tuple[Dataset, ...] = ()
    outputs: tuple[Dataset, ...] = ()
    # the `openmetadata` job facet (spark.openmetadata.transport.pipelineName ...)
    openmetadata: tuple[tuple[str, str], ...] = ()

    @property
    def is_application(self) -> bool:
        """True for the application's own events, False for an action's."""
        return self.app.run_id == self.run_id


def parse_time_ms(text: str) -> int:
    """Epoch ms of an ISO 8601 `eventTime` (`Z` or an offset; any fraction digits)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    head, dot, tail = value.partition(".")
    if dot:
        digits = len(tail) - len(tail.lstrip("0123456789"))
        fraction, rest = tail[:digits], tail[digits:]
        value = f"{head}.{(fraction + '000000')[:6]}{rest}"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:  # no offset (a client quirk): read as UTC
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_run_event(body: bytes) -> RunEvent | None:
    """The run event in `body`, or None when it is a dataset or job event.

    Raises ValueError when the body is no JSON object or a run event's envelope is unusable
    (the ingest checks the envelope, so this means a body stored by an older relay).
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    run, job = doc.get("run"), doc.get("job")
    if not isinstance(run, dict) or not isinstance(job, dict):
        return None
    run_id, namespace, name = run.get("runId"), job.get("namespace"), job.get("name")
    if not (_is_text(run_id) and _is_text(namespace) and _is_text(name)):
        raise ValueError("run.runId, job.namespace and job.name must be strings")
    event_time = doc.get("eventTime")
    if not _is_text(event_time):
        raise ValueError("eventTime must be a string")
    time_ms = parse_time_ms(event_time)
    event_type = doc.get("eventType")
    run_facets = _dict(run.get("facets"))
    job_facets = _dict(job.get("facets"))
    return RunEvent(
        event_type=event_type.upper() if _is_text(event_type) else "OTHER",
        event_time_ms=time_ms,
        run_id=run_id,
        job_namespace=namespace,
        job_name=name,
        producer=_text(doc.get("producer")),
        app=_app_run(run_facets, job_facets, AppRun(namespace, name, run_id)),
        sql=_text(_dict(job_facets.get("sql")).get("query")),
        error_message=_error_message(run_facets),
        inputs=_datasets(doc.get("inputs")),
        outputs=_datasets(doc.get("outputs")),
        openmetadata=tuple(
            (key, value)
            for key, value in _dict(job_facets.get("openmetadata")).items()
            if not key.startswith("_") and _is_text(value)
        ),
    )


def _app_run(run_facets: dict[str, Any], job_facets: dict[str, Any], own: AppRun) -> AppRun:
    """The parent run, unless this is an application's own event.

    A Spark application launched by a scheduler has a `parent` too (the scheduler's task),
    so `jobType: APPLICATION` wins over the parent facet.
    """
    if _text(_dict(job_facets.get("jobType")).get("jobType")).upper() == "APPLICATION":
        return own
    parent = _dict(run_facets.get("parent"))
    parent_run, parent_job = _dict(parent.get("run")), _dict(parent.get("job"))
    run_id = parent_run.get("runId")
    namespace, name = parent_job.get("namespace"), parent_job.get("name")
    if _is_text(run_id) and _is_text(namespace) and _is_text(name):
        return AppRun(namespace, name, run_id)
    return own


def _error_message(run_facets: dict[str, Any]) -> str:
    for key in ("errorMessage", "spark.exception"):
        message = _text(_dict(run_facets.get(key)).get("message"))
        if message:
            return message
    return ""


def _datasets(raw: Any) -> tuple[Dataset, ...]:
    if not isinstance(raw, list):
        return ()
    out: list[Dataset] = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        namespace, name = item.get("namespace"), item.get("name")
        if not (_is_text(namespace) and _is_text(name)):
            continue
        facets = _dict(item.get("facets"))
        out.append(
            Dataset(
                namespace=namespace,
                name=name,
                symlinks=_symlinks(facets.get("symlinks")),
                fields=_fields(facets.get("schema")),
                column_lineage=_column_lineage(facets.get("columnLineage")),
            )
        )
    return tuple(out)


def _symlinks(raw: Any) -> tuple[Symlink, ...]:
    links: list[Symlink] = []
    for item in _list(_dict(raw).get("identifiers")):
        item = _dict(item)
        namespace, name = item.get("namespace"), item.get("name")
        if _is_text(namespace) and _is_text(name):
            links.append(Symlink(namespace, name, _text(item.get("type"))))
    return tuple(links)


def _fields(raw: Any) -> tuple[Field, ...]:
    fields: list[Field] = []
    for item in _list(_dict(raw).get("fields")):
        item = _dict(item)
        name = item.get("name")
        if _is_text(name):
            fields.append(Field(name, _text(item.get("type"))))
    return tuple(fields)


def _column_lineage(raw: Any) -> tuple[tuple[str, tuple[InputField, ...]], ...]:
    out: list[tuple[str, tuple[InputField, ...]]] = []
    for column, spec in _dict(_dict(raw).get("fields")).items():
        sources: list[InputField] = []
        for item in _list(_dict(spec).get("inputFields")):
            item = _dict(item)
            namespace, name, field = item.get("namespace"), item.get("name"), item.get("field")
            if _is_text(namespace) and _is_text(name) and _is_text(field) and _direct(item):
                sources.append(InputField(namespace, name, field))
        if sources:
            out.append((column, tuple(sources)))
    return tuple(out)


def _direct(input_field: dict[str, Any]) -> bool:
    """Whether the value flows from this input field (DIRECT), not only steers it (INDIRECT:
    join keys, filters, sorts). Facets older than 1-2-0 list no transformations: direct."""
    transformations = _list(input_field.get("transformations"))
    if not transformations:
        return True
    return any(_dict(t).get("type") == "DIRECT" for t in transformations)


def _is_text(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
