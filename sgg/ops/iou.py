"""Exact rotated IoU / IoF in pure PyTorch: envelope prefilter (``spatial_pairs``) + chunked convex polygon clipping.

Only pairs whose axis-aligned envelopes overlap are clipped (everything else is 0), in chunks of
``chunk_size`` pairs so memory stays bounded for any N × M. Clipping is Sutherland–Hodgman of box a,
expressed in box b's frame (origin at b's centre, so 30,000-px coordinates and sub-pixel boxes keep full
accuracy), against b's four axis-parallel sides, on fixed-size tensors: a convex ring clipped by a
half-plane keeps one cyclic run of inside vertices plus an entry and an exit point, so each step is a
gather at computed indices (4 → 5 → 6 → 7 → 8 slots, no sorting or compaction), then the shoelace area.
It runs in float64; inputs are usually float32 and the result has the input dtype.
"""

from __future__ import annotations

from typing import Any

import torch

from .conversions import _as_boxes, box_to_envelope
from .pairs import envelopes_meet, spatial_pairs

__all__ = ["rotated_iou", "rotated_iou_aligned", "rotated_iof", "pairwise_intersection"]

DEFAULT_CHUNK = 1 << 15
REL_TOL = 1e-12


def _clip_run(x: torch.Tensor, y: torch.Tensor, dd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clip convex rings (P,K) by the half-planes dd >= 0 (dd: signed distance, already tolerance-shifted).

    The inside vertices of a convex ring form one cyclic run starting at the vertex i_s whose predecessor is
    outside; the clipped ring is [entry point, run..., exit point] padded with the exit point -- built with
    gathers at computed indices, no compaction. When every vertex is inside, the "entry point" lands on the
    closing edge's line, which leaves the shoelace sum unchanged. Returns (P,K+1) rings and an "empty" mask.
    """
    p, k = x.shape
    inside = dd >= 0
    n_in = inside.sum(1)
    entering = inside.clone()
    entering[:, 1:] &= ~inside[:, :-1]
    entering[:, 0] &= ~inside[:, -1]
    i_s = entering.to(torch.uint8).argmax(1)
    ar = torch.arange(k + 1, device=x.device)
    idx = i_s[:, None] + ar[None, :k]
    idx = torch.where(idx >= k, idx - k, idx)
    rx, ry = x.gather(1, idx), y.gather(1, idx)
    ends = torch.stack([i_s - 1, i_s, i_s + n_in - 1, i_s + n_in], 1)
    ends = torch.where(ends >= k, ends - k, ends)
    ends = torch.where(ends < 0, ends + k, ends)
    ex, ey, ed = x.gather(1, ends), y.gather(1, ends), dd.gather(1, ends)
    # entry on edge ends0 -> ends1 (d0 < 0 <= d1), exit on ends2 -> ends3 (d0 >= 0 > d1); t clamped to [0, 1]
    t_in = (ed[:, 0] / (ed[:, 0] - ed[:, 1]).clamp_max(-1e-300)).clamp(0, 1)
    t_out = (ed[:, 2] / (ed[:, 2] - ed[:, 3]).clamp_min(1e-300)).clamp(0, 1)
    in_run = ar[None, 1:] <= n_in[:, None]
    px = torch.empty(p, k + 1, dtype=x.dtype, device=x.device)
    py = torch.empty_like(px)
    torch.add(ex[:, 0], t_in * (ex[:, 1] - ex[:, 0]), out=px[:, 0])
    torch.add(ey[:, 0], t_in * (ey[:, 1] - ey[:, 0]), out=py[:, 0])
    out_x = ex[:, 2] + t_out * (ex[:, 3] - ex[:, 2])
    out_y = ey[:, 2] + t_out * (ey[:, 3] - ey[:, 2])
    torch.where(in_run, rx, out_x[:, None], out=px[:, 1:])
    torch.where(in_run, ry, out_y[:, None], out=py[:, 1:])
    return px, py, n_in == 0


def _intersection_chunk(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact intersection areas (float64) of aligned box pairs: a's corners in b's frame, clipped by b's
    four sides (shifted outwards by REL_TOL × size so near-collinear sides classify consistently).

    Pairs separated on one of the four box axes (0) or with one box inside the other (its area) are
    settled by cheap projections first; only the rest are clipped.
    """
    a, b = a.double(), b.double()
    cb, sb = torch.cos(b[:, 4]), torch.sin(b[:, 4])
    dx, dy = a[:, 0] - b[:, 0], a[:, 1] - b[:, 1]
    ox, oy = dx * cb + dy * sb, -dx * sb + dy * cb  # a's centre in b's frame
    rel = a[:, 4] - b[:, 4]
    c, s = torch.cos(rel), torch.sin(rel)
    hw, hh, bw, bh = a[:, 2] / 2, a[:, 3] / 2, b[:, 2] / 2, b[:, 3] / 2
    tol = REL_TOL * 2 * (hw + hh + bw + bh)
    ac, as_ = c.abs(), s.abs()
    # half extents of a along b's axes, of b along a's axes; b's centre in a's frame
    ax, ay = ac * hw + as_ * hh, as_ * hw + ac * hh
    bx, by = ac * bw + as_ * bh, as_ * bw + ac * bh
    qx, qy = -(c * ox + s * oy), s * ox - c * oy
    apart = (ox.abs() > bw + ax + tol) | (oy.abs() > bh + ay + tol) | (qx.abs() > hw + bx + tol) | (qy.abs() > hh + by + tol)
    a_in = (ox.abs() + ax <= bw + tol) & (oy.abs() + ay <= bh + tol)
    b_in = (qx.abs() + bx <= hw + tol) & (qy.abs() + by <= hh + tol)
    area = torch.where(a_in, a[:, 2] * a[:, 3], torch.where(b_in, b[:, 2] * b[:, 3], torch.zeros_like(ox)))
    todo = (~(apart | a_in | b_in)).nonzero(as_tuple=True)[0]
    if todo.numel() == 0:
        return area
    ox, oy, c, s, hw, hh, bw, bh, tol = (v[todo, None] for v in (ox, oy, c, s, hw, hh, bw, bh, tol))
    lx = torch.cat([-hw, hw, hw, -hw], 1)
    ly = torch.cat([-hh, -hh, hh, hh], 1)
    x = ox + lx * c - ly * s
    y = oy + lx * s + ly * c
    x, y, e1 = _clip_run(x, y, bw - x + tol)
    x, y, e2 = _clip_run(x, y, x + bw + tol)
    x, y, e3 = _clip_run(x, y, bh - y + tol)
    x, y, e4 = _clip_run(x, y, y + bh + tol)
    twice = (x[:, :-1] * y[:, 1:] - y[:, :-1] * x[:, 1:]).sum(1) + x[:, -1] * y[:, 0] - y[:, -1] * x[:, 0]
    area[todo] = (0.5 * twice).clamp_min(0).masked_fill(e1 | e2 | e3 | e4, 0.0)
    return area


def pairwise_intersection(a: Any, b: Any, chunk_size: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Element-wise exact intersection areas (float64) of two (P,5) box tensors, in chunks."""
    a, b = _as_boxes(a), _as_boxes(b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"aligned boxes need equal lengths, got {a.shape[0]} and {b.shape[0]}")
    if a.shape[0] == 0:
        return torch.zeros(0, dtype=torch.float64, device=a.device)
    parts = [_intersection_chunk(a[i : i + chunk_size], b[i : i + chunk_size]) for i in range(0, a.shape[0], chunk_size)]
    return torch.cat(parts)


def _overlaps(a: Any, b: Any, mode: str, chunk_size: int) -> torch.Tensor:
    a, b = _as_boxes(a), _as_boxes(b)
    dtype = torch.promote_types(a.dtype, b.dtype)
    out = torch.zeros(a.shape[0], b.shape[0], dtype=dtype, device=a.device)
    if out.numel() == 0:
        return out
    i, j = spatial_pairs(box_to_envelope(a.double()), box_to_envelope(b.double())).unbind(1)
    if i.numel() == 0:
        return out
    inter = pairwise_intersection(a[i], b[j], chunk_size)
    area_a = (a[:, 2].double() * a[:, 3].double())[i]
    if mode == "iou":
        denom = area_a + (b[:, 2].double() * b[:, 3].double())[j] - inter
    else:
        denom = area_a
    val = torch.where(denom > 0, inter / denom.clamp_min(1e-300), torch.zeros_like(inter)).clamp(0, 1)
    out[i, j] = val.to(dtype)
    return out


def rotated_iou(a: Any, b: Any, chunk_size: int = DEFAULT_CHUNK) -> torch.Tensor:
    """(N, M) exact IoU between le90 boxes ``a`` (N,5) and ``b`` (M,5); memory O(N·M/8 + chunk_size)."""
    return _overlaps(a, b, "iou", chunk_size)


def rotated_iof(a: Any, b: Any, chunk_size: int = DEFAULT_CHUNK) -> torch.Tensor:
    """(N, M) intersection over the area of the *first* box: how much of a[i] lies inside b[j]."""
    return _overlaps(a, b, "iof", chunk_size)


def rotated_iou_aligned(a: Any, b: Any, chunk_size: int = DEFAULT_CHUNK) -> torch.Tensor:
    """(N,) IoU of a[k] with b[k]; only envelope-overlapping pairs are clipped."""
    a, b = _as_boxes(a), _as_boxes(b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"rotated_iou_aligned: {a.shape[0]} boxes against {b.shape[0]}")
    dtype = torch.promote_types(a.dtype, b.dtype)
    out = torch.zeros(a.shape[0], dtype=dtype, device=a.device)
    ea, eb = box_to_envelope(a.double()), box_to_envelope(b.double())
    idx = envelopes_meet(ea, eb).nonzero(as_tuple=True)[0]
    if idx.numel() == 0:
        return out
    inter = pairwise_intersection(a[idx], b[idx], chunk_size)
    union = a[idx, 2].double() * a[idx, 3].double() + b[idx, 2].double() * b[idx, 3].double() - inter
    val = torch.where(union > 0, inter / union.clamp_min(1e-300), torch.zeros_like(inter)).clamp(0, 1)
    out[idx] = val.to(dtype)
    return out
