"""A mock OpenMetadata server: faithful to the 2.0 API (1.13 on request), with fault injection.

In-process (tests, benchmarks)::

    async with MockOpenMetadata(tokens=["t"], catalog=catalog, version="2.0.7") as mock:
        mock.url            # "http://127.0.0.1:<port>/api", the relay's host_port
        mock.control_url    # the control API (faults, request log, reset)
        await mock.set_faults({"mode": "error", "status": 503, "path": "/api/v1/lineage*"})
        mock.requests, mock.openlineage_events
        mock.set_server_version("1.13.0")   # 1.13's behaviour where the two differ

Command line: ``lineage-relay mock-openmetadata --listen 127.0.0.1:8585`` (see ``cli_main``).
"""

from ._catalog import CatalogError, load_catalog, read_catalog
from ._cli import cli_main
from ._faults import FAULT_MODES, FaultRule
from ._fqn import build as build_fqn
from ._fqn import quote_name
from ._fqn import split as split_fqn
from ._ol_settings import EventFailure, OpenLineageSettings
from ._server import MockOpenMetadata
from ._state import DEFAULT_SERVER_VERSION

__all__ = [
    "DEFAULT_SERVER_VERSION",
    "FAULT_MODES",
    "CatalogError",
    "EventFailure",
    "FaultRule",
    "MockOpenMetadata",
    "OpenLineageSettings",
    "build_fqn",
    "cli_main",
    "load_catalog",
    "quote_name",
    "read_catalog",
    "split_fqn",
]
