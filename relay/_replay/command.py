"""`lineage-relay replay`: put events back into the spool, for the relay to deliver.

    lineage-relay replay [--config FILE] [--spool-dir DIR]
        --dead-letters [--reason PREFIX] [--id ID ...]   dead letters back into the queue
      | --file FILE [FILE ...]                           JSON, NDJSON, gzip'd or not
      | --s3 s3://BUCKET/PREFIX [--region R] [--endpoint-url URL]   an offload's objects

Replay writes to the spool directly, so it runs while no relay uses that spool (the spool's
lock refuses it otherwise: stop the relay, replay, start the relay; a fresh relay host works
too). Events are appended durably, in file (or object key) order, after the same envelope
check as HTTP ingest; bad lines are reported, never queued. Replaying is idempotent: the
ledger (`_spool/ledger.py`) remembers every event queued from a file or S3, so the same
file or prefix replayed again queues nothing twice; dead letters move once.

Exit status: 0 when everything asked for was queued (or was queued before), 1 when something
could not be (bad lines, S3 or spool errors; the message says what), 2 for a usage or
configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .._aws import require_aws
from .._config import Config, load_config
from .._exceptions import ConfigError, IngestError, OffloadError, SpoolError, SpoolFull
from .._ingest.lines import Parsed, content_key, decompress, parse_document
from .._observe.metrics import Metrics
from .._spool import Spool
from .._spool.ledger import Ledger
from .progress import Progress

__all__ = ["run"]

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_USAGE = 2

_MAX_INPUT_BYTES = 1024**3  # one file or object, decompressed
_BATCH_EVENTS = 500
_REPLAYABLE = (".ndjson.gz", ".ndjson", ".json", ".json.gz", ".jsonl", ".jsonl.gz", ".gz")


def run(args: argparse.Namespace) -> int:
    if (args.reason is not None or args.ids) and not args.dead_letters:
        print("lineage-relay replay: --reason and --id go with --dead-letters", file=sys.stderr)
        return EXIT_USAGE
    overrides = {"spool.dir": args.spool_dir} if args.spool_dir else {}
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"lineage-relay replay: configuration refused: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_replay(config, args))


@dataclass
class _Tally:
    queued: int = 0
    known: int = 0  # queued by an earlier replay or spill: skipped
    bad: int = 0
    errors: int = 0


async def _replay(config: Config, args: argparse.Namespace) -> int:
    try:
        spool = await Spool.open(config.spool, metrics=Metrics())
    except SpoolError as exc:
        print(
            f"lineage-relay replay: cannot open the spool: {exc}. Replay writes to the spool "
            "directly: stop the relay that uses it, replay, then start the relay.",
            file=sys.stderr,
        )
        return EXIT_INCOMPLETE
    try:
        if args.dead_letters:
            return await _dead_letters(spool, args)
        ledger = await asyncio.to_thread(Ledger.open, Path(config.spool.dir))
        try:
            tally = _Tally()
            if args.file:
                sources = _files(args.file)
                total, unit = len(args.file), "file(s)"
            else:
                try:
                    keys, sources = await _s3_sources(config, args)
                except (ConfigError, OffloadError) as exc:
                    print(f"lineage-relay replay: {exc}", file=sys.stderr)
                    return EXIT_INCOMPLETE
                total, unit = len(keys), "object(s)"
            progress = Progress(total, unit, enabled=False if args.no_progress else None)
            try:
                await _queue_all(spool, ledger, sources, tally, progress)
            finally:
                progress.close()
        finally:
            await asyncio.to_thread(ledger.close)
    finally:
        await spool.aclose()
    print(
        f"replay: {tally.queued} event(s) queued, {tally.known} queued before (skipped), "
        f"{tally.bad} bad line(s), {tally.errors} source(s) unreadable; the relay on "
        f"{config.spool.dir} delivers them"
    )
    return EXIT_OK if not (tally.bad or tally.errors) else EXIT_INCOMPLETE


async def _dead_letters(spool: Spool, args: argparse.Namespace) -> int:
    letters = await spool.list_dead_letters(limit=2**62)
    wanted = {
        event.id
        for event, reason in letters
        if (args.reason is None or reason.startswith(args.reason))
        and (not args.ids or event.id in args.ids)
    }
    missing = sorted(set(args.ids or ()) - {event.id for event, _ in letters})
    progress = Progress(len(wanted), "dead letter(s)", enabled=False if args.no_progress else None)
    moved = 0
    ordered = sorted(wanted)
    for start in range(0, len(ordered), _BATCH_EVENTS):
        chunk = ordered[start : start + _BATCH_EVENTS]
        moved += await spool.replay_dead_letters(chunk)
        progress.advance(len(chunk))
    progress.close()
    print(f"replay: {moved} of {len(wanted)} matching dead letter(s) back in the queue")
    if missing:
        print(f"replay: no dead letter with id {', '.join(map(str, missing))}", file=sys.stderr)
    if moved < len(wanted):
        print("replay: a damaged dead letter stays where it is (checksum)", file=sys.stderr)
    return EXIT_OK if not missing and moved == len(wanted) else EXIT_INCOMPLETE


async def _queue_all(
    spool: Spool,
    ledger: Ledger,
    sources: AsyncIterator[tuple[str, Parsed | str]],
    tally: _Tally,
    progress: Progress,
) -> None:
    async for name, parsed in sources:
        if isinstance(parsed, str):
            tally.errors += 1
            _warn(f"{name}: {parsed}")
            progress.advance()
            continue
        for line in parsed.bad[:10]:
            _warn(f"{name}: {line.reason}")
        tally.bad += len(parsed.bad)
        keys = [content_key(key) for _, key in parsed.items]
        fresh = await asyncio.to_thread(ledger.unseen, keys)
        items = [item for item, new in zip(parsed.items, fresh, strict=True) if new]
        tally.known += len(parsed.items) - len(items)
        for start in range(0, len(items), _BATCH_EVENTS):
            batch = items[start : start + _BATCH_EVENTS]
            try:
                await spool.append(batch)
            except SpoolFull as exc:
                _warn(f"the spool is full ({exc}); start the relay to drain it, then replay again")
                tally.errors += 1
                return
            await asyncio.to_thread(ledger.add, [content_key(key) for _, key in batch])
            tally.queued += len(batch)
        progress.advance(note=f"{tally.queued} queued, {tally.known} skipped")


async def _files(paths: Sequence[Path]) -> AsyncIterator[tuple[str, Parsed | str]]:
    for path in paths:
        try:
            parsed = await asyncio.to_thread(_read_file, path)
        except (OSError, IngestError) as exc:
            yield str(path), f"cannot read it: {exc}"
            continue
        yield str(path), parsed


def _read_file(path: Path) -> Parsed:
    with open(path, "rb") as f:
        data = f.read(_MAX_INPUT_BYTES + 1)
    if len(data) > _MAX_INPUT_BYTES:
        raise IngestError(413, f"larger than {_MAX_INPUT_BYTES} bytes: split it")
    return _parse(data)


def _parse(data: bytes) -> Parsed:
    return parse_document(decompress(data, max_bytes=_MAX_INPUT_BYTES))


async def _s3_sources(
    config: Config, args: argparse.Namespace
) -> tuple[list[str], AsyncIterator[tuple[str, Parsed | str]]]:
    from .._offload.s3 import S3Location, get_object, list_keys, s3_client

    require_aws("replay --s3")
    location = S3Location.parse(args.s3)
    region = args.region or config.offload.region
    endpoint_url = args.endpoint_url or config.offload.endpoint_url
    async with s3_client(region=region, endpoint_url=endpoint_url) as client:
        keys = [key for key in await list_keys(client, location) if key.endswith(_REPLAYABLE)]

    async def objects() -> AsyncIterator[tuple[str, Parsed | str]]:
        async with s3_client(region=region, endpoint_url=endpoint_url) as client:
            for key in keys:
                name = f"s3://{location.bucket}/{key}"
                try:
                    data = await get_object(client, location, key, _MAX_INPUT_BYTES)
                    parsed = await asyncio.to_thread(_parse, data)
                except (OffloadError, IngestError) as exc:
                    yield name, str(exc)
                    continue
                yield name, parsed

    return keys, objects()


def _warn(message: str) -> None:
    print(f"lineage-relay replay: {message}", file=sys.stderr)
