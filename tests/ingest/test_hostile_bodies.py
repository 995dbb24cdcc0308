"""Bodies a hostile or broken client sends: the same answer on every endpoint, never a 500.

Each case here was a defect found by hand (issue 12): a lone surrogate escape in an
envelope field (500 on the batch endpoints), a facet number beyond float range (400 on
the single endpoint, 201 in a batch), a body of many empty gzip members and a batch of
megabytes of whitespace (seconds of event-loop CPU).
"""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import aiohttp
import pytest
from ingest_support import EVENTS, spooled

from relay._app import Relay
from relay._exceptions import IngestError
from relay._ingest.envelope import parse_event, split_batch

COMPLETE = (EVENTS / "spark" / "04_COMPLETE_insert_revenue_by_country.json").read_bytes()

SURROGATE_RUN_ID = (
    b'{"eventTime":"2026-01-01T00:00:00Z","producer":"p","eventType":"COMPLETE",'
    b'"run":{"runId":"\\udc00x"},"job":{"namespace":"n","name":"j"}}'
)
SURROGATE_JOB_NAME = SURROGATE_RUN_ID.replace(b'"\\udc00x"', b'"r"').replace(
    b'"name":"j"', b'"name":"j\\udfff"'
)
# Valid JSON all the same: a malformed facet is never a reason to refuse an event.
HUGE_NUMBER_FACET = COMPLETE.replace(b'"run":{', b'"run":{"facets": {"x": {"v": 1e400}}, ', 1)
SURROGATE_FACET = COMPLETE.replace(b'"run":{', b'"run":{"facets": {"x": {"v": "\\ud800"}}, ', 1)


def _shapes(event: bytes) -> list[tuple[str, bytes]]:
    return [
        ("/api/v1/lineage", event),
        ("/api/v1/openlineage/lineage", event),
        ("/api/v1/lineage/batch", b"[" + event + b"]"),
        ("/api/v1/openlineage/lineage/batch", b'{"events": [' + event + b"]}"),
    ]


async def _post(http: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
        assert resp.content_type == "application/json"
        return resp.status, json.loads(await resp.read())


@pytest.mark.parametrize(
    ("event", "field"),
    [(SURROGATE_RUN_ID, "run.runId"), (SURROGATE_JOB_NAME, "job.name")],
    ids=["run-id", "job-name"],
)
async def test_a_lone_surrogate_in_an_envelope_field_is_400_everywhere(
    relay: Relay, http: aiohttp.ClientSession, event: bytes, field: str
) -> None:
    for path, body in _shapes(event):
        status, answer = await _post(http, relay.url + path, body)
        assert status == 400, (path, answer)
        assert field in answer["error"] and "surrogate" in answer["error"]
    assert await spooled(relay) == []


@pytest.mark.parametrize("event", [HUGE_NUMBER_FACET, SURROGATE_FACET], ids=["1e400", "surrogate"])
async def test_an_odd_facet_value_is_accepted_everywhere_and_stored_as_sent(
    relay: Relay, http: aiohttp.ClientSession, event: bytes
) -> None:
    assert event != COMPLETE
    for path, body in _shapes(event):
        status, answer = await _post(http, relay.url + path, body)
        assert (status, answer) == (201, {"received": 1}), path
    assert [e.body for e in await spooled(relay)] == [event] * 4


def test_nan_stays_refused_on_both_decoders() -> None:
    body = COMPLETE.replace(b'"run":{', b'"run":{"facets": {"x": {"v": NaN}}, ', 1)
    for call in (lambda: parse_event(body), lambda: split_batch(b"[" + body + b"]", wrapped=False)):
        with pytest.raises(IngestError, match="not valid JSON"):
            call()


def test_an_unknown_event_type_with_a_surrogate_is_no_event_type() -> None:
    body = SURROGATE_JOB_NAME.replace(b'"name":"j\\udfff"', b'"name":"j"').replace(
        b'"COMPLETE"', b'"\\udc00"'
    )
    assert parse_event(body).event_type is None


async def test_many_empty_gzip_members_are_refused(
    relay: Relay, http: aiohttp.ClientSession
) -> None:
    body = io.BytesIO(gzip.compress(b"", 1) * 400_000)  # 8 MB, every member empty
    async with http.post(
        relay.url + "/api/v1/lineage", data=body, headers={"Content-Encoding": "gzip"}
    ) as resp:
        answer = await resp.json()
    assert resp.status == 400 and "gzip members" in answer["error"]


async def test_a_few_gzip_members_are_still_one_body(
    relay: Relay, http: aiohttp.ClientSession
) -> None:
    body = b"".join(gzip.compress(COMPLETE[i : i + 50]) for i in range(0, len(COMPLETE), 50))
    async with http.post(
        relay.url + "/api/v1/lineage", data=body, headers={"Content-Encoding": "gzip"}
    ) as resp:
        assert resp.status == 201
    assert [e.body for e in await spooled(relay)] == [COMPLETE]


def test_whitespace_padding_anywhere_in_a_batch() -> None:
    pad = b" \t\r\n" * 1000
    body = pad + b"[" + pad + COMPLETE + pad + b"," + pad + COMPLETE + pad + b"]" + pad
    assert [raw for raw, _ in split_batch(body, wrapped=False)] == [COMPLETE, COMPLETE]
    assert split_batch(b"[" + b" " * (4 * 1024 * 1024) + b"]", wrapped=False) == []
