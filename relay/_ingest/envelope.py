"""The envelope check: raw bytes in, `EventKey` out, nothing re-serialised.

Pure functions, no I/O. Only the envelope is checked (a JSON object with
`eventTime` and `producer`, and either `run.runId` + `job.namespace` + `job.name`,
`dataset`, or `job`); facets are never looked at, so an unknown or off-schema
facet is never a reason to refuse an event.

Batches are split without re-serialising: each element's bytes are sliced out
of the request body exactly as the client sent them, so the spool holds what
the client wrote, byte for byte, for batch posts too.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import msgspec
import orjson

from .._events import EventKey, EventKind
from .._exceptions import IngestError

__all__ = ["MalformedJson", "body_hash", "event_key", "parse_event", "split_batch"]


class MalformedJson(IngestError):
    """The body is not JSON at all (as opposed to JSON that is not an event)."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


# The stdlib decoder gives the end offset of each value, which orjson does not;
# it is only used for batches, where those offsets are what we need.
def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_WHITESPACE = re.compile(r"[ \t\n\r]*")


# hashlib releases the GIL for data of 2 KiB and more: with the spool's thread waiting for the
# GIL, each release hands it over and the event loop queues to get it back (a hand-off costs
# more than hashing the slice). Slices just below that keep the GIL.
_HASH_SLICE = 2047


def body_hash(body: bytes) -> str:
    """Hex digest (SHA-256) of the raw body; the forwarder dedupes client retries with it."""
    if len(body) <= _HASH_SLICE:
        return hashlib.sha256(body).hexdigest()
    digest = hashlib.sha256()
    view = memoryview(body)
    for start in range(0, len(body), _HASH_SLICE):
        digest.update(view[start : start + _HASH_SLICE])
    return digest.hexdigest()


# The fast path of `parse_event`: msgspec reads the envelope's few fields into these structs and
# checks the syntax of everything else without building a Python object of it (the facets are
# most of an event), about 4x less CPU than a full parse. It only ever decides in favour of an
# event: anything it refuses, and anything it accepts that the full parse might not (a body
# that is not UTF-8: it does not check skipped strings), goes to the full parse, which alone
# words the errors. So both paths accept and refuse the same bodies.
class _Run(msgspec.Struct):
    runId: Any = None


class _Job(msgspec.Struct):
    namespace: Any = None
    name: Any = None


class _RunEvent(msgspec.Struct):
    eventTime: Any = None
    producer: Any = None
    eventType: Any = None
    run: _Run | None = None
    job: _Job | None = None


_RUN_EVENT = msgspec.json.Decoder(_RunEvent)


def _fast_run_event(body: bytes) -> EventKey | None:
    """The key of a well-formed RunEvent, or None: let the full parse decide."""
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        env = _RUN_EVENT.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    run, job = env.run, env.job
    if run is None or job is None:
        return None  # not a RunEvent, or one missing a part: the full parse words the error
    obj = {
        "eventTime": env.eventTime,
        "producer": env.producer,
        "eventType": env.eventType,
        "run": {"runId": run.runId},
        "job": {"namespace": job.namespace, "name": job.name},
    }
    return event_key(obj, body)


def parse_event(body: bytes) -> EventKey:
    """Check one event's envelope; raise `IngestError(400)` naming what is wrong."""
    if not body.strip():
        raise IngestError(400, "request body is empty: expected one OpenLineage event (JSON)")
    key = _fast_run_event(body)
    return key if key is not None else _parse_full(body)


def _parse_full(body: bytes) -> EventKey:
    """`parse_event` without its fast path: every body can take this one."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        # orjson also refuses valid JSON it cannot represent (1e400, a lone surrogate
        # escape in a facet): the slower decoder the batch endpoints use decides, so both
        # endpoints accept and refuse the same events.
        obj = _decode_whole(body)
    if isinstance(obj, list):
        raise IngestError(
            400,
            "request body is a JSON array: post one event per request here, "
            "or post arrays to /api/v1/lineage/batch",
        )
    return event_key(obj, body)


def event_key(obj: Any, body: bytes, *, where: str = "event") -> EventKey:
    """The `EventKey` of an already-parsed event whose raw bytes are `body`."""
    if not isinstance(obj, dict):
        raise IngestError(
            400, f"{where} is a JSON {_json_type(obj)}: expected an OpenLineage event object"
        )
    event_time = _required_str(obj, "eventTime", where)
    producer = _required_str(obj, "producer", where)
    event_type = obj.get("eventType")
    if not isinstance(event_type, str) or not (event_type.isascii() or _is_unicode(event_type)):
        event_type = None  # optional in the spec; a wrong type is not the envelope's business
    kind: EventKind
    run_id: str | None = None
    job: dict[str, Any] | None = None
    if "run" in obj:
        run = _required_obj(obj, "run", where)
        kind, run_id = "run", _required_str(run, "runId", where, prefix="run.")
        job = _required_obj(obj, "job", where)
    elif "dataset" in obj:
        _required_obj(obj, "dataset", where)
        kind = "dataset"
    elif "job" in obj:
        kind, job = "job", _required_obj(obj, "job", where)
    else:
        raise IngestError(
            400,
            f"{where} has none of run, dataset or job: a RunEvent needs run.runId and "
            "job.namespace/job.name, a DatasetEvent needs dataset, a JobEvent needs job",
        )
    namespace = name = None
    if job is not None:
        namespace = _required_str(job, "namespace", where, prefix="job.")
        name = _required_str(job, "name", where, prefix="job.")
    return EventKey(
        kind=kind,
        event_time=event_time,
        producer=producer,
        event_type=event_type,
        run_id=run_id,
        job_namespace=namespace,
        job_name=name,
        body_hash=body_hash(body),
    )


def split_batch(body: bytes, *, wrapped: bool) -> list[tuple[bytes, EventKey]]:
    """Split a batch into (raw element bytes, key) pairs, in order.

    `wrapped=False`: the body is a JSON array of events (`/api/v1/lineage/batch`).
    `wrapped=True`: the body is `{"events": [...]}` (`/api/v1/openlineage/lineage/batch`).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"request body is not UTF-8 text: {exc}") from None
    shape = '{"events": [...]}' if wrapped else "a JSON array of events"
    pos = _skip_ws(text, 0)
    if pos == len(text):
        raise IngestError(400, f"request body is empty: expected {shape}")
    if wrapped:
        if text[pos] != "{":
            raise IngestError(400, f"request body must be {shape}")
        pos = _find_events_array(text, pos)
    elif text[pos] != "[":
        raise IngestError(400, f"request body must be {shape}")
    items, end = _scan_array(text, pos)
    rest = _skip_ws(text, end)
    if wrapped:
        rest = _finish_object(text, rest)
    if rest != len(text):
        raise MalformedJson(f"request body has extra data after the JSON value at char {rest}")
    return items


def _scan_array(text: str, pos: int) -> tuple[list[tuple[bytes, EventKey]], int]:
    """Scan the array opening at `pos`; return its elements and the offset after `]`."""
    items: list[tuple[bytes, EventKey]] = []
    pos = _skip_ws(text, pos + 1)
    if pos < len(text) and text[pos] == "]":
        return items, pos + 1
    while True:
        obj, end = _decode_at(text, pos)
        # Slicing the decoded text and encoding it again gives back the client's
        # exact bytes: strict UTF-8 round-trips, and escapes stay escapes.
        raw = text[pos:end].encode("utf-8")
        items.append((raw, event_key(obj, raw, where=f"event [{len(items)}]")))
        pos = _skip_ws(text, end)
        if pos >= len(text):
            raise MalformedJson("request body is not valid JSON: the array is not closed")
        if text[pos] == "]":
            return items, pos + 1
        if text[pos] != ",":
            raise MalformedJson(f"request body is not valid JSON: expected ',' at char {pos}")
        pos = _skip_ws(text, pos + 1)


def _find_events_array(text: str, pos: int) -> int:
    """Walk the wrapper object's members up to `"events": [`; return the `[` offset."""
    pos = _skip_ws(text, pos + 1)
    while pos < len(text) and text[pos] != "}":
        key, pos = _decode_at(text, pos)
        if not isinstance(key, str):
            raise MalformedJson(f"request body is not valid JSON: expected a key at {pos}")
        pos = _skip_ws(text, pos)
        if pos >= len(text) or text[pos] != ":":
            raise MalformedJson(f"request body is not valid JSON: expected ':' at char {pos}")
        pos = _skip_ws(text, pos + 1)
        if key == "events":
            if pos >= len(text) or text[pos] != "[":
                raise IngestError(400, 'request body: "events" must be a JSON array of events')
            return pos
        _, pos = _decode_at(text, pos)
        pos = _skip_ws(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
    raise IngestError(400, 'request body has no "events" array: expected {"events": [...]}')


def _finish_object(text: str, pos: int) -> int:
    """Skip the wrapper's members after the events array; return the offset after `}`."""
    while pos < len(text) and text[pos] == ",":
        pos = _skip_ws(text, pos + 1)
        key, pos = _decode_at(text, pos)
        pos = _skip_ws(text, pos)
        if not isinstance(key, str) or pos >= len(text) or text[pos] != ":":
            raise MalformedJson(f"request body is not valid JSON near char {pos}")
        _, pos = _decode_at(text, _skip_ws(text, pos + 1))
        pos = _skip_ws(text, pos)
    if pos >= len(text) or text[pos] != "}":
        raise MalformedJson("request body is not valid JSON: the object is not closed")
    return _skip_ws(text, pos + 1)


def _decode_at(text: str, pos: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, pos)
    except ValueError as exc:  # JSONDecodeError, or NaN/Infinity refused above
        raise MalformedJson(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedJson("request body is nested too deeply") from None


def _decode_whole(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"request body is not valid JSON: not UTF-8 text ({exc})") from None
    obj, end = _decode_at(text, _skip_ws(text, 0))
    end = _skip_ws(text, end)
    if end != len(text):
        raise MalformedJson(f"request body has extra data after the JSON value at char {end}")
    return obj


def _skip_ws(text: str, pos: int) -> int:
    # A regex runs in C: megabytes of padding between elements cost milliseconds, not seconds.
    match = _WHITESPACE.match(text, pos)
    return pos if match is None else match.end()


def _required_str(obj: dict[str, Any], name: str, where: str, *, prefix: str = "") -> str:
    value = obj.get(name)
    if value is None:
        raise IngestError(400, f"{where} has no {prefix}{name}: it is required")
    if not isinstance(value, str) or not value:
        raise IngestError(400, f"{where}: {prefix}{name} must be a non-empty string")
    if not value.isascii() and not _is_unicode(value):
        raise IngestError(
            400,
            f"{where}: {prefix}{name} holds a lone surrogate escape (e.g. \\udc00), which is "
            "not Unicode text: send the field as valid UTF-8",
        )
    return value


def _is_unicode(value: str) -> bool:
    """False when the str holds a lone surrogate (valid JSON escapes, not text)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _required_obj(obj: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = obj.get(name)
    if value is None:
        raise IngestError(400, f"{where} has no {name}: it is required")
    if not isinstance(value, dict):
        raise IngestError(400, f"{where}: {name} must be a JSON object")
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__
