"""lineage-relay: a local, durable relay from OpenLineage clients to OpenMetadata."""

from ._config import Config, Secret, load_config
from ._exceptions import (
    AuthError,
    ConfigError,
    IngestError,
    PermanentSinkError,
    RelayError,
    RetriableSinkError,
    SinkError,
    SinkTimeout,
    SpoolError,
    SpoolFailure,
    SpoolFull,
)

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "Config",
    "ConfigError",
    "IngestError",
    "PermanentSinkError",
    "RelayError",
    "RetriableSinkError",
    "Secret",
    "SinkError",
    "SinkTimeout",
    "SpoolError",
    "SpoolFailure",
    "SpoolFull",
    "__version__",
    "load_config",
]
