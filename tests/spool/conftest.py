"""The spool tests' fixtures (and hooks), defined in spool_fixtures.py."""

from spool_fixtures import clock, open_spool  # noqa: F401
