"""The spool against an in-memory model, with crashes between any two steps (hypothesis).

Random appends, leases, acks, retries, releases and dead letters, interleaved with
simulated process deaths: the spool's files are copied while it is open (what a
`kill -9` or a power cut leaves: every fsync'd commit, nothing in memory), sometimes
with the torn beginning of the next, never acknowledged, write appended to the WAL, and
sometimes with a byte of a stored body flipped. After each restart the spool must hold
exactly what the model says: nothing acknowledged lost, nothing acked back, the torn
write either whole or absent, and a damaged body never handed out but counted.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
)
from spool_support import counter, key

from relay._config import SpoolConfig
from relay._observe.metrics import Metrics
from relay._spool import Spool
from relay._spool.schema import DB_NAME

T = TypeVar("T")
CORRUPT = "lineage_relay_spool_corrupt_records_total"
WAL = DB_NAME + "-wal"


def _body(n: int) -> bytes:
    return b'{"eventType":"START","marker":"MARK%08d","pad":"%s"}' % (n, b"z" * (200 + n % 700))


class SpoolModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.root = Path(tempfile.mkdtemp(prefix="spool-model-"))
        self.generation = 0
        self.metrics = Metrics()
        self.spool: Spool | None = None
        self.serial = 0
        self.pending: dict[int, bytes] = {}  # acknowledged appends, not acked nor dead
        self.leased: set[int] = set()
        self.delivered: set[int] = set()
        self.dead: dict[int, bytes] = {}
        self.corrupted: dict[int, bytes] = {}  # damaged on purpose: never handed out

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    @property
    def directory(self) -> Path:
        return self.root / f"gen{self.generation}"

    def _open(self) -> None:
        config = SpoolConfig(dir=self.directory)
        self.spool = self.run(Spool.open(config, metrics=self.metrics))

    @initialize()
    def start(self) -> None:
        self._open()

    def teardown(self) -> None:
        if self.spool is not None:
            self.run(self.spool.aclose())
        self.loop.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- what clients and the forwarder do ---------------------------------------------------

    @rule(count=st.integers(1, 3))
    def append(self, count: int) -> None:
        assert self.spool is not None
        items = []
        for _ in range(count):
            self.serial += 1
            items.append((_body(self.serial), key(self.serial, run_id=f"run-{self.serial % 5}")))
        ids = self.run(self.spool.append(items))
        assert len(ids) == count and len(set(ids)) == count
        for ev_id, (body, _) in zip(ids, items, strict=True):
            assert ev_id not in self.pending and ev_id not in self.delivered
            self.pending[ev_id] = body

    @rule(most=st.integers(1, 8))
    def lease(self, most: int) -> None:
        assert self.spool is not None
        events = self.run(self.spool.lease(max_events=most, max_bytes=1 << 30, lease_s=600))
        for event in events:
            assert event.id in self.pending, f"event {event.id} handed out but not pending"
            assert event.id not in self.leased, f"event {event.id} handed out twice"
            assert event.body == self.pending[event.id]
            self.leased.add(event.id)
        available = len(self.pending) - len(self.leased) - len(self.corrupted)
        assert events or available <= 0

    def _some_leased(self, data: st.DataObject) -> list[int]:
        return data.draw(st.lists(st.sampled_from(sorted(self.leased)), min_size=1, unique=True))

    @precondition(lambda self: self.leased)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        assert self.spool is not None
        ids = self._some_leased(data)
        self.run(self.spool.ack(ids))
        for ev_id in ids:
            self.leased.discard(ev_id)
            del self.pending[ev_id]
            self.delivered.add(ev_id)

    @precondition(lambda self: self.leased)
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        assert self.spool is not None
        ids = self._some_leased(data)
        self.run(self.spool.schedule_retry(ids, 0.0, "model: retry now"))  # due at once
        self.leased.difference_update(ids)

    @precondition(lambda self: self.leased)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        assert self.spool is not None
        ids = self._some_leased(data)
        self.run(self.spool.release(ids))
        self.leased.difference_update(ids)

    @precondition(lambda self: self.leased)
    @rule(data=st.data())
    def move_to_dead_letters(self, data: st.DataObject) -> None:
        assert self.spool is not None
        ids = self._some_leased(data)
        self.run(self.spool.move_to_dead_letters(ids, "model: refused"))
        for ev_id in ids:
            self.leased.discard(ev_id)
            self.dead[ev_id] = self.pending.pop(ev_id)

    # -- crashes -----------------------------------------------------------------------------

    def _image(self) -> Path:
        """The files as a crash leaves them: copied while the spool is open."""
        image = self.root / f"gen{self.generation + 1}"
        image.mkdir()
        for name in (DB_NAME, WAL):
            if (self.directory / name).exists():
                shutil.copy(self.directory / name, image / name)
        return image

    def _restart(self) -> None:
        """The old process is gone: its files stay behind, the image is what restarts."""
        assert self.spool is not None
        self.run(self.spool.aclose())
        self.spool = None
        self.generation += 1
        self.leased.clear()  # leases live in memory: void after a crash
        self._open()

    @rule()
    def crash(self) -> None:
        self._image()
        self._restart()
        self._check_everything()

    @rule(percent=st.integers(0, 100))
    def crash_mid_append(self, percent: int) -> None:
        """Killed while appending: the WAL ends with part of a write nobody was told of."""
        assert self.spool is not None
        image = self._image()
        before = (image / WAL).read_bytes() if (image / WAL).exists() else b""
        self.serial += 1
        body = _body(self.serial)
        (torn_id,) = self.run(self.spool.append([(body, key(self.serial))]))
        after = (self.directory / WAL).read_bytes()
        if after.startswith(before):  # else a checkpoint restarted the WAL
            tail = after[len(before) :]
            with (image / WAL).open("ab") as f:
                f.write(tail[: len(tail) * percent // 100])
        self._restart()
        assert self.spool is not None
        present = self._everything()
        if torn_id in present:  # the whole write reached the disk: intact, never half
            assert present[torn_id] == body
            self.pending[torn_id] = body
        self._check_everything()

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def damage_a_body(self, data: st.DataObject) -> None:
        """A flipped byte in a stored body, on disk while the relay was down."""
        assert self.spool is not None
        self.run(self.spool.aclose())
        self.spool = None
        db = (self.directory / DB_NAME).read_bytes()
        candidates = [
            ev_id
            for ev_id in sorted(self.pending)
            if ev_id not in self.corrupted
            and db.count(b"MARK%08d" % _serial(self.pending[ev_id])) == 1
        ]
        if candidates and not (self.directory / WAL).exists():
            victim = data.draw(st.sampled_from(candidates))
            raw = bytearray(db)
            raw[raw.index(b"MARK%08d" % _serial(self.pending[victim])) + 6] ^= 0x01
            (self.directory / DB_NAME).write_bytes(bytes(raw))
            self.corrupted[victim] = self.pending.pop(victim)
        self.leased.clear()
        self._open()
        self._check_everything()

    # -- checks ------------------------------------------------------------------------------

    def _everything(self) -> dict[int, bytes]:
        """Every event the spool hands out now (leased and given back at once)."""
        assert self.spool is not None
        events = self.run(self.spool.lease(max_events=1_000_000, max_bytes=1 << 40, lease_s=60))
        self.run(self.spool.release([e.id for e in events]))
        return {e.id: e.body for e in events}

    def _check_everything(self) -> None:
        assert self.spool is not None
        assert not self.leased
        present = self._everything()
        lost = set(self.pending) - set(present)
        assert not lost, f"acknowledged events lost: {sorted(lost)}"
        back = set(present) & self.delivered
        assert not back, f"acked events came back: {sorted(back)}"
        damaged = set(present) & set(self.corrupted)
        assert not damaged, f"damaged events handed out: {sorted(damaged)}"
        assert set(present) == set(self.pending), sorted(set(present) ^ set(self.pending))
        assert all(present[ev_id] == body for ev_id, body in self.pending.items())
        dead = self.run(self.spool.list_dead_letters(limit=1_000_000))
        reasons = {event.id: reason for event, reason in dead}
        assert set(self.dead) <= set(reasons)
        for ev_id in set(reasons) - set(self.dead):
            assert ev_id in self.corrupted and reasons[ev_id].startswith("corrupt:")
        assert counter(self.metrics, CORRUPT) >= len(self.corrupted)


def _serial(body: bytes) -> int:
    start = body.index(b"MARK") + 4
    return int(body[start : start + 8])


TestSpoolModel = SpoolModel.TestCase
TestSpoolModel.settings = settings(
    max_examples=15,
    stateful_step_count=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
