"""sgg's native scene-graph JSON (``format_version: "sgg-scene/1"``), one file per scene.

Layout (full schema: ``sgg/datasets/scene_graph.schema.json``)::

    {"format_version": "sgg-scene/1",
     "image": {"path": "../scenes/s0001.tif", "width": 4096, "height": 4096},
     "crs": "<WKT or null>", "transform": [a, b, c, d, e, f] or null,
     "objects": [{"id": 0, "class": "ship", "box": {"cx": .., "cy": .., "w": .., "h": .., "angle": ..},
                  "difficult": false, "score": 1.0}, ...],
     "relations": [{"subject": 0, "predicate": "docked alongside with", "object": 1}, ...],
     "metadata": {"gsd": 0.5, ...}}

A prediction (a SceneGraph with ``predicate_scores``) is stored as its ranked, scored triplets: the best
``top_k`` rows of ``SceneGraph.triplets(top_k, per_pair)`` (optionally above ``min_score``), each relation
with a ``score``, and a ``"prediction": {"top_k", "per_pair", "min_score", "candidate_pairs"}`` block. There
is no default K: writing every candidate pair's argmax would turn 10,000 candidates into 10,000
"relations", so a prediction without an explicit ``top_k`` is refused. Read back, the kept triplets become
``predicate_scores`` over the distinct pairs (score in its predicate's column, the rest of the row to
background), so ``triplets()`` gives the same ranked rows again.

Files written by sgg end in ``.scene.json`` (``sgg.graph.formats``); annotations in plain ``.json`` read too.

Boxes are level-0 pixels, radians, le90. The image path is written relative to the JSON file when both
live on the same drive, and read back as a normalised path (relative paths resolve against the JSON's
directory). Names resolve against the vocabulary passed in, else the file's own ``vocabulary`` block, else
STAR's. Validation is by hand (``jsonschema`` is not a dependency); every error names the file and record.
``metadata.box_type`` (``"obb"`` by default, ``"hbb"`` for horizontal-box labels, as ``read_dota_labels``
records) says how far the boxes can be trusted; objects wholly outside ``image.width``/``height`` are warned.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sgg.datasets.aliases import map_names
from sgg.errors import SggInputError
from sgg.io.atomic import atomic_write_text

FORMAT_VERSION = "sgg-scene/1"
SCHEMA_PATH = Path(__file__).with_name("scene_graph.schema.json")



def _num(value: Any, path: Path, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SggInputError(f"expected a finite number, got {value!r}", path=path, where=where)
    if positive and value <= 0:
        raise SggInputError(f"must be > 0 (zero-area box), got {value!r}", path=path, where=where)
    return float(value)


def _require(obj: Any, kind: type | tuple, path: Path, where: str) -> Any:
    if not isinstance(obj, kind):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise SggInputError(f"expected a JSON {name}, got {type(obj).__name__}", path=path, where=where)
    return obj


def _warn_outside(boxes: np.ndarray, image_size: tuple[int, int], path: Path) -> None:
    """Warn (file and ``objects[i]``) about objects whose envelope lies wholly outside the image; kept, as
    relations may refer to them (a wrong image size, or predictions of another image)."""
    from sgg.ops import outside_image

    w, h = image_size
    out = outside_image(torch.from_numpy(boxes), image_size).nonzero().flatten().tolist()
    if out:
        named = ", ".join(f"objects[{i}]" for i in out[:10]) + (", …" if len(out) > 10 else "")
        warnings.warn(f"{path}: {len(out)} object(s) wholly outside the {w}×{h} image: {named}", stacklevel=3)


def scene_from_dict(data: Mapping[str, Any], vocabulary=None, *, path: str | os.PathLike = "<memory>"):
    """Build a SceneGraph from a parsed native JSON document (see module docstring)."""
    from sgg.structures import Detections, GeoReference, OrientedBoxes, PairSet, SceneGraph, Vocabulary

    path = Path(path)
    _require(data, dict, path, "document")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise SggInputError(
            f"unsupported format_version {version!r}; this sgg reads {FORMAT_VERSION!r}", path=path, where="format_version"
        )
    if vocabulary is None:
        if data.get("vocabulary") is not None:
            try:
                vocabulary = Vocabulary.from_dict(data["vocabulary"])
            except ValueError as exc:
                raise SggInputError(str(exc), path=path, where="vocabulary") from None
        else:
            vocabulary = Vocabulary.star()

    objects = _require(data.get("objects", []), list, path, "objects")
    n = len(objects)
    boxes = np.zeros((n, 5), dtype=np.float64)
    names, ids, difficult, scores = [], {}, np.zeros(n, dtype=bool), np.ones(n, dtype=np.float32)
    for i, obj in enumerate(objects):
        where = f"objects[{i}]"
        _require(obj, dict, path, where)
        for key in ("id", "class", "box"):
            if key not in obj:
                raise SggInputError(f"missing required field {key!r}", path=path, where=where)
        oid = obj["id"]
        if isinstance(oid, bool) or not isinstance(oid, (int, str)):
            raise SggInputError(f"id must be an integer or string, got {oid!r}", path=path, where=where)
        if oid in ids:
            raise SggInputError(f"duplicate object id {oid!r} (also objects[{ids[oid]}])", path=path, where=where)
        ids[oid] = i
        names.append(_require(obj["class"], str, path, f"{where}.class"))
        box = _require(obj["box"], dict, path, f"{where}.box")
        for j, key in enumerate(("cx", "cy", "w", "h", "angle")):
            if key not in box:
                raise SggInputError(f"missing box field {key!r}", path=path, where=f"{where}.box")
            boxes[i, j] = _num(box[key], path, f"{where}.box.{key}", positive=key in ("w", "h"))
        difficult[i] = bool(_require(obj.get("difficult", False), bool, path, f"{where}.difficult"))
        score = _num(obj.get("score", 1.0), path, f"{where}.score")
        if not 0.0 <= score <= 1.0:
            raise SggInputError(f"score must lie in [0, 1], got {score}", path=path, where=f"{where}.score")
        scores[i] = score
    labels = map_names(names, vocabulary.objects, path=path, where=[f"objects[{i}].class" for i in range(n)])
    if n and (labels < 0).any():  # pragma: no cover - native files never alias to None
        raise SggInputError("object class maps to no vocabulary class", path=path)

    relations = _require(data.get("relations", []), list, path, "relations")
    m = len(relations)
    pairs = np.zeros((m, 2), dtype=np.int64)
    preds = []
    prediction = data.get("prediction")
    if prediction is not None:
        _require(prediction, dict, path, "prediction")
    rel_scores = np.ones(m, dtype=np.float64)
    for r, rel in enumerate(relations):
        where = f"relations[{r}]"
        _require(rel, dict, path, where)
        for key in ("subject", "predicate", "object"):
            if key not in rel:
                raise SggInputError(f"missing required field {key!r}", path=path, where=where)
        for j, key in enumerate(("subject", "object")):
            ref = rel[key]
            if isinstance(ref, bool) or not isinstance(ref, (int, str)) or ref not in ids:
                raise SggInputError(f"{key} {ref!r} is not the id of an object in this file", path=path, where=where)
            pairs[r, j] = ids[ref]
        if pairs[r, 0] == pairs[r, 1]:
            raise SggInputError(f"relation links object {rel['subject']!r} to itself", path=path, where=where)
        preds.append(_require(rel["predicate"], str, path, f"{where}.predicate"))
        if "score" in rel:
            rel_scores[r] = _num(rel["score"], path, f"{where}.score")
            if not 0.0 <= rel_scores[r] <= 1.0:
                raise SggInputError(f"score must lie in [0, 1], got {rel_scores[r]}", path=path, where=f"{where}.score")
    pred_idx = map_names(
        preds, vocabulary.predicates[1:], path=path, where=[f"relations[{r}].predicate" for r in range(m)], kind="predicate"
    ) + 1

    image = _require(data.get("image") or {}, dict, path, "image")
    image_path = image.get("path")
    if image_path is not None:
        _require(image_path, str, path, "image.path")
        if not os.path.isabs(image_path) and str(path) != "<memory>":
            image_path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), image_path))
    image_size = None
    if "width" in image or "height" in image:
        w, h = image.get("width"), image.get("height")
        if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0) or isinstance(w, bool):
            raise SggInputError(f"image width/height must be positive integers, got {w!r}, {h!r}", path=path, where="image")
        image_size = (w, h)
    georef = None
    crs, transform = data.get("crs"), data.get("transform")
    if crs is not None or transform is not None:
        if crs is not None:
            _require(crs, str, path, "crs")
        if transform is not None:
            if not isinstance(transform, list) or len(transform) != 6:
                raise SggInputError("transform must be a list of 6 numbers (a, b, c, d, e, f)", path=path, where="transform")
            transform = [_num(v, path, "transform") for v in transform]
        try:
            georef = GeoReference(crs, tuple(transform or (1, 0, 0, 0, 1, 0)), source=image_path)
        except ValueError as exc:
            raise SggInputError(str(exc), path=path, where="transform") from None
    metadata = data.get("metadata") or {}
    _require(metadata, dict, path, "metadata")
    if metadata.get("box_type", "obb") not in ("obb", "hbb"):
        raise SggInputError(f"box_type must be 'obb' (oriented labels) or 'hbb' (horizontal labels), got "
                            f"{metadata['box_type']!r}", path=path, where="metadata.box_type")
    if image_size is not None and n:
        _warn_outside(boxes, image_size, path)

    dets = Detections(
        OrientedBoxes(torch.from_numpy(boxes).float()), torch.from_numpy(labels), torch.from_numpy(scores)
    )
    relation_fields: dict[str, Any] = {"pairs": PairSet(torch.from_numpy(pairs)),
                                       "predicate_labels": torch.from_numpy(pred_idx.astype(np.int64))}
    if prediction is not None:
        relation_fields = _scored_relations(pairs, pred_idx.astype(np.int64), rel_scores, vocabulary.num_predicates)
    return SceneGraph(
        detections=dets,
        **relation_fields,
        vocabulary=vocabulary,
        georef=georef,
        metadata=dict(metadata),
        image_path=image_path,
        image_size=image_size,
        difficult=torch.from_numpy(difficult),
    )


def _scored_relations(pairs: np.ndarray, preds: np.ndarray, scores: np.ndarray, num_predicates: int) -> dict:
    """Scored triplet rows → distinct pairs (first-seen order) with a predicate score matrix: each kept
    score in its predicate's column, what is left of the row (≥ 0) on background."""
    from sgg.structures import PairSet

    uniq, first, inv = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    row = rank[inv.reshape(-1)]
    ps = np.zeros((len(uniq), num_predicates), dtype=np.float32)
    ps[row, preds] = scores
    ps[:, 0] = np.clip(1.0 - ps[:, 1:].sum(axis=1), 0.0, None)
    pair_rows = np.ascontiguousarray(uniq[order].reshape(-1, 2), dtype=np.int64)
    return {"pairs": PairSet(torch.from_numpy(pair_rows)), "predicate_scores": torch.from_numpy(ps)}


def read_scene_json(path: str | os.PathLike, vocabulary=None):
    """Read one native scene-graph JSON file into a :class:`~sgg.structures.SceneGraph` annotation."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SggInputError(f"cannot read scene graph: {exc.strerror or exc}", path=path) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SggInputError(f"not valid JSON: {exc.msg}", path=path, where=f"line {exc.lineno}") from None
    return scene_from_dict(data, vocabulary, path=path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def _relation_rows(sg, top_k, per_pair, min_score, r) -> tuple[list[dict], dict | None]:
    """Relation records of an annotation (labelled rows), or of a prediction (its best scored triplets)."""
    voc = sg.vocabulary
    p = sg.pairs.pairs.cpu().numpy()
    if sg.predicate_scores is None:
        preds = (sg.predicate_labels.cpu().numpy() if sg.predicate_labels is not None
                 else np.zeros(len(p), dtype=np.int64))
        return [{"subject": int(s), "predicate": voc.predicates[int(q)], "object": int(o)}
                for (s, o), q in zip(p, preds) if q > 0], None  # background rows are not relations
    if top_k is None and len(p):
        raise SggInputError(
            f"a prediction with {len(p)} candidate pairs needs an explicit top-K to be stored as native scene "
            "JSON (command line: --top-k K; Python: top_k=K); every pair's argmax is not a relation")
    if top_k is not None and (isinstance(top_k, bool) or int(top_k) < 0 or int(per_pair) < 1):
        raise SggInputError(f"need top_k >= 0 and per_pair >= 1, got {top_k}, {per_pair}")
    t = sg.triplets(top_k=top_k, per_pair=per_pair)
    subj, obj, pred, score = (t[k].detach().cpu().numpy() for k in ("subject", "object", "predicate", "score"))
    keep = score >= min_score if min_score is not None else np.ones(len(score), dtype=bool)
    rows = [{"subject": int(s), "predicate": voc.predicates[int(q)], "object": int(o), "score": r(c)}
            for s, o, q, c in zip(subj[keep], obj[keep], pred[keep], score[keep])]
    return rows, {"top_k": top_k, "per_pair": int(per_pair), "min_score": min_score, "candidate_pairs": len(p)}


def scene_to_dict(sg, *, base_dir: str | os.PathLike | None = None, float_digits: int = 6,
                  top_k: int | None = None, per_pair: int = 1, min_score: float | None = None) -> dict[str, Any]:
    """The native JSON document of a SceneGraph (image path made relative to ``base_dir`` when possible);
    a prediction keeps its ``top_k`` best scored triplets (see the module docstring)."""
    from sgg.structures import Vocabulary

    voc = sg.vocabulary
    det = sg.detections
    boxes = det.boxes.tensor.detach().cpu().double().numpy()
    labels = det.labels.cpu().numpy()
    scores = det.scores.detach().cpu().numpy()
    diff = sg.difficult.cpu().numpy() if sg.difficult is not None else np.zeros(len(det), dtype=bool)
    r = lambda v: round(float(v), float_digits)
    objects = []
    for i in range(len(det)):
        obj = {
            "id": i,
            "class": voc.objects[int(labels[i])],
            "box": dict(zip(("cx", "cy", "w", "h", "angle"), (r(v) for v in boxes[i]))),
        }
        if diff[i]:
            obj["difficult"] = True
        if scores[i] != 1.0:
            obj["score"] = r(scores[i])
        objects.append(obj)
    relations, prediction = _relation_rows(sg, top_k, per_pair, min_score, r)
    image_path = sg.image_path
    if image_path is not None and base_dir is not None:
        try:
            image_path = os.path.relpath(os.path.abspath(image_path), os.path.abspath(base_dir))
        except ValueError:  # different drives on Windows: keep it absolute
            image_path = os.path.abspath(image_path)
    doc: dict[str, Any] = {"format_version": FORMAT_VERSION}
    image: dict[str, Any] = {"path": None if image_path is None else str(image_path).replace(os.sep, "/")}
    if sg.image_size is not None:
        image["width"], image["height"] = int(sg.image_size[0]), int(sg.image_size[1])
    doc["image"] = image
    doc["crs"] = sg.georef.crs_wkt if sg.georef is not None else None
    doc["transform"] = list(sg.georef.transform) if sg.georef is not None else None
    if voc != Vocabulary.star():
        doc["vocabulary"] = voc.to_dict()
    doc["objects"] = objects
    doc["relations"] = relations
    if prediction is not None:
        doc["prediction"] = prediction
    doc["metadata"] = _jsonable(dict(sg.metadata))
    return doc


def write_scene_json(sg, path: str | os.PathLike, *, indent: int | None = 1, top_k: int | None = None,
                     per_pair: int = 1, min_score: float | None = None, summary: dict | None = None) -> Path:
    """Write a SceneGraph as native JSON, atomically; the image path is stored relative to the file.
    A prediction needs ``top_k`` (see the module docstring); ``summary`` receives the row counts."""
    path = Path(path)
    try:
        doc = scene_to_dict(sg, base_dir=path.parent, top_k=top_k, per_pair=per_pair, min_score=min_score)
    except SggInputError as exc:
        raise SggInputError(str(exc), path=path) from None
    if summary is not None:
        summary.update(objects=len(doc["objects"]), relations=len(doc["relations"]))
    try:
        text = json.dumps(doc, indent=indent, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SggInputError(f"scene graph metadata is not JSON-serialisable: {exc}", path=path) from None
    atomic_write_text(path, text + "\n")
    return path


def load_schema() -> dict[str, Any]:
    """The JSON Schema of the native format (documentation; ``jsonschema`` can validate with it)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
