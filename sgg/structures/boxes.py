"""Oriented boxes (le90, level-0 pixels) and the detections of one image."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from sgg.ops import wrap_le90

from ._common import _as_tensor, _check_finite, _trusted


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
    def empty(cls, device: torch.device | str | None = None) -> OrientedBoxes:
        return cls(torch.zeros(0, 5, device=device))

    @classmethod
    def cat(cls, boxes: Sequence[OrientedBoxes]) -> OrientedBoxes:
        if not boxes:
            return cls.empty()
        return cls(torch.cat([b.tensor for b in boxes]), validate=False)

    @classmethod
    def from_corners(cls, corners: Any) -> OrientedBoxes:
        """Minimum-area oriented boxes around (N,4,2) corners or (N,8) DOTA numbers."""
        from sgg.ops import corners_to_box

        return cls(corners_to_box(torch.as_tensor(np.asarray(corners) if not isinstance(corners, torch.Tensor) else corners, dtype=torch.float32)))

    # views ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.tensor.shape[0])

    def __getitem__(self, idx: Any) -> OrientedBoxes:
        t = self.tensor[idx]
        return OrientedBoxes(t.reshape(-1, 5), validate=False)

    def __iter__(self):
        return iter(self.tensor)

    def __repr__(self) -> str:
        return f"OrientedBoxes(n={len(self)}, device={self.tensor.device})"

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def to(self, *args: Any, **kwargs: Any) -> OrientedBoxes:
        return _trusted(OrientedBoxes, tensor=self.tensor.to(*args, **kwargs))

    def clone(self) -> OrientedBoxes:
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

    def affine(self, scale: float = 1.0, offset: tuple[float, float] = (0.0, 0.0)) -> OrientedBoxes:
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

    __slots__ = ("boxes", "class_scores", "features", "labels", "levels", "scores")

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
    def empty(cls, device: torch.device | str | None = None) -> Detections:
        return cls(OrientedBoxes.empty(device), torch.zeros(0, dtype=torch.long, device=device))

    @classmethod
    def cat(cls, items: Sequence[Detections]) -> Detections:
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

    def __getitem__(self, idx: Any) -> Detections:
        if isinstance(idx, int):
            idx = slice(idx, idx + 1) if idx != -1 else slice(-1, None)
        return Detections(
            self.boxes[idx],
            self.labels[idx],
            self.scores[idx],
            **{k: None if v is None else v[idx] for k, v in self._optional().items()},
        )

    def centred_inside(self, image_size: tuple[int, int]) -> Detections:
        """The objects whose box centre lies in the ``(width, height)`` image (edges included): coarse pyramid
        levels and foreign results can place boxes past the edge. Boxes straddling the edge are kept whole."""
        from sgg.ops import outside_image

        outside = outside_image(self.boxes.tensor, image_size, by="centre")
        return self if not bool(outside.any()) else self[(~outside).nonzero().flatten()]

    def to(self, device: torch.device | str | None = None, *, non_blocking: bool = False) -> Detections:
        """Same objects on ``device`` (dtypes kept: moving never changes fp16 features or long labels)."""
        boxes = self.boxes.to(device, non_blocking=non_blocking)
        mv = lambda t: None if t is None else t.to(boxes.device, non_blocking=non_blocking)
        return _trusted(Detections, boxes=boxes, labels=mv(self.labels), scores=mv(self.scores),
                        **{k: mv(v) for k, v in self._optional().items()})

    def __repr__(self) -> str:
        return f"Detections(n={len(self)})"


def as_boxes(data: OrientedBoxes | Iterable | torch.Tensor) -> OrientedBoxes:
    """Accept OrientedBoxes or anything (N,5)-shaped."""
    return data if isinstance(data, OrientedBoxes) else OrientedBoxes(data)
