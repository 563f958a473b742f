"""Shared fixtures: paths to the real test files (``$SGG_REAL_DATA``, default ../shared/real) and a
deterministic torch; a summary line counts the tests skipped for want of the real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("SGG_REAL_DATA", ROOT.parent / "shared" / "real"))


REAL_SKIP = "real test files not found at"


@pytest.fixture(scope="session")
def real_dir() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"{REAL_SKIP} {REAL}")
    return REAL


def pytest_terminal_summary(terminalreporter) -> None:
    """One line saying how many tests skipped for want of the real data, and how to point them at it."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if isinstance(r.longrepr, tuple) and REAL_SKIP in str(r.longrepr[-1])]
    if skipped:
        terminalreporter.write_line(
            f"real data: {len(skipped)} tests skipped because {REAL} does not exist; "
            "set SGG_REAL_DATA=/path/to/shared/real to run them")
    elif REAL.is_dir():
        terminalreporter.write_line(f"real data: read from {REAL} (SGG_REAL_DATA), no test skipped for want of it")


@pytest.fixture(scope="session")
def tiny_detector_file(tmp_path_factory):
    """``make(gsd_range)`` → path of a small HOD-Net checkpoint (random weights, classes car and ship, 256-px
    tiles) recording that training GSD range; for command-line tests that need a real weights file."""

    def make(gsd_range: list[float]) -> Path:
        from sgg.detectors.checkpoint import save_detector
        from sgg.detectors.hodnet import HODNet
        from sgg.structures import Vocabulary

        torch.manual_seed(0)
        m = HODNet(pretrained=False, backbone="mobilenet_v3_large", fpn_channels=16, representation_size=32,
                   vocabulary=Vocabulary(("car", "ship"), ()), gsd_range=gsd_range)
        return save_detector(m, tmp_path_factory.mktemp("w") / "w.pt", m.vocabulary,
                             inference={"tile_size": 256, "overlap": 0})

    return make


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield
