"""Geometry features of objects and pairs, computed from oriented boxes alone (no image needed).

Boxes are canonicalised first (``sgg.ops.normalize_le90``: w ≥ h), so a box and its 90°-turned twin
describe the same footprint. Everything is vectorised over objects / pairs.

* object (:data:`OBJECT_DIM`): log w, log h (in units of 32 px), log aspect, cos 2θ, sin 2θ;
* pair (:data:`PAIR_DIM`): the object's centre in the subject's frame (over the subject's w and h) and the
  reverse, signed-log; centre distance and envelope gap (log); log size/area ratios; cos/sin of twice
  the angle difference; exact intersection over each area and IoU;
* footprint raster (``2 × r × r``): the subject and object masks sampled on an r × r grid over their
  union, in the subject's frame (rotation-invariant), like STAR's union "rect" masks.
"""

from __future__ import annotations

import torch

from sgg.ops import box_to_corners, box_to_envelope, normalize_le90, pairwise_intersection

OBJECT_DIM = 5
PAIR_DIM = 16
_UNIT = 32.0


def _slog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def object_geometry(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 5) → (N, OBJECT_DIM)."""
    b = normalize_le90(boxes.float())
    w, h = b[:, 2].clamp_min(1e-3), b[:, 3].clamp_min(1e-3)
    a = 2 * b[:, 4]
    return torch.stack([torch.log(w / _UNIT), torch.log(h / _UNIT), torch.log(w / h), torch.cos(a), torch.sin(a)], 1)


def _to_frame(xy: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Points (M, ..., 2) into the frames of boxes (M, 5): origin at the centre, x along the box's angle."""
    c, s = torch.cos(box[:, 4]), torch.sin(box[:, 4])
    shape = (-1,) + (1,) * (xy.dim() - 2)
    d = xy - box[:, :2].reshape(*shape, 2)
    c, s = c.reshape(shape), s.reshape(shape)
    return torch.stack([d[..., 0] * c + d[..., 1] * s, -d[..., 0] * s + d[..., 1] * c], -1)


def pair_geometry(boxes: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """(N, 5) boxes, (M, 2) subject/object indices → (M, PAIR_DIM)."""
    b = normalize_le90(boxes.float())
    s, o = b[pairs[:, 0]], b[pairs[:, 1]]
    ws, hs = s[:, 2].clamp_min(1e-3), s[:, 3].clamp_min(1e-3)
    wo, ho = o[:, 2].clamp_min(1e-3), o[:, 3].clamp_min(1e-3)
    so = _to_frame(o[:, :2], s)  # object centre in the subject's frame
    os_ = _to_frame(s[:, :2], o)
    dist = torch.linalg.norm(o[:, :2] - s[:, :2], dim=1)
    env = box_to_envelope(b)
    es, eo = env[pairs[:, 0]], env[pairs[:, 1]]
    gap = torch.hypot((torch.maximum(es[:, 0], eo[:, 0]) - torch.minimum(es[:, 2], eo[:, 2])).clamp_min(0),
                      (torch.maximum(es[:, 1], eo[:, 1]) - torch.minimum(es[:, 3], eo[:, 3])).clamp_min(0))
    area_s, area_o = ws * hs, wo * ho
    inter = pairwise_intersection(s, o).float() if len(pairs) else torch.zeros(0)
    iou = inter / (area_s + area_o - inter).clamp_min(1e-6)
    da = 2 * (o[:, 4] - s[:, 4])
    return torch.stack([
        _slog(so[:, 0] / ws), _slog(so[:, 1] / hs), _slog(os_[:, 0] / wo), _slog(os_[:, 1] / ho),
        torch.log1p(dist / _UNIT), torch.log1p(gap / 8.0),
        torch.log(wo / ws), torch.log(ho / hs), torch.log(area_o / area_s),
        torch.cos(da), torch.sin(da),
        inter / area_s, inter / area_o, iou,
        _slog(so[:, 0] / _UNIT), _slog(so[:, 1] / _UNIT),
    ], 1)


def footprint_raster(boxes: torch.Tensor, pairs: torch.Tensor, size: int = 8) -> torch.Tensor:
    """(M, 2, size, size) 0/1 masks of subject and object on a grid over their union (subject's frame)."""
    b = boxes.float()
    s, o = b[pairs[:, 0]], b[pairs[:, 1]]
    if len(pairs) == 0:
        return torch.zeros(0, 2, size, size)
    half_s = s[:, 2:4] / 2
    oc = _to_frame(box_to_corners(o), s)  # (M, 4, 2) object corners in the subject's frame
    lo = torch.minimum(oc.min(1).values, -half_s)
    hi = torch.maximum(oc.max(1).values, half_s)
    t = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    g = lo[:, None, :] + t[None, :, None] * (hi - lo)[:, None, :]  # (M, size, 2): column x, row y
    gx, gy = g[:, None, :, 0], g[:, :, None, 1]  # (M, 1, size), (M, size, 1)
    sub = (gx.abs() <= half_s[:, 0, None, None]) & (gy.abs() <= half_s[:, 1, None, None])
    phi = (s[:, 4] - o[:, 4])[:, None, None]
    c, sn = torch.cos(phi), torch.sin(phi)
    tr = _to_frame(s[:, :2], o)[:, None, None, :]
    px = c * gx - sn * gy + tr[..., 0]
    py = sn * gx + c * gy + tr[..., 1]
    obj = (px.abs() <= o[:, 2, None, None] / 2) & (py.abs() <= o[:, 3, None, None] / 2)
    return torch.stack([sub.expand_as(obj), obj], 1).float()
