"""The spool tests' fixtures (and hooks), defined in spool_fixtures.py."""

from spool_fixtures import open_spool  # noqa: F401
