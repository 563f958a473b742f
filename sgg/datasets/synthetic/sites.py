"""Site generators for synthetic scenes: each fills an axis-aligned region (metres) of a ``Builder`` with one
STAR scene kind — harbour, airport, parking, industrial, energy, sports, dam, construction — at true object
sizes. Sites are laid out in a local frame (u along the main axis, v across) turned by a multiple of 90° so
that they fit the region; the number of big structures scales with the region, not their size.
"""

from __future__ import annotations

import math

import numpy as np

from sgg.datasets.synthetic.builder import Builder, Frame, jitter

CONCRETE = (182, 180, 172)


# ----------------------------------------------------------------------------------------- vessels
def vessel(f: Frame, u, v, heading, cls="boat", length=None):
    rng = f.b.rng
    if cls == "boat":  # pleasure boats as seen from above: light hull, cabin/canvas, dark windscreen, deck
        L = length or rng.uniform(6, 20)
        W = L * rng.uniform(0.3, 0.34)
        hull = [(235, 235, 232), (225, 222, 210), (240, 240, 240), (60, 75, 110), (200, 205, 215)]
        col = jitter(rng, hull[min(int(rng.integers(0, 7)), 4)], 12)
        cabin = jitter(rng, [(150, 150, 160), (210, 210, 205), (60, 80, 120), (70, 110, 120), (180, 170, 150)][rng.integers(0, 5)], 20)
        deco = [("rect", -0.05, 0, rng.uniform(0.3, 0.5), 0.6, cabin),
                ("rect", 0.17, 0, 0.06, 0.55, jitter(rng, (45, 50, 60), 12)),
                ("rect", -0.42, 0, 0.12, 0.7, jitter(rng, (170, 140, 105), 30))]
    else:
        L = length or rng.uniform(40, 200)
        W = L * rng.uniform(0.13, 0.17)
        col = jitter(rng, [(120, 40, 35), (40, 45, 55), (45, 70, 110), (80, 80, 80)][rng.integers(0, 4)], 10)
        deco = [("rect", -0.38, 0, 0.14, 0.85, (235, 235, 230))]
        deco += [("rect", x, 0, 0.08, 0.8, jitter(rng, (150, 120, 90), 50)) for x in np.arange(-0.2, 0.25, 0.1)]
    return f.add(cls, u, v, L, W, heading, shape="hull", color=col, z=3, height=3 if cls == "boat" else 10, deco=deco)


def harbour(b: Builder, x0, y0, x1, y1):
    """Quay with cranes and ships, marina piers with boats in rows, breakwater, yards, tanks, moving boats."""
    rng = b.rng
    f = Frame(b, x0, y0, x1, y1, tilt=b.site_tilt())
    U, V = f.U, f.V
    land = V * rng.uniform(0.25, 0.38)
    f.ground(U / 2, (land + V) / 2 + 6, U + 24, V - land + 12, 0, None, kind="water")
    quay_w = rng.uniform(18, 28)
    quay = f.add("dock", U / 2, land + quay_w / 2, U * rng.uniform(0.8, 0.95), quay_w, 0, color=jitter(rng, CONCRETE), z=1,
                 deco=[("rect", 0, -0.45, 1.0, 0.06, (120, 120, 115))])
    # ships along the quay, cranes over the quay
    qlen = b.objs[quay]["L"] if quay >= 0 else 0
    split = U * rng.uniform(0.3, 0.6)  # ships berth along the quay left of split, marina piers to the right
    u = U / 2 - qlen / 2 + 10
    while u < split - 50:
        L = min(rng.uniform(50, 200), split - u - 5)
        if L < 40:
            break
        ang = 0.0 if rng.random() > 0.06 else rng.uniform(0.3, 0.6)
        vessel(f, u + L / 2, land + quay_w + L * 0.075 + 1.5, ang + (math.pi if rng.random() < 0.5 else 0), "ship", L)
        u += L + rng.uniform(15, 60)
    # quay cranes all along the quay (over the dock, some over a ship)
    ccol = jitter(rng, (200, 70, 40), 20)
    for cu in np.arange(U / 2 - qlen / 2 + 12, U / 2 + qlen / 2 - 12, rng.uniform(28, 45)):
        if rng.random() < 0.85:
            f.add("crane", cu, land + quay_w * 0.5 + 4, 11, quay_w + 10, 0, color=ccol, z=4,
                  height=30, deco=[("rect", 0, 0, 0.2, 1.0, (60, 60, 60)), ("rect", -0.4, 0, 0.2, 1.0, tuple(int(c * 0.8) for c in ccol)),
                                   ("rect", 0.4, 0, 0.2, 1.0, tuple(int(c * 0.8) for c in ccol))])
    # marina piers
    bw_v = V - rng.uniform(20, 40)
    pier_len_max = bw_v - (land + quay_w) - 40
    u = split + rng.uniform(15, 40)
    while u < U - 30 and pier_len_max > 40:
        pl = rng.uniform(0.5, 1.0) * pier_len_max
        pw = rng.uniform(4, 8)
        v0 = land + quay_w
        f.add("dock", u, v0 + pl / 2, pw, pl, 0, color=jitter(rng, (170, 150, 120)), z=1)
        blen = rng.uniform(7, 16)
        for side in (-1, 1):
            vs = np.arange(v0 + 6, v0 + pl - 3, blen * 0.4 + rng.uniform(0.5, 1.8))
            occ = rng.random(len(vs)) < rng.uniform(0.5, 0.95)
            for vv in vs[occ]:
                rand = rng.random() < 0.05
                L = blen * rng.uniform(0.85, 1.1)
                h = (0 if side > 0 else math.pi) + (rng.uniform(-0.8, 0.8) if rand else rng.normal(0, 0.03))
                vessel(f, u + side * (pw / 2 + L / 2 + 0.6), vv, h, "boat", L)
        u += 2 * blen + pw + rng.uniform(12, 30)
    # breakwater with moored boats, moving boats in open water
    blen = U * rng.uniform(0.4, 0.8)
    bu = rng.uniform(blen / 2, U - blen / 2)
    bww = rng.uniform(8, 14)
    f.add("breakwater", bu, bw_v, blen, bww, 0, color=jitter(rng, (150, 140, 125)), z=1,
          deco=[("rect", 0, 0.3, 1.0, 0.3, (120, 112, 100))])
    for uu in np.arange(bu - blen / 2 + 10, bu + blen / 2 - 10, rng.uniform(22, 30)):
        if rng.random() < 0.75:
            L = rng.uniform(8, 25)
            vessel(f, uu, bw_v - bww / 2 - L * 0.18 - 0.8, rng.normal(0, 0.05) + math.pi * (rng.random() < 0.5), "boat", L)
    for _ in range(rng.integers(1, 5)):
        uu, vv = rng.uniform(30, U - 30), rng.uniform(land + quay_w + 15, bw_v - 20)
        h = rng.uniform(0, 2 * math.pi)
        vessel(f, uu, vv, h)
        if rng.random() < 0.5:
            vessel(f, uu + rng.uniform(30, 80) * math.cos(h) + 12 * math.sin(h), vv, h + math.pi)
        elif rng.random() < 0.5:
            vessel(f, uu - 14 * math.sin(h), vv + 14 * math.cos(h), h)
    # land side: storehouses, goods yard with containers, a few tanks
    u = 10.0
    while u < U - 60:
        kind = rng.choice(["storehouse", "goods_yard", "tank", "storehouse"])
        if kind == "tank":
            d = rng.uniform(12, 22)
            for k in range(int(rng.integers(2, 5))):
                tank(f, u + d / 2 + k * d * 1.35, land * 0.5, d)
            u += 5 * d * 1.35
        elif kind == "goods_yard":
            L, W = rng.uniform(60, 150), land * rng.uniform(0.5, 0.8)
            f.add("goods_yard", u + L / 2, land * 0.5, L, W, 0, color=(150, 150, 145), z=1,
                  deco=containers(rng, L, W))
            yard_cranes(f, u + L / 2, land * 0.5, L, W)
            u += L + 15
        else:
            L, W = rng.uniform(40, 120), land * rng.uniform(0.4, 0.7)
            f.add("storehouse", u + L / 2, land * 0.5, L, W, 0, color=jitter(rng, (170, 175, 180), 25), z=2, height=10,
                  deco=[("rect", 0, 0, 1.0, 0.04, (120, 120, 125))])
            u += L + 15


def containers(rng, L, W):
    """Container stacks of a goods yard: blocks of 12 m × 2.5 m boxes in rows (decorations, unit frame)."""
    cl, cw = min(0.9, 12.5 / L), min(0.9, 2.6 / W)
    cols = np.array([(170, 60, 45), (45, 90, 150), (200, 150, 50), (80, 130, 80), (190, 190, 190), (120, 70, 110)])
    out = []
    for x in np.arange(-0.5 + 1.2 * cl, 0.5 - 0.6 * cl, 1.25 * cl):
        for y in np.arange(-0.5 + 2 * cw, 0.5 - cw, 1.05 * cw):
            if rng.random() < 0.8:
                out.append(("rect", float(x), float(y), cl, cw, tuple(int(c) for c in cols[rng.integers(0, len(cols))])))
    return out


def yard_cranes(f: Frame, u, v, L, W):
    """Rubber-tyred gantry cranes straddling container rows of a goods yard (they are *over* it)."""
    rng = f.b.rng
    for cu in np.arange(u - L / 2 + 8, u + L / 2 - 8, rng.uniform(14, 30)):
        if rng.random() < 0.6:
            f.add("crane", cu, v + rng.uniform(-W / 4, W / 4), 7, min(28, W * 0.5), 0, color=jitter(rng, (215, 170, 40), 15), z=4,
                  height=18, deco=[("rect", -0.4, 0, 0.2, 1.0, (90, 90, 90)), ("rect", 0.4, 0, 0.2, 1.0, (90, 90, 90))])


def tank(f: Frame, u, v, d, color=None):
    rng = f.b.rng
    col = color or jitter(rng, (215, 215, 210), 12)
    return f.add("tank", u, v, d, d, 0, shape="circle", color=col, z=2, height=0.6 * d,
                 deco=[("circle", 0, 0, 0.8, 0.8, tuple(int(c * 0.9) for c in col)), ("circle", 0.1, 0.1, 0.08, 0.08, (90, 90, 90))])


# ----------------------------------------------------------------------------------------- airport
def airplane(f: Frame, u, v, heading, L=None):
    rng = f.b.rng
    L = L or rng.uniform(30, 70)
    if f.b.detail:
        span, shape, wing, deco = _detailed_airplane(rng, L)
        return f.add("airplane", u, v, L, span, heading, shape=shape, color=wing, z=3, height=6, deco=deco)
    span = L * rng.uniform(0.9, 1.05)
    col = jitter(rng, (238, 238, 240), 6)
    tail = jitter(rng, [(200, 40, 40), (30, 60, 150), (240, 240, 240), (30, 120, 80)][rng.integers(0, 4)], 15)
    return f.add("airplane", u, v, L, span, heading, shape="plane", color=col, z=3, height=6,
                 deco=[("rect", -0.44, 0, 0.1, 0.05, tail), ("rect", 0.0, 0, 0.7, 0.06, (215, 215, 220))])


def _detailed_airplane(rng: np.random.Generator, L: float) -> tuple[float, str, tuple, list]:
    """Span, planform, wing colour and decorations of an airliner or regional aircraft as Pleiades-class
    0.5 m imagery shows one: grey wings under a white (or painted) fuselage with a pointed nose, dark cockpit
    glazing, a coloured fin, and two or four engine pods ahead of the wings (turboprops: straight wings with
    nacelles reaching forward)."""
    straight = rng.random() < 0.25
    span = L * rng.uniform(0.85, 1.1)
    wing = jitter(rng, (rng.uniform(160, 215),) * 3, 5)
    body = jitter(rng, [(240, 240, 242), (236, 236, 236), (225, 228, 232), (60, 80, 140), (200, 50, 45)][
        rng.choice(5, p=[0.55, 0.15, 0.15, 0.08, 0.07])], 6)
    tail = jitter(rng, [(200, 40, 40), (30, 60, 150), (240, 240, 240), (30, 120, 80), (240, 180, 30)][rng.integers(0, 5)], 15)
    pod = jitter(rng, (rng.uniform(90, 150),) * 3, 8)
    fuse = rng.uniform(0.085, 0.11)  # fuselage width in span units
    deco = [("hull", 0.01, 0.0, 0.98, fuse, body), ("rect", 0.455, 0.0, 0.02, fuse * 0.6, (40, 44, 52)),
            ("rect", -0.43, 0.0, 0.12, fuse * 0.4, tail)]
    if straight:
        deco += [("rect", 0.1, y, 0.16, 0.05, pod) for y in (-0.2, 0.2)]
    else:
        ys = (-0.2, 0.2) if rng.random() < 0.85 else (-0.34, -0.19, 0.19, 0.34)
        deco += [("rect", 0.11 - 0.49 * (abs(y) - 0.05), y, 0.09, 0.045, pod) for y in ys]  # on the leading edge
    if rng.random() < 0.3:  # a cheat line along the fuselage
        deco.append(("rect", 0.0, 0.0, 0.75, fuse * 0.3, tail))
    return span, "plane_straight" if straight else "plane", wing, deco


def airport(b: Builder, x0, y0, x1, y1):
    """Runway, parallel and connecting taxiways (intersect / converge), aprons, terminal, bridges, planes."""
    rng = b.rng
    f = Frame(b, x0, y0, x1, y1, k=int(rng.integers(0, 2)) * 2 if (x1 - x0) >= (y1 - y0) else 1 + 2 * int(rng.integers(0, 2)),
              tilt=b.site_tilt())
    U, V = f.U, f.V
    v, vmax = 10.0, V
    tw_len = U - 30
    if U >= 800 and V >= 330:
        rl = min(rng.uniform(2000, 3000), U - 30)
        rw = 45.0
        f.add("runway", U / 2, v + rw / 2, rl, rw, 0, color=jitter(rng, (80, 80, 82), 5), z=1,
              deco=[("rect", x, 0, 0.012, 0.03, (230, 230, 230)) for x in np.arange(-0.45, 0.46, 0.03)]
              + [("rect", s * 0.48, y, 0.02, 0.04, (230, 230, 230)) for s in (-1, 1) for y in np.arange(-0.35, 0.36, 0.1)])
        sep = rng.uniform(110, 160)
        tw_v = v + rw / 2 + sep
        tw_len = rl * 0.92
        for cu in np.linspace(U / 2 - tw_len / 2 + 40, U / 2 + tw_len / 2 - 40, int(rng.integers(2, 5))):
            f.add("taxiway", cu, (v + tw_v) / 2 + 15, 23, tw_v - v + 30, 0, color=(95, 95, 96), z=1,
                  deco=[("rect", 0, 0, 0.05, 1.0, (215, 190, 60))])
        n_exit = int(rng.integers(2, 5))  # rapid exits, spread along the runway so that they do not cross
        slots = np.linspace(U / 2 - tw_len / 2 + 150, U / 2 + tw_len / 2 - 150, n_exit + 1)
        for cu in (slots[:-1] + slots[1:]) / 2 + rng.uniform(-0.2, 0.2, n_exit) * (slots[1] - slots[0]):
            a = math.radians(rng.uniform(25, 35)) * (1 if rng.random() < 0.5 else -1)
            ln = (tw_v - v - rw / 2) / math.sin(abs(a))
            f.add("taxiway", cu, (v + rw / 2 + tw_v) / 2, ln, 23, a, color=(95, 95, 96), z=1,
                  deco=[("rect", 0, 0, 1.0, 0.05, (215, 190, 60))])
        if rng.random() < 0.6:
            airplane(f, U / 2 + rng.uniform(-rl / 3, rl / 3), v + rw / 2, math.pi * (rng.random() < 0.5))
        if V >= 900:  # a second, parallel runway on the far side
            r2 = V - 10 - rw / 2
            f.add("runway", U / 2, r2, rl, rw, 0, color=jitter(rng, (80, 80, 82), 5), z=1,
                  deco=[("rect", x, 0, 0.012, 0.03, (230, 230, 230)) for x in np.arange(-0.45, 0.46, 0.03)])
            if rng.random() < 0.6:
                airplane(f, U / 2 + rng.uniform(-rl / 3, rl / 3), r2, math.pi * (rng.random() < 0.5))
            vmax = r2 - rw / 2 - 60
        v = tw_v
    else:
        v = 20.0
    tw_w = 23.0
    while True:  # bands of taxiway + aprons until the region is full
        f.add("taxiway", U / 2, v, min(tw_len, U - 30), tw_w, 0, color=(95, 95, 96), z=1,
              deco=[("rect", 0, 0, 1.0, 0.05, (215, 190, 60))])
        for _ in range(int(rng.integers(0, 4))):
            airplane(f, rng.uniform(0.1, 0.9) * U, v + rng.normal(0, 1), math.pi * (rng.random() < 0.5) + rng.normal(0, 0.02))
        # aprons with terminal + gates, remote stands
        av0 = v + tw_w / 2 + rng.uniform(0, 8)
        depth = min(vmax - 10 - av0, rng.uniform(150, 260))
        if depth < 90:
            return
        band_end = av0 + depth
        n_ap = max(1, min(3, int(U // 350)))
        width = (U - 40) / n_ap
        for k in range(n_ap):
            al = width - rng.uniform(25, 50)
            au = 20 + width * (k + 0.5)
            f.add("apron", au, av0 + depth / 2, al, depth, 0, color=jitter(rng, (165, 163, 155), 6), z=0)
            f.add("taxiway", au, av0 + 16, al + 20, 18, 0, color=(150, 150, 146), z=1, deco=[("rect", 0, 0, 1.0, 0.05, (215, 190, 60))])
            if k < n_ap - 1:  # taxiway between two aprons, joining the parallel taxiway
                f.add("taxiway", 20 + width * (k + 1), av0 + depth / 2 - 6, 20, depth + 12, 0, color=(95, 95, 96), z=1,
                      deco=[("rect", 0, 0, 0.05, 1.0, (215, 190, 60))])
            has_term = rng.random() < 0.75
            tv = av0 + depth
            if has_term:
                tl, td = al * rng.uniform(0.55, 0.75), rng.uniform(25, 45)
                f.add("terminal", au, av0 + depth - td / 2 - 4, tl, td, 0, color=jitter(rng, (200, 200, 205), 15), z=2, height=15,
                      deco=[("rect", 0, 0.2, 1.0, 0.1, (150, 150, 160))])
                tv = av0 + depth - td - 4
                L = rng.uniform(35, 65)
                front = tv - 20 - L
                gu = au - tl / 2 + L / 2 + 4
                while gu < au + tl / 2 - L / 2:
                    if rng.random() < 0.85:
                        nose = tv - rng.uniform(14, 20)
                        p = airplane(f, gu, nose - L / 2, math.pi / 2, L)
                        if p >= 0:
                            span = b.objs[p]["W"]
                            f.add("boarding_bridge", gu + span * 0.08 + 2, (tv + nose - 0.25 * L) / 2, tv - nose + 0.25 * L + 1.5, 4, math.pi / 2,
                                  color=(205, 205, 200), z=4, height=5)
                    gu += L + rng.uniform(6, 12)
                tv = front - 10
            # remote stands: rows of planes facing the taxiway side
            rv = av0 + 40
            L = rng.uniform(30, 55)
            while rv + L < tv - 5:
                gu = au - al / 2 + L / 2 + 5
                while gu < au + al / 2 - L / 2 - 5:
                    if rng.random() < 0.8:
                        jit = rng.uniform(-1.2, 1.2) if rng.random() < 0.06 else rng.normal(0, 0.03)
                        airplane(f, gu, rv + L / 2, -math.pi / 2 + jit, L)
                    gu += L * 1.02 + rng.uniform(3, 8)
                rv += L + 14
        v = band_end + rng.uniform(25, 45) + tw_w / 2
        tw_len = U - 30
        if v + tw_w / 2 + 100 > vmax - 10:
            return


# ----------------------------------------------------------------------------------------- parking
def parking_lot(f: Frame, u, v, lu, lv, cls="car_parking"):
    """One lot along u: back-to-back rows of nose-in stalls; returns the lot's object index."""
    rng = f.b.rng
    truck = cls == "truck_parking"
    stall_w, stall_d, aisle = (4.2, 15.0, 14.0) if truck else (2.6, 5.3, 6.5)
    n_pairs = max(1, int((lv - 4 + aisle) // (2 * stall_d + aisle)))
    lv = n_pairs * 2 * stall_d + (n_pairs - 1) * aisle + 4
    nst = int((lu - 4) // stall_w)
    lu = nst * stall_w + 4
    lines = [("rect", -0.5 + (2 + k * stall_w) / lu, 0, 0.15 / lu, 1 - 4 / lv, (225, 225, 220)) for k in range(nst + 1)]
    idx = f.add(cls, u, v, lu, lv, 0, color=jitter(rng, (70, 70, 72) if not truck else (110, 106, 100), 4), z=0, deco=lines)
    if idx < 0:
        return idx
    occ = rng.uniform(0.5, 0.97)
    us = u - lu / 2 + 2 + stall_w * (np.arange(nst) + 0.5)
    for p in range(n_pairs):
        base = v - lv / 2 + 2 + p * (2 * stall_d + aisle)
        for row, (vc, head) in enumerate(((base + stall_d / 2, -math.pi / 2), (base + 1.5 * stall_d, math.pi / 2))):
            m = rng.random(nst) < occ
            n = int(m.sum())
            if not n:
                continue
            flip = rng.random(n) < 0.3
            h = np.full(n, head) + np.where(flip, math.pi, 0) + rng.normal(0, 0.025, n)
            rnd = rng.random(n) < 0.01
            h[rnd] += rng.uniform(0.4, 1.1, int(rnd.sum())) * rng.choice([-1, 1], int(rnd.sum()))
            vv = np.full(n, vc) + rng.normal(0, 0.15, n)
            outer = -1 if (p == 0 and row == 0) else (1 if (p == n_pairs - 1 and row == 1) else 0)
            if outer:  # now and then a vehicle sticks out of the lot (incorrectly parked)
                vv += outer * np.where(rng.random(n) < 0.003, rng.uniform(1.8, 2.8, n) * (3 if truck else 1), 0.0)
            if truck:
                is_car = rng.random(n) < 0.04
                f.cars(us[m][~is_car], vv[~is_car], h[~is_car], "truck")
                f.cars(us[m][is_car], vv[is_car], h[is_car], "car")
            else:
                is_truck = rng.random(n) < 0.004
                f.cars(us[m][~is_truck] + rng.normal(0, 0.1, int((~is_truck).sum())), vv[~is_truck], h[~is_truck], "car")
                f.cars(us[m][is_truck], vv[is_truck], h[is_truck], "truck")
    return idx


def parking(b: Builder, x0, y0, x1, y1):
    """Blocks of car parks (and some truck parks, a gas station) separated by access lanes."""
    rng = b.rng
    f = Frame(b, x0, y0, x1, y1, k=int(rng.integers(0, 2)), tilt=b.site_tilt())
    U, V = f.U, f.V
    f.ground(U / 2, V / 2, U, V, 0, jitter(rng, (112, 110, 105), 6))
    v = 4.0
    while v < V - 20:
        truck = rng.random() < 0.15
        lv = min(V - v - 4, rng.uniform(30, 75) if not truck else rng.uniform(40, 80))
        if lv < (15 if not truck else 36):
            break
        u = 4.0
        while u < U - 25:
            lu = min(U - u - 4, rng.uniform(30, 110))
            if lu < 20:
                break
            if rng.random() < 0.06 and lu > 30 and lv > 25:
                f.add("gas_station", u + 15, v + 12, 30, 18, 0, color=(235, 235, 235), z=2, height=5,
                      deco=[("rect", x, 0, 0.04, 0.5, (200, 40, 40)) for x in (-0.3, 0, 0.3)])
            else:
                parking_lot(f, u + lu / 2, v + lv / 2, lu, lv, "truck_parking" if truck else "car_parking")
            u += lu + rng.uniform(6, 9)
        v += lv + rng.uniform(7, 10)

