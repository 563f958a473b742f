"""Pairs of objects, the raster's georeference, and the scene graph that holds them all."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from ._common import _as_tensor, _check_finite, _trusted
from .boxes import Detections
from .vocabulary import Vocabulary


# --------------------------------------------------------------------------------------------------
# Pairs
# --------------------------------------------------------------------------------------------------
class PairSet:
    """Ordered (subject, object) index pairs into a Detections, with optional scores (higher = keep).

    In a SceneGraph the pair scores lie in [0, 1]: ``SceneGraph.triplets`` ranks by predicate score × pair
    score, which a negative score would turn upside down (``sgg.pairs.PairProposer`` gives exp(-PPG error))."""

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
    def empty(cls, device: torch.device | str | None = None) -> PairSet:
        return cls(torch.zeros(0, 2, dtype=torch.long, device=device))

    @classmethod
    def cat(cls, items: Sequence[PairSet], offsets: Sequence[int] | None = None) -> PairSet:
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

    def to(self, device: torch.device | str | None = None, *, non_blocking: bool = False) -> PairSet:
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

    def __getitem__(self, idx: Any) -> PairSet:
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
    def has_crs(self) -> bool:
        """True when coordinates are map coordinates in ``crs_wkt`` (an empty WKT counts as no CRS)."""
        return bool(self.crs_wkt)

    @property
    def is_pixel(self) -> bool:
        return not self.has_crs

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
    def from_dict(cls, data: dict[str, Any]) -> GeoReference:
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

    def replace(self, **changes: Any) -> SceneGraph:
        """A new SceneGraph with ``changes`` applied and validated (``sg.replace(pairs=p, predicate_scores=s)``).
        Changing the pairs without new predicate scores/labels drops the old ones (they described other pairs)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"SceneGraph.replace: unknown field(s) {sorted(unknown)}")
        if "pairs" in changes:
            changes.setdefault("predicate_scores", None)
            changes.setdefault("predicate_labels", None)
        return dataclasses.replace(self, **changes)

    def to(self, device: torch.device | str | None = None, *, non_blocking: bool = False) -> SceneGraph:
        """The same graph with every tensor on ``device`` (no value is read: works on ``meta``)."""
        mv = lambda t: None if t is None else t.to(device, non_blocking=non_blocking)
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
