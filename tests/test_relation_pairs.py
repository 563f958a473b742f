"""``sgg.datasets.relation_pairs.neighbour_pairs`` (the relation heads' class-blind candidate rule; not
``sgg.pairs.candidate_pairs``) against a hand-worked case and a dense reference, and training_pairs."""

from __future__ import annotations

import torch

from sgg.datasets import relation_pairs
from sgg.datasets.relation_pairs import neighbour_pairs, training_pairs


def _reference(boxes: torch.Tensor, margin_px: float, margin_rel: float, k: int) -> set[tuple[int, int]]:
    """Every ordered pair by the documented rule, tested pair by pair (axis-aligned boxes only)."""
    n = len(boxes)
    lo, hi = boxes[:, :2] - boxes[:, 2:4] / 2, boxes[:, :2] + boxes[:, 2:4] / 2
    m = torch.clamp_min(margin_rel * boxes[:, 2:4].max(1).values, margin_px)
    d = torch.cdist(boxes[:, :2], boxes[:, :2]) + torch.diag(torch.full((n,), float("inf")))
    near = d.argsort(1)[:, :k].tolist()
    out = set()
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            gap = torch.maximum(lo[j] - hi[i], lo[i] - hi[j])
            if bool((gap <= max(m[i], m[j])).all()) or j in near[i] or i in near[j]:
                out.add((i, j))
    return out


def test_neighbour_pairs_hand_worked():
    # margins max(16, 5) = 16: boxes 0 and 1 are 15 px apart (meet), box 2 is far from both
    boxes = torch.tensor([[0.0, 0, 10, 10, 0], [25, 0, 10, 10, 0], [200, 0, 10, 10, 0]])
    assert neighbour_pairs(boxes, margin_px=16, margin_rel=0.5, k=0).tolist() == [[0, 1], [1, 0]]
    assert neighbour_pairs(boxes, margin_px=16, margin_rel=0.5, k=1).tolist() == [[0, 1], [1, 0], [1, 2], [2, 1]]
    assert neighbour_pairs(boxes, margin_px=5, margin_rel=0.0, k=0).shape == (0, 2)  # 15 px gap > 5
    assert neighbour_pairs(boxes[:1]).shape == (0, 2)


def test_neighbour_pairs_match_a_dense_reference():
    g = torch.Generator().manual_seed(3)
    boxes = torch.cat([torch.rand(60, 2, generator=g) * 400, torch.rand(60, 2, generator=g) * 30 + 2,
                       torch.zeros(60, 1)], 1).double()
    for margin_px, margin_rel, k in ((16.0, 0.5, 0), (4.0, 0.0, 3), (16.0, 0.5, 8)):
        got = neighbour_pairs(boxes, margin_px=margin_px, margin_rel=margin_rel, k=k)
        assert set(map(tuple, got.tolist())) == _reference(boxes, margin_px, margin_rel, k)
        keys = got[:, 0] * 60 + got[:, 1]
        assert bool((keys[1:] > keys[:-1]).all())  # sorted by (subject, object), no repeats
    assert not hasattr(relation_pairs, "candidate_pairs")  # one name per rule: sgg.pairs owns candidate_pairs


def test_training_pairs_positives_then_capped_negatives():
    boxes = torch.tensor([[0.0, 0, 10, 10, 0], [25, 0, 10, 10, 0], [50, 0, 10, 10, 0], [75, 0, 10, 10, 0]])
    pairs = torch.tensor([[0, 1], [0, 1], [2, 3]])
    labels = torch.tensor([1, 2, 0])  # (2, 3) is a background row: not a positive
    got, tgt = training_pairs(boxes, pairs, labels, 3, neg_ratio=2.0, generator=torch.Generator().manual_seed(0),
                              margin_px=16, margin_rel=0.5, k=0)
    assert got[0].tolist() == [0, 1] and tgt[0].tolist() == [0.0, 1.0, 1.0]
    neigh = set(map(tuple, neighbour_pairs(boxes, margin_px=16, margin_rel=0.5, k=0).tolist())) - {(0, 1)}
    assert len(got) == 3 and set(map(tuple, got[1:].tolist())) <= neigh  # 2 negatives per positive
    assert tgt[1:].tolist() == [[1.0, 0.0, 0.0]] * 2
