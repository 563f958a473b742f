"""Rotated RoIAlign: agreement with torchvision at angle 0, rotation semantics, gradients, shapes."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision

from sgg.ops import rotated_roi_align

PI = math.pi


def test_matches_torchvision_roi_align_at_angle_zero():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 5, 40, 48, generator=g)
    k = 60
    cx = torch.rand(k, generator=g) * 200 - 10  # some boxes stick out of the map
    cy = torch.rand(k, generator=g) * 170 - 10
    w = 2 + torch.rand(k, generator=g) * 80
    h = 2 + torch.rand(k, generator=g) * 80
    bi = torch.randint(0, 2, (k,), generator=g)
    boxes = torch.stack([cx, cy, w, h, torch.zeros(k)], 1)
    for scale, ratio, size in ((0.25, 2, 7), (0.25, 1, (5, 3)), (0.125, 3, 4)):
        ours = rotated_roi_align(feats, boxes, bi, size, scale, ratio)
        rois = torch.stack([bi.float(), cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
        ref = torchvision.ops.roi_align(feats, rois, size, scale, ratio, aligned=True)
        assert ours.shape == ref.shape
        assert (ours - ref).abs().max() < 1e-4
    # legacy aligned=False: no half-pixel shift (boxes of >= 1 feature pixel; smaller ones are widened about
    # their centre here, about their corner in torchvision, as mmcv's rotated op does)
    big = (w >= 4) & (h >= 4)
    ours = rotated_roi_align(feats, boxes[big], bi[big], 7, 0.25, 2, aligned=False)
    rois = torch.stack([bi.float(), cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)[big]
    ref = torchvision.ops.roi_align(feats, rois, 7, 0.25, 2, aligned=False)
    assert (ours - ref).abs().max() < 1e-4


def test_rotation_semantics_on_a_linear_ramp():
    # bilinear sampling reproduces a linear function exactly: f(x, y) = x at pixel centres
    h, w = 64, 64
    xs = torch.arange(w, dtype=torch.float64).expand(h, w)
    feats = xs[None, None].clone()
    box = torch.tensor([[32.5, 32.5, 20.0, 8.0, PI / 2]], dtype=torch.float64)  # w-side along +y
    out = rotated_roi_align(feats, box, [0], output_size=(2, 4), sampling_ratio=2)[0, 0]
    # columns run along w (now +y: x constant per column); rows run along h, i.e. along -x
    assert torch.allclose(out[0], torch.full((4,), 32.0 + 2.0, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(out[1], torch.full((4,), 32.0 - 2.0, dtype=torch.float64), atol=1e-9)
    box0 = torch.tensor([[32.5, 32.5, 20.0, 8.0, 0.0]], dtype=torch.float64)
    out0 = rotated_roi_align(feats, box0, [0], output_size=(2, 4), sampling_ratio=2)[0, 0]
    # angle 0, aligned: centre 32.5 px is feature coordinate 32.0; four 5-px bins along x
    expect = torch.tensor([24.5, 29.5, 34.5, 39.5], dtype=torch.float64)
    assert torch.allclose(out0, expect.expand(2, 4), atol=1e-9)


def test_half_turn_flips_the_output():
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(1, 3, 50, 50, generator=g, dtype=torch.float64)
    box = torch.tensor([[25.0, 24.0, 17.0, 9.0, 0.4]], dtype=torch.float64)
    turned = box.clone()
    turned[0, 4] -= PI
    a = rotated_roi_align(feats, box, [0])
    b = rotated_roi_align(feats, turned, [0])
    assert torch.allclose(a, b.flip(2, 3), atol=1e-9)


def test_gradients_flow_and_match_numerical():
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(2, 2, 9, 11, generator=g, dtype=torch.float64, requires_grad=True)
    boxes = torch.tensor([[5.0, 4.0, 6.0, 3.0, 0.6], [3.0, 6.0, 4.0, 4.0, -1.2]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f: rotated_roi_align(f, boxes, [1, 0], 3, 1.0, 2), (feats,))
    out = rotated_roi_align(feats, boxes, [1, 0], 3)
    out.sum().backward()
    assert feats.grad[1].abs().sum() > 0 and feats.grad[0].abs().sum() > 0


def test_empty_chunked_and_bad_input():
    feats = torch.randn(1, 4, 16, 16)
    assert rotated_roi_align(feats, torch.zeros(0, 5), torch.zeros(0, dtype=torch.long)).shape == (0, 4, 7, 7)
    boxes = torch.tensor([[8.0, 8.0, 6.0, 3.0, 0.3]] * 5)
    full = rotated_roi_align(feats, boxes, [0] * 5)
    chunked = rotated_roi_align(feats, boxes, [0] * 5, max_samples=1)
    assert torch.equal(full, chunked)
    with pytest.raises(ValueError, match="batch_idx"):
        rotated_roi_align(feats, boxes, [1] * 5)
    with pytest.raises(ValueError, match="sampling_ratio"):
        rotated_roi_align(feats, boxes, [0] * 5, sampling_ratio=0)


def _gathered(features, boxes, batch_idx, out=7, scale=1.0, ratio=2):
    """Independent reference: every bilinear sample read by index from a (B·H·W, C) view, torchvision's rule
    (0 beyond one pixel outside the map, clamped in the outer band), then the bins' means."""
    _, ch, height, width = features.shape
    rows = features.permute(0, 2, 3, 1).reshape(-1, ch)
    g = out * ratio
    f = (torch.arange(g, dtype=features.dtype) + 0.5) / g - 0.5
    res = []
    for (cx, cy, w, h, a), b in zip(boxes.tolist(), batch_idx.tolist()):
        cx, cy, w, h = cx * scale - 0.5, cy * scale - 0.5, w * scale, h * scale
        u, v = (w * f)[None, :], (h * f)[:, None]
        x = cx + u * math.cos(a) - v * math.sin(a)
        y = cy + u * math.sin(a) + v * math.cos(a)
        valid = ((y >= -1) & (y <= height) & (x >= -1) & (x <= width)).to(features.dtype)
        x, y = x.clamp(0, width - 1), y.clamp(0, height - 1)
        x0, y0 = x.floor().long(), y.floor().long()
        lx, ly = x - x0, y - y0
        x1, y1 = (x0 + 1).clamp(max=width - 1), (y0 + 1).clamp(max=height - 1)
        val = sum(rows[b * height * width + yy * width + xx] * (wt * valid)[..., None]
                  for yy, xx, wt in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x1, (1 - ly) * lx),
                                     (y1, x0, ly * (1 - lx)), (y1, x1, ly * lx)))  # (g, g, C)
        res.append(val.reshape(out, ratio, out, ratio, ch).mean(dim=(1, 3)).permute(2, 0, 1))
    return torch.stack(res)


@pytest.mark.parametrize("size", [(1, 9), (12, 1), (17, 23)])
def test_matches_a_gathered_reference_over_images_chunks_and_borders(size):
    torch.manual_seed(0)
    feats = torch.randn(3, 5, *size)
    k = 40
    h, w = size
    boxes = torch.stack([torch.rand(k) * (w * 4 + 8) - 4, torch.rand(k) * (h * 4 + 8) - 4,  # some off the map
                         torch.rand(k) * 20 + 0.5, torch.rand(k) * 12 + 0.5, (torch.rand(k) - 0.5) * PI], 1)
    bidx = torch.randint(0, 3, (k,))  # images interleaved, as batched tiles come
    want = _gathered(feats, boxes, bidx, scale=0.25)
    for chunk in (1 << 24, 5 * 49 * 4 * 3):  # one chunk per image; several
        got = rotated_roi_align(feats, boxes, bidx, 7, 0.25, 2, max_samples=chunk)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
