"""Site generators (continued): industrial plants, energy sites, sports grounds, dams and river crossings,
construction sites. Same conventions as ``sites`` (metres, local frames, true object sizes), whose shared
parts (vessels, tanks, container yards, parking lots) they reuse.
"""

from __future__ import annotations

import math

import numpy as np

from sgg.datasets.synthetic.builder import ROAD, Builder, Frame, Road, jitter, traffic
from sgg.datasets.synthetic.render import SHAPES, place
from sgg.datasets.synthetic.sites import CONCRETE, containers, parking_lot, tank, vessel, yard_cranes


def shelf(rng, U, V, items, gap=12.0):
    """Shelf-pack (w, h) footprints into [0,U]×[0,V]; returns centres (u, v) or None for items that miss."""
    out, u, v, row_h = [], gap, gap, 0.0
    for w, h in items:
        if u + w > U - gap:
            u, v, row_h = gap, v + row_h + gap, 0.0
        if v + h > V - gap or w > U - 2 * gap:
            out.append(None)
            continue
        out.append((u + w / 2, v + h / 2))
        u += w + gap * rng.uniform(1, 2)
        row_h = max(row_h, h)
    return out


def plume(f: Frame, u, v, wind, src_size, cls):
    """A smoke / vapour plume starting at (u, v) and drifting along ``wind``; length sets its strength."""
    rng = f.b.rng
    violent = rng.random() < 0.5
    ref = 1.5 * max(src_size, 40.0)  # synth_relations: violent iff plume length >= 1.5 x max(source size, 40 m)
    L = ref * (rng.uniform(1.2, 2.2) if violent else rng.uniform(0.35, 0.8))
    W = max(0.6 * src_size, L * rng.uniform(0.22, 0.35))
    cu, cv = u + math.cos(wind) * (L / 2), v + math.sin(wind) * (L / 2)
    grey = (235, 235, 235) if cls == "vapor" else (150, 148, 145)
    return f.add(cls, cu, cv, L, W, wind, shape="plume", color=grey, z=6, plume_alpha=0.75 if violent else 0.55)


def chimney(f: Frame, u, v, wind):
    rng = f.b.rng
    d = rng.uniform(5, 9)
    hgt = rng.uniform(60, 150)
    sx, sy = f.b.sun
    x, y = f.xy(u, v)
    sh = [place(SHAPES["rect"], float(x) + sx * hgt / 2, float(y) + sy * hgt / 2, math.hypot(sx, sy) * hgt, d * 0.9, math.atan2(sy, sx))]
    i = f.add("chimney", u, v, d, d, 0, shape="circle", color=jitter(rng, (170, 165, 160), 10), z=4, height=hgt, shadow=sh,
              deco=[("circle", 0, 0, 0.6, 0.6, (40, 38, 36))])
    if i >= 0 and rng.random() < 0.85:
        plume(f, u, v, wind - f.phi, d, "smoke")
    return i


def industrial(b: Builder, x0, y0, x1, y1):
    """Tank farms (several diameters side by side), storehouses, chimneys with smoke, genset, coal yard."""
    rng = b.rng
    f = Frame(b, x0, y0, x1, y1, k=0)
    U, V = f.U, f.V
    f.ground(U / 2, V / 2, U, V, 0, jitter(rng, (140, 135, 120), 8))
    wind = rng.uniform(0, 2 * math.pi)
    items = []
    scale = max(1.0, U * V / 90_000)
    for _ in range(int(rng.integers(1, 4) * scale)):
        d = rng.uniform(12, 45)
        nr, nc = int(rng.integers(2, 5)), int(rng.integers(2, 6))
        items.append(("farm", (nc * d * 1.4 + 6, nr * d * 1.4 + 6), d, nr, nc))
    items.append(("power", (rng.uniform(90, 140), rng.uniform(80, 120))))
    for _ in range(int(rng.integers(1, 4) * scale)):
        items.append(("storehouse", (rng.uniform(40, 120), rng.uniform(25, 60))))
    if rng.random() < 0.5:
        items.append(("goods_yard", (rng.uniform(50, 120), rng.uniform(40, 80))))
    rng.shuffle(items)
    spots = shelf(rng, U, V, [it[1] for it in items], gap=14)
    for it, spot in zip(items, spots):
        if spot is None:
            continue
        (u, v), (w, h) = spot, it[1]
        if it[0] == "farm":
            _, _, d, nr, nc = it
            f.ground(u, v, w, h, 0, (175, 165, 140))
            col = jitter(rng, (215, 215, 210), 15)
            for r in range(nr):
                for c in range(nc):
                    tank(f, u - w / 2 + 3 + d * 0.7 + c * d * 1.4, v - h / 2 + 3 + d * 0.7 + r * d * 1.4, d, col)
        elif it[0] == "power":
            power_block(f, u, v, w, h, wind)
        elif it[0] == "storehouse":
            f.add("storehouse", u, v, w, h, 0, color=jitter(rng, (165, 170, 178), 25), z=2, height=10,
                  deco=[("rect", 0, 0, 1.0, 0.04, (110, 110, 115))])
        else:
            f.add("goods_yard", u, v, w, h, 0, color=(150, 150, 145), z=1,
                  deco=containers(rng, w, h))
            yard_cranes(f, u, v, w, h)


def energy(b: Builder, x0, y0, x1, y1):
    """Substations (their lines of lattice towers are added by the composer), cooling towers with vapour, a
    containment vessel supplying a genset, a genset with chimney, and a wind farm filling the free ground."""
    rng = b.rng
    f = Frame(b, x0, y0, x1, y1, k=0)
    U, V = f.U, f.V
    wind = rng.uniform(0, 2 * math.pi)
    area = U * V
    items = [("substation", (rng.uniform(50, 130), rng.uniform(40, 90))) for _ in range(1 + int(area > 250_000) + int(area > 900_000))]
    for _ in range(max(1, int(area // 400_000))):
        if rng.random() < 0.6:
            d = rng.uniform(60, 100)
            items.append(("cooling", (d * 2.4, d * 1.1), d))
        if rng.random() < 0.35:
            items.append(("nuclear", (130, 70)))
        if rng.random() < 0.4:
            items.append(("power", (rng.uniform(90, 130), rng.uniform(80, 110))))
    rng.shuffle(items)
    spots = shelf(rng, U, V, [it[1] for it in items], gap=20)
    for it, spot in zip(items, spots):
        if spot is None:
            continue
        (u, v), (w, h) = spot, it[1]
        if it[0] == "substation":
            f.add("substation", u, v, w, h, 0, color=(160, 158, 150), z=1,
                  deco=[("rect", x, y, 0.06, 0.12, (90, 95, 105)) for x in np.arange(-0.4, 0.41, 0.1) for y in (-0.25, 0.05, 0.3)])
        elif it[0] == "cooling":
            d = it[2]
            for k in range(2):
                i = f.add("cooling_tower", u - w / 2 + d / 2 + k * d * 1.3, v, d, d, 0, shape="circle", color=(190, 188, 182), z=4,
                          height=d * 1.2, deco=[("circle", 0, 0, 0.82, 0.82, (70, 72, 75))])
                if i >= 0 and rng.random() < 0.8:
                    plume(f, u - w / 2 + d / 2 + k * d * 1.3, v, wind, d, "vapor")
        elif it[0] == "nuclear":
            f.add("containment_vessel", u - 35, v, 50, 50, 0, shape="circle", color=(205, 205, 200), z=3, height=40,
                  deco=[("circle", -0.1, -0.1, 0.5, 0.5, (230, 230, 225))])
            f.add("genset", u + 35, v, 55, 35, 0, color=(150, 160, 170), z=2, height=20)
        else:
            power_block(f, u, v, w, h, wind)
    # wind farm on the free ground: a jittered grid, 2.5–4 rotor diameters apart
    D = rng.uniform(60, 100)
    step = D * rng.uniform(2.5, 4.0)
    yaw = wind + math.pi / 2
    sx, sy = b.sun
    hgt = D * 0.9
    for uu in np.arange(D, U - D / 2, step):
        for vv in np.arange(D, V - D / 2, step * rng.uniform(0.8, 1.2)):
            x, y = f.xy(uu + rng.normal(0, D / 6), vv + rng.normal(0, D / 6))
            if rng.random() < 0.25 or b.occupied(float(x), float(y), D / 2 + 10):
                continue
            sh = [place(SHAPES["rect"], float(x) + sx * hgt / 2, float(y) + sy * hgt / 2, math.hypot(sx, sy) * hgt, 3, math.atan2(sy, sx)),
                  place(SHAPES["rect"], float(x) + sx * hgt, float(y) + sy * hgt, D, 3, yaw)]
            b.add("wind_mill", float(x), float(y), D, 4.5, yaw, color=(240, 240, 240), z=4, height=hgt, shadow=sh,
                  deco=[("rect", 0, 0, 0.1, 1.0, (200, 200, 200))])


def power_block(f: Frame, u, v, w, h, wind):
    """Genset hall with its chimney and the coal yard that supplies it."""
    rng = f.b.rng
    gw, gh = w * 0.45, h * 0.4
    f.add("genset", u - w / 2 + gw / 2, v - h / 2 + gh / 2, gw, gh, 0, color=jitter(rng, (150, 160, 170), 10), z=2, height=20,
          deco=[("rect", x, 0, 0.1, 0.6, (90, 95, 100)) for x in (-0.3, 0, 0.3)])
    chimney(f, u - w / 2 + gw + 8, v - h / 2 + gh / 2, wind)
    f.add("coal_yard", u - w / 2 + w * 0.35, v + h / 2 - h * 0.25, w * 0.65, h * 0.45, 0, color=(35, 33, 32), z=1,
          deco=[("circle", x, 0, 0.3, 0.8, (55, 52, 50)) for x in (-0.3, 0.05, 0.35)])
    if rng.random() < 0.5:
        chimney(f, u + w / 2 - 8, v - h / 2 + 10, wind)


def sports(b: Builder, x0, y0, x1, y1):
    """Running track around a football pitch, tennis and basketball courts, baseball diamond, stadium."""
    rng = b.rng
    f = Frame(b, x0, y0, x1, y1, k=int(rng.integers(0, 2)))
    U, V = f.U, f.V
    f.ground(U / 2, V / 2, U, V, 0, jitter(rng, (95, 125, 70), 8))
    scale = max(1.0, U * V / 60_000)
    items = [("track", (176, 95))] * max(1, int(scale / 3))
    items += [("tennis", (36, 18))] * int(rng.integers(2, 8) * scale)
    items += [("basket", (32, 19))] * int(rng.integers(1, 5) * scale)
    items += [("baseball", (110, 110))] * int(rng.random() < 0.5 + 0.2 * scale)
    items += [("stadium", (240, 180))] * int(rng.random() < 0.3 + 0.1 * scale)
    order = rng.permutation(len(items))
    items = sorted([items[i] for i in order], key=lambda it: -it[1][1])
    spots = shelf(rng, U, V, [it[1] for it in items], gap=10)
    used = max([s[1] + it[1][1] / 2 for it, s in zip(items, spots) if s is not None], default=0.0)
    if V - used > 30:  # visitors' car park on the remaining strip
        parking_lot(f, U / 2, (used + V) / 2 + 2, U - 24, V - used - 14)
    white = (235, 235, 235)
    tcol = jitter(rng, [(60, 120, 90), (50, 90, 150), (170, 90, 70)][rng.integers(0, 3)], 8)
    bcol = jitter(rng, [(190, 110, 60), (60, 100, 160), (120, 120, 120)][rng.integers(0, 3)], 8)
    for it, spot in zip(items, spots):
        if spot is None:
            continue
        (u, v), (w, h) = spot, it[1]
        if it[0] in ("track", "stadium"):
            if it[0] == "stadium":
                f.add("stadium", u, v, w, h, 0, shape="oval", color=jitter(rng, (180, 180, 185), 10), z=2, height=25,
                      deco=[("oval", 0, 0, 0.82, 0.8, (150, 60, 60)), ("oval", 0, 0, 0.7, 0.66, (190, 80, 60))])
                w, h = 176, 95
            f.add("ground_track_field", u, v, w, h, 0, shape="oval", color=(185, 80, 60), z=3,
                  deco=[("oval", 0, 0, 0.93, 0.86, (205, 110, 85)), ("oval", 0, 0, 0.86, 0.76, (70, 125, 60))])
            f.add("soccer_ball_field", u, v, 100, 64, 0, color=(75, 135, 65), z=3,
                  deco=[("rect", 0, 0, 0.008, 1.0, white), ("circle", 0, 0, 0.16, 0.26, white), ("circle", 0, 0, 0.14, 0.23, (75, 135, 65)),
                        ("rect", -0.46, 0, 0.08, 0.45, white), ("rect", 0.46, 0, 0.08, 0.45, white)])
        elif it[0] == "tennis":
            f.add("tennis_court", u, v, w, h, 0, color=tcol, z=1,
                  deco=[("rect", 0, 0, 0.66, 0.61, white), ("rect", 0, 0, 0.64, 0.57, jitter(rng, tcol, 3)), ("rect", 0, 0, 0.01, 0.7, white)])
        elif it[0] == "basket":
            f.add("basketball_court", u, v, w, h, 0, color=bcol, z=1,
                  deco=[("rect", 0, 0, 0.005 * 2, 1.0, white), ("circle", 0, 0, 0.12, 0.2, white), ("circle", 0, 0, 0.1, 0.17, bcol),
                        ("rect", -0.42, 0, 0.16, 0.3, (220, 200, 170)), ("rect", 0.42, 0, 0.16, 0.3, (220, 200, 170))])
        else:
            f.add("baseball_diamond", u, v, w, h, math.pi / 2 * int(rng.integers(0, 4)), shape="fan", color=(85, 140, 70), z=1,
                  deco=[("fan", -0.2, -0.2, 0.6, 0.6, (175, 130, 90)), ("rect", -0.27, -0.27, 0.32, 0.32, (95, 150, 75))])


def dam(b: Builder, x0, y0, x1, y1):
    """River with a dam (gravity, arch or flood), reservoir, ship lock with a ship, a road bridge with traffic,
    boats passing under the bridge."""
    rng = b.rng
    f = Frame(b, x0, y0, x1, y1)
    U, V = f.U, f.V
    rw = min(U * 0.45, rng.uniform(70, 180))
    ru = U * rng.uniform(0.35, 0.6)
    dv = V * rng.uniform(0.3, 0.45)
    f.ground(ru, (dv + V) / 2 + 6, rw, V - dv + 12, 0, None, kind="water")
    res_w = min(U - 10, rw * rng.uniform(1.6, 3.0))
    f.ground(U / 2, dv / 2 - 6, res_w, dv + 12, 0, None, kind="water")
    kind = rng.choice(["gravity_dam", "arch_dam", "flood_dam"])
    lock = rng.random() < 0.6
    dl = rw + 40 + (60 if lock else 0)
    dt = rng.uniform(14, 30) if kind != "arch_dam" else rng.uniform(30, 55)
    du = ru + (30 if lock else 0)
    deco = [("rect", x, 0, 0.03, 1.0, (70, 70, 70)) for x in np.linspace(-0.35, 0.35, 8)] if kind == "flood_dam" else []
    f.add(kind, du, dv, dl, dt, 0, shape="arc" if kind == "arch_dam" else "rect", color=jitter(rng, (200, 198, 190), 8), z=2,
          height=6, deco=deco)
    if lock:
        lu = ru - rw / 2 - 20
        ll = rng.uniform(140, 220)
        f.ground(lu, dv, 34, ll, 0, None, kind="water")
        f.add("ship_lock", lu, dv, 34, ll, 0, color=(60, 85, 95), z=1,
              deco=[("rect", -0.45, 0, 0.1, 1.0, CONCRETE), ("rect", 0.45, 0, 0.1, 1.0, CONCRETE),
                    ("rect", 0, -0.48, 1.0, 0.04, (90, 90, 90)), ("rect", 0, 0.48, 1.0, 0.04, (90, 90, 90))])
        if rng.random() < 0.8:
            vessel(f, lu, dv + rng.uniform(-ll / 4, ll / 4), math.pi / 2 * (1 if rng.random() < 0.5 else -1), "ship", min(ll * 0.6, 90))
    # bridge with a road and traffic
    bv = dv + (V - dv) * rng.uniform(0.45, 0.75)
    bw = rng.uniform(14, 22)
    f.add("bridge", ru, bv, rw + 30, bw, 0, color=jitter(rng, (150, 148, 145), 6), z=2, height=12,
          deco=[("rect", 0, -0.45, 1.0, 0.08, (200, 200, 195)), ("rect", 0, 0.45, 1.0, 0.08, (200, 200, 195))])
    x0r, y0r = f.xy(0, bv)
    x1r, y1r = f.xy(U, bv)
    road = Road(float(x0r), float(y0r), float(x1r), float(y1r), 1, lane_w=(bw - 2) / 2)
    b.strip(road.x0, road.y0, road.x1, road.y1, bw - 2, ROAD)
    traffic(b, road, rng.uniform(0.6, 1.6))
    for _ in range(int(rng.integers(1, 4))):
        h = math.pi / 2 * (1 if rng.random() < 0.5 else -1)
        vv = bv + rng.choice([0.0, rng.uniform(-120, -25), rng.uniform(25, 120)])
        vessel(f, ru + rng.uniform(-rw / 4, rw / 4), min(max(vv, dv + 20), V - 15), h + rng.normal(0, 0.05))


def construction(b: Builder, x0, y0, x1, y1):
    """Foundation pits with engineering vehicles, unfinished buildings with tower cranes, concrete pavement."""
    rng = b.rng
    f = Frame(b, x0, y0, x1, y1, k=0)
    U, V = f.U, f.V
    f.ground(U / 2, V / 2, U, V, 0, jitter(rng, (165, 145, 115), 8))
    items = []
    for _ in range(int(rng.integers(1, 4))):
        items.append(("pit", (rng.uniform(40, 110), rng.uniform(35, 90))))
    for _ in range(int(rng.integers(1, 4))):
        items.append(("building", (rng.uniform(30, 70), rng.uniform(20, 45))))
    items.append(("pavement", (rng.uniform(40, 120), rng.uniform(20, 60))))
    spots = shelf(rng, U, V, [it[1] for it in items], gap=25)
    sx, sy = b.sun
    for it, spot in zip(items, spots):
        if spot is None:
            continue
        (u, v), (w, h) = spot, it[1]
        if it[0] == "pit":
            f.add("foundation_pit", u, v, w, h, 0, color=jitter(rng, (95, 75, 55), 8), z=0,
                  deco=[("rect", 0, 0, 0.9, 0.88, (115, 92, 68))])
            n = int(rng.integers(0, 3))
            f.cars(u + rng.uniform(-w / 3, w / 3, n), v + rng.uniform(-h / 3, h / 3, n), rng.uniform(0, 2 * math.pi, n), "engineering_vehicle")
            n = int(rng.integers(1, 5))
            f.cars(u + w / 2 + rng.uniform(6, 14, n), v + rng.uniform(-h / 2, h / 2, n), rng.uniform(0, 2 * math.pi, n), "engineering_vehicle")
        elif it[0] == "building":
            f.add("unfinished_building", u, v, w, h, 0, color=jitter(rng, (175, 172, 165), 8), z=2, height=12,
                  deco=[("rect", x, y, 0.04, 0.06, (90, 90, 90)) for x in np.linspace(-0.4, 0.4, 6) for y in np.linspace(-0.4, 0.4, 4)])
            jl = rng.uniform(40, 65)
            a = rng.uniform(0, math.pi)
            cu, cv = u + w / 2 * rng.uniform(-0.5, 0.5), v + h / 2 + 3
            x, y = f.xy(cu, cv)
            hg = rng.uniform(40, 60)
            sh = [place(SHAPES["rect"], float(x) + sx * hg / 2, float(y) + sy * hg / 2, math.hypot(sx, sy) * hg, 2.0, math.atan2(sy, sx)),
                  place(SHAPES["rect"], float(x) + sx * hg, float(y) + sy * hg, jl, 2.0, a)]
            f.add("tower_crane", cu, cv, jl, 3.0, a, color=(235, 190, 40), z=5, height=hg, shadow=sh,
                  deco=[("rect", -0.3, 0, 0.12, 1.0, (120, 120, 120))])
            if rng.random() < 0.5:
                f.cars(np.array([u - w / 2 - 10.0]), np.array([v]), np.array([rng.uniform(0, math.pi)]), "engineering_vehicle")
        else:
            f.add("cement_concrete_pavement", u, v, w, h, 0, color=jitter(rng, (200, 198, 192), 5), z=0,
                  deco=[("rect", x, 0, 0.006 * 2, 1.0, (160, 160, 155)) for x in np.linspace(-0.4, 0.4, 5)])
