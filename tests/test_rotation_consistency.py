"""Rotation-consistency self-supervision on hbb tiles (issue #12): geometry against shapely, image and box
turns agree, the loss's zero and hand-worked values, one training step of a tiny detector with rc_weight."""

from __future__ import annotations

import math

import pytest
import torch
from shapely.affinity import rotate as shapely_rotate

from sgg.detectors.consistency import consistency_loss, envelope_rois, rotate_boxes, rotate_images, rotation_consistency
from sgg.detectors.hodnet import HODNet, total_loss
from sgg.detectors.module import DetectorModule
from sgg.ops import box_to_shapely, normalize_le90

torch.set_num_threads(1)
TINY = dict(fpn_channels=16, representation_size=32, rpn_pre_nms_top_n=[200, 100], rpn_post_nms_top_n=[100, 50],
            roi_batch_size=32, rpn_batch_size=64)


def _boxes(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    b = torch.rand(n, 5, generator=g, dtype=torch.float64)
    b[:, :2] = b[:, :2] * 200
    b[:, 2:4] = 3 + b[:, 2:4] * 50
    b[:, 4] = (b[:, 4] - 0.5) * math.pi
    return b


def test_rotate_boxes_matches_shapely():
    boxes = _boxes(40)
    theta = (torch.rand(40, generator=torch.Generator().manual_seed(1), dtype=torch.float64) - 0.5) * 2 * math.pi
    centre = torch.tensor([[100.0, 80.0]], dtype=torch.float64).expand(40, 2)
    out = rotate_boxes(boxes, theta, centre)
    assert ((out[:, 4] >= -math.pi / 2) & (out[:, 4] < math.pi / 2)).all()
    for src, dst, t in zip(box_to_shapely(boxes), box_to_shapely(out), theta.tolist()):
        # shapely turns +t from x towards y: clockwise on screen with y down, the le90 sense
        ref = shapely_rotate(src, t, origin=(100.0, 80.0), use_radians=True)
        assert ref.hausdorff_distance(dst) < 1e-6


def test_image_and_boxes_turn_together():
    img = torch.zeros(1, 3, 128, 128)
    img[:, :, 58:70, 54:94] = 1.0  # a bright 40×12 rectangle centred at (74, 64)
    box = torch.tensor([[74.0, 64.0, 40.0, 12.0, 0.0]])
    theta = torch.tensor([0.6])
    out = rotate_images(img, theta)[0, 0]
    turned = rotate_boxes(box, theta, torch.tensor([[64.0, 64.0]]))[0]
    # pixel centres in the turned box's frame
    ys, xs = torch.meshgrid(torch.arange(128) + 0.5, torch.arange(128) + 0.5, indexing="ij")
    c, s = math.cos(turned[4]), math.sin(turned[4])
    u = c * (xs - turned[0]) + s * (ys - turned[1])
    v = -s * (xs - turned[0]) + c * (ys - turned[1])
    inside = (u.abs() < 20 - 1.5) & (v.abs() < 6 - 1.5)
    outside = (u.abs() > 20 + 1.5) | (v.abs() > 6 + 1.5)
    assert inside.sum() > 200 and out[inside].min() > 0.95
    assert out[outside].max() < 0.05
    assert out.sum() == pytest.approx(40 * 12, rel=0.03)  # bilinear resampling keeps the area


def test_loss_zero_for_equivariant_head_and_positive_for_trivial():
    boxes = _boxes(30, seed=2).float()
    theta = (torch.rand(30, generator=torch.Generator().manual_seed(3)) - 0.5) * (math.pi / 2)
    centre = torch.full((30, 2), 128.0)
    turned = normalize_le90(rotate_boxes(boxes, theta, centre))  # may swap w/h: the same rectangles
    rois = envelope_rois(turned)
    assert float(consistency_loss(turned, boxes, theta, centre, rois)) == pytest.approx(0.0, abs=1e-6)
    # the trivial answer: each view's box is its RoI's envelope at angle 0
    trivial = consistency_loss(envelope_rois(turned), envelope_rois(boxes), theta, centre, rois)
    assert float(trivial) > 1.0
    # hand-worked: a 40×10 box at angle 0, turned π/6 about its own centre. The original view says
    # (100,100,40,10,0) → target (100,100,40,10,π/6); the turned view says its envelope 39.64×28.66 at 0.
    # Scaled terms: 0, 0, log(39.64/40)/0.2 = −0.045, log(28.66/10)/0.2 = 5.264, −(π/6)/0.1 = −5.236;
    # smooth-L1: 0.001 + 4.764 + 4.736 = 9.501
    b = torch.tensor([[100.0, 100.0, 40.0, 10.0, 0.0]])
    t, c = torch.tensor([math.pi / 6]), torch.tensor([[100.0, 100.0]])
    r = envelope_rois(rotate_boxes(b, t, c))
    assert float(consistency_loss(r, b, t, c, r)) == pytest.approx(9.501, abs=0.01)


def _hbb_targets():
    return [{"boxes": torch.tensor([[40.0, 30.0, 30.0, 12.0, 0.0], [20.0, 50.0, 16.0, 16.0, 0.0]]),
             "labels": torch.tensor([0, 2]), "hbb": True},
            {"boxes": torch.tensor([[32.0, 32.0, 24.0, 10.0, 0.5]]), "labels": torch.tensor([1])}]


def test_training_step_with_rc_weight():
    torch.manual_seed(0)
    m = HODNet(num_classes=3, backbone="resnet18", pretrained=False, rc_weight=1.0, **TINY).train()
    m.set_generator(torch.Generator().manual_seed(0))
    losses = m(torch.rand(2, 3, 64, 64), _hbb_targets())
    assert "loss_rc" in losses and torch.isfinite(losses["loss_rc"]) and float(losses["loss_rc"].detach()) > 0
    total_loss(losses).backward()
    assert m.roi_head.reg.weight.grad.abs().sum() > 0
    # off by default: no extra term, no second view
    m0 = HODNet(num_classes=3, backbone="resnet18", pretrained=False, **TINY).train()
    assert "loss_rc" not in m0(torch.rand(2, 3, 64, 64), _hbb_targets())
    # oriented-only batches: a zero term (logged every step)
    obb = [{"boxes": t["boxes"], "labels": t["labels"]} for t in _hbb_targets()]
    assert float(m(torch.rand(2, 3, 64, 64), obb)["loss_rc"].detach()) == 0.0


def test_only_the_rc_loss_reaches_the_turned_view():
    # rotation_consistency alone: gradients reach the head (turned view) and the backbone through the
    # turned tile only (the original view is the detached target)
    torch.manual_seed(1)
    m = HODNet(num_classes=3, backbone="resnet18", pretrained=False, **TINY).train()
    batch, sizes = m.preprocess(torch.rand(1, 3, 64, 64))
    feats = m.features(batch)
    rois = torch.tensor([[40.0, 30.0, 30.0, 12.0, 0.3]])
    loss = rotation_consistency(m, batch, sizes, feats, rois, torch.tensor([0]), torch.tensor([1]),
                                generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    grads = torch.autograd.grad(loss, [feats[0], m.roi_head.reg.weight], allow_unused=True)
    assert grads[0] is None and grads[1].abs().sum() > 0


def test_module_logs_rc_loss():
    mod = DetectorModule(class_names=["a", "b", "c"], backbone="resnet18", pretrained=False, fpn_channels=16,
                         representation_size=32, detector={**{k: v for k, v in TINY.items()
                                                              if k not in ("fpn_channels", "representation_size")},
                                                           "rc_weight": 0.5})
    logged = {}
    mod.log_dict = lambda d, **kw: logged.update(d)
    mod.log = lambda k, v, **kw: logged.update({k: v})
    loss = mod.training_step((torch.rand(2, 3, 64, 64), _hbb_targets()), 0)
    assert "train/loss_rc" in logged and float(logged["train/loss_rc"]) > 0
    assert float(loss) == pytest.approx(sum(float(v) for k, v in logged.items() if k.startswith("train/loss_")))


def test_head_only_mode_leaves_the_backbone_alone():
    torch.manual_seed(2)
    m = HODNet(num_classes=3, backbone="resnet18", pretrained=False, rc_weight=1.0, rc_train_backbone=False,
               **TINY).train()
    m.set_generator(torch.Generator().manual_seed(0))
    losses = m(torch.rand(2, 3, 64, 64), _hbb_targets())
    fpn = m.backbone.fpn.layer_blocks[0][0].weight
    g_rc = torch.autograd.grad(losses["loss_rc"], [fpn, m.roi_head.reg.weight], allow_unused=True)
    assert g_rc[0] is None and g_rc[1].abs().sum() > 0
