"""Conversions between oriented-box conventions, corner polygons, envelopes and shapely geometries.

Box layout everywhere: ``(cx, cy, w, h, angle)`` in pixel units, angle in radians, **le90**: angle in
[-π/2, π/2) and ``w`` is the side along the direction ``(cos angle, sin angle)``. Image coordinates have
x to the right and y *down*, so a positive angle turns the w-side clockwise on screen.

Corner order of :func:`box_to_corners`: the box-local points ``(-w/2, -h/2), (+w/2, -h/2), (+w/2, +h/2),
(-w/2, +h/2)`` rotated by the angle and moved to the centre. For angle 0 that is top-left, top-right,
bottom-right, bottom-left: clockwise on screen (y down), i.e. counter-clockwise in the mathematical
(y up) sense, so the shoelace formula gives a *positive* area. DOTA lists corners clockwise on screen too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = [
    "wrap_le90",
    "normalize_le90",
    "box_to_corners",
    "corners_to_box",
    "box_to_envelope",
    "box_to_shapely",
    "shapely_to_box",
    "le90_to_oc",
    "oc_to_le90",
]

_HALF_PI = math.pi / 2


def _as_boxes(boxes: Any) -> torch.Tensor:
    """Float tensor of shape (N, 5) (a single (5,) box becomes (1, 5))."""
    t = boxes if isinstance(boxes, torch.Tensor) else torch.as_tensor(np.asarray(boxes))
    if not t.is_floating_point():
        t = t.float()
    if t.numel() == 0:
        return t.reshape(0, 5)
    if t.shape[-1] != 5 or t.dim() > 2:
        raise ValueError(f"oriented boxes must have shape (N, 5) (cx, cy, w, h, angle); got {tuple(t.shape)}")
    return t.reshape(-1, 5)


def _wrap(angle: torch.Tensor, period: float) -> torch.Tensor:
    """Wrap angles into [-period/2, period/2) (robust to the rounding at the upper end)."""
    out = angle - period * torch.floor((angle + period / 2) / period)
    out = torch.where(out >= period / 2, out - period, out)
    return torch.where(out < -period / 2, out + period, out)


def wrap_le90(angle: torch.Tensor) -> torch.Tensor:
    """Angles wrapped into le90's [-π/2, π/2) (boxes keep w and h: a half turn leaves a box unchanged)."""
    return _wrap(angle, math.pi)


def normalize_le90(boxes: Any) -> torch.Tensor:
    """Canonical le90 boxes: ``w >= h`` (swap and turn by π/2 otherwise), angle in [-π/2, π/2).

    Squares (w == h) are invariant under quarter turns, so their angle is reduced to [-π/4, π/4):
    two squares that are the same geometry get the same numbers.
    """
    b = _as_boxes(boxes)
    cx, cy, w, h, a = b.unbind(-1)
    swap = h > w
    w2, h2 = torch.where(swap, h, w), torch.where(swap, w, h)
    a = _wrap(torch.where(swap, a + _HALF_PI, a), math.pi)
    a = torch.where(w2 == h2, _wrap(a, _HALF_PI), a)
    return torch.stack([cx, cy, w2, h2, a], dim=-1)


def box_to_corners(boxes: Any) -> torch.Tensor:
    """(N, 4, 2) corners, in the order given in the module docstring."""
    b = _as_boxes(boxes)
    cx, cy, w, h, a = (v[:, None] for v in b.unbind(-1))
    c, s = torch.cos(a), torch.sin(a)
    dx = torch.cat([-w, w, w, -w], dim=1) / 2
    dy = torch.cat([-h, -h, h, h], dim=1) / 2
    x = cx + dx * c - dy * s
    y = cy + dx * s + dy * c
    return torch.stack([x, y], dim=-1)


def _min_area_rect(pts: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Smallest rectangle around point sets ``pts`` (N,K,2) among the candidate side directions (N,D,2).

    The minimum-area enclosing rectangle has one side along an edge of the convex hull, so testing the
    hull edge directions (or all point-pair directions, a superset) is exact. Zero-length directions are
    ignored. Returns (N,5) boxes with w along the chosen direction (not yet normalised).
    """
    norm = dirs.norm(dim=-1)
    valid = norm > 0
    u = dirs / norm.clamp_min(torch.finfo(dirs.dtype).tiny)[..., None]
    u = torch.where(valid[..., None], u, torch.zeros_like(u))
    v = torch.stack([-u[..., 1], u[..., 0]], dim=-1)
    pu = torch.einsum("ndc,nkc->ndk", u, pts)
    pv = torch.einsum("ndc,nkc->ndk", v, pts)
    umin, umax = pu.min(-1).values, pu.max(-1).values
    vmin, vmax = pv.min(-1).values, pv.max(-1).values
    area = (umax - umin) * (vmax - vmin)
    area = torch.where(valid, area, torch.full_like(area, math.inf))
    k = area.argmin(dim=-1, keepdim=True)

    def pick(t: torch.Tensor) -> torch.Tensor:
        return t.gather(1, k).squeeze(1)

    uk = u.gather(1, k[..., None].expand(-1, -1, 2)).squeeze(1)
    vk = torch.stack([-uk[:, 1], uk[:, 0]], dim=-1)
    cu, cv = (pick(umin) + pick(umax)) / 2, (pick(vmin) + pick(vmax)) / 2
    centre = cu[:, None] * uk + cv[:, None] * vk
    w, h = pick(umax) - pick(umin), pick(vmax) - pick(vmin)
    angle = torch.atan2(uk[:, 1], uk[:, 0])
    return torch.stack([centre[:, 0], centre[:, 1], w, h, angle], dim=-1)


def corners_to_box(corners: Any) -> torch.Tensor:
    """Minimum-area le90 boxes (canonical, w >= h) around polygons: (N,4,2), (N,8) DOTA numbers or (N,K,2).

    Works in float64 relative to each polygon's mean point (exact for 30,000-px coordinates), testing
    every point-pair direction (6 for a quadrilateral; it does not matter in which order the corners come).
    """
    t = corners if isinstance(corners, torch.Tensor) else torch.as_tensor(np.asarray(corners))
    out_dtype = t.dtype if t.is_floating_point() else torch.float32
    if t.numel() == 0:
        return torch.zeros(0, 5, dtype=out_dtype, device=t.device)
    if t.dim() == 2 and t.shape[-1] % 2 == 0 and t.shape[-1] >= 6:
        t = t.reshape(t.shape[0], -1, 2)
    if t.dim() == 1 and t.shape[0] % 2 == 0:
        t = t.reshape(1, -1, 2)
    if t.dim() != 3 or t.shape[-1] != 2 or t.shape[1] < 2:
        raise ValueError(f"corners must have shape (N, K, 2) or (N, 2K); got {tuple(t.shape)}")
    pts = t.double()
    origin = pts.mean(dim=1, keepdim=True)
    pts = pts - origin
    i, j = torch.triu_indices(pts.shape[1], pts.shape[1], offset=1, device=pts.device)
    box = _min_area_rect(pts, pts[:, j] - pts[:, i])
    box[:, :2] += origin[:, 0]
    return normalize_le90(box).to(out_dtype)


def rotate_boxes(boxes: torch.Tensor, theta: torch.Tensor | float, centre: torch.Tensor) -> torch.Tensor:
    """Boxes (N,5) turned by ``theta`` radians ((N,) or a number) about ``centre`` ((N,2) or (2,)): a point
    ``q`` goes to ``c + R(θ)(q − c)`` (x right, y down: positive θ turns clockwise on screen, as the le90 angle
    does) and each angle gains θ, wrapped to le90's [−π/2, π/2) (w and h kept)."""
    theta = torch.as_tensor(theta, dtype=boxes.dtype, device=boxes.device)
    centre = torch.as_tensor(centre, dtype=boxes.dtype, device=boxes.device).reshape(-1, 2)
    c, s = torch.cos(theta), torch.sin(theta)
    dx, dy = boxes[:, 0] - centre[:, 0], boxes[:, 1] - centre[:, 1]
    return torch.stack([centre[:, 0] + c * dx - s * dy, centre[:, 1] + s * dx + c * dy,
                        boxes[:, 2], boxes[:, 3], wrap_le90(boxes[:, 4] + theta)], 1)


def box_to_envelope(boxes: Any) -> torch.Tensor:
    """(N, 4) axis-aligned envelopes ``x1, y1, x2, y2``."""
    b = _as_boxes(boxes)
    cx, cy, w, h, a = b.unbind(-1)
    c, s = torch.cos(a).abs(), torch.sin(a).abs()
    ex = (w * c + h * s) / 2
    ey = (w * s + h * c) / 2
    return torch.stack([cx - ex, cy - ey, cx + ex, cy + ey], dim=-1)


def box_to_shapely(boxes: Any) -> np.ndarray:
    """Object array of shapely Polygons (corners computed in float64)."""
    import shapely

    b = _as_boxes(boxes).detach().cpu().double()
    return np.asarray(shapely.polygons(box_to_corners(b).numpy()), dtype=object).reshape(-1)


def shapely_to_box(geoms: Any) -> torch.Tensor:
    """Minimum-area le90 boxes (float32, canonical) around shapely geometries (any shape: convex hull).

    Raises ``ValueError`` for empty geometries.
    """
    import shapely

    g = np.asarray(geoms, dtype=object).reshape(-1)
    if g.size == 0:
        return torch.zeros(0, 5)
    hull = shapely.convex_hull(g)
    empty = shapely.is_empty(hull) | shapely.is_missing(hull)
    if empty.any():
        raise ValueError(f"shapely_to_box: geometry {int(np.flatnonzero(empty)[0])} is empty")
    xy, idx = shapely.get_coordinates(hull, return_index=True)
    counts = np.bincount(idx, minlength=g.size)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    kmax = int(counts.max())
    # pad each hull ring to kmax points by repeating its last point (zero-length edges are ignored)
    take = starts[:, None] + np.minimum(np.arange(kmax)[None, :], counts[:, None] - 1)
    pts = torch.from_numpy(xy[take])
    origin = pts.mean(dim=1, keepdim=True)
    pts = pts - origin
    dirs = torch.roll(pts, -1, dims=1) - pts  # consecutive hull edges
    box = _min_area_rect(pts, dirs)
    box[:, :2] += origin[:, 0]
    return normalize_le90(box).float()


def le90_to_oc(boxes: Any, degrees: bool = False) -> torch.Tensor:
    """le90 boxes -> the OpenCV (>= 4.5.1 ``minAreaRect``) "oc" convention used by FIT-RS.

    "oc": angle θ in (0, π/2], ``w`` is the side along ``(cos θ, sin θ)`` (so w may be < h). The geometry is
    unchanged: θ = angle + kπ/2 and w, h swap when k is odd. With ``degrees=True`` the angle column is in
    degrees, (0, 90] — FIT-RS writes ``{<cx><cy><w><h>|<deg>}`` with integer degrees (round it yourself).
    """
    b = _as_boxes(boxes)
    d = b.double()
    cx, cy, w, h, a = d.unbind(-1)
    k = torch.ceil(a / _HALF_PI) - 1
    t = a - k * _HALF_PI
    low = t <= 0
    k, t = torch.where(low, k - 1, k), torch.where(low, t + _HALF_PI, t)
    high = t > _HALF_PI * (1 + 1e-12)
    k, t = torch.where(high, k + 1, k), torch.where(high, t - _HALF_PI, t)
    odd = torch.remainder(k, 2) != 0
    w2, h2 = torch.where(odd, h, w), torch.where(odd, w, h)
    if degrees:
        t = torch.rad2deg(t)
    return torch.stack([cx, cy, w2, h2, t], dim=-1).to(b.dtype)


def oc_to_le90(boxes: Any, degrees: bool = False) -> torch.Tensor:
    """"oc" boxes (angle in (0, π/2], or degrees in (0, 90] with ``degrees=True``) -> canonical le90."""
    b = _as_boxes(boxes)
    if degrees:
        b = torch.cat([b[:, :4], torch.deg2rad(b[:, 4:5].double()).to(b.dtype)], dim=1)
    return normalize_le90(b)
