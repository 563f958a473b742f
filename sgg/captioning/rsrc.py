"""FIT-RSRC style relation-comprehension questions from a graph, and their CircularEval scorer.

Four categories, as FIT-RSRC: ``relationship`` (which predicate links two given objects), ``object``
(what the given subject is ⟨predicate⟩), ``subject`` (what is ⟨predicate⟩ the given object) and ``exist``
(which of these relations holds in the image). Objects are given by class and FIT box. Distractors are
plausible and wrong: candidates are ranked by STAR's training-set triplet counts for the class pair (the
package's ``star_triplet_counts.json``), then by what the scene holds, then the rest of the vocabulary; any
candidate that the graph makes true is excluded.

CircularEval (as the official ``batch_fitrsrc_single_choice_qa.py``): every question is asked once per
rotation of its options; it counts as correct only if every variant is. An answer is correct when it equals
the ground-truth letter (case-insensitive) or its first standalone capital letter A–E does. That rule is the
official one, including its quirk that an answer opening with the article "A" reads as option A;
``match_option_text=True`` also accepts the exact text of the right option (not in the official script).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

from sgg.structures import SceneGraph, star_triplet_counts

from .codec import format_rbox
from .tasks import _names, _rows, labelled

CATEGORIES = ("relationship", "object", "subject", "exist")
LETTERS = "ABCDE"
INSTRUCTION = "Answer with the option's letter from the given choices directly."


def _star_counts() -> np.ndarray:
    """(49, 49, 59) subject × object × predicate counts (index 0 background), STAR vocabulary order."""
    return star_triplet_counts()


def _ranked(cands: list[str], prior: dict[str, float], scene: set[str], rng: random.Random) -> list[str]:
    """Candidates by STAR prior, then scene presence, then a seeded shuffle."""
    keys = {c: (-prior.get(c, 0.0), c not in scene, rng.random()) for c in cands}
    return sorted(cands, key=lambda c: keys[c])


def rsrc_questions(graph: SceneGraph, crop: int = 512, per_category: int = 2, num_options: int = 4,
                   seed: int = 0) -> list[dict[str, Any]]:
    """Multiple-choice questions ``{"category", "question", "options", "answer"}`` (answer = option index 0)
    from the labelled relations of ``graph`` (a crop graph: boxes in crop pixels)."""
    if not 2 <= num_options <= len(LETTERS):
        raise ValueError(f"rsrc_questions: num_options must be 2..{len(LETTERS)}")
    g = labelled(graph)
    rng = random.Random(seed)
    voc = g.vocabulary
    names, rows = _names(g), _rows(g)
    if not rows:
        return []
    star = _star_counts() if voc.objects == voc.star().objects and voc.predicates == voc.star().predicates else None
    pair_preds = defaultdict(set)  # (s, o) -> predicates
    out_of = defaultdict(set)  # (s, pred) -> object classes
    into = defaultdict(set)  # (o, pred) -> subject classes
    class_triplets = set()
    for s, o, p in rows:
        pair_preds[(s, o)].add(p)
        out_of[(s, p)].add(names[o])
        into[(o, p)].add(names[s])
        class_triplets.add((names[s], p, names[o]))
    scene_preds = {p for _, _, p in rows}
    scene_classes = set(names)
    box = lambda i: format_rbox(g.detections.boxes[i : i + 1], crop)

    def pred_prior(sc: str, oc: str) -> dict[str, float]:
        if star is None:
            return {}
        v = star[voc.object_index(sc) + 1, voc.object_index(oc) + 1]
        return {voc.predicates[k]: float(v[k]) for k in range(1, len(v))}

    def class_prior(pred: str, fixed: str, as_subject: bool) -> dict[str, float]:
        if star is None:
            return {}
        k, f = voc.predicate_index(pred), voc.object_index(fixed) + 1
        v = star[f, 1:, k] if as_subject else star[1:, f, k]
        return {voc.objects[i]: float(v[i]) for i in range(len(voc.objects))}

    def make(category: str, question: str, right: str, wrong: list[str]) -> dict[str, Any] | None:
        if len(wrong) < num_options - 1:
            return None
        return {"category": category, "question": question, "options": [right, *wrong[: num_options - 1]], "answer": 0}

    questions: list[dict[str, Any]] = []
    order = rng.sample(rows, len(rows))
    for cat in CATEGORIES:
        made = 0
        for s, o, p in order:
            if made >= per_category:
                break
            sc, oc = names[s], names[o]
            if cat == "relationship":
                wrong = [q for q in voc.predicates[1:] if q not in pair_preds[(s, o)]]
                q = make(cat, f"What is the relationship between the {sc} {box(s)} and the {oc} {box(o)}?", p,
                         _ranked(wrong, pred_prior(sc, oc), scene_preds, rng))
            elif cat == "object":
                wrong = [c for c in voc.objects if c not in out_of[(s, p)]]
                q = make(cat, f"The {sc} {box(s)} is <rel>{p}</rel> which kind of object?", oc,
                         _ranked(wrong, class_prior(p, sc, True), scene_classes, rng))
            elif cat == "subject":
                wrong = [c for c in voc.objects if c not in into[(o, p)]]
                q = make(cat, f"Which kind of object is <rel>{p}</rel> the {oc} {box(o)}?", sc,
                         _ranked(wrong, class_prior(p, oc, False), scene_classes, rng))
            else:
                cands = {(sc, q2, oc) for q2 in voc.predicates[1:]} | {(sc, p, c) for c in voc.objects}
                cands = [t for t in cands if t not in class_triplets]
                prior = {f"{a} {b} {c}": float(star[voc.object_index(a) + 1, voc.object_index(c) + 1,
                                                    voc.predicate_index(b)]) if star is not None else 0.0
                         for a, b, c in cands}
                wrong = _ranked([f"{a} {b} {c}" for a, b, c in cands], prior, set(), rng)
                q = make(cat, "Which of the following relationships exists in the image?", f"{sc} {p} {oc}", wrong)
            if q is not None:
                questions.append(q)
                made += 1
    return questions


def circular_variants(question: dict[str, Any], question_id: str, image: str | None = None) -> list[dict[str, Any]]:
    """One record per rotation of the options, each with its ground-truth letter (the CircularEval set)."""
    opts, right = question["options"], question["answer"]
    out = []
    for r in range(len(opts)):
        rot = opts[r:] + opts[:r]
        gt = (right - r) % len(opts)
        text = question["question"] + "\n" + "\n".join(f"{LETTERS[i]}. {t}" for i, t in enumerate(rot)) + "\n" + INSTRUCTION
        out.append({"question_id": question_id, "image": image, "category": question["category"], "text": text,
                    "options": rot, "ground_truth": LETTERS[gt], "ground_truth_text": rot[gt]})
    return out


def extract_choice(answer: str) -> str | None:
    """The first standalone capital letter A–E of an answer (the official ``extract_choice_label``)."""
    m = re.findall(r"\b([A-E])\b", answer or "")
    return m[0] if m else None


def score_rsrc(records: Iterable[dict[str, Any]], match_option_text: bool = False) -> dict[str, Any]:
    """CircularEval accuracy overall and per category of answered variant records."""
    grouped: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for rec in records:
        gt, ans = str(rec["ground_truth"]).lower(), str(rec.get("answer", ""))
        ok = gt == ans.lower()
        if not ok:
            letter = extract_choice(ans)
            ok = letter is not None and letter.lower() == gt
        if not ok and match_option_text and rec.get("ground_truth_text") is not None:
            ok = " ".join(ans.lower().split()).rstrip(".") == " ".join(str(rec["ground_truth_text"]).lower().split())
        grouped[(str(rec["question_id"]), str(rec["category"]).lower())].append(ok)
    per = {c: [0, 0] for c in CATEGORIES}
    for (_, cat), oks in grouped.items():
        per.setdefault(cat, [0, 0])
        per[cat][0 if all(oks) else 1] += 1
    correct = sum(v[0] for v in per.values())
    total = sum(v[0] + v[1] for v in per.values())
    return {"accuracy": correct / total if total else 0.0, "correct": correct, "total": total,
            "per_category": {c: {"accuracy": v[0] / (v[0] + v[1]) if v[0] + v[1] else 0.0, "correct": v[0],
                                 "total": v[0] + v[1]} for c, v in per.items()}}
