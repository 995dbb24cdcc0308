"""The plugin tests' fixtures, defined in plugin_fixtures.py."""

from plugin_fixtures import validator  # noqa: F401
