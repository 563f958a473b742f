"""Shared fixtures: paths to the real test files in ../shared/real and a deterministic torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("SGG_REAL_DATA", ROOT.parent / "shared" / "real"))


@pytest.fixture(scope="session")
def real_dir() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"real test files not found at {REAL}")
    return REAL


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield
