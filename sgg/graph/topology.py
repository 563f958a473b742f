"""Deterministic topological relations between object footprints (DE-9IM → RCC8 names).

Candidate pairs are the boxes whose envelopes come within ``distance`` (:func:`sgg.ops.spatial_pairs`), never
an N² scan; each candidate pair's DE-9IM matrix is computed in one vectorised :func:`shapely.relate` call and
classified with numpy; disjoint pairs whose footprints lie farther apart than ``distance`` are dropped:

=============  ======  =========================================================
name           RCC8    DE-9IM condition (a = subject, b = object)
=============  ======  =========================================================
``equals``     EQ      interiors meet, nothing of either lies outside the other
``within``     TPP /   a ⊂ b (``I∩E``, ``B∩E`` of a empty); NTPP when boundaries
               NTPP    do not meet
``contains``   TPPi /  b ⊂ a
               NTPPi
``overlaps``   PO      interiors meet, neither contains the other
``touches``    EC      boundaries meet, interiors do not
``disjoint``   DC      no contact, but within ``distance`` pixels
=============  ======  =========================================================

Computed on pixel footprints (so ``distance`` is in pixels and the result does not depend on the CRS).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sgg.ops import box_to_envelope, box_to_shapely, spatial_pairs

NAMES = ("equals", "within", "contains", "overlaps", "touches", "disjoint")


def _boxes(sg_or_boxes: Any) -> torch.Tensor:
    """(N,5) float64 CPU boxes of a SceneGraph, Detections, OrientedBoxes, tensor or array."""
    boxes = getattr(sg_or_boxes, "detections", sg_or_boxes)
    boxes = getattr(boxes, "boxes", boxes)
    boxes = getattr(boxes, "tensor", boxes)
    if not isinstance(boxes, torch.Tensor):
        boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float64))
    return boxes.detach().cpu().double().reshape(-1, 5)


def classify_de9im(matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DE-9IM strings of two areal geometries → (name, RCC8 code) arrays."""
    m = np.asarray(matrices, dtype="U9")
    if m.size == 0:
        return np.zeros(0, dtype="U8"), np.zeros(0, dtype="U5")
    empty = m.view(np.uint32).reshape(-1, 9) == ord("F")  # True where the intersection is empty
    II, IB, IE, BI, BB, BE, EI, EB = (empty[:, k] for k in range(8))
    meet = ~II
    a_in_b = meet & IE & BE
    b_in_a = meet & EI & EB
    touch = II & ~(IB & BI & BB)
    conds = [a_in_b & b_in_a, a_in_b, b_in_a, meet, touch]
    name = np.select(conds, list(NAMES[:5]), default="disjoint").astype("U8")
    rcc8 = np.select(
        [a_in_b & b_in_a, a_in_b & BB, a_in_b, b_in_a & BB, b_in_a, meet, touch],
        ["EQ", "NTPP", "TPP", "NTPPi", "TPPi", "PO", "EC"],
        default="DC",
    ).astype("U5")
    return name, rcc8


def topological_relations(sg_or_boxes: Any, pairs: Any | None = None, distance: float = 0.0) -> dict[str, np.ndarray]:
    """Topological relations between footprints of a SceneGraph (or (N,5) boxes).

    ``pairs``: (K,2) ordered (subject, object) rows to classify; default all unordered pairs ``i < j`` that
    touch or lie within ``distance`` pixels. Disjoint pairs farther apart than ``distance`` are dropped.
    Returns ``subject, object`` (int64), ``predicate`` (name), ``rcc8`` (code), ``distance`` (float64).
    """
    import shapely

    boxes = _boxes(sg_or_boxes)
    polys = box_to_shapely(boxes)
    if pairs is None:  # envelopes within the distance; the exact footprint distance filters them below
        p = spatial_pairs(box_to_envelope(boxes), margin=max(float(distance), 0.0)).numpy()
    else:
        p = np.asarray(pairs.detach().cpu() if hasattr(pairs, "detach") else pairs, dtype=np.int64).reshape(-1, 2)
        if len(p) and (p.min() < 0 or p.max() >= len(polys)):
            raise ValueError(f"topological_relations: pair index out of range for {len(polys)} objects")
    a, b = polys[p[:, 0]], polys[p[:, 1]]
    name, rcc8 = classify_de9im(shapely.relate(a, b) if len(p) else np.zeros(0, dtype="U9"))
    dist = np.zeros(len(p))
    dc = name == "disjoint"
    if dc.any():
        dist[dc] = shapely.distance(a[dc], b[dc])
    keep = ~dc | (dist <= distance)
    return {"subject": p[keep, 0], "object": p[keep, 1], "predicate": name[keep], "rcc8": rcc8[keep],
            "distance": dist[keep]}
