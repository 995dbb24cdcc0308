"""kill -9 at a random moment: every append the spool acknowledged is there after a restart."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import textwrap
from pathlib import Path

from spool_support import Opener, body, key

REPO = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from spool_support import Opener, body, key
    from relay._config import SpoolConfig
    from relay._observe.metrics import Metrics
    from relay._spool import Spool

    async def main() -> None:
        spool = await Spool.open(SpoolConfig(dir=Path(sys.argv[1])), metrics=Metrics())
        print("open", flush=True)
        n = 0

        async def client(c: int) -> None:
            nonlocal n
            while True:
                n += 1
                i = n
                ids = await spool.append([(body(i, size=2000), key(i))])
                print(f"ack {ids[0]} {i}", flush=True)

        await asyncio.gather(*(client(c) for c in range(16)))

    asyncio.run(main())
    """
)


async def test_acknowledged_appends_survive_sigkill(open_spool: Opener, tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    helpers = Path(__file__).resolve().parent
    rng = random.Random(7)
    acked: dict[int, int] = {}
    for _round in range(3):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, str(directory), str(helpers),
            stdout=asyncio.subprocess.PIPE, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() == b"open"
        deadline = asyncio.get_running_loop().time() + rng.uniform(0.2, 0.6)
        while asyncio.get_running_loop().time() < deadline:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            _, ev_id, i = line.split()
            acked[int(ev_id)] = int(i)
        proc.send_signal(signal.SIGKILL)
        # Acks printed before the kill but not yet read are acknowledged too.
        for line in (await proc.stdout.read()).splitlines():
            if line.startswith(b"ack "):
                _, ev_id, i = line.split()
                acked[int(ev_id)] = int(i)
        await proc.wait()
        assert acked

    spool = await open_spool()
    events = await spool.lease(max_events=10**6, max_bytes=10**10, lease_s=60)
    stored = {e.id: e.body for e in events}
    missing = [ev_id for ev_id in acked if ev_id not in stored]
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"
    assert all(stored[ev_id] == body(i, size=2000) for ev_id, i in acked.items())
    assert all(e.key == key(acked[e.id]) for e in events if e.id in acked)
    # A crash can tear the write in progress (never acknowledged), but loses no commit.
    assert spool.recovery.wal_commits_lost == 0
    assert not spool.recovery.salvaged
