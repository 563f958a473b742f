"""Merge per-tile detections of a multi-level sweep into one set of level-0 objects (DESIGN.md §5.2).

Order of operations (all vectorised over boxes and tiles):

1. :func:`tile_to_level0` moves a tile's boxes to level-0 pixels (``x * scale + window origin``).
2. **Border fragments.** A detection whose envelope comes within ``border_margin`` tile pixels of an
   *inner* edge of its tile (an edge that is not the image edge) may be a piece of an object cut by the
   tile. It is dropped when another tile of the same level holds the same envelope clear of that tile's
   own inner edges: thanks to the overlap, that neighbour sees the object whole. Fragments nobody sees whole
   (objects larger than the overlap, or a neighbour not run under the guided zoom) are kept but flagged.
3. **Coarse small objects.** At a coarser level (``level > 0``) an object shorter than ``coarse_min_size``
   tile pixels is poorly resolved; it is dropped where a finer-level tile covers it (that tile sees it at
   higher resolution). Coarse detections still guide the zoom before this filter.
4. Flagged fragments lying inside a non-fragment of their class (step 6's test) go before NMS, so a
   high-scoring piece cannot suppress the whole object.
5. Class-wise rotated NMS within each level, then across levels (IoU ``iou_threshold``, STAR: 0.4).
6. **Containment.** A box mostly inside (rotated IoF ≥ ``containment_threshold``) a same-class box that
   scores higher — or that is not a flagged fragment while it is — is suppressed: this removes fragments
   that NMS misses because a piece has low IoU with the whole object.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sgg.ops import pairwise_intersection, rotated_nms, spatial_pairs
from sgg.structures import Detections

_CHUNK = 2048  # rows per block for N×N / N×T boolean matrices


def tile_to_level0(det: Detections, window: Sequence[float], scale: float, level: int | None = None) -> Detections:
    """Boxes from tile pixels to level-0 pixels: ``OrientedBoxes.affine(scale, window origin)``."""
    boxes = det.boxes.affine(scale=float(scale), offset=(float(window[0]), float(window[1])))
    levels = det.levels
    if level is not None:
        levels = torch.full((len(det),), int(level), dtype=torch.long, device=boxes.device)
    return Detections(boxes, det.labels, det.scores, det.features, levels, det.class_scores)


def _shrunk_windows(windows: torch.Tensor, margins: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """(T,4) xyxy of each tile's safe area: inner edges pulled in by the margin, image edges pushed to ±inf."""
    x0, y0 = windows[:, 0], windows[:, 1]
    x1, y1 = x0 + windows[:, 2], y0 + windows[:, 3]
    w, h = image_size
    inf = torch.full_like(x0, float("inf"))
    return torch.stack(
        [
            torch.where(x0 > 0.5, x0 + margins, -inf),
            torch.where(y0 > 0.5, y0 + margins, -inf),
            torch.where(x1 < w - 0.5, x1 - margins, inf),
            torch.where(y1 < h - 0.5, y1 - margins, inf),
        ],
        dim=1,
    )


def _inside(env: torch.Tensor, rect: torch.Tensor) -> torch.Tensor:
    """(N,T) whether each envelope (N,4) lies within each rectangle (T,4); computed in row blocks."""
    out = torch.empty(env.shape[0], rect.shape[0], dtype=torch.bool)
    for s in range(0, env.shape[0], _CHUNK):
        e = env[s : s + _CHUNK, None, :]
        out[s : s + _CHUNK] = (
            (e[..., 0] >= rect[None, :, 0])
            & (e[..., 1] >= rect[None, :, 1])
            & (e[..., 2] <= rect[None, :, 2])
            & (e[..., 3] <= rect[None, :, 3])
        )
    return out


def border_fragments(
    env: torch.Tensor,
    tile_ids: torch.Tensor,
    windows: torch.Tensor,
    tile_levels: torch.Tensor,
    tile_scales: torch.Tensor,
    image_size: tuple[int, int],
    border_margin: float = 4.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(drop, at_border)`` masks for detections with level-0 envelopes ``env`` from tiles ``tile_ids``.

    ``at_border``: the envelope reaches within ``border_margin`` tile px of an inner edge of its own tile.
    ``drop``: at the border and seen clear of inner edges by another tile of the same level.
    """
    n = env.shape[0]
    if n == 0:
        z = torch.zeros(0, dtype=torch.bool)
        return z, z
    safe = _shrunk_windows(windows, border_margin * tile_scales, image_size)
    own = safe[tile_ids]
    at_border = ~(
        (env[:, 0] >= own[:, 0]) & (env[:, 1] >= own[:, 1]) & (env[:, 2] <= own[:, 2]) & (env[:, 3] <= own[:, 3])
    )
    drop = torch.zeros(n, dtype=torch.bool)
    idx = at_border.nonzero().flatten()
    if len(idx):
        inside = _inside(env[idx], safe)
        same_level = tile_levels[None, :] == tile_levels[tile_ids[idx]][:, None]
        other = torch.arange(len(windows))[None, :] != tile_ids[idx][:, None]
        drop[idx] = (inside & same_level & other).any(dim=1)
    return drop, at_border


def coarse_small(
    det: Detections,
    env: torch.Tensor,
    windows: torch.Tensor,
    tile_levels: torch.Tensor,
    image_size: tuple[int, int],
    min_size: float,
) -> torch.Tensor:
    """Mask of coarse-level (level > 0) detections shorter than ``min_size`` level pixels that some
    finer-level tile covers whole."""
    n = len(det)
    if n == 0 or min_size <= 0 or det.levels is None:
        return torch.zeros(n, dtype=torch.bool)
    lv = det.levels
    long_side = torch.maximum(det.boxes.widths, det.boxes.heights) / (2.0 ** lv.float())
    cand = ((lv > 0) & (long_side < min_size)).nonzero().flatten()
    out = torch.zeros(n, dtype=torch.bool)
    if len(cand):
        rect = _shrunk_windows(windows, torch.zeros(len(windows)), image_size)
        finer = tile_levels[None, :] < lv[cand][:, None]
        out[cand] = (_inside(env[cand], rect) & finer).any(dim=1)
    return out


def _aligned_iof(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection / area(a) for aligned pairs (exact convex clipping, ``sgg.ops.pairwise_intersection``)."""
    if a.shape[0] == 0:
        return a.new_zeros(0)
    inter = pairwise_intersection(a, b).to(a.dtype)
    return inter / (a[:, 2] * a[:, 3]).clamp_min(1e-9)


def containment_suppress(
    det: Detections, threshold: float = 0.8, fragile: torch.Tensor | None = None, by_score: bool = True
) -> torch.Tensor:
    """Keep-mask: drop a box lying ``≥ threshold`` (rotated IoF) inside a same-class box that outranks it.

    j outranks i when it scores higher (if ``by_score``), or when i is ``fragile`` (a flagged tile-border
    fragment) and j is not.
    Candidate pairs come from overlapping envelopes (``sgg.ops.spatial_pairs``), then the aligned
    rotated IoF is computed only for those pairs.
    """
    n = len(det)
    keep = torch.ones(n, dtype=torch.bool)
    if n < 2 or threshold >= 1.0:
        return keep
    fragile = torch.zeros(n, dtype=torch.bool) if fragile is None else fragile
    lab, sc, area = det.labels, det.scores, det.boxes.area()
    i, j = spatial_pairs(det.boxes.envelope()).unbind(1)
    i, j = torch.cat([i, j]), torch.cat([j, i])  # both directions: does j contain i?
    ok = (lab[i] == lab[j]) & (area[i] <= area[j])
    ok &= ((sc[j] > sc[i]) & by_score) | (fragile[i] & ~fragile[j])
    r, c = i[ok], j[ok]
    if len(r):
        t = det.boxes.tensor
        iof = _aligned_iof(t[r], t[c])
        hit = r[iof >= threshold]
        keep[hit] = False
    return keep


def _nms(det: Detections, iou_threshold: float, group: torch.Tensor) -> torch.Tensor:
    if len(det) == 0:
        return torch.zeros(0, dtype=torch.long)
    return rotated_nms(det.boxes.tensor, det.scores, iou_threshold, labels=group)


def merge_detections(
    det: Detections,
    tile_ids: torch.Tensor,
    windows: torch.Tensor,
    tile_levels: torch.Tensor,
    tile_scales: torch.Tensor,
    image_size: tuple[int, int],
    *,
    iou_threshold: float = 0.4,
    border_margin: float = 4.0,
    containment_threshold: float = 0.8,
    coarse_min_size: float = 32.0,
) -> Detections:
    """Merge level-0 detections of many tiles (``det.levels`` set) into one scene's objects.

    ``tile_ids`` (N,) indexes ``windows`` (T,4: col_off, row_off, width, height in level-0 px),
    ``tile_levels`` (T,) and ``tile_scales`` (T,: level-0 px per tile px). ``image_size`` is (width, height).
    Returns detections sorted by descending score, with ``levels`` saying where each was found.
    """
    det = det.to("cpu")
    windows = torch.as_tensor(windows, dtype=torch.float32).reshape(-1, 4)
    tile_levels = torch.as_tensor(tile_levels, dtype=torch.long).reshape(-1)
    tile_scales = torch.as_tensor(tile_scales, dtype=torch.float32).reshape(-1)
    tile_ids = torch.as_tensor(tile_ids, dtype=torch.long).reshape(-1)
    if det.levels is None:
        det = Detections(det.boxes, det.labels, det.scores, det.features, tile_levels[tile_ids], det.class_scores)
    if len(det) == 0:
        return det
    env = det.boxes.envelope()
    drop, at_border = border_fragments(env, tile_ids, windows, tile_levels, tile_scales, image_size, border_margin)
    drop |= coarse_small(det, env, windows, tile_levels, image_size, coarse_min_size)
    keep = (~drop).nonzero().flatten()
    det, at_border = det[keep], at_border[keep]
    # fragments inside a whole same-class object go first, so that NMS cannot let them suppress it
    if bool(at_border.any()):
        keep = containment_suppress(det, containment_threshold, at_border, by_score=False).nonzero().flatten()
        det, at_border = det[keep], at_border[keep]
    num_classes = int(det.labels.max()) + 1 if len(det) else 1
    # class-wise NMS within each level, then across levels
    k = _nms(det, iou_threshold, det.levels * num_classes + det.labels)
    det, at_border = det[k], at_border[k]
    k = _nms(det, iou_threshold, det.labels)
    det, at_border = det[k], at_border[k]
    k = containment_suppress(det, containment_threshold, at_border).nonzero().flatten()
    det = det[k]
    order = torch.argsort(det.scores, descending=True, stable=True)
    return det[order]


def merge_single(det: Detections, iou_threshold: float = 0.4, containment_threshold: float = 0.8) -> Detections:
    """Class-wise NMS plus containment suppression for detections not tied to tiles (e.g. loaded files)."""
    det = det.to("cpu")
    if len(det) == 0:
        return det
    k = _nms(det, iou_threshold, det.labels)
    det = det[k]
    det = det[containment_suppress(det, containment_threshold).nonzero().flatten()]
    return det[torch.argsort(det.scores, descending=True, stable=True)]


__all__ = [
    "tile_to_level0",
    "border_fragments",
    "coarse_small",
    "containment_suppress",
    "merge_detections",
    "merge_single",
]
