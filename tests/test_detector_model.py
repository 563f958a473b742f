"""HOD-Net model: box codings, backbones, train/eval API, overfitting a tiny image, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

from sgg.detectors.backbones import efficientnet_lite0_weights_path
from sgg.detectors.box_coder import DeltaXYWHACoder, MidpointOffsetCoder
from sgg.detectors.checkpoint import load_detector, save_detector
from sgg.detectors.hodnet import HODNet, total_loss
from sgg.errors import SggInputError
from sgg.ops import box_to_envelope, normalize_le90, rotated_iou
from sgg.ops import box_to_envelope as obb_to_xyxy
from sgg.structures import Detections, Vocabulary

torch.set_num_threads(1)
TINY = dict(fpn_channels=16, representation_size=32, rpn_pre_nms_top_n=[200, 100], rpn_post_nms_top_n=[100, 50],
            roi_batch_size=32, rpn_batch_size=64)


def _random_boxes(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    b = torch.rand(n, 5, generator=g)
    b[:, :2] = b[:, :2] * 200
    b[:, 2:4] = 2 + b[:, 2:4] * 60
    b[:, 4] = (b[:, 4] - 0.5) * math.pi
    # include exact axis-aligned, 45° and tall (w < h) boxes
    b[0, 4], b[1, 4], b[2, 4] = 0.0, math.pi / 4, -math.pi / 2
    b[3, 2], b[3, 3] = 5.0, 30.0
    return b


def _same_box(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-3) -> None:
    """Equal as rectangles: compare le90-canonical forms (angle modulo π) via the ops reference."""
    ca, cb = normalize_le90(a), normalize_le90(b)
    torch.testing.assert_close(ca[:, :4], cb[:, :4], atol=atol, rtol=1e-4)
    da = torch.remainder(ca[:, 4] - cb[:, 4] + math.pi / 2, math.pi) - math.pi / 2
    sq = (ca[:, 2] - ca[:, 3]).abs() < 1e-3  # squares: angle defined modulo π/2
    da = torch.where(sq, torch.remainder(da + math.pi / 4, math.pi / 2) - math.pi / 4, da)
    assert float(da.abs().max()) < 1e-3


# box codings ------------------------------------------------------------------------------------
def test_midpoint_offset_hand_worked():
    coder = MidpointOffsetCoder(stds=(1.0,) * 6)
    anchor = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    gt = torch.tensor([[5.0, 5.0, 10.0, 4.0, 0.0]])  # axis-aligned 10×4 at the anchor's centre
    d = coder.encode(anchor, gt)
    torch.testing.assert_close(d, torch.tensor([[0.0, 0.0, 0.0, math.log(0.4), 0.5, 0.5]]))
    # a 45° square of side √2·5: envelope 10×10, top vertex at the top-edge midpoint
    sq = torch.tensor([[5.0, 5.0, 5 * math.sqrt(2), 5 * math.sqrt(2), math.pi / 4]])
    torch.testing.assert_close(coder.encode(anchor, sq), torch.zeros(1, 6), atol=1e-5, rtol=0)


def test_midpoint_offset_round_trip():
    coder = MidpointOffsetCoder()
    gt = _random_boxes(64)
    env = obb_to_xyxy(gt)
    torch.testing.assert_close(env, box_to_envelope(gt), atol=1e-4, rtol=1e-5)  # ops as reference
    anchors = env + torch.tensor([3.0, -2.0, 8.0, 5.0])  # any anchors
    _same_box(coder.decode(anchors, coder.encode(anchors, gt)), gt)


def test_midpoint_offset_decode_is_rectangle():
    """Arbitrary deltas decode to a rectangle whose longer diagonal equals the parallelogram's."""
    coder = MidpointOffsetCoder()
    g = torch.Generator().manual_seed(1)
    anchors = torch.tensor([[0.0, 0.0, 40.0, 20.0]]).repeat(50, 1)
    deltas = torch.randn(50, 6, generator=g) * 0.3
    out = coder.decode(anchors, deltas)
    assert torch.isfinite(out).all() and (out[:, 2] >= out[:, 3]).all()
    assert ((out[:, 4] >= -math.pi / 2) & (out[:, 4] < math.pi / 2)).all()
    # the decoded box fits inside the regressed envelope (its corners lie on the stretched diagonals)
    env = obb_to_xyxy(out)
    d = deltas * coder.stds
    w = 40 * d[:, 2].exp()
    h = 20 * d[:, 3].exp()
    assert torch.all(env[:, 2] - env[:, 0] <= torch.hypot(w, h) + 1e-3)


def test_midpoint_offset_snaps_near_axis_aligned_boxes():
    """Boxes turned ±0.05 rad encode alike (their envelope) instead of jumping between (½,½) and (−½,−½)."""
    anchors = torch.tensor([[40.0, 40.0, 60.0, 60.0]]).repeat(3, 1)
    gt = torch.tensor([[50.0, 50, 20, 5, 0.05], [50, 50, 20, 5, -0.05], [50, 50, 20, 5, 0.5]])
    plain = MidpointOffsetCoder().encode(anchors, gt)
    assert plain[0, 4] * plain[1, 4] < 0  # the discontinuity the snap removes
    snapped = MidpointOffsetCoder(snap_angle=0.12).encode(anchors, gt)
    torch.testing.assert_close(snapped[0], snapped[1])
    torch.testing.assert_close(snapped[2], plain[2])  # far from axis alignment: unchanged
    dec = MidpointOffsetCoder().decode(anchors[:1], snapped[:1])
    torch.testing.assert_close(obb_to_xyxy(dec), obb_to_xyxy(gt[:1]), atol=1e-4, rtol=0)
    assert abs(float(dec[0, 4])) < 1e-5


def test_delta_xywha_round_trip_and_identity():
    coder = DeltaXYWHACoder()
    gt = _random_boxes(64, seed=2)
    props = gt + torch.tensor([4.0, -3.0, 5.0, 2.0, 0.3])
    props[:, 2:4] = props[:, 2:4].clamp(min=1.0)
    d = coder.encode(props, gt)
    assert float(d[:, 4].abs().max()) <= (math.pi / 4) / 0.1 + 1e-4  # edge swap keeps |dθ| ≤ π/4
    _same_box(coder.decode(props, d), gt)
    torch.testing.assert_close(coder.encode(gt, gt), torch.zeros(64, 5), atol=1e-5, rtol=0)
    # (N, K, 5) decoding, K classes at once
    dk = d[:, None].repeat(1, 3, 1)
    _same_box(coder.decode(props, dk)[:, 2], gt)
    assert torch.equal(normalize_le90(gt)[:, 2] >= normalize_le90(gt)[:, 3], torch.ones(64, dtype=torch.bool))


# model --------------------------------------------------------------------------------------------
def _targets():
    return [
        {"boxes": torch.tensor([[30.0, 20.0, 18.0, 8.0, 0.4], [45.0, 45.0, 9.0, 4.0, -1.0]]),
         "labels": torch.tensor([0, 2])},
        {"boxes": torch.zeros(0, 5), "labels": torch.zeros(0, dtype=torch.long)},
    ]


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3_large", "efficientnet_lite0"])
def test_train_losses_finite_and_backprop(backbone):
    torch.manual_seed(0)
    m = HODNet(num_classes=3, backbone=backbone, pretrained=backbone == "efficientnet_lite0", **TINY).train()
    losses = m(torch.rand(2, 3, 64, 64), _targets())
    assert {"loss_rpn_cls", "loss_rpn_reg", "loss_roi_cls", "loss_roi_reg"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    total_loss(losses).backward()
    assert m.rpn.cls.weight.grad is not None and m.roi_head.cls.weight.grad.abs().sum() > 0
    assert m.backbone.fpn.layer_blocks[0][0].weight.grad.abs().sum() > 0


def test_efficientnet_lite0_weights_are_the_packaged_imagenet_ones():
    m = HODNet(num_classes=2, backbone="efficientnet_lite0", pretrained=True, **TINY)
    src = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    torch.testing.assert_close(m.backbone.body.conv_stem.weight, src["_conv_stem.weight"], rtol=0, atol=0)
    torch.testing.assert_close(m.backbone.body.blocks[6][0].conv_pwl.weight, src["_blocks.15._project_conv.weight"],
                               rtol=0, atol=0)
    feats = m.features(torch.zeros(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2, 1]


def test_empty_targets_train():
    m = HODNet(num_classes=3, backbone="resnet18", pretrained=False, **TINY).train()
    empty = [{"boxes": torch.zeros(0, 5), "labels": torch.zeros(0, dtype=torch.long)}] * 2
    losses = m(torch.rand(2, 3, 64, 64), empty)
    assert float(losses["loss_rpn_reg"].detach()) == 0.0 and float(losses["loss_roi_reg"].detach()) == 0.0
    total_loss(losses).backward()


def test_eval_returns_detections_for_a_list_of_sizes():
    m = HODNet(num_classes=3, backbone="resnet18", pretrained=False, score_threshold=0.0, **TINY).eval()
    out = m([torch.rand(3, 70, 90), torch.rand(3, 40, 50)])
    assert len(out) == 2 and all(isinstance(d, Detections) for d in out)
    for d in out:
        assert d.boxes.tensor.shape[1] == 5 and len(d.labels) == len(d.scores) == len(d)
        if len(d):
            assert int(d.labels.max()) < 3 and float(d.scores.max()) <= 1.0
    with pytest.raises(SggInputError):
        m(torch.rand(2, 4, 32, 32))


def _draw(boxes: torch.Tensor, size: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    img = torch.full((3, size, size), 0.3)
    colours = torch.tensor([[1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.2, 0.2, 1.0]])
    for b, c in zip(boxes, colours):
        cx, cy, w, h, a = b.tolist()
        u = (xs - cx) * math.cos(a) + (ys - cy) * math.sin(a)
        v = -(xs - cx) * math.sin(a) + (ys - cy) * math.cos(a)
        mask = (u.abs() <= w / 2) & (v.abs() <= h / 2)
        img[:, mask] = c[:, None]
    return img


def test_overfits_one_tiny_image():
    """100 steps on one 128² image with three rotated boxes: each is found with its class, IoU > 0.5.

    The learning rate drops tenfold for the last quarter: at a constant 1e-3 the last step's noise decided
    whether the -0.8 rad box cleared IoU 0.5 (it failed one CI machine at 60 steps; 10/10 seeds × thread
    counts pass with the drop, the weakest box scoring ≥ 0.89)."""
    torch.manual_seed(0)
    boxes = torch.tensor([[40.0, 40, 40, 16, 0.5], [90, 85, 30, 12, -0.8], [80, 30, 20, 10, 0.0]])
    labels = torch.tensor([0, 1, 2])
    img = _draw(boxes, 128)
    m = HODNet(num_classes=3, backbone="efficientnet_lite0", fpn_channels=32, representation_size=64,
               anchor_sizes=[16, 32, 64, 128, 256], rpn_pre_nms_top_n=[300, 300], rpn_post_nms_top_n=[100, 100],
               roi_batch_size=64)
    m.set_generator(torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [75], 0.1)
    first = None
    for _ in range(100):
        loss = total_loss(m.train()(img[None], [{"boxes": boxes, "labels": labels}]))
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    assert float(loss) < 0.3 * first
    det = m.eval()(img[None])[0]
    det = det[det.scores > 0.5]
    iou = rotated_iou(det.boxes.tensor, boxes)
    for j in range(3):
        hit = (iou[:, j] > 0.5) & (det.labels == labels[j])
        assert bool(hit.any()), f"box {j} not found: {det.boxes.tensor}, {det.labels}"


# checkpoints --------------------------------------------------------------------------------------
def test_checkpoint_round_trip_and_refusals(tmp_path):
    torch.manual_seed(0)
    vocab = Vocabulary(("car", "ship", "boat"), ())
    m = HODNet(num_classes=3, backbone="resnet18", pretrained=False, score_threshold=0.0, **TINY).eval()
    x = torch.rand(1, 3, 64, 64)
    ref = m(x)[0]
    p = save_detector(m, tmp_path / "det.pt", vocab)
    m2 = load_detector(p, vocabulary=vocab)
    assert m2.vocabulary == vocab and not m2.training
    out = m2(x)[0]
    torch.testing.assert_close(out.boxes.tensor, ref.boxes.tensor)
    torch.testing.assert_close(out.scores, ref.scores)
    # fp16 storage: smaller, loads back as float32 with near-equal weights
    p16 = save_detector(m, tmp_path / "det16.pt", vocab, half=True)
    assert p16.stat().st_size < 0.6 * p.stat().st_size
    m3 = load_detector(p16)
    assert m3.rpn.cls.weight.dtype == torch.float32
    torch.testing.assert_close(m3.rpn.cls.weight, m.rpn.cls.weight, atol=1e-3, rtol=1e-3)
    with pytest.raises(SggInputError, match="another vocabulary.*missing \\['plane'\\]"):
        load_detector(p, vocabulary=Vocabulary(("car", "ship", "plane"), ()))
    with pytest.raises(SggInputError, match="another order"):
        load_detector(p, vocabulary=["ship", "car", "boat"])
    with pytest.raises(SggInputError, match="backbone is 'resnet18', expected 'mobilenet_v3_large'"):
        load_detector(p, config={"backbone": "mobilenet_v3_large"})
    with pytest.raises(SggInputError, match="2 classes but the model 3"):
        save_detector(m, tmp_path / "bad.pt", ["a", "b"])
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SggInputError, match="not a PyTorch checkpoint"):
        load_detector(bad)
    with pytest.raises(SggInputError, match="not found"):
        load_detector(tmp_path / "missing.pt")


def test_sparse_anchor_assignment_equals_dense():
    """The candidate-pair assignment gives the same labels and matches as the dense IoU matrix."""
    from sgg.detectors.rpn import OrientedRPN, make_anchors

    rpn = OrientedRPN(8, anchor_sizes=(16, 32, 64, 128, 256))
    shapes = [(32, 40), (16, 20), (8, 10), (4, 5), (2, 3)]
    anchors = torch.cat(make_anchors(rpn.sizes, rpn.ratios, rpn.strides, shapes, torch.device("cpu")))
    gt = _random_boxes(40, seed=3)
    gt[:, 2:4] = gt[:, 2:4] * 1.5
    lab_s, idx_s = rpn.assign(anchors, gt, shapes)
    lab_d, idx_d = rpn.assign(anchors, gt, None)
    assert torch.equal(lab_s, lab_d) and int((lab_s == 1).sum()) >= 40
    # matches may differ only between boxes tied for the anchor (same IoU)
    from torchvision.ops import box_iou

    iou = box_iou(anchors, obb_to_xyxy(gt))
    pos = torch.nonzero(lab_s == 1).flatten()
    torch.testing.assert_close(iou[pos, idx_s[pos]], iou[pos, idx_d[pos]])
