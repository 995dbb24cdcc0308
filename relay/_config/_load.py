"""Reading a configuration: defaults -> TOML file -> `LINEAGE_RELAY_*` variables -> flags, each
value converted to its key's type and refused, naming the key (and the closest known one), when
it cannot be."""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from .._exceptions import ConfigError
from ._sections import Config
from ._values import Secret

__all__ = ["ENV_PREFIX", "load_config"]

ENV_PREFIX = "LINEAGE_RELAY_"
# Variables with the prefix that belong to others, not to a key: the Spark plugin's relay URL
# (a driver host runs both) and the test suite's reference folder.
_FOREIGN_VARIABLES = frozenset({"LINEAGE_RELAY_URL", "LINEAGE_RELAY_SHARED_DIR"})


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build a validated `Config` from defaults, a TOML file, the environment and flags.

    `overrides` holds dotted keys from the command line, e.g. {"relay.listen": "..."}.
    Raises `ConfigError` naming the first wrong key.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file {os.fspath(path)!r} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {os.fspath(path)!r} is not valid TOML: {exc}") from exc
    env = os.environ if environ is None else environ
    _refuse_unknown_variables(env)
    _apply_env(data, Config, env, ENV_PREFIX, "")
    for dotted, value in (overrides or {}).items():
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    config: Config = _build(Config, data, "")
    return config


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _dataclass_type(tp: Any) -> type | None:
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def _apply_env(
    data: dict[str, Any], cls: type, env: Mapping[str, str], prefix: str, dotted: str
) -> None:
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        name = f"{prefix}{f.name.upper()}"
        sub = _dataclass_type(tp)
        if sub is not None:
            child = data.setdefault(f.name, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{dotted}{f.name}: must be a table")
            _apply_env(child, sub, env, f"{name}_", f"{dotted}{f.name}.")
        elif name in env:
            data[f.name] = _from_env(f"{dotted}{f.name}", name, env[name], tp)


def _variables(cls: type, prefix: str, dotted: str) -> dict[str, str]:
    """Every environment variable a key can be set with -> that key (dotted)."""
    names: dict[str, str] = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name.upper()}"
        sub = _dataclass_type(hints[f.name])
        if sub is not None:
            names.update(_variables(sub, f"{name}_", f"{dotted}{f.name}."))
        else:
            names[name] = f"{dotted}{f.name}"
    return names


def _refuse_unknown_variables(env: Mapping[str, str]) -> None:
    """A misspelt variable would otherwise be ignored silently, its setting never applied."""
    known = _variables(Config, ENV_PREFIX, "")
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in known or var in _FOREIGN_VARIABLES:
            continue
        # Compared without the prefix every name shares, which would make anything look close.
        suffixes = {name.removeprefix(ENV_PREFIX): name for name in known}
        close = [suffixes[m] for m in difflib.get_close_matches(var[len(ENV_PREFIX) :], suffixes)]
        hint = f" (did you mean ${close[0]}, {known[close[0]]}?)" if close else ""
        raise ConfigError(
            f"environment variable ${var} names no configuration key{hint}; rename or unset it "
            f"(variables are {ENV_PREFIX}<SECTION>_<KEY>, see examples/relay.toml)"
        )


def _closest(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _from_env(key: str, var: str, text: str, tp: Any) -> Any:
    if tp is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key} (from ${var}) = {text!r}: expected true or false")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key} (from ${var}) = {text!r}: expected an integer") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{key} (from ${var}) = {text!r}: expected a number") from None
    if typing.get_origin(tp) is tuple:
        import orjson

        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            raise ConfigError(f"{key} (from ${var}): expected a JSON list of tables") from None
    return text


def _build(cls: type, data: Any, dotted: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{dotted.rstrip('.') or 'config'}: must be a table")
    hints = _hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        where = dotted.rstrip(".") or "top level"
        raise ConfigError(
            f"unknown key {dotted}{unknown[0]} in {where}; {_closest(unknown[0], known)}"
            f"known keys: {', '.join(sorted(known))}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kwargs[name] = _convert(f"{dotted}{name}", value, hints[name])
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a missing required key in a list-of-tables entry
        raise ConfigError(f"{dotted.rstrip('.')}: {exc}") from exc


def _convert(key: str, value: Any, tp: Any) -> Any:
    sub = _dataclass_type(tp)
    if sub is not None:
        return _build(sub, value, f"{key}.")
    origin = typing.get_origin(tp)
    if origin is tuple:
        (item_tp, _) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: must be a list of tables ([[{key}]])")
        return tuple(_build(item_tp, item, f"{key}.") for item in value)
    if origin is Literal:
        if not isinstance(value, str):
            raise ConfigError(f"{key} = {value!r}: must be a string")
        return value
    if tp is Secret:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: must be a string")
        return Secret(value)
    if tp is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{key} = {value!r}: must be a path string")
        return Path(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} = {value!r}: must be true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} = {value!r}: must be an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} = {value!r}: must be a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} = {value!r}: must be a string")
        return value
    if isinstance(tp, types.UnionType):  # not used by any key today
        return value
    raise ConfigError(f"{key}: unsupported type {tp!r}")
