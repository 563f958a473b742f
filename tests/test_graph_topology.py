"""Topological relations (sgg.graph.topology) against shapely's scalar predicates and hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
import torch

from sgg.graph.topology import classify_de9im, topological_relations


def _poly(box) -> shapely.Polygon:
    cx, cy, w, h, a = (float(v) for v in box)
    core = shapely.box(-w / 2, -h / 2, w / 2, h / 2)
    return shapely.affinity.translate(shapely.affinity.rotate(core, a, use_radians=True, origin=(0, 0)), cx, cy)


def _expected(pa, pb) -> str:
    if pa.equals(pb):
        return "equals"
    if pa.within(pb):
        return "within"
    if pa.contains(pb):
        return "contains"
    if pa.overlaps(pb):
        return "overlaps"
    if pa.touches(pb):
        return "touches"
    return "disjoint"


def test_hand_made_cases():
    boxes = torch.tensor([
        [10.0, 10.0, 10.0, 10.0, 0.0],   # 0: square [5,15]²
        [10.0, 10.0, 4.0, 4.0, 0.0],     # 1: inside 0, boundaries apart → within / NTPP
        [20.0, 10.0, 10.0, 10.0, 0.0],   # 2: shares the edge x=15 with 0 → touches / EC
        [10.0, 10.0, 10.0, 10.0, 0.0],   # 3: same as 0 → equals
        [12.0, 10.0, 6.0, 10.0, 0.0],    # 4: inside 0 touching its boundary → within / TPP
        [14.0, 14.0, 4.0, 4.0, 0.0],     # 5: straddles 0's corner → overlaps / PO
        [30.0, 30.0, 2.0, 2.0, 0.0],     # 6: far from 0 (distance 14·√2 ≈ 19.8)
    ])
    pairs = [[1, 0], [0, 1], [0, 2], [0, 3], [4, 0], [0, 4], [0, 5], [0, 6]]
    r = topological_relations(boxes, pairs=pairs, distance=25)
    assert r["predicate"].tolist() == ["within", "contains", "touches", "equals", "within", "contains", "overlaps",
                                       "disjoint"]
    assert r["rcc8"].tolist() == ["NTPP", "NTPPi", "EC", "EQ", "TPP", "TPPi", "PO", "DC"]
    assert r["distance"][-1] == pytest.approx(math.hypot(14, 14), rel=1e-6)
    near = topological_relations(boxes, pairs=pairs, distance=10)  # the far pair is dropped
    assert len(near["subject"]) == 7


def test_classify_matches_shapely_predicates():
    g = torch.Generator().manual_seed(1)
    n = 120
    boxes = torch.cat([torch.rand(n, 2, generator=g) * 200, torch.rand(n, 2, generator=g) * 30 + 2,
                       (torch.rand(n, 1, generator=g) - 0.5) * math.pi], 1)
    boxes[10] = boxes[11]  # one exact duplicate
    r = topological_relations(boxes, distance=8.0)
    polys = [_poly(b) for b in boxes.tolist()]
    assert len(r["subject"]) > 50
    for s, o, name, d in zip(r["subject"], r["object"], r["predicate"], r["distance"]):
        assert name == _expected(polys[s], polys[o]), (s, o)
        if name == "disjoint":
            assert d == pytest.approx(polys[s].distance(polys[o]), abs=1e-4) and 0 < d <= 8.0
    # candidates: exactly the unordered pairs within the distance (brute force over all N² pairs)
    brute = {(i, j) for i in range(n) for j in range(i + 1, n) if polys[i].distance(polys[j]) <= 8.0}
    got = set(zip(r["subject"].tolist(), r["object"].tolist()))
    assert got == brute
    assert list(zip(r["subject"], r["object"])) == sorted(got)


def test_zero_distance_only_touching_pairs():
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0, 0.0], [5.0, 0.0, 2.0, 2.0, 0.0], [1.0, 1.0, 2.0, 2.0, 0.0]])
    r = topological_relations(boxes)
    assert list(zip(r["subject"].tolist(), r["object"].tolist(), r["predicate"].tolist())) == [(0, 2, "overlaps")]


def test_empty_inputs():
    r = topological_relations(torch.zeros(0, 5))
    assert all(len(v) == 0 for v in r.values())
    name, rcc8 = classify_de9im(np.array(["FF2FF1212"]))
    assert name.tolist() == ["disjoint"] and rcc8.tolist() == ["DC"]
    with pytest.raises(ValueError):
        topological_relations(torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]]), pairs=[[0, 3]])
