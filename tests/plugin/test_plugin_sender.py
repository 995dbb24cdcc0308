"""Sender: bounded queue, one thread, real HTTP to a local receiver; drops counted, no blocking."""

from __future__ import annotations

import gzip
import json
from typing import Any

from plugin_support import closed_port_url, receiving

from spark_plugin._config import PluginConfig, load_plugin_config
from spark_plugin._sender import Sender


def event(n: int) -> dict[str, Any]:
    return {
        "eventTime": "2026-01-01T00:00:00.000Z",
        "producer": "test",
        "eventType": "START",
        "run": {"runId": f"00000000-0000-7000-8000-{n:012d}"},
        "job": {"namespace": "default", "name": f"job_{n}"},
    }


def config(url: str, **options: Any) -> PluginConfig:
    return load_plugin_config({}, {}, {"url": url, **options})


def no_sleep(_seconds: float) -> None:
    return None


def test_delivers_in_order_with_the_http_transport_headers() -> None:
    with receiving() as receiver:
        sender = Sender(
            config(receiver.url, api_key="tok-123", headers={"X-Team": "payments"}), sleep=no_sleep
        )
        for n in range(5):
            assert sender.submit(event(n))
        assert sender.flush(10)
        assert [e["job"]["name"] for e in receiver.events()] == [f"job_{n}" for n in range(5)]
        first = receiver.received[0]
        assert first.path == "/api/v1/lineage"
        assert first.headers["Content-Type"] == "application/json"
        assert first.headers["Authorization"] == "Bearer tok-123"
        assert first.headers["X-Team"] == "payments"
        assert "Content-Encoding" not in first.headers
        assert (sender.emitted, sender.dropped, sender.failed_posts, sender.pending) == (5, 0, 0, 0)
        assert sender.close(1)
        assert sender.join(5)


def test_gzip_when_configured() -> None:
    with receiving() as receiver:
        sender = Sender(config(receiver.url, compression="gzip"), sleep=no_sleep)
        sender.submit(event(1))
        assert sender.flush(10)
        received = receiver.received[0]
        assert received.headers["Content-Encoding"] == "gzip"
        assert json.loads(gzip.decompress(received.raw)) == event(1)
        sender.close(1)


def test_a_refusal_is_not_retried_and_counts_as_dropped() -> None:
    with receiving(status=400) as receiver:
        sender = Sender(config(receiver.url, retries=3), sleep=no_sleep)
        sender.submit(event(1))
        assert sender.flush(10)
        assert receiver.requests == 1
        assert (sender.emitted, sender.failed_posts, sender.dropped_by_reason["undeliverable"]) == (
            0,
            1,
            1,
        )
        sender.close(1)


def test_server_errors_are_retried_a_bounded_number_of_times() -> None:
    with receiving(status=503) as receiver:
        sender = Sender(config(receiver.url, retries=2), sleep=no_sleep)
        sender.submit(event(1))
        assert sender.flush(10)
        assert receiver.requests == 3
        # once delivery failed for good, later events get one attempt until one succeeds
        sender.submit(event(2))
        assert sender.flush(10)
        assert receiver.requests == 4
        assert sender.failed_posts == 4 and sender.dropped == 2 and sender.emitted == 0
        receiver.status = 201
        sender.submit(event(3))
        assert sender.flush(10)
        assert sender.emitted == 1
        sender.close(1)


def test_closed_port_drops_and_counts_without_blocking_submit() -> None:
    sender = Sender(config(closed_port_url(), retries=1), sleep=no_sleep)
    for n in range(20):
        sender.submit(event(n))
    assert sender.flush(10)
    assert sender.emitted == 0
    assert sender.dropped == 20 and sender.dropped_by_reason["undeliverable"] == 20
    assert sender.submitted == sender.emitted + sender.dropped + sender.pending
    assert sender.close(1)


def test_hanging_receiver_full_queue_and_close_drop_and_count() -> None:
    with receiving(hang=True) as receiver:
        sender = Sender(config(receiver.url, queue_size=3, timeout_s=5), sleep=no_sleep)
        accepted = [sender.submit(event(n)) for n in range(10)]
        # one may already be in flight; the rest beyond the queue's 3 slots are refused at once
        assert accepted.count(False) >= 6
        assert sender.dropped_by_reason["queue_full"] == accepted.count(False)
        assert not sender.close(0.2)  # the deadline passes with events left
        assert sender.dropped_by_reason["shutdown"] >= 2
        assert not sender.submit(event(99))  # closed: refused and counted
        receiver.released.set()
        assert sender.join(10)
        assert sender.pending == 0
        assert sender.submitted == 11 == sender.emitted + sender.dropped


def test_close_is_idempotent_and_flush_after_close_reports_state() -> None:
    with receiving() as receiver:
        sender = Sender(config(receiver.url), sleep=no_sleep)
        sender.submit(event(1))
        assert sender.close(5)
        assert sender.close(5)
        assert sender.flush(0.1)
        assert sender.join(5)
        assert sender.emitted == 1
