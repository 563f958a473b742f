"""Candidate pairs, selection and the PairProposer, against brute-force N² references."""

from __future__ import annotations

import math
from unittest.mock import patch

import numpy as np
import pytest
import torch

import sgg.pairs.candidates as candidates_module
from sgg.errors import SggInputError
from sgg.pairs import (
    PPG,
    PairPrior,
    PairProposer,
    UnknownClassWarning,
    auto_budget,
    candidate_pairs,
    select_pairs,
    star_pair_features,
)
from sgg.structures import Detections, PairSet, SceneGraph, Vocabulary

STAR = Vocabulary.star()


def scene(n=150, seed=0, size=1500.0, classes=(0, 1, 7, 16, 18, 26)):
    g = torch.Generator().manual_seed(seed)
    boxes = torch.cat([torch.rand(n, 2, generator=g) * size, torch.rand(n, 2, generator=g) * 30 + 2,
                       (torch.rand(n, 1, generator=g) - 0.5) * math.pi], 1).double()
    labels = torch.tensor(classes)[torch.randint(0, len(classes), (n,), generator=g)]
    return Detections(boxes, labels)


def brute_force(det, prior, k):
    """Every ordered pair tested directly: allowed class pair and (within radius, or envelopes touch, or
    one is among the other's k nearest centres)."""
    b = det.boxes.tensor.double().numpy()
    lab = det.labels.numpy()
    n = len(b)
    env = det.boxes.envelope().double().numpy()
    ctr = (env[:, :2] + env[:, 2:]) / 2
    d2 = ((ctr[:, None] - ctr[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    knn = np.zeros((n, n), bool)
    nn = np.argsort(d2, axis=1)[:, :k]
    knn[np.repeat(np.arange(n), k), nn.reshape(-1)] = True
    out = set()
    for i in range(n):
        for j in range(n):
            if i == j or not prior.allowed[lab[i], lab[j]]:
                continue
            dist = math.hypot(b[j, 0] - b[i, 0], b[j, 1] - b[i, 1])
            size = max(math.hypot(b[i, 2], b[i, 3]), math.hypot(b[j, 2], b[j, 3]))
            touch = env[i, 0] <= env[j, 2] and env[j, 0] <= env[i, 2] and env[i, 1] <= env[j, 3] and env[j, 1] <= env[i, 3]
            if dist / size <= prior.radius[lab[i], lab[j]] or touch or knn[i, j] or knn[j, i]:
                out.add((i, j))
    return out


def test_candidates_equal_brute_force_without_cap():
    det = scene()
    prior = PairPrior.star()
    got = candidate_pairs(det, prior, k=3, max_per_object=None)
    assert set(map(tuple, got.pairs.tolist())) == brute_force(det, prior, 3)
    assert len(got) < len(det) * (len(det) - 1) / 4  # far fewer than all pairs


def test_candidates_equal_brute_force_with_large_boxes():
    """A few boxes far larger than the rest: a pair counts at the larger box's radius, found from its side."""
    det = scene(n=160, seed=2, size=900.0, classes=(0, 1, 7, 16, 18, 26, 31, 44))
    boxes = det.boxes.tensor.clone()
    boxes[::9, 2:4] *= 6
    det = Detections(boxes, det.labels)
    prior = PairPrior.star()
    got = candidate_pairs(det, prior, k=2, max_per_object=None)
    ref = brute_force(det, prior, 2)
    assert set(map(tuple, got.pairs.tolist())) == ref
    with patch.object(candidates_module, "_MAX_CLASS_QUERIES", 2):  # many classes: one widest-reach query
        again = candidate_pairs(det, prior, k=2, max_per_object=None)
    assert torch.equal(again.pairs, got.pairs) and torch.equal(again.scores, got.scores)


def test_prior_masks_class_pairs_and_keeps_distant_relations():
    tower, car = STAR.object_index("lattice_tower"), STAR.object_index("car")
    # towers 400 px apart in a line (diag ~22 px): distance/size ~ 18; cars the same
    boxes = [[100 + 400 * i, 100, 20, 10, 0.0] for i in range(4)] + [[100 + 400 * i, 900, 4.5, 2, 0.0] for i in range(4)]
    det = Detections(torch.tensor(boxes), torch.tensor([tower] * 4 + [car] * 4))
    c = len(STAR.objects)
    radius = torch.full((c, c), 2.0, dtype=torch.float64)
    radius[tower, tower] = 60.0  # 1,200 px / 22.4 px = 54 diagonals apart at most
    allowed = torch.zeros(c, c, dtype=torch.bool)
    allowed[tower, tower] = allowed[car, car] = True
    prior = PairPrior(STAR.objects, allowed, radius)
    got = set(map(tuple, candidate_pairs(det, prior, k=0).pairs.tolist()))
    assert {(0, 3), (3, 0), (0, 1)} <= got  # every tower pair, both directions
    assert not any(i >= 4 and j >= 4 for i, j in got)  # cars 400 px apart are not candidates
    assert not any((i < 4) != (j < 4) for i, j in got)  # tower-car never relates in this prior
    # with k nearest, a car keeps its neighbour in the row (same class pair allowed)
    got_k = set(map(tuple, candidate_pairs(det, prior, k=1).pairs.tolist()))
    assert (4, 5) in got_k and (5, 4) in got_k


def test_star_prior_uses_real_counts():
    prior = PairPrior.star()
    car, park, tower = (STAR.object_index(n) for n in ("car", "car_parking", "lattice_tower"))
    assert prior.allowed[car, park] and prior.allowed[car, car] and prior.allowed[tower, tower]
    assert not prior.allowed[STAR.object_index("soccer_ball_field"), STAR.object_index("airplane")]


def test_cap_keeps_the_nearest_per_object():
    # one hub with 10 spokes at distances 1..10 (x); cap 3: each spoke keeps its hub link (rank 0 for it)
    boxes = [[0, 0, 1, 1, 0]] + [[10.0 * (i + 1), 0, 1, 1, 0] for i in range(10)]
    det = Detections(torch.tensor(boxes, dtype=torch.float64), torch.zeros(11, dtype=torch.long))
    c = 48
    prior = PairPrior(STAR.objects, torch.ones(c, c, dtype=torch.bool), torch.full((c, c), 200.0))
    full = candidate_pairs(det, prior, k=0, max_per_object=None)
    capped = candidate_pairs(det, prior, k=0, max_per_object=3)
    assert len(full) == 110
    got = set(map(tuple, capped.pairs.tolist()))
    for s in range(11):  # every object keeps its 3 nearest as subject
        d = sorted(range(11), key=lambda o: (abs(boxes[o][0] - boxes[s][0]), o))
        assert {(s, o) for o in d[1:4]} <= got
    assert len(capped) < len(full)


def capped_reference(pairs, ratio, cap):
    """The cap rule in plain Python: a pair stays when it is among the ``cap`` smallest ratios of its subject
    (ties: lower object index) or of its object (ties: lower subject index)."""
    by_s, by_o = {}, {}
    for (s, o), r in zip(pairs, ratio):
        by_s.setdefault(s, []).append((r, o, (s, o)))
        by_o.setdefault(o, []).append((r, s, (s, o)))
    keep = set()
    for rows in (*by_s.values(), *by_o.values()):
        keep |= {p for _, _, p in sorted(rows)[:cap]}
    return keep


@pytest.mark.parametrize("cap", [1, 5, 32])
def test_cap_matches_the_rule_among_mixed_sizes(cap):
    """Large boxes (several hundred px of search radius) among many small ones, classes with learned and
    default radii: the capped set is exactly the cap rule applied to the uncapped candidates."""
    g = torch.Generator().manual_seed(4)
    det = scene(n=400, seed=3, size=1200.0, classes=(0, 1, 7, 16, 18, 26, 4, 31, 44))
    boxes = det.boxes.tensor.clone()
    big = torch.randint(0, 400, (25,), generator=g)
    boxes[big, 2:4] = torch.rand(25, 2, generator=g).double() * 150 + 50
    det = Detections(boxes, det.labels)
    full = candidate_pairs(det, k=4, max_per_object=None)
    got = candidate_pairs(det, k=4, max_per_object=cap)
    ref = capped_reference(map(tuple, full.pairs.tolist()), (-full.scores).tolist(), cap)
    assert set(map(tuple, got.pairs.tolist())) == ref
    lookup = dict(zip(map(tuple, full.pairs.tolist()), full.scores.tolist()))
    assert [lookup[p] for p in map(tuple, got.pairs.tolist())] == got.scores.tolist()


def test_unknown_classes_kept_with_warning():
    voc = Vocabulary(("car", "alien_thing"), ())
    det = Detections(torch.tensor([[0, 0, 4, 2, 0], [6, 0, 4, 2, 0]]), torch.tensor([0, 1]))
    with pytest.warns(UnknownClassWarning, match="alien_thing"):
        got = candidate_pairs(det, PairPrior.star(), vocabulary=voc)
    assert set(map(tuple, got.pairs.tolist())) == {(0, 1), (1, 0)}


def test_zero_or_one_object_gives_empty():
    for n in (0, 1):
        det = Detections(torch.zeros(n, 5) + torch.tensor([5.0, 5, 2, 2, 0]), torch.zeros(n, dtype=torch.long))
        assert len(candidate_pairs(det)) == 0
        out = PairProposer.default()(det)
        assert isinstance(out, PairSet) and len(out) == 0


def test_select_pairs_topk_and_threshold():
    pairs = torch.tensor([[0, 1], [1, 0], [0, 2], [2, 0], [1, 2]])
    s = torch.tensor([0.5, 0.1, 0.9, 0.1, 0.3])
    top = select_pairs(pairs, s, 3)
    assert top.pairs.tolist() == [[0, 2], [0, 1], [1, 2]] and torch.allclose(top.scores, torch.tensor([0.9, 0.5, 0.3]))
    low = select_pairs(pairs, s, 2, lower_is_better=True)  # ties keep the earlier pair first
    assert low.pairs.tolist() == [[1, 0], [2, 0]] and torch.allclose(low.scores, torch.tensor([-0.1, -0.1]))
    thr = select_pairs(pairs, s, None, threshold=0.3, lower_is_better=True)
    assert thr.pairs.tolist() == [[1, 0], [2, 0], [1, 2]]
    assert len(select_pairs(pairs, s, 0)) == 0
    with pytest.raises(SggInputError):
        select_pairs(pairs, s[:3], 2)


def test_select_pairs_large_input_matches_a_full_stable_sort():
    """Budgets far below the pair count take the top-k shortcut: same pairs, same order, ties included."""
    g = torch.Generator().manual_seed(8)
    pairs = torch.randint(0, 500, (5000, 2), generator=g)
    pairs[:, 1] = (pairs[:, 0] + 1 + pairs[:, 1] % 499) % 500  # no self-pairs
    s = (torch.rand(5000, generator=g) * 40).round()  # many ties, also at the cut
    for budget, lower in ((1, False), (37, False), (100, True), (1249, True)):
        key = -s if lower else s
        ref = torch.argsort(key, descending=True, stable=True)[:budget]
        got = select_pairs(pairs, s, budget, lower_is_better=lower)
        assert torch.equal(got.pairs, pairs[ref]) and torch.equal(got.scores, key[ref])
    s[::7] = float("nan")
    with pytest.raises(ValueError, match="NaN"):  # as without the shortcut: NaN scores are refused
        select_pairs(pairs, s, 50)


def test_auto_budget_grows_with_the_scene(tmp_path):
    g = torch.Generator().manual_seed(9)
    pairs = torch.randint(0, 400, (20_000, 2), generator=g)
    pairs[:, 1] = (pairs[:, 0] + 1 + pairs[:, 1] % 399) % 400
    s = torch.rand(20_000, generator=g)
    assert auto_budget(100) == 10_000 and auto_budget(400) == 12_800 and auto_budget(400, per_object=8) == 10_000
    assert len(select_pairs(pairs, s, "auto", num_objects=400)) == 12_800
    assert torch.equal(select_pairs(pairs, s, "auto", num_objects=100).pairs, select_pairs(pairs, s, 10_000).pairs)
    with pytest.raises(SggInputError, match="num_objects"):
        select_pairs(pairs, s, "auto")
    for bad in ("lots", -1):
        with pytest.raises(SggInputError, match="budget"):
            PairProposer(budget=bad)
    det = scene(n=120)
    prop = PairProposer.default()
    prop.budget = "auto"
    assert torch.equal(prop(det).pairs, PairProposer(prop.ppg, budget=None)(det).pairs)  # < 10,000 candidates
    prop.save(tmp_path / "p.pt")
    assert PairProposer.load(tmp_path / "p.pt").budget == "auto"


def test_proposer_matches_direct_scoring_and_chunks():
    det = scene(n=120, seed=4)
    prop = PairProposer.default()
    prop.budget = 40
    out = prop(det)
    cand = prop.candidates(det)
    raw = PPG.from_star().score(star_pair_features(det.boxes, det.labels, cand.pairs).float())
    best = torch.argsort(raw, stable=True)[:40]
    assert out.pairs.tolist() == cand.pairs[best].tolist()
    assert torch.allclose(out.scores, torch.exp(-raw[best]))  # PairSet's convention: (0, 1], higher = keep
    prop.chunk_size = 7
    assert prop(det).pairs.tolist() == out.pairs.tolist()
    prop.fraction = 0.001  # 0.1 % of 120·119 ordered pairs = 14
    assert len(prop(det)) == 14


def test_proposer_refuses_foreign_vocabulary_and_roundtrips(tmp_path):
    det = scene(n=20)
    with pytest.raises(SggInputError, match="one-hot layout is STAR"):
        PairProposer.default()(det, vocabulary=Vocabulary(tuple(f"c{i}" for i in range(48)), ()))
    prop = PairProposer.default()
    prop.budget = 25
    path = prop.save(tmp_path / "prop.pt")
    back = PairProposer.load(path)
    a, b = prop(det), back(det)
    assert back.budget == 25 and len(a) == len(b) == 25
    assert len(set(map(tuple, a.pairs.tolist())) & set(map(tuple, b.pairs.tolist()))) >= 23  # fp16 weights
    assert PairProposer.load("sgg/data/ppg/star_ppg_obb.pth").ppg is not None


def test_prior_fit_learns_radius_per_class_pair():
    boxes, labels, pairs, preds = [], [], [], []
    for i in range(20):  # class 0 pairs 1 diag apart, class 1 pairs 30 diags apart
        base = len(boxes)
        boxes += [[i * 1000.0, 0, 3, 4, 0], [i * 1000.0 + 5, 0, 3, 4, 0], [i * 1000.0, 500, 3, 4, 0],
                  [i * 1000.0 + 150, 500, 3, 4, 0]]
        labels += [0, 0, 1, 1]
        pairs += [[base, base + 1], [base + 2, base + 3]]
        preds += [1, 1]
    voc = Vocabulary(("a", "b", "c"), ("rel",))
    sg = SceneGraph(Detections(torch.tensor(boxes), torch.tensor(labels)), PairSet(torch.tensor(pairs)),
                    predicate_labels=torch.tensor(preds), vocabulary=voc)
    prior = PairPrior.fit([sg], quantile=0.9, slack=1.0)
    assert prior.radius[0, 0].item() == pytest.approx(1.0) and prior.radius[1, 1].item() == pytest.approx(30.0)
    assert prior.allowed.tolist() == [[True, False, False], [False, True, False], [False, False, False]]
    assert PairPrior.from_dict(prior.to_dict()).radius[1, 1].item() == pytest.approx(30.0)
