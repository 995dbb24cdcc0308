"""Configuration: one TOML file, every key overridable from the environment.

Precedence, lowest first: defaults below -> TOML file -> environment variables
`LINEAGE_RELAY_<SECTION>_<KEY>` (nested tables join with `_`, e.g.
`LINEAGE_RELAY_OPENMETADATA_VAULT_ADDRESS`) -> command-line flags.

Each TOML table is a frozen dataclass validated in `__post_init__` (`_sections.py`), so a bad
value is refused at start with a message naming the key and the problem; `_load.py` reads the
file, the environment and the flags into them; `_values.py` holds the value types they share.
"""

from ._load import ENV_PREFIX, load_config
from ._sections import (
    AuditConfig,
    AwsSecretConfig,
    BreakerConfig,
    Config,
    ForwarderConfig,
    IngestConfig,
    MappingRule,
    OffloadConfig,
    OpenMetadataConfig,
    RelayConfig,
    SpoolConfig,
    VaultConfig,
)
from ._values import DEFAULT_LISTEN, Secret, is_loopback, parse_host_port

__all__ = [
    "DEFAULT_LISTEN",
    "ENV_PREFIX",
    "AuditConfig",
    "AwsSecretConfig",
    "BreakerConfig",
    "Config",
    "ForwarderConfig",
    "IngestConfig",
    "MappingRule",
    "OffloadConfig",
    "OpenMetadataConfig",
    "RelayConfig",
    "Secret",
    "SpoolConfig",
    "VaultConfig",
    "is_loopback",
    "load_config",
    "parse_host_port",
]
