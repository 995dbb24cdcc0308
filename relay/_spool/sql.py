"""SQL helpers the spool thread's operations share: id chunks, placeholders, the multi-row
insert, and the key a damaged record is shown with."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Final

from .._events import EventKey

__all__ = ["NO_KEY", "ROWS_PER_INSERT", "chunks", "insert_sql", "sql_in"]

IN_CHUNK: Final = 500  # ids per `IN (...)`: far below SQLite's variable limit
ROWS_PER_INSERT: Final = 256  # rows per multi-row INSERT (4 variables each: well below 32766)
# Stands in for the key of a record whose stored key cannot be read.
NO_KEY: Final = EventKey(kind="run", event_time="", producer="")


def chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i : i + IN_CHUNK] for i in range(0, len(ids), IN_CHUNK)]


@functools.lru_cache(maxsize=128)
def insert_sql(rows: int) -> str:
    values = ",".join(["(?,?,?,?,?,?)"] * rows)
    return "INSERT INTO incoming VALUES " + values  # noqa: S608 -- placeholders only


def sql_in(template: str, chunk: Sequence[int]) -> str:
    """`template` with `{ids}` replaced by one "?" placeholder per id (never the ids)."""
    return template.replace("{ids}", ",".join("?" * len(chunk)))
