"""Rotated RoIAlign in pure PyTorch (differentiable w.r.t. the features).

Each oriented box is divided into ``output_size`` bins in its own frame (columns along w, rows along h);
every bin averages ``sampling_ratio``² bilinear samples placed at the centres of a regular sub-grid.
Bilinear interpolation follows ``torchvision.ops.roi_align`` exactly (samples more than one pixel outside
the map are 0, samples in the outer half-pixel band are clamped to the border), so for angle 0 the result
equals torchvision's up to float rounding. Samples are gathered from a (B·H·W, C) view of the features in
chunks of boxes, so memory stays bounded; gradients flow through the gathers.
"""

from __future__ import annotations

from typing import Any

import torch

from .conversions import _as_boxes

__all__ = ["rotated_roi_align"]


def _bilinear(rows: torch.Tensor, base: torch.Tensor, x: torch.Tensor, y: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Sample (K,S) points at pixel coordinates x, y (pixel centres at integers) -> (K,S,C)."""
    valid = (y >= -1.0) & (y <= height) & (x >= -1.0) & (x <= width)
    y = y.clamp(min=0, max=height - 1)
    x = x.clamp(min=0, max=width - 1)
    y0 = y.floor()
    x0 = x.floor()
    ly, lx = y - y0, x - x0
    hy, hx = 1 - ly, 1 - lx
    y0, x0 = y0.long(), x0.long()
    y1 = (y0 + 1).clamp(max=height - 1)
    x1 = (x0 + 1).clamp(max=width - 1)
    vf = valid.to(rows.dtype)
    out = None
    for yy, xx, wgt in ((y0, x0, hy * hx), (y0, x1, hy * lx), (y1, x0, ly * hx), (y1, x1, ly * lx)):
        term = rows[base[:, None] + yy * width + xx] * (wgt * vf)[..., None]
        out = term if out is None else out + term
    return out


def rotated_roi_align(
    features: torch.Tensor,
    boxes: Any,
    batch_idx: Any,
    output_size: int | tuple[int, int] = 7,
    spatial_scale: float = 1.0,
    sampling_ratio: int = 2,
    aligned: bool = True,
    max_samples: int = 1 << 24,
) -> torch.Tensor:
    """(K, C, oh, ow) features of K le90 boxes (pixel units of the image; ``spatial_scale`` maps them to
    the feature map) taken from ``features`` (B,C,H,W) image ``batch_idx[k]``.

    ``aligned=True`` shifts box coordinates by -0.5 px on the feature map, as torchvision/mmcv do, so
    that pixel centres are sampled symmetrically. ``max_samples`` bounds the gathered K·S·C elements per chunk.
    """
    if features.dim() != 4:
        raise ValueError(f"rotated_roi_align: features must be (B, C, H, W), got {tuple(features.shape)}")
    if sampling_ratio <= 0:
        raise ValueError("rotated_roi_align: sampling_ratio must be a positive integer")
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    n_img, ch, height, width = features.shape
    b = _as_boxes(boxes).to(device=features.device, dtype=features.dtype)
    bi = torch.as_tensor(batch_idx, device=features.device).reshape(-1).long()
    k = b.shape[0]
    if bi.shape[0] != k:
        raise ValueError(f"rotated_roi_align: {k} boxes but {bi.shape[0]} batch indices")
    if k == 0:
        return features.new_zeros(0, ch, oh, ow)
    if bool((bi < 0).any()) or bool((bi >= n_img).any()):
        raise ValueError(f"rotated_roi_align: batch_idx out of range for {n_img} images")
    off = 0.5 if aligned else 0.0
    cx, cy = b[:, 0] * spatial_scale - off, b[:, 1] * spatial_scale - off
    w, h = b[:, 2] * spatial_scale, b[:, 3] * spatial_scale
    if not aligned:
        w, h = w.clamp_min(1.0), h.clamp_min(1.0)
    c, s = torch.cos(b[:, 4]), torch.sin(b[:, 4])
    gh, gw = oh * sampling_ratio, ow * sampling_ratio
    fu = (torch.arange(gw, device=b.device, dtype=b.dtype) + 0.5) / gw - 0.5
    fv = (torch.arange(gh, device=b.device, dtype=b.dtype) + 0.5) / gh - 0.5
    u = (w[:, None] * fu[None, :])[:, None, :]  # (K,1,gw) along w
    v = (h[:, None] * fv[None, :])[:, :, None]  # (K,gh,1) along h
    x = cx[:, None, None] + u * c[:, None, None] - v * s[:, None, None]
    y = cy[:, None, None] + u * s[:, None, None] + v * c[:, None, None]
    rows = features.permute(0, 2, 3, 1).reshape(n_img * height * width, ch)
    base = bi * (height * width)
    step = max(1, max_samples // max(1, gh * gw * ch))
    parts = []
    for k0 in range(0, k, step):
        sl = slice(k0, k0 + step)
        vals = _bilinear(rows, base[sl], x[sl].reshape(-1, gh * gw), y[sl].reshape(-1, gh * gw), height, width)
        vals = vals.reshape(-1, oh, sampling_ratio, ow, sampling_ratio, ch).mean(dim=(2, 4))
        parts.append(vals.permute(0, 3, 1, 2))
    return torch.cat(parts).contiguous()
