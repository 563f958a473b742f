"""sgg.ops.spatial_pairs and radius_pairs against dense brute-force references (closed envelope test, sorted
distances, closed disc test)."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sgg.ops.pairs as pairs_module
from sgg.ops import EnvelopeIndex, envelopes_meet, spatial_pairs
from sgg.ops.pairs import radius_pairs


def dense_pairs(a: torch.Tensor, b: torch.Tensor | None, margin=0.0, k: int = 0) -> list[tuple[int, int]]:
    """The definition, on the full N × M grid: grown a[i] meets b[j] (touching counts), or j among i's k
    nearest centres (ties to the lower j); self mode: i != j, unordered, kept if either side qualifies."""
    self_mode = b is None
    b = a if self_mode else b
    a, b = a.double(), b.double()
    mg = torch.as_tensor(margin, dtype=torch.float64).expand(a.shape[0])[:, None]
    hit = (a[:, None, 0] - mg <= b[None, :, 2]) & (b[None, :, 0] <= a[:, None, 2] + mg)
    hit &= (a[:, None, 1] - mg <= b[None, :, 3]) & (b[None, :, 1] <= a[:, None, 3] + mg)
    if k:
        ca, cb = (a[:, :2] + a[:, 2:]) / 2, (b[:, :2] + b[:, 2:]) / 2
        d2 = ((ca[:, None] - cb[None]) ** 2).sum(-1)
        if self_mode:
            d2.fill_diagonal_(float("inf"))
        for i in range(a.shape[0]):
            order = sorted(range(b.shape[0]), key=lambda j: (float(d2[i, j]), j))
            for j in order[: min(k, b.shape[0] - int(self_mode))]:
                hit[i, j] = True
    out = set()
    for i, j in hit.nonzero().tolist():
        if self_mode:
            if i != j:
                out.add((min(i, j), max(i, j)))
        else:
            out.add((i, j))
    return sorted(out)


def random_env(n: int, g: torch.Generator, size: float = 100.0, grid: bool = False) -> torch.Tensor:
    """Random envelopes; ``grid``: integer corners, so touching edges and tied distances are common."""
    xy = (torch.rand(n, 2, generator=g) - 0.3) * size  # negative coordinates too
    wh = torch.rand(n, 2, generator=g) ** 3 * size / 3  # a few large boxes among many small ones
    if grid:
        xy, wh = xy.round(), wh.round()
    return torch.cat([xy, xy + wh], 1)


def as_list(p: torch.Tensor) -> list[tuple[int, int]]:
    assert p.dtype == torch.long and p.dim() == 2 and p.shape[1] == 2
    return [tuple(r) for r in p.tolist()]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(n=st.integers(0, 40), m=st.integers(0, 40), seed=st.integers(0, 10_000), grid=st.booleans(),
       k=st.integers(0, 4), per_box=st.booleans(), self_mode=st.booleans())
def test_matches_dense_reference(n, m, seed, grid, k, per_box, self_mode):
    g = torch.Generator().manual_seed(seed)
    a = random_env(n, g, grid=grid)
    b = None if self_mode else random_env(m, g, grid=grid)
    margin = (torch.rand(n, generator=g) * 10).round() if per_box else 3.0
    got = spatial_pairs(a, b, margin=margin, k=k)
    assert as_list(got) == dense_pairs(a, b, margin, k)
    with patch.object(pairs_module, "DENSE_MAX", -1):  # the sweep, not the small sets' dense test
        assert torch.equal(spatial_pairs(a, b, margin=margin, k=k), got)


@patch.object(pairs_module, "DENSE_MAX", -1)
def test_small_chunks_and_larger_sets():
    g = torch.Generator().manual_seed(7)
    a, b = random_env(300, g, 500, grid=True), random_env(250, g, 500)
    ref = dense_pairs(a, b, 2.0)
    assert len(ref) > 300
    assert as_list(spatial_pairs(a, b, margin=2.0, max_candidates=37)) == ref
    assert as_list(spatial_pairs(a, margin=1.5, max_candidates=5)) == dense_pairs(a, None, 1.5)


def test_touching_edges_and_corners_count():
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 0.0, 2.0, 1.0],  # shares the right edge
                      [1.0, 1.0, 2.0, 2.0],  # shares a corner
                      [1.0 + 1e-9, 0.0, 2.0, 1.0],  # just apart
                      [0.5, 0.5, 0.5, 0.5]], dtype=torch.float64)  # a point inside
    assert spatial_pairs(a, b).tolist() == [[0, 0], [0, 1], [0, 3]]
    assert envelopes_meet(a.double().expand(4, 4), b).tolist() == [True, True, False, True]  # aligned pairs
    assert spatial_pairs(a, b, margin=1e-9).tolist() == [[0, 0], [0, 1], [0, 2], [0, 3]]
    # -0.0 and 0.0 are the same coordinate; negative coordinates keep their order
    left = torch.tensor([[-3.0, -2.0, -0.0, -1.0], [-2.5, -2.5, -2.0, 0.0]], dtype=torch.float64)
    right = torch.tensor([[0.0, -1.0, 1.0, 1.0], [-2.0, -3.0, -1.5, -2.0]], dtype=torch.float64)
    assert spatial_pairs(left, right).tolist() == [[0, 0], [0, 1], [1, 1]]


def test_self_mode_per_box_margin_is_the_larger_one():
    env = torch.tensor([[0.0, 0.0, 1.0, 1.0], [4.0, 0.0, 5.0, 1.0], [20.0, 0.0, 21.0, 1.0]])
    # gap 3 between 0 and 1: box 1's margin 3 reaches box 0 although box 0's margin 0 does not
    assert spatial_pairs(env, margin=torch.tensor([0.0, 3.0, 0.0])).tolist() == [[0, 1]]
    assert spatial_pairs(env, margin=torch.tensor([0.0, 2.9, 0.0])).tolist() == []
    # cross mode grows env_a only
    assert spatial_pairs(env[:1], env[1:], margin=3.0).tolist() == [[0, 0]]


def test_knn_hand_worked():
    pts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [10.0, 10.0]])
    env = torch.cat([pts, pts], 1)  # point envelopes: only coincident points intersect
    # 0 -> 1 (tie with 3), 1 -> 0, 2 -> 1, 3 -> 0, 4 -> 2; unordered pairs, sorted
    assert spatial_pairs(env, k=1).tolist() == [[0, 1], [0, 3], [1, 2], [2, 4]]
    assert spatial_pairs(env[:1], env[1:], k=2).tolist() == [[0, 0], [0, 2]]


def test_knn_with_duplicate_centres():
    env = torch.zeros(6, 4)  # six identical points: every pair intersects, and the kNN ties everywhere
    assert spatial_pairs(env, k=2).shape == (15, 2)
    far = torch.tensor([[0.0, 0.0, 0.0, 0.0]] * 5 + [[50.0, 0.0, 50.0, 0.0]])
    assert as_list(spatial_pairs(far, k=1)) == dense_pairs(far, None, 0.0, 1)
    a = torch.tensor([[100.0, 0.0, 100.0, 0.0]])
    assert spatial_pairs(a, far, k=2).tolist() == [[0, 0], [0, 5]]  # the tie among 0..4 goes to index 0


def test_empty_inputs():
    e = torch.zeros(0, 4)
    one = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    for a, b in ((e, None), (e, one), (one, e), (one, None)):
        out = spatial_pairs(a, b, margin=5.0, k=3)
        assert out.shape == (0, 2) and out.dtype == torch.long


@pytest.mark.parametrize("dense_max", [-1, 1 << 20])  # the sweep and the dense test
def test_non_finite_rows_take_no_part(dense_max, monkeypatch):
    monkeypatch.setattr(pairs_module, "DENSE_MAX", dense_max)
    g = torch.Generator().manual_seed(11)
    a, b = random_env(30, g), random_env(30, g)
    bad_a, bad_b = torch.tensor([3, 17]), torch.tensor([0, 9, 29])
    a2, b2 = a.clone(), b.clone()
    a2[bad_a, 0], b2[bad_b[:2], 3] = float("nan"), float("nan")
    b2[bad_b[2]] = torch.tensor([-1.0, -1.0, 1.0, 1.0]) * float("inf")  # would meet everything
    ka, kb = torch.ones(30, dtype=torch.bool), torch.ones(30, dtype=torch.bool)
    ka[bad_a], kb[bad_b] = False, False
    ia, ib = ka.nonzero().flatten(), kb.nonzero().flatten()
    for k in (0, 2):
        ref = spatial_pairs(a[ka], b[kb], margin=4.0, k=k)
        assert torch.equal(spatial_pairs(a2, b2, margin=4.0, k=k), torch.stack([ia[ref[:, 0]], ib[ref[:, 1]]], 1))
        ref = spatial_pairs(a[ka], margin=4.0, k=k)
        assert torch.equal(spatial_pairs(a2, margin=4.0, k=k), ia[ref])


def test_bad_input():
    with pytest.raises(ValueError, match="x2 < x1"):
        spatial_pairs(torch.tensor([[1.0, 0.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        spatial_pairs(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="margin"):
        spatial_pairs(torch.zeros(3, 4), margin=-1.0)
    with pytest.raises(ValueError, match="one value per envelope"):
        spatial_pairs(torch.zeros(3, 4), margin=torch.zeros(2))


def test_index_reused_for_many_queries():
    g = torch.Generator().manual_seed(3)
    b = random_env(200, g, 300)
    index = EnvelopeIndex(b)
    for _ in range(3):
        q = random_env(20, g, 300)
        found = sorted((int(i), int(j)) for ci, cj in index.query(q) for i, j in zip(ci, cj))
        assert found == dense_pairs(q, b)  # each pair exactly once


def test_large_scene_is_output_sensitive():
    """50,000 boxes: the dense test would need 2.5·10^9 comparisons; the pair count matches the hand count."""
    n = 50_000
    x = torch.arange(n, dtype=torch.float64) * 10  # a row of 2-px boxes 10 px apart
    env = torch.stack([x, torch.zeros(n), x + 2, torch.full((n,), 2.0)], 1)
    assert spatial_pairs(env).shape == (0, 2)
    got = spatial_pairs(env, margin=8.0)  # each box reaches only its right-hand neighbour (gap 8 = margin)
    assert got.shape == (n - 1, 2)
    assert torch.equal(got[:, 1] - got[:, 0], torch.ones(n - 1, dtype=torch.long))
    np.testing.assert_array_equal(spatial_pairs(env[:5], env, k=1)[:, 1].numpy(), np.arange(5))


def test_knn_ties_on_a_grid_match_the_reference():
    """A lattice with repeated points: the k-th neighbour is tied for most points (cKDTree breaks such ties
    arbitrarily; the lower index must win)."""
    g = torch.Generator().manual_seed(5)
    xy = torch.cartesian_prod(torch.arange(12.0), torch.arange(9.0)) * torch.tensor([2.0, 3.0])
    xy = torch.cat([xy, xy[torch.randint(0, len(xy), (20,), generator=g)]])  # duplicates
    env = xy.repeat(1, 2)
    for k in (1, 4, 8):
        assert as_list(spatial_pairs(env, k=k)) == dense_pairs(env, None, 0.0, k)
        assert as_list(spatial_pairs(env[:15] + 0.5, env, k=k)) == dense_pairs(env[:15] + 0.5, env, 0.0, k)


def dense_radius(a: np.ndarray, r: np.ndarray, b: np.ndarray | None) -> list[tuple[int, int]]:
    """The definition: |a_i - b_j| <= r_i (cross), or i < j with |a_i - a_j| <= max(r_i, r_j) (self)."""
    out = []
    for i in range(len(a)):
        for j in range(len(a) if b is None else len(b)):
            if b is None:
                if i < j and np.hypot(*(a[i] - a[j])) <= max(r[i], r[j]):
                    out.append((i, j))
            elif np.hypot(*(a[i] - b[j])) <= r[i]:
                out.append((i, j))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_radius_pairs_match_the_definition(seed):
    """Integer points and radii (3-4-5 distances land exactly on the radius: the disc is closed), radii of
    very different sizes, NaN rows that take no part, a scalar radius, and small chunks."""
    g = np.random.default_rng(seed)
    a = g.integers(-40, 40, (70, 2)).astype(float)
    a[:5] = [[0, 0], [3, 4], [6, 8], [0, 0], [-3, -4]]
    r = g.choice([0.0, 1.0, 2.0, 5.0, 5.0, 30.0], 70)
    b = g.integers(-40, 40, (50, 2)).astype(float)
    a_nan, b_nan = a.copy(), b.copy()
    a_nan[[7, 9]], b_nan[11, 0] = np.nan, np.inf
    ka, kb = np.isfinite(a_nan).all(1), np.isfinite(b_nan).all(1)
    ia, ib = np.flatnonzero(ka), np.flatnonzero(kb)
    ref_self = [(int(ia[i]), int(ia[j])) for i, j in dense_radius(a[ka], r[ka], None)]
    ref_cross = [(int(ia[i]), int(ib[j])) for i, j in dense_radius(a[ka], r[ka], b[kb])]
    for chunk in (7, 4096):
        assert as_list(radius_pairs(torch.tensor(a_nan), torch.tensor(r), chunk=chunk)) == ref_self
        assert as_list(radius_pairs(torch.tensor(a_nan), torch.tensor(r), torch.tensor(b_nan), chunk=chunk)) == ref_cross
        unsorted = radius_pairs(torch.tensor(a_nan), torch.tensor(r), torch.tensor(b_nan), chunk=chunk, sort=False)
        assert sorted(as_list(unsorted)) == ref_cross
    assert as_list(radius_pairs(torch.tensor(a), 5.0)) == dense_radius(a, np.full(70, 5.0), None)
    assert (0, 1) in as_list(radius_pairs(torch.tensor(a), 5.0)) and (0, 2) not in as_list(radius_pairs(torch.tensor(a), 5.0))


def test_radius_pairs_edge_cases():
    one, none = torch.zeros(1, 2), torch.zeros(0, 2)
    for a, b in ((none, None), (one, None), (none, one), (one, none)):
        out = radius_pairs(a, 1.0, b)
        assert out.shape == (0, 2) and out.dtype == torch.long
    assert radius_pairs(torch.zeros(3, 2), 0.0).tolist() == [[0, 1], [0, 2], [1, 2]]  # distance 0 <= 0
    with pytest.raises(ValueError, match="shape"):
        radius_pairs(torch.zeros(3, 3), 1.0)
    with pytest.raises(ValueError, match="margin"):
        radius_pairs(torch.zeros(3, 2), -1.0)
