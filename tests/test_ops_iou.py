"""Rotated IoU / IoF against shapely, hand-worked values and geometric invariances."""

from __future__ import annotations

import math

import numpy as np
import shapely
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sgg.ops import box_to_shapely, rotated_iof, rotated_iou, rotated_iou_aligned

PI = math.pi


def shapely_iou(a: torch.Tensor, b: torch.Tensor, iof: bool = False) -> np.ndarray:
    pa, pb = box_to_shapely(a), box_to_shapely(b)
    inter = shapely.area(shapely.intersection(pa[:, None], pb[None, :]))
    if iof:
        return inter / shapely.area(pa)[:, None]
    return inter / (shapely.area(pa)[:, None] + shapely.area(pb)[None, :] - inter)


def boxes_f32(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


angle_st = st.one_of(st.floats(-PI / 2, PI / 2), st.sampled_from([-PI / 2, PI / 2, 0.0, -PI / 4, PI / 4]))
size_st = st.one_of(st.floats(0.05, 200), st.floats(1e-2, 1.0))
box_st = st.tuples(st.floats(0, 60), st.floats(0, 60), size_st, size_st, angle_st)


@settings(max_examples=200, deadline=None)
@given(st.lists(box_st, min_size=1, max_size=6), st.lists(box_st, min_size=1, max_size=6))
def test_iou_equals_shapely_random(ra, rb):
    a, b = boxes_f32(ra), boxes_f32(rb)
    got = rotated_iou(a, b)
    assert got.dtype == torch.float32 and got.shape == (len(ra), len(rb))
    assert np.abs(got.double().numpy() - shapely_iou(a, b)).max() <= 1e-4


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0, 30000), st.floats(0, 30000), st.floats(0.05, 100), st.floats(1, 50), angle_st,
    st.floats(-3, 3), st.floats(-3, 3), st.floats(0.05, 100), st.floats(1, 50), angle_st,
)
def test_iou_large_coordinates_tiny_and_elongated(cx, cy, w, ar, a1, dx, dy, w2, ar2, a2):
    # 30,000-px coordinates, boxes down to 0.05 px and aspect ratios up to 1:50, nearby centres
    a = boxes_f32([[cx, cy, w, w / ar, a1]])
    b = boxes_f32([[cx + dx * w, cy + dy * w, w2, w2 / ar2, a2]])
    got = rotated_iou(a, b).double().numpy()
    assert abs(got - shapely_iou(a, b)).max() <= 1e-4
    assert abs(rotated_iou(b, a).double().numpy().T - got).max() <= 1e-6


@settings(max_examples=200, deadline=None)
@given(box_st, st.floats(0.05, 200), st.floats(0.05, 200), angle_st)
def test_identical_centres(ba, w, h, ang):
    a = boxes_f32([ba])
    b = boxes_f32([[ba[0], ba[1], w, h, ang]])
    assert abs(rotated_iou(a, b).double().numpy() - shapely_iou(a, b)).max() <= 1e-4


@settings(max_examples=200, deadline=None)
@given(st.lists(box_st, min_size=1, max_size=6), st.lists(box_st, min_size=1, max_size=6),
       st.floats(-5000, 5000), st.floats(-5000, 5000), st.floats(-PI, PI))
def test_properties(ra, rb, tx, ty, rot):
    a = torch.tensor(ra, dtype=torch.float64)
    b = torch.tensor(rb, dtype=torch.float64)
    iou = rotated_iou(a, b)
    assert bool(((iou >= 0) & (iou <= 1)).all())
    assert torch.allclose(iou, rotated_iou(b, a).T, atol=1e-9)  # symmetric
    assert torch.allclose(rotated_iou(a, a).diagonal(), torch.ones(len(ra), dtype=torch.float64), atol=1e-9)

    def move(x):  # rotate about the origin by `rot`, then translate: IoU is unchanged
        c, s = math.cos(rot), math.sin(rot)
        x = x.clone()
        cx, cy = x[:, 0].clone(), x[:, 1].clone()
        x[:, 0], x[:, 1] = c * cx - s * cy + tx, s * cx + c * cy + ty
        x[:, 4] = x[:, 4] + rot
        return x

    assert torch.allclose(rotated_iou(move(a), move(b)), iou, atol=1e-7)
    aligned = rotated_iou_aligned(a, a.flip(0))
    assert torch.allclose(aligned, rotated_iou(a, a.flip(0)).diagonal(), atol=1e-12)


def test_disjoint_is_zero_and_touching_is_zero():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0, 0.0], [0.0, 0.0, 10.0, 1.0, 0.7]])
    b = torch.tensor([[100.0, 100.0, 2.0, 2.0, 0.3], [2.0, 0.0, 2.0, 2.0, 0.0]])  # far; shares an edge
    iou = rotated_iou(a, b)
    assert iou[:, 0].abs().max() == 0
    assert iou[0, 1].item() < 1e-9


def test_hand_worked_values():
    # two unit-offset 2x2 squares: inter 2, union 6
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0, 0.0]])
    b = torch.tensor([[1.0, 0.0, 2.0, 2.0, 0.0]])
    assert math.isclose(rotated_iou(a, b).item(), 1 / 3, rel_tol=1e-6)
    assert math.isclose(rotated_iof(a, b).item(), 0.5, rel_tol=1e-6)
    # a square and the same square turned 45°: inter = regular octagon area 8(√2-1) for side 2
    c = torch.tensor([[0.0, 0.0, 2.0, 2.0, PI / 4]])
    inter = 8 * (math.sqrt(2) - 1)
    assert math.isclose(rotated_iou(a, c).item(), inter / (8 - inter), rel_tol=1e-6)
    # a long thin box crossing a square: cross of 1x2 → inter 2 over 2x2 + 10x1
    d = torch.tensor([[0.0, 0.0, 10.0, 1.0, 0.0]])
    assert math.isclose(rotated_iou(a, d).item(), 2 / (4 + 10 - 2), rel_tol=1e-6)
    # small box fully inside: IoF 1
    e = torch.tensor([[0.2, -0.1, 0.5, 0.3, 1.0]])
    assert math.isclose(rotated_iof(e, a).item(), 1.0, rel_tol=1e-6)


def test_iof_matches_shapely():
    g = torch.Generator().manual_seed(2)
    a = torch.cat([torch.rand(60, 2, generator=g) * 100, 2 + torch.rand(60, 2, generator=g) * 40,
                   (torch.rand(60, 1, generator=g) - 0.5) * PI], 1)
    b = a[torch.randperm(60, generator=g)[:40]] + torch.tensor([3.0, -2.0, 0.0, 0.0, 0.2])
    assert np.abs(rotated_iof(a, b).double().numpy() - shapely_iou(a, b, iof=True)).max() <= 1e-5


def test_chunking_and_many_pairs_match():
    g = torch.Generator().manual_seed(3)
    n = 400
    a = torch.cat([torch.rand(n, 2, generator=g) * 300, 8 + torch.rand(n, 2, generator=g) * 72,
                   (torch.rand(n, 1, generator=g) - 0.5) * PI], 1)
    full = rotated_iou(a, a[:300])
    small = rotated_iou(a, a[:300], chunk_size=97)
    assert torch.equal(full, small)
    assert np.abs(full.double().numpy() - shapely_iou(a, a[:300])).max() <= 1e-4


def test_empty_and_degenerate():
    z = torch.zeros(0, 5)
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0, 0.0]])
    assert rotated_iou(z, a).shape == (0, 1) and rotated_iou(a, z).shape == (1, 0)
    assert rotated_iou_aligned(z, z).shape == (0,)
    flat = torch.tensor([[0.0, 0.0, 2.0, 0.0, 0.3]])  # zero-area box
    assert rotated_iou(flat, flat).item() == 0.0 and rotated_iou(a, flat).item() < 1e-9


def test_collinear_edges_shared_and_nested():
    """Boxes that share edge lines exactly (tiled, nested against one side): the hard cases for clipping."""
    g = torch.Generator().manual_seed(4)
    n = 300
    base = torch.cat([torch.rand(n, 2, generator=g) * 30000, 1 + torch.rand(n, 2, generator=g) * 60,
                      (torch.rand(n, 1, generator=g) - 0.5) * PI], 1).double()
    c, s = torch.cos(base[:, 4]), torch.sin(base[:, 4])
    # neighbour shifted by exactly w along the box axis: touching along a full edge
    tiled = base.clone()
    tiled[:, 0] += base[:, 2] * c
    tiled[:, 1] += base[:, 2] * s
    # a narrower box flush with one long side: nested, sharing an edge line
    nested = base.clone()
    nested[:, 3] = base[:, 3] / 2
    nested[:, 0] -= base[:, 3] / 4 * -s
    nested[:, 1] -= base[:, 3] / 4 * c
    # same box shifted along its own axis by half a width: overlapping with two shared edge lines
    half = base.clone()
    half[:, 0] += base[:, 2] / 2 * c
    half[:, 1] += base[:, 2] / 2 * s
    for other in (tiled, nested, half):
        got = rotated_iou_aligned(base, other).numpy()
        pa, pb = box_to_shapely(base), box_to_shapely(other)
        inter = shapely.area(shapely.intersection(pa, pb))
        ref = inter / (shapely.area(pa) + shapely.area(pb) - inter)
        assert np.abs(got - ref).max() <= 1e-6
    assert np.abs(rotated_iou_aligned(base, nested).numpy() - 0.5).max() <= 1e-6
    assert np.abs(rotated_iou_aligned(base, half).numpy() - 1 / 3).max() <= 1e-6
    assert rotated_iou_aligned(base, tiled).abs().max() <= 1e-6
    assert torch.allclose(rotated_iou_aligned(base, base), torch.ones(n, dtype=torch.float64), atol=1e-9)


def test_iof_tiny_boxes_at_large_coordinates():
    """IoF divides by the small box's area, so it is the sensitive case: 0.05-px boxes near 30,000 px."""
    g = torch.Generator().manual_seed(6)
    n = 200
    big = torch.cat([29000 + torch.rand(n, 2, generator=g) * 1000, 20 + torch.rand(n, 2, generator=g) * 200,
                     (torch.rand(n, 1, generator=g) - 0.5) * PI], 1)
    corner = big[:, :2] + 0.5 * big[:, 2:3] * torch.stack([torch.cos(big[:, 4]), torch.sin(big[:, 4])], 1)
    tiny = torch.cat([corner + (torch.rand(n, 2, generator=g) - 0.5) * 0.03, 0.01 + torch.rand(n, 2, generator=g) * 0.05,
                      (torch.rand(n, 1, generator=g) - 0.5) * PI], 1)  # straddling the big box's side
    pa, pb = box_to_shapely(tiny), box_to_shapely(big)
    ref = shapely.area(shapely.intersection(pa, pb)) / shapely.area(pa)
    got = torch.diagonal(rotated_iof(tiny, big)).double().numpy()
    assert np.abs(got - ref).max() <= 1e-4
    assert ((ref > 0.01) & (ref < 0.99)).sum() >= 10  # really partial overlaps
