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
