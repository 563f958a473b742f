"""Rotated NMS against a plain greedy reference built on shapely."""

from __future__ import annotations

import math

import numpy as np
import shapely
import torch

from sgg.ops import batched_rotated_nms, box_to_shapely, rotated_nms

PI = math.pi


def greedy_reference(boxes: torch.Tensor, scores: torch.Tensor, thr: float, labels=None) -> list[int]:
    """Textbook greedy NMS: visit boxes by descending score, keep one unless a kept box overlaps it > thr."""
    polys = box_to_shapely(boxes)
    area = shapely.area(polys)
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    kept: list[int] = []
    for i in order:
        cand = [k for k in kept if labels is None or int(labels[k]) == int(labels[i])]
        if cand:
            inter = shapely.area(shapely.intersection(polys[i], polys[cand]))
            iou = inter / (area[i] + area[cand] - inter)
            if (iou > thr).any():
                continue
        kept.append(i)
    return kept


def crowded_scene(n: int, size: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Objects plus jittered duplicates, as a detector outputs them."""
    g = torch.Generator().manual_seed(seed)
    m = n // 4
    obj = torch.cat([torch.rand(m, 2, generator=g) * size, 4 + torch.rand(m, 2, generator=g) * 40,
                     (torch.rand(m, 1, generator=g) - 0.5) * PI], 1)
    dup = obj.repeat(4, 1)
    dup[:, :2] += torch.randn(len(dup), 2, generator=g) * 3
    dup[:, 2:4] *= 1 + 0.2 * torch.randn(len(dup), 2, generator=g).clamp(-2, 2)
    dup[:, 4] += 0.2 * torch.randn(len(dup), generator=g)
    scores = torch.rand(len(dup), generator=g)
    return dup, scores


def test_matches_greedy_reference_crowded():
    for seed, thr in ((0, 0.1), (1, 0.3), (2, 0.5), (3, 0.7)):
        boxes, scores = crowded_scene(400, 150, seed)
        got = rotated_nms(boxes, scores, thr)
        assert got.dtype == torch.long
        assert got.tolist() == greedy_reference(boxes, scores, thr)


def test_matches_greedy_reference_with_labels():
    boxes, scores = crowded_scene(400, 120, 5)
    labels = torch.randint(0, 3, (len(boxes),), generator=torch.Generator().manual_seed(5))
    got = rotated_nms(boxes, scores, 0.3, labels=labels)
    assert got.tolist() == greedy_reference(boxes, scores, 0.3, labels)
    assert batched_rotated_nms(boxes, scores, labels, 0.3).tolist() == got.tolist()
    # class-wise keeps at least as many boxes as class-agnostic
    assert len(got) >= len(rotated_nms(boxes, scores, 0.3))


def test_descending_scores_and_ties_keep_input_order():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0, 0.0]] * 3 + [[50.0, 50.0, 4.0, 2.0, 0.5]])
    scores = torch.tensor([0.5, 0.9, 0.9, 0.1])
    assert rotated_nms(boxes, scores, 0.5).tolist() == [1, 3]
    keep = rotated_nms(boxes, scores, 1.0)  # nothing has IoU > 1
    assert keep.tolist() == [1, 2, 0, 3]


def test_threshold_is_strict():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0, 0.0], [1.0, 0.0, 2.0, 2.0, 0.0]], dtype=torch.float64)  # IoU 1/3
    s = torch.tensor([1.0, 0.5])
    assert rotated_nms(a, s, 0.34).tolist() == [0, 1]
    assert rotated_nms(a, s, 0.33).tolist() == [0]


def test_empty_and_single():
    assert rotated_nms(torch.zeros(0, 5), torch.zeros(0), 0.5).shape == (0,)
    assert rotated_nms(torch.tensor([[1.0, 1.0, 2.0, 1.0, 0.0]]), torch.tensor([0.3]), 0.5).tolist() == [0]


def test_chunked_pairs_give_same_result():
    boxes, scores = crowded_scene(2000, 300, 7)
    a = rotated_nms(boxes, scores, 0.2)
    b = rotated_nms(boxes, scores, 0.2, chunk_size=1000)
    assert torch.equal(a, b)
    # every kept pair is below the threshold; every removed box overlaps some kept box above it
    from sgg.ops import rotated_iou

    iou = rotated_iou(boxes[a], boxes[a])
    iou.fill_diagonal_(0)
    assert float(iou.max()) <= 0.2
    removed = np.setdiff1d(np.arange(len(boxes)), a.numpy())
    assert bool((rotated_iou(boxes[removed], boxes[a]).max(dim=1).values > 0.2).all())


def test_small_blocks_and_candidate_chunks_match_reference():
    boxes, scores = crowded_scene(300, 100, 11)
    boxes[:, :2] += 29000.0  # large image coordinates
    labels = torch.randint(0, 2, (len(boxes),), generator=torch.Generator().manual_seed(11))
    for thr, lab in ((0.0, None), (0.25, labels)):
        ref = greedy_reference(boxes, scores, thr, lab)
        for block, max_candidates in ((7, 50), (64, 1 << 22), (10_000, 1 << 22)):
            got = rotated_nms(boxes, scores, thr, labels=lab, block=block, max_candidates=max_candidates)
            assert got.tolist() == ref
