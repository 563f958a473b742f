"""A tile's dominant direction modulo the image axes, from its edges: where to turn it for the ``align`` view.

A detector trained on horizontal-box labels draws objects best when they lie along the image axes (issue #12:
the mixed weights score 0.004 on the diagonal DOTA marina P0706, 0.215 with a 45° turned view). Man-made scenes
carry their layout in their edges — piers, quays, rows of moored boats, car-park lanes, taxiways — so the
dominant edge direction tells how far to turn a tile for its objects to lie along the axes.

Directions are compared modulo 90° (a pier and the boats moored across it count alike): each pixel's gradient
direction ψ votes e^{4iψ} with its squared gradient magnitude as weight, and the tile's direction is arg(Σ w e^{4iψ}) / 4,
its *coherence* |Σ w e^{4iψ}| / Σ w (1 for one straight-edged direction, ~0 for open water or clutter). This is
the fourth-harmonic analogue of the structure tensor's doubled angle. Zero pixels (nodata, the corners of a turned
canvas, tile padding) and a 4-px band around them (bilinear edges, the blur and the Sobel stencil reach 3 px)
are left out, so a collar or canvas edge cannot vote.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8


def dominant_direction(images: torch.Tensor, margin: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image of a (B,C,H,W) batch: (direction in radians in [0, π/2), coherence in [0, 1]).

    The direction θ is that of the edges as drawn in pixel coordinates (x right, y down): turning the image by θ
    with :func:`sgg.detectors.tta.turn_images` lays those edges along the axes. A batch with no valid pixel
    gives direction 0 and coherence 0."""
    if images.ndim != 4:
        raise ValueError(f"expected a (B,C,H,W) batch, got shape {tuple(images.shape)}")
    x = images.float()
    gray = x.mean(dim=1, keepdim=True)
    gray = F.avg_pool2d(gray, 3, stride=1, padding=1, count_include_pad=False)  # tame pixel noise and JPEG grain
    k = _SOBEL.to(gray.device)
    gx = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), k[None, None])
    gy = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), k.t()[None, None])
    invalid = (x == 0).all(dim=1, keepdim=True).float()
    if margin > 0:  # the edge between data and nodata is no scene direction
        invalid = F.max_pool2d(invalid, 2 * margin + 1, stride=1, padding=margin)
    w = (gx * gx + gy * gy) * (1 - invalid)  # squared magnitude, as the structure tensor weighs: strong edges lead
    psi4 = 4 * torch.atan2(gy, gx)
    re = (w * torch.cos(psi4)).flatten(1).sum(1)
    im = (w * torch.sin(psi4)).flatten(1).sum(1)
    total = w.flatten(1).sum(1)
    coherence = torch.where(total > 0, torch.hypot(re, im) / total.clamp_min(1e-12), torch.zeros_like(total))
    direction = torch.remainder(torch.atan2(im, re) / 4, math.pi / 2)
    direction = torch.where(direction >= math.pi / 2 - 1e-6, torch.zeros_like(direction), direction)  # −0 wraps
    return direction, coherence


def align_angle(images: torch.Tensor, min_degrees: float, min_coherence: float) -> list[float | None]:
    """Per image: the turn (radians) that lays its dominant direction along the axes, or ``None`` when that
    direction is within ``min_degrees`` of an axis or its coherence is under ``min_coherence``."""
    direction, coherence = dominant_direction(images)
    off_axis = torch.minimum(direction, math.pi / 2 - direction)
    ok = (off_axis >= math.radians(min_degrees)) & (coherence >= min_coherence)
    return [float(d) if g else None for d, g in zip(direction.tolist(), ok.tolist())]


__all__ = ["dominant_direction", "align_angle"]
