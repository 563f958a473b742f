"""Copy-paste of real objects in dense rows (sgg.datasets.copy_paste.RowPaster): geometry of the pasted row,
pixels taken from the right patch, covered targets dropped, and the bank cut from pseudo-boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sgg.datasets.copy_paste import RowPaster
from sgg.ops import rotated_iou


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
