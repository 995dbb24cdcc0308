"""End to end: real plugin events posted to a real in-process relay are accepted and spooled."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from relay_support import ThreadedRelay
from show_jobs import cleanup, jobs_for, prepare, show_data

from spark_plugin import _state, enable

pytestmark = pytest.mark.spark


@pytest.fixture
def relay_thread(tmp_path: Path) -> Iterator[ThreadedRelay]:
    """A relay on its own loop thread, so the plugin's sender thread can post to it while the
    test thread drives Spark; no delivery: the events stay in the spool for the check."""
    with ThreadedRelay(tmp_path / "spool") as relay:
        yield relay


@pytest.mark.parametrize("compression", ["", "gzip"])
def test_plugin_events_are_accepted_and_spooled_by_the_relay(
    spark: Any, relay_thread: ThreadedRelay, tmp_path: Path, compression: str
) -> None:
    _state.reset()
    handle = enable(spark, url=relay_thread.url, compression=compression)
    source = tmp_path / "source"
    spark.range(20).selectExpr("id", "id * 3 AS tripled").write.mode("overwrite").parquet(
        str(source)
    )
    spark.read.parquet(str(source)).where("tripled > 9").write.mode("overwrite").json(
        str(tmp_path / "sink")
    )
    assert handle.close(30)
    stats = handle.stats()
    assert stats["submitted"] == handle.emitted == 2 + 2 * 2  # app START/COMPLETE, two runs
    assert (handle.dropped, handle.failed_posts) == (0, 0)

    spooled = relay_thread.spooled()
    assert len(spooled) == handle.emitted
    events = [
        json.loads(gzip.decompress(s.body) if s.body[:2] == b"\x1f\x8b" else s.body)
        for s in spooled
    ]
    assert [e["eventType"] for e in events] == [
        "START", "START", "COMPLETE", "START", "COMPLETE", "COMPLETE",
    ]  # fmt: skip
    keys = [s.key for s in spooled]
    assert all(k.run_id == e["run"]["runId"] for k, e in zip(keys, events, strict=True))
    assert keys[0].job_name == keys[-1].job_name == "lineage_relay_tests"
    sink = events[4]
    assert sink["outputs"][0]["name"] == str(tmp_path / "sink")
    assert sink["inputs"][0]["name"] == str(source)


def test_every_job_kind_is_accepted_and_spooled(
    spark: Any, relay_thread: ThreadedRelay, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 2's job kinds (the FAIL, Hive symlinks, JDBC and column-lineage events included),
    gzip-compressed, through the real ingest path into the spool."""
    _state.reset()
    data = show_data(tmp_path_factory.mktemp("e2e_jobs"), "e2e")
    prepare(spark, data)
    try:
        handle = enable(spark, url=relay_thread.url, compression="gzip")
        for job in jobs_for(data).values():
            job(spark, data)
        assert handle.close(30)
    finally:
        cleanup(spark, data)
    assert (handle.dropped, handle.failed_posts) == (0, 0)
    assert handle.emitted == 2 + 2 * len(jobs_for(data))  # app START/COMPLETE, a run per job

    spooled = relay_thread.spooled()
    events = [
        json.loads(gzip.decompress(s.body) if s.body[:2] == b"\x1f\x8b" else s.body)
        for s in spooled
    ]
    assert len(events) == handle.emitted
    assert sorted(e["eventType"] for e in events).count("FAIL") == 1
    outputs = {o["name"] for e in events for o in e["outputs"]}
    assert "APP.WHO" in outputs  # the JDBC write
    assert any(name.endswith("/e2e_hive_out") for name in outputs)  # the Hive table
