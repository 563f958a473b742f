"""Evaluation: rotated detection mAP (``sgg.evaluation.detection``), scene-graph recall
(``sgg.evaluation.sgg``), RPN proposal recall (``sgg.evaluation.proposals``); ``sgg eval …`` lives in ``cli``.

Names are imported lazily so that ``sgg eval --help`` does not pay for torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "rotated_map": "sgg.evaluation.detection",
    "voc_ap": "sgg.evaluation.detection",
    "format_table": "sgg.evaluation.detection",
    "SGGEvaluator": "sgg.evaluation.sgg",
    "format_sgg_table": "sgg.evaluation.sgg",
    "crop_graphs": "sgg.evaluation.windows",
    "best_overlaps": "sgg.evaluation.proposals",
    "recall_at": "sgg.evaluation.proposals",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sgg.evaluation' has no attribute {name!r}")


__all__ = list(_LAZY)
