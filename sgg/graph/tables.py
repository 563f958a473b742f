"""Column tables between a SceneGraph and every export format.

Every exporter (networkx, GraphML, node-link JSON, GeoPackage, GeoJSON, GeoParquet) goes through the same
three pieces, built with numpy in one pass so that the formats cannot drift apart:

* ``nodes``: one row per object — ``id, class, class_index, score, cx, cy, w, h, angle, level,
  difficult`` plus ``corners`` (N,4,2) in pixels and ``map_corners`` (N,4,2) in the raster's CRS (without
  a CRS: ``(column, -row)``, the frame QGIS gives an un-georeferenced image, so footprints overlay it);
* ``edges``: one row per relation — ``key, subject, object, predicate, predicate_index, score, rank,
  source``. Annotations give one edge per labelled row (``source='annotation'``), predictions one edge per
  kept triplet of :meth:`SceneGraph.triplets` (``source='model'``), topological edges
  (:mod:`sgg.graph.topology`) ``source='geometry'``;
* ``meta``: the run record (vocabulary, CRS, transform, image, model metadata, sgg version, options).

:func:`scene_from_tables` inverts them. Box numbers are float32 in the SceneGraph and stored as float64,
so a round trip is exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sgg.ops import box_to_corners

SOURCES = ("annotation", "model", "geometry")
NODE_COLUMNS = ("id", "class", "class_index", "score", "cx", "cy", "w", "h", "angle", "level", "difficult")
EDGE_COLUMNS = ("key", "subject", "object", "predicate", "predicate_index", "score", "rank", "source")
# with full_scores=True (predictions): the pair row, its pair score and its whole predicate score vector
SCORE_COLUMNS = ("pair", "pair_score", "predicate_scores")
# GIS geometry of a scene without a CRS is (column, -row): QGIS shows an un-georeferenced image over
# x in [0, width], y in [-height, 0], so the exported footprints land on the image.
PIXEL_FRAME = np.array([1.0, -1.0])


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """(N,5) ``cx, cy, w, h, angle`` → (N,4,2) float64 corners: :func:`sgg.ops.box_to_corners` on numpy."""
    b = torch.as_tensor(np.asarray(boxes, dtype=np.float64).reshape(-1, 5))
    return box_to_corners(b).numpy()


def scene_crs(sg: Any) -> str | None:
    """The CRS (WKT) of a scene's map coordinates; None when it is in pixel coordinates (no georeference,
    or one without a CRS). The one test of "is this scene on a map" for every GIS writer."""
    g = sg.georef
    return g.crs_wkt if g is not None and g.has_crs else None


def scene_kind(sg: Any) -> str:
    """``prediction`` (predicate scores), ``detection`` (objects from a detector or detector results, no
    relations scored) or ``annotation`` (ground truth)."""
    if sg.predicate_scores is not None:
        return "prediction"
    meta = sg.metadata or {}
    if "detector" in meta or meta.get("source") == "dota-results":
        return "detection"
    return "annotation"


def scene_meta(sg: Any, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run record of a scene graph: everything except nodes and edges."""
    from sgg import __version__

    g = sg.georef
    return {
        "sgg_version": __version__,
        "kind": scene_kind(sg),
        "coordinates": "pixel" if scene_crs(sg) is None else "map",
        "pixel_frame": None if scene_crs(sg) is not None else "x = column, y = -row (QGIS frame of an un-georeferenced image)",
        "has_georef": g is not None,
        "crs_wkt": None if g is None else g.crs_wkt,
        "transform": None if g is None else list(g.transform),
        "georef_source": None if g is None else g.source,
        "vocabulary": sg.vocabulary.to_dict(),
        "image_path": sg.image_path,
        "image_size": None if sg.image_size is None else list(sg.image_size),
        "metadata": dict(sg.metadata),
        "has_difficult": sg.difficult is not None,
        "has_levels": sg.detections.levels is not None,
        "has_pair_scores": sg.pairs.scores is not None,
        "num_objects": len(sg.detections),
        "options": dict(options or {}),
    }


def scene_nodes(sg: Any) -> dict[str, np.ndarray]:
    """Per-object columns (see module docstring)."""
    det = sg.detections
    n = len(det)
    boxes = det.boxes.tensor.detach().cpu().double().numpy().reshape(n, 5)
    labels = det.labels.detach().cpu().numpy().astype(np.int64)
    names = np.asarray(sg.vocabulary.objects, dtype=object)
    corners = box_corners(boxes)
    nodes: dict[str, np.ndarray] = {
        "id": np.arange(n, dtype=np.int64),
        "class": names[labels] if n else np.zeros(0, dtype=object),
        "class_index": labels,
        "score": det.scores.detach().cpu().double().numpy(),
        "cx": boxes[:, 0], "cy": boxes[:, 1], "w": boxes[:, 2], "h": boxes[:, 3], "angle": boxes[:, 4],
        "level": (np.full(n, -1, dtype=np.int64) if det.levels is None
                  else det.levels.detach().cpu().numpy().astype(np.int64)),
        "difficult": (np.zeros(n, dtype=bool) if sg.difficult is None
                      else sg.difficult.detach().cpu().numpy().astype(bool)),
        "corners": corners,
    }
    nodes["map_corners"] = sg.georef.pixel_to_map(corners) if scene_crs(sg) is not None else corners * PIXEL_FRAME
    return nodes


def scene_edges(
    sg: Any,
    top_k: int | None = None,
    per_pair: int = 1,
    min_score: float | None = None,
    topology: bool = False,
    distance: float = 0.0,
    full_scores: bool = False,
) -> dict[str, np.ndarray]:
    """Per-relation columns: labelled rows or kept triplets, then topological edges on request.

    ``full_scores`` (predictions only) adds :data:`SCORE_COLUMNS` to model edges, so that the pair set,
    pair scores and predicate score matrix of every pair with a kept triplet can be rebuilt exactly."""
    p = sg.pairs.pairs.detach().cpu().numpy().astype(np.int64).reshape(-1, 2)
    if sg.predicate_scores is None:
        lab = (np.zeros(len(p), dtype=np.int64) if sg.predicate_labels is None
               else sg.predicate_labels.detach().cpu().numpy().astype(np.int64))
        rows = np.flatnonzero(lab > 0)
        if top_k is not None:
            rows = rows[:top_k]
        subj, obj, pred = p[rows, 0], p[rows, 1], lab[rows]
        score = np.ones(len(rows))
        key = rows.astype(np.int64)
        source = "annotation"
    else:
        t = sg.triplets(top_k=top_k, per_pair=per_pair)
        subj, obj = t["subject"].cpu().numpy().astype(np.int64), t["object"].cpu().numpy().astype(np.int64)
        pred = t["predicate"].cpu().numpy().astype(np.int64)
        score = t["score"].detach().cpu().double().numpy()
        if min_score is not None:
            keep = score >= float(min_score)
            subj, obj, pred, score = subj[keep], obj[keep], pred[keep], score[keep]
        key = np.arange(len(subj), dtype=np.int64)
        source = "model"
        if full_scores:
            rows = _triplet_rows(sg, top_k, per_pair)
            if min_score is not None:
                rows = rows[keep]
            if not (np.array_equal(p[rows, 0], subj) and np.array_equal(p[rows, 1], obj)):
                raise RuntimeError("internal: triplet rows disagree with SceneGraph.triplets")
            ps = sg.predicate_scores.detach().cpu().double().numpy()
            pair_sc = (np.full(len(p), np.nan) if sg.pairs.scores is None
                       else sg.pairs.scores.detach().cpu().double().numpy())
            scores_cols = {"pair": rows, "pair_score": pair_sc[rows],
                           "predicate_scores": _object_rows(ps[rows])}
    m = len(subj)
    names = np.asarray(sg.vocabulary.predicates, dtype=object)
    edges: dict[str, np.ndarray] = {
        "key": key,
        "subject": subj,
        "object": obj,
        "predicate": names[pred] if m else np.zeros(0, dtype=object),
        "predicate_index": pred,
        "score": score,
        "rank": np.arange(1, m + 1, dtype=np.int64),
        "source": np.full(m, source, dtype=object),
    }
    if full_scores and sg.predicate_scores is not None:
        edges.update(scores_cols)
    if topology:
        from sgg.graph.topology import topological_relations

        topo = topological_relations(sg, distance=distance)
        k = len(topo["subject"])
        start = int(key.max()) + 1 if m else 0
        extra = {
            "key": np.arange(start, start + k, dtype=np.int64),
            "subject": topo["subject"], "object": topo["object"], "predicate": topo["predicate"].astype(object),
            "predicate_index": np.full(k, -1, dtype=np.int64), "score": np.ones(k),
            "rank": np.zeros(k, dtype=np.int64), "source": np.full(k, "geometry", dtype=object),
            "pair": np.full(k, -1, dtype=np.int64), "pair_score": np.full(k, np.nan),
            "predicate_scores": np.full(k, None, dtype=object),
        }
        edges = {c: np.concatenate([v, extra[c]]) for c, v in edges.items()}
    return edges


def _object_rows(a: np.ndarray) -> np.ndarray:
    out = np.empty(len(a), dtype=object)
    out[:] = a.tolist()
    return out


def _triplet_rows(sg: Any, top_k: int | None, per_pair: int) -> np.ndarray:
    """Pair row of each triplet, in the order of :meth:`SceneGraph.triplets` (same ranking rule)."""
    import torch

    fg = sg.predicate_scores[:, 1:]
    k = min(per_pair, fg.shape[1])
    m = fg.shape[0]
    if not m:
        return np.zeros(0, dtype=np.int64)
    sc = fg.topk(k, dim=1).values
    if sg.pairs.scores is not None:
        sc = sc * sg.pairs.scores[:, None]
    rows = torch.arange(m).repeat_interleave(k)
    order = torch.argsort(sc.reshape(-1), descending=True, stable=True)
    if top_k is not None:
        order = order[:top_k]
    return rows[order].numpy().astype(np.int64)


def scene_tables(sg: Any, **options: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """``(nodes, edges, meta)`` of a SceneGraph; options are those of :func:`scene_edges`."""
    opts = {"top_k": None, "per_pair": 1, "min_score": None, "topology": False, "distance": 0.0,
            "full_scores": False}
    unknown = set(options) - set(opts)
    if unknown:
        raise TypeError(f"unknown export options: {sorted(unknown)}")
    opts.update(options)
    return scene_nodes(sg), scene_edges(sg, **opts), scene_meta(sg, opts)


# --------------------------------------------------------------------------------------------------
# Inverse
# --------------------------------------------------------------------------------------------------
def _vocabulary(meta: dict[str, Any], classes: np.ndarray, predicates: np.ndarray):
    from sgg.structures import BACKGROUND, Vocabulary

    voc = meta.get("vocabulary")
    if voc:
        return Vocabulary.from_dict(voc)
    star = Vocabulary.star()
    names = {str(c) for c in classes}
    preds = {str(p) for p in predicates} - {BACKGROUND}
    if names <= set(star.objects) and preds <= set(star.predicates):
        return star
    return Vocabulary(tuple(sorted(names)) or ("object",), tuple(sorted(preds)))


def _index(names: np.ndarray, table: tuple[str, ...], what: str, path: Any) -> np.ndarray:
    from sgg.errors import SggInputError

    if len(names) == 0:
        return np.zeros(0, dtype=np.int64)
    uniq, inv = np.unique(np.asarray(names).astype(str), return_inverse=True)
    lookup = {n: i for i, n in enumerate(table)}
    missing = [u for u in uniq if u not in lookup]
    if missing:
        raise SggInputError(f"{what} {missing[:5]} not in the vocabulary", path=path)
    return np.asarray([lookup[u] for u in uniq], dtype=np.int64)[inv.reshape(-1)]


def _decode_list(v: Any) -> Any:
    import json

    return json.loads(v) if isinstance(v, (str, bytes)) else v


def scene_from_tables(nodes: dict[str, Any], edges: dict[str, Any], meta: dict[str, Any], path: Any = None):
    """Rebuild the SceneGraph from node/edge columns and the run record (geometry edges are skipped)."""
    import torch

    from sgg.errors import SggInputError
    from sgg.structures import Detections, GeoReference, OrientedBoxes, PairSet, SceneGraph

    try:
        ids = np.asarray(nodes["id"], dtype=np.int64).reshape(-1)
        order = np.argsort(ids, kind="stable")
        col = {c: np.asarray(nodes[c])[order] for c in ("cx", "cy", "w", "h", "angle", "class", "score")}
    except KeyError as exc:
        raise SggInputError(f"object table lacks column {exc.args[0]!r}", path=path) from None
    ids = ids[order]
    n = len(ids)
    if n and (ids[0] < 0 or (np.diff(ids) == 0).any()):
        raise SggInputError("object ids must be unique non-negative integers", path=path)
    remap = np.full(int(ids.max()) + 1 if n else 0, -1, dtype=np.int64)
    remap[ids] = np.arange(n)

    src = np.asarray(edges.get("source", np.full(len(edges.get("subject", [])), "model")), dtype=object)
    keep = src != "geometry"
    e = {c: np.asarray(v)[keep] for c, v in edges.items()}
    if "key" in e and len(e["key"]):
        eo = np.argsort(np.asarray(e["key"], dtype=np.int64), kind="stable")
        e = {c: v[eo] for c, v in e.items()}
    m = int(keep.sum())
    voc = _vocabulary(meta, col["class"], e.get("predicate", np.zeros(0)))

    boxes = np.stack([col[c].astype(np.float64) for c in ("cx", "cy", "w", "h", "angle")], axis=1).reshape(n, 5)
    labels = _index(col["class"], voc.objects, "object classes", path)
    levels = None
    if meta.get("has_levels", "level" in nodes and n and bool((np.asarray(nodes["level"]) >= 0).all())):
        levels = torch.as_tensor(np.asarray(nodes["level"])[order].astype(np.int64))
    det = Detections(
        OrientedBoxes(torch.as_tensor(boxes, dtype=torch.float32)),
        torch.as_tensor(labels),
        torch.as_tensor(col["score"].astype(np.float64), dtype=torch.float32),
        levels=levels,
    )
    difficult = None
    if meta.get("has_difficult") and "difficult" in nodes:
        difficult = torch.as_tensor(np.asarray(nodes["difficult"])[order].astype(bool))

    if m:
        subj = np.asarray(e["subject"], dtype=np.int64)
        obj = np.asarray(e["object"], dtype=np.int64)
        if subj.max() >= len(remap) or obj.max() >= len(remap) or (remap[subj] < 0).any() or (remap[obj] < 0).any():
            raise SggInputError("a relation names an object id that is not in the object table", path=path)
        pairs = np.stack([remap[subj], remap[obj]], axis=1)
        pred = _index(e["predicate"], voc.predicates, "predicates", path)
    else:
        pairs, pred = np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    pred_scores = pred_labels = pair_scores = None
    full = meta.get("kind") == "prediction" and "predicate_scores" in e and "pair" in e
    if full and m:
        # full score vectors: one row per pair (first edge of each pair row), exactly as exported
        _, first = np.unique(np.asarray(e["pair"], dtype=np.int64), return_index=True)
        pairs = pairs[first]
        vecs = [_decode_list(v) for v in np.asarray(e["predicate_scores"])[first]]
        pred_scores = torch.as_tensor(np.asarray(vecs, dtype=np.float64).reshape(len(first), -1), dtype=torch.float32)
        if pred_scores.shape[1] != voc.num_predicates:
            raise SggInputError(f"predicate score vectors have {pred_scores.shape[1]} entries, the vocabulary "
                                f"{voc.num_predicates}", path=path)
        if meta.get("has_pair_scores") and "pair_score" in e:
            pair_scores = torch.as_tensor(np.asarray(e["pair_score"], dtype=np.float64)[first], dtype=torch.float32)
    elif meta.get("kind", "annotation") == "prediction":
        # One row per exported triplet, its score in its predicate column: triplets() gives them back.
        pred_scores = torch.zeros(m, voc.num_predicates)
        if m:
            sc = torch.as_tensor(np.asarray(e["score"], dtype=np.float64), dtype=torch.float32)
            pred_scores[torch.arange(m), torch.as_tensor(pred)] = sc
    else:
        pred_labels = torch.as_tensor(pred)

    georef = None
    if meta.get("has_georef"):
        tr = meta.get("transform") or (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
        georef = GeoReference(meta.get("crs_wkt"), tuple(float(v) for v in tr), meta.get("georef_source"))
    size = meta.get("image_size")
    try:
        return SceneGraph(
            det,
            PairSet(torch.as_tensor(pairs), pair_scores),
            predicate_scores=pred_scores,
            predicate_labels=pred_labels,
            vocabulary=voc,
            georef=georef,
            metadata=dict(meta.get("metadata") or {}),
            image_path=meta.get("image_path"),
            image_size=None if size is None else (int(size[0]), int(size[1])),
            difficult=difficult,
        )
    except ValueError as exc:
        raise SggInputError(str(exc), path=path) from None
