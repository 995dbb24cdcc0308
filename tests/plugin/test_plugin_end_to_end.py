"""End to end: real plugin events posted to a real in-process relay are accepted and spooled."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from show_jobs import ShowData, cleanup, jobs_for, prepare

from relay._app import Relay
from relay._config import load_config
from relay._events import SpooledEvent
from spark_plugin import _state, enable

pytestmark = pytest.mark.spark

T = TypeVar("T")


class RelayThread:
    """A real Relay on 127.0.0.1:<ephemeral>, its event loop on a thread of its own, so the
    plugin's sender thread can post to it while the test thread drives Spark."""

    def __init__(self, spool_dir: Path) -> None:
        config = load_config(
            None,
            environ={},
            overrides={
                "relay.listen": "127.0.0.1:0",
                "spool.dir": str(spool_dir),
                "openmetadata.host_port": "http://127.0.0.1:9/api",
            },
        )
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.relay = Relay(config, delivery=False)  # events stay in the spool for the check
        self.run(self.relay.start())

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def spooled(self) -> list[SpooledEvent]:
        spool = self.relay.spool
        assert spool is not None
        return self.run(spool.lease(max_events=1000, max_bytes=64 << 20, lease_s=60))

    def close(self) -> None:
        try:
            self.run(self.relay.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


@pytest.fixture
def relay_thread(tmp_path: Path) -> Iterator[RelayThread]:
    relay = RelayThread(tmp_path / "spool")
    try:
        yield relay
    finally:
        relay.close()


@pytest.mark.parametrize("compression", ["", "gzip"])
def test_plugin_events_are_accepted_and_spooled_by_the_relay(
    spark: Any, relay_thread: RelayThread, tmp_path: Path, compression: str
) -> None:
    _state.reset()
    handle = enable(spark, url=relay_thread.relay.url, compression=compression)
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
    spark: Any, relay_thread: RelayThread, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 2's job kinds (the FAIL, Hive symlinks, JDBC and column-lineage events included),
    gzip-compressed, through the real ingest path into the spool."""
    _state.reset()
    data = ShowData(
        base=tmp_path_factory.mktemp("e2e_jobs"),
        prefix="e2e",
        derby="jdbc:derby:memory:e2e_jobs;create=true",
        hive=True,
    )
    prepare(spark, data)
    try:
        handle = enable(spark, url=relay_thread.relay.url, compression="gzip")
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
