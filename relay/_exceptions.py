"""The relay's errors, one tree branching by what the caller does next.

    RelayError
    ├── ConfigError            bad configuration: fix the named key and restart
    ├── IngestError            a client's request is wrong: answer with .status (4xx)
    ├── SpoolError             the spool cannot take or give events
    │   ├── SpoolFull          answer 503 with Retry-After; the client retries
    │   └── SpoolFailure       the disk failed (fsync): stop, never acknowledge again
    ├── AuthError              no usable OpenMetadata token could be obtained
    ├── OffloadError           S3 refused or could not be reached: the events stay local
    └── SinkError              a call to OpenMetadata failed
        ├── RetriableSinkError keep the events, try again later
        │   ├── SinkTimeout    (also a TimeoutError)
        │   └── SinkSetupError refused for a setup reason (403, no endpoint, redirect):
        │                      keep the events, report degraded health, fix the setup
        └── PermanentSinkError dead-letter the events, with .reason

`RelayError` catches them all; catch a branch to apply its remedy.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigError",
    "IngestError",
    "OffloadError",
    "PermanentSinkError",
    "RelayError",
    "RetriableSinkError",
    "SinkError",
    "SinkSetupError",
    "SinkTimeout",
    "SpoolError",
    "SpoolFailure",
    "SpoolFull",
]


class RelayError(Exception):
    """Root of every error the relay raises on purpose."""


class ConfigError(RelayError, ValueError):
    """A configuration value is missing or wrong; the message names the key."""


class IngestError(RelayError):
    """A request to the ingest endpoints cannot be accepted.

    `status` is the HTTP status to answer with (400, 401, 413, 415).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SpoolError(RelayError):
    """The spool cannot do what was asked."""


class SpoolFull(SpoolError):
    """The spool reached `spool.max_bytes`; retry after `retry_after_s`."""

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SpoolFailure(SpoolError, OSError):
    """A write or sync to disk failed; the relay must stop acknowledging."""


class AuthError(RelayError):
    """No OpenMetadata token could be obtained from the configured source."""


class OffloadError(RelayError):
    """S3 (offload at shutdown, `replay --s3`) refused a call or could not be reached; the
    message says which bucket and what to check."""


class SinkError(RelayError):
    """A call to OpenMetadata failed."""


class RetriableSinkError(SinkError):
    """The call may succeed later; `retry_after_s` is the server's hint if it gave one."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class SinkTimeout(RetriableSinkError, TimeoutError):
    """OpenMetadata did not answer within the configured timeout."""


class SinkSetupError(RetriableSinkError):
    """OpenMetadata refuses the calls because of how it or the relay is set up.

    A permission problem (403), a token still refused after a re-fetch (401), an
    endpoint the server lacks (404 on the native OpenLineage API) or a redirect: the
    events are not poison, so they stay in the spool while health reports the problem.
    """


class PermanentSinkError(SinkError):
    """OpenMetadata refused the events for good; `reason` goes with the dead letter."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason or message
