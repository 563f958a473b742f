"""Oriented pseudo-boxes for horizontal labels, from the image inside each label.

A horizontal label (x1, y1, x2, y2) fixes an object's envelope but not its angle: a boat lying along the
diagonal of a square label and a square object filling it have the same label. Inside the label the pixels
that differ from the surrounding background trace the object, and their second moments give its long-axis
direction (which diagonal) and its aspect ratio ``a`` (for a filled rectangle the principal standard
deviations are in the ratio of the sides). Given ``a`` and the label's height/width ratio ``r``, the one
angle whose rectangle has exactly this envelope solves ``r·(a cos φ + sin φ) = a sin φ + cos φ``:

    tan φ = (r·a − 1) / (a − r),    φ ∈ [0, π/2],    a ≥ max(r, 1/r)

so every pseudo-box has *exactly* the label's envelope (the envelope loss is unchanged) and adds an angle
and aspect learned from the real image — what H2RBox-style weak supervision and SAM-mask pseudo-labels
(minimum-area rectangle of a mask) provide, here from a background-contrast mask, without extra models.

Each box gets a confidence in [0, 1]: 0 for round or ambiguous objects (aspect near 1, or moments that
disagree with the solved angle), so the angle loss can ignore them.
"""

from __future__ import annotations

import math

import torch
from torchvision.ops import roi_align

from sgg.ops import box_to_envelope, normalize_le90

__all__ = ["pseudo_oriented_boxes", "iter_pseudo_boxes", "with_pseudo_boxes"]


def _otsu(values: torch.Tensor, bins: int = 32) -> torch.Tensor:
    """Per-row Otsu threshold of ``values`` (N, K) (each row scaled to its own [min, max])."""
    lo, hi = values.min(1, keepdim=True).values, values.max(1, keepdim=True).values
    q = ((values - lo) / (hi - lo).clamp(min=1e-6) * (bins - 1)).round().long()
    hist = torch.zeros(values.shape[0], bins, dtype=values.dtype, device=values.device)
    hist.scatter_add_(1, q, torch.ones_like(values))
    p = hist / hist.sum(1, keepdim=True)
    centres = torch.arange(bins, dtype=values.dtype, device=values.device)
    w0 = p.cumsum(1)
    m0 = (p * centres).cumsum(1)
    mt = m0[:, -1:]
    between = (mt * w0 - m0) ** 2 / (w0 * (1 - w0)).clamp(min=1e-9)
    k = between[:, :-1].argmax(1, keepdim=True).to(values.dtype)
    return lo + (k + 0.5) / (bins - 1) * (hi - lo)


@torch.no_grad()
def pseudo_oriented_boxes(image: torch.Tensor, hbb: torch.Tensor, grid: int = 32, ring: float = 0.25,
                          max_aspect: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Oriented le90 boxes (N, 5) whose envelopes equal the horizontal labels, and their confidences (N,).

    Args:
        image: (C, H, W) float image (any range; channels are compared as a vector).
        hbb: (N, 4) labels ``x1, y1, x2, y2`` in image pixels.
        grid: each label is resampled to ``grid × grid`` cells (anisotropically; moments use pixel units).
        ring: the background is the median colour of a ring this fraction of the label's size around it.
        max_aspect: cap on the moment aspect ratio.
    """
    hbb = hbb.to(torch.float32).reshape(-1, 4)
    n = hbb.shape[0]
    if n == 0:
        return hbb.new_zeros(0, 5), hbb.new_zeros(0)
    img = image.to(torch.float32)[None]
    wh = (hbb[:, 2:] - hbb[:, :2]).clamp(min=1.0)
    ctr = (hbb[:, :2] + hbb[:, 2:]) / 2
    # the label grown by the ring on each side, sampled so that the label itself is the central grid×grid cells
    pad = max(1, round(grid * ring))
    g = grid + 2 * pad
    half = wh * (g / grid) / 2
    rois = torch.cat([torch.zeros(n, 1), ctr - half, ctr + half], 1)
    patch = roi_align(img, rois, (g, g), spatial_scale=1.0, sampling_ratio=2, aligned=True)  # (N,C,g,g)
    inner = torch.zeros(g, g, dtype=torch.bool)
    inner[pad: pad + grid, pad: pad + grid] = True
    flat = patch.flatten(2)  # (N, C, g²)
    bg = flat[:, :, ~inner.flatten()].median(2).values  # (N, C)
    dist = (flat[:, :, inner.flatten()] - bg[:, :, None]).norm(dim=1)  # (N, grid²)
    mask = (dist > _otsu(dist)).to(torch.float32)
    # moments in pixel units about the mask's centroid
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float32) + 0.5,
                            torch.arange(grid, dtype=torch.float32) + 0.5, indexing="ij")
    x = xs.flatten()[None] * (wh[:, :1] / grid)
    y = ys.flatten()[None] * (wh[:, 1:] / grid)
    m = mask.sum(1).clamp(min=1.0)
    mx, my = (mask * x).sum(1) / m, (mask * y).sum(1) / m
    dx, dy = x - mx[:, None], y - my[:, None]
    mu20, mu02, mu11 = (mask * dx * dx).sum(1) / m, (mask * dy * dy).sum(1) / m, (mask * dx * dy).sum(1) / m
    tr, det = mu20 + mu02, (mu20 * mu02 - mu11 ** 2).clamp(min=0)
    disc = (tr ** 2 / 4 - det).clamp(min=0).sqrt()
    l1, l2 = tr / 2 + disc, (tr / 2 - disc).clamp(min=1e-6)
    a_m = (l1 / l2).sqrt().clamp(1.0, max_aspect)
    phi_m = 0.5 * torch.atan2(2 * mu11, mu20 - mu02)  # long-axis angle of the mask, image coordinates
    # the angle whose rectangle of aspect a has exactly this envelope
    r = wh[:, 1] / wh[:, 0]
    a = torch.maximum(a_m, torch.maximum(r, 1 / r))
    phi = torch.atan2(r * a - 1, a - r).clamp(0.0, math.pi / 2)
    theta = torch.where(mu11 < 0, -phi, phi)
    short = wh[:, 0] / (a * torch.cos(phi) + torch.sin(phi))
    boxes = normalize_le90(torch.stack([ctr[:, 0], ctr[:, 1], a * short, short, theta], 1))
    # confidence: elongated, and the mask's own axis agrees with the solved one (cos 2Δ ≥ 0.5 ⇔ Δ ≤ 30°)
    elong = ((a - 1.2) / 0.8).clamp(0.0, 1.0)
    agree = ((torch.cos(2 * (theta - phi_m)) - 0.5) / 0.5).clamp(0.0, 1.0)
    return boxes, elong * agree


def iter_pseudo_boxes(records: list, readers=None):
    """``(record, image)`` per SceneRecord of a horizontal-box image: the record with its boxes replaced by
    :func:`pseudo_oriented_boxes` (same envelopes) and ``angle_weight`` set to the confidences, and the whole
    level-0 image it was read from (``None`` for a record without boxes, which is not read). One read per
    image, streamed: a caller that needs the pixels too (a copy-paste bank) need not read them again."""
    from dataclasses import replace

    from sgg.datasets.tiling import ReaderCache, read_whole

    readers = readers or ReaderCache()
    for sc in records:
        if sc.boxes.shape[0] == 0:
            yield replace(sc, angle_weight=sc.boxes.new_zeros(0)), None
            continue
        image = read_whole(readers.get(sc.image_path), sc.width, sc.height)
        boxes, conf = pseudo_oriented_boxes(image, box_to_envelope(sc.boxes))
        yield replace(sc, boxes=boxes, angle_weight=conf), image


def with_pseudo_boxes(records: list, readers=None) -> list:
    """The records of :func:`iter_pseudo_boxes` (each image read once, whole)."""
    return [sc for sc, _ in iter_pseudo_boxes(records, readers)]
