"""`lineage-relay smoke`: a synthetic run through the running relay, checked in OpenMetadata.

Made for blue-green and canary gates: it posts a START and a COMPLETE of a new job (unique
name and run id) reading one table and writing another, through the relay as any client
would, then polls OpenMetadata until `--timeout` for what the configured sink writes:

    openlineage  the lineage edge input -> output (GET /v1/lineage/table/name/{fqn})
    rest         the edge, and the run's status `Successful` on the pipeline the edge
                 names (GET /v1/pipelines/{fqn}/status)

An edge counts only when its details name this run (the `sql` job facet carries the run id,
and both sinks copy it to `lineageDetails.sqlQuery`), so an older edge between the same
tables proves nothing. The tables are named with `--input`/`--output` (keep two tables for
this: the edge between them is rewritten), or made with `--create-test-entities --schema S`
and removed afterwards, with the edge and, for the rest sink, the smoke pipeline.

Exit status: 0 when everything was seen, 1 otherwise (the output says what was seen and
what was not, with the relay's own view of OpenMetadata); 2 for a refused configuration or
wrong arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import orjson

from ._admin import Answer, CallFailed, HttpCaller, relay_url
from ._clock import SystemClock
from ._config import Config, Secret, load_config
from ._exceptions import AuthError, ConfigError
from ._observe.logging import redact
from ._secrets import make_token_provider
from ._sinks.tls import make_ssl_context

__all__ = ["run", "smoke", "smoke_events", "usage_problem"]

PRODUCER = "https://github.com/lineage-relay/lineage-relay/tree/main/relay/_smoke.py"
_RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
_SQL_FACET = "https://openlineage.io/spec/facets/1-1-0/SQLJobFacet.json#/$defs/SQLJobFacet"
_POLL_S = 0.5


class SmokeFailed(Exception):
    """A step that cannot go on; the message says what was seen."""


@dataclass(slots=True)
class _Report:
    lines: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def add(self, label: str, text: str) -> None:
        self.lines.append(f"  {label:<12} {text}")

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.started:.1f} s"


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    stream = out if out is not None else sys.stdout
    problem = usage_problem(args)
    if problem:
        print(f"lineage-relay smoke: {problem}", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"lineage-relay smoke: configuration refused: {exc}", file=sys.stderr)
        return 2
    ok, text = asyncio.run(smoke(config, args))
    stream.write(text)
    return 0 if ok else 1


def usage_problem(args: argparse.Namespace) -> str:
    """What is wrong with the arguments ("" when nothing)."""
    if args.create_test_entities:
        if not args.schema or args.input or args.output:
            return "--create-test-entities needs --schema SERVICE.DB.SCHEMA and no --input/--output"
    elif not (args.input and args.output):
        return (
            "name two tables (--input FQN --output FQN), or let smoke make them: "
            "--create-test-entities --schema SERVICE.DB.SCHEMA"
        )
    if args.timeout <= 0:
        return "--timeout must be > 0"
    return ""


async def smoke(config: Config, args: argparse.Namespace) -> tuple[bool, str]:
    """Run the smoke test: (everything seen, the report to print)."""
    report = _Report()
    ok = await _smoke(config, args, report)
    verdict = "PASSED" if ok else "FAILED"
    text = "\n".join([*report.lines, f"smoke {verdict} after {report.elapsed()}"]) + "\n"
    scrubbed: str = redact(text)  # the tokens read are registered secrets: never shown
    return ok, scrubbed


def smoke_events(
    *, namespace: str, job: str, run_id: str, input_name: str, output_name: str, start: datetime
) -> list[bytes]:
    """START and COMPLETE of one run reading `input_name` and writing `output_name`."""
    events = []
    for event_type, at in (("START", start), ("COMPLETE", start)):
        event = {
            "eventType": event_type,
            "eventTime": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "producer": PRODUCER,
            "schemaURL": _RUN_EVENT,
            "run": {"runId": run_id},
            "job": {
                "namespace": namespace,
                "name": job,
                "facets": {
                    "sql": {
                        "_producer": PRODUCER,
                        "_schemaURL": _SQL_FACET,
                        "query": f"-- lineage-relay smoke test, run {run_id}",
                    }
                },
            },
            "inputs": [{"namespace": namespace, "name": input_name}],
            "outputs": [{"namespace": namespace, "name": output_name}],
        }
        events.append(orjson.dumps(event))
    return events


def _dataset_name(fqn: str) -> str:
    """`db.schema.table` of `service.db.schema.table`: what both sinks resolve by suffix."""
    quoted = False
    for i, char in enumerate(fqn):
        if char == '"':
            quoted = not quoted
        elif char == "." and not quoted:
            return fqn[i + 1 :]
    return fqn


def _path_fqn(fqn: str) -> str:
    return quote(fqn, safe="")


def _ingest_token(config: Config) -> Secret | None:
    if config.ingest.token:
        return config.ingest.token
    if config.ingest.token_file:
        try:
            return Secret(Path(config.ingest.token_file).read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise SmokeFailed(f"ingest.token_file cannot be read ({exc.strerror})") from exc
    return None


async def _smoke(config: Config, args: argparse.Namespace, report: _Report) -> bool:
    job = f"lineage_relay_smoke_{uuid.uuid4().hex[:12]}"
    run_id = str(uuid.uuid4())
    report.lines.append(f"lineage-relay smoke: job {args.namespace}/{job}, run {run_id}")
    tokens = make_token_provider(config.openmetadata, clock=SystemClock())
    created: list[tuple[str, str]] = []  # (collection, id) to remove
    try:
        try:
            token = await tokens.token()
        except AuthError as exc:
            report.add("token", f"cannot obtain the OpenMetadata token: {exc}")
            return False
        async with (
            HttpCaller(
                config.openmetadata.api_base, token=token,
                ssl_context=make_ssl_context(config.openmetadata), timeout_s=10.0,
            ) as om,
            HttpCaller(
                args.url or relay_url(config), token=_ingest_token(config), timeout_s=10.0
            ) as relay,
        ):  # fmt: skip
            try:
                tables = await _tables(om, args, job, created, report)
                await _post(relay, args, job, run_id, tables, report)
                seen = await _wait(om, config, args, run_id, tables, report, created)
            except SmokeFailed as exc:
                report.add("failed", str(exc))
                seen = False
            if not seen:
                await _relay_view(relay, report)
            if created:
                await _cleanup(om, created, report)
            return seen
    except (CallFailed, SmokeFailed) as exc:
        report.add("failed", str(exc))
        return False
    finally:
        await tokens.aclose()


def _refused(what: str, answer: Answer) -> SmokeFailed:
    if answer.status == 401:
        return SmokeFailed(
            f"{what}: OpenMetadata refused the token (401: {answer.message()}); run "
            "`lineage-relay doctor` and fix the token source"
        )
    return SmokeFailed(f"{what}: {answer.url} answered {answer.status}: {answer.message()}")


async def _om_call(om: HttpCaller, what: str, method: str, path: str, **kw: Any) -> Answer:
    try:
        return await om.call(method, path, **kw)
    except CallFailed as exc:
        raise SmokeFailed(f"{what}: {exc}: is OpenMetadata up?") from exc


@dataclass(frozen=True, slots=True)
class _Table:
    fqn: str
    id: str


async def _tables(
    om: HttpCaller,
    args: argparse.Namespace,
    job: str,
    created: list[tuple[str, str]],
    report: _Report,
) -> tuple[_Table, _Table]:
    if not args.create_test_entities:
        found = []
        for fqn in (args.input, args.output):
            answer = await _om_call(om, f"table {fqn}", "GET", f"/v1/tables/name/{_path_fqn(fqn)}")
            if answer.status == 404:
                raise SmokeFailed(
                    f"table {fqn} does not exist: name existing tables, or use "
                    "--create-test-entities --schema SERVICE.DB.SCHEMA"
                )
            if answer.status != 200:
                raise _refused(f"reading table {fqn}", answer)
            found.append(_Table(fqn, str(answer.json()["id"])))
        report.add("tables", f"{found[0].fqn} -> {found[1].fqn}")
        return found[0], found[1]
    made = []
    for side in ("in", "out"):
        body = {
            "name": f"{job}_{side}",
            "databaseSchema": args.schema,
            "columns": [{"name": "id", "dataType": "BIGINT"}],
            "description": "lineage-relay smoke test table, removed after the test",
        }
        answer = await _om_call(om, "creating a test table", "PUT", "/v1/tables", body=body)
        if answer.status not in (200, 201):
            raise _refused(f"creating a test table in {args.schema}", answer)
        entity = answer.json()
        created.append(("tables", str(entity["id"])))
        made.append(_Table(str(entity["fullyQualifiedName"]), str(entity["id"])))
    report.add("tables", f"created {made[0].fqn} -> {made[1].fqn}")
    return made[0], made[1]


async def _post(
    relay: HttpCaller,
    args: argparse.Namespace,
    job: str,
    run_id: str,
    tables: tuple[_Table, _Table],
    report: _Report,
) -> None:
    events = smoke_events(
        namespace=args.namespace, job=job, run_id=run_id,
        input_name=_dataset_name(tables[0].fqn), output_name=_dataset_name(tables[1].fqn),
        start=datetime.now(UTC),
    )  # fmt: skip
    statuses = []
    for body in events:
        try:
            answer = await relay.call("POST", "/api/v1/lineage", raw=body)
        except CallFailed as exc:
            raise SmokeFailed(f"the relay does not take events: {exc}: is it running?") from exc
        statuses.append(answer.status)
        if answer.status not in (200, 201):
            raise SmokeFailed(
                f"the relay at {relay.base_url} answered {answer.status}: {answer.message()}"
            )
    report.add("relay", f"{relay.base_url} took START and COMPLETE ({statuses[0]}, {statuses[1]})")


async def _wait(
    om: HttpCaller,
    config: Config,
    args: argparse.Namespace,
    run_id: str,
    tables: tuple[_Table, _Table],
    report: _Report,
    created: list[tuple[str, str]],
) -> bool:
    deadline = time.monotonic() + args.timeout
    source, target = tables
    edge: dict[str, Any] | None = None
    while edge is None:
        edge = await _edge(om, source, target, run_id)
        if edge is None:
            if time.monotonic() >= deadline:
                report.add("edge", f"{source.fqn} -> {target.fqn} of this run: NOT SEEN")
                return False
            await asyncio.sleep(_POLL_S)
    report.add("edge", f"{source.fqn} -> {target.fqn}: seen after {report.elapsed()}")
    if config.openmetadata.sink != "rest":
        return True
    pipeline = (edge.get("lineageDetails") or {}).get("pipeline")
    if not isinstance(pipeline, dict):
        report.add("run status", "the edge names no pipeline: NOT SEEN")
        return False
    fqn = await _pipeline_fqn(om, pipeline)
    if args.create_test_entities:  # the sink made it for the smoke job: remove it too
        created.insert(0, ("pipelines", str(pipeline["id"])))
    status: str | None = None
    while status != "Successful":
        if time.monotonic() >= deadline:
            report.add(
                "run status", f"Successful on pipeline {fqn}: NOT SEEN (last seen: {status})"
            )
            return False
        await asyncio.sleep(_POLL_S)
        status = await _run_status(om, fqn)
    report.add("run status", f"Successful on pipeline {fqn}: seen after {report.elapsed()}")
    return True


async def _edge(
    om: HttpCaller, source: _Table, target: _Table, run_id: str
) -> dict[str, Any] | None:
    answer = await _om_call(
        om, "reading lineage", "GET", f"/v1/lineage/table/name/{_path_fqn(target.fqn)}",
        params={"upstreamDepth": "1", "downstreamDepth": "0"},
    )  # fmt: skip
    if answer.status != 200:
        raise _refused(f"reading the lineage of {target.fqn}", answer)
    for edge in (answer.json() or {}).get("upstreamEdges") or []:
        if edge.get("fromEntity") == source.id and edge.get("toEntity") == target.id:
            details = edge.get("lineageDetails") or {}
            if run_id in orjson.dumps(details).decode():
                return dict(edge)
    return None


async def _pipeline_fqn(om: HttpCaller, reference: dict[str, Any]) -> str:
    fqn = reference.get("fullyQualifiedName")
    if isinstance(fqn, str) and fqn:
        return fqn
    answer = await _om_call(om, "reading the pipeline", "GET", f"/v1/pipelines/{reference['id']}")
    if answer.status != 200:
        raise _refused("reading the pipeline the edge names", answer)
    return str(answer.json()["fullyQualifiedName"])


async def _run_status(om: HttpCaller, pipeline_fqn: str) -> str | None:
    """The newest status of the pipeline within the last hour, or None."""
    now_ms = int(time.time() * 1000)
    answer = await _om_call(
        om, "reading the run status", "GET", f"/v1/pipelines/{_path_fqn(pipeline_fqn)}/status",
        params={"startTs": str(now_ms - 3_600_000), "endTs": str(now_ms + 60_000)},
    )  # fmt: skip
    if answer.status == 404:
        return None
    if answer.status != 200:
        raise _refused(f"reading the status of {pipeline_fqn}", answer)
    statuses = (answer.json() or {}).get("data") or []
    return str(statuses[0].get("executionStatus")) if statuses else None


async def _relay_view(relay: HttpCaller, report: _Report) -> None:
    """What the relay itself says about OpenMetadata, to explain what was not seen."""
    try:
        answer = await relay.call("GET", "/health", auth=False)
    except CallFailed as exc:
        report.add("relay", f"/health: {exc}")
        return
    document = answer.json() or {}
    om = (document.get("components") or {}).get("openmetadata") or {}
    spool = (document.get("components") or {}).get("spool") or {}
    said = om.get("problem") or om.get("error") or om.get("last_error") or "no error"
    report.add("relay says", f"{document.get('status', '?')}; OpenMetadata: {said}")
    if spool:
        report.add("", f"{spool.get('events', '?')} events waiting in its spool")


async def _cleanup(om: HttpCaller, created: list[tuple[str, str]], report: _Report) -> None:
    removed = 0
    for collection, entity_id in reversed(created):
        try:
            answer = await om.call(
                "DELETE", f"/v1/{collection}/{entity_id}",
                params={"hardDelete": "true", "recursive": "true"},
            )  # fmt: skip
        except CallFailed as exc:
            report.add("cleanup", f"could not remove {collection}/{entity_id}: {exc}")
            continue
        if answer.status == 200:
            removed += 1
        else:
            report.add("cleanup", f"{collection}/{entity_id}: {answer.status} {answer.message()}")
    report.add("cleanup", f"removed {removed} of {len(created)} test entities")
