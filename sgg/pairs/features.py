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

from sgg.ops import rotated_iou_aligned
from sgg.structures import OrientedBoxes

__all__ = ["SPATIAL_DIM", "STAR_NUM_CLASSES", "pair_feature_dim", "star_pair_features", "union_rect_area",
           "spatial_pair_features"]

STAR_NUM_CLASSES = 48
SPATIAL_DIM = 7
_UNION_CHUNK = 1 << 13


def pair_feature_dim(num_classes: int) -> int:
    """Length of the pair feature for ``num_classes`` object classes (103 for STAR's 48)."""
    return 2 * int(num_classes) + SPATIAL_DIM


def _as_box_tensor(boxes: OrientedBoxes | Any) -> torch.Tensor:
    t = boxes.tensor if isinstance(boxes, OrientedBoxes) else torch.as_tensor(boxes)
    return t if t.is_floating_point() else t.float()


def union_rect_area(a: torch.Tensor, b: torch.Tensor, chunk_size: int = _UNION_CHUNK) -> torch.Tensor:
    """(M,) area of the minimum-area rectangle around the 8 corners of boxes ``a[k]`` and ``b[k]``.

    The minimum-area rectangle around a point set has a side on an edge of its convex hull (rotating
    calipers). An edge of the hull of two rectangles is either a side of one of them or a segment from a
    corner of one to a corner of the other, so testing the two box orientations and the 16 corner-to-corner
    directions is exact. Along a direction u a box spans its centre's projection ± (|u·x̂|·w + |u·ŷ|·h)/2
    (x̂, ŷ its axes), and along the normal v the two weights swap, so each direction costs a few products
    instead of projecting 8 points; u is left unnormalised (the two spans scale by |u|, the area by |u|²).
    Computed relative to a's centre, in the inputs' dtype (at least float32), ``chunk_size`` pairs at a time
    (small chunks keep the (chunk, 18) temporaries in cache).
    """
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    m = a.shape[0]
    out = torch.empty(m, dtype=dtype, device=a.device)
    sx = torch.tensor([-1.0, 1.0, 1.0, -1.0], dtype=dtype, device=a.device)
    sy = torch.tensor([-1.0, -1.0, 1.0, 1.0], dtype=dtype, device=a.device)
    for lo in range(0, m, chunk_size):
        aa, bb = a[lo:lo + chunk_size].to(dtype), b[lo:lo + chunk_size].to(dtype)
        dx, dy = (bb[:, 0] - aa[:, 0])[:, None], (bb[:, 1] - aa[:, 1])[:, None]  # b's centre relative to a's
        ac, as_ = torch.cos(aa[:, 4])[:, None], torch.sin(aa[:, 4])[:, None]  # a's axes x̂ = (ac, as_)
        bc, bs = torch.cos(bb[:, 4])[:, None], torch.sin(bb[:, 4])[:, None]
        wa, ha, wb, hb = (t[:, None] / 2 for t in (aa[:, 2], aa[:, 3], bb[:, 2], bb[:, 3]))
        # corners (K,4): a's around 0, b's around (dx, dy); ŷ = (-sin, cos)
        cax, cay = sx * wa * ac - sy * ha * as_, sx * wa * as_ + sy * ha * ac
        cbx, cby = dx + sx * wb * bc - sy * hb * bs, dy + sx * wb * bs + sy * hb * bc
        ux = torch.cat([ac, bc, (cbx[:, :, None] - cax[:, None, :]).reshape(-1, 16)], 1)  # (K,18) directions
        uy = torch.cat([as_, bs, (cby[:, :, None] - cay[:, None, :]).reshape(-1, 16)], 1)
        n2 = ux * ux + uy * uy
        pa, qa = (ux * ac + uy * as_).abs_(), (uy * ac - ux * as_).abs_()  # |u·x̂|, |u·ŷ| of a
        pb, qb = (ux * bc + uy * bs).abs_(), (uy * bc - ux * bs).abs_()
        du, dv = ux * dx + uy * dy, uy * dx - ux * dy  # b's centre along u and v = (-uy, ux) (sign irrelevant)
        ea_u, ea_v = pa * wa + qa * ha, qa * wa + pa * ha
        eb_u, eb_v = pb * wb + qb * hb, qb * wb + pb * hb
        # span along u of [-ea, ea] ∪ [du - eb, du + eb]: max(ea, du + eb) + max(ea, eb - du)
        len_u = torch.maximum(ea_u, du + eb_u).add_(torch.maximum(ea_u, eb_u - du))
        len_v = torch.maximum(ea_v, dv + eb_v).add_(torch.maximum(ea_v, eb_v - dv))
        area = len_u.mul_(len_v).div_(n2).masked_fill_(n2 <= 0, float("inf"))
        out[lo:lo + chunk_size] = area.amin(-1)
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
    u = union_rect_area(s, o).double()
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
