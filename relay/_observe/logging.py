"""Structured logs: one JSON object per line, secrets redacted.

Code logs with `logging.getLogger(__name__)` and passes fields with `extra=`;
`configure_logging` installs, once, a handler whose formatter runs a short chain
of processors (base fields, extras, exception, redaction) and renders with orjson.

Redaction is by key (`token`, `secret`, `password`, `authorization`, `api_key`,
`jwt`, ...), by type (`Secret`), by pattern (`Bearer <anything>`), and by value:
secrets the relay knows (e.g. the ingest token) are registered with
`register_secret` and scrubbed wherever they appear, even inside a message.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import threading
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from .._config import Secret

__all__ = [
    "JsonFormatter",
    "configure_logging",
    "redact",
    "register_secret",
    "reset_logging",
]

REDACTED = "***"
_SECRET_KEY = re.compile(
    r"(token|secret|passw(or)?d|authori[sz]ation|api[_-]?key|apikey|jwt|credential|cookie)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None).__dict__
) | {"message", "asctime", "taskName"}

_lock = threading.Lock()
_secrets: set[str] = set()
_handler: logging.Handler | None = None

Processor = Callable[[logging.LogRecord, dict[str, Any]], dict[str, Any]]


def register_secret(value: str | Secret) -> None:
    """Scrub this value from every log line from now on (shorter than 4 chars: ignored)."""
    text = value.reveal() if isinstance(value, Secret) else value
    if len(text) >= 4:
        with _lock:
            _secrets.add(text)


@functools.lru_cache(maxsize=1024)
def _secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def redact(value: Any, *, key: str = "") -> Any:
    """`value` with every secret replaced by `***`, recursively."""
    if value is None or isinstance(value, bool | int | float):
        return value  # nothing to hide in a number (one canonical line per request: keep it cheap)
    if isinstance(value, Secret):
        return REDACTED if value else ""
    # Names like `token_file` or `jwt_token_env` hold where a secret lives, not the secret.
    if (
        key
        and _secret_key(key)
        and value != ""
        and not (isinstance(value, str) and key.endswith(("_file", "_env", "_path", "_source")))
    ):
        return REDACTED
    if isinstance(value, str):
        return _scrub(value)
    if isinstance(value, Mapping):
        return {str(k): redact(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    return value


def _scrub(text: str) -> str:
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _base(record: logging.LogRecord, out: dict[str, Any]) -> dict[str, Any]:
    out["ts"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
    out["level"] = record.levelname.lower()
    out["logger"] = record.name
    out["msg"] = record.getMessage()
    return out


def _extras(record: logging.LogRecord, out: dict[str, Any]) -> dict[str, Any]:
    for name, value in record.__dict__.items():
        if name not in _STANDARD_ATTRS and not name.startswith("_"):
            out[name] = value
    return out


def _exception(record: logging.LogRecord, out: dict[str, Any]) -> dict[str, Any]:
    if record.exc_info and record.exc_info[0] is not None:
        out["exc_type"] = record.exc_info[0].__name__
        out["exc"] = logging.Formatter().formatException(record.exc_info)
    return out


def _redact(record: logging.LogRecord, out: dict[str, Any]) -> dict[str, Any]:
    redacted: dict[str, Any] = redact(out)
    return redacted


class JsonFormatter(logging.Formatter):
    """Renders a record as one JSON line through a chain of processors."""

    def __init__(self, processors: tuple[Processor, ...] | None = None) -> None:
        super().__init__()
        self._processors = processors or (_base, _extras, _exception, _redact)

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {}
        for process in self._processors:
            out = process(record, out)
        return orjson.dumps(out, default=str).decode()


def configure_logging(level: str = "info", *, stream: IO[str] | None = None) -> None:
    """Send every log record (ours, aiohttp's) as JSON lines to `stream` (stderr)."""
    global _handler
    with _lock:
        root = logging.getLogger()
        if _handler is not None:
            warnings.warn("configure_logging called twice; replacing the handler", stacklevel=2)
            root.removeHandler(_handler)
        handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.setLevel(level.upper())
        # aiohttp's own access log is replaced by our canonical line per request.
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
        _handler = handler


def reset_logging() -> None:
    """Undo `configure_logging` and forget registered secrets (tests)."""
    global _handler
    with _lock:
        if _handler is not None:
            logging.getLogger().removeHandler(_handler)
            _handler = None
        _secrets.clear()
