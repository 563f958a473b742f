"""Building blocks of synthetic scenes: the object ``Builder``, local ``Frame``s turned by quarter turns, roads
and the traffic in their lanes.

All geometry is in metres (x right, y down, origin at the top-left corner of the scene); headings are radians
with direction (cos h, sin h). Everything above this module (sites, facilities, layouts) imports from it, never
the other way round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sgg.datasets.synthetic.render import SHAPES, place

CAR_COLOURS = np.array([(232, 232, 228), (205, 205, 205), (160, 160, 165), (28, 28, 32), (95, 95, 100),
                        (170, 30, 30), (40, 60, 145), (215, 205, 170)], np.float64)
CAR_P = np.array([0.26, 0.16, 0.14, 0.15, 0.1, 0.07, 0.07, 0.05])
ROAD = (72, 72, 74)


def jitter(rng: np.random.Generator, col, amount: float = 12) -> tuple[int, int, int]:
    c = np.asarray(col, np.float64) + rng.normal(0, amount, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


@dataclass
class Builder:
    """Collects annotated objects, unannotated ground polygons (roads, water) and plumes, in metres."""

    rng: np.random.Generator
    wm: float
    hm: float
    sun: tuple[float, float] = (0.55, 0.35)  # shadow offset per metre of height
    detail: bool = False  # appearance "detailed": finer vehicle and aircraft looks (see generate_scene)
    shade: int = 90  # shadows multiply the ground by shade / 255
    any_angle: bool = False  # site angles "any": car parks, airports and harbours tilted off the image axes
    objs: list = field(default_factory=list)
    ground: list = field(default_factory=list)
    plumes: list = field(default_factory=list)

    def fits(self, cx, cy, length, width, heading, margin: float = 1.0) -> bool:
        c, s = abs(math.cos(heading)), abs(math.sin(heading))
        ex, ey = 0.5 * (length * c + width * s), 0.5 * (length * s + width * c)
        return margin <= cx - ex and cx + ex <= self.wm - margin and margin <= cy - ey and cy + ey <= self.hm - margin

    def site_tilt(self) -> float:
        """A random tilt in [-45°, 45°] for a site's :class:`Frame` when ``any_angle`` (else 0, drawing nothing)."""
        return float(self.rng.uniform(-math.pi / 4, math.pi / 4)) if self.any_angle else 0.0

    def add(self, cls: str, cx: float, cy: float, length: float, width: float, heading: float, *, shape: str = "rect",
            color=(128, 128, 128), height: float = 0.0, z: int = 1, deco=(), shadow=None, plume_alpha: float = 0.0) -> int:
        """Add one object (box = length × width along ``heading``); returns its index or -1 if off-canvas."""
        if length <= 0 or width <= 0 or not self.fits(cx, cy, length, width, heading):
            return -1
        self.objs.append(dict(cls=cls, cx=float(cx), cy=float(cy), L=float(length), W=float(width),
                              heading=float(heading), shape=shape, color=tuple(int(v) for v in color), height=float(height),
                              z=z, deco=list(deco), shadow=shadow, plume=plume_alpha))
        return len(self.objs) - 1

    def _discs(self) -> np.ndarray:
        """(N, 4) array cx, cy, radius, class code of the objects so far (grown incrementally)."""
        cache = self.__dict__.setdefault("_disc_cache", np.zeros((0, 4)))
        n = len(cache)
        if n < len(self.objs):
            codes = self.__dict__.setdefault("_codes", {})
            new = np.array([(o["cx"], o["cy"], 0.5 * max(o["L"], o["W"]), codes.setdefault(o["cls"], len(codes)))
                            for o in self.objs[n:]], float)
            cache = np.concatenate([cache, new])
            self.__dict__["_disc_cache"] = cache
        return cache

    def occupied(self, x: float, y: float, r: float, classes=None) -> bool:
        """Whether a disc of radius r at (x, y) touches an existing object's bounding disc (or water)."""
        if self.objs:
            d = self._discs()
            hit = np.hypot(d[:, 0] - x, d[:, 1] - y) < d[:, 2] + r
            if classes is not None:
                codes = self.__dict__["_codes"]
                hit &= np.isin(d[:, 3], [codes[c] for c in classes if c in codes])
            if hit.any():
                return True
        for pts, _, kind in self.ground:
            if kind == "water" and pts[:, 0].min() - r <= x <= pts[:, 0].max() + r and pts[:, 1].min() - r <= y <= pts[:, 1].max() + r:
                return True
        return False

    def add_ground(self, pts, color=ROAD, kind: str = "paint") -> None:
        self.ground.append((np.asarray(pts, np.float64), color, kind))

    def strip(self, x0, y0, x1, y1, width, color=ROAD, kind="paint") -> None:
        """A straight band (road, river) from (x0,y0) to (x1,y1)."""
        h = math.atan2(y1 - y0, x1 - x0)
        self.add_ground(place(SHAPES["rect"], (x0 + x1) / 2, (y0 + y1) / 2, math.hypot(x1 - x0, y1 - y0), width, h), color, kind)

    # ------------------------------------------------------------------------------------- vehicles
    def cars(self, xs, ys, headings, cls="car", length=(4.1, 4.9), width=(1.7, 1.95)) -> list[int]:
        """Vehicles at the given centres (arrays); cars get windscreen + roof, trucks a cab and a box body."""
        rng = self.rng
        out = []
        n = len(xs)
        if cls == "car":
            L = rng.uniform(*length, n)
            W = rng.uniform(*width, n)
            cols = CAR_COLOURS[rng.choice(len(CAR_COLOURS), n, p=CAR_P)] + rng.normal(0, 8, (n, 3))
        elif cls == "truck":
            L = rng.uniform(8.0, 13.0, n)
            W = rng.uniform(2.4, 2.6, n)
            cols = np.array([(225, 225, 220), (190, 60, 40), (60, 90, 160), (230, 200, 60)])[rng.integers(0, 4, n)] + rng.normal(0, 10, (n, 3))
        else:  # engineering_vehicle
            L = rng.uniform(6.0, 9.0, n)
            W = rng.uniform(2.6, 3.2, n)
            cols = np.array([(235, 180, 30), (230, 150, 20), (240, 200, 50)])[rng.integers(0, 3, n)] + rng.normal(0, 8, (n, 3))
        cols = np.clip(cols, 0, 255)
        if self.detail:
            return self._detailed_vehicles(xs, ys, headings, cls, L, W, cols)
        for i in range(n):
            c = tuple(int(v) for v in cols[i])
            dark = tuple(int(v * 0.35) for v in c)
            if cls == "car":
                deco = [("rect", 0.18, 0.0, 0.16, 0.8, (40, 48, 58)), ("rect", -0.1, 0.0, 0.36, 0.76, tuple(min(255, int(v * 1.08) + 6) for v in c))]
            elif cls == "truck":
                deco = [("rect", 0.41, 0.0, 0.18, 0.96, (min(255, c[0] + 25), c[1], c[2])), ("rect", 0.3, 0.0, 0.04, 1.0, dark)]
            else:
                deco = [("rect", 0.25, 0.0, 0.25, 0.7, (50, 50, 50)), ("rect", -0.2, 0.0, 0.1, 1.0, dark)]
            out.append(self.add(cls, xs[i], ys[i], L[i], W[i], headings[i], color=c, height=1.6 if cls == "car" else 3.5,
                                z=3, deco=deco))
        return out

    def _detailed_vehicles(self, xs, ys, headings, cls, L, W, cols) -> list[int]:
        """Vehicles as seen at 0.1-0.3 m: cars with rounded corners, shaded flanks, tinted windscreen and rear
        window of random proportions (saloons to hatchbacks), some dark roofs or sunroofs; trucks with a glazed
        cab and a ribbed load; engineering vehicles with a cab and a boom or bucket."""
        rng = self.rng
        n = len(xs)
        glass = np.clip(rng.normal(48, 12, (n, 1)) + rng.normal(0, 6, (n, 3)) + np.array([0, 4, 10]), 10, 120)
        f_at, f_len = rng.uniform(0.1, 0.22, n), rng.uniform(0.12, 0.2, n)  # windscreen centre and length
        roof_len, r_len = rng.uniform(0.26, 0.46, n), rng.uniform(0.07, 0.14, n)  # roof, rear window lengths
        roof_len = np.minimum(roof_len, f_at - f_len / 2 + 0.46 - r_len)  # leave a boot: glass stays on the body
        roof_kind = rng.choice(3, n, p=[0.8, 0.1, 0.1])  # body-coloured, dark, with a sunroof
        out = []
        for i in range(n):
            c = cols[i]
            body, g = tuple(int(v) for v in c), tuple(int(v) for v in glass[i])
            flank = tuple(int(v) for v in c * 0.8)
            light = tuple(int(v) for v in np.clip(c * 1.08 + 8, 0, 255))
            if cls == "car":
                front = f_at[i] - f_len[i] / 2  # rear edge of the windscreen
                roof_c = front - roof_len[i] / 2
                back = front - roof_len[i]
                roof = light if roof_kind[i] != 1 else (35, 35, 38)
                deco = [("rect", 0.0, -0.42, 0.86, 0.16, flank), ("rect", 0.0, 0.42, 0.86, 0.16, flank),
                        ("rect", f_at[i], 0.0, f_len[i], 0.8, g), ("rect", roof_c, 0.0, roof_len[i], 0.74, roof),
                        ("rect", back - r_len[i] / 2, 0.0, r_len[i], 0.72, g)]
                if roof_kind[i] == 2:
                    deco.append(("rect", roof_c + 0.04, 0.0, roof_len[i] * 0.35, 0.4, g))
                shape, height = "car", 1.5
            elif cls == "truck":
                deco = [("rect", 0.41, 0.0, 0.18, 0.96, light), ("rect", 0.48, 0.0, 0.03, 0.86, g),
                        ("rect", 0.3, 0.0, 0.04, 1.0, (30, 30, 32))]
                deco += [("rect", x, 0.0, 0.012, 0.96, flank) for x in np.linspace(-0.45, 0.22, 6)]
                shape, height = "rect", 3.5
            else:
                deco = [("rect", 0.3, 0.2, 0.22, 0.5, light), ("rect", 0.38, 0.2, 0.04, 0.45, g),
                        ("rect", -0.15, -0.1, 0.6, 0.16, (60, 58, 55)), ("rect", -0.2, 0.0, 0.1, 1.0, flank)]
                shape, height = "rect", 3.0
            out.append(self.add(cls, xs[i], ys[i], L[i], W[i], headings[i], shape=shape, color=body, height=height,
                                z=3, deco=deco))
        return out



class Frame:
    """Local (u, v) → world (x, y) for a region rotated by k·90° (plus ``tilt`` radians); ``U``, ``V`` are the
    local extents. A tilted frame is the largest rectangle of the untilted one's proportions that, turned, fits
    the region, centred in it."""

    def __init__(self, b: Builder, x0, y0, x1, y1, k: int | None = None, tilt: float = 0.0):
        self.b = b
        self.k = int(b.rng.integers(0, 4)) if k is None else k
        w, h = x1 - x0, y1 - y0
        self.U, self.V = (w, h) if self.k % 2 == 0 else (h, w)
        self.phi = self.k * math.pi / 2 + tilt
        if tilt:  # shrink to fit the turned rectangle; float rotation
            c, s = math.cos(self.phi), math.sin(self.phi)
            ex, ey = self.U * abs(c) + self.V * abs(s), self.U * abs(s) + self.V * abs(c)
            f = min(w / ex, h / ey)
            self.U, self.V = self.U * f, self.V * f
        else:  # exact quarter turns (the published scenes)
            c, s = round(math.cos(self.phi)), round(math.sin(self.phi))
        self.c, self.s = c, s
        # choose the origin so that local [0,U]x[0,V] maps onto the region (centred in it)
        corners = [(0, 0), (self.U, 0), (0, self.V), (self.U, self.V)]
        xs = [c * u - s * v for u, v in corners]
        ys = [s * u + c * v for u, v in corners]
        self.ox = x0 - min(xs) + (w - (max(xs) - min(xs))) / 2
        self.oy = y0 - min(ys) + (h - (max(ys) - min(ys))) / 2

    def xy(self, u, v):
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        return self.ox + self.c * u - self.s * v, self.oy + self.s * u + self.c * v

    def add(self, cls, u, v, length, width, heading, **kw) -> int:
        x, y = self.xy(u, v)
        return self.b.add(cls, float(x), float(y), length, width, heading + self.phi, **kw)

    def ground(self, u, v, length, width, heading, color, kind="paint", shape="rect"):
        x, y = self.xy(u, v)
        self.b.add_ground(place(SHAPES[shape], float(x), float(y), length, width, heading + self.phi), color, kind)

    def cars(self, u, v, heading, cls="car"):
        x, y = self.xy(u, v)
        return self.b.cars(np.atleast_1d(x), np.atleast_1d(y), np.atleast_1d(heading) + self.phi, cls=cls)


# ------------------------------------------------------------------------------------------- roads
@dataclass
class Road:
    x0: float
    y0: float
    x1: float
    y1: float
    lanes: int  # per direction
    lane_w: float = 3.5

    @property
    def width(self) -> float:
        return 2 * self.lanes * self.lane_w + 2.0

    @property
    def heading(self) -> float:
        return math.atan2(self.y1 - self.y0, self.x1 - self.x0)



def traffic(b: Builder, r: Road, density: float, cls_p: float = 0.9) -> None:
    """Cars and trucks driving in lanes (right-hand traffic), spaced by exponential gaps."""
    rng = b.rng
    length = math.hypot(r.x1 - r.x0, r.y1 - r.y0)
    h = r.heading
    ux, uy = math.cos(h), math.sin(h)
    nx, ny = -uy, ux
    for direction in (1, -1):
        for lane in range(r.lanes):
            off = direction * (lane + 0.5) * r.lane_w
            s = rng.uniform(0, 20)
            pos = []
            while s < length - 6:
                pos.append(s)
                s += 6.5 + rng.exponential(28.0 / max(density, 1e-3))
            pos = np.asarray(pos)
            if not len(pos):
                continue
            xs = r.x0 + ux * pos + nx * off
            ys = r.y0 + uy * pos + ny * off
            head = h if direction > 0 else h + math.pi
            head = np.full(len(pos), head) + rng.normal(0, 0.01, len(pos))
            truck = rng.random(len(pos)) > cls_p
            for cls, m in (("car", ~truck), ("truck", truck)):
                b.cars(xs[m], ys[m], head[m], cls=cls)
