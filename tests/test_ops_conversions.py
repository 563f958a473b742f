"""sgg.ops conversions: le90 normalisation, corners, min-area boxes, envelopes, shapely, FIT-RS "oc"."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sgg.ops import (
    box_to_corners,
    box_to_envelope,
    box_to_shapely,
    corners_to_box,
    le90_to_oc,
    normalize_le90,
    oc_to_le90,
    shapely_to_box,
)

PI = math.pi


def same_rect(c1: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
    """Max corner distance between two (N,4,2) rectangles, up to cyclic order and direction."""
    c1, c2 = c1.double(), c2.double()
    cands = []
    for flip in (False, True):
        d = c2.flip(1) if flip else c2
        for r in range(4):
            cands.append((c1 - d.roll(r, dims=1)).abs().amax(dim=(1, 2)))
    return torch.stack(cands).amin(0)


box_st = st.tuples(
    st.floats(-30000, 30000),
    st.floats(-30000, 30000),
    st.floats(0.5, 500),
    st.floats(0.5, 500),
    st.floats(-4 * PI, 4 * PI),
)


def random_boxes(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = torch.rand(n, 2, generator=g) * 1000
    wh = 1 + torch.rand(n, 2, generator=g) * 100
    a = (torch.rand(n, 1, generator=g) - 0.5) * PI
    return torch.cat([c, wh, a], 1).double()


def test_corner_order_documented():
    c = box_to_corners(torch.tensor([[10.0, 20.0, 4.0, 2.0, 0.0]]))[0]
    assert torch.allclose(c, torch.tensor([[8.0, 19.0], [12.0, 19.0], [12.0, 21.0], [8.0, 21.0]]))
    # a quarter turn (clockwise on screen, y down) puts the w-side along +y
    c = box_to_corners(torch.tensor([[0.0, 0.0, 4.0, 2.0, PI / 2]]))[0]
    assert torch.allclose(c, torch.tensor([[1.0, -2.0], [1.0, 2.0], [-1.0, 2.0], [-1.0, -2.0]]), atol=1e-6)


def test_normalize_le90_hand_examples():
    b = torch.tensor(
        [
            [0, 0, 2.0, 4.0, 0.0],  # h > w: swap and turn
            [0, 0, 4.0, 2.0, PI / 2],  # +π/2 wraps to -π/2
            [0, 0, 4.0, 2.0, 3 * PI / 4],
            [0, 0, 3.0, 3.0, PI / 3],  # square: reduced to [-π/4, π/4)
        ],
        dtype=torch.float64,
    )
    n = normalize_le90(b)
    assert torch.allclose(n[0], torch.tensor([0, 0, 4.0, 2.0, -PI / 2], dtype=torch.float64))
    assert torch.allclose(n[1], torch.tensor([0, 0, 4.0, 2.0, -PI / 2], dtype=torch.float64))
    assert torch.allclose(n[2], torch.tensor([0, 0, 4.0, 2.0, -PI / 4], dtype=torch.float64))
    assert torch.allclose(n[3], torch.tensor([0, 0, 3.0, 3.0, PI / 3 - PI / 2], dtype=torch.float64))


@settings(max_examples=200, deadline=None)
@given(st.lists(box_st, min_size=1, max_size=8))
def test_normalize_keeps_geometry_and_range(rows):
    b = torch.tensor(rows, dtype=torch.float64)
    n = normalize_le90(b)
    assert bool((n[:, 4] >= -PI / 2).all()) and bool((n[:, 4] < PI / 2).all())
    assert bool((n[:, 2] >= n[:, 3]).all())
    assert same_rect(box_to_corners(n), box_to_corners(b)).max() < 1e-6 * (1 + b[:, :2].abs().max())
    assert torch.allclose(normalize_le90(n), n, atol=1e-12)  # idempotent


@settings(max_examples=200, deadline=None)
@given(st.lists(box_st, min_size=1, max_size=8))
def test_corners_round_trip(rows):
    b = normalize_le90(torch.tensor(rows, dtype=torch.float64))
    c = box_to_corners(b)
    back = corners_to_box(c)
    scale = 1 + b[:, :2].abs().max()
    assert same_rect(box_to_corners(back), c).max() < 1e-7 * scale
    assert torch.allclose(back[:, 2:4], b[:, 2:4], atol=1e-7 * scale)
    # shuffled corner order (DOTA files are not always consistent) and (N, 8) input
    perm = torch.tensor([2, 0, 3, 1])
    back2 = corners_to_box(c[:, perm].reshape(-1, 8))
    assert same_rect(box_to_corners(back2), c).max() < 1e-7 * scale


def test_corners_to_box_float32_large_coordinates():
    b = torch.tensor([[29999.5, 29000.25, 3.0, 1.0, 0.3]], dtype=torch.float64)
    c = box_to_corners(b).float()
    back = corners_to_box(c)
    assert back.dtype == torch.float32
    assert abs(back[0, 2].item() - 3.0) < 5e-3 and abs(back[0, 3].item() - 1.0) < 5e-3
    assert abs(back[0, 0].item() - 29999.5) < 5e-3


def test_corners_to_box_general_quadrilateral_matches_shapely():
    g = np.random.default_rng(1)
    quads = g.uniform(0, 100, size=(300, 4, 2))
    boxes = corners_to_box(torch.from_numpy(quads))
    hull_mrr = shapely.minimum_rotated_rectangle(shapely.multipoints(quads))
    ours = box_to_shapely(boxes)
    assert np.allclose(shapely.area(ours), shapely.area(hull_mrr), rtol=1e-9, atol=1e-9)
    # our rectangle contains every input point
    assert shapely.contains(shapely.buffer(ours, 1e-6), shapely.multipoints(quads)).all()


def test_corners_to_box_dota_integer_line():
    line = ["100", "100", "140", "120", "130", "140", "90", "120"]
    b = corners_to_box(torch.tensor([[float(v) for v in line]]))
    assert b.shape == (1, 5)
    assert math.isclose(b[0, 2].item() * b[0, 3].item(), 1000.0, rel_tol=1e-5)


def test_envelope_matches_shapely_bounds():
    b = random_boxes(200)
    env = box_to_envelope(b)
    ref = shapely.bounds(box_to_shapely(b))
    assert np.allclose(env.numpy(), ref, atol=1e-9)


def test_shapely_round_trip_and_general_geometries():
    b = normalize_le90(random_boxes(100))
    geoms = box_to_shapely(b)
    assert geoms.shape == (100,) and all(g.geom_type == "Polygon" for g in geoms)
    assert np.allclose(shapely.area(geoms), (b[:, 2] * b[:, 3]).numpy())
    back = shapely_to_box(geoms)
    assert same_rect(box_to_corners(back), box_to_corners(b)).max() < 1e-3
    # non-rectangular geometries: the result is shapely's minimum rotated rectangle
    other = np.array([shapely.Point(3, 4).buffer(2.0), shapely.Polygon([(0, 0), (10, 0), (2, 3)]),
                      shapely.LineString([(0, 0), (3, 4)])], dtype=object)
    got = shapely_to_box(other)
    ref = shapely.area(shapely.minimum_rotated_rectangle(other))
    assert np.allclose((got[:, 2] * got[:, 3]).numpy(), ref, rtol=1e-5, atol=1e-6)
    assert math.isclose(got[2, 2].item(), 5.0, rel_tol=1e-6) and abs(got[2, 3].item()) < 1e-9
    with pytest.raises(ValueError, match="empty"):
        shapely_to_box([shapely.Polygon()])


def test_oc_convention_hand_examples():
    # axis-aligned box: OpenCV >= 4.5.1 reports 90° with w and h exchanged
    oc = le90_to_oc(torch.tensor([[5.0, 6.0, 4.0, 2.0, 0.0]]), degrees=True)
    assert torch.allclose(oc, torch.tensor([[5.0, 6.0, 2.0, 4.0, 90.0]]))
    oc = le90_to_oc(torch.tensor([[0.0, 0.0, 4.0, 2.0, -PI / 6]]), degrees=True)
    assert torch.allclose(oc, torch.tensor([[0.0, 0.0, 2.0, 4.0, 60.0]]), atol=1e-5)
    oc = le90_to_oc(torch.tensor([[0.0, 0.0, 4.0, 2.0, PI / 6]]), degrees=True)
    assert torch.allclose(oc, torch.tensor([[0.0, 0.0, 4.0, 2.0, 30.0]]), atol=1e-5)
    oc = le90_to_oc(torch.tensor([[0.0, 0.0, 4.0, 2.0, -PI / 2]], dtype=torch.float64))
    assert torch.allclose(oc, torch.tensor([[0.0, 0.0, 4.0, 2.0, PI / 2]], dtype=torch.float64))


def test_oc_matches_opencv_convention_on_dota_like_polygons():
    # independent reference: OpenCV's rule written out (mmrotate's poly2obb_np_oc post-processing)
    b = normalize_le90(random_boxes(300, seed=3))
    oc = le90_to_oc(b)
    assert bool((oc[:, 4] > 0).all()) and bool((oc[:, 4] <= PI / 2 + 1e-12).all())
    assert same_rect(box_to_corners(oc), box_to_corners(b)).max() < 1e-9


@settings(max_examples=200, deadline=None)
@given(st.lists(box_st, min_size=1, max_size=8), st.booleans())
def test_oc_round_trip(rows, degrees):
    b = normalize_le90(torch.tensor(rows, dtype=torch.float64))
    oc = le90_to_oc(b, degrees=degrees)
    top = 90.0 if degrees else PI / 2
    assert bool((oc[:, 4] > 0).all()) and bool((oc[:, 4] <= top * (1 + 1e-9)).all())
    back = oc_to_le90(oc, degrees=degrees)
    scale = 1 + b[:, :2].abs().max()
    assert same_rect(box_to_corners(back), box_to_corners(b)).max() < 1e-7 * scale
    assert torch.allclose(back[:, 2:4], b[:, 2:4])


def test_square_and_quarter_turn_ambiguity():
    sq = torch.tensor([[0.0, 0.0, 2.0, 2.0, a] for a in (-PI / 2, -PI / 4, 0.0, PI / 4, PI / 2 - 1e-7)], dtype=torch.float64)
    n = normalize_le90(sq)
    assert bool((n[:, 4] >= -PI / 4).all()) and bool((n[:, 4] < PI / 4).all())
    assert same_rect(box_to_corners(n), box_to_corners(sq)).max() < 1e-6
    back = oc_to_le90(le90_to_oc(n))
    assert same_rect(box_to_corners(back), box_to_corners(sq)).max() < 1e-6
    # +π/2 and -π/2 are the same rectangle
    pm = normalize_le90(torch.tensor([[1.0, 1.0, 5.0, 1.0, PI / 2], [1.0, 1.0, 5.0, 1.0, -PI / 2]], dtype=torch.float64))
    assert torch.allclose(pm[0], pm[1])


def test_empty_inputs():
    z = torch.zeros(0, 5)
    assert normalize_le90(z).shape == (0, 5)
    assert box_to_corners(z).shape == (0, 4, 2)
    assert corners_to_box(torch.zeros(0, 8)).shape == (0, 5)
    assert box_to_envelope(z).shape == (0, 4)
    assert box_to_shapely(z).shape == (0,)
    assert le90_to_oc(z).shape == (0, 5)
