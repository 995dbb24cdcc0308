"""Names and fully qualified names as OpenMetadata takes them.

FQN parts join with `.`; a part containing `.` is wrapped in double quotes and an embedded
`"` is escaped as `\\"` (OpenMetadata's `FullyQualifiedName.quoteName`). Pipeline and task
names are made valid for every supported server (1.x accepted only `[\\w'\\- .&()]`, at most
128 characters): other characters become `_`, and a longer name keeps its start plus a short
hash of the whole, so the same job name always gives the same entity name.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

__all__ = [
    "MAX_NAME_CHARS",
    "build_fqn",
    "entity_name",
    "quote_name",
    "split_fqn",
    "task_name",
    "url_fqn",
]

MAX_NAME_CHARS = 128
_INVALID = re.compile(r"[^\w'\- .&()]")
_HASH_CHARS = 8


def quote_name(name: str) -> str:
    """One FQN part, quoted when it contains a dot."""
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        inner = name[1:-1]
        return name if "." in inner else inner
    escaped = name.replace('"', '\\"')
    return f'"{escaped}"' if "." in name else escaped


def build_fqn(*parts: str) -> str:
    return ".".join(quote_name(part) for part in parts)


def split_fqn(fqn: str) -> list[str]:
    """The unquoted parts of an FQN (the inverse of `build_fqn`)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    index = 0
    while index < len(fqn):
        char = fqn[index]
        if char == "\\" and fqn[index + 1 : index + 2] == '"':
            current.append('"')
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == "." and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def url_fqn(fqn: str) -> str:
    """An FQN as a URL path segment (OpenMetadata's clients encode every reserved char)."""
    return quote(fqn, safe="")


def entity_name(raw: str, *, max_chars: int = MAX_NAME_CHARS) -> str:
    """A valid, deterministic entity name for `raw`."""
    name = _INVALID.sub("_", raw.strip()) or "_"
    if len(name) <= max_chars:
        return name
    digest = hashlib.sha256(raw.encode()).hexdigest()[:_HASH_CHARS]
    return f"{name[: max_chars - _HASH_CHARS - 1]}_{digest}"


def task_name(action_job: str, app_job: str) -> str:
    """An action's task name: its job name without the application's prefix.

    `app.execute_insert_into_hive_table.warehouse_t1` under `app` is task
    `execute_insert_into_hive_table.warehouse_t1`; a job not named after its application
    keeps its whole name.
    """
    prefix = app_job + "."
    short = action_job[len(prefix) :] if action_job.startswith(prefix) else action_job
    return entity_name(short or action_job)
