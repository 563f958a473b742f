"""FIT-RSFG scoring of model answers against ground-truth answers, in two modes.

Input: records ``{"category": "task1".."task6", "ground_truth": str, "answer": str}`` (the answer files of
SkySenseGPT's evaluation, as ``sgg fitrs export --questions`` writes them and a model fills them in).
Rules (FIT-RSFG, the official ``evaluation_metrics_ComplexCompre``): rotated IoU ≥ 0.25; detection mAP,
VOC07 11-point; relation detection (task2) and relation reasoning (task3) as micro P/R/F1 over predicate
strings; region-level (task5) and image-level (task6) scene graphs as per-image triplet recall averaged over
images, and mean recall over predicates.

``mode="faithful"`` reproduces the official script's behaviour, quirks included:

* boxes narrower or lower than 2 grid units (≈10 px of a 512 crop: most cars!) are dropped on both sides,
  an unreadable box becomes ``(0,0,0,0,0)`` and is dropped by the same rule;
* a category is the text with one trailing ``s`` removed (task1: every trailing ``s``) looked up in the
  official 49-name list; unknown names fall into its last class, ``null``;
* task2 takes every ``<…>`` of the texts as a predicate (tags included);
* task3: an answer that names the subject/object classes wrongly adds nothing (the official code computes
  its FP/FN and forgets to add them);
* task5: the target's class is never read (both sides use ``''``) and its box is a fixed placeholder, so
  only the other object's class, box and the predicate count;
* task5/task6: an image whose *answer* yields no triplet is skipped; mean recall divides by 59 buckets
  (58 predicates and the unknown one);
* ground truths containing ``due to the context length`` or ``...`` are skipped (every task).

``mode="clean"``: boxes kept whatever their size (unreadable ones reported, not zeroed); classes resolved
against the vocabulary (plurals, spaces); task2 reads the predicates of ``subj <pred> obj`` and
``<rel>pred</rel>``, case- and space-normalised;
a wrong task3 answer counts its FP and FN; an empty scene-graph answer scores 0 for its image; mean recall
over the 58 predicates. Truncated ground truths are skipped in both modes (their boxes are not all known).

Not reproduced: the official vg_eval.py (task5/6 recall) was not available to read; the recall rules above
follow the FIT-RSFG description. Ties between equal-score boxes are ranked in answer order (the official
mmrotate code sorts with an unstable sort). Task4 (object reasoning) is not scored.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from sgg.structures import Detections, OrientedBoxes, SceneGraph, Vocabulary

from .codec import RBOX_RE, REF_RE, REL_RE, _read_box, parse_relation_detection, resolve_class
from .tasks import SIZE_WORDS as SIZES

IOU_THR = 0.25
# the official script's class list (STAR's 48 in another order, and "null") and predicate order
OFFICIAL_CLASSES = (
    "airplane", "boat", "taxiway", "boarding_bridge", "tank", "ship", "crane", "car", "apron", "dock", "storehouse",
    "goods_yard", "truck", "terminal", "runway", "breakwater", "car_parking", "bridge", "cooling_tower",
    "truck_parking", "chimney", "vapor", "coal_yard", "genset", "smoke", "gas_station", "lattice_tower", "substation",
    "containment_vessel", "flood_dam", "ship_lock", "gravity_dam", "arch_dam", "cement_concrete_pavement",
    "toll_gate", "tower_crane", "engineering_vehicle", "unfinished_building", "foundation_pit", "wind_mill",
    "intersection", "roundabout", "ground_track_field", "soccer_ball_field", "basketball_court", "tennis_court",
    "baseball_diamond", "stadium", "null",
)
MODES = ("faithful", "clean")
_BOX_ANY = re.compile(r"\{(<.*?>)\}")
_FIELDS = re.compile(r"<(.*?)>")
_PLACEHOLDER = [50.0, 50.0, 20.0, 20.0, 0.0]  # the official fixed box of the task5 target


# --------------------------------------------------------------------------------------------------
# reading boxes and names in either mode
# --------------------------------------------------------------------------------------------------
def _boxes(text: str, mode: str, errors: list[str]) -> list[list[float]]:
    """oc boxes (grid units, radians) of every ``{…}`` in ``text``; faithful: official reading + 2-unit filter."""
    out = []
    for m in _BOX_ANY.finditer(text or ""):
        vals, why = _read_box(m.group(1))
        if mode == "faithful":
            if vals is None:
                try:
                    vals = [float(v) for v in _FIELDS.findall(m.group(1))]
                except ValueError:
                    vals = [0.0] * 5
            if len(vals) != 5 or vals[2] < 2 or vals[3] < 2:
                continue
        elif vals is None:
            errors.append(f"{m.group(0)!r}: {why}")
            continue
        out.append([*vals[:4], math.radians(vals[4])])
    return out


class _Names:
    """Class and predicate names → indices, the official way or the tolerant way."""

    def __init__(self, mode: str, vocabulary: Vocabulary):
        self.mode = mode
        self.classes = OFFICIAL_CLASSES if mode == "faithful" else vocabulary.objects
        self.c_index = {c: i for i, c in enumerate(self.classes)}
        self.predicates = vocabulary.predicates[1:]
        self.p_index = {p: i for i, p in enumerate(self.predicates)}

    def cls(self, word: str, strip: str = "one") -> int:
        """Faithful: the official spelling rule of each task (``strip`` every / one / no trailing ``s``)."""
        if self.mode == "faithful":
            w = word.rstrip("s") if strip == "all" else word[:-1] if strip == "one" and word.endswith("s") else word
            return self.c_index.get(w, len(self.classes) - 1)  # -1 indexes "null" in the official code
        name = resolve_class(word, self.classes)
        return -1 if name is None else self.c_index[name]

    def pred(self, word: str) -> int:
        w = word if self.mode == "faithful" else " ".join(word.lower().split())
        return self.p_index.get(w, -1)


def _skip_truncated(gt: str) -> bool:
    return "due to the context length" in gt or "..." in gt


# --------------------------------------------------------------------------------------------------
# detection (task1) and the detection part of task6: rotated VOC07 mAP via sgg.evaluation
# --------------------------------------------------------------------------------------------------
def _map(images: list[tuple[list[tuple[list[float], int]], list[tuple[list[float], int]]]], classes: Sequence[str]) -> float:
    from sgg.evaluation.detection import rotated_map
    from sgg.ops import oc_to_le90

    vocab = Vocabulary(tuple(classes), ("rel",))
    preds, gts = [], []
    for gt, pr in images:
        if not gt:  # the official converter drops images without ground-truth boxes
            continue
        def det(rows: list[tuple[list[float], int]]) -> Detections:
            if not rows:
                return Detections.empty()
            b = oc_to_le90(torch.tensor([r for r, _ in rows], dtype=torch.float64)).float()
            lab = torch.tensor([c % len(classes) for _, c in rows])
            return Detections(OrientedBoxes(b), lab)  # equal scores: a stable sort keeps answer order
        g = det(gt)
        gts.append(SceneGraph(g, vocabulary=vocab))
        preds.append(det(pr))
    if not gts:
        return float("nan")
    # rotated_map counts IoU > thr; the official (mmrotate) IoU >= thr: nudge the threshold by one ulp
    return rotated_map(preds, gts, iou_threshold=np.nextafter(IOU_THR, 0.0), use_07_metric=True)["mAP"]


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "tp": tp, "fp": fp, "fn": fn}


# --------------------------------------------------------------------------------------------------
# scene-graph triplets (task5, task6)
# --------------------------------------------------------------------------------------------------
def _triplets_task5(text: str, names: _Names, errors: list[str]) -> tuple[list[tuple[int, int, int]], list[list[float]], list[list[float]]]:
    """(subject class, predicate, object class), subject boxes, object boxes; the target is class ``''``."""
    mode = names.mode
    target_cls = -2  # the official target category '' (never resolved): equal on both sides
    if mode == "clean":
        first = text.replace("\n", " ").split(". ")[0]
        m = re.search(r"(.*) on the .* part of the image", first)
        target_cls = -1
        if m:
            words = m.group(1).split()
            for k, w in enumerate(words):
                if w.lower() in SIZES:
                    target_cls = names.cls(" ".join(words[k + 1:]))
                    break
    trip, sb, ob = [], [], []
    for s in text.replace("\n", " ").split(". ")[1:]:
        if not s:
            continue
        s_l = s.lower() if mode == "faithful" else s
        rel = (REL_RE.findall(s_l) or ["background"])[0]
        ref = (REF_RE.findall(s_l) or ["background"])[0]
        grp = (RBOX_RE.findall(s_l) or ["({<0.><0.><0.><0.>|<0>})"])[0]
        boxes = _boxes(grp, mode, errors)
        low = s.lower()
        if mode == "faithful" and len(_BOX_ANY.findall(grp)) > 1 and ref.endswith("s"):  # counted before filtering
            ref = ref[:-1]
        obj_cls = names.cls(ref, strip="none")  # the official task5 strips only plurals of several boxes
        p = names.pred(rel)
        if "it is" in low:
            for b in boxes:
                trip.append((target_cls, p, obj_cls)); sb.append(_PLACEHOLDER); ob.append(b)
        elif "> it" in low:
            for b in boxes:
                trip.append((obj_cls, p, target_cls)); sb.append(b); ob.append(_PLACEHOLDER)
    return trip, sb, ob


def _triplets_task6(text: str, names: _Names, errors: list[str], is_gt: bool):
    """Triplets, subject and object boxes, and detection rows ``(box, class)`` of an image-level answer."""
    mode = names.mode
    trip, sb, ob, dets = [], [], [], []
    for s in text.replace("\n", " ").split(". "):
        s_l = s.lower() if mode == "faithful" else s
        if "sorry" in s.lower() and is_gt:
            continue
        rels = REL_RE.findall(s_l)
        if rels:
            refs = REF_RE.findall(s_l) + ["background"] * 2
            groups = RBOX_RE.findall(s_l) + ["({<0.><0.><0.><0.>|<0>})"] * 2
            sc, oc = refs[0], refs[1]
            subj = _boxes(groups[0], mode, errors)
            obj = _boxes(groups[1], mode, errors)
            if not obj:
                continue
            if len(obj) > 1:
                errors.append(f"{len(obj)} object boxes in one triplet (the official script asserts 1); the first is used")
            triple = (names.cls(sc), names.pred(rels[0]), names.cls(oc))
            for b in subj:
                trip.append(triple); sb.append(b); ob.append(obj[0])
        elif "<rbox>" in s_l:
            cat = (REF_RE.findall(s_l) or ["background"])[0]
            grp = (RBOX_RE.findall(s_l) or [""])[0]
            c = names.cls(cat)
            dets += [(b, c) for b in _boxes(grp, mode, errors)]
    return trip, sb, ob, dets


def _image_recall(gt_t, gt_s, gt_o, pr_t, pr_s, pr_o) -> tuple[np.ndarray, np.ndarray]:
    """Per gt triplet: matched (label equality and subject and object IoU ≥ 0.25) — and its predicate."""
    from sgg.ops import oc_to_le90, rotated_iou

    g = torch.tensor(gt_t, dtype=torch.long).reshape(-1, 3)
    hit = torch.zeros(len(g), dtype=torch.bool)
    if len(pr_t) and len(g):
        p = torch.tensor(pr_t, dtype=torch.long).reshape(-1, 3)
        # a box appears in many triplets: IoU once between the distinct gt and answer boxes
        gb, gi = torch.unique(torch.tensor(gt_s + gt_o, dtype=torch.float64).reshape(-1, 5), dim=0, return_inverse=True)
        pb, pi = torch.unique(torch.tensor(pr_s + pr_o, dtype=torch.float64).reshape(-1, 5), dim=0, return_inverse=True)
        ok = rotated_iou(oc_to_le90(gb), oc_to_le90(pb)) >= IOU_THR
        n, m = len(g), len(p)
        same = (g[:, None, :] == p[None, :, :]).all(-1)
        hit = (same & ok[gi[:n, None], pi[None, :m]] & ok[gi[n:, None], pi[None, m:]]).any(1)
    return hit.numpy(), g[:, 1].numpy()


def _sgg_summary(images: list[tuple[np.ndarray, np.ndarray]], num_predicates: int, mode: str, skipped: int) -> dict[str, Any]:
    recalls = [float(h.mean()) for h, _ in images if len(h)]
    per_pred = defaultdict(list)
    for h, preds in images:
        for k in np.unique(preds):
            per_pred[int(k)].append(float(h[preds == k].mean()))
    buckets = list(range(num_predicates)) + ([-1] if mode == "faithful" else [])
    bucket_recall = {b: (float(np.mean(per_pred[b])) if per_pred.get(b) else 0.0) for b in buckets}
    return {"recall": float(np.mean(recalls)) if recalls else 0.0,
            "mean_recall": float(np.mean(list(bucket_recall.values()))),
            "buckets": len(buckets), "images": len(recalls), "skipped_empty_answers": skipped,
            "per_predicate": {k: v for k, v in bucket_recall.items() if per_pred.get(k)}}


# --------------------------------------------------------------------------------------------------
# the scorer
# --------------------------------------------------------------------------------------------------
def score_answers(records: Iterable[dict[str, Any]], mode: str = "faithful",
                  vocabulary: Vocabulary | None = None) -> dict[str, Any]:
    """FIT-RSFG metrics of answer records (see the module docstring for the two modes)."""
    if mode not in MODES:
        raise ValueError(f"score_answers: mode must be one of {MODES}, got {mode!r}")
    vocab = vocabulary or Vocabulary.star()
    names = _Names(mode, vocab)
    errors: list[str] = []
    counts: dict[str, int] = defaultdict(int)
    skipped: dict[str, int] = defaultdict(int)
    det1, det6, sg5, sg6 = [], [], [], []
    empty5 = empty6 = 0
    t2 = [0, 0, 0]
    t3 = [0, 0, 0]
    for k, rec in enumerate(records):
        cat, gt, ans = rec.get("category", ""), rec.get("ground_truth", "") or "", rec.get("answer", "") or ""
        counts[cat] += 1
        if _skip_truncated(gt):
            skipped[cat] += 1
            continue
        if cat == "task1":
            m = re.search(r"There (?:is|are) \d+ (.+?)s? in the image", gt)
            if m is None:
                skipped[cat] += 1  # negative sample
                continue
            c = names.cls(m.group(1), strip="all")
            gt_rows = [(b, c) for b in _boxes(gt, mode, [])]
            pr_rows = [(b, c) for b in _boxes(ans, mode, errors)]
            det1.append((gt_rows, pr_rows))
        elif cat == "task2":
            if mode == "faithful":
                g, a = set(_FIELDS.findall(gt)), set(_FIELDS.findall(ans))
            else:
                norm = lambda t: {" ".join(p.lower().split()) for _, p, _ in parse_relation_detection(t)["relations"]}
                g, a = norm(gt), norm(ans)
            for j, v in enumerate((len(g & a), len(a - g), len(g - a))):
                t2[j] += v
        elif cat == "task3":
            def single(t: str):
                s1, s2, r = re.findall(r"subject: (.+?),", t), re.findall(r"object: (.+?),", t), REL_RE.findall(t)
                if not (s1 and s2 and r):
                    return None, None, []
                if mode == "clean":
                    return names.cls(s1[0]), names.cls(s2[0]), [" ".join(x.lower().split()) for x in r]
                return s1[0], s2[0], r
            c1, c2, rg = single(gt)
            p1, p2, rp = single(ans)
            if not rg:
                skipped[cat] += 1
                continue
            if c1 == p1 and c2 == p2:
                g, a = set(rg), set(rp)
                tp, fp, fn = len(g & a), len(a - g), len(g - a)
            elif mode == "faithful":
                tp = fp = fn = 0  # the official code never adds these
            else:
                tp, fp, fn = 0, len(set(rp)), len(set(rg))
            t3[0] += tp; t3[1] += fp; t3[2] += fn
        elif cat == "task5":
            if not _BOX_ANY.search(gt):
                skipped[cat] += 1
                continue
            gt_t, gs, go = _triplets_task5(gt, names, [])
            pr_t, ps, po = _triplets_task5(ans, names, errors)
            if not gt_t or (mode == "faithful" and not pr_t):
                empty5 += bool(gt_t)
                skipped[cat] += 1
                continue
            sg5.append(_image_recall(gt_t, gs, go, pr_t, ps, po))
        elif cat == "task6":
            if not _BOX_ANY.search(gt) or "sorry" in gt:
                skipped[cat] += 1
                continue
            gt_t, gs, go, gd = _triplets_task6(gt, names, [], True)
            pr_t, ps, po, pd = _triplets_task6(ans, names, errors, False)
            det6.append((gd, pd))
            if not gt_t or (mode == "faithful" and not pr_t):
                empty6 += bool(gt_t)
                skipped[cat] += 1
                continue
            sg6.append(_image_recall(gt_t, gs, go, pr_t, ps, po))
        else:
            skipped[cat] += 1
    npred = len(names.predicates)
    out: dict[str, Any] = {"mode": mode, "iou_threshold": IOU_THR, "records": dict(counts), "skipped": dict(skipped)}
    if counts.get("task1"):
        out["task1_detection_map"] = _map(det1, names.classes)
    if counts.get("task2"):
        out["task2_relation_detection"] = _prf(*t2)
    if counts.get("task3"):
        out["task3_relation_reasoning"] = _prf(*t3)
    if counts.get("task5"):
        out["task5_region_sgg"] = _sgg_summary(sg5, npred, mode, empty5)
    if counts.get("task6"):
        out["task6_image_sgg"] = _sgg_summary(sg6, npred, mode, empty6)
        out["task6_image_sgg"]["detection_map"] = _map(det6, names.classes)
    out["parse_errors"] = errors[:50]
    out["num_parse_errors"] = len(errors)
    return out


def format_scores(result: dict[str, Any]) -> str:
    """A short plain-text report of :func:`score_answers`."""
    lines = [f"FIT-RSFG scores ({result['mode']} mode, rotated IoU >= {result['iou_threshold']})"]
    if "task1_detection_map" in result:
        lines.append(f"  task1 detection            mAP (VOC07)  {result['task1_detection_map']:.4f}")
    for key, label in (("task2_relation_detection", "task2 relation detection"), ("task3_relation_reasoning", "task3 relation reasoning")):
        if key in result:
            r = result[key]
            lines.append(f"  {label:<26} P {r['precision']:.4f}  R {r['recall']:.4f}  F1 {r['f1']:.4f}")
    for key, label in (("task5_region_sgg", "task5 region-level SGG"), ("task6_image_sgg", "task6 image-level SGG")):
        if key in result:
            r = result[key]
            extra = f"  mAP {r['detection_map']:.4f}" if "detection_map" in r else ""
            lines.append(f"  {label:<26} R {r['recall']:.4f}  mR {r['mean_recall']:.4f} ({r['buckets']} buckets, "
                         f"{r['images']} images, {r['skipped_empty_answers']} empty answers skipped){extra}")
    lines.append(f"  records {result['records']}  skipped {result['skipped']}  unreadable boxes {result['num_parse_errors']}")
    return "\n".join(lines)
