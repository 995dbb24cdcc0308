"""What the demo prints: OpenMetadata's view read back through its API, the relay's state.

Pure reading and formatting; `demo.py` tells the story around it.
"""

from __future__ import annotations

import math
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from relay.testing.processes import MockProcess, RelayProcess

_KIND = {"table": "table", "container": "file"}


@dataclass
class Node:
    """A table or container OpenMetadata knows."""

    id: str
    kind: str  # "table" | "container"
    fqn: str
    upstream: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)


def _listing(mock: MockProcess, collection: str) -> list[dict[str, Any]]:
    status, body = mock.api(f"/v1/{collection}?limit=1000")
    if status != 200:
        raise RuntimeError(f"GET /api/v1/{collection}: {status} {body}")
    return list(body["data"])


def lineage_graph(mock: MockProcess) -> dict[str, Node]:
    """Every table and container, each with its upstream edges and column pairs, from
    `GET /api/v1/lineage/{type}/name/{fqn}?upstreamDepth=1`."""
    nodes = {
        entity["id"]: Node(entity["id"], kind, entity["fullyQualifiedName"])
        for kind, collection in (("table", "tables"), ("container", "containers"))
        for entity in _listing(mock, collection)
    }
    for node in nodes.values():
        fqn = urllib.parse.quote(node.fqn, safe="")
        status, view = mock.api(
            f"/v1/lineage/{node.kind}/name/{fqn}?upstreamDepth=1&downstreamDepth=0"
        )
        if status != 200:
            raise RuntimeError(f"GET lineage of {node.fqn}: {status} {view}")
        for edge in view["upstreamEdges"]:
            pairs = [
                (source.rsplit(".", 1)[-1], item["toColumn"].rsplit(".", 1)[-1])
                for item in (edge.get("lineageDetails") or {}).get("columnsLineage") or []
                for source in item.get("fromColumns") or []
            ]
            node.upstream.append((edge["fromEntity"], sorted(pairs)))
    return nodes


def edge_count(nodes: dict[str, Node]) -> int:
    return sum(len(node.upstream) for node in nodes.values())


def print_lineage(nodes: dict[str, Node]) -> None:
    """Each dataset nobody reads from, with what it was made of, as a tree."""
    feeds = {source for node in nodes.values() for source, _ in node.upstream}
    roots = [n for n in nodes.values() if n.upstream and n.id not in feeds]
    if not roots:
        print("   (no lineage edges in OpenMetadata)")
        return

    def show(node: Node, prefix: str, pairs: list[tuple[str, str]], last: bool, top: bool) -> None:
        label = f"{node.fqn}  ({_KIND[node.kind]})"
        branch = "" if top else ("└── " if last else "├── ")
        print(f"   {prefix}{branch}{label}")
        inner = prefix + ("" if top else ("    " if last else "│   "))
        if pairs:
            columns = ", ".join(f"{a} -> {b}" for a, b in pairs)
            print(f"   {inner}{'│' if node.upstream else ' '}   columns: {columns}")
        for index, (source, source_pairs) in enumerate(node.upstream):
            child = nodes.get(source)
            if child is not None:
                show(child, inner, source_pairs, index == len(node.upstream) - 1, False)

    for root in sorted(roots, key=lambda n: n.fqn):
        show(root, "", [], True, True)
    print(f"   {edge_count(nodes)} edge(s); under each dataset, the ones it was made from, with "
          "the column pairs (source -> target) of that edge")  # fmt: skip


def pipelines(mock: MockProcess) -> list[dict[str, Any]]:
    status, body = mock.api("/v1/pipelines?limit=100&fields=tasks")
    if status != 200:
        raise RuntimeError(f"GET /api/v1/pipelines: {status} {body}")
    return list(body["data"])


def run_statuses(mock: MockProcess, fqn: str) -> list[dict[str, Any]]:
    """The pipeline's run statuses, oldest first."""
    end = int(time.time() * 1000) + 86_400_000
    status, body = mock.api(
        f"/v1/pipelines/{urllib.parse.quote(fqn, safe='')}/status?startTs=0&endTs={end}"
    )
    if status != 200:
        raise RuntimeError(f"GET status of {fqn}: {status} {body}")
    return sorted(body["data"], key=lambda item: item["timestamp"])


def print_pipelines(mock: MockProcess) -> int:
    """Pipelines, their tasks and run statuses; returns how many statuses there are."""
    found = 0
    for pipeline in pipelines(mock):
        tasks = [task["name"] for task in pipeline.get("tasks") or []]
        print(f"   pipeline {pipeline['fullyQualifiedName']}: {len(tasks)} task(s)")
        for task in tasks:
            print(f"     task {task}")
        for run in run_statuses(mock, pipeline["fullyQualifiedName"]):
            found += 1
            started = time.strftime("%H:%M:%S", time.localtime(run["timestamp"] / 1000))
            failed = [t["name"] for t in run.get("taskStatus") or []
                      if t.get("executionStatus") == "Failed"]  # fmt: skip
            detail = f" (failed task: {', '.join(failed)})" if failed else ""
            print(f"     run started {started}: {run['executionStatus']}{detail}")
    return found


def print_native_runs(mock: MockProcess, app_run_ids: list[str]) -> None:
    """What the native OpenLineage endpoint received of each run (it writes no run status)."""
    events: list[dict[str, Any]] = mock.control("/mock/openlineage-events")
    for number, app_run in enumerate(app_run_ids, 1):
        mine = [
            event for event in events
            if (event.get("run") or {}).get("runId") == app_run
            or ((event.get("run") or {}).get("facets") or {}).get("parent", {})
            .get("run", {}).get("runId") == app_run
        ]  # fmt: skip
        fails = [e for e in mine if e.get("eventType") == "FAIL"]
        print(f"   run {number}: {len(mine)} events reached OpenMetadata")
        for event in fails:
            print(f"     FAIL event of task {event['job']['name']}")


@dataclass
class RelaySample:
    """One reading of the relay's /health and /metrics."""

    at_s: float
    backlog: int
    breaker: str
    delivered: int
    error: str


def sample(relay: RelayProcess, since: float) -> RelaySample:
    _, health = relay.health()
    metrics = relay.metrics()
    components = health.get("components", {})
    breaker = components.get("breaker", {})
    openmetadata = components.get("openmetadata", {})
    down = metrics.get("openmetadata_connection_status", 1.0) == 0.0
    return RelaySample(
        at_s=time.monotonic() - since,
        backlog=int(metrics.get("lineage_relay_spool_events", 0)),
        breaker=str(breaker.get("state", "?")),
        delivered=int(metrics.get("openmetadata_lineage_events_sent_total", 0)),
        error=str(openmetadata.get("last_error") or "") if down else "",
    )


def print_sample(item: RelaySample) -> None:
    # "POST http://...: cannot connect ..." -> the reason, without the URL
    reason = (
        item.error.split(": ", 1)[-1]
        if item.error.startswith(("POST ", "PUT ", "GET "))
        else item.error
    )
    note = f"  OpenMetadata: {reason.split(' (', 1)[0][:50]}" if reason else ""
    print(f"   +{item.at_s:5.1f} s  backlog {item.backlog:>3}  breaker {item.breaker:<9}"
          f"  delivered {item.delivered:>3}{note}")  # fmt: skip


def histogram_quantile(samples: dict[str, float], name: str, q: float) -> float:
    """The upper bound of the bucket holding quantile `q` of a Prometheus histogram."""
    buckets = sorted(
        (float(key.split('le="', 1)[1].split('"', 1)[0]), value)
        for key, value in samples.items()
        if key.startswith(name + "_bucket{")
    )
    total = buckets[-1][1] if buckets else 0.0
    for bound, count in buckets:
        if total and count >= q * total:
            return bound
    return math.nan


def print_counters(metrics: dict[str, float]) -> dict[str, float]:
    def total(prefix: str) -> float:
        return sum(v for k, v in metrics.items() if k == prefix or k.startswith(prefix + "{"))

    counters = {
        "received": total("lineage_relay_events_received_total"),
        "delivered": total("openmetadata_lineage_events_sent_total"),
        "retries": total("lineage_relay_retries_total"),
        "dead letters": total("lineage_relay_dead_letters_total"),
        "backlog": total("lineage_relay_spool_events"),
    }
    for label, value in counters.items():
        print(f"   {label:<28} {value:g}")
    p99 = histogram_quantile(metrics, "lineage_relay_ingest_duration_seconds", 0.99)
    print(f"   {'p99 ingest latency':<28} <= {p99 * 1000:g} ms (request to durable ack)")
    return counters
