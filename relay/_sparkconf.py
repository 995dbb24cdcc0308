"""What a `spark-defaults.conf` says about lineage: `lineage-relay doctor --spark-conf`.

Pure: text in, findings (`Check`s) out. The rules are those of the OpenLineage Spark
integration (and of `spark_plugin`, which reads the same keys):
`spark.openlineage.transport.url` keeps only `scheme://host:port`, the path comes from
`.endpoint` (default `/api/v1/lineage`), and `.timeoutInMillis` (default 5000) bounds every
call the listener makes.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from ._check import Check
from ._config import is_loopback

__all__ = ["LISTENERS", "SparkLineageSettings", "parse_spark_conf", "spark_checks"]

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
            return is_loopback(host)
        if host == "localhost":
            return is_loopback(listen_host)
        try:
            return ipaddress.ip_address(host) == ipaddress.ip_address(listen_host)
        except ValueError:
            return host == listen_host


def spark_checks(
    host: str, port: int, text: str, path: str, ingest_token: str | None
) -> list[Check]:
    """Doctor's findings on a spark-defaults.conf for a relay listening on host:port.

    `ingest_token`: the token the relay requires (None: none); compared, never shown.
    """
    spark = SparkLineageSettings(parse_spark_conf(text))
    checks: list[Check] = []
    if spark.listener:
        checks.append(Check("spark listener", "pass", spark.listener))
        if spark.transport_type != "http":
            checks.append(
                Check(
                    "spark transport",
                    "fail",
                    "spark.openlineage.transport.type = "
                    f"{spark.transport_type or '(unset: console)'!r}",
                    "set spark.openlineage.transport.type=http",
                )
            )
    elif spark.url:
        checks.append(
            Check(
                "spark listener",
                "pass",
                "no JVM listener; spark.openlineage.* set for spark_plugin",
            )
        )
    else:
        return [
            Check(
                "spark listener",
                "fail",
                f"{path} configures no lineage listener and no transport URL",
                f"set spark.extraListeners={LISTENERS[0]} and spark.openlineage.transport.url "
                "(or call spark_plugin.enable(spark) in PySpark jobs)",
            )
        ]
    checks.append(_spark_target(host, port, spark))
    checks.append(_spark_timeout(spark))
    if ingest_token is not None:
        checks.append(_spark_api_key(ingest_token, spark))
    return checks


def _spark_target(host: str, port: int, spark: SparkLineageSettings) -> Check:
    listen = f"{host}:{port}"
    fix = f"set spark.openlineage.transport.url=http://127.0.0.1:{port} (this relay)"
    if not spark.points_at(host, port):
        return Check(
            "spark target",
            "fail",
            f"events go to {spark.url or '(no URL)'}, not to this relay ({listen})",
            fix,
        )
    if spark.endpoint.rstrip("/") not in ("/api/v1/lineage", "/api/v1/openlineage/lineage"):
        return Check(
            "spark target",
            "fail",
            f"endpoint {spark.endpoint} is not an ingest path of the relay",
            "remove spark.openlineage.transport.endpoint (default /api/v1/lineage)",
        )
    return Check("spark target", "pass", f"{spark.url}{spark.endpoint} is this relay")


def _spark_timeout(spark: SparkLineageSettings) -> Check:
    timeout = spark.timeout_ms
    fix = "set spark.openlineage.transport.timeoutInMillis=2000 (the relay answers from loopback)"
    if timeout is None:
        return Check("spark timeout", "warn", "timeoutInMillis unset: 5000 ms per call", fix)
    if timeout < 0:
        return Check("spark timeout", "fail", "timeoutInMillis is not a number", fix)
    if timeout < 200 or timeout > 5000:
        return Check(
            "spark timeout",
            "warn",
            f"timeoutInMillis = {timeout}: too {'short' if timeout < 200 else 'long'} for loopback",
            fix,
        )
    return Check("spark timeout", "pass", f"{timeout} ms")


def _spark_api_key(ingest_token: str, spark: SparkLineageSettings) -> Check:
    fix = "set spark.openlineage.transport.auth.type=api_key and .auth.apiKey to the ingest token"
    if not spark.api_key:
        return Check(
            "spark ingest token",
            "fail",
            "the relay requires an ingest token; Spark sends none",
            fix,
        )
    if not hmac.compare_digest(spark.api_key.strip().encode(), ingest_token.encode()):
        return Check(
            "spark ingest token", "fail", "Spark's apiKey is not the relay's ingest token", fix
        )
    return Check("spark ingest token", "pass", "Spark sends the relay's ingest token")
