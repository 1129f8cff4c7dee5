"""Tests of the tools the host tests and benchmarks use (benchmarks/load.py), kept apart from
podku's own: `pytest -m "not tool"` leaves them out."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/tools/" in str(item.fspath):
            item.add_marker(pytest.mark.tool)
