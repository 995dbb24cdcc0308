"""`lineage-relay replay --file / --dead-letters` on a real spool (`--s3` is in
test_app_offload, with the offload it restores).

The command runs in-process through `relay._cli.main` (its exit status and output are the
point), each in a worker thread since it runs its own event loop.
"""

from __future__ import annotations

import asyncio
import gzip
import io
from pathlib import Path

import orjson
import pytest
from relay_support import relay_config

from relay._cli import main
from relay._observe.metrics import Metrics
from relay._replay.progress import Progress
from relay._spool import Spool
from relay.testing.events import run_event_pairs


async def replay(spool_dir: Path, *args: str) -> int:
    return await asyncio.to_thread(
        main, ["replay", "--no-progress", "--spool-dir", str(spool_dir), *args]
    )


async def pending_bodies(spool_dir: Path) -> list[bytes]:
    async with await Spool.open(relay_config(spool_dir).spool, metrics=Metrics()) as spool:
        events = await spool.scan(after_id=0, max_events=10_000, max_bytes=1 << 30)
        return [event.body for event in events]


async def test_files_in_every_format_are_queued_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = run_event_pairs(5)  # 10 events spread over four files, one per format
    array = tmp_path / "array.json"
    array.write_bytes(b"[" + b",".join(events[:3]) + b"]")
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_bytes(b'{"events": [' + b", ".join(events[3:5]) + b"]}")
    single = tmp_path / "single.json"
    single.write_bytes(orjson.dumps(orjson.loads(events[5]), option=orjson.OPT_INDENT_2))
    lines = tmp_path / "lines.ndjson.gz"
    lines.write_bytes(gzip.compress(b"\n".join(events[6:]) + b"\n"))
    spool_dir = tmp_path / "spool"
    files = [str(p) for p in (array, wrapped, single, lines)]

    assert await replay(spool_dir, "--file", *files) == 0
    assert "10 event(s) queued, 0 queued before" in capsys.readouterr().out
    bodies = await pending_bodies(spool_dir)
    assert [orjson.loads(b) for b in bodies] == [orjson.loads(e) for e in events]  # in order
    assert bodies[6:] == events[6:] and bodies[:3] == events[:3]  # bytes kept as sent

    assert await replay(spool_dir, "--file", *files) == 0  # the same files again
    assert "0 event(s) queued, 10 queued before" in capsys.readouterr().out
    assert len(await pending_bodies(spool_dir)) == 10


async def test_bad_lines_are_reported_and_the_good_ones_queued(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = run_event_pairs(1)
    mixed = tmp_path / "mixed.ndjson"
    mixed.write_bytes(good[0] + b"\n{cut short\n" + good[1] + b'\n{"producer": "p"}\n')
    spool_dir = tmp_path / "spool"
    assert await replay(spool_dir, "--file", str(mixed), str(tmp_path / "missing.json")) == 1
    out = capsys.readouterr()
    assert "2 event(s) queued" in out.out and "2 bad line(s), 1 source(s) unreadable" in out.out
    assert "line 2 is not JSON" in out.err and "line 4 has no eventTime" in out.err
    assert "missing.json: cannot read it" in out.err
    assert await pending_bodies(spool_dir) == good


async def test_dead_letters_move_back_by_reason_and_by_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from relay._ingest.envelope import parse_event

    spool_dir = tmp_path / "spool"
    bodies = run_event_pairs(2)
    async with await Spool.open(relay_config(spool_dir).spool, metrics=Metrics()) as spool:
        ids = await spool.append([(body, parse_event(body)) for body in bodies])
        await spool.lease(max_events=10, max_bytes=1 << 20, lease_s=60)
        await spool.move_to_dead_letters(ids[:2], "HTTP 400: unknown field")
        await spool.move_to_dead_letters(ids[2:3], "HTTP 422: bad run")
        await spool.release(ids[3:])

    assert await replay(spool_dir, "--dead-letters", "--reason", "HTTP 400") == 0
    assert "2 of 2 matching dead letter(s) back in the queue" in capsys.readouterr().out
    assert await replay(spool_dir, "--dead-letters", "--id", str(ids[2])) == 0
    assert "1 of 1 matching" in capsys.readouterr().out
    assert await replay(spool_dir, "--dead-letters", "--id", str(ids[2])) == 1  # moved already
    assert f"no dead letter with id {ids[2]}" in capsys.readouterr().err
    assert sorted(await pending_bodies(spool_dir)) == sorted(bodies)


async def test_replay_refuses_a_spool_a_relay_is_using(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spool_dir = tmp_path / "spool"
    events = tmp_path / "events.ndjson"
    events.write_bytes(b"\n".join(run_event_pairs(1)))
    async with await Spool.open(relay_config(spool_dir).spool, metrics=Metrics()):  # the "relay"
        assert await replay(spool_dir, "--file", str(events)) == 1
    err = capsys.readouterr().err
    assert "in use by another lineage-relay" in err and "stop the relay" in err


async def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await replay(tmp_path, "--file", "x.json", "--reason", "HTTP 400") == 2
    assert "--reason and --id go with --dead-letters" in capsys.readouterr().err


def test_the_progress_bar_draws_on_a_terminal_only() -> None:
    terminal = io.StringIO()
    bar = Progress(4, "file(s)", stream=terminal, enabled=True)
    bar.advance(note="10 queued")
    bar.advance(3)
    bar.close()
    drawn = terminal.getvalue()
    assert "[#######.......................] 1/4 file(s) 10 queued" in drawn
    assert "[##############################] 4/4 file(s)" in drawn and drawn.endswith("\n")
    quiet = io.StringIO()
    Progress(4, "file(s)", stream=quiet).advance()  # not a terminal: nothing drawn
    assert quiet.getvalue() == ""
