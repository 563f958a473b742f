"""Tile targets and geometric augmentation for oriented boxes (le90, pixel coordinates).

Coordinates are continuous pixel coordinates: pixel (row r, col c) covers ``[c, c+1) × [r, r+1)``, so an
image of width W spans ``x ∈ [0, W]``. Images are (C, H, W) tensors. Every function transforms image and
boxes together so that a box drawn on the image before the transform covers the same pixels after it.

Angles: a box's w side points along ``(cos θ, sin θ)`` (x right, y down). A horizontal flip maps that
direction to ``(-cos θ, sin θ)``, i.e. θ → -θ; a vertical flip likewise gives -θ; ``torch.rot90(k=1)`` on
(H, W) (counter-clockwise on screen) maps ``(x, y) → (y, W - x)`` and θ → θ - π/2. Results are wrapped back
into le90's [-π/2, π/2) with w and h kept (a half turn leaves a box unchanged).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from sgg.ops import rotate_boxes, wrap_le90

HALF_PI = math.pi / 2


def hflip(image: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror left-right: x → W - x, θ → -θ."""
    w = image.shape[-1]
    b = boxes.clone()
    b[:, 0] = w - b[:, 0]
    b[:, 4] = wrap_le90(-b[:, 4])
    return image.flip(-1), b


def vflip(image: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror top-bottom: y → H - y, θ → -θ."""
    h = image.shape[-2]
    b = boxes.clone()
    b[:, 1] = h - b[:, 1]
    b[:, 4] = wrap_le90(-b[:, 4])
    return image.flip(-2), b


def rot90(image: torch.Tensor, boxes: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate by k quarter turns as ``torch.rot90(image, k, dims=(-2, -1))`` does (counter-clockwise)."""
    k = int(k) % 4
    b = boxes.clone()
    h, w = image.shape[-2:]
    for _ in range(k):  # at most three cheap vectorised steps
        x, y = b[:, 0].clone(), b[:, 1].clone()
        b[:, 0], b[:, 1] = y, w - x
        b[:, 4] = wrap_le90(b[:, 4] - HALF_PI)
        h, w = w, h
    return torch.rot90(image, k, dims=(-2, -1)) if k else image, b


def random_flip_rot90(
    image: torch.Tensor,
    boxes: torch.Tensor,
    rng: np.random.Generator,
    *,
    flip: bool = True,
    rotate: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random horizontal/vertical flip (p = 0.5 each) and a random number (0–3) of quarter turns."""
    if flip and rng.random() < 0.5:
        image, boxes = hflip(image, boxes)
    if flip and rng.random() < 0.5:
        image, boxes = vflip(image, boxes)
    if rotate:
        image, boxes = rot90(image, boxes, int(rng.integers(0, 4)))
    return image, boxes


def rotate_about_centre(image: torch.Tensor, boxes: torch.Tensor, theta: float, out_size: int
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn ``image`` (C,S,S) and its boxes by ``theta`` radians about the centre, then crop ``out_size``².

    A point ``q`` of the input lands at ``c_out + R(θ)(q - c_in)`` (x right, y down, so a positive θ turns
    clockwise on screen) and every box angle gains θ. Read the input ``out_size · (|cos θ| + |sin θ|)`` wide
    so the crop has no empty corners. Bilinear sampling; the caller filters boxes against the crop.
    """
    s_in = image.shape[-1]
    c, s = math.cos(theta), math.sin(theta)
    half_in, half_out = s_in / 2, out_size / 2
    u = torch.arange(out_size, dtype=torch.float32) + 0.5 - half_out  # output pixel centres about the centre
    py, px = torch.meshgrid(u, u, indexing="ij")
    qx = half_in + c * px + s * py  # inverse rotation R(-θ)
    qy = half_in - s * px + c * py
    grid = torch.stack([2 * qx / s_in - 1, 2 * qy / image.shape[-2] - 1], -1)[None]
    out = torch.nn.functional.grid_sample(image[None].float(), grid, mode="bilinear", padding_mode="zeros",
                                          align_corners=False)[0]
    b = rotate_boxes(boxes, theta, torch.tensor([half_in, half_in]))
    b[:, :2] += half_out - half_in
    return out, b


def photometric(image: torch.Tensor, rng: np.random.Generator, strength: float = 1.0) -> torch.Tensor:
    """Random brightness, contrast, saturation, per-channel gain, gamma, blur and noise (image in [0, 1]).

    Synthetic scenes are cleaner than real imagery; jittering the radiometry makes features transfer.
    ``strength`` scales every range (0 = identity).
    """
    if strength <= 0:
        return image
    k = float(strength)
    x = image.float()
    grey = x.mean(0, keepdim=True)
    x = grey + (x - grey) * (1 + k * rng.uniform(-0.5, 0.5))  # saturation
    mean = x.mean()
    x = mean + (x - mean) * (1 + k * rng.uniform(-0.35, 0.35))  # contrast
    x = x * (1 + k * rng.uniform(-0.25, 0.25)) * torch.tensor(1 + k * rng.uniform(-0.08, 0.08, 3), dtype=x.dtype)[:, None, None]
    x = x.clamp(0, 1) ** float(np.exp(k * rng.uniform(-0.3, 0.3)))  # gamma
    if rng.random() < 0.3 * min(k, 1.0):  # mild blur (3×3 binomial)
        w = torch.tensor([1.0, 2.0, 1.0]) / 4
        ker = (w[:, None] * w[None]).expand(x.shape[0], 1, 3, 3).to(x)
        x = torch.nn.functional.conv2d(x[None], ker, padding=1, groups=x.shape[0])[0]
    if rng.random() < 0.5 * min(k, 1.0):
        gen = torch.Generator().manual_seed(int(rng.integers(0, 2**31)))
        x = x + torch.randn(x.shape, generator=gen) * (k * rng.uniform(0.0, 0.03))
    return x.clamp_(0, 1)


def window_box(window: Sequence[float]) -> torch.Tensor:
    """(1,5) oriented box of an axis-aligned window ``(col_off, row_off, width, height)``."""
    x, y, w, h = (float(v) for v in window)
    return torch.tensor([[x + w / 2, y + h / 2, w, h, 0.0]])


def tile_targets(
    boxes: torch.Tensor,
    window: Sequence[float],
    scale: float,
    min_iof: float = 0.7,
    min_size: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes of one tile: keep those with ≥ ``min_iof`` of their area inside ``window`` (level-0 pixels).

    Returns ``(tile_boxes, kept_indices)``: kept boxes moved to tile pixels (``(box - offset) * scale``) and
    *not* cropped — as STAR and the DOTA devkit's split tool keep the whole object, so the box may reach
    past the tile edge by up to ``1 - min_iof`` of its area. Boxes smaller than ``min_size`` tile pixels
    on their short side are dropped. IoF is exact (``sgg.ops.rotated_iof``), computed only for boxes whose
    envelope meets the window.
    """
    from sgg.ops import box_to_envelope, rotated_iof

    boxes = boxes.reshape(-1, 5).float()
    x0, y0, ww, wh = (float(v) for v in window)
    if len(boxes) == 0:
        return boxes.new_zeros(0, 5), torch.zeros(0, dtype=torch.long)
    env = box_to_envelope(boxes)
    near = (env[:, 2] > x0) & (env[:, 0] < x0 + ww) & (env[:, 3] > y0) & (env[:, 1] < y0 + wh)
    cand = near.nonzero().reshape(-1)
    if len(cand) == 0:
        return boxes.new_zeros(0, 5), cand
    env_c = env[cand]
    inside = (env_c[:, 0] >= x0) & (env_c[:, 1] >= y0) & (env_c[:, 2] <= x0 + ww) & (env_c[:, 3] <= y0 + wh)
    iof = torch.ones(len(cand))
    partial = (~inside).nonzero().reshape(-1)
    if len(partial):
        iof[partial] = rotated_iof(boxes[cand[partial]], window_box(window)).reshape(-1).float()
    keep = cand[iof >= min_iof - 1e-6]
    out = boxes[keep].clone()
    out[:, 0] = (out[:, 0] - x0) * scale
    out[:, 1] = (out[:, 1] - y0) * scale
    out[:, 2:4] = out[:, 2:4] * scale
    if min_size > 0 and len(out):
        big = torch.minimum(out[:, 2], out[:, 3]) >= min_size
        out, keep = out[big], keep[big]
    return out, keep


def padded_grid_windows(width: int, height: int, size: float, overlap: float = 0.0) -> np.ndarray:
    """(K,4) float windows ``(col_off, row_off, size, size)`` covering the image, rows outer, last row/col flush.

    Every window has the full (possibly fractional) side ``size``: along an axis shorter than ``size`` the one
    window starts at 0 and reaches past the edge, and the reader pads it (``tiling.read_window``). Training
    tiles need this fixed size; ``sgg.io.grid_windows`` instead shrinks windows to the image, never padding.
    """

    def starts(extent: int) -> np.ndarray:
        if extent <= size:
            return np.zeros(1)
        step = max(size - overlap, 1.0)
        s = np.arange(0.0, extent - size, step)
        return np.unique(np.append(s, extent - size))

    xs, ys = starts(width), starts(height)
    gx, gy = np.meshgrid(xs, ys)
    n = gx.size
    return np.stack([gx.ravel(), gy.ravel(), np.full(n, size), np.full(n, size)], axis=1)


def render_box_mask(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(H,W) bool mask of pixels whose centre lies inside any box (vectorised half-plane test).

    Used by tests to check that image and box transforms agree, and handy for visual debugging.
    """
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    mask = torch.zeros(height, width, dtype=torch.bool)
    for b in boxes.reshape(-1, 5).double():  # a handful of boxes in tests; pixels are vectorised
        cx, cy, w, h, a = b.tolist()
        dx, dy = xs - cx, ys - cy
        u = dx * math.cos(a) + dy * math.sin(a)
        v = -dx * math.sin(a) + dy * math.cos(a)
        mask |= (u.abs() <= w / 2) & (v.abs() <= h / 2)
    return mask
