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
