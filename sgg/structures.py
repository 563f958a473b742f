"""Typed objects passed between stages (DESIGN.md section 4).

``OrientedBoxes`` (N,5 ``cx, cy, w, h, angle``; radians, le90, level-0 pixels) → ``Detections`` →
``PairSet`` → ``SceneGraph``; ``Vocabulary`` names classes and predicates; ``GeoReference`` keeps the
raster's CRS and affine transform so that map geometry is made only at export time.
Construction validates input and raises ``ValueError`` naming the offending field.
"""

from __future__ import annotations

import json
import math
import dataclasses
from dataclasses import dataclass, field, fields
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from sgg.ops import wrap_le90

BACKGROUND = "__background__"


def _as_tensor(data: Any, dtype: torch.dtype, name: str, device: torch.device | None = None) -> torch.Tensor:
    if isinstance(data, torch.Tensor):
        t = data
    else:
        try:
            t = torch.as_tensor(np.asarray(data))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: cannot be converted to a tensor ({exc})") from None
    if t.is_floating_point() and dtype in (torch.long, torch.int64) and t.numel():
        if not torch.equal(t, t.round()):
            raise ValueError(f"{name}: expected integer values, got non-integer floats")
    t = t.to(dtype=dtype if not (t.is_floating_point() and dtype.is_floating_point) else t.dtype)
    if device is not None:
        t = t.to(device)
    return t


def _trusted(cls: type, **slots: Any) -> Any:
    """An instance built from already-validated parts (moving between devices must not re-read values:
    that would synchronise with an accelerator and fails on the ``meta`` device)."""
    obj = object.__new__(cls)
    for k, v in slots.items():
        object.__setattr__(obj, k, v)
    return obj


def _check_finite(t: torch.Tensor, name: str) -> None:
    if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
        bad = (~torch.isfinite(t)).nonzero()[0].tolist()
        raise ValueError(f"{name}: contains NaN or inf (first at index {bad})")


# --------------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Vocabulary:
    """Object class names (0-based, no background) and predicate names (index 0 is background)."""

    objects: tuple[str, ...]
    predicates: tuple[str, ...]

    def __post_init__(self) -> None:
        objects = tuple(str(o) for o in self.objects)
        predicates = tuple(str(p) for p in self.predicates)
        if not predicates or predicates[0] != BACKGROUND:
            predicates = (BACKGROUND, *predicates)
        for name, seq in (("objects", objects), ("predicates", predicates)):
            if len(set(seq)) != len(seq):
                dup = sorted({s for s in seq if seq.count(s) > 1})
                raise ValueError(f"Vocabulary.{name}: duplicate names {dup}")
        if not objects:
            raise ValueError("Vocabulary.objects: must name at least one class")
        object.__setattr__(self, "objects", objects)
        object.__setattr__(self, "predicates", predicates)
        object.__setattr__(self, "_obj_index", {n: i for i, n in enumerate(objects)})
        object.__setattr__(self, "_pred_index", {n: i for i, n in enumerate(predicates)})

    @property
    def num_classes(self) -> int:
        return len(self.objects)

    @property
    def num_predicates(self) -> int:
        """Number of predicate slots, background included."""
        return len(self.predicates)

    def object_index(self, name: str) -> int:
        try:
            return self._obj_index[name]  # type: ignore[attr-defined]
        except KeyError:
            raise ValueError(f"unknown object class {name!r}; the vocabulary has: {', '.join(self.objects)}") from None

    def predicate_index(self, name: str) -> int:
        try:
            return self._pred_index[name]  # type: ignore[attr-defined]
        except KeyError:
            raise ValueError(
                f"unknown predicate {name!r}; the vocabulary has: {', '.join(self.predicates[1:])}"
            ) from None

    def to_dict(self) -> dict[str, list[str]]:
        return {"objects": list(self.objects), "predicates": list(self.predicates[1:])}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Vocabulary":
        if not isinstance(data, dict) or "objects" not in data or "predicates" not in data:
            raise ValueError("Vocabulary: expected a mapping with 'objects' and 'predicates' lists")
        return cls(tuple(data["objects"]), tuple(data["predicates"]))

    def combine(self, relation: "Vocabulary") -> "Vocabulary":
        """This (detector) vocabulary's objects with ``relation``'s predicates.

        Detector checkpoints name objects only; a relation head names objects and predicates. The object
        names must agree in the same order (indices are shared by both stages), else ``ValueError`` says where.
        """
        if self.objects != relation.objects:
            ours, theirs = set(self.objects), set(relation.objects)
            if ours == theirs:
                why = "the same names in a different order"
            else:
                why = (f"only in the detector: {sorted(ours - theirs)[:8]}; "
                       f"only in the relation vocabulary: {sorted(theirs - ours)[:8]}")
            raise ValueError(f"object vocabularies disagree ({why})")
        return Vocabulary(self.objects, relation.predicates)

    @property
    def has_predicates(self) -> bool:
        return len(self.predicates) > 1

    @classmethod
    def star(cls) -> "Vocabulary":
        """STAR's 48 object classes and 58 predicates (the default vocabulary)."""
        return _star_vocabulary()

    def __repr__(self) -> str:
        return f"Vocabulary({len(self.objects)} classes, {len(self.predicates) - 1} predicates)"


@lru_cache(maxsize=1)
def _star_vocabulary() -> Vocabulary:
    text = resources.files("sgg.data").joinpath("star_vocabulary.json").read_text()
    return Vocabulary.from_dict(json.loads(text))


# --------------------------------------------------------------------------------------------------
# Oriented boxes
# --------------------------------------------------------------------------------------------------
class OrientedBoxes:
    """N oriented boxes ``(cx, cy, w, h, angle)``: radians, le90 (angle in [-π/2, π/2), w along the angle).

    Angles are wrapped into [-π/2, π/2) on construction (a box is unchanged by a half turn); widths and
    heights are kept as given. ``sgg.ops.normalize_le90`` gives the canonical form with w ≥ h.
    """

    __slots__ = ("tensor",)

    def __init__(self, tensor: Any, *, validate: bool = True):
        t = _as_tensor(tensor, torch.float32, "OrientedBoxes")
        if not t.is_floating_point():
            t = t.float()
        if t.numel() == 0:
            t = t.reshape(0, 5)
        if t.dim() != 2 or t.shape[-1] != 5:
            raise ValueError(f"OrientedBoxes: expected shape (N, 5) for cx, cy, w, h, angle; got {tuple(t.shape)}")
        if validate:
            _check_finite(t, "OrientedBoxes")
            if t.numel() and bool((t[:, 2:4] <= 0).any()):
                idx = (t[:, 2:4] <= 0).any(dim=1).nonzero()[0].item()
                raise ValueError(f"OrientedBoxes: width and height must be > 0 (box {idx}: {t[idx].tolist()})")
        a = t[:, 4]
        if t.numel() and bool(((a < -math.pi / 2) | (a >= math.pi / 2)).any()):
            t = t.clone()
            t[:, 4] = wrap_le90(a)
        self.tensor = t

    # construction -----------------------------------------------------------------------------
    @classmethod
    def empty(cls, device: torch.device | str | None = None) -> "OrientedBoxes":
        return cls(torch.zeros(0, 5, device=device))

    @classmethod
    def cat(cls, boxes: Sequence["OrientedBoxes"]) -> "OrientedBoxes":
        if not boxes:
            return cls.empty()
        return cls(torch.cat([b.tensor for b in boxes]), validate=False)

    @classmethod
    def from_corners(cls, corners: Any) -> "OrientedBoxes":
        """Minimum-area oriented boxes around (N,4,2) corners or (N,8) DOTA numbers."""
        from sgg.ops import corners_to_box

        return cls(corners_to_box(torch.as_tensor(np.asarray(corners) if not isinstance(corners, torch.Tensor) else corners, dtype=torch.float32)))

    # views ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.tensor.shape[0])

    def __getitem__(self, idx: Any) -> "OrientedBoxes":
        t = self.tensor[idx]
        return OrientedBoxes(t.reshape(-1, 5), validate=False)

    def __iter__(self):
        return iter(self.tensor)

    def __repr__(self) -> str:
        return f"OrientedBoxes(n={len(self)}, device={self.tensor.device})"

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def to(self, *args: Any, **kwargs: Any) -> "OrientedBoxes":
        return _trusted(OrientedBoxes, tensor=self.tensor.to(*args, **kwargs))

    def clone(self) -> "OrientedBoxes":
        return OrientedBoxes(self.tensor.clone(), validate=False)

    @property
    def centers(self) -> torch.Tensor:
        return self.tensor[:, :2]

    @property
    def widths(self) -> torch.Tensor:
        return self.tensor[:, 2]

    @property
    def heights(self) -> torch.Tensor:
        return self.tensor[:, 3]

    @property
    def angles(self) -> torch.Tensor:
        return self.tensor[:, 4]

    def area(self) -> torch.Tensor:
        return self.tensor[:, 2] * self.tensor[:, 3]

    def diagonal(self) -> torch.Tensor:
        return torch.hypot(self.tensor[:, 2], self.tensor[:, 3])

    def corners(self) -> torch.Tensor:
        """(N, 4, 2) corner coordinates."""
        from sgg.ops import box_to_corners

        return box_to_corners(self.tensor)

    def envelope(self) -> torch.Tensor:
        """(N, 4) axis-aligned ``x1, y1, x2, y2`` around each box."""
        from sgg.ops import box_to_envelope

        return box_to_envelope(self.tensor)

    def to_shapely(self) -> np.ndarray:
        """Object array of shapely Polygons (pixel coordinates)."""
        from sgg.ops import box_to_shapely

        return box_to_shapely(self.tensor)

    def affine(self, scale: float = 1.0, offset: tuple[float, float] = (0.0, 0.0)) -> "OrientedBoxes":
        """``x * scale + offset`` for centres, ``w, h * scale``; used to move tile boxes to level-0 pixels."""
        t = self.tensor.clone()
        t[:, 0] = t[:, 0] * scale + offset[0]
        t[:, 1] = t[:, 1] * scale + offset[1]
        t[:, 2:4] = t[:, 2:4] * scale
        return OrientedBoxes(t, validate=False)


# --------------------------------------------------------------------------------------------------
# Detections
# --------------------------------------------------------------------------------------------------
class Detections:
    """Objects of one image: boxes, 0-based class labels, scores, and optional per-object extras.

    ``features`` (N, D): visual features (e.g. RoI-pooled FPN features from the detector; fp16 allowed) that
    relation heads read. ``class_scores`` (N, C+1): class probabilities, column 0 background, for SGCls/SGDet
    heads that re-classify objects. ``levels`` (N,): the pyramid level that produced each box.
    """

    __slots__ = ("boxes", "labels", "scores", "features", "levels", "class_scores")

    def __init__(
        self,
        boxes: OrientedBoxes | Any,
        labels: Any,
        scores: Any | None = None,
        features: torch.Tensor | None = None,
        levels: Any | None = None,
        class_scores: torch.Tensor | None = None,
        *,
        num_classes: int | None = None,
    ):
        self.boxes = boxes if isinstance(boxes, OrientedBoxes) else OrientedBoxes(boxes)
        n = len(self.boxes)
        dev = self.boxes.device
        self.labels = _as_tensor(labels, torch.long, "Detections.labels", dev).reshape(-1)
        if self.labels.shape[0] != n:
            raise ValueError(f"Detections.labels: length {self.labels.shape[0]} does not match {n} boxes")
        if n and int(self.labels.min()) < 0:
            raise ValueError("Detections.labels: negative class index")
        if num_classes is not None and n and int(self.labels.max()) >= num_classes:
            raise ValueError(
                f"Detections.labels: class index {int(self.labels.max())} out of range for {num_classes} classes"
            )
        if scores is None:
            scores = torch.ones(n, device=dev)
        self.scores = _as_tensor(scores, torch.float32, "Detections.scores", dev).float().reshape(-1)
        if self.scores.shape[0] != n:
            raise ValueError(f"Detections.scores: length {self.scores.shape[0]} does not match {n} boxes")
        _check_finite(self.scores, "Detections.scores")
        if features is not None:
            if not isinstance(features, torch.Tensor) or features.shape[0] != n:
                raise ValueError(f"Detections.features: expected a tensor with {n} rows")
            _check_finite(features, "Detections.features")
        self.features = features
        if levels is not None:
            levels = _as_tensor(levels, torch.long, "Detections.levels", dev).reshape(-1)
            if levels.shape[0] != n:
                raise ValueError(f"Detections.levels: length {levels.shape[0]} does not match {n} boxes")
        self.levels = levels
        if class_scores is not None:
            if not isinstance(class_scores, torch.Tensor) or class_scores.dim() != 2 or class_scores.shape[0] != n:
                raise ValueError(f"Detections.class_scores: expected an (N={n}, C+1) tensor")
            if num_classes is not None and class_scores.shape[1] != num_classes + 1:
                raise ValueError(
                    f"Detections.class_scores: expected {num_classes + 1} columns (background first), "
                    f"got {class_scores.shape[1]}"
                )
            _check_finite(class_scores, "Detections.class_scores")
        self.class_scores = class_scores

    @property
    def device(self) -> torch.device:
        return self.boxes.device

    def _optional(self) -> dict[str, torch.Tensor | None]:
        return {"features": self.features, "levels": self.levels, "class_scores": self.class_scores}

    @classmethod
    def empty(cls, device: torch.device | str | None = None) -> "Detections":
        return cls(OrientedBoxes.empty(device), torch.zeros(0, dtype=torch.long, device=device))

    @classmethod
    def cat(cls, items: Sequence["Detections"]) -> "Detections":
        items = list(items)
        if not items:
            return cls.empty()
        extras = {}
        for name in ("features", "levels", "class_scores"):
            parts = [getattr(d, name) for d in items]
            # an extra survives concatenation only when every part has it (else it would misalign rows)
            extras[name] = torch.cat(parts) if all(p is not None for p in parts) else None
        return cls(
            OrientedBoxes.cat([d.boxes for d in items]),
            torch.cat([d.labels for d in items]),
            torch.cat([d.scores for d in items]),
            **extras,
        )

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, idx: Any) -> "Detections":
        if isinstance(idx, int):
            idx = slice(idx, idx + 1) if idx != -1 else slice(-1, None)
        return Detections(
            self.boxes[idx],
            self.labels[idx],
            self.scores[idx],
            **{k: None if v is None else v[idx] for k, v in self._optional().items()},
        )

    def to(self, device: torch.device | str | None = None, *, non_blocking: bool = False) -> "Detections":
        """Same objects on ``device`` (dtypes kept: moving never changes fp16 features or long labels)."""
        boxes = self.boxes.to(device, non_blocking=non_blocking)
        mv = lambda t: None if t is None else t.to(boxes.device, non_blocking=non_blocking)  # noqa: E731
        return _trusted(Detections, boxes=boxes, labels=mv(self.labels), scores=mv(self.scores),
                        **{k: mv(v) for k, v in self._optional().items()})

    def __repr__(self) -> str:
        return f"Detections(n={len(self)})"


# --------------------------------------------------------------------------------------------------
# Pairs
# --------------------------------------------------------------------------------------------------
class PairSet:
    """Ordered (subject, object) index pairs into a Detections, with optional scores (higher = keep)."""

    __slots__ = ("pairs", "scores")

    def __init__(self, pairs: Any, scores: Any | None = None, *, num_objects: int | None = None):
        p = _as_tensor(pairs, torch.long, "PairSet.pairs")
        if p.numel() == 0:
            p = p.reshape(0, 2)
        if p.dim() != 2 or p.shape[1] != 2:
            raise ValueError(f"PairSet.pairs: expected shape (M, 2); got {tuple(p.shape)}")
        if p.shape[0]:
            if int(p.min()) < 0:
                raise ValueError("PairSet.pairs: negative object index")
            if num_objects is not None and int(p.max()) >= num_objects:
                raise ValueError(f"PairSet.pairs: object index {int(p.max())} out of range for {num_objects} objects")
            if bool((p[:, 0] == p[:, 1]).any()):
                raise ValueError("PairSet.pairs: a pair links an object to itself")
        self.pairs = p
        if scores is not None:
            scores = _as_tensor(scores, torch.float32, "PairSet.scores", p.device).float().reshape(-1)
            if scores.shape[0] != p.shape[0]:
                raise ValueError(f"PairSet.scores: length {scores.shape[0]} does not match {p.shape[0]} pairs")
            _check_finite(scores, "PairSet.scores")
        self.scores = scores

    @classmethod
    def empty(cls, device: torch.device | str | None = None) -> "PairSet":
        return cls(torch.zeros(0, 2, dtype=torch.long, device=device))

    @classmethod
    def cat(cls, items: Sequence["PairSet"], offsets: Sequence[int] | None = None) -> "PairSet":
        """Concatenate pair sets; ``offsets`` shifts each set's object indices (pairs of several scenes
        stacked into one batch of objects). Scores survive only when every set has them."""
        items = list(items)
        if not items:
            return cls.empty()
        pairs = [p.pairs + (0 if offsets is None else int(offsets[i])) for i, p in enumerate(items)]
        scores = [p.scores for p in items]
        return cls(torch.cat(pairs), torch.cat(scores) if all(s is not None for s in scores) else None)

    @property
    def device(self) -> torch.device:
        return self.pairs.device

    def to(self, device: torch.device | str | None = None, *, non_blocking: bool = False) -> "PairSet":
        return _trusted(
            PairSet,
            pairs=self.pairs.to(device, non_blocking=non_blocking),
            scores=None if self.scores is None else self.scores.to(device, non_blocking=non_blocking),
        )

    @property
    def subjects(self) -> torch.Tensor:
        return self.pairs[:, 0]

    @property
    def objects(self) -> torch.Tensor:
        return self.pairs[:, 1]

    def __len__(self) -> int:
        return int(self.pairs.shape[0])

    def __getitem__(self, idx: Any) -> "PairSet":
        return PairSet(self.pairs[idx].reshape(-1, 2), None if self.scores is None else self.scores[idx].reshape(-1))

    def __repr__(self) -> str:
        return f"PairSet(m={len(self)})"


# --------------------------------------------------------------------------------------------------
# Georeference
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GeoReference:
    """A raster's CRS (WKT, or None for pixel coordinates) and affine transform (GDAL order a..f as in
    ``affine.Affine``: ``x = a*col + b*row + c``, ``y = d*col + e*row + f``)."""

    crs_wkt: str | None = None
    transform: tuple[float, float, float, float, float, float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    source: str | None = None

    def __post_init__(self) -> None:
        tr = tuple(float(v) for v in tuple(self.transform)[:6])
        if len(tr) != 6 or not all(math.isfinite(v) for v in tr):
            raise ValueError(f"GeoReference.transform: expected 6 finite numbers, got {self.transform!r}")
        if tr[0] * tr[4] - tr[1] * tr[3] == 0:
            raise ValueError("GeoReference.transform: not invertible")
        object.__setattr__(self, "transform", tr)

    @property
    def is_pixel(self) -> bool:
        return self.crs_wkt is None

    def pixel_to_map(self, xy: Any) -> np.ndarray:
        """(..., 2) pixel (col, row) coordinates → map coordinates."""
        a, b, c, d, e, f = self.transform
        xy = np.asarray(xy, dtype=np.float64)
        x, y = xy[..., 0], xy[..., 1]
        return np.stack([a * x + b * y + c, d * x + e * y + f], axis=-1)

    def map_to_pixel(self, xy: Any) -> np.ndarray:
        a, b, c, d, e, f = self.transform
        det = a * e - b * d
        xy = np.asarray(xy, dtype=np.float64)
        x, y = xy[..., 0] - c, xy[..., 1] - f
        return np.stack([(e * x - b * y) / det, (-d * x + a * y) / det], axis=-1)

    def to_dict(self) -> dict[str, Any]:
        return {"crs_wkt": self.crs_wkt, "transform": list(self.transform), "source": self.source}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GeoReference":
        return cls(data.get("crs_wkt"), tuple(data.get("transform", (1, 0, 0, 0, 1, 0))), data.get("source"))


# --------------------------------------------------------------------------------------------------
# Scene graph
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SceneGraph:
    """Objects, candidate pairs and predicates of one scene.

    Predictions carry ``predicate_scores`` (M, P) over the vocabulary's predicates (column 0 background);
    annotations carry ``predicate_labels`` (M,) with one row per (pair, predicate), so a pair may repeat.
    A ground-truth annotation is a SceneGraph too: scores 1, ``predicate_labels``, ``difficult`` flags.

    Immutable once validated: derive a changed graph with :meth:`replace` (validated again), move it with
    :meth:`to` (Lightning moves batches holding SceneGraphs through it). Conversions to networkx and GIS
    files live in :mod:`sgg.graph` (a higher layer).
    """

    detections: Detections
    pairs: PairSet = field(default_factory=PairSet.empty)
    predicate_scores: torch.Tensor | None = None
    predicate_labels: torch.Tensor | None = None
    vocabulary: Vocabulary = field(default_factory=Vocabulary.star)
    georef: GeoReference | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    image_path: str | None = None
    image_size: tuple[int, int] | None = None  # (width, height) of the level-0 image in pixels
    difficult: torch.Tensor | None = None  # (N,) bool, annotations only (DOTA's difficult flag)

    def __post_init__(self) -> None:
        n, m = len(self.detections), len(self.pairs)
        if not isinstance(self.detections, Detections):
            raise ValueError(f"SceneGraph.detections: expected Detections, got {type(self.detections).__name__}")
        if not isinstance(self.pairs, PairSet):
            raise ValueError(f"SceneGraph.pairs: expected PairSet, got {type(self.pairs).__name__}")
        if not isinstance(self.vocabulary, Vocabulary):
            raise ValueError(f"SceneGraph.vocabulary: expected Vocabulary, got {type(self.vocabulary).__name__}")
        if not isinstance(self.metadata, dict):
            raise ValueError("SceneGraph.metadata: expected a dict")
        if self.difficult is not None:
            difficult = _as_tensor(self.difficult, torch.bool, "SceneGraph.difficult").reshape(-1).bool()
            object.__setattr__(self, "difficult", difficult)
            if self.difficult.shape[0] != n:
                raise ValueError(f"SceneGraph.difficult: length {self.difficult.shape[0]} does not match {n} objects")
        if self.image_size is not None:
            w, h = (int(v) for v in self.image_size)
            if w <= 0 or h <= 0:
                raise ValueError(f"SceneGraph.image_size: expected positive (width, height), got {self.image_size}")
            object.__setattr__(self, "image_size", (w, h))
        if n and int(self.detections.labels.max()) >= self.vocabulary.num_classes:
            raise ValueError(
                f"SceneGraph.detections.labels: class index {int(self.detections.labels.max())} out of range "
                f"for {self.vocabulary.num_classes} classes"
            )
        if m and int(self.pairs.pairs.max()) >= n:
            raise ValueError(f"SceneGraph.pairs: object index {int(self.pairs.pairs.max())} out of range for {n} objects")
        if self.predicate_scores is not None:
            s = self.predicate_scores
            if s.dim() != 2 or s.shape != (m, self.vocabulary.num_predicates):
                raise ValueError(
                    f"SceneGraph.predicate_scores: expected shape ({m}, {self.vocabulary.num_predicates}); "
                    f"got {tuple(s.shape)}"
                )
            _check_finite(s, "SceneGraph.predicate_scores")
        if self.predicate_labels is not None:
            lab = _as_tensor(self.predicate_labels, torch.long, "SceneGraph.predicate_labels").reshape(-1)
            if lab.shape[0] != m:
                raise ValueError(f"SceneGraph.predicate_labels: length {lab.shape[0]} does not match {m} pairs")
            if m and (int(lab.min()) < 0 or int(lab.max()) >= self.vocabulary.num_predicates):
                raise ValueError("SceneGraph.predicate_labels: predicate index out of range")
            object.__setattr__(self, "predicate_labels", lab)

    @property
    def num_objects(self) -> int:
        return len(self.detections)

    @property
    def device(self) -> torch.device:
        return self.detections.device

    def related_pairs(self) -> torch.Tensor:
        """(K, 2) distinct ordered (subject, object) pairs that carry at least one foreground predicate
        (annotations: a foreground label; predictions: every pair)."""
        p = self.pairs.pairs
        if self.predicate_labels is not None:
            p = p[self.predicate_labels > 0]
        if p.numel() == 0:
            return torch.zeros(0, 2, dtype=torch.long, device=p.device)
        return torch.unique(p[p[:, 0] != p[:, 1]], dim=0)

    def replace(self, **changes: Any) -> "SceneGraph":
        """A new SceneGraph with ``changes`` applied and validated (``sg.replace(pairs=p, predicate_scores=s)``).
        Changing the pairs without new predicate scores/labels drops the old ones (they described other pairs)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"SceneGraph.replace: unknown field(s) {sorted(unknown)}")
        if "pairs" in changes:
            changes.setdefault("predicate_scores", None)
            changes.setdefault("predicate_labels", None)
        return dataclasses.replace(self, **changes)

    def to(self, device: torch.device | str | None = None, *, non_blocking: bool = False) -> "SceneGraph":
        """The same graph with every tensor on ``device`` (no value is read: works on ``meta``)."""
        mv = lambda t: None if t is None else t.to(device, non_blocking=non_blocking)  # noqa: E731
        out = object.__new__(SceneGraph)
        for f in fields(self):
            object.__setattr__(out, f.name, getattr(self, f.name))
        object.__setattr__(out, "detections", self.detections.to(device, non_blocking=non_blocking))
        object.__setattr__(out, "pairs", self.pairs.to(device, non_blocking=non_blocking))
        for name in ("predicate_scores", "predicate_labels", "difficult"):
            object.__setattr__(out, name, mv(getattr(self, name)))
        return out

    def triplets(self, top_k: int | None = None, per_pair: int = 1) -> dict[str, torch.Tensor]:
        """Ranked (subject, object, predicate, score) rows, background excluded.

        With labels: every annotated row, score 1. With scores: the ``per_pair`` best foreground predicates
        of each pair, scored by predicate score × pair score (if any), sorted descending, cut at ``top_k``.
        """
        p = self.pairs.pairs
        if self.predicate_scores is None:
            lab = self.predicate_labels if self.predicate_labels is not None else torch.zeros(len(p), dtype=torch.long)
            keep = lab > 0
            out = {"subject": p[keep, 0], "object": p[keep, 1], "predicate": lab[keep], "score": torch.ones(int(keep.sum()))}
        else:
            fg = self.predicate_scores[:, 1:]
            k = min(per_pair, fg.shape[1])
            sc, pred = fg.topk(k, dim=1) if len(p) else (fg[:, :0], fg[:, :0].long())
            if self.pairs.scores is not None:
                sc = sc * self.pairs.scores[:, None]
            rows = torch.arange(len(p)).repeat_interleave(k)
            out = {"subject": p[rows, 0], "object": p[rows, 1], "predicate": pred.reshape(-1) + 1, "score": sc.reshape(-1)}
        order = torch.argsort(out["score"], descending=True, stable=True)
        if top_k is not None:
            order = order[:top_k]
        return {k_: v[order] for k_, v in out.items()}


def as_boxes(data: OrientedBoxes | Iterable | torch.Tensor) -> OrientedBoxes:
    """Accept OrientedBoxes or anything (N,5)-shaped."""
    return data if isinstance(data, OrientedBoxes) else OrientedBoxes(data)
