"""Scene composition for synthetic scenes: an object builder, a road network from a recursive split of the
canvas, traffic in lanes, transmission lines, and the assignment of STAR scene kinds to the regions.

All geometry here is in metres (x right, y down, origin at the top-left corner of the scene); headings are
radians with direction (cos h, sin h). Site generators live in ``synth_sites``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sgg.datasets.synth_render import SHAPES, place

KINDS = ("harbour", "airport", "parking", "industrial", "energy", "sports", "dam", "construction")
LAYOUTS = ("mixed", *KINDS)
# kinds drawn on the whole canvas when asked alone; the others tile a road grid
WHOLE = ("harbour", "airport", "dam", "energy")
MIN_SIDE = {"harbour": 260, "airport": 300, "parking": 110, "industrial": 170, "energy": 240, "sports": 240,
            "dam": 240, "construction": 130}
WEIGHT = {"parking": 1.8, "harbour": 1.6, "airport": 1.6, "industrial": 1.5, "energy": 1.0, "sports": 1.0, "dam": 0.7,
          "construction": 1.0}
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
    objs: list = field(default_factory=list)
    ground: list = field(default_factory=list)
    plumes: list = field(default_factory=list)

    def fits(self, cx, cy, length, width, heading, margin: float = 1.0) -> bool:
        c, s = abs(math.cos(heading)), abs(math.sin(heading))
        ex, ey = 0.5 * (length * c + width * s), 0.5 * (length * s + width * c)
        return margin <= cx - ex and cx + ex <= self.wm - margin and margin <= cy - ey and cy + ey <= self.hm - margin

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


def split_regions(rng, x0, y0, x1, y1, min_side, depth, roads, max_depth=5):
    """Recursive split of a rectangle; each cut becomes a road. Returns leaf rectangles (x0, y0, x1, y1)."""
    w, h = x1 - x0, y1 - y0
    if depth >= max_depth or max(w, h) < 2.2 * min_side or (depth >= 1 and rng.random() < 0.12):
        return [(x0, y0, x1, y1)]
    lanes = 2 if depth < 2 else 1
    if w >= h:
        x = x0 + w * rng.uniform(0.35, 0.65)
        roads.append(Road(x, y0, x, y1, lanes))
        return split_regions(rng, x0, y0, x, y1, min_side, depth + 1, roads) + split_regions(rng, x, y0, x1, y1, min_side, depth + 1, roads)
    y = y0 + h * rng.uniform(0.35, 0.65)
    roads.append(Road(x0, y, x1, y, lanes))
    return split_regions(rng, x0, y0, x1, y, min_side, depth + 1, roads) + split_regions(rng, x0, y, x1, y1, min_side, depth + 1, roads)


def junctions(roads: list[Road]) -> list[tuple[float, float, float]]:
    """Points where a road meets or crosses another (x, y, size)."""
    out = []
    for i, a in enumerate(roads):
        for b in roads[i + 1:]:
            av = abs(a.x1 - a.x0) < 1e-6
            bv = abs(b.x1 - b.x0) < 1e-6
            if av == bv:
                continue
            v, hz = (a, b) if av else (b, a)
            x, y = v.x0, hz.y0
            if min(v.y0, v.y1) - 1 <= y <= max(v.y0, v.y1) + 1 and min(hz.x0, hz.x1) - 1 <= x <= max(hz.x0, hz.x1) + 1:
                out.append((x, y, max(v.width, hz.width)))
    return out


def draw_roads(b: Builder, roads: list[Road], density: float) -> None:
    """Road surfaces, lane paint, intersections / roundabouts at junctions, and traffic in lanes."""
    rng = b.rng
    for r in roads:
        b.strip(r.x0, r.y0, r.x1, r.y1, r.width, jitter(rng, ROAD, 4))
        b.strip(r.x0, r.y0, r.x1, r.y1, 0.3, (210, 200, 120))
    juncs = junctions(roads)
    for x, y, size in juncs:
        if rng.random() < 0.2 and size > 10:
            d = size * rng.uniform(2.6, 3.4)
            b.add_ground(place(SHAPES["circle"], x, y, d, d, 0), ROAD)
            b.add("roundabout", x, y, d, d, 0.0, shape="circle", color=ROAD, z=1,
                  deco=[("circle", 0, 0, 0.45, 0.45, (210, 210, 205)), ("circle", 0, 0, 0.4, 0.4, (70, 110, 55))])
        else:
            s = size * 1.5
            b.add("intersection", x, y, s, s, 0.0, color=jitter(rng, ROAD, 3), z=1,
                  deco=[("rect", -0.42, 0, 0.08, 0.6, (215, 215, 215)), ("rect", 0.42, 0, 0.08, 0.6, (215, 215, 215)),
                        ("rect", 0, -0.42, 0.6, 0.08, (215, 215, 215)), ("rect", 0, 0.42, 0.6, 0.08, (215, 215, 215))])
    for r in roads:
        traffic(b, r, density)
        if rng.random() < 0.08:
            t = rng.uniform(0.2, 0.8)
            b.add("toll_gate", r.x0 + t * (r.x1 - r.x0), r.y0 + t * (r.y1 - r.y0), 14.0, r.width + 10, r.heading,
                  color=(200, 200, 195), z=2, height=5,
                  deco=[("rect", 0, k, 0.6, 0.06, (160, 40, 40)) for k in np.linspace(-0.4, 0.4, 2 * r.lanes + 1)])


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


def power_lines(b: Builder, subs: list[int]) -> None:
    """Lines of lattice towers leaving each substation towards the scene (single or parallel pairs), spans of
    60–110 m, running to the scene edge; towers that would stand on another object or in water are left out."""
    rng = b.rng
    big = ("apron", "runway", "taxiway", "terminal", "car_parking", "truck_parking", "dock", "storehouse", "tank",
           "goods_yard", "cooling_tower", "substation", "genset", "coal_yard", "stadium", "ground_track_field",
           "foundation_pit", "unfinished_building", "intersection", "roundabout", "wind_mill", "tennis_court",
           "basketball_court", "baseball_diamond", "soccer_ball_field", "gas_station", "containment_vessel")
    for si in subs:
        s = b.objs[si]
        to_centre = math.atan2(b.hm / 2 - s["cy"], b.wm / 2 - s["cx"])
        for _ in range(rng.integers(1, 4)):
            h = to_centre + rng.uniform(-1.2, 1.2)
            span = rng.uniform(60, 110)
            n_lines = rng.integers(1, 3)
            ux, uy = math.cos(h), math.sin(h)
            sep = rng.uniform(28, 40)
            for k in range(n_lines):
                off = (k - (n_lines - 1) / 2) * sep
                d = 0.5 * max(s["L"], s["W"]) + rng.uniform(15, 30)
                for j in range(200):
                    x = s["cx"] + ux * (d + j * span) - uy * off
                    y = s["cy"] + uy * (d + j * span) + ux * off
                    if not (0 <= x <= b.wm and 0 <= y <= b.hm):
                        break
                    size = rng.uniform(8, 11)
                    if b.occupied(x, y, size, big):
                        continue
                    sh = [place(SHAPES["rect"], x + 22 * b.sun[0], y + 22 * b.sun[1], 44 * math.hypot(*b.sun), 2.0,
                                math.atan2(b.sun[1], b.sun[0]))]
                    b.add("lattice_tower", x, y, size, size, h, color=(150, 150, 150), z=3, height=40, shadow=sh,
                          deco=[("rect", 0, 0, 1.0, 0.12, (90, 90, 90)), ("rect", 0, 0, 0.12, 1.0, (90, 90, 90))])


def compose(rng: np.random.Generator, wm: float, hm: float, layout: str) -> Builder:
    """Regions and roads for ``layout`` on a ``wm`` × ``hm`` m canvas, filled by the site generators."""
    from sgg.datasets import synth_sites as sites

    b = Builder(rng, wm, hm, sun=tuple(rng.uniform(0.25, 0.6) * np.array([math.cos(a := rng.uniform(0, 2 * math.pi)), math.sin(a)])))
    roads: list[Road] = []
    regions: list[tuple[str, tuple]] = []
    if layout in WHOLE:
        regions.append((layout, (0.0, 0.0, wm, hm)))
    else:
        area = (0.0, 0.0, wm, hm)
        if layout == "mixed" and min(wm, hm) > 700 and rng.random() < 0.9:
            # a long strip for an airport (a full runway) or a harbour front, the rest split into blocks
            kind = "airport" if rng.random() < 0.6 else "harbour"
            depth = min(hm * 0.42, rng.uniform(420, 650))
            regions.append((kind, (0.0, 0.0, wm, depth)))
            roads.append(Road(0, depth, wm, depth, 2))
            area = (0.0, depth, wm, hm)
        min_side = MIN_SIDE.get(layout, 200) if layout != "mixed" else 170
        leaves = split_regions(rng, *area, min_side=min_side, depth=0, roads=roads)
        counts = {k: 0 for k in KINDS}
        for leaf in sorted(leaves, key=lambda r: -(r[2] - r[0]) * (r[3] - r[1])):
            side = min(leaf[2] - leaf[0], leaf[3] - leaf[1])
            if layout != "mixed":
                regions.append((layout, leaf))
                continue
            ok = [k for k in KINDS if MIN_SIDE[k] <= side]
            if not ok:
                regions.append(("parking", leaf))
                continue
            # small blocks favour dense kinds, so that small scenes still hold many objects
            w = np.array([WEIGHT[k] * (3.0 if k == "parking" and side < 250 else 1.0) / (1 + 1.5 * counts[k]) for k in ok])
            kind = ok[int(rng.choice(len(ok), p=w / w.sum()))]
            counts[kind] += 1
            regions.append((kind, leaf))
    pad = 12.0
    for kind, (x0, y0, x1, y1) in regions:
        side = min(x1 - x0, y1 - y0) - 2 * pad
        if side < 0.6 * MIN_SIDE[kind]:  # too small for this kind (tiny canvases): a car park if anything
            kind = "parking" if side >= 30 else None
        if kind is not None:
            getattr(sites, kind)(b, x0 + pad, y0 + pad, x1 - pad, y1 - pad)
    draw_roads(b, roads, density=rng.uniform(0.25, 0.6))
    subs = [i for i, o in enumerate(b.objs) if o["cls"] == "substation"]
    power_lines(b, subs)
    return b
