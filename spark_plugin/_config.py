"""PluginConfig: what `enable()` runs with, read once from SparkConf, the environment and options.

Precedence, highest first:

1. keyword options given to `enable(spark, url=..., namespace=..., **options)`;
2. SparkConf keys, the same ones the OpenLineage Spark integration reads
   (`spark.openlineage.transport.url`, `.transport.endpoint`, `.transport.auth.apiKey`,
   `.transport.timeoutInMillis`, `.transport.compression`, `.transport.headers.<Name>`,
   `spark.openlineage.namespace`, `.appName`, `.parentJobNamespace`, `.parentJobName`,
   `.parentRunId`, `.rootParentJobNamespace`, `.rootParentJobName`, `.rootParentRunId`,
   `.capturedProperties`, `.dataset.disabledTrimmers`, `.dataset.removePath.pattern`,
   `.disabled`) plus OpenMetadata's agent keys
   `spark.openmetadata.transport.pipelineServiceName` / `pipelineName` / `pipelineDescription` /
   `pipelineSourceUrl` (passed through as the `openmetadata` job facet), and this plugin's own
   `spark.lineageRelay.spill.dir` / `spark.lineageRelay.spill.maxBytes` (outside
   `spark.openlineage.*`, so the OpenLineage jar never sees them);
3. the environment: `LINEAGE_RELAY_URL`, and `LINEAGE_ENABLED=false` as a kill switch that wins
   over everything;
4. the defaults below (post to the local relay at `http://127.0.0.1:5055/api/v1/lineage`).

Parsing happens once, here; nothing else in the plugin reads SparkConf or `os.environ`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from ._errors import ConfigError
from ._spill import DEFAULT_SPILL_DIR

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_URL",
    "PluginConfig",
    "Secret",
    "disabled_by_environment",
    "load_plugin_config",
]

DEFAULT_URL = "http://127.0.0.1:5055"
DEFAULT_ENDPOINT = "/api/v1/lineage"
DEFAULT_TIMEOUT_S = 2.0
DEFAULT_FLUSH_TIMEOUT_S = 2.0
DEFAULT_QUEUE_SIZE = 1000
DEFAULT_RETRIES = 2
DEFAULT_COLUMN_LINEAGE_MAX_COLUMNS = 1000
DEFAULT_CAPTURED_PROPERTIES = ("spark.master", "spark.app.name")
DEFAULT_SPILL_MAX_BYTES = 64 * 1024 * 1024

_OL = "spark.openlineage."
_OM = "spark.openmetadata.transport."
_RELAY = "spark.lineageRelay."  # this plugin's own keys
# OpenMetadata agent keys passed through (never jwtToken or hostPort: the relay owns those).
_OPENMETADATA_KEYS = (
    "pipelineServiceName",
    "pipelineName",
    "pipelineDescription",
    "pipelineSourceUrl",
)
_FALSE = frozenset({"false", "0", "no", "off"})
_TRUE = frozenset({"true", "1", "yes", "on"})


@dataclass(frozen=True, slots=True)
class Secret:
    """The transport's API key: repr and str never show it (a config gets logged)."""

    _value: str

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"Secret({'********' if self._value else ''!r})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True, kw_only=True)
class PluginConfig:
    """Everything the plugin needs, validated; vary it with `dataclasses.replace`."""

    url: str = DEFAULT_URL
    endpoint: str = ""  # empty: DEFAULT_ENDPOINT when `url` has no path, else `url` verbatim
    api_key: Secret = field(default_factory=lambda: Secret(""))
    headers: Mapping[str, str] = field(default_factory=dict)
    compression: str = ""  # "" or "gzip"
    timeout_s: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    queue_size: int = DEFAULT_QUEUE_SIZE
    flush_timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S
    namespace: str = "default"
    app_name: str = ""  # empty: spark.app.name
    parent_job_namespace: str = ""
    parent_job_name: str = ""
    parent_run_id: str = ""
    root_parent_job_namespace: str = ""
    root_parent_job_name: str = ""
    root_parent_run_id: str = ""
    captured_properties: tuple[str, ...] = DEFAULT_CAPTURED_PROPERTIES
    openmetadata: Mapping[str, str] = field(default_factory=dict)
    column_lineage_max_columns: int = DEFAULT_COLUMN_LINEAGE_MAX_COLUMNS
    dedicated_queue: bool = True  # own listener-bus queue "lineage": a slow walk delays no one
    jvm_filter: bool = True  # Janino-compiled JVM filter; False: every event crosses into Python
    # START when the execution starts (a second, lighter plan walk); default: START is sent with
    # COMPLETE/FAIL when the execution ends, carrying the start time
    early_start: bool = False
    # what the relay could not take by the end of close() goes to a file here ("": the system
    # temp dir's lineage-relay-spill); spill_max_bytes bounds the directory, 0 turns spilling off
    spill_dir: str = ""
    spill_max_bytes: int = DEFAULT_SPILL_MAX_BYTES
    # dataset name trimmers switched off (OpenLineage class names, see _trimming)
    disabled_trimmers: tuple[str, ...] = ()
    # regex whose named group `remove` is cut from dataset names; a bad one is logged, not raised
    remove_path_pattern: str = ""
    disabled: bool = False

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"url = {self.url!r}: expected http(s)://HOST[:PORT][/path], "
                f"e.g. {DEFAULT_URL!r} (spark.openlineage.transport.url or LINEAGE_RELAY_URL)"
            )
        if parts.path.strip("/") and self.endpoint:
            raise ConfigError(
                f"url = {self.url!r} has a path and endpoint = {self.endpoint!r} is set too: "
                "keep one (spark.openlineage.transport.endpoint)"
            )
        if self.endpoint and not self.endpoint.startswith("/"):
            raise ConfigError(f"endpoint = {self.endpoint!r}: must start with '/'")
        if self.compression not in ("", "gzip"):
            raise ConfigError(f"compression = {self.compression!r}: must be '' or 'gzip'")
        for key in ("timeout_s", "flush_timeout_s"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key} = {getattr(self, key)!r}: must be > 0")
        if self.queue_size < 1:
            raise ConfigError(f"queue_size = {self.queue_size!r}: must be >= 1")
        if not 0 <= self.retries <= 10:
            raise ConfigError(f"retries = {self.retries!r}: must be between 0 and 10")
        if self.spill_max_bytes < 0:
            raise ConfigError(
                f"spill_max_bytes = {self.spill_max_bytes!r}: must be >= 0 (0 turns spilling off; "
                "spark.lineageRelay.spill.maxBytes)"
            )
        if self.column_lineage_max_columns < 0:
            raise ConfigError(
                f"column_lineage_max_columns = {self.column_lineage_max_columns!r}: must be >= 0"
            )
        if not self.namespace:
            raise ConfigError("namespace is empty (spark.openlineage.namespace)")
        if bool(self.parent_run_id) != bool(self.parent_job_name):
            raise ConfigError(
                "spark.openlineage.parentJobName and spark.openlineage.parentRunId go together: "
                "set both or neither"
            )
        for key in ("parent_run_id", "root_parent_run_id"):
            value = getattr(self, key)
            if value:
                try:
                    uuid.UUID(value)
                except ValueError:
                    raise ConfigError(
                        f"{key} = {value!r}: OpenLineage run ids are UUIDs "
                        "(spark.openlineage.parentRunId / rootParentRunId)"
                    ) from None
        if bool(self.root_parent_run_id) != bool(self.root_parent_job_name):
            raise ConfigError(
                "spark.openlineage.rootParentJobName and rootParentRunId go together: "
                "set both or neither"
            )

    @property
    def spill_directory(self) -> str:
        """Where spill files go: `spill_dir`, else the default under the system temp dir."""
        return self.spill_dir or DEFAULT_SPILL_DIR

    @property
    def post_url(self) -> str:
        """Where events go: `url` verbatim when it has a path, else `url` + endpoint."""
        base = self.url.rstrip("/")
        if urlsplit(self.url).path.strip("/"):
            return self.url
        return base + (self.endpoint or DEFAULT_ENDPOINT)


_OPTION_NAMES = frozenset(f.name for f in fields(PluginConfig))


def _flag(key: str, value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{key} = {value!r}: expected true or false")


def _number(key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{key} = {value!r}: expected a number") from None


def _semicolon_list(value: str) -> tuple[str, ...]:
    """`a;b`, also OpenLineage's list form `[a;b]`."""
    return tuple(p.strip() for p in value.strip().strip("[]").split(";") if p.strip())


def _from_spark_conf(conf: Mapping[str, str]) -> dict[str, Any]:
    """The SparkConf keys, renamed to PluginConfig fields."""
    out: dict[str, Any] = {}
    simple = {
        "transport.url": "url",
        "transport.endpoint": "endpoint",
        "transport.compression": "compression",
        "namespace": "namespace",
        "appName": "app_name",
        "parentJobNamespace": "parent_job_namespace",
        "parentJobName": "parent_job_name",
        "parentRunId": "parent_run_id",
        "rootParentJobNamespace": "root_parent_job_namespace",
        "rootParentJobName": "root_parent_job_name",
        "rootParentRunId": "root_parent_run_id",
    }
    for key, name in simple.items():
        value = conf.get(_OL + key, "").strip()
        if value:
            out[name] = value
    api_key = conf.get(_OL + "transport.auth.apiKey", "")
    if api_key:
        out["api_key"] = Secret(api_key)
    timeout_ms = conf.get(_OL + "transport.timeoutInMillis", "").strip()
    if timeout_ms:
        out["timeout_s"] = _number(_OL + "transport.timeoutInMillis", timeout_ms) / 1000.0
    headers = {
        key[len(_OL + "transport.headers.") :]: value
        for key, value in conf.items()
        if key.startswith(_OL + "transport.headers.")
    }
    if headers:
        out["headers"] = headers
    captured = conf.get(_OL + "capturedProperties", "").strip()
    if captured:
        extra = [p.strip() for p in captured.strip("[]").replace(",", ";").split(";") if p.strip()]
        out["captured_properties"] = tuple(dict.fromkeys([*DEFAULT_CAPTURED_PROPERTIES, *extra]))
    trimmers = _semicolon_list(conf.get(_OL + "dataset.disabledTrimmers", ""))
    if trimmers:
        out["disabled_trimmers"] = trimmers
    remove_path = conf.get(_OL + "dataset.removePath.pattern", "").strip()
    if remove_path:
        out["remove_path_pattern"] = remove_path
    spill_dir = conf.get(_RELAY + "spill.dir", "").strip()
    if spill_dir:
        out["spill_dir"] = spill_dir
    spill_max = conf.get(_RELAY + "spill.maxBytes", "").strip()
    if spill_max:
        out["spill_max_bytes"] = int(_number(_RELAY + "spill.maxBytes", spill_max))
    disabled = conf.get(_OL + "disabled", "").strip()
    if disabled:
        out["disabled"] = _flag(_OL + "disabled", disabled)
    openmetadata = {k: conf[_OM + k] for k in _OPENMETADATA_KEYS if conf.get(_OM + k, "").strip()}
    if openmetadata:
        out["openmetadata"] = openmetadata
    return out


def _from_options(options: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        if name == "pipeline_service_name":
            out["openmetadata"] = {"pipelineServiceName": str(value)}
            continue
        if name not in _OPTION_NAMES:
            known = ", ".join(sorted(_OPTION_NAMES | {"pipeline_service_name"}))
            raise ConfigError(f"unknown option {name!r} for enable(); known options: {known}")
        if name == "api_key" and isinstance(value, str):
            value = Secret(value)
        if name == "captured_properties":
            value = tuple(value)
        if name == "disabled_trimmers":
            value = _semicolon_list(value) if isinstance(value, str) else tuple(value)
        out[name] = value
    return out


def disabled_by_environment(environ: Mapping[str, str]) -> bool:
    """`LINEAGE_ENABLED=false` (or 0/no/off): the kill switch, checked before anything else."""
    enabled = environ.get("LINEAGE_ENABLED", "").strip()
    return bool(enabled) and not _flag("LINEAGE_ENABLED", enabled)


def load_plugin_config(
    spark_conf: Mapping[str, str],
    environ: Mapping[str, str],
    options: Mapping[str, Any] | None = None,
) -> PluginConfig:
    """Build the config: options > SparkConf > environment > defaults (see module docstring)."""
    values: dict[str, Any] = {}
    env_url = environ.get("LINEAGE_RELAY_URL", "").strip()
    if env_url:
        values["url"] = env_url
    conf_values = _from_spark_conf(spark_conf)
    option_values = _from_options(options or {})
    if "openmetadata" in conf_values and "openmetadata" in option_values:
        option_values["openmetadata"] = {
            **conf_values["openmetadata"],
            **option_values["openmetadata"],
        }
    values.update(conf_values)
    values.update(option_values)
    if disabled_by_environment(environ):
        values["disabled"] = True
    return PluginConfig(**values)
