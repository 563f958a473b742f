"""Typed objects passed between stages (DESIGN.md section 4).

``OrientedBoxes`` (N,5 ``cx, cy, w, h, angle``; radians, le90, level-0 pixels) → ``Detections`` →
``PairSet`` → ``SceneGraph``; ``Vocabulary`` names classes and predicates; ``GeoReference`` keeps the
raster's CRS and affine transform so that map geometry is made only at export time.
Construction validates input and raises ``ValueError`` naming the offending field.
"""

from .boxes import Detections, OrientedBoxes, as_boxes
from .graph import GeoReference, PairSet, SceneGraph
from .vocabulary import BACKGROUND, Vocabulary, star_triplet_counts

__all__ = ["BACKGROUND", "Vocabulary", "OrientedBoxes", "Detections", "PairSet", "GeoReference", "SceneGraph",
           "as_boxes", "star_triplet_counts"]
