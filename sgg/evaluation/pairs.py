"""Pair recall: the share of ground-truth related (subject, object) pairs that a ranked pair list keeps.

With ground-truth boxes (PredCls) a pair hits when it is the annotated (subject, object). With detections,
a detected pair (i, j) hits the annotated (s, o) when box i matches s and box j matches o at rotated IoU ≥
``iou_threshold`` (0.5; class-agnostic unless ``match_labels``). Recall is computed per image at several
budgets — absolute (STAR keeps 10,000) and as shares of the image's N(N−1) ordered pairs — and averaged over
images (images without relations are skipped). Everything is vectorised: matches come from the shared
envelope op (``sgg.ops.spatial_pairs``) and rotated IoU of the touching pairs only.

    sgg eval pairs --gt annotations/ [--proposer star|nearest|FILE] [--pred detections/] [--budget 10000]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sgg.structures import Detections, PairSet, SceneGraph

__all__ = ["match_boxes", "first_hit_ranks", "MISSED", "pair_recall", "mean_pair_recall", "format_pair_table"]

DEFAULT_BUDGETS = (10_000,)
DEFAULT_FRACTIONS = (0.01, 0.02, 0.05)
MISSED = torch.iinfo(torch.long).max  # rank of a ground-truth pair that no kept pair hits


def match_boxes(pred: Detections, gt: Detections, iou_threshold: float = 0.5, match_labels: bool = False) -> torch.Tensor:
    """(K, 2) rows (prediction index, ground-truth index) whose rotated IoU ≥ ``iou_threshold``."""
    from sgg.ops import box_to_envelope, rotated_iou_aligned
    from sgg.ops.pairs import spatial_pairs

    if len(pred) == 0 or len(gt) == 0:
        return torch.zeros(0, 2, dtype=torch.long)
    pb, gb = pred.boxes.tensor.detach().cpu().double(), gt.boxes.tensor.detach().cpu().double()
    cand = spatial_pairs(box_to_envelope(pb), box_to_envelope(gb))
    if match_labels and len(cand):
        cand = cand[pred.labels.cpu()[cand[:, 0]] == gt.labels.cpu()[cand[:, 1]]]
    if len(cand) == 0:
        return cand
    iou = rotated_iou_aligned(pb[cand[:, 0]], gb[cand[:, 1]])
    return cand[iou >= iou_threshold - 1e-12]


def first_hit_ranks(pairs: torch.Tensor, gt_pairs: torch.Tensor, num_gt: int, matches: torch.Tensor | None = None) -> torch.Tensor:
    """(G,) rank (0-based position in ``pairs``, best first) of the first pair hitting each ground-truth
    pair, or ``MISSED`` (the largest int64) when none does. ``matches`` (K,2) maps prediction to
    ground-truth objects (None: the predictions are the ground-truth objects)."""
    g = gt_pairs.shape[0]
    m = pairs.shape[0]
    out = torch.full((g,), MISSED, dtype=torch.long)
    if g == 0 or m == 0:
        return out
    if matches is None:
        subj, obj, rank = pairs[:, 0], pairs[:, 1], torch.arange(m)
    else:
        # join each pair with the matches of its subject, then of its object (a box matches few ground truths)
        order = torch.argsort(matches[:, 0], stable=True)
        mdet, mgt = matches[order, 0], matches[order, 1]
        start = torch.searchsorted(mdet, pairs)
        count = torch.searchsorted(mdet, pairs, right=True) - start

        def expand(rows: torch.Tensor, col: int) -> tuple[torch.Tensor, torch.Tensor]:
            c = count[rows, col]
            r = torch.repeat_interleave(rows, c)
            off = torch.arange(int(c.sum())) - torch.repeat_interleave(torch.cumsum(c, 0) - c, c)
            return r, mgt[start[r, col] + off]

        r1, s = expand(torch.arange(m), 0)
        c2 = count[r1, 1]
        rank = torch.repeat_interleave(r1, c2)
        subj = torch.repeat_interleave(s, c2)
        off = torch.arange(int(c2.sum())) - torch.repeat_interleave(torch.cumsum(c2, 0) - c2, c2)
        obj = mgt[start[rank, 1] + off]
    key = subj * num_gt + obj
    gkey = gt_pairs[:, 0] * num_gt + gt_pairs[:, 1]
    uniq, inv = torch.unique(gkey, return_inverse=True)
    pos = torch.searchsorted(uniq, key).clamp_max(uniq.numel() - 1)
    hit = uniq[pos] == key
    best = torch.full((uniq.numel(),), MISSED, dtype=torch.long).scatter_reduce(0, pos[hit], rank[hit], "amin")
    return best[inv]


def pair_recall(ranked: PairSet | torch.Tensor, gt: SceneGraph, detections: Detections | None = None, *,
                budgets: Sequence[int] = DEFAULT_BUDGETS, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                iou_threshold: float = 0.5, match_labels: bool = False) -> dict[str, Any]:
    """Pair recall of one image. ``ranked``: pairs best first (into ``detections``, or into the ground-truth
    objects when ``detections`` is None). Keys ``R@<budget>``, ``R@<fraction>%``, ``R@all``, plus counts."""
    pairs = ranked.pairs if isinstance(ranked, PairSet) else torch.as_tensor(ranked, dtype=torch.long).reshape(-1, 2)
    pairs = pairs.cpu()
    gt_pairs = gt.related_pairs()
    n_gt = len(gt.detections)
    matches = None
    n = n_gt
    if detections is not None:
        matches = match_boxes(detections, gt.detections, iou_threshold, match_labels)
        n = len(detections)
    ranks = first_hit_ranks(pairs, gt_pairs, n_gt, matches)
    g = max(len(gt_pairs), 1)
    out: dict[str, Any] = {"gt_pairs": len(gt_pairs), "objects": n, "ordered_pairs": n * (n - 1), "kept": len(pairs)}
    for b in budgets:
        out[f"R@{int(b)}"] = float((ranks < int(b)).sum()) / g
    for f in fractions:
        out[f"R@{100 * f:g}%"] = float((ranks < int(f * n * (n - 1))).sum()) / g
    out["R@all"] = float((ranks < MISSED).sum()) / g
    return out


def mean_pair_recall(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-image recalls averaged over images with at least one related pair; counts summed."""
    rows = [r for r in results if r["gt_pairs"] > 0]
    if not rows:
        return {"images": 0}
    out: dict[str, Any] = {"images": len(rows)}
    for k in rows[0]:
        if k.startswith("R@"):
            out[k] = sum(r[k] for r in rows) / len(rows)
    for k in ("gt_pairs", "objects", "ordered_pairs", "kept"):
        out[k] = sum(r[k] for r in rows)
    return out


def format_pair_table(named: dict[str, dict[str, Any]]) -> str:
    """Markdown table: one row per method, one column per recall key."""
    cols = [k for k in next(iter(named.values())) if k.startswith("R@")]
    lines = ["| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name, r in named.items():
        lines.append(f"| {name} | " + " | ".join(f"{r.get(c, float('nan')):.3f}" for c in cols) + " |")
    return "\n".join(lines)
