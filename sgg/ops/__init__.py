"""Oriented-box geometry in pure PyTorch: conversions, exact rotated IoU/IoF, greedy NMS, rotated RoIAlign,
and the one pair-candidate operation (``spatial_pairs``).

Boxes are ``(cx, cy, w, h, angle)`` tensors, radians, le90 (angle in [-π/2, π/2), w along the angle),
pixel units. Everything runs on CPU or GPU tensors; no compiled extensions.
"""

from .bounds import outside_image
from .conversions import (
    box_to_corners,
    box_to_envelope,
    box_to_shapely,
    corners_to_box,
    le90_to_oc,
    normalize_le90,
    oc_to_le90,
    rotate_boxes,
    shapely_to_box,
    wrap_le90,
)
from .iou import pairwise_intersection, rotated_iof, rotated_iou, rotated_iou_aligned
from .nms import batched_rotated_nms, rotated_nms
from .pairs import EnvelopeIndex, envelopes_meet, grow_envelopes, spatial_pairs
from .roi_align import rotated_roi_align

__all__ = [
    "wrap_le90",
    "normalize_le90",
    "box_to_corners",
    "corners_to_box",
    "box_to_envelope",
    "rotate_boxes",
    "box_to_shapely",
    "shapely_to_box",
    "le90_to_oc",
    "oc_to_le90",
    "rotated_iou",
    "rotated_iou_aligned",
    "rotated_iof",
    "pairwise_intersection",
    "rotated_nms",
    "batched_rotated_nms",
    "spatial_pairs",
    "EnvelopeIndex",
    "grow_envelopes",
    "envelopes_meet",
    "rotated_roi_align",
    "outside_image",
]
