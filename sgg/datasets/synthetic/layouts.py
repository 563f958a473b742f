"""Scene composition for synthetic scenes: a road network from a recursive split of the canvas, junctions,
transmission lines, and the assignment of STAR scene kinds to the regions, each filled by its site generator.

All geometry here is in metres (x right, y down, origin at the top-left corner of the scene); headings are
radians with direction (cos h, sin h). The object builder and roads live in ``builder``, the site
generators in ``sites`` and ``facilities``; this module sits above them all.
"""

from __future__ import annotations

import math

import numpy as np

from sgg.datasets.synthetic import facilities, sites
from sgg.datasets.synthetic.builder import ROAD, Builder, Road, jitter, traffic
from sgg.datasets.synthetic.render import SHAPES, place

KINDS = ("harbour", "airport", "parking", "industrial", "energy", "sports", "dam", "construction")
LAYOUTS = ("mixed", *KINDS)
# kinds drawn on the whole canvas when asked alone; the others tile a road grid
WHOLE = ("harbour", "airport", "dam", "energy")
MIN_SIDE = {"harbour": 260, "airport": 300, "parking": 110, "industrial": 170, "energy": 240, "sports": 240,
            "dam": 240, "construction": 130}
WEIGHT = {"parking": 1.8, "harbour": 1.6, "airport": 1.6, "industrial": 1.5, "energy": 1.0, "sports": 1.0, "dam": 0.7,
          "construction": 1.0}
# the site generator that fills a region of each kind
SITES = {"harbour": sites.harbour, "airport": sites.airport, "parking": sites.parking, "industrial": facilities.industrial,
         "energy": facilities.energy, "sports": facilities.sports, "dam": facilities.dam, "construction": facilities.construction}


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


def compose(rng: np.random.Generator, wm: float, hm: float, layout: str, detail: bool = False,
            any_angle: bool = False) -> Builder:
    """Regions and roads for ``layout`` on a ``wm`` × ``hm`` m canvas, filled by the site generators.
    ``detail``: finer vehicle and aircraft looks and a random shadow depth; ``any_angle``: car parks, airports
    and harbours tilted by up to ±45° off the image axes (each draws more from ``rng``, so the same seed lays
    out another scene than without it)."""
    b = Builder(rng, wm, hm, sun=tuple(rng.uniform(0.25, 0.6) * np.array([math.cos(a := rng.uniform(0, 2 * math.pi)), math.sin(a)])))
    if detail:
        b.detail, b.shade = True, int(rng.integers(55, 150))
    b.any_angle = bool(any_angle)
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
            SITES[kind](b, x0 + pad, y0 + pad, x1 - pad, y1 - pad)
    draw_roads(b, roads, density=rng.uniform(0.25, 0.6))
    subs = [i for i, o in enumerate(b.objs) if o["cls"] == "substation"]
    power_lines(b, subs)
    return b
