"""The TOML tables, one frozen dataclass each, validated in `__post_init__` with messages that
name the key; vary them with `dataclasses.replace`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .._exceptions import ConfigError
from ._values import DEFAULT_LISTEN, Secret, one_of, parse_host_port, positive

__all__ = [
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
    "SpoolConfig",
    "VaultConfig",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayConfig:
    """[relay]: the daemon itself."""

    listen: str = DEFAULT_LISTEN
    log_level: str = "info"
    shutdown_timeout_s: float = 10.0
    drain_timeout_s: float = 20.0  # on SIGTERM: keep forwarding this long, then offload/exit

    def __post_init__(self) -> None:
        parse_host_port(self.listen, key="relay.listen")
        one_of("relay.log_level", self.log_level, ("debug", "info", "warning", "error"))
        positive("relay.shutdown_timeout_s", self.shutdown_timeout_s)
        positive("relay.drain_timeout_s", self.drain_timeout_s, allow_zero=True)

    @property
    def host(self) -> str:
        return parse_host_port(self.listen, key="relay.listen")[0]

    @property
    def port(self) -> int:
        return parse_host_port(self.listen, key="relay.listen")[1]


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestConfig:
    """[ingest]: the HTTP endpoints OpenLineage clients post to."""

    token: Secret = field(default_factory=lambda: Secret(""))
    token_file: str = ""
    max_body_bytes: int = 32 * 1024 * 1024  # decompressed
    max_compressed_bytes: int = 8 * 1024 * 1024  # on the wire
    max_concurrent_requests: int = 256  # bodies being checked and stored at once
    max_body_bytes_in_flight: int = 64 * 1024 * 1024  # decompressed, all requests together
    read_timeout_s: float = 30.0
    header_timeout_s: float = 10.0
    min_body_bytes_per_s: int = 1024  # 0 = no minimum
    body_grace_s: float = 2.0
    idle_timeout_s: float = 15.0
    spill_dir: str = ""  # the Spark plugin's spill directory, taken up; "" = none
    spill_interval_s: float = 10.0

    def __post_init__(self) -> None:
        positive("ingest.spill_interval_s", self.spill_interval_s)
        positive("ingest.max_body_bytes", self.max_body_bytes)
        positive("ingest.max_compressed_bytes", self.max_compressed_bytes)
        positive("ingest.max_concurrent_requests", self.max_concurrent_requests)
        positive("ingest.read_timeout_s", self.read_timeout_s)
        positive("ingest.header_timeout_s", self.header_timeout_s)
        positive("ingest.min_body_bytes_per_s", self.min_body_bytes_per_s, allow_zero=True)
        positive("ingest.body_grace_s", self.body_grace_s, allow_zero=True)
        positive("ingest.idle_timeout_s", self.idle_timeout_s)
        if self.max_body_bytes_in_flight < self.max_body_bytes:
            raise ConfigError(
                f"ingest.max_body_bytes_in_flight = {self.max_body_bytes_in_flight} is below "
                f"ingest.max_body_bytes = {self.max_body_bytes}: no body of the largest size "
                "could ever be accepted; raise max_body_bytes_in_flight"
            )
        if self.token and self.token_file:
            raise ConfigError("ingest.token and ingest.token_file are both set: keep one")


@dataclass(frozen=True, slots=True, kw_only=True)
class SpoolConfig:
    """[spool]: the durable on-disk queue."""

    dir: Path = Path("/var/lib/lineage-relay")
    max_bytes: int = 10 * 1024**3
    when_full: Literal["reject", "drop_oldest"] = "reject"
    max_age_s: float = 0.0  # 0 = events never expire by age

    def __post_init__(self) -> None:
        positive("spool.max_bytes", self.max_bytes)
        one_of("spool.when_full", self.when_full, ("reject", "drop_oldest"))
        positive("spool.max_age_s", self.max_age_s, allow_zero=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class VaultConfig:
    """[openmetadata.vault]: the JWT from HashiCorp Vault KV v2."""

    address: str = ""
    path: str = ""  # e.g. "secret/data/openmetadata" or "openmetadata" under `mount`
    mount: str = "secret"
    field: str = "token"
    token_env: str = "VAULT_TOKEN"  # noqa: S105 -- the variable's name, not a token
    token_file: str = ""
    namespace: str = ""
    ca_bundle: str = ""  # PEM CA(s) for an https:// Vault signed by a private CA

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def __post_init__(self) -> None:
        if self.address and not self.path:
            raise ConfigError("openmetadata.vault.path is empty: name the KV v2 secret path")
        if self.address and not self.address.startswith(("http://", "https://")):
            raise ConfigError(
                f"openmetadata.vault.address = {self.address!r}: must start with http(s)://"
            )
        if self.ca_bundle and not Path(self.ca_bundle).is_file():
            raise ConfigError(f"openmetadata.vault.ca_bundle = {self.ca_bundle!r}: no such file")


@dataclass(frozen=True, slots=True, kw_only=True)
class AwsSecretConfig:
    """[openmetadata.aws_secret]: the JWT from AWS Secrets Manager."""

    secret_id: str = ""
    region: str = ""
    field: str = ""  # when the secret is JSON, the key holding the token
    endpoint_url: str = ""  # override, for tests and VPC endpoints

    @property
    def enabled(self) -> bool:
        return bool(self.secret_id)

    def __post_init__(self) -> None:
        if self.secret_id and not self.region:
            raise ConfigError("openmetadata.aws_secret.region is empty: name the AWS region")


@dataclass(frozen=True, slots=True, kw_only=True)
class MappingRule:
    """[[openmetadata.mapping]]: which OpenMetadata service an OpenLineage namespace maps to."""

    namespace: str  # glob on the dataset namespace, e.g. "hive://*"
    service: str
    database: str = ""
    schema: str = ""
    entity: Literal["table", "container"] = "table"

    def __post_init__(self) -> None:
        if not self.namespace or not self.service:
            raise ConfigError("openmetadata.mapping: every rule needs `namespace` and `service`")
        one_of("openmetadata.mapping.entity", self.entity, ("table", "container"))


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenMetadataConfig:
    """[openmetadata]: where and how events are delivered."""

    host_port: str = "http://127.0.0.1:8585/api"
    sink: Literal["rest", "openlineage"] = "rest"
    jwt_token: Secret = field(default_factory=lambda: Secret(""))
    jwt_token_env: str = ""
    jwt_token_file: str = ""
    vault: VaultConfig = field(default_factory=VaultConfig)
    aws_secret: AwsSecretConfig = field(default_factory=AwsSecretConfig)
    pipeline_service_name: str = "spark"
    connection_pool_size: int = 10
    connection_timeout_ms: int = 30_000
    read_timeout_ms: int = 60_000
    retry_attempts: int = 0  # 0 = never give up
    retry_delay_ms: int = 1_000
    retry_max_delay_ms: int = 60_000
    retry_after_max_s: float = 300.0
    ssl_verify: bool = True
    ca_bundle: str = ""
    mapping: tuple[MappingRule, ...] = ()
    auto_create: bool = False  # rest sink: create missing tables/containers instead of parking
    unresolved_retention_s: float = 86_400.0  # rest sink: parked edges then dead-lettered

    def __post_init__(self) -> None:
        if not self.host_port.startswith(("http://", "https://")):
            raise ConfigError(
                f"openmetadata.host_port = {self.host_port!r}: must start with http:// or "
                "https:// and end with the API base, e.g. 'https://om.example.com/api'"
            )
        one_of("openmetadata.sink", self.sink, ("rest", "openlineage"))
        positive("openmetadata.unresolved_retention_s", self.unresolved_retention_s)
        sources = [
            name
            for name, on in (
                ("jwt_token", bool(self.jwt_token)),
                ("jwt_token_env", bool(self.jwt_token_env)),
                ("jwt_token_file", bool(self.jwt_token_file)),
                ("vault", self.vault.enabled),
                ("aws_secret", self.aws_secret.enabled),
            )
            if on
        ]
        if len(sources) > 1:
            raise ConfigError(
                f"openmetadata: several token sources are set ({', '.join(sources)}): keep one"
            )
        positive("openmetadata.connection_pool_size", self.connection_pool_size)
        positive("openmetadata.connection_timeout_ms", self.connection_timeout_ms)
        positive("openmetadata.read_timeout_ms", self.read_timeout_ms)
        positive("openmetadata.retry_attempts", self.retry_attempts, allow_zero=True)
        positive("openmetadata.retry_delay_ms", self.retry_delay_ms)
        if self.retry_max_delay_ms < self.retry_delay_ms:
            raise ConfigError(
                "openmetadata.retry_max_delay_ms must be >= openmetadata.retry_delay_ms"
            )
        if self.ca_bundle and not Path(self.ca_bundle).is_file():
            raise ConfigError(f"openmetadata.ca_bundle = {self.ca_bundle!r}: no such file")

    @property
    def api_base(self) -> str:
        """`host_port` without a trailing slash; calls go to api_base + '/v1/...'."""
        return self.host_port.rstrip("/")


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwarderConfig:
    """[forwarder]: batching from the spool to the sink."""

    enabled: bool = True  # false: only spool (tests that inspect the spool; replay later)
    max_batch_events: int = 500
    max_batch_bytes: int = 5 * 1024 * 1024
    linger_ms: int = 200
    max_lag_s: float = 300.0
    lease_s: float = 120.0
    retry_budget_ratio: float = 0.2  # retried calls kept to about this share of all calls

    def __post_init__(self) -> None:
        if not 0 <= self.retry_budget_ratio <= 1:
            raise ConfigError(
                f"forwarder.retry_budget_ratio = {self.retry_budget_ratio!r}: must be in [0, 1]"
            )
        positive("forwarder.max_batch_events", self.max_batch_events)
        positive("forwarder.max_batch_bytes", self.max_batch_bytes)
        positive("forwarder.linger_ms", self.linger_ms, allow_zero=True)
        positive("forwarder.max_lag_s", self.max_lag_s)
        positive("forwarder.lease_s", self.lease_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerConfig:
    """[breaker]: the circuit breaker in front of OpenMetadata."""

    failure_threshold: int = 5
    failure_rate: float = 0.5
    window: int = 20
    recovery_timeout_s: float = 30.0
    max_recovery_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        positive("breaker.failure_threshold", self.failure_threshold)
        if not 0 < self.failure_rate <= 1:
            raise ConfigError(f"breaker.failure_rate = {self.failure_rate!r}: must be in (0, 1]")
        positive("breaker.window", self.window)
        positive("breaker.recovery_timeout_s", self.recovery_timeout_s)
        if self.max_recovery_timeout_s < self.recovery_timeout_s:
            raise ConfigError("breaker.max_recovery_timeout_s must be >= recovery_timeout_s")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditConfig:
    """[audit]: one JSON line per write to OpenMetadata; off while `path` is empty."""

    path: str = ""
    max_bytes: int = 100 * 1024 * 1024  # the file rotates to path.1 ... beyond this
    backup_count: int = 5  # rotated files kept (>= 1: the stdlib handler rotates only then)

    @property
    def enabled(self) -> bool:
        return bool(self.path)

    def __post_init__(self) -> None:
        positive("audit.max_bytes", self.max_bytes)
        positive("audit.backup_count", self.backup_count)


@dataclass(frozen=True, slots=True, kw_only=True)
class OffloadConfig:
    """[offload]: at shutdown, what the drain left in the spool goes to S3 (gzip NDJSON)."""

    s3_uri: str = ""  # s3://bucket/prefix; "" = no offload
    region: str = ""  # "" = the standard AWS chain's region
    endpoint_url: str = ""  # an S3-compatible endpoint (MinIO, a VPC endpoint, tests)
    timeout_s: float = 60.0  # for the whole upload
    max_object_bytes: int = 8 * 1024 * 1024  # uncompressed NDJSON per object

    @property
    def enabled(self) -> bool:
        return bool(self.s3_uri)

    def __post_init__(self) -> None:
        if self.s3_uri and not (self.s3_uri.startswith("s3://") and self.s3_uri[5:].strip("/")):
            raise ConfigError(f"offload.s3_uri = {self.s3_uri!r}: expected s3://BUCKET[/PREFIX]")
        if self.endpoint_url and not self.endpoint_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"offload.endpoint_url = {self.endpoint_url!r}: must start with http(s)://"
            )
        positive("offload.timeout_s", self.timeout_s)
        positive("offload.max_object_bytes", self.max_object_bytes)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole configuration, one attribute per TOML table."""

    relay: RelayConfig = field(default_factory=RelayConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    openmetadata: OpenMetadataConfig = field(default_factory=OpenMetadataConfig)
    forwarder: ForwarderConfig = field(default_factory=ForwarderConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    offload: OffloadConfig = field(default_factory=OffloadConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
