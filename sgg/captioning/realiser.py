"""Captions from scene graphs: a deterministic English realiser (the offline default) and the LLM route.

:func:`describe` writes, from the graph alone: an overview (image size and resolution, counts per class
with correct plurals), the layout of the main classes by image part (3 × 3 grid), the most salient
relations (the (subject class, predicate, object class) groups with most distinct subjects, at most two per
predicate), and for graphs without relations, how close the most frequent class lies to the largest
structures; with a known resolution, the length range of the commonest class. Predicted graphs are cut to their ``top_k`` best triplets first. Same graph, same text.

:func:`caption` picks the backend: ``"template"`` (this realiser) or ``"openai"`` (any OpenAI-compatible
chat server, :mod:`sgg.captioning.llm`, given the graph as structured context).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from sgg.structures import SceneGraph

from .language import article, counted, noun, number, predicate_phrase, sentence_case
from .tasks import image_part, labelled, relation_groups

MAX_CLASSES = 6
MAX_RELATIONS = 5


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _size(graph: SceneGraph) -> tuple[float, float]:
    if graph.image_size is not None:
        return float(graph.image_size[0]), float(graph.image_size[1])
    if len(graph.detections):
        env = graph.detections.boxes.envelope()
        return float(env[:, 2].max()), float(env[:, 3].max())
    return 1.0, 1.0


def _gsd(graph: SceneGraph) -> float | None:
    g = (graph.metadata or {}).get("gsd")
    try:
        return float(g) if g is not None and float(g) > 0 else None
    except (TypeError, ValueError):
        return None


def _overview(graph: SceneGraph, names: list[str]) -> str:
    w, h = _size(graph)
    gsd = _gsd(graph)
    where = f"This {int(w):,} × {int(h):,} px image" + (f" ({gsd:.2g} m per pixel)" if gsd else "")
    if not names:
        return where + " shows no objects of the vocabulary."
    counts = Counter(names).most_common()
    shown = [counted(c, n) for c, n in counts[:MAX_CLASSES]]
    rest = counts[MAX_CLASSES:]
    if rest:
        k = sum(n for _, n in rest)
        shown.append(f"{number(k)} other object{'s' if k != 1 else ''} of {number(len(rest))} "
                     f"kind{'s' if len(rest) != 1 else ''} ({', '.join(noun(c, n) for c, n in rest[:4])}"
                     f"{', …' if len(rest) > 4 else ''})")
    return f"{where} shows {_join(shown)}."


def _layout(graph: SceneGraph, names: list[str]) -> str:
    """Where the main classes are: one part, two parts, or spread out."""
    if not names:
        return ""
    w, h = _size(graph)
    ctr = graph.detections.boxes.centers.tolist()
    parts = [image_part(x, y, w, h) for x, y in ctr]
    out = []
    for cls, n in Counter(names).most_common(3):
        where = Counter(p for p, c in zip(parts, names) if c == cls).most_common()
        top, k = where[0]
        if n == 1:
            out.append(f"the {noun(cls, 1)} is in the {top} part")
        elif k == n:
            out.append(f"{'both' if n == 2 else 'all ' + number(n)} {noun(cls, n)} are in the {top} part")
        elif k >= 0.6 * n:
            out.append(f"most of the {noun(cls, n)} are in the {top} part")
        elif len(where) >= 6 and k < 0.35 * n:
            out.append(f"the {noun(cls, n)} are spread across the whole image")
        else:
            out.append(f"the {noun(cls, n)} are mainly in the {where[0][0]} and {where[1][0]} parts")
    text = sentence_case(_join(out)) + "."
    gsd = _gsd(graph)
    cls, n = Counter(names).most_common(1)[0]
    if gsd and n >= 3:  # sizes of the main class, in metres
        lab = np.array(names)
        wh = graph.detections.boxes.tensor[:, 2:4].numpy()[lab == cls]
        length = wh.max(axis=1) * gsd
        lo, med, hi = (float(np.percentile(length, q)) for q in (5, 50, 95))
        if round(lo) == round(hi):
            text += f" The {noun(cls, n)} are about {med:.0f} m long."
        else:
            text += f" The {noun(cls, n)} measure {lo:.0f} to {hi:.0f} m in length (median {med:.0f} m)."
    return text


def _relations(graph: SceneGraph, names: list[str]) -> str:
    """The groups of relations with most distinct subjects, as sentences."""
    lab = graph.predicate_labels.tolist() if graph.predicate_labels is not None else []
    groups = relation_groups(graph, names)
    if not groups:
        return ""
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1][0]), -len(kv[1][1]), kv[0]))
    per_pred: Counter = Counter()
    sentences = []
    for (sc, pred, oc), (subs, objs) in ranked:
        if per_pred[pred] >= 2:
            continue
        per_pred[pred] += 1
        ns, no = len(subs), len(objs)
        subj = counted(sc, ns) if ns > 1 else article(noun(sc, 1))
        if oc == sc:
            obj = "another " + noun(oc, 1) if no == 1 else f"other {noun(oc, 2)}"
        else:
            obj = f"the {noun(oc, 1)}" if no == 1 and Counter(names)[oc] == 1 else (
                article(noun(oc, 1)) if no == 1 else counted(oc, no))
        sentences.append(sentence_case(f"{subj} {predicate_phrase(pred, ns > 1)} {obj}."))
        if len(sentences) >= MAX_RELATIONS:
            break
    n_rel = sum(1 for k in lab if k > 0)
    head = f"The graph holds {number(n_rel)} relation{'s' if n_rel != 1 else ''}."
    return " ".join([head, *sentences])


def _proximity(graph: SceneGraph, names: list[str]) -> str:
    """Without relations: how many objects of the commonest class lie close to one of the largest objects."""
    if not names or len(set(names)) < 2:
        return ""
    import shapely

    from sgg.ops import box_to_shapely

    counts = Counter(names)
    common = counts.most_common(1)[0][0]
    area = graph.detections.boxes.area().numpy()
    lab = np.array(names)
    other = [c for c in counts if c != common]
    big = max(other, key=lambda c: float(area[lab == c].mean()))
    if float(area[lab == big].mean()) <= float(area[lab == common].mean()):
        return ""
    polys = box_to_shapely(graph.detections.boxes.tensor)
    a, b = polys[lab == common], polys[lab == big]
    d = shapely.distance(a[:, None], b[None, :]).min(axis=1)
    gsd = _gsd(graph)
    limit_px = 5.0 / gsd if gsd else 20.0
    near = int((d <= limit_px).sum())
    if near == 0:
        return ""
    unit = "5 m" if gsd else "20 px"
    n = counts[common]
    return (f"{sentence_case(number(near))} of the {number(n)} {noun(common, n)} lie within {unit} of "
            f"{article(noun(big, 1))}.")


def describe(graph: SceneGraph, top_k: int | None = 100, min_score: float | None = None) -> str:
    """A deterministic English caption of ``graph`` (counts, layout, salient relations)."""
    g = labelled(graph, top_k=top_k, min_score=min_score)
    names = [g.vocabulary.objects[i] for i in g.detections.labels.tolist()]
    parts = [_overview(g, names), _layout(g, names)]
    rel = _relations(g, names)
    parts.append(rel if rel else _proximity(g, names))
    return " ".join(p for p in parts if p)


def caption(graph: SceneGraph, backend: Any = "template", **kw: Any) -> str:
    """Describe ``graph`` in English.

    ``backend="template"``: :func:`describe` (offline, deterministic; ``top_k``, ``min_score``).
    ``backend="openai"``: an OpenAI-compatible chat server (``url``, ``model``, ``api_key``, ``timeout``,
    ``retries``; defaults from ``SGG_LLM_URL``/``SGG_LLM_MODEL``/``SGG_LLM_API_KEY``), given the graph as
    JSON context. Any object with a ``caption(graph)`` method is used as is.
    """
    if hasattr(backend, "caption"):
        return backend.caption(graph)
    if backend == "template":
        return describe(graph, **kw)
    if backend in ("openai", "llm"):
        from .llm import OpenAIChatBackend

        top_k = kw.pop("top_k", 100)
        return OpenAIChatBackend(**kw).caption(graph, top_k=top_k)
    raise ValueError(f"caption: unknown backend {backend!r}; use 'template' or 'openai'")
