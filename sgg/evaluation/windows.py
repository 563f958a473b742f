"""Evaluation windows: scene graphs cut into fixed-size windows scored as images of their own
(``scripts/eval_relation.py --crop``, ``python -m sgg.relation_heads.diagnose --heads``)."""

from __future__ import annotations

import torch

from sgg.ops import rotated_iof
from sgg.structures import PairSet


def _starts(extent: int, size: int) -> torch.Tensor:
    n = max(1, -(-extent // size))
    return torch.tensor([min(i * size, max(extent - size, 0)) for i in range(n)], dtype=torch.float32)


def crop_graphs(graphs, size: int, min_inside: float = 0.7, detections=None):
    """Each ground-truth graph cut into ``size`` × ``size`` windows (a grid, the last row/column flush with the
    image edge), each window a graph of its own, so that K = 20/50/100 mean what they mean on ordinary SGG
    images (a 2,048² synthetic scene holds ~6,000 relations, capping R@K near K / 6,000): objects ≥ ``min_inside`` of
    their area inside (oriented-box ∩ window over box area, ``rotated_iof``), relations with both ends kept;
    boxes stay in scene pixels (the heads' features are translation-invariant). Windows without relations
    are dropped. With ``detections`` (one detected graph per ground-truth graph, SGDet) the same windows
    also cut the detections by the same rule, and the result is (ground-truth windows, detection windows)."""
    out, dets = [], []
    for i, g in enumerate(graphs):
        boxes = g.detections.boxes.tensor.float()
        if g.image_size is not None:
            w, h = g.image_size
        else:
            env = g.detections.boxes.envelope()
            w, h = int(env[:, 2].max().ceil()), int(env[:, 3].max().ceil())
        xs, ys = _starts(w, size), _starts(h, size)
        x0, y0 = xs.repeat(len(ys)), ys.repeat_interleave(len(xs))
        win = torch.stack([x0 + size / 2, y0 + size / 2, torch.full_like(x0, size), torch.full_like(x0, size),
                           torch.zeros_like(x0)], 1)
        inside = rotated_iof(boxes, win) >= min_inside  # (N, windows)
        lab = g.predicate_labels
        for j in range(len(win)):
            keep = inside[:, j]
            rel = keep[g.pairs.pairs].all(1) & (lab > 0)
            if not bool(rel.any()):
                continue
            new = torch.cumsum(keep.long(), 0) - 1  # old object index → index in the window
            if detections is not None:
                d = detections[i]
                dk = rotated_iof(d.detections.boxes.tensor.float(), win[j:j + 1])[:, 0] >= min_inside
                dets.append(d.replace(detections=d.detections[dk], pairs=PairSet.empty(), predicate_scores=None,
                                      predicate_labels=None, difficult=None))
            out.append(g.replace(detections=g.detections[keep], pairs=PairSet(new[g.pairs.pairs[rel]]),
                                 predicate_labels=lab[rel],
                                 difficult=g.difficult[keep] if g.difficult is not None else None,
                                 metadata={**g.metadata, "crop": [float(x0[j]), float(y0[j]), size]}))
    return (out, dets) if detections is not None else out
