"""The envelope's fast path (msgspec) and its full parse decide every body alike.

The fast path may only ever say yes, and only where the full parse says the same yes with the
same key: these tests mutate real events (bytes swapped, JSON-significant tokens, invalid UTF-8,
lone surrogate escapes, deep nesting, wrong envelope types) and compare the two outcomes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_support import EVENTS

from relay._events import EventKey
from relay._exceptions import IngestError
from relay._ingest import envelope
from relay._ingest.envelope import parse_event

BODIES = [p.read_bytes() for p in sorted(EVENTS.glob("*/*.json"))]

# Pieces that move a body across the line between what msgspec and the full parse accept.
TOKENS = [
    b'"\\udc00"', b"1e400", b"-1e400", b"NaN", b"Infinity", b"\xff", b"\xc3", b"\xed\xa0\x80",
    b"[" * 1500 + b"]" * 1500, b"[" * 600 + b"]" * 600, b'"run":null,', b'"job":1,',
    b'"eventTime":5,', b'"run":{"runId":""},', b'"run":{"runId":"\\udc00"},', b'"producer":"",',
    b'"job":{"namespace":"n","name":"x"},', b'"run":{},', b"}", b"]", b",", b":", b'"', b"\\",
    b" ", b"{}", b"null", b"\x00", b"\t\n",
]  # fmt: skip


def _outcome(parse: Callable[[bytes], EventKey], body: bytes) -> EventKey | tuple[str, int, str]:
    try:
        return parse(body)
    except IngestError as exc:
        return (type(exc).__name__, exc.status, exc.message)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    body = draw(st.sampled_from(BODIES))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(body)))
        if draw(st.booleans()):
            piece = draw(st.sampled_from(TOKENS))
        else:
            piece = draw(st.binary(min_size=0, max_size=4))
        cut = draw(st.integers(0, 3))
        body = body[:at] + piece + body[at + cut :]
    return body


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_mutated())
def test_fast_path_and_full_parse_agree_on_mutated_events(body: bytes) -> None:
    assert _outcome(parse_event, body) == _outcome(envelope._parse_full, body)


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_fast_path_and_full_parse_agree_on_the_fixtures(body: bytes) -> None:
    assert _outcome(parse_event, body) == _outcome(envelope._parse_full, body)


@pytest.mark.parametrize("token", TOKENS, ids=range(len(TOKENS)))
def test_fast_path_and_full_parse_agree_on_each_token_in_a_facet(token: bytes) -> None:
    body = BODIES[0]
    at = body.index(b'"producer"')
    mutated = body[:at] + b'"x":' + token + b"," + body[at:]
    assert _outcome(parse_event, mutated) == _outcome(envelope._parse_full, mutated)


def test_a_run_event_takes_the_fast_path() -> None:
    # Guards the point of the fast path: a well-formed RunEvent never needs the full parse.
    run_events = [p.read_bytes() for p in sorted(EVENTS.glob("spark/*.json"))]
    assert len(run_events) >= 4
    for body in run_events:
        assert envelope._fast_run_event(body) == envelope._parse_full(body)


def test_invalid_utf8_in_a_skipped_string_is_refused_by_both() -> None:
    body = BODIES[0].replace(b'"producer"', b'"x":"\xff","producer"', 1)
    assert envelope._fast_run_event(body) is None
    with pytest.raises(IngestError, match="not UTF-8"):
        parse_event(body)
