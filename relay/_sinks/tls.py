"""TLS for calls to OpenMetadata: verification on unless explicitly turned off.

`make_ssl_context(config)` gives what aiohttp's `TCPConnector(ssl=...)` takes:
- https:// with `ca_bundle`: a context that trusts that bundle only (a private CA);
- https:// otherwise: the system's trust store;
- `ssl_verify = false`: `False` (no verification), with a loud warning at start;
- http://: `True` (aiohttp's default; unused without TLS), with a warning when the token
  would cross the network in clear text.
"""

from __future__ import annotations

import logging
import ssl
from urllib.parse import urlsplit

from .._config import OpenMetadataConfig, is_loopback
from .._exceptions import ConfigError

__all__ = ["make_ssl_context"]

log = logging.getLogger(__name__)


def _has_token_source(config: OpenMetadataConfig) -> bool:
    return bool(
        config.jwt_token
        or config.jwt_token_env
        or config.jwt_token_file
        or config.vault.enabled
        or config.aws_secret.enabled
    )


def make_ssl_context(config: OpenMetadataConfig) -> ssl.SSLContext | bool:
    """The `ssl=` argument for the OpenMetadata connector; `ConfigError` for a bad bundle."""
    url = urlsplit(config.host_port)
    if url.scheme == "http":
        host = url.hostname or ""
        if _has_token_source(config) and not is_loopback(host):
            log.warning(
                "openmetadata.host_port %r is plain http:// to %s: the bearer token crosses the "
                "network unencrypted; use https://",
                config.host_port,
                host,
            )
        if config.ca_bundle:
            log.warning(
                "openmetadata.ca_bundle is set but host_port is http://: the bundle is unused"
            )
        return True
    if not config.ssl_verify:
        log.warning(
            "TLS CERTIFICATE VERIFICATION IS OFF (openmetadata.ssl_verify = false): anyone on "
            "the path to %s can read the bearer token and the lineage. Set ca_bundle to the "
            "private CA instead and remove ssl_verify = false.",
            config.host_port,
        )
        if config.ca_bundle:
            log.warning("openmetadata.ca_bundle is ignored because ssl_verify = false")
        return False
    if not config.ca_bundle:
        return ssl.create_default_context()
    try:
        # With `cafile` only that bundle is trusted, not the system store: a private CA.
        return ssl.create_default_context(cafile=config.ca_bundle)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(
            f"openmetadata.ca_bundle = {config.ca_bundle!r} holds no usable PEM certificate "
            f"({exc}): point it at the CA certificate(s) in PEM format"
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"openmetadata.ca_bundle = {config.ca_bundle!r} cannot be read ({exc.strerror})"
        ) from exc
