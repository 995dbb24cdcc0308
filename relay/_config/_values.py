"""The value types and checks the configuration sections share: a masked secret, HOST:PORT."""

from __future__ import annotations

import ipaddress

from .._exceptions import ConfigError

__all__ = ["DEFAULT_LISTEN", "Secret", "is_loopback", "one_of", "parse_host_port", "positive"]

DEFAULT_LISTEN = "127.0.0.1:5055"


class Secret:
    """A secret string whose repr and str never show the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def parse_host_port(value: str, *, key: str) -> tuple[str, int]:
    """Split `host:port` (IPv6 as `[::1]:port`), refusing anything else."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(f"{key} = {value!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ConfigError(f"{key} = {value!r}: port must be between 0 and 65535")
    return host.strip("[]"), port


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, as `parse_host_port` gives it) is this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def positive(key: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{key} = {value!r}: must be {bound}")


def one_of(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key} = {value!r}: must be one of {', '.join(map(repr, choices))}")
