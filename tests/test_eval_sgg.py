"""SGGEvaluator against hand-worked graphs and an independent, literal port of Scene-Graph-Benchmark's loops."""

from __future__ import annotations

from functools import reduce

import numpy as np
import pytest
import torch
from shapely.geometry import Polygon
from shapely.geometry import box as shapely_box

from sgg.errors import SggInputError
from sgg.evaluation import SGGEvaluator
from sgg.evaluation.cli import main as eval_main
from sgg.structures import Detections, PairSet, SceneGraph, Vocabulary

VOC = Vocabulary(("car", "ship", "dock"), ("near", "parked", "docked"))  # predicates 1..3


def boxes(n: int) -> torch.Tensor:
    return torch.tensor([[100.0 * i + 50, 50, 40, 20, 0.0] for i in range(n)])


def gt_graph(rows, labels=(0, 1, 2), voc=VOC, bx=None) -> SceneGraph:
    rows = torch.tensor(rows, dtype=torch.long).reshape(-1, 3)
    det = Detections(boxes(len(labels)) if bx is None else bx, torch.tensor(labels))
    return SceneGraph(det, PairSet(rows[:, :2]), predicate_labels=rows[:, 2], vocabulary=voc)


def pred_graph(pairs, scores, labels=(0, 1, 2), obj_scores=None, voc=VOC, bx=None) -> SceneGraph:
    s = torch.tensor(scores, dtype=torch.float32)
    s = torch.cat([torch.zeros(len(s), 1), s], 1)  # background column
    det = Detections(boxes(len(labels)) if bx is None else bx, torch.tensor(labels), obj_scores)
    return SceneGraph(det, PairSet(torch.tensor(pairs).reshape(-1, 2)), predicate_scores=s, vocabulary=voc)


def run(gts, preds, **kw):
    ev = SGGEvaluator(**kw)
    for g, p in zip(gts, preds):
        ev.add(g, p)
    return ev.compute()


def test_graph_constraint_multi_predicate_pair_and_no_graph_constraint():
    gt = gt_graph([(0, 1, 1), (1, 2, 3), (0, 1, 2)])  # pair (0,1) carries near and parked
    pr = pred_graph([(0, 1), (1, 2), (2, 0)], [[0.5, 0.4, 0.0], [0.2, 0.1, 0.6], [0.3, 0.0, 0.0]])
    r = run([gt], [pr], ks=(1, 2, 3))
    # ranked (graph constraint): (1,2,docked) .6, (0,1,near) .5, (2,0,near) .3 — parked is never proposed
    assert (r["R@1"], r["R@2"], r["R@3"]) == pytest.approx((1 / 3, 2 / 3, 2 / 3))
    # no graph constraint: docked .6, near .5, parked .4 → all three by K=3
    assert (r["ngR@1"], r["ngR@2"], r["ngR@3"]) == pytest.approx((1 / 3, 2 / 3, 1.0))
    assert r["mR@2"] == pytest.approx(2 / 3)  # near 1, docked 1, parked 0
    assert r["per_predicate_R@3"] == pytest.approx({"near": 1.0, "parked": 0.0, "docked": 1.0})
    assert r["ngmR@3"] == pytest.approx(1.0)
    assert r["HMR@2"] == pytest.approx(2 / 3) and r["F@2"] == r["HMR@2"]
    assert r["A@1"] == pytest.approx((1 / 3 + 1 / 3) / 2)


def test_ties_keep_pair_order():
    gt = gt_graph([(0, 1, 1), (1, 2, 3)])
    pr = pred_graph([(1, 2), (0, 1)], [[0, 0, 0.5], [0.5, 0, 0]])
    assert run([gt], [pr], ks=(1,))["R@1"] == pytest.approx(0.5)
    r = run([gt], [pred_graph([(0, 1), (1, 2)], [[0.5, 0, 0], [0, 0, 0.5]])], ks=(1,))
    assert r["per_predicate_R@1"] == pytest.approx({"near": 1.0, "parked": 0.0, "docked": 0.0})


def test_duplicates_count_once_per_ground_truth_row():
    # the same ground-truth row twice counts twice; a duplicated prediction does not recall more
    gt = gt_graph([(0, 1, 1), (0, 1, 1), (1, 2, 2)])
    pr = pred_graph([(0, 1), (0, 1), (1, 2)], [[0.9, 0, 0], [0.8, 0, 0], [0, 0.7, 0]])
    r = run([gt], [pr], ks=(1, 2, 3))
    assert (r["R@1"], r["R@2"], r["R@3"]) == pytest.approx((2 / 3, 2 / 3, 1.0))


def test_absent_predicates_count_zero_and_images_average():
    voc = VOC
    a = gt_graph([(0, 1, 1)])
    b = gt_graph([(0, 1, 1), (1, 2, 1), (2, 0, 1), (2, 1, 1)])
    pa = pred_graph([(0, 1)], [[1.0, 0, 0]])
    pb = pred_graph([(0, 1), (2, 1)], [[0.0, 1.0, 0], [1.0, 0.0, 0]])  # recalls only (2,1,near)
    r = run([a, b], [pa, pb], ks=(5,))
    assert r["R@5"] == pytest.approx((1 + 0.25) / 2)  # per image, then averaged
    assert r["per_predicate_R@5"]["near"] == pytest.approx((1 + 0.25) / 2)
    assert r["mR@5"] == pytest.approx(0.625 / 3)  # parked and docked absent from the test set: 0
    assert r["images"] == 2 and voc.num_predicates == 4


def test_object_scores_rank_and_box_and_class_matching():
    gt = gt_graph([(0, 1, 1), (1, 2, 3)])
    # sgdet: the (0,1) pair's near is confident but its objects are not
    pr = pred_graph([(0, 1), (1, 2)], [[0.9, 0, 0], [0, 0, 0.5]], obj_scores=[0.1, 1.0, 1.0])
    assert run([gt], [pr], mode="sgdet", ks=(1,))["R@1"] == pytest.approx(0.5)
    assert run([gt], [pr], mode="sgdet", ks=(1,))["per_predicate_R@1"]["docked"] == 1.0
    # object 2 shifted so that IoU = 20/60 < 0.5; object 0 relabelled: nothing matches
    bx = boxes(3)
    bx[2, 0] += 20
    pr = pred_graph([(0, 1), (1, 2)], [[0.9, 0, 0], [0, 0, 0.5]], labels=(1, 1, 2), bx=bx)
    assert run([gt], [pr], mode="sgdet")["R@100"] == 0.0
    bx[2, 0] -= 10  # IoU = 30/50 ≥ 0.5
    pr = pred_graph([(0, 1), (1, 2)], [[0.9, 0, 0], [0, 0, 0.5]], labels=(1, 1, 2), bx=bx)
    assert run([gt], [pr], mode="sgdet")["R@100"] == pytest.approx(0.5)


def test_hbb_uses_envelopes():
    bx = torch.tensor([[50.0, 50, 40, 4, 0.0], [150, 50, 40, 20, 0], [250, 50, 40, 20, 0]])
    rot = bx.clone()
    rot[0, 4] = 0.35  # thin box turned: rotated IoU small, envelope IoU still ≥ 0.5 against its envelope
    gt = gt_graph([(0, 1, 1)], bx=bx)
    pr = pred_graph([(0, 1)], [[1.0, 0, 0]], bx=rot)
    assert run([gt], [pr], mode="sgdet")["R@20"] == 0.0
    env = rot.clone()
    from sgg.ops import box_to_envelope

    e = box_to_envelope(rot[:1])[0]
    gt2 = gt_graph([(0, 1, 1)], bx=torch.cat([torch.tensor([[(e[0] + e[2]) / 2, (e[1] + e[3]) / 2, e[2] - e[0], e[3] - e[1], 0]]), bx[1:]]))
    assert run([gt2], [pred_graph([(0, 1)], [[1.0, 0, 0]], bx=env)], mode="sgdet", box_type="hbb")["R@20"] == 1.0
    assert run([gt2], [pred_graph([(0, 1)], [[1.0, 0, 0]], bx=env)], mode="sgdet")["R@20"] == 0.0


def test_zero_shot_recall():
    counts = np.zeros((4, 4, 4))  # STAR layout: background first on the object axes
    counts[1 + 0, 1 + 1, 1] = 5  # (car, ship, near) seen in training; (ship, dock, docked) not
    gt = gt_graph([(0, 1, 1), (1, 2, 3)])
    pr = pred_graph([(0, 1), (1, 2)], [[0.9, 0, 0], [0.0, 0, 0.5]])
    r = run([gt], [pr], ks=(1, 2), train_counts=counts)
    assert r["zR@1"] == 0.0 and r["zR@2"] == 1.0
    assert np.isnan(run([gt], [pr])["zR@20"])


def test_bad_input():
    gt = gt_graph([(0, 1, 1)])
    other = Vocabulary(("car", "ship", "dock"), ("near", "parked", "moored"))
    pr = pred_graph([(0, 1)], [[1.0, 0, 0]], voc=other)
    with pytest.raises(SggInputError, match="vocabulary"):
        SGGEvaluator().add(gt, pr)
    with pytest.raises(SggInputError, match="keeps the ground-truth boxes"):
        SGGEvaluator("sgcls").add(gt, pred_graph([(0, 1)], [[1.0, 0, 0]], labels=(0, 1)))
    with pytest.raises(SggInputError, match="changes ground-truth classes"):
        SGGEvaluator("predcls").add(gt, pred_graph([(0, 1)], [[1.0, 0, 0]], labels=(0, 0, 2)))
    with pytest.raises(SggInputError, match="mode"):
        SGGEvaluator("detect")
    ev = SGGEvaluator()
    ev.add(gt_graph([]), pred_graph([], np.zeros((0, 3))))  # no relations: skipped, as SGB does
    with pytest.raises(SggInputError, match="no image"):
        ev.compute()


# ------------------------------------------------------------------------------------------------
# Independent implementation: Scene-Graph-Benchmark's sgg_eval.py loops, shapely IoU
# ------------------------------------------------------------------------------------------------
def _poly(b, hbb):
    cx, cy, w, h, a = (float(v) for v in b)
    c, s = np.cos(a), np.sin(a)
    pts = [(cx + dx * c - dy * s, cy + dx * s + dy * c) for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))]
    p = Polygon(pts)
    return shapely_box(*p.bounds) if hbb else p


def _iou(a, b, hbb):
    pa, pb = _poly(a, hbb), _poly(b, hbb)
    inter = pa.intersection(pb).area
    return inter / (pa.area + pb.area - inter)


def _pred_to_gt(plist, gt_rels, gt_objects, pred_objects, hbb, thr):
    """Per predicted triplet, the ground-truth rows it matches (classes, predicate, both boxes at IoU >= thr)."""
    (gcls, gbox), (pcls, pbox) = gt_objects, pred_objects
    out = []
    for s, o, p in plist:
        hits = []
        for g, (gs, go, gp) in enumerate(gt_rels):
            if ((gcls[gs], gcls[go], gp) == (pcls[s], pcls[o], p)
                    and _iou(gbox[gs], pbox[s], hbb) >= thr and _iou(gbox[go], pbox[o], hbb) >= thr):
                hits.append(g)
        out.append(hits)
    return out


def sgb_reference(gts, preds, ks, hbb=False, thr=0.5, zs_triplets=()):
    num_rel = gts[0].vocabulary.num_predicates
    rec = {k: [] for k in ks}
    ngrec = {k: [] for k in ks}
    mcol = {k: [[] for _ in range(num_rel)] for k in ks}
    ngmcol = {k: [[] for _ in range(num_rel)] for k in ks}
    zrec = {k: [] for k in ks}
    for gt, pr in zip(gts, preds):
        lab = gt.predicate_labels.numpy()
        gt_rels = np.column_stack([gt.pairs.pairs.numpy(), lab])[lab > 0]
        if len(gt_rels) == 0:
            continue
        gcls, gbox = gt.detections.labels.numpy(), gt.detections.boxes.tensor.numpy()
        pcls, pbox = pr.detections.labels.numpy(), pr.detections.boxes.tensor.numpy()
        osc = pr.detections.scores.numpy().astype(np.float64)
        inds, rs = pr.pairs.pairs.numpy(), pr.predicate_scores.numpy().astype(np.float64)
        trip = rs[:, 1:].max(1) * osc[inds[:, 0]] * osc[inds[:, 1]]
        order = sorted(range(len(inds)), key=lambda i: -trip[i])  # Python's sort is stable
        gc = [(inds[i, 0], inds[i, 1], 1 + int(np.argmax(rs[i, 1:]))) for i in order]
        cells = [(i, j) for i in range(len(inds)) for j in range(num_rel - 1)]
        ngs = rs[:, 1:] * (osc[inds[:, 0]] * osc[inds[:, 1]])[:, None]
        cells.sort(key=lambda c: -ngs[c])
        ng = [(inds[i, 0], inds[i, 1], j + 1) for i, j in cells]
        zs_idx = [g for g, (s, o, p) in enumerate(gt_rels) if (gcls[s], gcls[o], p) in zs_triplets]

        for plist, rdict, mdict, zdict in ((gc, rec, mcol, zrec), (ng, ngrec, ngmcol, None)):
            p2g = _pred_to_gt(plist[: max(ks)], gt_rels, (gcls, gbox), (pcls, pbox), hbb, thr)
            for k in ks:
                match = reduce(np.union1d, p2g[:k], np.array([], dtype=int))
                rdict[k].append(len(match) / len(gt_rels))
                hit, cnt = [0] * num_rel, [0] * num_rel
                for row in gt_rels:
                    cnt[row[2]] += 1
                for m in match:
                    hit[gt_rels[int(m), 2]] += 1
                for n in range(1, num_rel):
                    if cnt[n] > 0:
                        mdict[k][n].append(hit[n] / cnt[n])
                if zdict is not None and zs_idx:
                    ml = [int(m) for m in match]
                    zdict[k].append((len(zs_idx) + len(ml) - len(set(zs_idx + ml))) / len(zs_idx))
    out = {}
    for k in ks:
        out[f"R@{k}"], out[f"ngR@{k}"] = np.mean(rec[k]), np.mean(ngrec[k])
        out[f"mR@{k}"] = sum(np.mean(v) if v else 0.0 for v in mcol[k][1:]) / (num_rel - 1)
        out[f"ngmR@{k}"] = sum(np.mean(v) if v else 0.0 for v in ngmcol[k][1:]) / (num_rel - 1)
        out[f"zR@{k}"] = np.mean(zrec[k]) if zrec[k] else np.nan
    return out


def random_scene(rng, voc, mode):
    n = int(rng.integers(3, 9))
    labels = rng.integers(0, voc.num_classes, n)
    bx = np.column_stack([rng.uniform(0, 300, (n, 2)), rng.uniform(10, 60, (n, 2)), rng.uniform(-1.5, 1.5, n)])
    m = int(rng.integers(1, 10))
    pairs = np.array([rng.choice(n, 2, replace=False) for _ in range(m)])
    pairs = np.concatenate([pairs, pairs[: m // 3]])  # duplicated rows and pairs with several predicates
    rows = rng.integers(0, voc.num_predicates, len(pairs))  # some background rows
    gt = SceneGraph(Detections(torch.tensor(bx, dtype=torch.float32), torch.tensor(labels)), PairSet(torch.tensor(pairs)),
                    predicate_labels=torch.tensor(rows), vocabulary=voc)
    pbx, plab, psc = bx.copy(), labels.copy(), np.ones(n)
    if mode != "predcls":
        flip = rng.random(n) < 0.3
        plab[flip] = rng.integers(0, voc.num_classes, int(flip.sum()))
    if mode == "sgdet":
        pbx[:, :2] += rng.normal(0, 6, (n, 2))
        pbx[:, 2:4] *= rng.uniform(0.7, 1.3, (n, 2))
        extra = np.column_stack([rng.uniform(0, 300, (3, 2)), rng.uniform(10, 60, (3, 2)), rng.uniform(-1.5, 1.5, 3)])
        pbx, plab = np.concatenate([pbx, extra]), np.concatenate([plab, rng.integers(0, voc.num_classes, 3)])
        psc = rng.uniform(0.05, 1, len(pbx))
    np_ = len(pbx)
    allp = np.array([(i, j) for i in range(np_) for j in range(np_) if i != j])
    pp = allp[rng.permutation(len(allp))[: int(rng.integers(1, len(allp)))]]
    ps = rng.dirichlet(np.ones(voc.num_predicates), len(pp))
    pr = SceneGraph(Detections(torch.tensor(pbx, dtype=torch.float32), torch.tensor(plab), torch.tensor(psc, dtype=torch.float32)),
                    PairSet(torch.tensor(pp)), predicate_scores=torch.tensor(ps, dtype=torch.float32), vocabulary=voc)
    return gt, pr


@pytest.mark.parametrize("mode,box_type", [("predcls", "obb"), ("sgcls", "obb"), ("sgdet", "obb"), ("sgdet", "hbb")])
def test_matches_independent_implementation(mode, box_type):
    rng = np.random.default_rng(7)
    voc = Vocabulary(("a", "b", "c"), ("p1", "p2", "p3", "p4", "p5"))
    scenes = [random_scene(rng, voc, mode) for _ in range(12)]
    gts, preds = [s[0] for s in scenes], [s[1] for s in scenes]
    counts = rng.integers(0, 2, (3, 3, 6))
    zs = {(s, o, p) for s in range(3) for o in range(3) for p in range(1, 6) if counts[s, o, p] == 0}
    ks = (1, 3, 5, 10, 20)
    got = run(gts, preds, mode=mode, ks=ks, box_type=box_type, train_counts=counts)
    ref = sgb_reference(gts, preds, ks, hbb=box_type == "hbb", zs_triplets=zs)
    for key, val in ref.items():
        assert got[key] == pytest.approx(val, abs=1e-6, nan_ok=True), key
    assert 0 < got["R@20"] < 1 or mode == "predcls"


def test_cli(tmp_path, capsys):
    from sgg.graph import export

    gt = gt_graph([(0, 1, 1), (1, 2, 3)])
    pr = pred_graph([(0, 1), (1, 2)], [[0.9, 0.05, 0.05], [0.1, 0.2, 0.7]])
    gt, pr = gt.replace(image_path="scene_a.tif"), pr.replace(image_path="scene_a.tif")
    from sgg.datasets.native import write_scene_json

    write_scene_json(gt, tmp_path / "scene_a.json")
    (tmp_path / "pred").mkdir()
    export(pr, tmp_path / "pred" / "scene_a.graph.json")
    assert eval_main(["sgg", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "scene_a.json"),
                      "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "R " in out and "100.00" in out
    import json

    assert json.loads((tmp_path / "r.json").read_text())["R@20"] == 1.0
