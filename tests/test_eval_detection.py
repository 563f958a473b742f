"""Rotated detection mAP: hand-worked cases and an independent DOTA-devkit-style reference (shapely)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from shapely.geometry import Polygon

from sgg.evaluation.detection import format_table, rotated_map, voc_ap
from sgg.structures import Detections, SceneGraph, Vocabulary

VOC = Vocabulary(("plane", "ship", "car"), ())


def _gt(boxes, labels, difficult=None):
    det = Detections(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 5), labels)
    return SceneGraph(det, vocabulary=VOC, difficult=difficult)


def _pred(boxes, labels, scores):
    return Detections(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 5), labels, scores)


# ---------------------------------------------------------------------------------------------- hand-worked
def _hand_case():
    # image 1, class 0: three GTs; p1 hits g1, p2 duplicates g1, p3 hits g2, p4 hits nothing -> T F T F
    g1, g2, g3 = [50, 50, 20, 10, 0], [150, 50, 20, 10, 0.3], [250, 250, 30, 30, 0]
    img1_gt = _gt([g1, g2, g3], [0, 0, 0])
    img1_pred = _pred(
        [[51, 50, 20, 10, 0], [50, 51, 20, 10, 0], [150, 50, 20, 10, 0.32], [400, 400, 10, 10, 0]],
        [0, 0, 0, 0],
        [0.9, 0.8, 0.7, 0.6],
    )
    # image 2, class 1: g_a normal, g_b difficult: q1 on g_b (ignored), q2 on g_a (TP), q3 on g_b (ignored),
    # q4 nowhere (FP); class 2 has only a difficult GT (excluded from the mean) and one detection on it
    ga, gb, gc = [50, 50, 30, 12, 0.5], [200, 80, 30, 12, -0.5], [300, 300, 40, 20, 0]
    img2_gt = _gt([ga, gb, gc], [1, 1, 2], difficult=[False, True, True])
    img2_pred = _pred(
        [gb, ga, [201, 80, 30, 12, -0.5], [10, 300, 8, 8, 0], gc],
        [1, 1, 1, 1, 2],
        [0.9, 0.8, 0.7, 0.6, 0.5],
    )
    return [img1_pred, img2_pred], [img1_gt, img2_gt]


def test_hand_worked_area_and_voc07():
    preds, gts = _hand_case()
    r = rotated_map(preds, gts)
    # class 0: rec = 1/3,1/3,2/3,2/3; prec = 1,1/2,2/3,1/2 -> envelope area = 1/3*1 + 1/3*2/3 = 5/9
    assert r["AP"]["plane"] == pytest.approx(5 / 9)
    assert r["recall"]["plane"] == pytest.approx(2 / 3)
    # class 1: difficult matches are neither TP nor FP; the one positive is found first -> AP 1
    assert r["AP"]["ship"] == pytest.approx(1.0)
    assert r["num_gts"] == {"plane": 3, "ship": 1, "car": 0}
    assert r["num_dets"] == {"plane": 4, "ship": 4, "car": 1}
    assert "car" not in r["AP"] and r["classes_evaluated"] == ["plane", "ship"]
    assert r["mAP"] == pytest.approx((5 / 9 + 1.0) / 2)
    r07 = rotated_map(preds, gts, use_07_metric=True)
    # 11-point: t = 0..0.3 -> 1, t = 0.4..0.6 -> 2/3, t >= 0.7 -> 0
    assert r07["AP"]["plane"] == pytest.approx((4 + 3 * 2 / 3) / 11)
    assert r07["AP"]["ship"] == pytest.approx(1.0)
    assert "mAP@0.50" in format_table(r)


def test_rotation_matters_and_threshold():
    # a thin box at 45° against the same box at 0°: envelopes overlap a lot, rotated IoU is small
    gt = _gt([[100, 100, 80, 8, math.pi / 4]], [0])
    pred = _pred([[100, 100, 80, 8, 0.0]], [0], [0.9])
    assert rotated_map([pred], [gt])["AP"]["plane"] == 0.0
    # IoU of two 20×10 boxes shifted by 5 px along w: 150/250 = 0.6
    gt = _gt([[0, 0, 20, 10, 0]], [0])
    pred = _pred([[5, 0, 20, 10, 0]], [0], [0.9])
    assert rotated_map([pred], [gt], iou_threshold=0.5)["AP"]["plane"] == pytest.approx(1.0)
    assert rotated_map([pred], [gt], iou_threshold=0.75)["AP"]["plane"] == 0.0


def test_empty_inputs():
    gt = _gt(np.zeros((0, 5)), [])
    r = rotated_map([Detections.empty()], [gt])
    assert r["mAP"] == 0.0 and r["classes_evaluated"] == []
    gt = _gt([[10, 10, 5, 5, 0]], [2])
    r = rotated_map([Detections.empty()], [gt])
    assert r["AP"] == {"car": 0.0} and r["mAP"] == 0.0
    with pytest.raises(ValueError):
        rotated_map([Detections.empty()], [])


def test_voc_ap_known_values():
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5])) == pytest.approx(0.75)
    assert voc_ap(np.array([]), np.array([])) == 0.0


# ------------------------------------------------------------------------------- independent reference
def _poly(b):
    cx, cy, w, h, a = (float(v) for v in b)
    c, s = math.cos(a), math.sin(a)
    pts = [(dx * w / 2, dy * h / 2) for dx, dy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    return Polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts])


def _ref_voc_ap(rec, prec, use_07):
    if use_07:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = 0.0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
            ap += p / 11.0
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _ref_voc_eval(preds, gts, cls, thr, use_07):
    """DOTA devkit's voc_eval with plain loops and shapely polygons."""
    recs, npos = {}, 0
    for k, g in enumerate(gts):
        sel = [i for i in range(len(g.detections)) if int(g.detections.labels[i]) == cls]
        polys = [_poly(g.detections.boxes.tensor[i]) for i in sel]
        diff = [bool(g.difficult[i]) for i in sel]
        npos += sum(not d for d in diff)
        recs[k] = {"polys": polys, "difficult": diff, "det": [False] * len(sel)}
    dets = []
    for k, p in enumerate(preds):
        for i in range(len(p)):
            if int(p.labels[i]) == cls:
                dets.append((float(p.scores[i]), k, _poly(p.boxes.tensor[i])))
    dets.sort(key=lambda d: -d[0])
    tp, fp = np.zeros(len(dets)), np.zeros(len(dets))
    for d, (_, k, poly) in enumerate(dets):
        r = recs[k]
        ovmax, jmax = -np.inf, -1
        for j, g in enumerate(r["polys"]):
            inter = poly.intersection(g).area
            iou = inter / (poly.area + g.area - inter)
            if iou > ovmax:
                ovmax, jmax = iou, j
        if ovmax > thr:
            if not r["difficult"][jmax]:
                if not r["det"][jmax]:
                    tp[d] = 1.0
                    r["det"][jmax] = True
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    if npos == 0:
        return None
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return _ref_voc_ap(rec, prec, use_07)


def _random_data(seed, n_images=6):
    g = np.random.default_rng(seed)
    preds, gts = [], []
    for _ in range(n_images):
        n = int(g.integers(0, 9))
        boxes = np.column_stack(
            [g.uniform(0, 300, n), g.uniform(0, 300, n), g.uniform(10, 60, n), g.uniform(5, 30, n),
             g.uniform(-math.pi / 2, math.pi / 2, n)]
        )
        labels = g.integers(0, 3, n)
        gts.append(_gt(boxes, labels, difficult=g.random(n) < 0.2))
        # detections: jittered copies (some twice), plus random false positives
        rep = g.integers(0, 3, n)
        src = np.repeat(np.arange(n), rep)
        jit = boxes[src] + np.column_stack(
            [g.normal(0, 3, len(src)), g.normal(0, 3, len(src)), g.normal(0, 2, len(src)),
             g.normal(0, 2, len(src)), g.normal(0, 0.1, len(src))]
        )
        jit[:, 2:4] = np.abs(jit[:, 2:4]) + 1
        m = int(g.integers(0, 4))
        fp = np.column_stack(
            [g.uniform(0, 300, m), g.uniform(0, 300, m), g.uniform(10, 60, m), g.uniform(5, 30, m),
             g.uniform(-1.5, 1.5, m)]
        )
        pl = np.concatenate([np.where(g.random(len(src)) < 0.9, labels[src], g.integers(0, 3, len(src))),
                             g.integers(0, 3, m)]).astype(np.int64)
        preds.append(_pred(np.concatenate([jit, fp]), pl, g.random(len(pl))))
    return preds, gts


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("use_07", [False, True])
@pytest.mark.parametrize("thr", [0.5, 0.7])
def test_matches_independent_reference(seed, use_07, thr):
    preds, gts = _random_data(seed)
    r = rotated_map(preds, gts, iou_threshold=thr, use_07_metric=use_07)
    ref = {}
    for c, name in enumerate(VOC.objects):
        ap = _ref_voc_eval(preds, gts, c, thr, use_07)
        if ap is not None:
            ref[name] = ap
    assert set(r["AP"]) == set(ref)
    for name, ap in ref.items():
        assert r["AP"][name] == pytest.approx(ap, abs=1e-6), name
    assert r["mAP"] == pytest.approx(np.mean(list(ref.values())), abs=1e-6)


def test_cli_dota_results_against_native_annotations(tmp_path, capsys):
    from sgg.cli import main as sgg_main
    from sgg.datasets.dota import write_dota_results
    from sgg.datasets.native import write_scene_json

    preds, gts = _hand_case()
    (tmp_path / "gt").mkdir()
    for i, g in enumerate(gts):
        g = g.replace(image_path=str(tmp_path / f"img{i}.tif"), image_size=(500, 500))
        write_scene_json(g, tmp_path / "gt" / f"img{i}.json")
    write_dota_results({f"img{i}": p for i, p in enumerate(preds)}, tmp_path / "res", VOC, digits=4)
    assert sgg_main(["eval", "detection", "--pred", str(tmp_path / "res"), "--gt", str(tmp_path / "gt"),
                     "--json", str(tmp_path / "r.json")]) == 0
    text = capsys.readouterr().out
    assert "plane" in text and f"{(5 / 9 + 1) / 2:.4f}" in text
    import json

    r = json.loads((tmp_path / "r.json").read_text())
    assert r["AP"]["plane"] == pytest.approx(5 / 9, abs=1e-4)
    # native JSON predictions work too
    (tmp_path / "pred").mkdir()
    for i, p in enumerate(preds):
        write_scene_json(SceneGraph(p, vocabulary=VOC, image_path=str(tmp_path / f"img{i}.tif")),
                         tmp_path / "pred" / f"img{i}.graph.json")
    assert sgg_main(["eval", "detection", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"),
                     "--use-07"]) == 0
    assert f"{((4 + 2) / 11 + 1) / 2:.4f}" in capsys.readouterr().out
    assert sgg_main(["eval", "detection", "--pred", str(tmp_path / "none"), "--gt", str(tmp_path / "gt")]) == 2


def test_real_dota_labels_against_themselves(real_dir, tmp_path, capsys):
    """The real P0706 marina labels, written as results (perturbed, with a duplicate), scored by the CLI."""
    from sgg.cli import main as sgg_main
    from sgg.datasets.dota import DOTA_VOCABULARY, read_dota_labels, write_dota_results

    gt = read_dota_labels(real_dir / "dota" / "P0706.txt", DOTA_VOCABULARY)
    det = gt.detections
    n = len(det)
    hard = int(gt.difficult.sum())
    boxes = det.boxes.tensor.clone()
    boxes[:, 0] += 0.5  # half a pixel off: still matches at IoU 0.5
    scores = torch.linspace(1.0, 0.5, n)
    dup = Detections(torch.cat([boxes, boxes[:1]]), torch.cat([det.labels, det.labels[:1]]),
                     torch.cat([scores, torch.tensor([0.1])]))
    write_dota_results({"P0706": dup}, tmp_path / "res", DOTA_VOCABULARY)
    r = rotated_map([dup], [gt], class_names=DOTA_VOCABULARY.objects)
    ship = DOTA_VOCABULARY.object_index("ship")
    n_ship = int(((det.labels == ship) & ~gt.difficult).sum())
    assert r["num_gts"]["ship"] == n_ship and n_ship > 400 and hard > 0
    assert r["recall"]["ship"] == pytest.approx(1.0)
    # every positive found before the one duplicate (last, an FP): AP is exactly 1
    assert r["AP"]["ship"] == pytest.approx(1.0)
    assert sgg_main(["eval", "detection", "--pred", str(tmp_path / "res"), "--gt", str(real_dir / "dota" / "P0706.txt"),
                     "--vocabulary", "dota"]) == 0
    out = capsys.readouterr().out
    assert "ship" in out and "1.0000" in out
