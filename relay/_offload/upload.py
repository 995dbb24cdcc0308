"""The shutdown offload: every event still in the spool, to S3 as gzip NDJSON objects.

Runs once the forwarder has stopped (its leases returned) and before the spool closes. Objects
are named

    <prefix>/<UTC start time>-<host>-<pid>/<sequence, 6 digits>.ndjson.gz

so listing a prefix in key order (what `replay --s3` does) gives offloads in time order and,
inside one, events in spool order (arrival order). Each object holds up to
`offload.max_object_bytes` of events, one per line, as the clients sent them. An object's
events leave the spool only once S3 has it, so an upload cut short (time out, S3 down) keeps
the rest on local disk, where the next start delivers them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from typing import Final

from .._config import OffloadConfig
from .._exceptions import OffloadError
from .._ingest.lines import gzip_lines
from .._spool import Spool
from .s3 import S3Location, put_object, s3_client

__all__ = ["OffloadReport", "offload_spool"]

log = logging.getLogger(__name__)

_MAX_EVENTS_PER_OBJECT: Final = 10_000
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class OffloadReport:
    events: int  # events uploaded and removed from the spool
    objects: int
    left: int  # events still in the spool (upload cut short)
    error: str = ""


async def offload_spool(spool: Spool, config: OffloadConfig) -> OffloadReport:
    """Upload what is in the spool (see the module docstring); never raises for S3 trouble:
    the report says what went up and what stayed."""
    location = S3Location.parse(config.s3_uri)
    host = _UNSAFE.sub("_", socket.gethostname()) or "host"
    run = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}Z-{host}-{os.getpid()}"
    events = objects = 0
    error = ""
    try:
        async with (
            asyncio.timeout(config.timeout_s),
            s3_client(
                region=config.region, endpoint_url=config.endpoint_url, timeout_s=config.timeout_s
            ) as client,
        ):
            after = 0
            while True:
                batch = await spool.scan(
                    after_id=after,
                    max_events=_MAX_EVENTS_PER_OBJECT,
                    max_bytes=config.max_object_bytes,
                )
                if not batch:
                    break
                body = await asyncio.to_thread(gzip_lines, [event.body for event in batch])
                key = location.key(f"{run}/{objects + 1:06d}.ndjson.gz")
                await put_object(client, location, key, body)
                await spool.ack([event.id for event in batch])
                objects += 1
                events += len(batch)
                after = batch[-1].id
    except OffloadError as exc:
        error = str(exc)
    except TimeoutError:
        error = f"the upload to {location} took longer than offload.timeout_s ({config.timeout_s})"
    left = spool.stats().events
    if error:
        log.error(
            "offload cut short: %s; %d event(s) uploaded, %d left in the spool (delivered at the "
            "next start on this disk)", error, events, left,
            extra={"offloaded_events": events, "objects": objects, "left": left},
        )  # fmt: skip
    else:
        log.info(
            "offloaded %d event(s) in %d object(s) to %s",
            events, objects, f"s3://{location.bucket}/{location.key(run)}/",
            extra={"offloaded_events": events, "objects": objects, "left": left},
        )  # fmt: skip
    return OffloadReport(events, objects, left, error)
