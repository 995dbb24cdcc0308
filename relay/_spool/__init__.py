"""The durable on-disk queue between ingest and the forwarder."""

from .store import Spool, SpoolStats

__all__ = ["Spool", "SpoolStats"]
