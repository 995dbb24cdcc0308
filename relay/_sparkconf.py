"""What a `spark-defaults.conf` says about lineage, for `lineage-relay doctor --spark-conf`.

Pure: text in, findings out. The rules are those of the OpenLineage Spark integration (and of
`spark_plugin`, which reads the same keys): `spark.openlineage.transport.url` keeps only
`scheme://host:port`, the path comes from `.endpoint` (default `/api/v1/lineage`), and
`.timeoutInMillis` (default 5000) bounds every call the listener makes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["LISTENERS", "SparkLineageSettings", "parse_spark_conf"]

# Listeners that send OpenLineage events over HTTP (the OpenMetadata agent embeds the first).
LISTENERS = (
    "io.openlineage.spark.agent.OpenLineageSparkListener",
    "org.openmetadata.spark.agent.OpenMetadataSparkListener",
)
_OL = "spark.openlineage."
DEFAULT_ENDPOINT = "/api/v1/lineage"
DEFAULT_TIMEOUT_MS = 5000
INGEST_PATHS = ("/api/v1/lineage", "/api/v1/openlineage/lineage")


def parse_spark_conf(text: str) -> dict[str, str]:
    """`key value` or `key=value` lines, as Spark reads its properties file (last one wins)."""
    conf: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        separators = [i for i in (line.find("="), line.find(" "), line.find("\t")) if i > 0]
        if not separators:
            conf[line] = ""
            continue
        cut = min(separators)
        conf[line[:cut].strip()] = line[cut + 1 :].strip().lstrip("=").strip()
    return conf


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class SparkLineageSettings:
    """The lineage-relevant keys of one Spark configuration."""

    conf: dict[str, str]

    @property
    def listener(self) -> str | None:
        configured = [c.strip() for c in self.conf.get("spark.extraListeners", "").split(",")]
        return next((c for c in configured if c in LISTENERS), None)

    @property
    def transport_type(self) -> str:
        return self.conf.get(_OL + "transport.type", "")

    @property
    def url(self) -> str:
        return self.conf.get(_OL + "transport.url", "")

    @property
    def endpoint(self) -> str:
        """The path events are posted to, as the Spark integration derives it."""
        explicit = self.conf.get(_OL + "transport.endpoint", "")
        if explicit:
            return explicit if explicit.startswith("/") else "/" + explicit
        path = urlsplit(self.url).path
        return path if path.startswith("/api/") else DEFAULT_ENDPOINT

    @property
    def timeout_ms(self) -> int | None:
        """`timeoutInMillis` (None: not set; -1: not a number)."""
        text = self.conf.get(_OL + "transport.timeoutInMillis", "").strip()
        if not text:
            return None
        try:
            return int(float(text))
        except ValueError:
            return -1

    @property
    def api_key(self) -> str:
        return self.conf.get(_OL + "transport.auth.apiKey", "")

    def target(self) -> tuple[str, int] | None:
        """(host, port) the events go to, or None when the URL is missing or not http(s)."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return None
        return parts.hostname, port

    def points_at(self, listen_host: str, listen_port: int) -> bool:
        """Whether the events reach a relay listening on `listen_host:listen_port`."""
        target = self.target()
        if target is None:
            return False
        host, port = target
        if port != listen_port:
            return False
        if listen_host in ("0.0.0.0", "::"):  # noqa: S104 -- a wildcard listen takes loopback too
            return _is_loopback(host)
        if host == "localhost":
            return _is_loopback(listen_host)
        try:
            return ipaddress.ip_address(host) == ipaddress.ip_address(listen_host)
        except ValueError:
            return host == listen_host
