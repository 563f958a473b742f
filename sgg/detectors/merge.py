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
7. **Collinear joining** (:func:`join_collinear`, classes in ``join_classes`` only): long thin objects
   longer than any tile (a 1 km runway, a dock, a breakwater) come out as pieces — one per tile, or a
   detector's part-length box even where the object fits — that NMS and containment cannot unite because
   the pieces barely overlap. Same-class pieces that lie on one line (angle, offset across the axis and width
   ratio within bounds; gap along the axis within a few widths or most of the shorter piece's length) are
   replaced by one box spanning them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sgg.ops import normalize_le90, pairwise_intersection, rotated_nms, spatial_pairs
from sgg.structures import Detections, OrientedBoxes

#: Linear structures of STAR's vocabulary, joined across pieces by default (names absent from a vocabulary
#: are ignored): strips and walls whose length can exceed a tile at every pyramid level.
#: Taxiways are left out: distinct taxiway segments meet end to end, and joining them cost taxiway AP on
#: synthetic validation scenes (0.63 → 0.26).
LINEAR_CLASSES = ("runway", "dock", "breakwater", "bridge", "gravity_dam", "arch_dam", "flood_dam")

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
    join_classes: Sequence[int | Sequence[int]] = (),
) -> Detections:
    """Merge level-0 detections of many tiles (``det.levels`` set) into one scene's objects.

    ``tile_ids`` (N,) indexes ``windows`` (T,4: col_off, row_off, width, height in level-0 px),
    ``tile_levels`` (T,) and ``tile_scales`` (T,: level-0 px per tile px). ``image_size`` is (width, height).
    ``join_classes``: classes whose collinear pieces are joined (:func:`join_collinear`), none by default.
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
    det = join_and_suppress(det, join_classes, image_size, containment_threshold)
    order = torch.argsort(det.scores, descending=True, stable=True)
    return det[order]


def _join_pairs(
    t: torch.Tensor,
    i: torch.Tensor,
    j: torch.Tensor,
    max_angle: float,
    max_offset: float,
    max_gap: float,
    max_gap_length: float,
    max_width_ratio: float,
) -> torch.Tensor:
    """Mask over candidate pairs (i, j) of le90 boxes ``t`` (w = long side) that lie on one line."""
    d = torch.remainder(t[i, 4] - t[j, 4] + torch.pi / 2, torch.pi) - torch.pi / 2  # angle difference mod π
    dc = t[j, :2] - t[i, :2]
    ok = d.abs() <= max_angle
    wide = torch.maximum(t[i, 3], t[j, 3])
    for a in (t[i, 4], t[j, 4]):  # offsets measured along and across each piece's axis
        u = torch.stack([torch.cos(a), torch.sin(a)], 1)
        along, across = (dc * u).sum(1).abs(), (dc[:, 0] * -u[:, 1] + dc[:, 1] * u[:, 0]).abs()
        gap = along - (t[i, 2] + t[j, 2]) / 2  # < 0: the pieces overlap along the axis
        ok &= (across <= max_offset * wide) & (
            gap <= torch.maximum(max_gap * wide, max_gap_length * torch.minimum(t[i, 2], t[j, 2]))
        )
    return ok & (wide <= max_width_ratio * torch.minimum(t[i, 3], t[j, 3]))


def linear_classes(objects: Sequence[str], join: bool | str | Sequence[str] = True) -> list[int]:
    """Indices into ``objects`` of the classes to join: ``True`` the :data:`LINEAR_CLASSES` the vocabulary
    has, ``False``/empty none, else the named classes (a comma-separated string or a list; ValueError
    naming an unknown one)."""
    if join is True:
        return [objects.index(n) for n in LINEAR_CLASSES if n in objects]
    if not join:
        return []
    names = [n.strip() for n in join.split(",") if n.strip()] if isinstance(join, str) else list(join)
    unknown = [n for n in names if n not in objects]
    if unknown:
        raise ValueError(f"unknown class(es) to join: {', '.join(unknown)} (not in the vocabulary: the detector's, or STAR's for foreign results)")
    return [objects.index(n) for n in names]


def named_classes(join: bool | str | Sequence[str]) -> str | Sequence[str] | bool:
    """``join`` for foreign detections (DOTA results): only classes named explicitly are joined, so
    ``True`` (the default for a detector's own output) joins nothing there."""
    return False if isinstance(join, bool) else join


def join_and_suppress(det: Detections, join_classes: Sequence[int | Sequence[int]],
                      image_size: tuple[int, int] | None = None, containment_threshold: float = 0.8) -> Detections:
    """Merge step 7: :func:`join_collinear`, then containment suppression of what the joined boxes cover."""
    if not len(join_classes):
        return det
    det = join_collinear(det, join_classes, image_size=image_size)
    return det[containment_suppress(det, containment_threshold).nonzero().flatten()]


def _class_groups(classes: Sequence[int | Sequence[int]] | torch.Tensor, num_labels: int) -> torch.Tensor:
    """(num_labels,) group id of each class (-1: not joined); an int is its own group, a tuple one group."""
    group = torch.full((num_labels,), -1, dtype=torch.long)
    for g, item in enumerate(classes.tolist() if isinstance(classes, torch.Tensor) else classes):
        members = [item] if isinstance(item, int) else list(item)
        group[[c for c in members if 0 <= c < num_labels]] = g
    return group


def join_collinear(
    det: Detections,
    classes: Sequence[int | Sequence[int]] | torch.Tensor,
    *,
    max_angle: float = 0.1,
    max_offset: float = 1.0,
    max_gap: float = 3.0,
    max_gap_length: float = 0.75,
    max_width_ratio: float = 2.5,
    min_aspect: float = 2.0,
    rounds: int = 3,
    image_size: tuple[int, int] | None = None,
) -> Detections:
    """Replace each chain of collinear pieces of a linear class by one box spanning them.

    ``classes``: class indices joined with pieces of their own class; a tuple of indices is a group whose
    classes join one another (pieces of one dock called ``dock`` or ``breakwater``). Two pieces join when
    both are elongated (long/short ≥ ``min_aspect``), their axes differ by at most ``max_angle`` rad, each
    centre lies within ``max_offset`` × the wider piece's width of the other's axis, their widths differ by
    at most ``max_width_ratio`` ×, and the gap between them along the axis (overlap is a negative gap) is at
    most ``max_gap`` × the wider width or ``max_gap_length`` × the shorter piece's length. Joined pairs chain
    (connected components). The joined box's axis is the principal axis of the pieces' end points (weighted
    by score × length: far-apart pieces fix the direction better than any one piece's angle); it runs from
    the first piece's end to the last's, and its width and offset across the axis are the score × length
    weighted means of the pieces'. Label, features, class scores and level are those of the piece with the largest
    score × length, the score the highest of its class's pieces. Repeated up to ``rounds`` times (a joined
    box may reach a piece that neither end reached). With ``image_size`` (width, height) a joined box ends
    where its axis leaves the image (coarse-level pieces can reach past the edge).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    det = det.to("cpu")
    if len(det) < 2:
        return det
    group_of = _class_groups(classes, int(det.labels.max()) + 1)  # joining never adds a label
    for _ in range(max(1, rounds)):
        n = len(det)
        if n < 2:
            return det
        group = group_of[det.labels]
        t = normalize_le90(det.boxes.tensor).double()
        ci = ((group >= 0) & (t[:, 2] >= min_aspect * t[:, 3])).nonzero().flatten()
        if len(ci) < 2:
            return det
        tc, m = t[ci], len(ci)
        reach = torch.maximum(max_gap * tc[:, 3], max_gap_length * tc[:, 2])
        i, j = spatial_pairs(OrientedBoxes(tc).envelope(), margin=reach).unbind(1)
        same = group[ci[i]] == group[ci[j]]
        i, j = i[same], j[same]
        ok = _join_pairs(tc, i, j, max_angle, max_offset, max_gap, max_gap_length, max_width_ratio)
        i, j = i[ok], j[ok]
        if len(i) == 0:
            return det
        graph = coo_matrix((torch.ones(len(i)).numpy(), (i.numpy(), j.numpy())), shape=(m, m))
        comp = torch.as_tensor(connected_components(graph, directed=False)[1], dtype=torch.long)
        k = int(comp.max()) + 1
        groups = (torch.bincount(comp, minlength=k) > 1).nonzero().flatten()
        mem = torch.isin(comp, groups).nonzero().flatten()  # every piece of a joined chain
        g = comp[mem]
        length, s_mem = tc[mem, 2], det.scores[ci][mem]
        wt = length * s_mem.double()
        # the chain's lead: largest score × length (stable: ties go to the earlier box)
        by_weight = mem[torch.argsort(wt, descending=True, stable=True)]
        ranked = by_weight[torch.argsort(comp[by_weight], stable=True)]
        first = torch.ones(len(ranked), dtype=torch.bool)
        first[1:] = comp[ranked][1:] != comp[ranked][:-1]
        lead = torch.zeros(k, dtype=torch.long)  # chains of one piece keep 0 (unused)
        lead[comp[ranked][first]] = ranked[first]
        # axis: principal axis of the pieces' end points, each end weighted by its piece's score × length
        # (second moments about the lead); the same weights give the width and the offset across the axis
        u = torch.stack([torch.cos(tc[mem, 4]), torch.sin(tc[mem, 4])], 1)
        origin = tc[lead[g], :2]
        ends = torch.stack(
            [tc[mem, :2] - origin + u * length[:, None] / 2, tc[mem, :2] - origin - u * length[:, None] / 2]
        )  # (2, P, 2)
        zero = torch.zeros(k, dtype=t.dtype)
        total = zero.index_add(0, g, wt).clamp_min(1e-12)
        mean = torch.stack([zero.index_add(0, g, (ends[..., d] * wt).sum(0)) for d in (0, 1)], 1)
        mean = mean / (2 * total)[:, None]
        e = ends - mean[g]
        sxx = zero.index_add(0, g, (e[..., 0] ** 2 * wt).sum(0))
        syy = zero.index_add(0, g, (e[..., 1] ** 2 * wt).sum(0))
        sxy = zero.index_add(0, g, (e[..., 0] * e[..., 1] * wt).sum(0))
        theta = 0.5 * torch.atan2(2 * sxy, sxx - syy)  # (k,) chain axis
        ax = torch.stack([torch.cos(theta), torch.sin(theta)], 1)
        nx = torch.stack([-ax[:, 1], ax[:, 0]], 1)
        c = tc[mem, :2] - origin
        along, across = (c * ax[g]).sum(1), (c * nx[g]).sum(1)
        half = length / 2
        lo = torch.full((k,), torch.inf, dtype=t.dtype).scatter_reduce(0, g, along - half, "amin")
        hi = torch.full((k,), -torch.inf, dtype=t.dtype).scatter_reduce(0, g, along + half, "amax")
        if image_size is not None:  # the part of the axis line inside the image (slab clipping)
            o = tc[lead, :2]
            for d, size in enumerate(image_size):
                step = torch.where(ax[:, d].abs() > 1e-9, ax[:, d], torch.full_like(ax[:, d], 1e-9))
                t0, t1 = (0 - o[:, d]) / step, (float(size) - o[:, d]) / step
                lo2, hi2 = torch.maximum(lo, torch.minimum(t0, t1)), torch.minimum(hi, torch.maximum(t0, t1))
                lo, hi = torch.where(hi2 > lo2, lo2, lo), torch.where(hi2 > lo2, hi2, hi)
        off = zero.index_add(0, g, across * wt) / total
        width = zero.index_add(0, g, tc[mem, 3] * wt) / total
        centre = tc[lead, :2] + ax * ((lo + hi) / 2)[:, None] + nx * off[:, None]
        boxes = torch.cat([centre, (hi - lo)[:, None], width[:, None], theta[:, None]], 1)[groups]
        # score: the best piece of the lead's class
        lab = det.labels[ci]
        sc = torch.where(lab[mem] == lab[lead[g]], s_mem, torch.zeros_like(s_mem))
        best = torch.zeros(k).scatter_reduce(0, g, sc, "amax")[groups]
        joined = det[ci[lead[groups]]]
        joined = Detections(
            OrientedBoxes(normalize_le90(boxes).float()),
            joined.labels,
            best,
            joined.features,
            joined.levels,
            joined.class_scores,
        )
        drop = torch.zeros(n, dtype=torch.bool)
        drop[ci[mem]] = True
        det = Detections.cat([det[(~drop).nonzero().flatten()], joined])
    return det


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
    "join_collinear",
    "join_and_suppress",
    "linear_classes",
    "named_classes",
    "LINEAR_CLASSES",
    "merge_single",
]
