"""RPCM's triangle messages: the common-neighbour index, and a predicate only a shared third object decides."""

from __future__ import annotations

import pytest
import torch

from sgg.relation_heads import RPCM, PairMLP, build_head, load_relation_head, neighbour_pairs, save_relation_head
from sgg.relation_heads.base import common_neighbours
from sgg.structures import Vocabulary

VOC = Vocabulary(("car", "lot"), ("in the same lot as", "in another lot than"))


def brute_triangles(pairs: torch.Tensor, n: int):
    edges = sorted({(min(a, b), max(a, b)) for a, b in pairs.tolist()})
    eid = {e: i for i, e in enumerate(edges)}
    want = set()
    for r, (i, j) in enumerate(pairs.tolist()):
        for k in range(n):
            ik, jk = (min(i, k), max(i, k)), (min(j, k), max(j, k))
            if k not in (i, j) and ik in eid and jk in eid:
                want.add((r, eid[ik], eid[jk]))
    return [eid[(min(a, b), max(a, b))] for a, b in pairs.tolist()], want


def test_common_neighbours_hand_worked():
    # objects 0..4: a triangle 0-1-2 (edges given in mixed directions), 3 hangs off 2, 4 is linked to 0 and 1
    pairs = torch.tensor([[0, 1], [2, 0], [1, 2], [2, 3], [4, 0], [1, 4], [1, 0]])
    eid, r, e_ik, e_jk = common_neighbours(pairs, 5)
    # undirected edges, sorted: 0-1, 0-2, 0-4, 1-2, 1-4, 2-3
    assert eid.tolist() == [0, 1, 3, 5, 2, 4, 0]  # (1, 0) shares the edge of (0, 1)
    got = set(zip(r.tolist(), e_ik.tolist(), e_jk.tolist()))
    want = {(0, 1, 3), (0, 2, 4),  # (0, 1): k = 2 via 0-2 and 1-2; k = 4 via 0-4 and 1-4
            (1, 3, 0),             # (2, 0): k = 1 via 2-1 and 0-1
            (2, 0, 1),             # (1, 2): k = 0 via 1-0 and 2-0
            (4, 4, 0),             # (4, 0): k = 1 via 4-1 (edge 4) and 0-1 (edge 0)
            (5, 0, 2),             # (1, 4): k = 0 via 1-0 and 4-0
            (6, 3, 1), (6, 4, 2)}  # (1, 0): the reverse of the first row
    assert got == want
    assert all(len(t) == 0 for t in common_neighbours(torch.zeros(0, 2, dtype=torch.long), 3))


def test_common_neighbours_match_brute_force():
    gen = torch.Generator().manual_seed(3)
    for _ in range(10):
        n = int(torch.randint(2, 14, (1,), generator=gen))
        pairs = torch.randint(0, n, (int(torch.randint(1, 50, (1,), generator=gen)), 2), generator=gen)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        eid, r, e_ik, e_jk = common_neighbours(pairs, n)
        want_eid, want = brute_triangles(pairs, n)
        assert eid.tolist() == want_eid
        assert set(zip(r.tolist(), e_ik.tolist(), e_jk.tolist())) == want
        assert len(r) == len(want)  # each triangle once


def lots_scene(seed: int):
    """Lots 40 px wide, 4 px apart, in a row; cars every 11 px along the row (those whose centre falls in a
    gap left out). Consecutive cars are 'in the same lot as' / 'in another lot than' each other (both ways):
    every annotated pair has the same classes and the same geometry, only the lots around them differ."""
    gen = torch.Generator().manual_seed(seed)
    n_lots = 5
    lot_x = torch.arange(n_lots, dtype=torch.float32) * 44 + 20
    x = torch.arange(0, 44 * n_lots - 4, 11, dtype=torch.float32) + float(torch.rand(1, generator=gen)) * 11
    lot_of = torch.div(x, 44, rounding_mode="floor").long()
    keep = (x - lot_of * 44 < 40) & (lot_of < n_lots)
    x, lot_of = x[keep], lot_of[keep]
    cars = torch.stack([x, torch.full_like(x, 20.0), torch.full_like(x, 6.0), torch.full_like(x, 4.0), torch.zeros_like(x)], 1)
    lots = torch.stack([lot_x, torch.full_like(lot_x, 20.0), torch.full_like(lot_x, 40.0), torch.full_like(lot_x, 30.0),
                        torch.zeros_like(lot_x)], 1)
    boxes = torch.cat([cars, lots])
    labels = torch.cat([torch.zeros(len(cars), dtype=torch.long), torch.ones(n_lots, dtype=torch.long)])
    i = torch.arange(len(cars) - 1)
    pred = torch.where(lot_of[i] == lot_of[i + 1], 1, 2)
    pairs = torch.cat([torch.stack([i, i + 1], 1), torch.stack([i + 1, i], 1)])
    return boxes, labels, pairs, torch.cat([pred, pred])


def balanced_accuracy(head, seeds) -> float:
    hits = {1: [], 2: []}
    with torch.no_grad():
        for s in seeds:
            boxes, labels, pairs, pred = lots_scene(s)
            cand = neighbour_pairs(boxes)
            logits = head(boxes, labels, cand)["rel_logits"]
            n = len(boxes)
            at = torch.searchsorted(cand[:, 0] * n + cand[:, 1], pairs[:, 0] * n + pairs[:, 1])
            guess = logits[at, 1:].argmax(1) + 1
            for p, g in zip(pred.tolist(), guess.tolist()):
                hits[p].append(p == g)
    return sum(sum(h) / len(h) for h in hits.values()) / 2


def fit(head, steps: int = 120):
    opt = torch.optim.Adam(head.parameters(), lr=5e-3)
    for it in range(steps):
        boxes, labels, pairs, pred = lots_scene(it % 12)
        cand = neighbour_pairs(boxes)
        n = len(boxes)
        tgt = torch.zeros(len(cand), 3)
        tgt[:, 0] = 1
        at = torch.searchsorted(cand[:, 0] * n + cand[:, 1], pairs[:, 0] * n + pairs[:, 1])
        tgt[at] = 0
        tgt[at, pred] = 1
        loss = head.loss(head(boxes, labels, cand), tgt, class_weight=torch.tensor([0.2, 1.0, 1.0]))["rel"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head


@pytest.mark.slow
def test_context_decides_a_shared_third_object():
    """The pair MLP cannot tell 'same lot' from 'another lot' (identical pairs: balanced accuracy at chance);
    RPCM with triangle messages learns it (~15 s)."""
    torch.manual_seed(0)
    mlp = fit(PairMLP(VOC, hidden=32, class_dim=8), 200)
    torch.manual_seed(0)
    tri = fit(RPCM(VOC, hidden=32, class_dim=8, steps=2, pool="meanmax", classifier="mlp", triangles=True), 200)
    test = range(100, 106)
    assert balanced_accuracy(mlp, test) <= 0.7
    assert balanced_accuracy(tri, test) >= 0.9


def test_triangle_messages_match_brute_force():
    """Mean and max over the common neighbours k of ta(e_ik) ⊙ tb(e_jk), e the mean of both directions of an
    edge; 0 for a relation without common neighbour."""
    boxes, _, _, _ = lots_scene(2)
    pairs = neighbour_pairs(boxes)
    pairs = torch.cat([pairs[::3], torch.tensor([[0, len(boxes) - 1]])])  # one direction only for some edges
    n = len(boxes)
    torch.manual_seed(0)
    step = RPCM(VOC, hidden=6, class_dim=4, steps=1, pool="meanmax", triangles=True).steps[0]
    rel = torch.randn(len(pairs), 6)
    mean, best = step.triangle_messages(rel, common_neighbours(pairs, n))
    und = {}
    for r, (a, b) in enumerate(pairs.tolist()):
        und.setdefault((min(a, b), max(a, b)), []).append(r)
    edge = {e: rel[rows].mean(0) for e, rows in und.items()}
    for r, (i, j) in enumerate(pairs.tolist()):
        msgs = [step.ta(edge[(min(i, k), max(i, k))]) * step.tb(edge[(min(j, k), max(j, k))]) for k in range(n)
                if k not in (i, j) and (min(i, k), max(i, k)) in edge and (min(j, k), max(j, k)) in edge]
        want = torch.stack(msgs) if msgs else torch.zeros(1, 6)
        assert torch.allclose(mean[r], want.mean(0), atol=1e-5) and torch.allclose(best[r], want.max(0).values, atol=1e-5)
    assert (mean != 0).any(1).float().mean() > 0.5  # most relations here have a common neighbour
    step.CHUNK = 7  # inference path: chunked, same numbers
    with torch.no_grad():
        mean2, best2 = step.triangle_messages(rel, common_neighbours(pairs, n))
    assert torch.allclose(mean2, mean, atol=1e-6) and torch.allclose(best2, best, atol=1e-6)


def test_triangles_skip_init_and_checkpoint(tmp_path):
    """A fresh skip RPCM with triangles still equals its context-free pair encoding; the option survives
    the checkpoint."""
    boxes, labels, _, _ = lots_scene(1)
    cand = neighbour_pairs(boxes)
    torch.manual_seed(0)
    head = build_head("rpcm", VOC, hidden=16, class_dim=4, steps=2, pool="meanmax", skip=True, classifier="mlp",
                      triangles=True)
    obj, rel = head.encode(boxes, labels, cand, None)
    tri = common_neighbours(cand, len(boxes))
    obj1, rel1 = obj, rel
    for step in head.steps:
        obj1, rel1 = step(obj1, rel1, cand, tri)
    assert torch.allclose(rel1, rel, atol=1e-3)
    path = save_relation_head(head, tmp_path / "tri.pt", half=False)
    back = load_relation_head(path)
    assert back.config["triangles"] is True
    assert torch.allclose(back(boxes, labels, cand)["rel_logits"], head.eval()(boxes, labels, cand)["rel_logits"], atol=1e-5)


@pytest.mark.parametrize("n_pairs", [0, 1])
def test_triangles_tiny_graphs(n_pairs):
    head = RPCM(VOC, hidden=8, class_dim=4, steps=1, pool="meanmax", skip=True, classifier="mlp", triangles=True)
    boxes = torch.tensor([[0.0, 0, 6, 4, 0], [10, 0, 6, 4, 0]])
    pairs = torch.tensor([[0, 1]])[:n_pairs]
    out = head(boxes, torch.tensor([0, 0]), pairs)
    assert out["rel_logits"].shape == (n_pairs, 3) and bool(torch.isfinite(out["rel_logits"]).all())


def test_adjusted_scores_foreground_only_hand_worked():
    """``background=False`` keeps the unadjusted background probability and re-splits the rest by τ."""
    from sgg.relation_heads.base import adjusted_scores

    z = torch.log(torch.tensor([[0.5, 0.4, 0.1]]))
    lp = torch.log(torch.tensor([0.7, 0.2, 0.1]))
    full = adjusted_scores(z, lp, 1.0)  # ∝ 0.5/0.7, 0.4/0.2, 0.1/0.1
    want = torch.tensor([0.5 / 0.7, 2.0, 1.0])
    assert torch.allclose(full, (want / want.sum())[None], atol=1e-6)
    fg = adjusted_scores(z, lp, 1.0, background=False)  # bg stays 0.5; foreground 2 : 1 of the other 0.5
    assert torch.allclose(fg, torch.tensor([[0.5, 1 / 3, 1 / 6]]), atol=1e-6)
    assert torch.allclose(adjusted_scores(z, lp, 0.0, background=False), torch.exp(z), atol=1e-6)


def test_pair_only_ceiling_hand_worked():
    """Two scenes with the same two cars side by side: 'in the same lot as' in one, 'in another lot than' in
    the other (the lots are not part of the pair): identical pair-only views, so each predicate's twin
    disagrees (conflict 100 %) and a pair-only model can be right half of the time (posterior 50 %)."""
    from sgg.relation_heads.diagnose import pair_only_ceiling, pair_table
    from sgg.structures import Detections, PairSet, SceneGraph

    boxes = torch.tensor([[10.0, 10, 6, 4, 0], [20, 10, 6, 4, 0]])
    graphs = [SceneGraph(Detections(boxes, torch.tensor([0, 0])), PairSet(torch.tensor([[0, 1], [1, 0]])),
                         predicate_labels=torch.tensor([p, p]), vocabulary=VOC) for p in (1, 2)]
    table = pair_table(graphs)
    assert len(table["key"]) == 4 and int(table["missed"]) == 0
    rows = {r["predicate"]: r for r in pair_only_ceiling(table, VOC.predicates, eps=1e-3, k=3)}
    for name in VOC.predicates[1:]:
        assert rows[name]["n"] == 2 and rows[name]["twin"] == 1.0 and rows[name]["conflict"] == 1.0
    # the 3 nearest of a (0, 1) pair: its twin (other predicate), and the two (1, 0) pairs, one of each
    assert rows["in the same lot as"]["posterior"] == pytest.approx(1 / 3)
