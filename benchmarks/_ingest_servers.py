"""The servers `ingest.py` loads: the baselines (each in a child process of this module) and
the relay as shipped. Their roles are described in `ingest.py`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

__all__ = ["BASELINES", "PATH", "start_baseline", "start_relay"]

REPO = Path(__file__).resolve().parent.parent
PATH = "/api/v1/lineage"


BASELINES = ("bare", "envelope", "floor", "logfloor")


class _AppendLog:
    """logfloor's store: group commit of length + CRC-32 framed bodies to one file."""

    _SEGMENT_BYTES = 64 * 1024 * 1024  # then a new file, as a segment log rotates

    def __init__(self, directory: Path, loop: asyncio.AbstractEventLoop) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._path = directory / "events.log"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._written = 0
        self._rotations = 0
        self._loop = loop
        self._queue: queue.SimpleQueue[tuple[bytes, asyncio.Future[None]]] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="logfloor", daemon=True).start()

    def append(self, body: bytes) -> asyncio.Future[None]:
        done = self._loop.create_future()
        self._queue.put((body, done))
        return done

    def _run(self) -> None:
        while True:
            group = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    group.append(self._queue.get_nowait())
            self._written += os.write(self._fd, b"".join(
                struct.pack("<II", len(body), zlib.crc32(body)) + body for body, _ in group
            ))  # fmt: skip
            os.fdatasync(self._fd)
            self._loop.call_soon_threadsafe(_settle, [done for _, done in group])
            if self._written >= self._SEGMENT_BYTES:  # keeps the benchmark's disk use bounded
                self._rotate()

    def _rotate(self) -> None:
        # A segment log deletes delivered segments off the append path: so does this.
        os.close(self._fd)
        self._rotations += 1  # a name of its own: the last unlink may still be running
        old = self._path.with_suffix(f".{self._rotations}")
        self._path.rename(old)
        threading.Thread(target=old.unlink, daemon=True).start()
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._written = 0


def _settle(futures: list[asyncio.Future[None]]) -> None:
    for done in futures:
        if not done.done():
            done.set_result(None)


def serve_baseline(kind: str, spool_dir: str) -> None:
    """Child process: a baseline handler. Prints its port, serves until killed."""
    from aiohttp import web

    from relay._config import SpoolConfig
    from relay._ingest.envelope import parse_event
    from relay._observe.metrics import Metrics
    from relay._spool.store import Spool

    spool: Spool | None = None
    log: _AppendLog | None = None

    def created() -> web.Response:  # the relay's answer to one event
        return web.Response(status=201, body=b'{"received": 1}', content_type="application/json")

    async def bare(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=201)

    async def envelope(request: web.Request) -> web.Response:
        parse_event(await request.read())
        return created()

    async def floor(request: web.Request) -> web.Response:
        body = await request.read()
        assert spool is not None
        await spool.append([(body, parse_event(body))])
        return created()

    async def logfloor(request: web.Request) -> web.Response:
        body = await request.read()
        parse_event(body)
        assert log is not None
        await log.append(body)
        return created()

    async def main() -> None:
        nonlocal spool, log
        if kind == "floor":
            spool = await Spool.open(SpoolConfig(dir=Path(spool_dir)), metrics=Metrics())
        if kind == "logfloor":
            log = _AppendLog(Path(spool_dir), asyncio.get_running_loop())
        handlers = {"bare": bare, "envelope": envelope, "floor": floor, "logfloor": logfloor}
        app = web.Application()
        app.router.add_post(PATH, handlers[kind])
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        print(runner.addresses[0][1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def start_baseline(kind: str, spool_dir: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, kind, str(spool_dir)],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.stdout is not None
    port = int(proc.stdout.readline().strip())
    return proc, f"http://127.0.0.1:{port}"


def start_relay(spool_dir: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_RELAY_")}
    env["LINEAGE_RELAY_OPENMETADATA_HOST_PORT"] = "http://127.0.0.1:9/api"
    log = open(log_path, "wb")  # noqa: SIM115 -- the child keeps it; closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--listen", "127.0.0.1:0",
         "--spool-dir", str(spool_dir)],
        stdout=log, stderr=log, env=env, cwd=REPO,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log_path.read_text().splitlines():
            if '"relay listening"' in line:
                return proc, str(json.loads(line)["url"])
        if proc.poll() is not None:
            raise SystemExit(f"the relay exited: {log_path.read_text()}")
        time.sleep(0.05)
    raise SystemExit("the relay did not start within 30 s")


if __name__ == "__main__":
    serve_baseline(sys.argv[1], sys.argv[2])
