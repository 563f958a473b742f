"""Exact greedy rotated NMS, lazily evaluated in score-ordered blocks.

Plain greedy NMS visits boxes by descending score (stable: equal scores keep input order) and keeps a box
unless an already kept box overlaps it with IoU > threshold. Only IoUs between a *kept* box and a later,
*still alive* box can change the result, so (like a lazy STRtree reference) we never compute the others:

1. boxes are processed in blocks of ``block`` alive ranks, which are resolved among
   themselves (``spatial_pairs`` candidates, exact IoU, then the greedy fixed point of the small block
   adjacency matrix, iterated with tensor ops until stable);
2. every box kept in the block suppresses the alive later boxes it overlaps: candidates come from the
   envelope index built once over all boxes (``sgg.ops.pairs.EnvelopeIndex``, the sweep behind
   ``spatial_pairs``) and equal labels when ``labels`` are given; a cheap upper bound on the IoU
   (intersection ≤ envelope overlap and ≤ the smaller area) drops hopeless pairs; exact IoU
   (``sgg.ops.iou``) runs on the rest only.

The result is identical to plain greedy NMS; crowded scenes cost about as many IoUs as boxes kept × their
neighbours, sparse ones about the number of overlapping pairs.
"""

from __future__ import annotations

from typing import Any

import torch

from .conversions import _as_boxes, box_to_envelope
from .iou import DEFAULT_CHUNK, pairwise_intersection
from .pairs import EnvelopeIndex, spatial_pairs

__all__ = ["rotated_nms", "batched_rotated_nms"]


def _above(boxes: torch.Tensor, area: torch.Tensor, env: torch.Tensor, i: torch.Tensor, j: torch.Tensor,
           thr: float, chunk_size: int) -> torch.Tensor:
    """Mask of pairs with IoU > thr. Pairs whose cheap upper bound (intersection ≤ min(envelope overlap,
    areas)) already rules it out by a safe margin skip the exact clipping."""
    ai, aj = area[i], area[j]
    ei, ej = env[i], env[j]
    ov = (torch.minimum(ei[:, 2], ej[:, 2]) - torch.maximum(ei[:, 0], ej[:, 0])).clamp_min(0)
    ov = ov * (torch.minimum(ei[:, 3], ej[:, 3]) - torch.maximum(ei[:, 1], ej[:, 1])).clamp_min(0)
    m = torch.minimum(ov, torch.minimum(ai, aj))
    bound = m / (ai + aj - m).clamp_min(1e-300)
    out = torch.zeros(i.shape[0], dtype=torch.bool, device=i.device)
    maybe = (bound >= thr * (1 - 1e-4)).nonzero(as_tuple=True)[0]
    if maybe.numel():
        i, j = i[maybe], j[maybe]
        inter = pairwise_intersection(boxes[i], boxes[j], chunk_size)
        union = area[i] + area[j] - inter
        out[maybe] = (union > 0) & (inter / union.clamp_min(1e-300) > thr)
    return out


def _resolve_block(sel: torch.Tensor, boxes, area, env, lab, thr: float, chunk_size: int) -> torch.Tensor:
    """Greedy NMS among the (rank-sorted) boxes ``sel`` alone: boolean keep mask over ``sel``."""
    s = sel.numel()
    ii, jj = spatial_pairs(env[sel]).unbind(1)  # small: the dense test
    if lab is not None:
        m = lab[sel[ii]] == lab[sel[jj]]
        ii, jj = ii[m], jj[m]
    keep = torch.ones(s, dtype=torch.bool, device=sel.device)
    if ii.numel() == 0:
        return keep
    hit = _above(boxes, area, env, sel[ii], sel[jj], thr, chunk_size)
    adj = torch.zeros(s, s, dtype=torch.bool, device=sel.device)
    adj[ii[hit], jj[hit]] = True
    # keep[j] = no kept i < j with adj[i, j]; Jacobi iteration fixes one more rank per sweep at least
    for _ in range(s + 1):
        new = ~(adj & keep[:, None]).any(0)
        if torch.equal(new, keep):
            break
        keep = new
    return keep


def rotated_nms(
    boxes: Any,
    scores: Any,
    iou_threshold: float,
    labels: Any | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    block: int = 256,
    max_candidates: int = 1 << 22,
) -> torch.Tensor:
    """Greedy NMS of le90 boxes (N,5): kept indices (LongTensor) in descending score order.

    A box is suppressed by a higher-scored kept box when their IoU is > ``iou_threshold``. With ``labels``
    (N,) boxes only suppress boxes of the same label (class-wise NMS). ``block`` alive boxes are resolved per
    step; ``max_candidates`` bounds the candidate pairs held at once.
    """
    b = _as_boxes(boxes)
    sc = torch.as_tensor(scores, device=b.device).reshape(-1)
    n = b.shape[0]
    if sc.shape[0] != n:
        raise ValueError(f"rotated_nms: {n} boxes but {sc.shape[0]} scores")
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=b.device)
    order = torch.sort(sc, descending=True, stable=True).indices
    bs = b[order]
    lab = None
    if labels is not None:
        lab = torch.as_tensor(labels, device=b.device).reshape(-1)
        if lab.shape[0] != n:
            raise ValueError(f"rotated_nms: {n} boxes but {lab.shape[0]} labels")
        lab = lab[order]
    env = box_to_envelope(bs.double())  # float64: exact candidate tests even at 30,000-px coordinates
    area = bs[:, 2].double() * bs[:, 3].double()
    index = EnvelopeIndex(env)
    alive = torch.ones(n, dtype=torch.bool, device=b.device)
    keep = torch.zeros(n, dtype=torch.bool, device=b.device)
    r0 = 0
    while r0 < n:
        # the next `block` alive ranks (suppressed ranks in between are already decided)
        sel = alive[r0:].nonzero(as_tuple=True)[0][:block] + r0
        if sel.numel() == 0:
            break
        r1 = int(sel[-1]) + 1
        kept = sel[_resolve_block(sel, bs, area, env, lab, iou_threshold, chunk_size)]
        keep[kept] = True
        alive[r0:r1] = False
        r0 = r1
        if r1 == n:
            break
        for qi, j in index.query(env[kept], max_candidates):
            qi = kept.index_select(0, qi)
            ok = alive.index_select(0, j)
            if lab is not None:
                ok &= lab.index_select(0, qi) == lab.index_select(0, j)
            qi, j = qi[ok], j[ok]
            if j.numel():
                alive[j[_above(bs, area, env, qi, j, iou_threshold, chunk_size)]] = False
    return order[keep]


def batched_rotated_nms(boxes: Any, scores: Any, labels: Any, iou_threshold: float, chunk_size: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Class-wise rotated NMS (torchvision's ``batched_nms`` argument order): ``rotated_nms`` with labels."""
    return rotated_nms(boxes, scores, iou_threshold, labels=labels, chunk_size=chunk_size)
