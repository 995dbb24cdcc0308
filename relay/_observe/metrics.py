"""Every metric the relay exports, declared once.

Each `Relay` owns one `Metrics` with its own registry, so several relays (tests,
benchmarks) can live in one process. Names the users' alert rules already use
(`openmetadata_lineage_*`, `openmetadata_connection_status`) are kept as they are;
everything else is under `lineage_relay_*`.
"""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# Ingest acks are sub-millisecond to tens of milliseconds (group commit).
_INGEST_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
_SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The relay's metrics on a private registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()

        # ingest
        self.events_received = Counter(
            "lineage_relay_events_received", "Events accepted and durably spooled.",
            ["endpoint"], registry=r,
        )  # fmt: skip
        self.events_rejected = Counter(
            "lineage_relay_events_rejected", "Requests refused, by reason.", ["reason"], registry=r
        )
        self.ingest_duration = Histogram(
            "lineage_relay_ingest_duration_seconds",
            "Ingest request time from start to durable acknowledgement.",
            buckets=_INGEST_BUCKETS, registry=r,
        )  # fmt: skip

        # spool
        self.spool_events = Gauge(
            "lineage_relay_spool_events", "Events waiting in the spool.", registry=r
        )
        self.spool_bytes = Gauge(
            "lineage_relay_spool_bytes", "Bytes held by the spool.", registry=r
        )
        self.spool_oldest_age = Gauge(
            "lineage_relay_spool_oldest_event_age_seconds",
            "Age of the oldest event waiting in the spool.", registry=r,
        )  # fmt: skip
        self.spool_corrupt_records = Counter(
            "lineage_relay_spool_corrupt_records",
            "Spool records found corrupt or torn at recovery.", registry=r,
        )  # fmt: skip
        self.events_dropped = Counter(
            "lineage_relay_events_dropped", "Events dropped, by reason.", ["reason"], registry=r
        )
        self.dead_letters_held = Gauge(
            "lineage_relay_dead_letter_events", "Events held in the dead-letter table.", registry=r
        )

        # delivery
        self.events_sent = Counter(
            "openmetadata_lineage_events_sent", "Events delivered to OpenMetadata.", registry=r
        )
        self.send_duration = Histogram(
            "openmetadata_lineage_send_duration_seconds",
            "Duration of each call to OpenMetadata.", buckets=_SEND_BUCKETS, registry=r,
        )  # fmt: skip
        self.connection_status = Gauge(
            "openmetadata_connection_status",
            "1 when the last call to OpenMetadata succeeded, 0 when it failed, NaN before any.",
            registry=r,
        )  # fmt: skip
        # Unknown until the first call: an idle relay just started is not "down" (0 would
        # fire OpenMetadataDown, `openmetadata_connection_status == 0`, on every quiet start).
        self.connection_status.set(math.nan)
        self.openmetadata_requests = Counter(
            "lineage_relay_openmetadata_requests", "Calls to OpenMetadata by endpoint and status.",
            ["endpoint", "status"], registry=r,
        )  # fmt: skip
        self.forward_batches = Counter(
            "lineage_relay_forward_batches", "Batches forwarded, by result.", ["result"], registry=r
        )
        self.retries = Counter("lineage_relay_retries", "Calls retried.", registry=r)
        self.events_dead_lettered = Counter(
            "lineage_relay_dead_letters", "Events dead-lettered, by reason.", ["reason"], registry=r
        )
        self.circuit_state = Gauge(
            "lineage_relay_circuit_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.", registry=r,
        )  # fmt: skip
        self.token_fetches = Counter(
            "lineage_relay_token_fetches",
            "OpenMetadata token fetches by source (jwt_token_file, vault, ...) and result.",
            ["source", "result"], registry=r,
        )  # fmt: skip

        # the rest sink
        self.unresolved_datasets = Gauge(
            "lineage_relay_unresolved_datasets",
            "Datasets not (yet) found in OpenMetadata whose edges are parked.", registry=r,
        )  # fmt: skip
        self.unresolved = Counter(
            "lineage_relay_unresolved",
            "Edges parked because a dataset was not found, by the dataset's namespace.",
            ["namespace"], registry=r,
        )  # fmt: skip
        self.ambiguous_datasets = Counter(
            "lineage_relay_ambiguous_datasets",
            "Dataset lookups that matched several entities (never guessed), by namespace.",
            ["namespace"], registry=r,
        )  # fmt: skip
        self.column_lineage_dropped = Counter(
            "lineage_relay_column_lineage_dropped",
            "Column lineage pairs left out because the entity lacks the column.", registry=r,
        )  # fmt: skip

        self.audit_lines_dropped = Counter(
            "lineage_relay_audit_lines_dropped",
            "Audit log lines dropped because the writer could not keep up.", registry=r,
        )  # fmt: skip

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
