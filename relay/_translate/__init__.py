"""Translation of OpenLineage events into OpenMetadata operations: pure, no I/O.

    _model     event bytes -> RunEvent (typed, lenient)
    _names     valid entity names, FQN quoting
    _datasets  dataset -> Lookup (mapping rules, exact FQN or fullPath, never a first hit)
    _pipeline  the application's pipeline: service, name (the `openmetadata` facet wins)
    _runs      events -> RunState (a lattice: duplicates and reordering change nothing)
               -> pipelineStatus body
    _create    create requests for auto_create (table with database/schema, container)
    _edges     (input, output) pairs, column lineage, lineageDetails and their merge

`relay/_sinks/rest/` runs the lookups and operations these produce.
"""

from ._create import column_type, container_request, table_requests
from ._datasets import FILE_SCHEMES, Lookup, dataset_uri, lookup_for
from ._edges import (
    EntityView,
    column_pairs,
    edge_body,
    edge_pairs,
    lineage_details,
    merge_details,
    same_details,
    source_of,
)
from ._model import (
    AppRun,
    Dataset,
    Field,
    InputField,
    RunEvent,
    Symlink,
    parse_run_event,
    parse_time_ms,
)
from ._names import build_fqn, entity_name, quote_name, split_fqn, task_name, url_fqn
from ._pipeline import PipelineSpec, pipeline_spec
from ._runs import RunState, TaskState, advance, state_from_status, status_body

__all__ = [
    "FILE_SCHEMES",
    "AppRun",
    "Dataset",
    "EntityView",
    "Field",
    "InputField",
    "Lookup",
    "PipelineSpec",
    "RunEvent",
    "RunState",
    "Symlink",
    "TaskState",
    "advance",
    "build_fqn",
    "column_pairs",
    "column_type",
    "container_request",
    "dataset_uri",
    "edge_body",
    "edge_pairs",
    "entity_name",
    "lineage_details",
    "lookup_for",
    "merge_details",
    "parse_run_event",
    "parse_time_ms",
    "pipeline_spec",
    "quote_name",
    "same_details",
    "source_of",
    "split_fqn",
    "state_from_status",
    "status_body",
    "table_requests",
    "task_name",
    "url_fqn",
]
