"""``python -m relay.testing.mock_openmetadata``: same as ``lineage-relay mock-openmetadata``."""

import sys

from ._cli import cli_main

sys.exit(cli_main(sys.argv[1:]))
