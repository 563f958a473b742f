"""Test-time augmentation for any tile detector: flipped, transposed and turned views, merged by score voting.

``TTADetector(model)`` is itself a :class:`~sgg.detectors.protocol.TileDetector`, so ``detect_scene``,
``sgg detect --tta`` and the evaluation scripts run it like the bare model. Every tile is detected in
views from the square's dihedral group (``identity``, ``hflip``, ``vflip``, ``rot180`` = both flips,
``transpose``, ``transverse`` = the other diagonal, ``rot90`` and ``rot270``), the boxes are mapped back exactly
(a flip maps angle θ to −θ, the transpose to π/2 − θ; centres are reflected about the tile's edges).
``rot<deg>`` for any other whole number of degrees (``rot45``, ``rot135``, …) turns the tile counter-clockwise
as displayed on a canvas grown to hold it (bilinear, zero corners: a 45° view has twice the pixels); boxes turn
back about the centres and those whose centre falls in the corners are dropped. Such views show diagonal objects
along the image axes, where a detector trained on horizontal-box labels draws them best. ``align`` (preset
``auto`` = ``identity,align``) turns each tile by its own dominant edge direction
(:mod:`sgg.detectors.orientation`) when that lies off the axes, and skips the view for tiles whose layout is
already axis-aligned or too weak to tell. The views are merged class-wise as in the DOTA benchmark's TTA recipes:

* rotated NMS over all views' boxes keeps the best-scoring box of each cluster (``iou_threshold``); with
  turned views, the cluster's box is instead the confident member drawn nearest an axis in its own view
  (:func:`vote`);
* **score voting**: its score becomes the mean over views of each view's best score for a box of the
  same class overlapping it by ``iou_threshold`` (0 when a view missed it), so an object seen in every
  view keeps its score and a one-view false positive is divided by the number of views.

Cost: the number of views times the model's. Oriented detectors are not exactly equivariant to these
transforms (anchors, ``roi_align`` sampling, what the training data showed), which is what the views
average over.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sgg.detectors.gsd import model_gsd_range
from sgg.detectors.orientation import align_angle
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
    "d2r": ("identity", "hflip", "vflip", "transpose", "rot45", "rot135"),
    "auto": ("identity", "align"),
}
VOTES = ("mean", "anchored")  # TTADetector(vote=): how a cluster's score is voted (vote())
ALIGN = "align"  # the per-tile turn by the tile's dominant direction (sgg.detectors.orientation)
ALIGN_MIN_DEGREES = 15.0  # no align view for a tile whose direction lies nearer an axis than this
ALIGN_MIN_COHERENCE = 0.138  # ... or whose edges agree less: half the median of ships_ge's training images
_TURN = re.compile(r"rot(\d{1,3})")


def turn_degrees(view: str) -> int | None:
    """The angle of an arbitrary-angle view ``rot<deg>`` (not a multiple of 90), else ``None``."""
    m = _TURN.fullmatch(view)
    deg = int(m.group(1)) if m else None
    return deg if deg is not None and 0 < deg < 360 and deg % 90 else None


def parse_views(views: str | Sequence[str], option: str | None = None) -> tuple[str, ...]:
    """A preset name (``flips``, ``d2``, ``all``, ``d2r``, ``auto``), a comma-separated list of view and preset
    names (``d2,align``), or a sequence of them; repeats are dropped.
    ``option``: the command-line option the value came from, named in the error."""
    if isinstance(views, str):
        views = [v.strip() for v in views.split(",") if v.strip()]
    views = tuple(dict.fromkeys(x for v in views for x in PRESETS.get(v, (v,))))  # presets expand: "d2,align"
    bad = [v for v in views if v not in VIEWS and v != ALIGN and turn_degrees(v) is None]
    if bad or not views:
        raise SggInputError(f"unknown test-time view(s) {bad or views}: choose from {sorted(VIEWS)}, rot<degrees> "
                            f"(e.g. rot45), {ALIGN} or a preset {sorted(PRESETS)}",
                            **({"option": option} if option else {"where": "tta"}))
    return ("identity", *(v for v in views if v != "identity"))  # first: anchored voting's reference


def transform_images(images: torch.Tensor, view: str) -> torch.Tensor:
    """The (B,C,H,W) batch as ``view`` sees it."""
    if (deg := turn_degrees(view)) is not None:
        return turn_images(images, math.radians(deg))
    fx, fy, tr = VIEWS[view]
    x = images.transpose(-1, -2) if tr else images
    dims = [d for d, f in ((-1, fx), (-2, fy)) if f]
    return x.flip(dims) if dims else x


def turned_size(size: tuple[int, int], a: float) -> tuple[int, int]:
    """The canvas (H', W') that holds an (H, W) image turned by ``a`` radians."""
    h, w = size
    c, s = abs(math.cos(a)), abs(math.sin(a))
    eps = 1e-6  # 45° of a square is exact up to rounding
    return math.ceil(w * s + h * c - eps), math.ceil(w * c + h * s - eps)


def _turn_about_centres(boxes: torch.Tensor, a: float, src: tuple[int, int], dst: tuple[int, int]) -> torch.Tensor:
    """(N,5) boxes of an ``src`` (H, W) image turned by ``a`` about its centre onto ``dst``'s centre."""
    c, s = math.cos(a), math.sin(a)
    b = boxes.clone()
    x, y = boxes[:, 0] - src[1] / 2, boxes[:, 1] - src[0] / 2
    b[:, 0], b[:, 1] = c * x + s * y + dst[1] / 2, -s * x + c * y + dst[0] / 2
    b[:, 4] = wrap_le90(boxes[:, 4] - a)
    return b


def turn_images(images: torch.Tensor, a: float) -> torch.Tensor:
    """(B,C,H,W) images turned by ``a`` radians, counter-clockwise as displayed (y down), on a grown canvas:
    p' − c' = R (p − c) with R = [[cos, sin], [−sin, cos]]; each output pixel centre samples the input at
    p = Rᵀ (p' − c') + c (bilinear, zeros outside)."""
    h, w = images.shape[-2:]
    vh, vw = turned_size((h, w), a)
    c, s = math.cos(a), math.sin(a)
    dev, dt = images.device, images.dtype
    y, x = torch.meshgrid(torch.arange(vh, device=dev, dtype=dt) + 0.5 - vh / 2,
                          torch.arange(vw, device=dev, dtype=dt) + 0.5 - vw / 2, indexing="ij")
    px, py = c * x - s * y + w / 2, s * x + c * y + h / 2
    grid = torch.stack([2 * px / w - 1, 2 * py / h - 1], dim=-1).expand(images.shape[0], vh, vw, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def turn_boxes(boxes: torch.Tensor, a: float, size: tuple[int, int]) -> torch.Tensor:
    """(N,5) le90 boxes of an (H, W) image where :func:`turn_images` (``a`` radians) puts them."""
    return _turn_about_centres(boxes, a, size, turned_size(size, a))


def unturn_boxes(boxes: torch.Tensor, a: float, size: tuple[int, int]) -> torch.Tensor:
    """(N,5) boxes found on an (H, W) image turned by ``a`` radians (:func:`turn_images`), in the original's
    pixels: the inverse of :func:`turn_boxes`."""
    return _turn_about_centres(boxes, -a, turned_size(size, a), size)


def boxes_to_original(boxes: torch.Tensor, view: str, size: tuple[int, int]) -> torch.Tensor:
    """(N,5) le90 boxes found in ``view`` of an (H, W) image, in the original image's pixels (for a
    ``rot<deg>`` view also boxes whose centre lies outside the image: :func:`inside_original` tells)."""
    if (deg := turn_degrees(view)) is not None:  # the turn undone: back by the same angle
        return unturn_boxes(boxes, math.radians(deg), size)
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


def inside_original(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Mask of boxes (original pixels) whose centre lies on the (H, W) image: a turned view's corners are
    not."""
    h, w = size
    return (boxes[:, 0] >= 0) & (boxes[:, 0] <= w) & (boxes[:, 1] >= 0) & (boxes[:, 1] <= h)


def axis_distance(angles: torch.Tensor) -> torch.Tensor:
    """Radians from each angle to the nearest image axis, in [0, π/4]."""
    r = torch.remainder(angles, math.pi / 2)
    return torch.minimum(r, math.pi / 2 - r)


AXIS_RATIO = 0.5  # a cluster member may stand for it when it scores at least this share of the winner's score


def vote(dets: Sequence[Detections], iou_threshold: float, view_angles: Sequence[torch.Tensor] | None = None,
         anchored: bool = False) -> Detections:
    """Merge one image's detections from several views: class-wise NMS, then score voting (module doc).

    ``anchored``: ``dets[0]`` is the identity view, and a cluster's score is the larger of that view's own best
    overlapping score and the mean over views, so the other views can raise a box but never rank one the plain
    model found below its plain score.

    ``view_angles``: each box's angle in its own view (as found, before mapping back). Given, a cluster's box
    is the member (same class, IoU ≥ ``iou_threshold`` with the NMS winner, score ≥ ``AXIS_RATIO`` × its
    score) that lay nearest an image axis in its view, ties to the higher score: a detector trained on
    horizontal labels draws an object best where it lies along the view's axes, which a turned view gives
    diagonal objects. Flips and transposes keep the distance to the axes, so this only matters for turned
    views (``TTADetector`` passes it only then)."""
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
    if anchored:
        voted = torch.maximum(voted, per_view[:, 0])
    order = voted.argsort(descending=True)
    keep, voted, hit = keep[order], voted[order], hit[order]
    if view_angles is not None:
        steps = (axis_distance(torch.cat(list(view_angles)).to(boxes.device)) / 1e-2).round()  # 0.6° steps
        ok = hit & (scores[None, :] >= AXIS_RATIO * scores[keep, None])
        keep = torch.where(ok, 2 * steps[None, :] - scores[None, :], math.inf).argmin(dim=1)  # score in [0, 1]

    def cat(attr: str) -> torch.Tensor | None:
        parts = [getattr(d, attr) for d in dets]
        return None if any(p is None for p in parts) else torch.cat(parts)[keep]

    return Detections(OrientedBoxes(boxes[keep], validate=False), labels[keep], voted, cat("features"),
                      class_scores=cat("class_scores"))


def _present_as(wrapper: nn.Module, model: nn.Module, iou_threshold: float, where: str) -> None:
    """Give a voting wrapper ``model``'s face (vocabulary, inference settings, config, class count), so
    ``detect_scene`` and the checkpoint helpers treat it as that detector, and check its vote IoU."""
    if not 0 < iou_threshold < 1:
        raise SggInputError(f"{where} iou_threshold must be in (0, 1), got {iou_threshold}", where=where)
    wrapper.iou_threshold = float(iou_threshold)
    wrapper.vocabulary = getattr(model, "vocabulary", None)
    wrapper.inference = dict(getattr(model, "inference", None) or {})
    wrapper.config = getattr(model, "config", None)
    if hasattr(model, "num_classes"):
        wrapper.num_classes = model.num_classes


class TTADetector(nn.Module):
    """A tile detector that runs ``model`` on several flipped, transposed or turned views and votes (module
    doc). ``align_min_degrees`` / ``align_min_coherence`` gate the ``align`` view per tile; ``vote``: ``"mean"``
    (score voting) or ``"anchored"`` (no box scores below the identity view's own score, :func:`vote`)."""

    def __init__(self, model: nn.Module, views: str | Sequence[str] = "d2", iou_threshold: float = 0.5,
                 align_min_degrees: float = ALIGN_MIN_DEGREES, align_min_coherence: float = ALIGN_MIN_COHERENCE,
                 vote: str = "mean") -> None:
        super().__init__()
        if vote not in VOTES:
            raise SggInputError(f"unknown vote {vote!r}: choose from {list(VOTES)}", where="tta")
        self.model = model
        self.views = parse_views(views)
        self.vote_mode = vote  # not `vote`: that names the module's voting function
        self.align_min_degrees = float(align_min_degrees)
        self.align_min_coherence = float(align_min_coherence)
        _present_as(self, model, iou_threshold, "tta")

    def _detect_view(self, images: torch.Tensor, view: str, kw: dict) -> list[tuple[Detections, torch.Tensor] | None]:
        """Per image: (detections mapped back to the original pixels, their angles in the view), or ``None``
        where the view does not apply (an ``align`` view of an axis-aligned or layout-less tile)."""
        size = (int(images.shape[-2]), int(images.shape[-1]))
        if view == ALIGN:
            turns = align_angle(images, self.align_min_degrees, self.align_min_coherence)
            outs = [None if a is None else self.model(turn_images(images[i:i + 1], a), **kw)[0]
                    for i, a in enumerate(turns)]
        else:
            deg = turn_degrees(view)
            turns = [None if deg is None else math.radians(deg)] * len(images)
            outs = self.model(transform_images(images, view), **kw)
        res = []
        for d, a in zip(outs, turns):
            if d is None:
                res.append(None)
                continue
            if a is None:
                b = boxes_to_original(d.boxes.tensor, view, size)
            else:  # a turned canvas: drop boxes centred in its corners
                b = unturn_boxes(d.boxes.tensor, a, size)
                keep = inside_original(b, size)
                b, d = b[keep], d[keep]
            res.append((Detections(OrientedBoxes(b, validate=False), d.labels, d.scores, d.features,
                                   class_scores=d.class_scores), d.boxes.tensor[:, 4]))
        return res

    def forward(self, images: torch.Tensor, with_features: bool = False) -> list[Detections]:
        if not torch.is_tensor(images) or images.ndim != 4:
            raise SggInputError("TTADetector takes a float (B,3,H,W) batch", where="tta")
        kw = {"with_features": True} if with_features else {}
        per_view = [self._detect_view(images, v, kw) for v in self.views]
        turned = any(turn_degrees(v) is not None or v == ALIGN for v in self.views)
        out = []
        for i in range(len(images)):
            ran = [pv[i] for pv in per_view if pv[i] is not None]  # a skipped view does not vote
            out.append(vote([r[0] for r in ran], self.iou_threshold, [r[1] for r in ran] if turned else None,
                            anchored=self.vote_mode == "anchored"))
        return out


class EnsembleDetector(nn.Module):
    """A tile detector that runs several detectors of one vocabulary on each tile and votes their boxes as
    :class:`TTADetector` votes views (class-wise NMS at ``iou_threshold``, score = mean over models of each
    model's best overlapping score), so an object only one of two models finds keeps half its score.
    The GSD range is the intersection of the models' ranges (the scales every member was trained for)."""

    def __init__(self, models: Sequence[nn.Module], iou_threshold: float = 0.5) -> None:
        super().__init__()
        if len(models) < 2:
            raise SggInputError("an ensemble needs at least two detectors", where="ensemble")
        vocabs = [getattr(m, "vocabulary", None) for m in models]
        if any(v is None or v.objects != vocabs[0].objects for v in vocabs):
            raise SggInputError("ensemble members must share one object vocabulary (same classes, same order)",
                                where="ensemble")
        self.models = nn.ModuleList(models)
        _present_as(self, models[0], iou_threshold, "ensemble")
        self.config = dict(self.config or {})  # a copy: the GSD range below is the ensemble's, not models[0]'s
        ranges = [model_gsd_range(m) for m in models]
        if any(r is not None for r in ranges):
            lo = max(r[0] for r in ranges if r is not None)
            hi = min(r[1] for r in ranges if r is not None)
            if lo > hi:
                raise SggInputError(f"ensemble members were trained at disjoint GSD ranges {ranges}",
                                    where="ensemble")
            self.config["gsd_range"] = [lo, hi]

    def forward(self, images: torch.Tensor, with_features: bool = False) -> list[Detections]:
        kw = {"with_features": True} if with_features else {}
        outs = [m(images, **kw) for m in self.models]
        return [vote([o[i] for o in outs], self.iou_threshold) for i in range(len(images))]


__all__ = ["TTADetector", "EnsembleDetector", "VIEWS", "PRESETS", "ALIGN", "parse_views", "turn_degrees",
           "transform_images", "turn_images", "turned_size", "turn_boxes", "unturn_boxes", "boxes_to_original",
           "inside_original", "axis_distance", "vote"]
