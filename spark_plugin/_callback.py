"""py4j's callback server (how the driver JVM calls our listener), started with an auth token.

pyspark's `ensure_callback_server_started` starts the Python side of the channel on 127.0.0.1
with no authentication: the JVM's callback client is created without a token, so any local
process that finds the port can call methods of every Python object registered with py4j.
pyspark offers no way to give that client a token, and a token on the Python side alone makes
every callback fail.

`start_callback_server` does what pyspark's function does (same parameters, loopback, ephemeral
port, daemon threads, then points the JVM's client at the real port) with a random token on the
Python server, and sets the same token on the JVM's callback client (its `authToken` field, by
reflection: py4j's `CallbackClient` sends it on every new connection). If the JVM side cannot be
given the token, the server is restarted without one, as pyspark would have started it, so
callbacks always work. A server already running (started by pyspark or by user code before
`enable`) is kept as it is: restarting it would cut whoever uses it.
"""

from __future__ import annotations

import logging
import secrets
from enum import Enum
from typing import Any

__all__ = ["CallbackChannel", "callback_client_token", "start_callback_server"]

log = logging.getLogger("spark_plugin")

_CLIENT_CLASS = "py4j.CallbackClient"


class CallbackChannel(Enum):
    """How the callback server that our listener uses was found or started."""

    AUTHENTICATED = "authenticated"  # started here, with a token both sides know
    UNAUTHENTICATED = "unauthenticated"  # started here without (the JVM client took no token)
    PREEXISTING = "preexisting"  # already running before enable(); left as it was


def _running(gateway: Any) -> bool:
    # getattr would fall through to the JVM: look in the instance dict, as pyspark does
    return gateway.__dict__.get("_callback_server") is not None


def _gateway_server(gateway: Any) -> Any:
    from py4j.java_gateway import JavaObject

    return JavaObject("GATEWAY_SERVER", gateway._gateway_client)


def _token_field(client: Any) -> Any:
    """The JVM callback client's `authToken` field, made writable."""
    cls = client.getClass()
    while cls is not None and cls.getName() != _CLIENT_CLASS:
        cls = cls.getSuperclass()
    if cls is None:
        raise LookupError(f"the JVM callback client is no {_CLIENT_CLASS}")
    field = cls.getDeclaredField("authToken")
    field.setAccessible(True)
    return field


def callback_client_token(gateway: Any) -> str | None:
    """The token the JVM's callback client sends (None: it authenticates nothing)."""
    client = _gateway_server(gateway).getCallbackClient()
    value = _token_field(client).get(client)
    return None if value is None else str(value)


def _start(gateway: Any, token: str | None) -> None:
    """pyspark's `ensure_callback_server_started`, with `token` on the Python server."""
    params = gateway.callback_server_parameters
    params.eager_load = True
    params.daemonize = True
    params.daemonize_connections = True
    params.port = 0
    params.auth_token = token
    gateway.start_callback_server(params)
    port = gateway._callback_server.server_socket.getsockname()[1]
    gateway._callback_server.port = port
    gateway._python_proxy_port = port
    server = _gateway_server(gateway)
    server.resetCallbackClient(server.getCallbackClient().getAddress(), port)


def start_callback_server(gateway: Any) -> CallbackChannel:
    """Make sure the JVM can call Python objects, over an authenticated channel if we start it."""
    if _running(gateway):
        token = getattr(gateway.callback_server_parameters, "auth_token", None)
        if not token:
            log.info(
                "lineage-relay: py4j's callback server was already running without "
                "authentication (started before enable()); keeping it"
            )
        return CallbackChannel.PREEXISTING
    token = secrets.token_hex(32)  # hex: py4j's line protocol needs no escaping
    try:
        _token_field(_gateway_server(gateway).getCallbackClient())
    except Exception:
        log.warning(
            "lineage-relay: cannot give py4j's JVM callback client a token; the callback "
            "channel stays unauthenticated (loopback only)",
            exc_info=True,
        )
        _start(gateway, None)
        return CallbackChannel.UNAUTHENTICATED
    _start(gateway, token)
    try:
        client = _gateway_server(gateway).getCallbackClient()
        field = _token_field(client)
        field.set(client, token)
        if str(field.get(client)) != token:
            raise RuntimeError("the JVM callback client kept its old token")
    except Exception:
        log.warning(
            "lineage-relay: could not set the token on py4j's JVM callback client; restarting "
            "the callback server without authentication (loopback only)",
            exc_info=True,
        )
        gateway.shutdown_callback_server()
        gateway.__dict__["_callback_server"] = None
        _start(gateway, None)
        return CallbackChannel.UNAUTHENTICATED
    return CallbackChannel.AUTHENTICATED
