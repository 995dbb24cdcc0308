"""The ingest tests' fixtures (and hooks), defined in ingest_fixtures.py."""

from ingest_fixtures import http, pytest_terminal_summary, relay  # noqa: F401
