"""sgg: scene graph generation for large very-high-resolution satellite imagery.

Heavy modules (torch, rasterio) are imported lazily so that ``sgg --help`` starts fast.
"""

from __future__ import annotations

from importlib import import_module

from sgg.errors import SggInputError

__version__ = "0.1.0"

_LAZY = {
    "OrientedBoxes": "sgg.structures",
    "Detections": "sgg.structures",
    "PairSet": "sgg.structures",
    "SceneGraph": "sgg.structures",
    "Vocabulary": "sgg.structures",
    "GeoReference": "sgg.structures",
    "RasterScene": "sgg.io",
    "Pipeline": "sgg.pipeline",
}

__all__ = ["SggInputError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sgg' has no attribute {name!r}")
