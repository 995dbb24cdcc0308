"""The plugin tests' fixtures, re-exported by the folder's conftest."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_support import SpecValidator


@pytest.fixture(scope="session")
def validator(shared_dir: Path) -> SpecValidator:
    """The OpenLineage spec check of the reference folder's spec snapshot."""
    pytest.importorskip("jsonschema")
    return SpecValidator(shared_dir / "openlineage-samples" / "spec")
