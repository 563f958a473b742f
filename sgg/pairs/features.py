"""STAR's 103-d pair feature (PPG input), vectorised.

For an ordered pair (subject s, object o) the vector is ``[one-hot(s class) (C), one-hot(o class) (C),
IoU(s, o), diag_s/diag_o, dist/diag_s, dist/diag_o, area_s/area_o, area_s/U, area_o/U]`` with C = 48 for
STAR (detector order), ``diag = √(w² + h²)``, ``dist`` the distance between the centres, ``area = w·h`` and
``U`` the area of the minimum-area rectangle around the eight corners of both boxes. No normalisation: these
are the facts of the upstream toolkit's ``calculate_spatialOriented`` (which took U from OpenCV's
``minAreaRect`` in float32; here it is exact).
"""

from __future__ import annotations

from typing import Any

import torch

from sgg.ops import box_to_corners, rotated_iou_aligned
from sgg.structures import OrientedBoxes

__all__ = ["SPATIAL_DIM", "STAR_NUM_CLASSES", "pair_feature_dim", "star_pair_features", "union_rect_area",
           "spatial_pair_features"]

STAR_NUM_CLASSES = 48
SPATIAL_DIM = 7
_CHUNK = 1 << 16


def pair_feature_dim(num_classes: int) -> int:
    """Length of the pair feature for ``num_classes`` object classes (103 for STAR's 48)."""
    return 2 * int(num_classes) + SPATIAL_DIM


def _as_box_tensor(boxes: OrientedBoxes | Any) -> torch.Tensor:
    t = boxes.tensor if isinstance(boxes, OrientedBoxes) else torch.as_tensor(boxes)
    return t if t.is_floating_point() else t.float()


def union_rect_area(a: torch.Tensor, b: torch.Tensor, chunk_size: int = _CHUNK) -> torch.Tensor:
    """(M,) area of the minimum-area rectangle around the 8 corners of boxes ``a[k]`` and ``b[k]`` (float64).

    The minimum-area rectangle around a point set has a side on an edge of its convex hull (rotating
    calipers). An edge of the hull of two rectangles is either a side of one of them or a segment from a
    corner of one to a corner of the other, so testing the two box orientations and the 16 corner-to-corner
    directions is exact. Works relative to each pair's mean corner, in chunks of ``chunk_size`` pairs.
    """
    m = a.shape[0]
    out = torch.empty(m, dtype=torch.float64, device=a.device)
    for lo in range(0, m, chunk_size):
        aa, bb = a[lo:lo + chunk_size].double(), b[lo:lo + chunk_size].double()
        pts = torch.cat([box_to_corners(aa), box_to_corners(bb)], dim=1)  # (K,8,2)
        pts = pts - pts.mean(dim=1, keepdim=True)
        cross = (pts[:, 4:, None, :] - pts[:, None, :4, :]).reshape(-1, 16, 2)
        axes = torch.stack([torch.stack([torch.cos(x[:, 4]), torch.sin(x[:, 4])], -1) for x in (aa, bb)], 1)
        dirs = torch.cat([axes, cross], dim=1)  # (K,18,2)
        norm = dirs.norm(dim=-1, keepdim=True)
        valid = norm[..., 0] > 0
        u = dirs / norm.clamp_min(1e-300)
        pu = torch.einsum("kdc,kpc->kdp", u, pts)
        pv = torch.einsum("kdc,kpc->kdp", torch.stack([-u[..., 1], u[..., 0]], -1), pts)
        area = (pu.amax(-1) - pu.amin(-1)) * (pv.amax(-1) - pv.amin(-1))
        out[lo:lo + chunk_size] = area.masked_fill(~valid, float("inf")).amin(-1)
    return out


def spatial_pair_features(boxes: OrientedBoxes | Any, pairs: torch.Tensor) -> torch.Tensor:
    """(M, 7) geometric part of the pair feature, in the boxes' floating dtype (computed in float64)."""
    b = _as_box_tensor(boxes)
    p = torch.as_tensor(pairs, dtype=torch.long, device=b.device).reshape(-1, 2)
    s, o = b[p[:, 0]], b[p[:, 1]]
    iou = rotated_iou_aligned(s, o).double()
    s64, o64 = s.double(), o.double()
    diag_s, diag_o = torch.hypot(s64[:, 2], s64[:, 3]), torch.hypot(o64[:, 2], o64[:, 3])
    dist = torch.hypot(o64[:, 0] - s64[:, 0], o64[:, 1] - s64[:, 1])
    area_s, area_o = s64[:, 2] * s64[:, 3], o64[:, 2] * o64[:, 3]
    u = union_rect_area(s, o)
    feats = torch.stack([iou, diag_s / diag_o, dist / diag_s, dist / diag_o, area_s / area_o,
                         area_s / u, area_o / u], dim=1)
    return feats.to(b.dtype)


def star_pair_features(boxes: OrientedBoxes | Any, labels: torch.Tensor, pairs: torch.Tensor,
                       num_classes: int = STAR_NUM_CLASSES) -> torch.Tensor:
    """(M, 2C+7) STAR pair features of ordered ``pairs`` (M,2) (103-d for STAR's 48 classes).

    ``boxes``: OrientedBoxes or (N,5) le90 radians, level-0 px; ``labels`` (N,) 0-based classes (STAR
    detector order for STAR's weights). The result has the boxes' floating dtype (float64 boxes give float64).
    """
    b = _as_box_tensor(boxes)
    lab = torch.as_tensor(labels, dtype=torch.long, device=b.device).reshape(-1)
    p = torch.as_tensor(pairs, dtype=torch.long, device=b.device).reshape(-1, 2)
    if lab.shape[0] != b.shape[0]:
        raise ValueError(f"star_pair_features: {lab.shape[0]} labels for {b.shape[0]} boxes")
    if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= num_classes):
        raise ValueError(f"star_pair_features: class index out of range for {num_classes} classes "
                         f"(got {int(lab.min())}..{int(lab.max())})")
    if p.numel() and (int(p.min()) < 0 or int(p.max()) >= b.shape[0]):
        raise ValueError(f"star_pair_features: pair index out of range for {b.shape[0]} boxes")
    m = p.shape[0]
    out = torch.zeros(m, pair_feature_dim(num_classes), dtype=b.dtype, device=b.device)
    if m == 0:
        return out
    rows = torch.arange(m, device=b.device)
    out[rows, lab[p[:, 0]]] = 1
    out[rows, num_classes + lab[p[:, 1]]] = 1
    out[:, 2 * num_classes:] = spatial_pair_features(b, p)
    return out
