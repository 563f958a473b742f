"""Predicate rules for synthetic scenes: each STAR predicate is defined by geometry and class, computed on
the generated objects (centres, length × width along a heading, in metres) — never on labels assigned at
placement. Candidate pairs come from k-d trees (k nearest / fixed radius), so large car parks stay linear,
and every rule is a numpy expression over the candidate pairs.

``relations(names, geo)`` → (subject, object, predicate-name) arrays, one row per relation, deduplicated.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree

DEG = math.pi / 180
DIRECTED = ("car", "truck", "engineering_vehicle", "ship", "boat", "airplane", "smoke", "vapor", "boarding_bridge", "lattice_tower")


class Geo:
    """Vectorised geometry helpers over N objects (``geo``: dict of cx, cy, L, W, heading arrays)."""

    def __init__(self, names: np.ndarray, geo: dict):
        self.names = np.asarray(names, dtype=object)
        self.cx, self.cy = np.asarray(geo["cx"], float), np.asarray(geo["cy"], float)
        self.L, self.W, self.h = np.asarray(geo["L"], float), np.asarray(geo["W"], float), np.asarray(geo["heading"], float)
        # undirected structures: make L the long side so rules can use the long axis
        swap = ~np.isin(self.names, DIRECTED) & (self.W > self.L)
        self.L, self.W = np.where(swap, self.W, self.L), np.where(swap, self.L, self.W)
        self.h = np.where(swap, self.h + np.pi / 2, self.h)
        self.xy = np.stack([self.cx, self.cy], 1) if len(self.cx) else np.zeros((0, 2))

    def idx(self, *classes) -> np.ndarray:
        return np.flatnonzero(np.isin(self.names, classes))

    def local(self, i, j):
        """Offsets of j's centre in i's frame: (along i's heading, across it)."""
        dx, dy = self.cx[j] - self.cx[i], self.cy[j] - self.cy[i]
        c, s = np.cos(self.h[i]), np.sin(self.h[i])
        return c * dx + s * dy, -s * dx + c * dy

    def in_box(self, px, py, b, margin=0.0):
        """Points (px, py) inside boxes b (+margin metres); broadcasts."""
        dx, dy = px - self.cx[b], py - self.cy[b]
        c, s = np.cos(self.h[b]), np.sin(self.h[b])
        return (np.abs(c * dx + s * dy) <= self.L[b] / 2 + margin) & (np.abs(-s * dx + c * dy) <= self.W[b] / 2 + margin)

    def container(self, items, boxes, margin=0.0) -> np.ndarray:
        """For each item, the smallest box (global index) containing its centre, or -1."""
        if not len(items) or not len(boxes):
            return np.full(len(items), -1)
        m = self.in_box(self.cx[items][:, None], self.cy[items][:, None], boxes[None, :], margin)
        area = np.where(m, (self.L * self.W)[boxes][None, :], np.inf)
        best = area.argmin(1)
        return np.where(m.any(1), boxes[best], -1)

    def corners(self, i):
        """(n, 4) x and y of each box's corners."""
        c, s = np.cos(self.h[i])[:, None], np.sin(self.h[i])[:, None]
        u = np.array([0.5, 0.5, -0.5, -0.5])[None] * self.L[i][:, None]
        v = np.array([0.5, -0.5, -0.5, 0.5])[None] * self.W[i][:, None]
        return self.cx[i][:, None] + c * u - s * v, self.cy[i][:, None] + s * u + c * v

    def ends(self, i):
        """The two end points of each box's long axis (front = +heading)."""
        c, s = np.cos(self.h[i]), np.sin(self.h[i])
        return (self.cx[i] + c * self.L[i] / 2, self.cy[i] + s * self.L[i] / 2), (self.cx[i] - c * self.L[i] / 2, self.cy[i] - s * self.L[i] / 2)


def axis_diff(a, b):
    """Angle between two undirected axes, in [0, π/2]."""
    d = np.abs(np.remainder(a - b, np.pi))
    return np.minimum(d, np.pi - d)


def dir_diff(a, b):
    """Angle between two directions, in [0, π]."""
    return np.abs(np.remainder(a - b + np.pi, 2 * np.pi) - np.pi)


def knn(g: Geo, a: np.ndarray, k: int, r: float, b: np.ndarray | None = None):
    """Ordered pairs (i in a, j in b) with j among i's k nearest of b within r (i ≠ j)."""
    b = a if b is None else b
    if not len(a) or not len(b):
        return np.zeros(0, int), np.zeros(0, int)
    kk = min(k + 1, len(b))
    d, j = cKDTree(g.xy[b]).query(g.xy[a], k=kk, distance_upper_bound=r)
    d, j = d.reshape(len(a), kk), j.reshape(len(a), kk)
    i = np.repeat(a, kk)
    ok = np.isfinite(d.ravel())
    jj = b[np.minimum(j.ravel(), len(b) - 1)]
    ok &= jj != i
    return i[ok], jj[ok]


def within(g: Geo, a: np.ndarray, b: np.ndarray, r: float):
    """All ordered pairs (i in a, j in b) with centres closer than r (i ≠ j)."""
    if not len(a) or not len(b):
        return np.zeros(0, int), np.zeros(0, int)
    m = cKDTree(g.xy[a]).sparse_distance_matrix(cKDTree(g.xy[b]), r, output_type="ndarray")
    i, j = a[m["i"]], b[m["j"]]
    ok = i != j
    return i[ok], j[ok]


def first_k(i: np.ndarray, k: int) -> np.ndarray:
    """Mask keeping the first k rows of each run of equal values in the grouped array i."""
    if not len(i):
        return np.zeros(0, bool)
    start = np.r_[True, i[1:] != i[:-1]]
    grp = np.cumsum(start) - 1
    pos = np.arange(len(i)) - np.flatnonzero(start)[grp]
    return pos < k


class Rel:
    def __init__(self):
        self.rows: list[tuple[np.ndarray, np.ndarray, str]] = []

    def add(self, s, o, pred: str, mask=None):
        s, o = np.atleast_1d(s), np.atleast_1d(o)
        if mask is not None:
            s, o = s[mask], o[mask]
        if len(s):
            self.rows.append((s.astype(np.int64), np.broadcast_to(o, s.shape).astype(np.int64), pred))


# ------------------------------------------------------------------------------------------- rules
def parked_vehicles(g: Geo, R: Rel, veh, lots, side_gap: float, near: float, k_same: int = 0, k_diff: int = 1, diff_r: float = 30,
                    k_search: int = 12):
    """Vehicles in parking areas: parked on (parallel / isolated / random), alongside, same / different parking."""
    cont = g.container(veh, lots)
    on = cont >= 0
    v, lot = veh[on], cont[on]
    if not len(v):
        return v
    own = np.full(len(g.names), -1)
    own[v] = lot
    i, j = knn(g, v, 8, near)
    same = own[i] == own[j]
    par = axis_diff(g.h[i], g.h[j]) < 12 * DEG
    dl, dt = g.local(i, j)
    side = (np.abs(dl) < 0.6 * g.L[i]) & (np.abs(dt) < (g.W[i] + g.W[j]) / 2 + side_gap)
    along = same & par & side
    R.add(i, j, "parked alongside with", along)
    rel_i = axis_diff(g.h[i], g.h[own[i]])
    R.add(i, j, "not parked alongside with", same & side & ~par & (np.minimum(rel_i, np.pi / 2 - rel_i) > 10 * DEG))
    if k_same:
        ii, jj = knn(g, v, k_same, 6 * near)
        R.add(ii, jj, "parking in the same apron with", own[ii] == own[jj])
    has = np.isin(v, i[along])
    crowd = np.isin(v, i)
    rel = axis_diff(g.h[v], g.h[lot])
    aligned = np.minimum(rel, np.pi / 2 - rel) < 10 * DEG
    mismatch = ((g.names[v] == "car") & (g.names[lot] == "truck_parking")) | ((g.names[v] == "truck") & (g.names[lot] == "car_parking"))
    R.add(v, lot, "in the same parking with", mismatch)
    kx, ky = g.corners(v)
    sticks_out = ~g.in_box(kx, ky, lot[:, None], margin=0.3).all(1)  # centre in the lot, footprint not
    R.add(v, lot, "incorrectly parked on", ~mismatch & sticks_out)
    ok = ~mismatch & ~sticks_out
    R.add(v, lot, "parallelly parked on", ok & aligned & has)
    R.add(v, lot, "isolatedly parked on", ok & aligned & ~has & ~crowd)
    R.add(v, lot, "randomly parked on", ok & ~aligned & crowd)
    # nearest vehicles parked in another lot
    ii, jj = knn(g, v, k_search, diff_r)
    other = own[ii] != own[jj]
    ii, jj = ii[other], jj[other]
    R.add(ii, jj, "parking in the different apron with" if k_same else "in the different parking with", first_k(ii, k_diff))
    return v


def road_traffic(g: Geo, R: Rel, moving, targets):
    """Moving vehicles: same direction / lane, distances, and approach / pass across / away from targets."""
    i, j = knn(g, moving, 4, 45)
    same_dir = dir_diff(g.h[i], g.h[j]) < 25 * DEG
    dl, dt = g.local(i, j)
    gap = np.abs(dl) - (g.L[i] + g.L[j]) / 2
    lane = np.abs(dt) < 1.6
    R.add(i, j, "driving in the same direction with", same_dir)
    R.add(i, j, "driving in the same lane with", same_dir & lane & (dl > 0))
    R.add(i, j, "driving in the different lane with", same_dir & ~lane & (np.abs(dt) < 6) & (np.abs(dl) < (g.L[i] + g.L[j]) / 2))
    R.add(i, j, "within danger distance of", same_dir & lane & (dl > 0) & (gap < 7))
    R.add(i, j, "within safe distance of", same_dir & lane & (dl > 0) & (gap >= 7) & (gap < 35))
    a, t = within(g, moving, targets, 160)
    inside = g.in_box(g.cx[a], g.cy[a], t)
    vx, vy = g.cx[t] - g.cx[a], g.cy[t] - g.cy[a]
    dist = np.hypot(vx, vy) + 1e-9
    toward = (np.cos(g.h[a]) * vx + np.sin(g.h[a]) * vy) / dist
    edge = dist - 0.5 * np.maximum(g.L[t], g.W[t])
    bridge = g.names[t] == "bridge"
    R.add(a, t, "pass across", inside)
    R.add(a, t, "approach", ~inside & (toward > 0.8) & (edge < 30))
    R.add(a, t, "away from", ~inside & (toward < -0.8) & (edge < 30))
    R.add(a, t, "drive toward", ~inside & bridge & (toward > 0.8) & (edge >= 45) & (edge < 110))
    R.add(a, t, "drive off", ~inside & bridge & (toward < -0.8) & (edge >= 45) & (edge < 110))


def harbour_rules(g: Geo, R: Rel):
    """Vessels at docks and breakwaters, vessels among themselves, cranes over docks, bridges and locks."""
    ves = g.idx("ship", "boat")
    moor = g.idx("dock", "breakwater")
    docked = np.zeros(len(ves), bool)
    at = np.full(len(ves), -1)
    if len(ves) and len(moor):
        i, m = ves[:, None], moor[None, :]
        ang = g.h[i] - g.h[m]
        du, dv = g.local(m, i)
        across = 0.5 * (g.L[i] * np.abs(np.sin(ang)) + g.W[i] * np.abs(np.cos(ang)))
        slack = np.abs(dv) - (g.W[m] / 2 + across)
        touch = (np.abs(du) <= g.L[m] / 2 + 2) & (slack < 2.5) & (slack > -0.5 * g.W[i] - 1)
        score = np.where(touch, slack, np.inf)
        docked = touch.any(1)
        at = np.where(docked, moor[score.argmin(1)], -1)
    v, mo = ves[docked], at[docked]
    own = np.full(len(g.names), -1)
    own[v] = mo
    i, j = knn(g, v, 6, 60)
    same = own[i] == own[j]
    brk = g.names[own[i]] == "breakwater"
    par = axis_diff(g.h[i], g.h[j]) < 12 * DEG
    dl, dt = g.local(i, j)
    side = (np.abs(dl) < 0.6 * g.L[i]) & (np.abs(dt) < 0.8 * (g.W[i] + g.W[j]) + 3.0)
    along = same & par & side
    R.add(i, j, "docked alongside with", along & ~brk & (i < j))
    R.add(i, j, "not docked alongside with", same & ~side & ~brk & (np.abs(dl) < 1.5 * g.L[i]) & (np.abs(dt) < 0.6 * g.W[i]) & par)
    ii, jj = knn(g, v, 1, 150)
    s2 = own[ii] == own[jj]
    b2 = g.names[own[ii]] == "breakwater"
    R.add(ii, jj, "docking at the same dock with", s2 & ~b2)
    R.add(ii, jj, "docking at the same breakwater with", s2 & b2)
    ii, jj = knn(g, v, 3, 150)
    R.add(ii, jj, "docking at the same breakwater with", (own[ii] == own[jj]) & (g.names[own[ii]] == "breakwater"))
    ii, jj = knn(g, v, 12, 45)  # nearest vessel docked at another dock (one direction per pair)
    d2 = (own[ii] != own[jj])
    ii, jj = ii[d2], jj[d2]
    R.add(ii, jj, "docking at the different dock with", first_k(ii, 1) & (ii < jj))
    rel = axis_diff(g.h[v], g.h[mo])
    aligned = np.minimum(rel, np.pi / 2 - rel) < 15 * DEG
    has = np.isin(v, i[along]) | (rel < 15 * DEG)
    R.add(v, mo, "parallelly docked at", aligned & has)
    R.add(v, mo, "isolatedly docked at", aligned & ~has)
    R.add(v, mo, "randomly docked at", ~aligned)
    # moving vessels
    lock, bridge = g.idx("ship_lock"), g.idx("bridge")
    mov = ves[~docked]
    a, b = knn(g, mov, 3, 160)
    dd = dir_diff(g.h[a], g.h[b])
    dl, dt = g.local(a, b)
    R.add(a, b, "driving in the opposite direction with", dd > 150 * DEG)
    R.add(a, b, "driving alongside with", (dd < 20 * DEG) & (np.abs(dl) < g.L[a]) & (np.abs(dt) < 40))
    R.add(a, b, "within safe distance of", (g.names[a] == "ship") & (dd < 20 * DEG) & (np.abs(dl) >= g.L[a]))
    c = g.container(mov, lock, margin=1)
    R.add(mov, c, "pass through", c >= 0)
    a, t = within(g, mov, bridge, 200)
    inside = g.in_box(g.cx[a], g.cy[a], t, margin=2)
    toward = np.cos(g.h[a]) * (g.cx[t] - g.cx[a]) + np.sin(g.h[a]) * (g.cy[t] - g.cy[a])
    R.add(a, t, "pass under", inside)
    R.add(a, t, "approach", ~inside & (toward > 0))
    R.add(a, t, "away from", ~inside & (toward < 0))
    # cranes over docks (footprint centre on the dock, crane spans its edge)
    cr = g.idx("crane")
    c = g.container(cr, g.idx("dock"), margin=3)
    R.add(cr, c, "over", c >= 0)
    c = g.container(cr, g.idx("goods_yard"))
    R.add(cr, c, "over", c >= 0)
    c = g.container(cr, g.idx("ship"), margin=2)
    R.add(cr, c, "over", c >= 0)


def strip_rules(g: Geo, R: Rel):
    """Runways, taxiways and aprons: intersect, converge, through, adjacent, around; boarding bridges."""
    import shapely

    from sgg.datasets.synthetic.render import RECT, place

    idx = g.idx("runway", "taxiway", "apron")
    if len(idx) >= 2:
        polys = np.array([shapely.Polygon(place(RECT, g.cx[k], g.cy[k], g.L[k], g.W[k], g.h[k])) for k in idx])
        a, b = np.meshgrid(np.arange(len(idx)), np.arange(len(idx)), indexing="ij")
        a, b = a.ravel(), b.ravel()
        a, b = a[a != b], b[a != b]
        inter = shapely.intersects(polys[a], polys[b])
        dist = shapely.distance(polys[a], polys[b])
        ia, ib = idx[a], idx[b]
        ang = axis_diff(g.h[ia], g.h[ib])
        strips = np.isin(g.names[ia], ["runway", "taxiway"]) & np.isin(g.names[ib], ["runway", "taxiway"])
        (fx, fy), (bx, by) = g.ends(ia)
        out_both = ~g.in_box(fx, fy, ib) & ~g.in_box(bx, by, ib)
        R.add(ia, ib, "intersect", strips & inter & (ang >= 60 * DEG))
        R.add(ia, ib, "converge", strips & inter & (ang > 8 * DEG) & (ang < 60 * DEG))
        R.add(ia, ib, "connect", strips & inter & (ang >= 60 * DEG) & ~out_both & (g.names[ia] == "taxiway"))
        tw_ap = (g.names[ia] == "taxiway") & (g.names[ib] == "apron")
        R.add(ia, ib, "through", tw_ap & inter & out_both & (ang < 10 * DEG))
        apr = (g.names[ia] == "apron") | (g.names[ib] == "apron")
        R.add(ia, ib, "adjacent", apr & ~(g.names[ia] == "runway") & ~(g.names[ib] == "runway") & (dist < 12)
              & ~(tw_ap & inter & out_both) & ~((g.names[ib] == "taxiway") & (g.names[ia] == "apron") & inter & (ang < 10 * DEG)))
    for outer, inner in (("apron", "terminal"), ("ground_track_field", "soccer_ball_field")):
        ins = g.idx(inner)
        c = g.container(ins, g.idx(outer))
        R.add(c, ins, "around", c >= 0)
    bb = g.idx("boarding_bridge")
    if len(bb):
        (fx, fy), (bx, by) = g.ends(bb)
        for end_x, end_y in ((fx, fy), (bx, by)):
            term = g.idx("terminal")
            if len(term):
                m = g.in_box(end_x[:, None], end_y[:, None], term[None, :], margin=3)
                R.add(bb, term[m.argmax(1)], "connect", m.any(1))
            pl = g.idx("airplane")
            if len(pl):
                m = g.in_box(end_x[:, None], end_y[:, None], pl[None, :], margin=1)
                R.add(pl[m.argmax(1)], bb, "connect", m.any(1))
        c = g.container(bb, g.idx("apron"))
        R.add(bb, c, "over", c >= 0)


def airport_rules(g: Geo, R: Rel):
    planes = g.idx("airplane")
    ways = g.idx("taxiway", "runway")
    on = g.container(planes, ways)
    run, way = planes[on >= 0], on[on >= 0]
    al = axis_diff(g.h[run], g.h[way]) < 15 * DEG
    R.add(run, way, "run along", al)
    R.add(run, way, "not run along", ~al)
    own = np.full(len(g.names), -1)
    own[run] = way
    a, b = within(g, run, run, 2500)
    same = own[a] == own[b]
    rw = (g.names[own[a]] == "runway") & (g.names[own[b]] == "runway")
    R.add(a, b, "running along the same taxiway with", same & ~rw)
    R.add(a, b, "running along the different taxiway with", ~same & ~rw)
    R.add(a, b, "running along the different runway with", ~same & rw)
    d = np.hypot(g.cx[a] - g.cx[b], g.cy[a] - g.cy[b])
    R.add(a, b, "within danger distance of", d < 150)
    parked = planes[on < 0]
    parked_vehicles(g, R, parked, g.idx("apron"), side_gap=25, near=110, k_same=10, k_diff=6, diff_r=600, k_search=60)


def industry_rules(g: Geo, R: Rel):
    t = g.idx("tank")
    i, j = knn(g, t, 8, 140)
    d = np.hypot(g.cx[i] - g.cx[j], g.cy[i] - g.cy[j])
    ratio = np.maximum(g.L[i], g.L[j]) / np.minimum(g.L[i], g.L[j])
    co = (ratio < 1.08) & (d < 1.6 * (g.L[i] + g.L[j]) / 2)
    R.add(i, j, "co-storage with", co)
    R.add(i, j, "not co-storage with", ~co & (d < 2.5 * (g.L[i] + g.L[j]) + 40))
    for src, plume in (("chimney", "smoke"), ("cooling_tower", "vapor")):
        s, p = within(g, g.idx(src), g.idx(plume), 300)
        (fx, fy), (bx, by) = g.ends(p)
        start = np.hypot(bx - g.cx[s], by - g.cy[s]) < g.L[s] / 2 + 4
        strong = g.L[p] >= 1.5 * np.maximum(g.L[s], 40.0)  # plume length against the source's size
        R.add(s, p, "violently emit", start & strong)
        R.add(s, p, "slightly emit", start & ~strong)
    a, b = within(g, g.idx("genset"), g.idx("chimney"), 90)
    R.add(a, b, "exhaust to")
    a, b = within(g, g.idx("coal_yard", "containment_vessel"), g.idx("genset"), 140)
    R.add(a, b, "supply to")
    # construction
    ev = g.idx("engineering_vehicle")
    for site in ("foundation_pit", "unfinished_building"):
        a, b = within(g, ev, g.idx(site), 150)
        ins = g.in_box(g.cx[a], g.cy[a], b)
        near = g.in_box(g.cx[a], g.cy[a], b, margin=20)
        R.add(a, b, "working on", ins)
        R.add(a, b, "not working on", near & ~ins)
    tc = g.idx("tower_crane")
    a, b = within(g, tc, g.idx("unfinished_building"), 120)
    (fx, fy), (bx, by) = g.ends(a) if len(a) else ((np.zeros(0), np.zeros(0)), (np.zeros(0), np.zeros(0)))
    over = g.in_box(fx, fy, b, 2) | g.in_box(bx, by, b, 2) | g.in_box(g.cx[a], g.cy[a], b, 4)
    R.add(a, b, "working on", over)
    R.add(a, b, "not working on", ~over)
    w = g.idx("wind_mill")
    a, b = knn(g, w, 2, 600)
    R.add(a, b, "within safe distance of")


def power_rules(g: Geo, R: Rel):
    lt = g.idx("lattice_tower")
    i, j = knn(g, lt, 6, 260)
    par = axis_diff(g.h[i], g.h[j]) < 3 * DEG
    dl, dt = g.local(i, j)
    R.add(i, j, "within same line of", par & (np.abs(dt) < 4) & (np.abs(dl) < 240))
    R.add(i, j, "within different line of", par & (np.abs(dt) > 12) & (np.abs(dt) < 60) & (np.abs(dl) < 60))
    for hub in ("substation", "genset"):
        a, s = within(g, lt, g.idx(hub), 500)
        dl, dt = g.local(a, s)
        on_line = np.abs(dt) < 0.5 * np.maximum(g.L[s], g.W[s])  # the tower's line runs into the hub
        edge = np.abs(dl) - 0.5 * np.maximum(g.L[s], g.W[s])
        R.add(a, s, "directly connected to", on_line & (edge < 140))
        R.add(a, s, "indirectly connected to", on_line & (edge >= 140) & (edge < 260))
        R.add(s, a, "directly transmit electricity to", on_line & (edge < 45))
        R.add(s, a, "indirectly transmit electricity to", on_line & (edge >= 220) & (edge < 300))


def relations(names, geo: dict):
    """All rule-made relations of a scene: (subject, object, predicate name) arrays, deduplicated, sorted."""
    g = Geo(names, geo)
    R = Rel()
    veh = g.idx("car", "truck")
    parked = parked_vehicles(g, R, veh, g.idx("car_parking", "truck_parking"), side_gap=1.9, near=12, k_diff=2, diff_r=40)
    moving = np.setdiff1d(veh, parked)
    road_traffic(g, R, moving, g.idx("intersection", "roundabout", "bridge", "toll_gate"))
    harbour_rules(g, R)
    strip_rules(g, R)
    airport_rules(g, R)
    industry_rules(g, R)
    power_rules(g, R)
    if not R.rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, dtype=object)
    s = np.concatenate([r[0] for r in R.rows])
    o = np.concatenate([r[1] for r in R.rows])
    p = np.concatenate([np.full(len(r[0]), r[2], dtype=object) for r in R.rows])
    ok = (s != o) & (s >= 0) & (o >= 0)
    s, o, p = s[ok], o[ok], p[ok]
    _, code = np.unique(p.astype(str), return_inverse=True)
    n = int(max(s.max(), o.max())) + 1 if len(s) else 1
    key = (s * n + o) * 64 + code  # one integer per (subject, object, predicate)
    _, first = np.unique(key, return_index=True)
    first = np.sort(first)
    return s[first], o[first], p[first]
