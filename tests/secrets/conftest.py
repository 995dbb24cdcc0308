"""The secrets tests' fixtures (and hooks), defined in secrets_fixtures.py."""

from secrets_fixtures import _make_jwt_fixture, vault  # noqa: F401
