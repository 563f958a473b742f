"""Copy-paste of real objects (sgg.datasets.copy_paste): RowPaster's geometry of the pasted row, pixels taken
from the right patch, covered targets dropped, the bank cut from pseudo-boxes; AppearanceSwap painting real
objects over synthetic ones exactly inside their oriented boxes, along their long axis, matched by aspect."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sgg.datasets.copy_paste import AppearanceSwap, RowPaster
from sgg.ops import box_to_corners, rotated_iou


def _bank(n=3):
    """Patches of one flat colour each (patch i is (i+1)/10 in every channel), aspect 3."""
    patches = torch.stack([torch.full((3, 8, 24), (i + 1) / 10) for i in range(n)])
    return RowPaster(patches, torch.full((n,), 3.0), label=7, count=(6, 6), length=(30.0, 30.0), gap=(1.2, 1.2))


def test_row_geometry_and_pixels():
    paster = _bank()
    rng = np.random.default_rng(0)
    idx, boxes, row_box, pitch = paster.row(np.random.default_rng(0), 256)
    assert len(idx) == 6 and pitch == pytest.approx(10 * 1.2)
    # objects side by side across the row: each long side (30) perpendicular to the row, centres a pitch apart
    assert torch.allclose(boxes[:, 2:4], torch.tensor([30.0, 10.0]).expand(6, 2))
    d = torch.remainder(boxes[:, 4] - row_box[0, 4], math.pi)
    assert torch.allclose(d, torch.full_like(d, math.pi / 2), atol=1e-5)
    assert torch.allclose((boxes[1:, :2] - boxes[:-1, :2]).norm(dim=1), torch.full((5,), pitch), atol=1e-4)
    # pasting draws the same row (same generator state): each box's centre pixel has its own patch's colour
    image = torch.zeros(3, 256, 256)
    far = torch.tensor([[5.0, 5.0, 4.0, 4.0, 0.0]])
    out, b, lab, diff = paster(image, far, torch.tensor([1]), torch.tensor([False]), rng)
    new = b[lab == 7]
    assert len(new) == (((boxes[:, :2] >= 0) & (boxes[:, :2] < 256)).all(1)).sum()
    assert rotated_iou(new, boxes).max(1).values.min() > 0.999
    for box, i in zip(new, idx[: len(new)].tolist()):
        x, y = int(box[0]), int(box[1])
        assert float(out[0, y, x]) == pytest.approx((i + 1) / 10, abs=1e-5)
    # outside the row the tile is untouched; the far target is kept, the pasted ones are not difficult
    assert float(rotated_iou(far, row_box)[0, 0]) == 0.0 and float(out[0, 0, 0]) == 0.0
    assert float(out.sum()) > 0 and lab[0] == 1 and not diff.any()


def test_covered_targets_are_dropped():
    paster = _bank()
    _, _, row_box, _ = paster.row(np.random.default_rng(3), 256)
    under = row_box.clone()
    under[0, 2:4] = torch.tensor([8.0, 8.0])  # a small object at the row's centre
    far = torch.tensor([[250.0, 250.0, 2.0, 2.0, 0.0]])
    boxes = torch.cat([under, far])
    assert float(rotated_iou(far, row_box)[0, 0]) == 0.0  # the row does not reach the corner
    _, _, lab, _ = paster(torch.zeros(3, 256, 256), boxes, torch.tensor([1, 2]), torch.tensor([False, True]),
                          np.random.default_rng(3))
    assert 1 not in lab.tolist() and 2 in lab.tolist()


def test_bank_from_pseudo_boxes(monkeypatch):
    from sgg.datasets.tiling import SceneRecord

    class Reader:  # a 64² image: one bright 30 × 10 bar along the diagonal
        def __init__(self):
            ys, xs = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
            u, v = ((xs - 32) + (ys - 32)) / math.sqrt(2), (-(xs - 32) + (ys - 32)) / math.sqrt(2)
            self.img = torch.where((u.abs() < 15) & (v.abs() < 5), 0.9, 0.1).expand(3, 64, 64)

    from sgg.datasets import tiling

    reader = Reader()
    monkeypatch.setattr(tiling, "read_window", lambda r, w, h, win, size: reader.img)
    rec = SceneRecord("a", "a.png", 64, 64, torch.tensor([[32.0, 32, 30, 10, math.pi / 4], [10.0, 10, 4, 4, 0.0]]),
                      torch.tensor([0, 0]), torch.tensor([False, False]), None, torch.tensor([1.0, 1.0]))
    bank = RowPaster.from_records([rec], label=3, readers=type("C", (), {"get": lambda self, p: None})())
    assert len(bank) == 1  # the 4-px object is below min_length
    assert float(bank.aspects[0]) == pytest.approx(3.0)
    # upright: the bright bar fills the patch (its long side along the width)
    assert float(bank.patches[0, 0, 4:12, 4:44].mean()) > 0.85
    with pytest.raises(ValueError, match="no object"):
        RowPaster.from_records([rec], label=3, min_length=100, readers=type("C", (), {"get": lambda self, p: None})())


def _inside(box, t=128, margin=0.0):
    """Pixel centres of a t × t tile inside (margin > 0: inside by more than margin) / outside an oriented box."""
    ys, xs = torch.meshgrid(torch.arange(t) + 0.5, torch.arange(t) + 0.5, indexing="ij")
    cx, cy, w, h, a = box.tolist()
    dx, dy = xs - cx, ys - cy
    u, v = dx * math.cos(a) + dy * math.sin(a), -dx * math.sin(a) + dy * math.cos(a)
    return (u.abs() < w / 2 - margin) & (v.abs() < h / 2 - margin)


def test_swap_paints_exactly_inside_the_boxes():
    from shapely import Point, Polygon

    bank = AppearanceSwap(torch.full((1, 3, 8, 24), 0.8), torch.tensor([3.0]), label=1, prob=1.0)
    boxes = torch.tensor([[40.0, 50.0, 30.0, 10.0, 0.6], [90.0, 90.0, 12.0, 36.0, -0.3], [20.0, 110.0, 20.0, 8, 0.0]])
    labels = torch.tensor([1, 1, 2])  # the third is another class: left alone
    out = bank(torch.zeros(3, 128, 128), boxes, labels, np.random.default_rng(0))
    painted = out[0] > 0.4
    assert torch.equal(out[0], out[1]) and float(out[0].max()) == pytest.approx(0.8)
    for box in boxes[:2]:  # every pixel well inside is painted; nothing outside the two boxes is
        assert painted[_inside(box, margin=1.0)].all()
    outside = ~(_inside(boxes[0]) | _inside(boxes[1]))
    assert not painted[outside].any() and not painted[_inside(boxes[2])].any()
    # the painted area is each box's area (against shapely's polygon of its corners)
    polys = [Polygon(c) for c in box_to_corners(boxes[:2]).tolist()]
    assert float(painted.sum()) == pytest.approx(sum(p.area for p in polys), rel=0.08)
    ys, xs = torch.nonzero(painted, as_tuple=True)
    assert all(any(p.buffer(0.75).contains(Point(x + 0.5, y + 0.5)) for p in polys)
               for x, y in zip(xs.tolist()[::7], ys.tolist()[::7]))


def test_swap_follows_the_long_axis_and_the_aspect():
    # patch 0: aspect 2, a ramp 0 → 1 along its long side; patch 1: aspect 6, flat 0.5
    ramp = torch.linspace(0.0, 1.0, 24).expand(3, 8, 24)
    bank = AppearanceSwap(torch.stack([ramp, torch.full((3, 8, 24), 0.5)]), torch.tensor([2.0, 6.0]), label=1,
                          prob=1.0, spread=1)
    for box in ([64.0, 64.0, 40.0, 20.0, 0.5], [64.0, 64.0, 20.0, 40.0, 0.5]):  # long side along w, then h
        b = torch.tensor([box])
        out = bank(torch.zeros(3, 128, 128), b, torch.tensor([1]), np.random.default_rng(1))[0]
        phi = 0.5 if box[2] > box[3] else 0.5 + math.pi / 2  # the long side's direction
        along = [out[int(64 + t * math.sin(phi)), int(64 + t * math.cos(phi))] for t in (-16.0, 16.0)]
        across = [out[int(64 + t * math.cos(phi)), int(64 - t * math.sin(phi))] for t in (-6.0, 6.0)]
        assert abs(float(along[1] - along[0])) > 0.6  # the ramp runs along the long axis (either way round)
        assert abs(float(across[1] - across[0])) < 0.1
    thin = torch.tensor([[64.0, 64.0, 60.0, 10.0, 0.0]])  # aspect 6 gets the flat patch
    out = bank(torch.zeros(3, 128, 128), thin, torch.tensor([1]), np.random.default_rng(2))
    assert float(out[0, 64, 64]) == pytest.approx(0.5)


def test_swap_probability_and_empty():
    bank = AppearanceSwap(torch.ones(2, 3, 8, 24), torch.tensor([2.0, 4.0]), label=1, prob=0.0)
    image = torch.rand(3, 64, 64)
    boxes = torch.tensor([[32.0, 32.0, 20.0, 6.0, 0.3]])
    assert torch.equal(bank(image, boxes, torch.tensor([1]), np.random.default_rng(0)), image)
    bank.prob = 1.0
    assert torch.equal(bank(image, boxes[:0], torch.zeros(0, dtype=torch.long), np.random.default_rng(0)), image)
    assert not torch.equal(bank(image, boxes, torch.tensor([1]), np.random.default_rng(0)), image)
    with pytest.raises(ValueError, match="no objects"):
        AppearanceSwap(torch.ones(0, 3, 8, 24), torch.ones(0), label=1)
