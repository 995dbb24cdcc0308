"""The forward tests' fixtures (and hooks), defined in forward_fixtures.py."""

from forward_fixtures import running, spool  # noqa: F401
