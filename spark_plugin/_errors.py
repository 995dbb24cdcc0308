"""The plugin's errors. It runs inside a Spark driver, so it defines its own and needs nothing of
the relay: a driver may have the plugin installed without the relay.

    PluginError
    ├── ConfigError              an option is wrong: the message names it and what to do
    └── UnsupportedSessionError  enable() got a session it cannot hook (Spark Connect)
"""

from __future__ import annotations

__all__ = ["ConfigError", "PluginError", "UnsupportedSessionError"]


class PluginError(Exception):
    """Root of every error the plugin raises on purpose."""


class ConfigError(PluginError, ValueError):
    """An option of `enable()` (keyword, SparkConf key or environment variable) is wrong; the
    message names it."""


class UnsupportedSessionError(PluginError, TypeError):
    """`spark_plugin.enable()` needs a classic PySpark session with a driver JVM in this process.

    Raised for Spark Connect sessions; the message says what to use instead.
    """
