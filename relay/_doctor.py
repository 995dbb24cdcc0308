"""`lineage-relay doctor [--config FILE] [--spark-conf FILE]`: check a setup before turning it on.

Prints one row per check, `PASS`, `WARN` or `FAIL`, each warning and failure with its fix:

    configuration      the file loads and validates
    listen address     loopback; otherwise an ingest token must be set
    spool directory    writable (or creatable); free disk against spool.max_bytes
    audit log          with [audit] path: its directory writable (or creatable)
    offload bucket     with [offload] s3_uri: an object can be written there and removed
    TLS                verification on (https), or plain http only to loopback
    token source       one configured, not inline in the file
    token              obtainable from its source; its JWT expiry (warn under 7 days)
    OpenMetadata       reachable (GET /api/v1/system/version, no auth) and its version
    token accepted     a harmless authenticated GET
    native endpoint    whether POST /v1/openlineage/lineage/batch exists, and which sink fits
    spark conf         with --spark-conf: a listener (or spark_plugin keys), the transport URL
                       pointing at this relay, a timeout sane for loopback, the ingest token

Exit status: 0 all passed, 1 warnings, 2 failures. No token is printed: messages name where a
token comes from, never what it is, and every line is scrubbed of the tokens read.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from ._admin import CallFailed, HttpCaller
from ._check import Check
from ._clock import SystemClock
from ._config import Config, Secret, is_loopback, load_config
from ._exceptions import AuthError, ConfigError, OffloadError
from ._observe.logging import redact
from ._secrets import jwt_expiry, make_token_provider
from ._sinks.tls import make_ssl_context
from ._sparkconf import spark_checks

__all__ = ["Check", "diagnose", "exit_status", "render", "run"]

_EXIT = {"pass": 0, "warn": 1, "fail": 2}
_EXPIRY_WARN_S = 7 * 86400
_NATIVE_BATCH = "/v1/openlineage/lineage/batch"


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    stream = out if out is not None else sys.stdout
    # The checks say what the relay's own warnings would; keep stderr to real problems.
    logging.getLogger("relay").addHandler(logging.NullHandler())
    checks = asyncio.run(diagnose(args.config, args.spark_conf, timeout_s=args.timeout))
    stream.write(render(checks, args.config))
    return exit_status(checks)


def exit_status(checks: list[Check]) -> int:
    """0 when every check passed, 1 with warnings, 2 with failures."""
    return max((_EXIT[c.level] for c in checks), default=0)


def render(checks: list[Check], config_path: str | None) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"lineage-relay doctor (config: {config_path or 'defaults and environment'})"]
    for check in checks:
        lines.append(f"  {check.level.upper():4}  {check.name:<{width}}  {check.detail}")
        if check.fix and check.level != "pass":
            lines.append(f"        {'':<{width}}  fix: {check.fix}")
    counts = {level: sum(c.level == level for c in checks) for level in _EXIT}
    worst = exit_status(checks)
    lines.append(
        f"{counts['pass']} passed, {counts['warn']} warnings, {counts['fail']} failures "
        f"(exit status {worst})"
    )
    scrubbed: str = redact("\n".join(lines) + "\n")  # tokens read here are registered secrets
    return scrubbed


async def diagnose(
    config_path: str | None, spark_conf: str | None, *, timeout_s: float = 10.0
) -> list[Check]:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return [
            Check(
                "configuration",
                "fail",
                str(exc),
                "correct the named key (examples/relay.toml documents every key)",
            )
        ]
    checks = [Check("configuration", "pass", f"valid ({config_path or 'defaults'})")]
    checks.append(_listen(config))
    checks.extend(_spool(config))
    if config.audit.enabled:
        checks.append(_audit(config))
    checks.extend(_tls(config))
    checks.extend(await _openmetadata(config, timeout_s))
    if config.offload.enabled:
        checks.append(await _offload(config, timeout_s))
    if spark_conf is not None:
        checks.extend(_spark(config, spark_conf))
    return checks


def _listen(config: Config) -> Check:
    host = config.relay.host
    token_set = bool(config.ingest.token or config.ingest.token_file)
    if is_loopback(host):
        return Check("listen address", "pass", f"{config.relay.listen} (loopback)")
    if not token_set:
        return Check(
            "listen address",
            "fail",
            f"{config.relay.listen} is reachable from the network and no ingest token is set: "
            "anyone who can reach it can post events",
            "listen on 127.0.0.1, or set ingest.token_file (clients then send "
            "spark.openlineage.transport.auth.apiKey)",
        )
    return Check(
        "listen address",
        "warn",
        f"{config.relay.listen} is reachable from the network (an ingest token is required)",
        "listen on 127.0.0.1 unless other hosts or Prometheus must reach the relay",
    )


def _existing_ancestor(path: Path) -> Path:
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _writable(name: str, directory: Path, fix: str) -> tuple[Check, Path | None]:
    """Whether the relay can write in `directory` (or create it): the check, and where."""
    ancestor = _existing_ancestor(directory)
    if not ancestor.is_dir():
        return Check(name, "fail", f"{directory}: {ancestor} is not a directory", fix), None
    where = directory if ancestor == directory.absolute() else ancestor
    try:
        with tempfile.NamedTemporaryFile(dir=where, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check(name, "fail", f"{where} is not writable ({exc.strerror})", fix), None
    detail = f"{directory} writable" if where == directory else f"{directory} can be created"
    return Check(name, "pass", detail), where


def _audit(config: Config) -> Check:
    path = Path(config.audit.path)
    fix = "point audit.path at a file in a directory the relay's user may write, or leave it empty"
    check, _ = _writable("audit log", path.parent, fix)
    return check if check.level == "fail" else Check("audit log", "pass", f"{path} can be written")


def _spool(config: Config) -> list[Check]:
    directory = config.spool.dir
    fix = f"create {directory} writable by the relay's user, or set spool.dir (or --spool-dir)"
    check, where = _writable("spool directory", directory, fix)
    if where is None:
        return [check]
    checks = [check]
    free = shutil.disk_usage(where).free
    if free < config.spool.max_bytes:
        checks.append(
            Check(
                "spool disk",
                "warn",
                f"{_gib(free)} free on its disk, less than spool.max_bytes "
                f"({_gib(config.spool.max_bytes)}): the disk fills before the spool refuses events",
                "lower spool.max_bytes below the free space, or give the spool a larger disk",
            )
        )
    else:
        checks.append(
            Check(
                "spool disk",
                "pass",
                f"{_gib(free)} free, spool.max_bytes {_gib(config.spool.max_bytes)}",
            )
        )
    return checks


def _gib(count: int) -> str:
    return f"{count / 1024**3:.1f} GiB"


def _tls(config: Config) -> list[Check]:
    om = config.openmetadata
    url = urlsplit(om.host_port)
    try:
        make_ssl_context(om)
    except ConfigError as exc:
        return [Check("TLS", "fail", str(exc), "point openmetadata.ca_bundle at a PEM CA file")]
    if url.scheme == "https":
        if not om.ssl_verify:
            return [
                Check(
                    "TLS",
                    "warn",
                    "certificate verification is OFF (openmetadata.ssl_verify = false): the token "
                    "can be read by anyone on the path",
                    "remove ssl_verify = false; set openmetadata.ca_bundle for a private CA",
                )
            ]
        bundle = f", CA bundle {om.ca_bundle}" if om.ca_bundle else ", system CAs"
        return [Check("TLS", "pass", f"https with certificate verification{bundle}")]
    if is_loopback(url.hostname or ""):
        return [Check("TLS", "pass", "plain http to a server on this host")]
    return [
        Check(
            "TLS",
            "warn",
            f"plain http to {url.hostname}: the token and the lineage cross the network "
            "unencrypted",
            "use an https:// openmetadata.host_port",
        )
    ]


async def _openmetadata(config: Config, timeout_s: float) -> list[Check]:
    om = config.openmetadata
    checks: list[Check] = []
    token, token_checks = await _token(config)
    checks.extend(token_checks)
    try:
        ssl_context = make_ssl_context(om)
    except ConfigError:
        ssl_context = True  # reported by the TLS check already
    async with HttpCaller(
        om.api_base, token=token, ssl_context=ssl_context, timeout_s=timeout_s
    ) as http:
        reachable = await _version(http)
        checks.append(reachable)
        if reachable.level == "fail":
            return checks
        checks.append(await _accepted(http, token))
        checks.append(await _native_endpoint(http, config))
    return checks


async def _token(config: Config) -> tuple[Secret | None, list[Check]]:
    om = config.openmetadata
    provider = make_token_provider(om, clock=SystemClock())
    checks: list[Check] = []
    try:
        if not provider.enabled:
            checks.append(
                Check(
                    "token source",
                    "warn",
                    "no OpenMetadata token configured (no Authorization header)",
                    "set openmetadata.jwt_token_file (or jwt_token_env, vault, aws_secret) to "
                    "the bot's JWT",
                )
            )
            return None, checks
        if om.jwt_token:
            checks.append(
                Check(
                    "token source",
                    "warn",
                    "openmetadata.jwt_token is inline in the configuration file",
                    "move it to a file (jwt_token_file), an environment variable, Vault or AWS "
                    "Secrets Manager, and remove jwt_token",
                )
            )
        else:
            checks.append(Check("token source", "pass", provider.source))
        try:
            token = await provider.token()
        except AuthError as exc:
            checks.append(Check("token", "fail", str(exc), "fix the token source named above"))
            return None, checks
        checks.append(_expiry(token))
        return token, checks
    finally:
        await provider.aclose()


def _expiry(token: Secret | None) -> Check:
    exp = jwt_expiry(token) if token else None
    if exp is None:
        return Check("token", "pass", "obtained (no expiry claim)")
    left_s = exp - datetime.now(UTC).timestamp()
    when = datetime.fromtimestamp(exp, UTC).isoformat(timespec="seconds")
    fix = "issue a new bot token in OpenMetadata (Settings > Bots) and put it in its source"
    if left_s <= 0:
        return Check("token", "fail", f"the JWT expired at {when}", fix)
    if left_s < _EXPIRY_WARN_S:
        return Check("token", "warn", f"the JWT expires in {left_s / 86400:.1f} days ({when})", fix)
    return Check(
        "token", "pass", f"obtained; the JWT expires in {left_s / 86400:.0f} days ({when})"
    )


async def _version(http: HttpCaller) -> Check:
    fix = "check openmetadata.host_port (the API base, ending in /api), DNS, firewall, proxy"
    try:
        answer = await http.call("GET", "/v1/system/version", auth=False)
    except CallFailed as exc:
        if exc.tls:
            fix = (
                "set openmetadata.ca_bundle to the PEM of the CA that signed OpenMetadata's "
                "certificate (a private CA), or fix the certificate's names"
            )
        return Check("OpenMetadata", "fail", f"unreachable: {exc}", fix)
    doc = answer.json()
    if answer.status != 200 or not isinstance(doc, dict) or "version" not in doc:
        return Check(
            "OpenMetadata",
            "fail",
            f"GET {answer.url} answered {answer.status}, not an OpenMetadata version",
            fix,
        )
    return Check("OpenMetadata", "pass", f"version {doc['version']} at {http.base_url}")


async def _accepted(http: HttpCaller, token: Secret | None) -> Check:
    try:
        answer = await http.call("GET", "/v1/tables", params={"limit": "1"})
    except CallFailed as exc:
        return Check("token accepted", "fail", str(exc), "check the network to OpenMetadata")
    if answer.status == 200:
        return Check("token accepted", "pass", f"GET {answer.url} answered 200")
    if answer.status == 401:
        return Check(
            "token accepted",
            "fail",
            f"OpenMetadata refused the token (401: {answer.message()})"
            if token
            else "OpenMetadata requires a token (401)",
            "give the relay a valid bot token (Settings > Bots in OpenMetadata)",
        )
    if answer.status == 403:
        return Check(
            "token accepted",
            "warn",
            f"the token is valid but may not list tables (403: {answer.message()})",
            "give the bot a role with ViewBasic and EditLineage on tables (and Create for "
            "auto-created entities)",
        )
    return Check(
        "token accepted",
        "warn",
        f"GET {answer.url} answered {answer.status}: {answer.message()}",
        "check OpenMetadata's logs",
    )


async def _native_endpoint(http: HttpCaller, config: Config) -> Check:
    sink = config.openmetadata.sink
    try:
        # An empty batch writes nothing; a server without the endpoint answers 404.
        answer = await http.call("POST", _NATIVE_BATCH, body={"events": []})
    except CallFailed as exc:
        return Check("native endpoint", "warn", f"not probed: {exc}", "")
    if answer.status in (401, 403):
        return Check(
            "native endpoint",
            "warn",
            f"not probed: {answer.status} (see the token)",
            "fix the token first",
        )
    if answer.status == 404:
        if sink == "openlineage":
            return Check(
                "native endpoint",
                "fail",
                "this OpenMetadata has no native OpenLineage endpoint, and "
                'sink = "openlineage" needs it',
                'set openmetadata.sink = "rest" (or upgrade OpenMetadata)',
            )
        return Check("native endpoint", "pass", 'absent; sink = "rest" does not need it')
    if answer.status == 503:
        if sink == "openlineage":
            return Check(
                "native endpoint",
                "fail",
                f"present but disabled in OpenMetadata ({answer.message()})",
                'enable OpenLineage in OpenMetadata\'s settings, or set openmetadata.sink = "rest"',
            )
        return Check(
            "native endpoint", "pass", 'present but disabled; sink = "rest" does not need it'
        )
    if sink == "openlineage":
        return Check(
            "native endpoint",
            "pass",
            'present; sink = "openlineage" uses it (no pipeline run status: '
            'sink = "rest" writes it)',
        )
    return Check(
        "native endpoint", "pass", 'present; sink = "rest" is used (run status, exact tables)'
    )


def _spark(config: Config, path: str) -> list[Check]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [
            Check("spark conf", "fail", f"{path} cannot be read ({exc})", "pass a readable file")
        ]
    ingest_token: str | None = None
    if config.ingest.token:
        ingest_token = config.ingest.token.reveal()
    elif config.ingest.token_file:
        try:
            ingest_token = Path(config.ingest.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            return [
                Check(
                    "spark ingest token", "fail",
                    f"ingest.token_file unreadable ({exc.strerror})", "fix ingest.token_file",
                )
            ]  # fmt: skip
    return spark_checks(config.relay.host, config.relay.port, text, path, ingest_token)


async def _offload(config: Config, timeout_s: float) -> Check:
    """Write and remove a small object where the shutdown offload writes (its permission)."""
    from ._offload.s3 import S3Location, put_object, s3_client, translate

    offload = config.offload
    location = S3Location.parse(offload.s3_uri)
    key = location.key(".lineage-relay-doctor")  # no replayable suffix: replay skips it
    fix = (
        "create the bucket, or grant the relay's AWS identity s3:PutObject, s3:ListBucket, "
        "s3:GetObject and s3:DeleteObject there (offload.region, offload.endpoint_url)"
    )
    try:
        async with s3_client(
            region=offload.region, endpoint_url=offload.endpoint_url,
            timeout_s=min(offload.timeout_s, timeout_s),
        ) as s3:  # fmt: skip
            await put_object(s3, location, key, b"")
            try:
                await s3.delete_object(Bucket=location.bucket, Key=key)
            except Exception as exc:  # noqa: BLE001 -- botocore's, translated below
                raise translate(exc, "removing a test object from", location) from None
    except OffloadError as exc:
        return Check("offload bucket", "fail", str(exc), fix)
    return Check("offload bucket", "pass", f"{location} takes objects")
