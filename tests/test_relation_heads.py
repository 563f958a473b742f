"""Relation heads: features, candidate pairs, sparse messaging, heads, checkpoints, frequency prior."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sgg.errors import SggInputError
from sgg.relation_heads import (
    RPCM,
    FrequencyPrior,
    PairMLP,
    build_head,
    count_normalised,
    footprint_raster,
    load_relation_head,
    neighbour_pairs,
    pair_geometry,
    pair_targets,
    save_relation_head,
    scatter_mean,
    shared_object_mean,
    training_pairs,
)
from sgg.relation_heads.base import shared_object_max
from sgg.structures import Detections, PairSet, SceneGraph, Vocabulary

VOC = Vocabulary(("car", "ship"), ("right of", "left of"))


# ------------------------------------------------------------------------------------------ features
def test_pair_geometry_hand_worked():
    # subject 20×10 turned by 90°: its x axis points down the image; the object sits 30 px below it
    boxes = torch.tensor([[100.0, 100, 20, 10, math.pi / 2 - 1e-6], [100, 130, 20, 10, 0.0]])
    g = pair_geometry(boxes, torch.tensor([[0, 1]]))[0]
    assert g[0] == pytest.approx(math.log1p(30 / 20), abs=1e-4)  # along the subject's long side, / w
    assert g[1] == pytest.approx(0.0, abs=1e-4)
    assert g[4] == pytest.approx(math.log1p(30 / 32), abs=1e-5)  # centre distance
    assert g[5] == pytest.approx(math.log1p(15 / 8), abs=1e-4)  # envelope gap: 130-5 - (100+10)
    assert g[9] == pytest.approx(-1.0, abs=1e-4)  # perpendicular long axes: cos 2Δθ = -1
    assert g[11] == 0 and g[13] == 0  # no overlap
    inside = pair_geometry(torch.tensor([[0.0, 0, 40, 40, 0], [5, 5, 10, 10, 0]]), torch.tensor([[0, 1]]))[0]
    assert inside[11] == pytest.approx(100 / 1600) and inside[12] == pytest.approx(1.0)
    assert inside[13] == pytest.approx(100 / 1600)


def test_footprint_raster_hand_worked():
    # two 40×20 boxes side by side: the union is 80×20; subject fills the left half, object the right
    boxes = torch.tensor([[20.0, 10, 40, 20, 0], [60, 10, 40, 20, 0]])
    r = footprint_raster(boxes, torch.tensor([[0, 1], [1, 0]]), size=4)
    left = torch.tensor([[1.0, 1, 0, 0]] * 4)
    assert torch.equal(r[0, 0], left) and torch.equal(r[0, 1], left.flip(1))
    assert torch.equal(r[1, 0], left.flip(1)) and torch.equal(r[1, 1], left)
    # rotation invariance: turning the whole layout changes nothing in the subject's frame
    rot = boxes.clone()
    c, s = math.cos(0.7), math.sin(0.7)
    rot[:, 0], rot[:, 1] = boxes[:, 0] * c - boxes[:, 1] * s, boxes[:, 0] * s + boxes[:, 1] * c
    rot[:, 4] = 0.7
    assert torch.equal(footprint_raster(rot, torch.tensor([[0, 1]]), size=4), r[:1])
    assert torch.allclose(pair_geometry(rot, torch.tensor([[0, 1]]))[:, :14], pair_geometry(boxes, torch.tensor([[0, 1]]))[:, :14], atol=1e-4)


# ------------------------------------------------------------------------------------------ pairs
def test_candidate_pairs_rule():
    boxes = torch.tensor([[0.0, 0, 10, 10, 0], [20, 0, 10, 10, 0], [500, 0, 10, 10, 0]])
    # envelopes grown by max(16, 0.5 × 10) meet for 0–1 only; k = 0: no nearest-neighbour pairs
    assert neighbour_pairs(boxes, margin_px=16, margin_rel=0.5, k=0).tolist() == [[0, 1], [1, 0]]
    got = neighbour_pairs(boxes, margin_px=16, margin_rel=0.5, k=1).tolist()
    assert got == [[0, 1], [1, 0], [1, 2], [2, 1]]  # 2's nearest is 1
    assert neighbour_pairs(boxes[:1]).shape == (0, 2)


def test_pair_targets_and_training_pairs():
    pairs = torch.tensor([[0, 1], [0, 1], [1, 2], [2, 0], [0, 1]])
    labels = torch.tensor([1, 2, 2, 0, 1])  # (0,1) carries both predicates (one row twice); (2,0) background
    up, tgt = pair_targets(pairs, labels, 3, 3)
    assert up.tolist() == [[0, 1], [1, 2]]
    assert tgt.tolist() == [[0, 1, 1], [0, 0, 1]]
    boxes = torch.tensor([[10.0 * i, 0, 8, 8, 0] for i in range(12)])
    g = torch.Generator().manual_seed(0)
    cand, t = training_pairs(boxes, pairs, labels, 3, neg_ratio=2.0, generator=g)
    assert cand[:2].tolist() == [[0, 1], [1, 2]] and torch.equal(t[:2], tgt)
    neg = cand[2:]
    assert len(neg) == 4 and bool((t[2:, 0] == 1).all()) and float(t[2:, 1:].sum()) == 0
    keys = set(map(tuple, neg.tolist()))
    assert not keys & {(0, 1), (1, 2)} and keys <= set(map(tuple, neighbour_pairs(boxes).tolist()))
    cand, t = training_pairs(boxes, pairs, labels, 3, neg_ratio=100.0, max_pairs=5, generator=g)
    assert len(cand) == 5


# ------------------------------------------------------------------------------------------ messaging
def test_scatter_and_shared_object_mean_match_dense():
    gen = torch.Generator().manual_seed(1)
    n, m = 7, 15
    pairs = torch.randint(0, n, (m, 2), generator=gen)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    x = torch.randn(len(pairs), 4, generator=gen)
    sm = scatter_mean(x, pairs[:, 0], n)
    for v in range(n):
        sel = pairs[:, 0] == v
        assert torch.allclose(sm[v], x[sel].mean(0) if sel.any() else torch.zeros(4), atol=1e-6)
    a, b = shared_object_mean(x, pairs, n)
    for r, (s, o) in enumerate(pairs.tolist()):
        for got, obj in ((a, s), (b, o)):
            # the other relations touching obj (a relation touching it twice cannot exist: s != o)
            rows = [q for q in range(len(pairs)) if q != r and obj in pairs[q].tolist()]
            want = x[rows].mean(0) if rows else torch.zeros(4)
            assert torch.allclose(got[r], want, atol=1e-5)


def test_shared_object_max_hand_worked_and_dense():
    # objects 0..3; relations r0 = (0, 1), r1 = (0, 2), r2 = (3, 0), r3 = (2, 3)
    pairs = torch.tensor([[0, 1], [0, 2], [3, 0], [2, 3]])
    x = torch.tensor([[1.0, -5.0], [2.0, -6.0], [0.0, 4.0], [7.0, -1.0]])
    a, b = shared_object_max(x, pairs, 4)
    # r0's subject 0 is touched by r0, r1, r2 → max (2, 4); its object 1 by r0 alone → (1, -5)
    assert torch.equal(a[0], torch.tensor([2.0, 4.0])) and torch.equal(b[0], torch.tensor([1.0, -5.0]))
    # r3's subject 2 is touched by r1, r3 → (7, -1); its object 3 by r2, r3 → (7, 4)
    assert torch.equal(a[3], torch.tensor([7.0, -1.0])) and torch.equal(b[3], torch.tensor([7.0, 4.0]))
    gen = torch.Generator().manual_seed(2)
    pairs = torch.randint(0, 9, (40, 2), generator=gen)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    x = torch.randn(len(pairs), 3, generator=gen, requires_grad=True)
    a, b = shared_object_max(x, pairs, 9)
    touch = (pairs[:, None, :] == pairs[None, :, 0:1]).any(2), (pairs[:, None, :] == pairs[None, :, 1:2]).any(2)
    for got, t in zip((a, b), touch):  # t[q, r]: relation q touches relation r's subject (object)
        want = torch.where(t[:, :, None], x[:, None, :], torch.tensor(float("-inf"))).max(0).values
        assert torch.equal(got, want)
    (a.sum() + b.sum()).backward()  # differentiable (the pooled messages are trained)
    assert x.grad is not None and bool((x.grad >= 0).all())


def test_rpcm_skip_starts_from_the_pair_encoding():
    """With ``skip`` a fresh RPCM's message steps leave the relation states unchanged (LayerNorm rounding
    aside), so it starts as a context-free classifier; without it the context changes them at once."""
    g = scene(8, 1)
    cand = neighbour_pairs(g.detections.boxes.tensor)
    boxes, labels = g.detections.boxes.tensor, g.detections.labels
    for skip in (True, False):
        torch.manual_seed(0)
        head = RPCM(VOC, hidden=16, class_dim=4, proto_dim=8, steps=3, pool="meanmax", skip=skip)
        obj, rel = head.encode(boxes, labels, cand, None)
        obj1, rel1 = obj, rel
        for step in head.steps:
            obj1, rel1 = step(obj1, rel1, cand)
        same = torch.allclose(rel1, rel, atol=1e-3) and torch.allclose(obj1, obj, atol=1e-3)  # LayerNorm eps: ~1e-4
        assert same == skip
    with pytest.raises(ValueError, match="pool"):
        RPCM(VOC, pool="sum")


def test_rpcm_mlp_classifier_starts_as_the_pair_mlp():
    """``classifier='mlp'`` + ``skip``: given the pair MLP's weights, a fresh RPCM gives the MLP's logits
    (the two differ by the context alone); the other classifiers and their losses stay available."""
    g = scene(8, 2)
    boxes, labels = g.detections.boxes.tensor, g.detections.labels
    cand = neighbour_pairs(boxes)
    torch.manual_seed(0)
    base = PairMLP(VOC, hidden=16, class_dim=4, freq_bias=True)
    torch.nn.init.normal_(base.freq_bias.weight)
    head = RPCM(VOC, hidden=16, class_dim=4, steps=3, pool="meanmax", skip=True, classifier="mlp", freq_bias=True)
    missing = head.load_state_dict(base.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("steps.") for k in missing)  # only the context is new
    want = base(boxes, labels, cand)["rel_logits"]
    assert torch.allclose(head(boxes, labels, cand)["rel_logits"], want, atol=1e-3)
    t = torch.zeros(len(cand), VOC.num_predicates)
    t[:, 1] = 1
    assert set(head.loss(head(boxes, labels, cand), t)) == {"rel"}
    both = RPCM(VOC, hidden=16, class_dim=4, proto_dim=8, classifier="proto+mlp")
    assert {"rel", "proto_sep", "proto_compact"} <= set(both.loss(both(boxes, labels, cand), t))
    with pytest.raises(ValueError, match="classifier"):
        RPCM(VOC, classifier="knn")


# ------------------------------------------------------------------------------------------ heads
def scene(n: int = 6, seed: int = 0):
    """A row of objects 30 px apart; (i, i+1) is 'left of'… as seen from the object: i→i+1 'right of'."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.arange(n, dtype=torch.float32) * 30 + torch.rand(n, generator=gen) * 4
    boxes = torch.stack([x, torch.full((n,), 50.0), torch.full((n,), 12.0), torch.full((n,), 6.0), torch.zeros(n)], 1)
    labels = torch.randint(0, 2, (n,), generator=gen)
    i = torch.arange(n - 1)
    pairs = torch.cat([torch.stack([i, i + 1], 1), torch.stack([i + 1, i], 1)])
    preds = torch.cat([torch.ones(n - 1, dtype=torch.long), torch.full((n - 1,), 2)])
    return SceneGraph(Detections(boxes, labels), PairSet(pairs), predicate_labels=preds, vocabulary=VOC)


@pytest.mark.parametrize("kind,mode", [("rpcm", "predcls"), ("mlp", "predcls"), ("rpcm", "sgcls")])
def test_heads_learn_a_geometric_predicate(kind, mode):
    torch.manual_seed(0)
    head = build_head(kind, VOC, mode=mode, hidden=32, class_dim=8, proto_dim=16, steps=2)
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    train = [scene(8, s) for s in range(4)]
    for it in range(60):
        g = train[it % 4]
        cand, tgt = training_pairs(g.detections.boxes.tensor, g.pairs.pairs, g.predicate_labels, 3,
                                   neg_ratio=1.0, generator=torch.Generator().manual_seed(it))
        out = head(g.detections.boxes.tensor, g.detections.labels if mode == "predcls" else None, cand)
        loss = sum(head.loss(out, tgt, g.detections.labels).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = scene(9, 99)
    pred = head.predict(test.replace(pairs=PairSet.empty(), predicate_labels=None))
    assert pred.predicate_scores.shape == (len(pred.pairs), 3)
    assert torch.allclose(pred.predicate_scores.sum(1), torch.ones(len(pred.pairs)), atol=1e-5)
    truth = {tuple(p): int(lab) for p, lab in zip(test.pairs.pairs.tolist(), test.predicate_labels)}
    hits = [int(pred.predicate_scores[r].argmax()) == truth[tuple(p)] for r, p in enumerate(pred.pairs.pairs.tolist())
            if tuple(p) in truth]
    assert len(hits) == len(truth) and np.mean(hits) >= 0.9
    if mode == "sgcls":
        assert pred.detections.class_scores.shape == (9, 3)


def test_predict_edge_cases_and_vocabulary_mapping():
    head = build_head("mlp", VOC, hidden=16, class_dim=4).eval()
    g = scene(5)
    one = g.replace(detections=g.detections[0:1], pairs=PairSet.empty(), predicate_labels=None)
    with pytest.warns(UserWarning, match="no pair"):
        out = head.predict(one)
    assert out.predicate_scores.shape == (0, 3)
    other = Vocabulary(("ship", "car", "plane"), VOC.predicates)  # same names, other order, one extra
    lab = torch.tensor([other.object_index(VOC.objects[i]) for i in g.detections.labels])
    g2 = g.replace(detections=Detections(g.detections.boxes, lab), vocabulary=other, predicate_labels=None)
    a, b = head.predict(g.replace(predicate_labels=None)), head.predict(g2)
    assert torch.allclose(a.predicate_scores, b.predicate_scores) and b.vocabulary == VOC
    assert torch.equal(b.detections.labels, g.detections.labels)
    bad = g2.replace(detections=Detections(g.detections.boxes, torch.full((5,), 2)))
    with pytest.raises(SggInputError, match="unknown to the relation head"):
        head.predict(bad)


def test_checkpoint_roundtrip_fp16(tmp_path):
    torch.manual_seed(0)
    head = RPCM(VOC, hidden=16, class_dim=4, proto_dim=8, steps=2).eval()
    path = save_relation_head(head, tmp_path / "h.pt", half=True)
    back = load_relation_head(path)
    assert isinstance(back, RPCM) and back.vocabulary == VOC and back.config == head.config
    sd = torch.load(path, weights_only=True)["state_dict"]
    params = {k for k, _ in head.named_parameters()}
    assert all(v.dtype == torch.float16 for k, v in sd.items() if k in params) and sd["log_prior"].dtype == torch.float32
    g = scene(6).replace(predicate_labels=None)
    assert torch.allclose(back.predict(g).predicate_scores, head.predict(g).predicate_scores, atol=5e-3)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SggInputError, match="bad.pt"):
        load_relation_head(tmp_path / "bad.pt")
    with pytest.raises(SggInputError, match="unknown relation head"):
        build_head("dense", VOC)
    assert isinstance(load_relation_head(save_relation_head(PairMLP(VOC, hidden=8), tmp_path / "m.pt")), PairMLP)


def test_frequency_prior():
    g = scene(6)
    prior = FrequencyPrior(VOC, alpha=0.0).fit([g], negatives=False)
    lab = g.detections.labels
    # hand count: per (subject class, object class), how often each predicate occurs
    want = torch.zeros(2, 2, 3)
    for (s, o), p in zip(g.pairs.pairs.tolist(), g.predicate_labels.tolist()):
        want[lab[s], lab[o], p] += 1
    assert torch.equal(prior.counts, want)
    pred = prior.predict(g.replace(predicate_labels=None))
    c = want[lab[g.pairs.pairs[:, 0]], lab[g.pairs.pairs[:, 1]]]
    assert torch.allclose(pred.predicate_scores, c / c.sum(1, keepdim=True))
    with_bg = FrequencyPrior(VOC).fit([g])  # unannotated candidates counted as background
    assert float(with_bg.counts[..., 0].sum()) == len(neighbour_pairs(g.detections.boxes.tensor)) - len(g.pairs)
    star = FrequencyPrior.from_star()
    assert star.counts.shape == (48, 48, 59) and float(star.counts[..., 0].sum()) == 0 and float(star.counts.sum()) > 1e5
    with pytest.raises(SggInputError, match="needs object classes"):
        star(torch.zeros(2, 5), None, torch.tensor([[0, 1]]))


def test_training_prior_and_logit_adjustment():
    from sgg.relation_heads.module import training_log_prior

    g = scene(6)  # 5 'right of' + 5 'left of' pairs
    lp = training_log_prior([g], 3, neg_ratio=2.0)  # background: 2 × 10 pairs
    assert torch.allclose(lp.exp(), torch.tensor([20 / 30, 5 / 30, 5 / 30]), atol=1e-6)
    empty = training_log_prior([scene(3).replace(predicate_labels=torch.tensor([1, 1, 1, 1]))], 3, 0.0)
    assert empty[2] == 0 and empty[1] == 0  # an unseen predicate is not boosted
    head = build_head("mlp", VOC, hidden=8, class_dim=4).eval()
    head.log_prior.copy_(torch.log(torch.tensor([0.5, 0.4, 0.1])))
    x = g.replace(predicate_labels=None)
    z = head(x.detections.boxes.tensor, x.detections.labels, x.pairs.pairs)["rel_logits"]
    head.logit_adjust = 1.0
    want = torch.softmax(z - head.log_prior, 1)
    assert torch.allclose(head.predict(x).predicate_scores, want, atol=1e-6)


@pytest.mark.parametrize("name", ["rpcm_predcls_fb_synth.pt", "rpcm_predcls_lt_synth.pt", "rpcm_sgcls_synth.pt",
                                  "relation_freq_synth.pt", "rpcm_predcls_tri_synth.pt", "relation_mlp_predcls_lt_synth.pt"])
def test_shipped_weights_load_and_predict(name):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "weights" / name
    head = load_relation_head(path)
    star = Vocabulary.star()
    assert head.vocabulary == star
    # a quay with two ships moored side by side and a car: predictions over the full STAR predicate list
    boxes = torch.tensor([[100.0, 100, 200, 20, 0], [100, 125, 120, 24, 0], [100, 152, 110, 24, 0], [300, 300, 9, 4, 0.3]])
    labels = torch.tensor([star.object_index(c) for c in ("dock", "ship", "ship", "car")])
    g = SceneGraph(Detections(boxes, labels), vocabulary=star)
    out = head.predict(g)
    assert out.predicate_scores.shape == (len(out.pairs), star.num_predicates) and len(out.pairs) >= 4
    beta, head.count_norm = head.count_norm, 0.0  # count-normalised scores rank; the plain ones are probabilities
    plain = head.predict(g).predicate_scores
    assert torch.allclose(plain.sum(1), torch.ones(len(out.pairs)), atol=1e-4)
    assert torch.allclose(out.predicate_scores, count_normalised(plain, beta), atol=1e-6)
