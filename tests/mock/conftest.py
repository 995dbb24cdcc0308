"""The mock tests' fixtures (and hooks), defined in mock_fixtures.py."""

from mock_fixtures import client, mock, server_version  # noqa: F401
