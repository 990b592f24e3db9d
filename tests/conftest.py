"""Shared pytest setup: where the test data lives, and skips for what a machine may lack."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Public captures collected for this project; they live beside the repository, not in it.
CORPUS_DIR = REPO_ROOT.parent / "shared" / "corpus"
#: Captures shipped with the repository.
FIXTURES_DIR = REPO_ROOT / "fixtures"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared capture corpus; tests using it are skipped where it is absent."""
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"capture corpus not present at {CORPUS_DIR}")
    return CORPUS_DIR


@pytest.fixture(scope="session")
def tshark() -> str:
    """Path of the tshark binary; tests using it are skipped where it is not installed."""
    path = shutil.which("tshark")
    if path is None:
        pytest.skip("tshark is not installed (make sysdeps-test)")
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the Dask cluster tests last: after them the test process keeps Dask's state (event
    loop, nannies' threads), and a timing test that ran after them failed
    (test_hostile.py::test_eviction_cost_does_not_grow_with_the_table, 10x slower evictions)."""
    items.sort(key=lambda item: item.path.name == "test_cluster.py")
