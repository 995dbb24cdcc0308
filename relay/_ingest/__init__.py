"""Ingest: the HTTP endpoints OpenLineage clients post events to."""

from .routes import Ingest

__all__ = ["Ingest"]
