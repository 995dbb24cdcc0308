"""The envelope check, alone: bytes in, EventKey out, the raw bytes never re-serialised."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from relay._exceptions import IngestError
from relay._ingest.envelope import MalformedJson, parse_event, split_batch

EVENTS = Path(__file__).resolve().parent.parent / "fixtures" / "events"
VALID = sorted([*EVENTS.glob("spark/*.json"), *EVENTS.glob("client/*.json")])
FACET_ONLY = sorted(EVENTS.glob("invalid_facet/*.json"))
BAD_ENVELOPE = sorted(EVENTS.glob("invalid_envelope/*.json"))


def test_fixtures_exist() -> None:
    assert len(VALID) >= 8 and len(FACET_ONLY) >= 4 and len(BAD_ENVELOPE) >= 6


@pytest.mark.parametrize("path", VALID + FACET_ONLY, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_valid_envelopes_are_accepted(path: Path) -> None:
    body = path.read_bytes()
    key = parse_event(body)
    obj = json.loads(body)
    assert key.event_time == obj["eventTime"]
    assert key.producer == obj["producer"]
    assert key.body_hash == hashlib.sha256(body).hexdigest()
    if "run" in obj:
        assert (key.kind, key.run_id, key.job_name) == (
            "run",
            obj["run"]["runId"],
            obj["job"]["name"],
        )
        assert key.event_type == obj["eventType"]
    elif "dataset" in obj:
        assert key.kind == "dataset" and key.run_id is None
    else:
        assert (key.kind, key.job_namespace) == ("job", obj["job"]["namespace"])


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("no_run_id.json", "run.runId"),
        ("no_event_time.json", "eventTime"),
        ("no_producer.json", "producer"),
        ("no_job_name.json", "job.name"),
        ("run_is_a_string.json", "run must be a JSON object"),
        ("event_time_is_a_number.json", "eventTime must be a non-empty string"),
        ("no_run_dataset_or_job.json", "none of run, dataset or job"),
    ],
)
def test_bad_envelopes_are_refused_naming_the_field(name: str, named: str) -> None:
    with pytest.raises(IngestError) as info:
        parse_event((EVENTS / "invalid_envelope" / name).read_bytes())
    assert info.value.status == 400
    assert named in info.value.message
    assert not isinstance(info.value, MalformedJson)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
    ],
)
def test_malformed_bodies(body: bytes, named: str) -> None:
    with pytest.raises(IngestError) as info:
        parse_event(body)
    assert info.value.status == 400 and named in info.value.message


@pytest.mark.parametrize(
    ("body", "what"), [(b'"x"', "string"), (b"42", "number"), (b"null", "null")]
)
def test_non_objects_are_refused(body: bytes, what: str) -> None:
    with pytest.raises(IngestError, match=f"JSON {what}: expected an OpenLineage event object"):
        parse_event(body)


def test_an_array_on_the_single_endpoint_points_at_the_batch_endpoint() -> None:
    with pytest.raises(IngestError, match="/api/v1/lineage/batch"):
        parse_event(b"[]")


def _spark_bodies() -> list[bytes]:
    return [p.read_bytes() for p in sorted(EVENTS.glob("spark/*.json"))]


@pytest.mark.parametrize("sep", [b",", b" , ", b",\n  ", b"\r\n,\t"])
def test_batch_slices_are_byte_identical(sep: bytes) -> None:
    bodies = _spark_bodies()
    array = b"[\n  " + sep.join(bodies) + b"\n]\n"
    items = split_batch(array, wrapped=False)
    assert [raw for raw, _ in items] == bodies
    assert [key.body_hash for _, key in items] == [hashlib.sha256(b).hexdigest() for b in bodies]


def test_batch_keeps_non_ascii_and_escapes_exactly() -> None:
    plain = (EVENTS / "client" / "run_event_python.json").read_bytes()  # \u escapes (ensure_ascii)
    raw_utf8 = json.dumps(json.loads(plain), ensure_ascii=False).encode()  # raw UTF-8 (München)
    assert b"\\u" in plain and "München".encode() in raw_utf8
    items = split_batch(b"[" + plain + b"," + raw_utf8 + b"]", wrapped=False)
    assert [raw for raw, _ in items] == [plain, raw_utf8]


def test_wrapped_batch_with_other_members() -> None:
    bodies = _spark_bodies()[:2]
    body = b'{"source": {"a": [1, {"b": "]"}]}, "events": [' + b",".join(bodies) + b'], "n": 2}'
    assert [raw for raw, _ in split_batch(body, wrapped=True)] == bodies


def test_empty_batches() -> None:
    assert split_batch(b" [ ] ", wrapped=False) == []
    assert split_batch(b'{"events": []}', wrapped=True) == []


@pytest.mark.parametrize(
    ("body", "wrapped", "named"),
    [
        (b"{}", False, "must be a JSON array of events"),
        (b"[]", True, '{"events": [...]}'),
        (b'{"other": []}', True, 'no "events" array'),
        (b'{"events": {}}', True, '"events" must be a JSON array'),
        (b'[{"eventTime": "t", "producer": "p", "dataset": {}}', False, "not closed"),
        (b"[1, 2]", False, "event [0] is a JSON number"),
        (b"[] []", False, "extra data"),
        (b"[NaN]", False, "not valid JSON"),
    ],
)
def test_bad_batches(body: bytes, wrapped: bool, named: str) -> None:
    with pytest.raises(IngestError) as info:
        split_batch(body, wrapped=wrapped)
    assert info.value.status == 400 and named in info.value.message


def test_batch_error_names_the_element() -> None:
    bodies = _spark_bodies()
    bad = (EVENTS / "invalid_envelope" / "no_run_id.json").read_bytes()
    with pytest.raises(IngestError, match=r"event \[2\] has no run.runId"):
        split_batch(b"[" + b",".join([*bodies[:2], bad]) + b"]", wrapped=False)
