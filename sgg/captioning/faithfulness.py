"""Caption faithfulness: which objects, counts and relations a text asserts, checked against the graph.

Reads free English (sgg's captions, an LLM's, a person's) or FIT-RS tagged text. Tags are unwrapped first
(``<ref>ships</ref>`` → ``ships``, ``<rel>p</rel>`` and task-2 ``<p>`` → ``p``, boxes dropped). Then, per
sentence: predicate phrases are found first (every surface form sgg writes, longest first; so "parking in
the same apron with" is not read as an apron), class names in the rest (display and raw names, common
synonyms such as "plane" or "pier", singular and plural, longest first: "car park" before "car"). A relation is (last class before the predicate,
predicate, first class after it), with the counts written before each; "it" stands for the text's topic
(the object a region-level answer starts with). Relations written with boxes are about those
objects (instance-level): their numbers are not checked as group counts. Numbers before a class outside relation sentences are
count claims ("531 ships", "of the 531 ships"); inside a relation they are the relation's subject/object
counts, checked against the number of distinct subjects/objects of that (class, predicate, class) group.

Verdicts per assertion: ``supported``; ``contradicted`` (a wrong count; a relation between two classes the
graph relates by other predicates only; a relation with wrong counts); ``unsupported`` (an object class the
graph does not hold, a relation between classes it never relates). Per aspect: precision (supported /
asserted), recall (graph facts stated / graph facts: classes, class counts, (class, predicate, class)
types) and the hallucination rate (not supported / asserted).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from functools import lru_cache
from typing import Any

from sgg.structures import SceneGraph, Vocabulary

from .language import WORD_NUMBERS, class_surfaces, predicate_surfaces
from .tasks import labelled, relation_groups

_BOX = "\u00a7"  # marks where a box was: relations about boxed objects are instance-level
_NUM = r"(\d[\d,]*|" + "|".join(w for w in WORD_NUMBERS if w not in ("a", "an", "single")) + r")"


@lru_cache(maxsize=8)
def _patterns(vocab: Vocabulary) -> tuple[re.Pattern, dict[str, str], re.Pattern, dict[str, str]]:
    pred_map: dict[str, str] = {}
    for p in vocab.predicates[1:]:
        for s in predicate_surfaces(p):
            pred_map.setdefault(s.lower(), p)
    cls_map: dict[str, str] = {}
    for c in vocab.objects:
        for s in class_surfaces(c):
            cls_map.setdefault(s.lower(), c)
    alt = lambda keys: r"\b(" + "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True)) + r")\b"
    return re.compile(alt(pred_map), re.IGNORECASE), pred_map, re.compile(alt(cls_map), re.IGNORECASE), cls_map


def _untag(text: str) -> str:
    t = re.sub(r"<rbox>.*?</rbox>", f" {_BOX} ", text or "", flags=re.DOTALL)
    t = re.sub(r"\{<[^{}]*>\}", f" {_BOX} ", t)
    t = re.sub(r"</?(ref|rel)>", " ", t)
    t = re.sub(r"<([^<>]*)>", r" \1 ", t)  # task-2 "<predicate>"
    return re.sub(r"[ \t]+", " ", t)


def _number(s: str | None) -> int | None:
    if s is None:
        return None
    s = s.lower().replace(",", "")
    return int(s) if s.isdigit() else WORD_NUMBERS.get(s)


def extract_claims(text: str, vocabulary: Vocabulary | None = None) -> dict[str, list]:
    """Object mentions, count claims ``(class, n)`` and relation claims ``(subj, pred, obj, n_subj, n_obj,
    instance)`` asserted by ``text``."""
    vocab = vocabulary or Vocabulary.star()
    pred_re, pred_map, cls_re, cls_map = _patterns(vocab)
    plain = _untag(text)
    sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n+", plain) if s.strip()]
    objects: list[str] = []
    counts: list[tuple[str, int]] = []
    relations: list[tuple[str, str, str, int | None, int | None, bool]] = []
    topic = None
    for k, sent in enumerate(sentences):
        boxed = _BOX in sent
        sent = sent.replace(_BOX, " ")
        preds = list(pred_re.finditer(sent))
        masked = sent
        for m in preds:
            masked = masked[: m.start()] + " " * (m.end() - m.start()) + masked[m.end():]
        mentions = []  # (start, end, class, count)
        for m in cls_re.finditer(masked):
            before = masked[: m.start()]
            n = re.search(_NUM + r"\s+(?:other\s+)?$", before, re.IGNORECASE)
            mentions.append((m.start(), m.end(), cls_map[m.group(1).lower()], _number(n.group(1)) if n else None))
        objects += [c for _, _, c, n in mentions if n != 0]  # "no stadiums" asserts absence, not presence
        if k == 0 and mentions and re.search(r"part of the image", sent):
            topic = mentions[0][2]
        if not preds:
            counts += [(c, n) for _, _, c, n in mentions if n is not None]
            continue
        for m in preds:
            before = [x for x in mentions if x[1] <= m.start()]
            after = [x for x in mentions if x[0] >= m.end()]
            subj = before[-1] if before else None
            obj = after[0] if after else None
            inst = boxed
            if subj is None and topic and re.search(r"\bit\b", sent[: m.start()], re.IGNORECASE):
                subj, inst = (0, 0, topic, None), True
            if obj is None and topic and re.search(r"\bit\b", sent[m.end():], re.IGNORECASE):
                obj, inst = (0, 0, topic, None), True
            if subj is None or obj is None:
                continue
            relations.append((subj[2], pred_map[m.group(1).lower()], obj[2], subj[3], obj[3], inst))
    return {"objects": objects, "counts": counts, "relations": relations}


def _rates(supported: int, asserted: int, found: int, total: int) -> dict[str, float]:
    return {"precision": supported / asserted if asserted else 1.0, "recall": found / total if total else 1.0,
            "hallucination_rate": (asserted - supported) / asserted if asserted else 0.0}


def check_faithfulness(text: str, graph: SceneGraph, top_k: int | None = None) -> dict[str, Any]:
    """What ``text`` asserts about ``graph`` and whether the graph supports it (see the module docstring)."""
    g = labelled(graph, top_k=top_k)
    vocab = g.vocabulary
    names = [vocab.objects[i] for i in g.detections.labels.tolist()]
    have = Counter(names)
    claims = extract_claims(text, vocab)
    groups = relation_groups(g, names)
    related = defaultdict(set)
    for sc, p, oc in groups:
        related[(sc, oc)].add(p)

    # objects
    asserted_obj = list(dict.fromkeys(claims["objects"]))
    obj = {"supported": [c for c in asserted_obj if have[c]], "unsupported": [c for c in asserted_obj if not have[c]],
           "missing": [c for c in have if c not in asserted_obj]}
    obj.update(_rates(len(obj["supported"]), len(asserted_obj), len(obj["supported"]), len(have)))

    # counts
    cnt = {"supported": [], "contradicted": []}
    for c, n in dict.fromkeys(claims["counts"]):
        (cnt["supported"] if have[c] == n else cnt["contradicted"]).append(
            {"class": c, "stated": n, "graph": have[c]})
    right = {d["class"] for d in cnt["supported"]}
    cnt.update(_rates(len(cnt["supported"]), len(cnt["supported"]) + len(cnt["contradicted"]), len(right), len(have)))

    # relations
    rel = {"supported": [], "contradicted": [], "unsupported": []}
    for sc, p, oc, ns, no, inst in dict.fromkeys(claims["relations"]):
        row = {"subject": sc, "predicate": p, "object": oc}
        if ns is not None and not inst:
            row["stated_subjects"] = ns
        if no is not None and not inst:
            row["stated_objects"] = no
        if (sc, p, oc) in groups:
            subs, objs = groups[(sc, p, oc)]
            bad = [f"{w} {n} stated, {len(real)} in the graph" for w, n, real in
                   (("subjects", row.get("stated_subjects"), subs), ("objects", row.get("stated_objects"), objs))
                   if n is not None and n != len(real)]
            if bad:
                rel["contradicted"].append({**row, "why": "; ".join(bad)})
            else:
                rel["supported"].append(row)
        elif related.get((sc, oc)):
            rel["contradicted"].append({**row, "why": f"the graph relates {sc} to {oc} only by "
                                                      f"{', '.join(sorted(related[(sc, oc)]))}"})
        else:
            rel["unsupported"].append({**row, "why": f"the graph has no relation from {sc} to {oc}"})
    n_rel = sum(len(v) for v in rel.values())
    stated_types = {(r["subject"], r["predicate"], r["object"]) for r in rel["supported"]}
    rel.update(_rates(len(rel["supported"]), n_rel, len(stated_types), len(groups)))

    asserted = len(asserted_obj) + len(cnt["supported"]) + len(cnt["contradicted"]) + n_rel
    wrong = len(obj["unsupported"]) + len(cnt["contradicted"]) + len(rel["contradicted"]) + len(rel["unsupported"])
    return {"objects": obj, "counts": cnt, "relations": rel, "assertions": asserted,
            "hallucination_rate": wrong / asserted if asserted else 0.0}


def format_report(report: dict[str, Any]) -> str:
    """A plain-text summary of :func:`check_faithfulness`."""
    lines = [f"assertions {report['assertions']}, hallucination rate {report['hallucination_rate']:.3f}"]
    for aspect in ("objects", "counts", "relations"):
        r = report[aspect]
        lines.append(f"  {aspect:<9} precision {r['precision']:.3f}  recall {r['recall']:.3f}  "
                     f"hallucination {r['hallucination_rate']:.3f}")
        for verdict in ("contradicted", "unsupported"):
            for item in r.get(verdict, []):
                lines.append(f"    {verdict}: {item}")
    return "\n".join(lines)
