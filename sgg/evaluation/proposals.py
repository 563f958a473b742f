"""Proposal recall: the share of ground-truth objects that some RPN proposal reaches at IoU ≥ t.

The RoI head only refines and classifies proposals, so an object that no proposal fits is rarely detected
well. On real moored boats (issue #12) this, not the RoI head, was the bottleneck: the proposals had the right
envelopes but not the boats' angle. Measured as mmdetection's ``eval_recalls`` does: per object the best IoU
over its image's proposals, then the share at or above each threshold. ``box_type="hbb"`` compares envelopes,
all that a horizontal label fixes; ``"obb"`` the oriented boxes themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torchvision.ops import box_iou

from sgg.ops import box_to_envelope, rotated_iou

THRESHOLDS = (0.3, 0.5, 0.7)


def best_overlaps(gt: torch.Tensor, proposals: torch.Tensor, box_type: str = "obb") -> torch.Tensor:
    """(G,) best IoU of each (G, 5) ground-truth box over (P, 5) proposals (0 without proposals)."""
    if box_type not in ("obb", "hbb"):
        raise ValueError(f"box_type must be 'obb' or 'hbb', not {box_type!r}")
    gt, proposals = gt.reshape(-1, 5).float(), proposals.reshape(-1, 5).float()
    if not len(gt) or not len(proposals):
        return gt.new_zeros(len(gt))
    if box_type == "hbb":
        iou = box_iou(box_to_envelope(gt), box_to_envelope(proposals))
    else:
        iou = rotated_iou(gt, proposals)
    return iou.max(1).values


def recall_at(best: torch.Tensor | Iterable[torch.Tensor],
              thresholds: Sequence[float] = THRESHOLDS) -> dict[str, float]:
    """``{"recall@t": share of objects with best IoU ≥ t}`` plus ``"objects"`` (0 objects: recall 0)."""
    if not isinstance(best, torch.Tensor):
        best = [b.reshape(-1) for b in best]
        best = torch.cat(best) if best else torch.zeros(0)
    n = int(best.numel())
    out: dict[str, float] = {"objects": n}
    for t in thresholds:
        out[f"recall@{t:g}"] = round(float((best >= t).float().mean()), 4) if n else 0.0
    return out
