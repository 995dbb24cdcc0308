"""Sink `rest`: exact lineage, pipelines with tasks and run status through OpenMetadata's REST API.

_sink       RestSink: per batch, translate (relay._translate) and run the calls
_api        one call, its answer interpreted once
_resolver   datasets -> entities (exact FQN / fullPath; ambiguity never guessed)
_pipelines  pipeline service, pipelines + tasks, run statuses
_lineage    edge writes with column lineage merged and repeats skipped
_state      SQLite memory across restarts: run states, parked edges
_cache      bounded LRU maps
"""

from ._sink import DeadLetter, RestSink

__all__ = ["DeadLetter", "RestSink"]
