"""The package's pair-candidate operations: boxes whose axis-aligned envelopes meet, plus k nearest
(:func:`spatial_pairs`), and points within a per-point Euclidean radius (:func:`radius_pairs`, scipy's k-d
tree: for search discs of very different sizes, e.g. pair proposal's radius in box diagonals).

Every stage that needs "which objects are near which" (rotated IoU's prefilter, NMS, tile merging,
topological relations, pair proposal) calls :func:`spatial_pairs` or, for many queries against one set,
:class:`EnvelopeIndex`. Envelopes are ``(x1, y1, x2, y2)`` rows; intersection is *closed*: envelopes that
only touch (``x2_a == x1_b``) intersect.

Algorithm (sort and sweep in horizontal strips, no N × M matrix): the indexed set is cut into strips of
about the median envelope height, and into width classes (widths within a factor 2, by binary exponent);
every envelope is listed in each strip it spans, sorted by (class, first strip or not, strip, x1). A query
envelope meets an indexed one of class c only if, in a strip they share, the indexed x1 lies in
``[x1_q - wmax_c, x2_q]``: one ``searchsorted`` range per (query strip, block), so the candidates are about
the true pairs plus neighbours within one box width — a few huge boxes do not slow down the many small
ones. A pair is found only in the first strip both span (the first strip of one of the two), then tested
exactly on x and y; x is compared through integer ranks in the sorted indexed coordinates (int64 views of
the floats), so the tests are exact for any float input. Time O((N + M) log(N + M) + P) for P
pairs on ordinary layouts, memory O(N + M + P) plus ``max_candidates``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

__all__ = ["spatial_pairs", "radius_pairs", "EnvelopeIndex", "grow_envelopes", "envelopes_meet"]

DEFAULT_MAX_CANDIDATES = 1 << 22
DENSE_MAX = 1 << 20  # spatial_pairs tests N·M ≤ this many pairs densely (faster up to ~1000 × 1000)


def envelopes_meet(a: Tensor, b: Tensor) -> Tensor:
    """Closed intersection test of envelopes (..., 4) that broadcast: aligned pairs or an (N, 1) × (1, M) grid."""
    return (a[..., 0] <= b[..., 2]) & (b[..., 0] <= a[..., 2]) & (a[..., 1] <= b[..., 3]) & (b[..., 1] <= a[..., 3])


def _check_env(env: Tensor, name: str) -> Tensor:
    """float64 (K, 4) envelopes; ValueError for a wrong shape or x2 < x1 / y2 < y1 (NaN rows pass)."""
    if not isinstance(env, Tensor):
        env = torch.as_tensor(np.asarray(env, dtype=np.float64))
    if env.numel() == 0:
        return env.detach().reshape(0, 4).double()
    if env.dim() != 2 or env.shape[1] != 4:
        raise ValueError(f"{name}: envelopes must have shape (K, 4) x1, y1, x2, y2; got {tuple(env.shape)}")
    e = env.detach().double()
    bad = (e[:, 2] < e[:, 0]) | (e[:, 3] < e[:, 1])
    if bool(bad.any()):
        k = int(bad.nonzero()[0])
        raise ValueError(f"{name}: envelope {k} {e[k].tolist()} has x2 < x1 or y2 < y1")
    return e


def grow_envelopes(env: Tensor, margin: float | Tensor) -> Tensor:
    """Envelopes (float64) grown by ``margin`` on every side (a scalar, or one value ≥ 0 per row)."""
    e = _check_env(env, "env")
    return _grow(e, _margins(margin, e))


def _grow(e: Tensor, mg: Tensor) -> Tensor:
    return e + mg[:, None] * torch.tensor([-1.0, -1.0, 1.0, 1.0], dtype=e.dtype, device=e.device)


def _margins(margin: float | Tensor, e: Tensor) -> Tensor:
    """(K,) float64 margins, one per envelope of ``e``; ValueError unless finite and >= 0."""
    mg = torch.as_tensor(margin, dtype=torch.float64, device=e.device)
    if mg.dim() == 0:
        mg = mg.expand(e.shape[0])
    mg = mg.reshape(-1)
    if mg.shape[0] != e.shape[0]:
        raise ValueError(f"margin: one value per envelope expected ({e.shape[0]}), got {mg.shape[0]}")
    if not bool((torch.isfinite(mg) & (mg >= 0)).all()):
        raise ValueError("margin: values must be finite and >= 0")
    return mg


def _expand(lo: Tensor, cnt: Tensor, max_items: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(owner, position)`` chunks enumerating the ranges ``[lo[q], lo[q] + cnt[q])``, ~max_items each."""
    n = cnt.numel()
    if n == 0:
        return
    dev = cnt.device
    cum = torch.cumsum(cnt, 0)
    q0 = 0
    while q0 < n:
        base = int(cum[q0 - 1]) if q0 else 0
        q1 = int(torch.searchsorted(cum, torch.tensor([base + max_items], device=dev), right=True)[0])
        q1 = min(max(q1, q0 + 1), n)
        c = cnt[q0:q1]
        tot = int(cum[q1 - 1]) - base
        if tot:
            owner = torch.repeat_interleave(torch.arange(q0, q1, device=dev), c)
            pos = torch.repeat_interleave(lo[q0:q1] - (cum[q0:q1] - c - base), c) + torch.arange(tot, device=dev)
            yield owner, pos
        q0 = q1


def _bits(x: Tensor) -> Tensor:
    """int64 with the order of the finite float64 values ``x`` (sorting ints is several times faster)."""
    i = (x + 0.0).view(torch.int64)  # + 0.0 turns -0.0 into 0.0
    return torch.where(i < 0, i ^ 0x7FFF_FFFF_FFFF_FFFF, i)


def _ranks(u: Tensor, v: Tensor) -> Tensor:
    """Order-preserving integer codes of float64 ``v`` against the sorted ``_bits`` values ``u``: exact for
    comparisons between a value of ``u`` (odd code 2p+1) and any value (codes between two of ``u`` are even)."""
    v = _bits(v.contiguous())
    return torch.searchsorted(u, v) + torch.searchsorted(u, v, right=True)


def _finite(e: Tensor) -> Tensor:
    return torch.isfinite(e).all(1)


class EnvelopeIndex:
    """Envelopes (M, 4) indexed once for many :meth:`query` calls (e.g. NMS asks it once per block).

    Rows with a NaN or infinite coordinate (a diverging detector's boxes) take part in no pair.
    """

    def __init__(self, env: Tensor):
        e = _check_env(env, "env")
        self.env = e
        dev = e.device
        ids = None if bool(torch.isfinite(e.sum())) else _finite(e).nonzero().flatten()  # None: all take part
        if ids is not None:
            e = e[ids]
        m = e.shape[0]
        self.empty = m == 0
        if self.empty:
            return
        x1, y1, x2, y2 = (c.contiguous() for c in e.unbind(1))
        self.y0 = float(y1.min())
        span = float(y2.max()) - self.y0
        step = max(float((y2 - y1).median()), span / m)
        self.step = step if step > 0 else 1.0
        lo, hi = self._strip(y1), self._strip(y2)
        self.nstrip = int(hi.max()) + 1
        self.u, inv = torch.unique(_bits(torch.cat([x1, x2])), return_inverse=True)
        self.width = 2 * self.u.numel() + 2  # x codes lie in [0, width)
        # width classes by binary exponent (zero widths apart): within one, widths differ by < 2x
        w = x2 - x1
        expo = torch.frexp(w).exponent.long()
        first = int(expo.min())
        cls = torch.where(w > 0, expo - first + 1, 0)  # class 0: zero widths
        if int(cls.max()) > 32:  # widths over > 2^32: number the classes that occur only
            cls = torch.unique(cls, return_inverse=True)[1]
        self.ncls = int(cls.max()) + 1
        self.wmax = torch.zeros(self.ncls, dtype=e.dtype, device=dev).scatter_reduce(0, cls, w, "amax")
        cnt = hi - lo + 1
        box = torch.repeat_interleave(torch.arange(m, device=dev), cnt)
        strip = torch.repeat_interleave(lo - (torch.cumsum(cnt, 0) - cnt), cnt) + torch.arange(box.numel(), device=dev)
        # blocks (class, entry is not the box's first strip, strip), then x1's code _ranks(u, x1)
        later = strip != lo.index_select(0, box)
        block = (2 * cls.index_select(0, box) + later) * self.nstrip + strip
        key = block * self.width + (2 * inv[:m] + 1).index_select(0, box)
        key, order = torch.sort(key)
        box = box.index_select(0, order)
        self.key = key
        self.box = box if ids is None else ids.index_select(0, box)
        self.x2, self.y1, self.y2 = (c.index_select(0, box) for c in (x2, y1, y2))  # contiguous, sorted

    def __len__(self) -> int:
        return self.env.shape[0]

    def _strip(self, y: Tensor) -> Tensor:
        return torch.floor((y - self.y0) / self.step).long()

    def query(self, env: Tensor, max_candidates: int = DEFAULT_MAX_CANDIDATES, rank: Tensor | None = None
              ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(i, j)`` chunks: every pair of query envelope i and indexed envelope j that intersect
        (closed test), each pair exactly once, in no particular order. With ``rank`` (the query and the
        index number the same boxes), only pairs with ``rank[i] < rank[j]`` (dropped before the tests)."""
        q = _check_env(env, "query")
        if q.shape[0] == 0 or self.empty:
            return
        dev = q.device
        ok = _finite(q)
        y = torch.floor((q[:, 1::2] - self.y0) / self.step).clamp(-1, self.nstrip)  # before .long(): no overflow
        y = torch.where(ok[:, None], y, -1.0)
        lo, hi = y[:, 0].long().clamp_min(0), y[:, 1].long().clamp_max(self.nstrip - 1)
        cnt = (hi - lo + 1).clamp_min(0)
        qi = torch.repeat_interleave(torch.arange(q.shape[0], device=dev), cnt)
        strip = torch.repeat_interleave(lo - (torch.cumsum(cnt, 0) - cnt), cnt) + torch.arange(qi.numel(), device=dev)
        # per (entry, block): indexed x1 in [x1_q - wmax_c, x2_q] (widened by a rounding slack). A pair is
        # reported in the first strip both span, the first strip of one of the two: an indexed box's later
        # strips are searched from the query's first strip only
        nb = 2 * self.ncls
        blk = torch.arange(nb, device=dev)
        base = ((blk[None, :] * self.nstrip + strip[:, None]) * self.width).reshape(-1)
        qx1, qy1, qy2, qx2 = (q[:, c].index_select(0, qi) for c in (0, 1, 3, 2))
        x1, wmax = qx1[:, None], self.wmax[None, :]
        lower = _ranks(self.u, (x1 - wmax - (x1.abs() + wmax) * 1e-12).reshape(-1)).reshape(-1, self.ncls)
        upper = _ranks(self.u, qx2)[:, None].expand(-1, nb).reshape(-1)
        r_lo = torch.searchsorted(self.key, base + lower.repeat_interleave(2, dim=1).reshape(-1))
        cnt = torch.searchsorted(self.key, base + upper, right=True) - r_lo
        q_later = (strip != lo[qi])[:, None] & (blk[None, :] % 2 == 1)
        cnt = cnt.masked_fill(q_later.reshape(-1), 0)
        for e, pos in _expand(r_lo, cnt, max_candidates):
            e = torch.div(e, nb, rounding_mode="floor")
            if rank is not None:
                up = rank.index_select(0, qi.index_select(0, e)) < rank.index_select(0, self.box.index_select(0, pos))
                e, pos = e[up], pos[up]
            ok = self.x2.index_select(0, pos) >= qx1.index_select(0, e)
            ok &= self.y2.index_select(0, pos) >= qy1.index_select(0, e)
            ok &= self.y1.index_select(0, pos) <= qy2.index_select(0, e)
            e, pos = e[ok], pos[ok]
            yield qi.index_select(0, e), self.box.index_select(0, pos)


def _workers() -> int:
    """Threads for scipy's k-d tree queries: torch's intra-op thread count (``torch.set_num_threads``)."""
    return max(1, torch.get_num_threads())


def _knn(a: Tensor, b: Tensor, k: int, self_mode: bool) -> tuple[Tensor, Tensor]:
    """Each row of ``a``'s k nearest rows of ``b`` by envelope-centre distance (cKDTree); exact ties are
    broken by the lower index of ``b``. In self mode a row is not its own neighbour; rows with a NaN or
    infinite coordinate take no part.

    cKDTree breaks ties arbitrarily, so each row asks for one neighbour more than it needs: when the last
    one returned is strictly farther than the k-th, every point tied with the k-th was returned and the
    (distance, index) order is exact; the rows where it is not (grids, duplicate centres) ask again for twice
    as many, all such rows at once."""
    from scipy.spatial import cKDTree

    ia = _finite(a).nonzero().flatten().cpu()
    ib = ia if self_mode else _finite(b).nonzero().flatten().cpu()
    ca = ((a[:, :2] + a[:, 2:]) / 2).cpu()[ia].numpy()
    cb = ((b[:, :2] + b[:, 2:]) / 2).cpu()[ib].numpy()
    n, m = len(ca), len(cb)
    take = min(k, m - int(self_mode))
    e = torch.zeros(0, dtype=torch.long)
    if n == 0 or take <= 0:
        return e, e
    tree = cKDTree(cb)
    cols = np.empty((n, take), dtype=np.int64)
    rows, q = np.arange(n), min(take + int(self_mode) + 1, m)
    while rows.size:
        idx = tree.query(ca[rows], k=q, workers=_workers())[1].reshape(rows.size, q)
        d2 = ((ca[rows, None, :] - cb[idx]) ** 2).sum(-1)  # exact squared distances, not the tree's
        if self_mode:
            d2[idx == rows[:, None]] = np.inf
        o = np.lexsort((idx, d2), axis=-1)
        idx, d2 = np.take_along_axis(idx, o, 1), np.take_along_axis(d2, o, 1)
        kth = d2[:, take - 1]
        last = np.where(np.isinf(d2), -np.inf, d2).max(1)  # farthest real neighbour returned
        done = (last > kth * (1 + 4e-9) + 1e-300) | (q >= m)
        cols[rows[done]] = idx[done, :take]
        rows, q = rows[~done], min(2 * q, m)
    return ia[torch.from_numpy(np.repeat(np.arange(n), take))], ib[torch.from_numpy(cols.reshape(-1))]


def radius_pairs(points: Tensor, radius: float | Tensor, other: Tensor | None = None, *, chunk: int = 4096,
                 sort: bool = True) -> Tensor:
    """Pairs ``(P, 2)`` (int64, unique; sorted lexicographically unless ``sort=False``) of points within a
    Euclidean radius.

    Self mode (``other`` None): pairs ``i < j`` of ``points`` (N, 2) at distance ≤ ``max(radius[i],
    radius[j])``; each pair is looked up from the end with the larger radius only (ties: the lower index),
    so nothing is found twice. Cross mode: rows ``(i, j)``, i into ``points``, j into ``other`` (M, 2), at
    distance ≤ ``radius[i]``. ``radius``: a scalar or one value >= 0 per point; the test is closed, as
    scipy's k-d tree makes it. Rows with a NaN or infinite coordinate take part in no pair. ``chunk`` points
    are queried at a time (bounds scipy's per-point hit lists); time O((N + M) log M + hits).

    Disc neighbourhoods of very different sizes (a large object's search radius among many small objects)
    are where the envelope sweep of :func:`spatial_pairs` (strips of the typical envelope height) does poorly.
    """
    from scipy.spatial import cKDTree

    dev = points.device if isinstance(points, Tensor) else torch.device("cpu")
    p = _check_points(points, "points")
    r = _margins(radius, p)
    self_mode = other is None
    q = p if self_mode else _check_points(other, "other")
    ia = _finite(p).nonzero().flatten()
    ib = ia if self_mode else _finite(q).nonzero().flatten()
    n, m = ia.numel(), ib.numel()
    if n == 0 or m == 0:
        return torch.zeros(0, 2, dtype=torch.long, device=dev)
    pa, rad, pb = p[ia].numpy(), r[ia].numpy(), q[ib].numpy()
    if self_mode:
        rank = np.empty(n, dtype=np.int64)
        rank[np.lexsort((np.arange(n), -rad))] = np.arange(n)  # larger radius first, then lower index
    tree = cKDTree(pb)
    keys = []
    for lo in range(0, n, chunk):
        hits = tree.query_ball_point(pa[lo:lo + chunk], rad[lo:lo + chunk], return_sorted=False, workers=_workers())
        lens = np.fromiter(map(len, hits), dtype=np.int64, count=len(hits))
        j = np.fromiter(itertools.chain.from_iterable(hits), dtype=np.int64, count=int(lens.sum()))
        i = np.repeat(np.arange(lo, lo + len(hits)), lens)
        if self_mode:
            mine = rank[j] > rank[i]  # found from i's side (its radius is the larger); drops i itself
            i, j = np.minimum(i[mine], j[mine]), np.maximum(i[mine], j[mine])
        keys.append(i * m + j)
    key = np.concatenate(keys)
    key = torch.from_numpy(np.sort(key) if sort else key)
    return torch.stack([ia[key // m], ib[key % m]], 1).to(dev)


def _check_points(points: Tensor, name: str) -> Tensor:
    """float64 CPU (K, 2) points; ValueError for another shape."""
    p = torch.as_tensor(points).detach().double().cpu()
    if p.numel() == 0:
        return p.reshape(0, 2)
    if p.dim() != 2 or p.shape[1] != 2:
        raise ValueError(f"radius_pairs: {name} must have shape (K, 2); got {tuple(p.shape)}")
    return p


def _dense_keys(a: Tensor, b: Tensor, self_mode: bool) -> Tensor:
    """Pair keys ``i * M + j`` of grown ``a`` meeting ``b`` by the dense test (self mode: i < j, either way)."""
    hit = envelopes_meet(a[:, None], b[None]) & _finite(a)[:, None] & _finite(b)[None]
    if self_mode:
        hit = torch.triu(hit | hit.T, diagonal=1)
    i, j = hit.nonzero(as_tuple=True)
    return i * b.shape[0] + j


def _swept_keys(a: Tensor, b: Tensor, mg: Tensor, self_mode: bool, max_candidates: int) -> Iterator[Tensor]:
    """Pair keys ``i * M + j`` from an :class:`EnvelopeIndex` over ``b``, each pair once."""
    m, rank = b.shape[0], None
    if self_mode:  # (i, j) is found when i's margin reaches j: keep the find of the larger margin, else i < j
        rank = torch.empty(m, dtype=torch.long, device=a.device)
        rank[torch.sort(-mg, stable=True).indices] = torch.arange(m, device=a.device)
    for i, j in EnvelopeIndex(b).query(a, max_candidates, rank):
        if self_mode:
            i, j = torch.minimum(i, j), torch.maximum(i, j)
        yield i * m + j


def spatial_pairs(
    env_a: Tensor,
    env_b: Tensor | None = None,
    *,
    margin: float | Tensor = 0.0,
    k: int = 0,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
) -> Tensor:
    """Candidate pairs ``(P, 2)`` (int64, sorted lexicographically, unique) of xyxy envelopes.

    Cross mode (``env_b`` given): rows ``(i, j)``, i into ``env_a`` (N,4), j into ``env_b`` (M,4), for every
    pair whose envelopes intersect once ``env_a[i]`` is grown by ``margin`` (a scalar, or (N,) one per row;
    touching counts), plus, when ``k > 0``, each i's ``k`` nearest j by envelope-centre distance (ties to the
    lower j). Self mode (``env_b`` None): pairs within ``env_a``, ``i < j``, each unordered pair once; a pair
    is kept when either box grown by its own margin meets the other (margin max(m_i, m_j)), or when one is
    among the other's k nearest. Rows with a NaN or infinite coordinate take part in no pair; x2 < x1 or
    y2 < y1 raises ValueError. The result lives on ``env_a``'s device; ``max_candidates`` bounds the
    candidate pairs expanded at once.
    """
    dev = env_a.device if isinstance(env_a, Tensor) else torch.device("cpu")
    if k < 0:
        raise ValueError(f"spatial_pairs: k must be >= 0, got {k}")
    e = _check_env(env_a, "env_a")
    mg = _margins(margin, e).contiguous()
    a = _grow(e, mg)
    self_mode = env_b is None
    b = e if self_mode else _check_env(env_b, "env_b").to(a.device)
    m = b.shape[0]
    if a.shape[0] * m <= DENSE_MAX:  # small sets: one dense test beats building an index
        keys = [_dense_keys(a, b, self_mode)]
    else:
        keys = list(_swept_keys(a, b, mg, self_mode, max_candidates))
    if k > 0:
        i, j = (t.to(a.device) for t in _knn(e, b, k, self_mode))
        if self_mode:
            i, j = torch.minimum(i, j), torch.maximum(i, j)
        keys.append(i * m + j)
    if not keys:
        return torch.zeros(0, 2, dtype=torch.long, device=dev)
    key = torch.cat(keys)
    key = torch.unique(key) if k > 0 else torch.sort(key).values
    return torch.stack([key // m, key % m], 1).to(dev)
