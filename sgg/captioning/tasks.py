"""FIT-RSFG task answers from a scene graph, per 512-px crop (or per scene).

Scenes are cut into ``crop × crop`` windows (``gap`` px overlap, the last row/column flush with the edge,
as FIT-RS's ``imgv2_split_512_100`` crops); an object belongs to a crop when at least ``IOF_THR`` (0.55,
FIT-RS's value) of its area lies inside. Answers follow FIT-RS's own text so that its official evaluation
script reads them (see :mod:`sgg.captioning.scorers`):

* ``task1`` detection: ``There are 3 ships in the image: <rbox>({…}, {…}, {…})</rbox>`` — FIT-RS's generator
  text (its naive plural ``name + "s"``), at most 20 boxes then
  ``, and due to the context length, the remaining objects are not listed.``;
* ``task2`` relation detection: ``There are 2 relationships between tank and tank: tank <not co-storage
  with> tank, tank <co-storage with> tank`` (the example in the official script);
* ``task3`` relation reasoning between two given objects: ``subject: ship, object: dock, relationship:
  <rel>parallelly docked at</rel>.``;
* ``task5`` region-level scene graph: ``A fully visible small ship on the top left part of the image. It is
  <rel>…</rel> 1 <ref>dock</ref><rbox>({…})</rbox>. 3 <ref>ships</ref><rbox>(…)</rbox> are <rel>…</rel> it.``;
* ``task6`` image-level scene graph: one triplet per sentence, subject boxes grouped, one object box.

Predictions are first turned into labelled relations with ``SceneGraph.triplets(top_k)``.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch.utils.weak import WeakIdKeyDictionary

from sgg.structures import Detections, PairSet, SceneGraph

from .codec import MAX_LISTED, RBOX_END, RBOX_START, encode_boxes, fit_plural

IOF_THR = 0.55
NEG_ANSWER = "I'm sorry, I cannot answer as the given image does not contain any given objects."
TRUNCATION = ", and due to the context length, the remaining objects are not listed."
SIZE_WORDS = ("small", "medium", "large", "giant")
CATEGORIES = {
    "task1": "[detection]",
    "task2": "[relation detection]",
    "task3": "[relation reasoning]",
    "task5": "[region scene graph]",
    "task6": "[image scene graph]",
}


# --------------------------------------------------------------------------------------------------
# graphs: labelled relations, crops
# --------------------------------------------------------------------------------------------------
def labelled(graph: SceneGraph, top_k: int | None = None, min_score: float | None = None) -> SceneGraph:
    """The graph with one labelled row per relation: annotations as they are, predictions cut to their
    ``top_k`` best triplets (and those scoring at least ``min_score``)."""
    if graph.predicate_scores is None:
        return graph
    t = graph.triplets(top_k=top_k)
    keep = torch.ones(len(t["score"]), dtype=torch.bool) if min_score is None else t["score"] >= min_score
    pairs = torch.stack([t["subject"][keep], t["object"][keep]], dim=1)
    return graph.replace(pairs=PairSet(pairs, t["score"][keep]), predicate_labels=t["predicate"][keep],
                         metadata=dict(graph.metadata))


def crop_windows(width: int, height: int, crop: int = 512, gap: int = 100) -> list[tuple[int, int]]:
    """Top-left corners of ``crop``-px windows overlapping by ``gap`` px, the last ones flush with the edge."""
    def starts(n: int) -> list[int]:
        if n <= crop:
            return [0]
        step = crop - gap
        s = list(range(0, n - crop, step))
        return s + [n - crop]
    return [(x, y) for y in starts(int(height)) for x in starts(int(width))]


def crop_graph(graph: SceneGraph, x: int, y: int, crop: int = 512, iof_thr: float = IOF_THR) -> SceneGraph:
    """The objects with at least ``iof_thr`` of their area inside the window (boxes in crop pixels) and the
    relations among them. ``metadata['visible']`` holds each kept object's fraction inside."""
    from sgg.ops import rotated_iof

    g = labelled(graph)
    det = g.detections
    window = torch.tensor([[x + crop / 2, y + crop / 2, float(crop), float(crop), 0.0]])
    iof = rotated_iof(det.boxes.tensor.double(), window.double())[:, 0] if len(det) else torch.zeros(0)
    keep = (iof >= iof_thr).nonzero().flatten()
    remap = torch.full((len(det),), -1, dtype=torch.long)
    remap[keep] = torch.arange(len(keep))
    p = g.pairs.pairs
    lab = g.predicate_labels if g.predicate_labels is not None else torch.zeros(len(p), dtype=torch.long)
    ok = (remap[p[:, 0]] >= 0) & (remap[p[:, 1]] >= 0) & (lab > 0) if len(p) else torch.zeros(0, dtype=torch.bool)
    boxes = det.boxes[keep].affine(1.0, (-float(x), -float(y)))
    sub = Detections(boxes, det.labels[keep], det.scores[keep])
    pairs = PairSet(remap[p[ok]].reshape(-1, 2), None if g.pairs.scores is None else g.pairs.scores[ok])
    meta = {**g.metadata, "crop": [int(x), int(y), int(crop)], "visible": iof[keep].tolist(),
            "source_index": keep.tolist()}
    diff = None if g.difficult is None else g.difficult[keep]
    return SceneGraph(sub, pairs, predicate_labels=lab[ok], vocabulary=g.vocabulary, metadata=meta,
                      image_path=g.image_path, image_size=(crop, crop), difficult=diff)


# --------------------------------------------------------------------------------------------------
# words for places and sizes
# --------------------------------------------------------------------------------------------------
def image_part(cx: float, cy: float, width: float, height: float) -> str:
    """``top left`` … ``center`` … ``bottom right``: the cell of a 3 × 3 grid that holds the point."""
    col = min(int(3 * cx / max(width, 1e-9)), 2) if cx >= 0 else 0
    row = min(int(3 * cy / max(height, 1e-9)), 2) if cy >= 0 else 0
    v = ("top", "", "bottom")[row]
    h = ("left", "", "right")[col]
    return (f"{v} {h}".strip() or "center")


def size_word(w: float, h: float, crop: float) -> str:
    """small / medium / large / giant by the box's square-root area relative to the crop side."""
    r = float(np.sqrt(max(w * h, 0.0))) / float(crop)
    return SIZE_WORDS[int(np.searchsorted([0.05, 0.15, 0.4], r, side="right"))]


# --------------------------------------------------------------------------------------------------
# task answers
# --------------------------------------------------------------------------------------------------
def _names(g: SceneGraph) -> list[str]:
    return [g.vocabulary.objects[i] for i in g.detections.labels.tolist()]


def _rows(g: SceneGraph) -> list[tuple[int, int, str]]:
    p = g.pairs.pairs.tolist()
    lab = g.predicate_labels.tolist() if g.predicate_labels is not None else [0] * len(p)
    return [(s, o, g.vocabulary.predicates[k]) for (s, o), k in zip(p, lab) if k > 0]


def relation_groups(g: SceneGraph, names: list[str] | None = None) -> dict[tuple[str, str, str], tuple[set, set]]:
    """(subject class, predicate, object class) -> (distinct subject indices, distinct object indices)."""
    names = _names(g) if names is None else names
    groups: dict[tuple[str, str, str], tuple[set, set]] = {}
    for s, o, p in _rows(g):
        subs, objs = groups.setdefault((names[s], p, names[o]), (set(), set()))
        subs.add(s)
        objs.add(o)
    return groups


def detection_answer(g: SceneGraph, cls: str, crop: int = 512) -> str:
    """FIT-RS detection answer for class ``cls`` (the negative sentence when there is none)."""
    idx = [i for i, n in enumerate(_names(g)) if n == cls]
    if not idx:
        return NEG_ANSWER
    n = len(idx)
    listed = idx[:MAX_LISTED]
    head = f"There is 1 {cls} in the image:" if n == 1 else f"There are {n} {fit_plural(cls, n)} in the image:"
    return head + " " + _box_text(g, listed, crop) + (TRUNCATION if n > MAX_LISTED else "")


def relation_detection_answer(g: SceneGraph, subj_cls: str, obj_cls: str) -> str:
    """The distinct predicates from ``subj_cls`` objects to ``obj_cls`` objects, FIT-RS task-2 text."""
    names = _names(g)
    preds = list(OrderedDict.fromkeys(p for s, o, p in _rows(g) if names[s] == subj_cls and names[o] == obj_cls))
    if not preds:
        return f"There is no relationship between {subj_cls} and {obj_cls}."
    word = "relationship" if len(preds) == 1 else "relationships"
    verb = "is" if len(preds) == 1 else "are"
    body = ", ".join(f"{subj_cls} <{p}> {obj_cls}" for p in preds)
    return f"There {verb} {len(preds)} {word} between {subj_cls} and {obj_cls}: {body}"


def relation_reasoning_answer(g: SceneGraph, subject: int, obj: int) -> str:
    """``subject: ship, object: dock, relationship: <rel>…</rel>.`` for objects ``subject`` → ``obj``."""
    names = _names(g)
    preds = [p for s, o, p in _rows(g) if s == subject and o == obj]
    rel = ", ".join(f"<rel>{p}</rel>" for p in dict.fromkeys(preds)) or "<rel>none</rel>"
    return f"subject: {names[subject]}, object: {names[obj]}, relationship: {rel}."


# boxes tensor -> (its version counter, crop, one text per box). Keyed by identity through a weak
# reference: an entry lives exactly as long as its tensor, so an id reused after garbage collection never
# finds a stale entry and no tensor is kept alive; an in-place edit moves the version counter, which
# re-encodes. Inference tensors (no version counter) cannot be edited outside inference mode.
_ENCODED: WeakIdKeyDictionary = WeakIdKeyDictionary()


def _version(t: torch.Tensor) -> int | None:
    try:
        return t._version
    except RuntimeError:  # an inference tensor
        return None


def _box_text(g: SceneGraph, idx: list[int], crop: int) -> str:
    """``<rbox>(…)</rbox>`` of objects ``idx``; each graph's boxes are encoded once per crop size."""
    t = g.detections.boxes.tensor
    hit = _ENCODED.get(t)
    if hit is None or hit[0] != _version(t) or hit[1] != crop:
        hit = (_version(t), crop, encode_boxes(g.detections.boxes, crop))
        _ENCODED[t] = hit
    return RBOX_START + "(" + ", ".join(hit[2][i] for i in idx) + ")" + RBOX_END


def region_sgg_answer(g: SceneGraph, target: int, crop: int = 512) -> str:
    """Region-level scene graph of object ``target``: what it is, where, and its relations grouped by
    (direction, predicate, other class), each with the other objects' boxes."""
    names = _names(g)
    b = g.detections.boxes.tensor[target].tolist()
    vis = (g.metadata.get("visible") or [1.0] * len(names))[target]
    full = "fully visible" if vis >= 0.999 else "partially visible"
    head = f"A {full} {size_word(b[2], b[3], crop)} {names[target]} on the {image_part(b[0], b[1], crop, crop)} part of the image"
    groups: OrderedDict[tuple[str, str, str], list[int]] = OrderedDict()
    for s, o, p in _rows(g):
        if s == target and o != target:
            groups.setdefault(("out", p, names[o]), []).append(o)
        elif o == target and s != target:
            groups.setdefault(("in", p, names[s]), []).append(s)
    sentences = [head]
    for (d, p, cls), idx in groups.items():
        idx = list(dict.fromkeys(idx))
        n = len(idx)
        other = f"{n} <ref>{fit_plural(cls, n)}</ref>{_box_text(g, idx, crop)}"
        if d == "out":
            sentences.append(f"It is <rel>{p}</rel> {other}")
        else:
            sentences.append(f"{other} {'is' if n == 1 else 'are'} <rel>{p}</rel> it")
    return ". ".join(sentences) + "."


def image_sgg_answer(g: SceneGraph, crop: int = 512) -> str:
    """Image-level scene graph: the objects of each class, then one triplet per sentence (subjects of the
    same class and predicate grouped, one object box)."""
    names = _names(g)
    if not names:
        return NEG_ANSWER
    sentences = []
    for cls in dict.fromkeys(names):
        idx = [i for i, n in enumerate(names) if n == cls]
        n = len(idx)
        sentences.append(f"There {'is' if n == 1 else 'are'} {n} <ref>{fit_plural(cls, n)}</ref> in the image: "
                         f"{_box_text(g, idx, crop)}")
    groups: OrderedDict[tuple[str, str, int], list[int]] = OrderedDict()
    for s, o, p in _rows(g):
        groups.setdefault((names[s], p, o), []).append(s)
    for (scls, p, o), subs in groups.items():
        subs = list(dict.fromkeys(subs))
        n = len(subs)
        sentences.append(f"{n} <ref>{fit_plural(scls, n)}</ref>{_box_text(g, subs, crop)} {'is' if n == 1 else 'are'} "
                         f"<rel>{p}</rel> <ref>{names[o]}</ref>{_box_text(g, [o], crop)}")
    return ". ".join(sentences) + "."


# --------------------------------------------------------------------------------------------------
# question sets
# --------------------------------------------------------------------------------------------------
def task_items(g: SceneGraph, crop: int = 512, seed: int = 0, max_per_task: int = 4,
               negatives: bool = True) -> list[dict[str, Any]]:
    """Question/answer items of every task for one crop graph: ``{"category", "question", "answer"}``.

    Detection asks for every present class (and, with ``negatives``, one absent class, answered with
    FIT-RS's refusal sentence); the relation tasks sample at most ``max_per_task`` pairs/objects (seeded)."""
    rng = random.Random(seed)
    names = _names(g)
    vocab = g.vocabulary.objects
    items: list[dict[str, Any]] = []
    present = list(dict.fromkeys(names))
    for cls in present:
        items.append({"category": "task1", "question": f"{CATEGORIES['task1']}Can you locate all the {cls}s in the image?",
                      "answer": detection_answer(g, cls, crop)})
    if negatives:
        absent = [c for c in vocab if c not in present]
        if absent:
            cls = rng.choice(absent)
            items.append({"category": "task1", "question": f"{CATEGORIES['task1']}Can you locate all the {cls}s in the image?",
                          "answer": NEG_ANSWER})
    rows = _rows(g)
    class_pairs = list(dict.fromkeys((names[s], names[o]) for s, o, _ in rows))
    for sc, oc in rng.sample(class_pairs, min(max_per_task, len(class_pairs))):
        items.append({"category": "task2",
                      "question": f"{CATEGORIES['task2']}What are the relationships between the {sc}s and the {oc}s in the image?",
                      "answer": relation_detection_answer(g, sc, oc)})
    obj_pairs = list(dict.fromkeys((s, o) for s, o, _ in rows))
    for s, o in rng.sample(obj_pairs, min(max_per_task, len(obj_pairs))):
        items.append({"category": "task3",
                      "question": f"{CATEGORIES['task3']}What is the relationship between the object "
                                  f"{_box_text(g, [s], crop)} and the object {_box_text(g, [o], crop)}?",
                      "answer": relation_reasoning_answer(g, s, o)})
    related = list(dict.fromkeys([s for s, _, _ in rows] + [o for _, o, _ in rows]))
    for t in rng.sample(related, min(max_per_task, len(related))):
        items.append({"category": "task5",
                      "question": f"{CATEGORIES['task5']}Describe the object {_box_text(g, [t], crop)} and its relationships.",
                      "answer": region_sgg_answer(g, t, crop)})
    if rows:
        items.append({"category": "task6",
                      "question": f"{CATEGORIES['task6']}Generate the scene graph of the image, with the locations of the objects.",
                      "answer": image_sgg_answer(g, crop)})
    return items

