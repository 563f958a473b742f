"""HOD-Net oriented object detection (DESIGN.md §5.2).

Model: :class:`HODNet` (backbone + FPN P2–P6, oriented RPN, oriented RoI head), :class:`DetectorModule`
(Lightning), checkpoints via :func:`save_detector` / :func:`load_detector` (weight averaging:
:func:`average_detectors`), test-time augmentation via :class:`TTADetector`. Holistic scene inference
(``detect_scene`` = ``plan_scene`` → ``run_tiles`` → ``merge_tiles``) and merging (``merge_detections``) live
in ``sgg.detectors.inference`` / ``.merge``; the per-tile detector protocol in ``.protocol``.
Imports are lazy so that ``import sgg.detectors`` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "HODNet": "sgg.detectors.hodnet",
    "DEFAULT_CONFIG": "sgg.detectors.hodnet",
    "resolve_config": "sgg.detectors.hodnet",
    "total_loss": "sgg.detectors.hodnet",
    "BackboneFPN": "sgg.detectors.backbones",
    "BACKBONES": "sgg.detectors.backbones",
    "MidpointOffsetCoder": "sgg.detectors.box_coder",
    "DeltaXYWHACoder": "sgg.detectors.box_coder",
    "OrientedRPN": "sgg.detectors.rpn",
    "OrientedRoIHead": "sgg.detectors.roi_head",
    "DetectorModule": "sgg.detectors.module",
    "save_detector": "sgg.detectors.checkpoint",
    "load_detector": "sgg.detectors.checkpoint",
    "average_detectors": "sgg.detectors.checkpoint",
    "TTADetector": "sgg.detectors.tta",
    "detect_scene": "sgg.detectors.inference",
    "plan_scene": "sgg.detectors.inference",
    "run_tiles": "sgg.detectors.inference",
    "merge_tiles": "sgg.detectors.inference",
    "TileResult": "sgg.detectors.inference",
    "TileDetector": "sgg.detectors.protocol",
    "merge_detections": "sgg.detectors.merge",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sgg.detectors' has no attribute {name!r}")
