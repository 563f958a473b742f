"""Box codings of the oriented detector (DESIGN.md §5.2).

``MidpointOffsetCoder`` — Oriented R-CNN's RPN coding: an axis-aligned anchor regresses the envelope of the
object ``(dx, dy, dw, dh)`` plus two midpoint offsets ``(dα, dβ)`` (where the top and right vertices of the
oriented box sit on the envelope's top and right edges). Decoding gives a parallelogram that is turned into
a rectangle by stretching its shorter diagonal, as in the paper.

``DeltaXYWHACoder`` — the RoI head's coding of an oriented box relative to an oriented proposal, with
offsets in the proposal's frame and the le90 edge swap (the smaller of the two equivalent angle changes).
Both are exact inverses on valid boxes (up to the le90 canonical form) and fully vectorised.
"""

from __future__ import annotations

import math

import torch

from sgg.ops import box_to_corners, box_to_envelope, normalize_le90, wrap_le90

_HALF_PI = math.pi / 2
_CLAMP = math.log(1000.0 / 16)


def rect_poly_to_obb(poly: torch.Tensor) -> torch.Tensor:
    """(N,4,2) rectangle corners in order → canonical le90 (N,5)."""
    ctr = poly.mean(1)
    e1 = poly[:, 1] - poly[:, 0]
    e2 = poly[:, 2] - poly[:, 1]
    w = torch.linalg.norm(e1, dim=-1)
    h = torch.linalg.norm(e2, dim=-1)
    a = torch.atan2(e1[:, 1], e1[:, 0])
    return normalize_le90(torch.stack([ctr[:, 0], ctr[:, 1], w, h, a], -1))


class MidpointOffsetCoder:
    """Anchors (xyxy) ↔ oriented boxes via ``(dx, dy, dw, dh, dα, dβ)`` (Oriented R-CNN)."""

    def __init__(self, means=(0.0,) * 6, stds=(1.0, 1.0, 1.0, 1.0, 0.5, 0.5), snap_angle: float = 0.0):
        self.means = torch.tensor(means, dtype=torch.float32)
        self.stds = torch.tensor(stds, dtype=torch.float32)
        self.snap_angle = float(snap_angle)

    def encode(self, anchors: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """anchors (N,4) xyxy, gt (N,5) oriented → (N,6) normalised deltas.

        Midpoint offsets jump from (½, ½) to (−½, −½) as a box turns through axis alignment, although both
        decode to nearly the same box; a regressor averaging the two predicts a 45° diamond. With
        ``snap_angle`` > 0, boxes within that angle (radians) of axis alignment are encoded as their
        envelope (offsets ½, ½) — proposals only, the RoI head then refines the angle.
        """
        ax, ay = (anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2
        aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
        env = box_to_envelope(gt)
        gx, gy = (env[:, 0] + env[:, 2]) / 2, (env[:, 1] + env[:, 3]) / 2
        gw, gh = (env[:, 2] - env[:, 0]).clamp(min=1e-6), (env[:, 3] - env[:, 1]).clamp(min=1e-6)
        poly = box_to_corners(gt)
        px, py = poly[..., 0], poly[..., 1]
        tol = 1e-3 * torch.maximum(gw, gh)[:, None] + 1e-4
        # top vertex: the right-most corner lying on the top edge; right vertex: the lowest on the right edge
        on_top = (py - py.min(1, keepdim=True).values).abs() <= tol
        on_right = (px - px.max(1, keepdim=True).values).abs() <= tol
        ga = torch.where(on_top, px, px.new_tensor(-1e12)).max(1).values
        gb = torch.where(on_right, py, py.new_tensor(-1e12)).max(1).values
        da, db = (ga - gx) / gw, (gb - gy) / gh
        if self.snap_angle > 0:
            off = torch.remainder(gt[:, 4], _HALF_PI)
            near = torch.minimum(off, _HALF_PI - off) < self.snap_angle
            da = torch.where(near, torch.full_like(da, 0.5), da)
            db = torch.where(near, torch.full_like(db, 0.5), db)
        d = torch.stack([(gx - ax) / aw, (gy - ay) / ah, torch.log(gw / aw), torch.log(gh / ah), da, db], -1)
        return (d - self.means.to(d)) / self.stds.to(d)

    def decode(self, anchors: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
        """anchors (N,4) xyxy, deltas (N,6) → oriented boxes (N,5), canonical le90."""
        d = deltas * self.stds.to(deltas) + self.means.to(deltas)
        ax, ay = (anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2
        aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
        dx, dy, dw, dh, da, db = d.unbind(-1)
        da, db = da.clamp(-0.5, 0.5), db.clamp(-0.5, 0.5)
        gx, gy = ax + dx * aw, ay + dy * ah
        gw, gh = aw * dw.clamp(-_CLAMP, _CLAMP).exp(), ah * dh.clamp(-_CLAMP, _CLAMP).exp()
        x1, y1, x2, y2 = gx - gw / 2, gy - gh / 2, gx + gw / 2, gy + gh / 2
        ga, gb = gx + da * gw, gy + db * gh
        poly = torch.stack(
            [torch.stack([ga, y1], -1), torch.stack([x2, gb], -1),
             torch.stack([2 * gx - ga, y2], -1), torch.stack([x1, 2 * gy - gb], -1)], 1
        )
        ctr = torch.stack([gx, gy], -1)[:, None]
        rel = poly - ctr
        diag = torch.linalg.norm(rel, dim=-1).clamp(min=1e-6)
        rel = rel * (diag.max(1, keepdim=True).values / diag)[..., None]
        obb = rect_poly_to_obb(rel + ctr)
        obb[:, 2:4] = obb[:, 2:4].clamp(min=1e-3)
        return obb


class DeltaXYWHACoder:
    """Oriented proposals ↔ oriented boxes, deltas in the proposal frame with the le90 edge swap."""

    def __init__(self, means=(0.0,) * 5, stds=(0.1, 0.1, 0.2, 0.2, 0.1)):
        self.means = torch.tensor(means, dtype=torch.float32)
        self.stds = torch.tensor(stds, dtype=torch.float32)

    def encode(self, proposals: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        px, py, pw, ph, pa = proposals.unbind(-1)
        gx, gy, gw, gh, ga = gt.unbind(-1)
        c, s = torch.cos(pa), torch.sin(pa)
        dx = (c * (gx - px) + s * (gy - py)) / pw
        dy = (-s * (gx - px) + c * (gy - py)) / ph
        t1 = wrap_le90(ga - pa)
        t2 = wrap_le90(ga - pa + _HALF_PI)
        first = t1.abs() < t2.abs()
        gw_r, gh_r = torch.where(first, gw, gh), torch.where(first, gh, gw)
        d = torch.stack([dx, dy, torch.log(gw_r / pw), torch.log(gh_r / ph), torch.where(first, t1, t2)], -1)
        return (d - self.means.to(d)) / self.stds.to(d)

    def decode(self, proposals: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
        """proposals (N,5), deltas (N,5) or (N,K,5) → boxes of the same leading shape, canonical le90."""
        d = deltas * self.stds.to(deltas) + self.means.to(deltas)
        p = proposals[:, None] if d.dim() == 3 else proposals
        px, py, pw, ph, pa = p.unbind(-1)
        dx, dy, dw, dh, da = d.unbind(-1)
        c, s = torch.cos(pa), torch.sin(pa)
        gx = px + dx * pw * c - dy * ph * s
        gy = py + dx * pw * s + dy * ph * c
        gw = pw * dw.clamp(-_CLAMP, _CLAMP).exp()
        gh = ph * dh.clamp(-_CLAMP, _CLAMP).exp()
        out = torch.stack([gx, gy, gw, gh, pa + da], -1)
        return normalize_le90(out.reshape(-1, 5)).reshape(out.shape)
