"""Test-time augmentation for any tile detector: flipped and transposed views, merged by score voting.

``TTADetector(model)`` is itself a :class:`~sgg.detectors.protocol.TileDetector`, so ``detect_scene``,
``sgg detect --tta`` and the evaluation scripts run it like the bare model. Every tile is detected in
views from the square's dihedral group (``identity``, ``hflip``, ``vflip``, ``rot180`` = both flips,
``transpose``, ``transverse`` = the other diagonal, ``rot90`` and ``rot270``), the boxes are mapped back exactly
(a flip maps angle θ to −θ, the transpose to π/2 − θ; centres are reflected about the tile's edges), and
the views are merged class-wise as in the DOTA benchmark's TTA recipes:

* rotated NMS over all views' boxes keeps the best-scoring box of each cluster (``iou_threshold``);
* **score voting**: its score becomes the mean over views of each view's best score for a box of the
  same class overlapping it by ``iou_threshold`` (0 when a view missed it), so an object seen in every
  view keeps its score and a one-view false positive is divided by the number of views.

Cost: the number of views times the model's. Oriented detectors are not exactly equivariant to these
transforms (anchors, ``roi_align`` sampling, what the training data showed), which is what the views
average over.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from sgg.errors import SggInputError
from sgg.ops.conversions import wrap_le90
from sgg.ops.iou import rotated_iou
from sgg.ops.nms import batched_rotated_nms
from sgg.structures import Detections, OrientedBoxes

# view -> (flip x, flip y, transpose), applied to the image in this order: transpose first, then the flips
VIEWS: dict[str, tuple[bool, bool, bool]] = {
    "identity": (False, False, False), "hflip": (True, False, False), "vflip": (False, True, False),
    "rot180": (True, True, False), "transpose": (False, False, True), "transverse": (True, True, True),
    "rot90": (False, True, True), "rot270": (True, False, True),  # quarter turns (counter-/clockwise as shown)
}
PRESETS: dict[str, tuple[str, ...]] = {
    "flips": ("identity", "hflip", "vflip"),
    "d2": ("identity", "hflip", "vflip", "transpose"),
    "all": tuple(VIEWS),
}


def parse_views(views: str | Sequence[str], option: str | None = None) -> tuple[str, ...]:
    """A preset name (``flips``, ``d2``, ``all``), a comma-separated list, or a sequence of view names.
    ``option``: the command-line option the value came from, named in the error."""
    if isinstance(views, str):
        views = PRESETS.get(views, tuple(v.strip() for v in views.split(",") if v.strip()))
    views = tuple(views)
    bad = [v for v in views if v not in VIEWS]
    if bad or not views:
        raise SggInputError(f"unknown test-time view(s) {bad or views}: choose from {sorted(VIEWS)} or a preset "
                            f"{sorted(PRESETS)}", **({"option": option} if option else {"where": "tta"}))
    return views if "identity" in views else ("identity", *views)


def transform_images(images: torch.Tensor, view: str) -> torch.Tensor:
    """The (B,C,H,W) batch as ``view`` sees it."""
    fx, fy, tr = VIEWS[view]
    x = images.transpose(-1, -2) if tr else images
    dims = [d for d, f in ((-1, fx), (-2, fy)) if f]
    return x.flip(dims) if dims else x


def boxes_to_original(boxes: torch.Tensor, view: str, size: tuple[int, int]) -> torch.Tensor:
    """(N,5) le90 boxes found in ``view`` of an (H, W) image, in the original image's pixels."""
    fx, fy, tr = VIEWS[view]
    h, w = size
    vh, vw = (w, h) if tr else (h, w)  # the view's own height and width
    b = boxes.clone()
    if fx:  # undo the flips (the view's frame), then the transpose
        b[:, 0], b[:, 4] = vw - b[:, 0], -b[:, 4]
    if fy:
        b[:, 1], b[:, 4] = vh - b[:, 1], -b[:, 4]
    if tr:  # mirrored about the diagonal x = y
        b[:, [0, 1]] = b[:, [1, 0]]
        b[:, 4] = math.pi / 2 - b[:, 4]
    b[:, 4] = wrap_le90(b[:, 4])
    return b


def vote(dets: Sequence[Detections], iou_threshold: float) -> Detections:
    """Merge one image's detections from several views: class-wise NMS, then score voting (module doc)."""
    n_views = len(dets)
    sizes = [len(d) for d in dets]
    if sum(sizes) == 0:
        return dets[0]
    boxes = torch.cat([d.boxes.tensor for d in dets])
    scores = torch.cat([d.scores for d in dets])
    labels = torch.cat([d.labels for d in dets])
    view = torch.repeat_interleave(torch.arange(n_views), torch.tensor(sizes)).to(boxes.device)
    keep = batched_rotated_nms(boxes, scores, labels, iou_threshold)
    iou = rotated_iou(boxes[keep], boxes)  # (K, N)
    hit = (iou >= iou_threshold) & (labels[keep, None] == labels[None, :])
    hit[torch.arange(len(keep)), keep] = True
    per_view = torch.zeros(len(keep), n_views, dtype=scores.dtype, device=scores.device)
    per_view.scatter_reduce_(1, view.expand(len(keep), -1), torch.where(hit, scores[None, :], 0.0), "amax")
    voted = per_view.mean(dim=1)
    order = voted.argsort(descending=True)
    keep, voted = keep[order], voted[order]

    def cat(attr: str) -> torch.Tensor | None:
        parts = [getattr(d, attr) for d in dets]
        return None if any(p is None for p in parts) else torch.cat(parts)[keep]

    return Detections(OrientedBoxes(boxes[keep], validate=False), labels[keep], voted, cat("features"),
                      class_scores=cat("class_scores"))


class TTADetector(nn.Module):
    """A tile detector that runs ``model`` on several flipped/transposed views and votes (module doc)."""

    def __init__(self, model: nn.Module, views: str | Sequence[str] = "d2", iou_threshold: float = 0.5) -> None:
        super().__init__()
        if not 0 < iou_threshold < 1:
            raise SggInputError(f"tta iou_threshold must be in (0, 1), got {iou_threshold}", where="tta")
        self.model = model
        self.views = parse_views(views)
        self.iou_threshold = float(iou_threshold)
        self.vocabulary = getattr(model, "vocabulary", None)
        self.inference: dict[str, Any] = dict(getattr(model, "inference", None) or {})
        self.config = getattr(model, "config", None)
        if hasattr(model, "num_classes"):
            self.num_classes = model.num_classes

    def forward(self, images: torch.Tensor, with_features: bool = False) -> list[Detections]:
        if not torch.is_tensor(images) or images.ndim != 4:
            raise SggInputError("TTADetector takes a float (B,3,H,W) batch", where="tta")
        size = (int(images.shape[-2]), int(images.shape[-1]))
        kw = {"with_features": True} if with_features else {}
        per_view = []
        for v in self.views:
            out = self.model(transform_images(images, v), **kw)
            per_view.append([Detections(OrientedBoxes(boxes_to_original(d.boxes.tensor, v, size), validate=False),
                                        d.labels, d.scores, d.features, class_scores=d.class_scores) for d in out])
        return [vote([pv[i] for pv in per_view], self.iou_threshold) for i in range(len(images))]


__all__ = ["TTADetector", "VIEWS", "PRESETS", "parse_views", "transform_images", "boxes_to_original", "vote"]
