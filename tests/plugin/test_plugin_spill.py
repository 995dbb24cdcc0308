"""What the relay cannot take by the end of the flush goes to the spill directory.

The sender runs against a real local receiver (stopped, hanging, or back after an outage);
no Spark here (the job-level test is `test_spill_job`). Only hangs are bounded by time; how
long `spark.stop()` takes is measured by `benchmarks/spark_overhead.py`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from plugin_support import closed_port_url, receiving

from spark_plugin import ConfigError
from spark_plugin._config import DEFAULT_SPILL_MAX_BYTES, PluginConfig, load_plugin_config
from spark_plugin._sender import Sender
from spark_plugin._spill import DEFAULT_SPILL_DIR, Spill, spill_name

FLUSH_TIMEOUT_S = 1.0
# close() keeps its deadline (benchmarks/spark_overhead.py measures it); this only catches a hang
HANG_GUARD_S = FLUSH_TIMEOUT_S + 10.0


def event(i: int) -> dict[str, Any]:
    return {
        "eventType": "COMPLETE",
        "eventTime": f"2026-12-03T08:00:{i % 60:02d}.000Z",
        "producer": "https://github.com/lineage-relay/tests",
        "run": {"runId": f"00000000-0000-4000-8000-{i:012d}"},
        "job": {"namespace": "spill", "name": f"job_{i}"},
    }


def spill_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def make_sender(url: str, spill_dir: Path, *, name: str = "app-1", **options: Any) -> Sender:
    config = PluginConfig(url=url, flush_timeout_s=FLUSH_TIMEOUT_S, **options)
    return Sender(config, spill=Spill(spill_dir, name, max_bytes=config.spill_max_bytes))


def test_relay_stopped_everything_is_spilled_within_the_flush_timeout(tmp_path: Path) -> None:
    sender = make_sender(closed_port_url(), tmp_path / "spill")
    for i in range(50):
        assert sender.submit(event(i))
    started = time.monotonic()
    assert sender.close(FLUSH_TIMEOUT_S) is False  # not delivered ...
    assert time.monotonic() - started < HANG_GUARD_S
    assert (sender.spilled, sender.dropped, sender.emitted, sender.pending) == (50, 0, 0, 0)
    files = list((tmp_path / "spill").iterdir())
    assert [f.name for f in files] == ["app-1.ndjson"]  # ... but kept, one file, no temp left
    assert spill_lines(files[0]) == [event(i) for i in range(50)]  # in submission order
    assert (tmp_path / "spill").stat().st_mode & 0o777 == 0o700


def test_relay_hanging_the_event_in_flight_is_spilled_too(tmp_path: Path) -> None:
    with receiving(hang=True) as receiver:
        sender = make_sender(receiver.url, tmp_path / "spill", timeout_s=5.0)
        for i in range(5):
            sender.submit(event(i))
        started = time.monotonic()
        sender.close(FLUSH_TIMEOUT_S)
        assert time.monotonic() - started < HANG_GUARD_S
        assert receiver.requests >= 1  # the first POST was in flight at the deadline
    assert sender.spilled == 5 and sender.dropped == 0 and sender.pending == 0
    assert spill_lines(tmp_path / "spill" / "app-1.ndjson") == [event(i) for i in range(5)]


def test_events_held_during_an_outage_are_sent_when_the_relay_answers_again(
    tmp_path: Path,
) -> None:
    with receiving(status=503) as receiver:
        sender = make_sender(receiver.url, tmp_path / "spill", retries=0)
        for i in range(3):
            sender.submit(event(i))
        assert sender.flush(FLUSH_TIMEOUT_S) is False  # held, not delivered
        assert sender.dropped == 0 and sender.pending == 3
        receiver.status = 201
        sender.submit(event(3))
        assert receiver.wait_for(lambda events: len(events) >= 4)
        assert sender.close(FLUSH_TIMEOUT_S) is True
    assert sender.emitted == 4 and sender.spilled == 0 and sender.dropped == 0
    assert not (tmp_path / "spill").exists()  # nothing was ever spilled
    assert sorted(e["job"]["name"] for e in receiver.events()[-4:]) == [
        f"job_{i}" for i in range(4)
    ]


def test_a_long_outage_spills_beyond_queue_size_at_once(tmp_path: Path) -> None:
    sender = make_sender(closed_port_url(), tmp_path / "spill", queue_size=10, retries=0)
    for start in (0, 10, 20):  # the queue holds 10: hand events in as it drains
        for i in range(start, start + 10):
            assert sender.submit(event(i))
        sender.flush(FLUSH_TIMEOUT_S)
    path = tmp_path / "spill" / "app-1.ndjson"
    assert path.exists()  # held events beyond queue_size went to disk during the outage
    assert 0 < sender.spilled < 30
    sender.close(FLUSH_TIMEOUT_S)
    assert sender.spilled == 30 and sender.pending == 0
    assert spill_lines(path) == [event(i) for i in range(30)]


def test_the_spill_directory_keeps_to_its_bound_oldest_files_first(tmp_path: Path) -> None:
    directory = tmp_path / "spill"
    line = orjson.dumps(event(0))
    per_file = 20 * (len(line) + 1)
    bound = 3 * per_file + per_file // 2
    for age, name in enumerate(("oldest", "older", "old")):
        Spill(directory, name, max_bytes=bound).write([line] * 20)
        stamp = time.time() - 100 + age
        os.utime(directory / f"{name}.ndjson", (stamp, stamp))
    outcome = Spill(directory, "new", max_bytes=bound).write([line] * 20)
    assert outcome.written == 20 and outcome.dropped == 0
    assert outcome.evicted_other == 20  # the oldest application's file went, counted
    names = sorted(p.name for p in directory.iterdir())
    assert names == ["new.ndjson", "old.ndjson", "older.ndjson"]
    assert sum(p.stat().st_size for p in directory.iterdir()) <= bound


def test_one_application_over_the_bound_keeps_its_newest_events(tmp_path: Path) -> None:
    lines = [orjson.dumps(event(i)) for i in range(30)]
    bound = sum(len(x) + 1 for x in lines[10:20])  # the same length as lines[20:30]
    sender_spill = Spill(tmp_path, "big", max_bytes=bound)
    first = sender_spill.write(lines[:20])
    assert (first.written, first.dropped) == (10, 10)
    second = sender_spill.write(lines[20:])
    assert (second.written, second.dropped, second.evicted_own) == (10, 0, 10)
    assert (tmp_path / "big.ndjson").read_bytes() == b"".join(x + b"\n" for x in lines[20:])


def test_the_sender_counts_what_the_bound_dropped(tmp_path: Path) -> None:
    line_size = len(orjson.dumps(event(10))) + 1
    sender = make_sender(closed_port_url(), tmp_path, spill_max_bytes=5 * line_size)
    for i in range(10, 18):
        sender.submit(event(i))
    sender.close(FLUSH_TIMEOUT_S)
    assert sender.spilled == 5
    assert sender.dropped_by_reason["spill_full"] == 3
    assert sender.spilled + sender.dropped == sender.submitted


def test_an_unwritable_spill_directory_drops_and_counts(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    sender = make_sender(closed_port_url(), blocker / "spill")
    sender.submit(event(1))
    sender.close(FLUSH_TIMEOUT_S)  # never raises
    assert sender.spilled == 0 and sender.dropped_by_reason["spill_full"] == 1


def test_spill_settings_from_spark_conf_and_options(tmp_path: Path) -> None:
    default = load_plugin_config({}, {})
    assert default.spill_directory == DEFAULT_SPILL_DIR
    assert default.spill_max_bytes == DEFAULT_SPILL_MAX_BYTES
    conf = {
        "spark.lineageRelay.spill.dir": str(tmp_path),
        "spark.lineageRelay.spill.maxBytes": "1048576",
    }
    configured = load_plugin_config(conf, {})
    assert (configured.spill_directory, configured.spill_max_bytes) == (str(tmp_path), 1 << 20)
    assert load_plugin_config(conf, {}, {"spill_dir": "/elsewhere"}).spill_dir == "/elsewhere"
    assert load_plugin_config({}, {}, {"spill_max_bytes": 0}).spill_max_bytes == 0
    with pytest.raises(ConfigError, match=r"spill\.maxBytes"):
        load_plugin_config({"spark.lineageRelay.spill.maxBytes": "-1"}, {})


def test_spill_names_are_filename_safe() -> None:
    assert spill_name("local-1700000000000", "0190-ab") == "local-1700000000000-0190-ab"
    assert "/" not in spill_name("../../etc/passwd", "x") and not spill_name("..", ".").startswith(
        "."
    )
