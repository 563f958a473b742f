"""Oriented pseudo-boxes of horizontal labels (sgg.datasets.pseudo_obb) and the detector losses they feed:
drawn rectangles of known angle, the exact-envelope property, confidences, and hand-worked loss terms."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sgg.datasets.pseudo_obb import pseudo_oriented_boxes, with_pseudo_boxes
from sgg.detectors.roi_head import OrientedRoIHead
from sgg.detectors.rpn import OrientedRPN
from sgg.ops import box_to_envelope, rotated_iou_aligned
from sgg.structures import Vocabulary


def _draw(boxes, size=(160, 128), fg=(0.9, 0.85, 0.8), bg=(0.1, 0.2, 0.3)):
    """(3, H, W) image of filled oriented rectangles on a plain background (pixel centres inside a box)."""
    w, h = size
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    inside = torch.zeros(h, w, dtype=torch.bool)
    for cx, cy, bw, bh, a in boxes:
        u = (xs - cx) * math.cos(a) + (ys - cy) * math.sin(a)
        v = -(xs - cx) * math.sin(a) + (ys - cy) * math.cos(a)
        inside |= (u.abs() < bw / 2) & (v.abs() < bh / 2)
    img = torch.tensor(bg)[:, None, None].expand(3, h, w).clone()
    img[:, inside] = torch.tensor(fg)[:, None]
    return img


def _angle_error(a, b):
    return ((a - b + math.pi / 2) % math.pi - math.pi / 2).abs()


@pytest.mark.parametrize("angle", [0.5, -0.5, 1.2, -1.0])
def test_recovers_angle_and_keeps_the_envelope(angle):
    truth = torch.tensor([[80.0, 64, 60, 14, angle]])
    label = box_to_envelope(truth)
    boxes, conf = pseudo_oriented_boxes(_draw(truth.tolist()), label)
    assert float(_angle_error(boxes[0, 4], truth[0, 4])) < 0.06
    assert float(rotated_iou_aligned(boxes, truth)[0]) > 0.85
    assert torch.allclose(box_to_envelope(boxes), label, atol=1e-3)  # exactly the label's envelope
    assert float(conf[0]) > 0.9
    # the label alone (a horizontal box) is a much worse oriented box
    hbb = torch.cat([(label[:, :2] + label[:, 2:]) / 2, label[:, 2:] - label[:, :2], torch.zeros(1, 1)], 1)
    assert float(rotated_iou_aligned(hbb, truth)[0]) < 0.6


def test_axis_aligned_object_gives_its_label_and_round_object_no_confidence():
    truth = torch.tensor([[50.0, 40, 50, 12, 0.0], [120.0, 80, 14, 40, 0.0]])
    boxes, conf = pseudo_oriented_boxes(_draw(truth.tolist()), box_to_envelope(truth))
    assert torch.allclose(box_to_envelope(boxes), box_to_envelope(truth), atol=1e-3)
    # border cells blend with the background, so the mask's aspect reads a little long: within ~2°
    assert float(_angle_error(boxes[:, 4], truth[:, 4] + torch.tensor([0.0, math.pi / 2])).max()) < 0.04
    assert float(rotated_iou_aligned(boxes, truth).min()) > 0.9
    # a disc: no preferred direction, confidence 0 (its box is still the label)
    ys, xs = torch.meshgrid(torch.arange(128) + 0.5, torch.arange(160) + 0.5, indexing="ij")
    img = torch.full((3, 128, 160), 0.2)
    img[:, (xs - 80) ** 2 + (ys - 64) ** 2 < 15 ** 2] = 0.9
    label = torch.tensor([[65.0, 49, 95, 79]])
    boxes, conf = pseudo_oriented_boxes(img, label)
    assert float(conf[0]) == 0.0
    assert torch.allclose(box_to_envelope(boxes), label, atol=1e-3)


def test_solved_angle_matches_hand_worked_value():
    # a 3:1 bar along a square label's diagonal: tan φ = (r·a − 1)/(a − r) = 1 → φ = 45°, sides 3s and s
    # with 3s·cos45 + s·sin45 = 40 → s = 40/(4·√½) ≈ 14.14
    truth = torch.tensor([[64.0, 64, 3 * 40 / (4 * math.sqrt(0.5)), 40 / (4 * math.sqrt(0.5)), math.pi / 4]])
    boxes, _ = pseudo_oriented_boxes(_draw(truth.tolist(), size=(128, 128)), box_to_envelope(truth))
    assert float(_angle_error(boxes[0, 4], torch.tensor(math.pi / 4))) < 1e-3
    assert float(boxes[0, 2] / boxes[0, 3]) == pytest.approx(3.0, rel=0.15)
    assert pseudo_oriented_boxes(torch.zeros(3, 8, 8), torch.zeros(0, 4))[0].shape == (0, 5)


def _write_labelled_image(root, truth):
    """``root/images/b0.png`` with the drawn boxes and ``root/labelTxt/b0.txt`` with their horizontal labels."""
    (root / "images").mkdir()
    (root / "labelTxt").mkdir()
    img = (_draw(truth.tolist(), size=(200, 160)).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(img).save(root / "images" / "b0.png")
    lines = [f"{x1} {y1} {x2} {y1} {x2} {y2} {x1} {y2} boat 0" for x1, y1, x2, y2 in box_to_envelope(truth).tolist()]
    (root / "labelTxt" / "b0.txt").write_text("gsd:null\n" + "\n".join(lines) + "\n")


def test_dataset_tiles_carry_pseudo_boxes_and_weights(tmp_path):
    from sgg.datasets.datamodules import DetectorTileDataset, load_dota_scenes

    truth = torch.tensor([[100.0, 80, 70, 16, 0.6]])
    _write_labelled_image(tmp_path, truth)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recs = with_pseudo_boxes(load_dota_scenes(str(tmp_path), ["b0"], Vocabulary.star(), {"boat": "ship"}))
        assert float(_angle_error(recs[0].boxes[0, 4], truth[0, 4])) < 0.06
        assert torch.allclose(box_to_envelope(recs[0].boxes), box_to_envelope(truth), atol=1e-2)
        ds = DetectorTileDataset(recs, 128, (1.0,), train=True, tiles_per_epoch=8, positive_fraction=1.0,
                                 hbb_scenes=recs, hbb_fraction=1.0, hbb_scales=(1.0,))
        for i in range(8):
            _, t = ds[i]
            assert bool(t["hbb"]) and t["angle_weight"].shape == t["labels"].shape
            if len(t["boxes"]):  # flips and quarter turns keep the box oriented (not axis-aligned)
                a = torch.remainder(t["boxes"][:, 4], math.pi / 2)
                assert float(torch.minimum(a, math.pi / 2 - a).min()) > 0.3


def test_real_tiles_turned_with_their_pseudo_boxes(tmp_path):
    """hbb_rotate_any: a real tile turned by any angle carries its turned pseudo-boxes (on the object's pixels,
    confidences kept); without pseudo-boxes the turn is refused."""
    from sgg.datasets.datamodules import DetectorDataModule, DetectorTileDataset, load_dota_scenes
    from sgg.errors import SggInputError

    truth = torch.tensor([[100.0, 80, 70, 16, 0.05]])  # a near-axis boat: its label is nearly its box
    _write_labelled_image(tmp_path, truth)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = load_dota_scenes(str(tmp_path), ["b0"], Vocabulary.star(), {"boat": "ship"})
        with pytest.raises(SggInputError, match="pseudo-boxes"):
            DetectorTileDataset(plain, 128, (1.0,), train=True, hbb_scenes=plain, hbb_fraction=1.0,
                                hbb_rotate_any=1.0)
        recs = with_pseudo_boxes(plain)
        ds = DetectorTileDataset(recs, 128, (1.0,), train=True, tiles_per_epoch=12, positive_fraction=1.0,
                                 hbb_scenes=recs, hbb_fraction=1.0, hbb_scales=(1.0,), hbb_rotate_any=1.0,
                                 flip=False, rotate=False, min_iof=0.9)
        turns = []
        for i in range(12):
            image, t = ds[i]
            assert bool(t["hbb"]) and t["angle_weight"].shape == t["labels"].shape
            for b in t["boxes"]:
                turns.append(float(_angle_error(b[4], recs[0].boxes[0, 4])))
                # the turned box lies on the drawn boat: its centre and a point along its long axis are bright
                c, s = math.cos(float(b[4])), math.sin(float(b[4]))
                long = float(max(b[2], b[3])) * 0.35
                dx, dy = (c * long, s * long) if b[2] >= b[3] else (-s * long, c * long)
                for x, y in ((b[0], b[1]), (b[0] + dx, b[1] + dy), (b[0] - dx, b[1] - dy)):
                    assert float(image[0, int(y), int(x)]) > 0.7
                assert float(t["angle_weight"][0]) == pytest.approx(float(recs[0].angle_weight[0]))
        assert len(turns) >= 6 and max(turns) > 0.3  # turned by arbitrary angles, not only quarter turns
    data = tmp_path / "synth"
    from sgg.datasets import synthetic

    synthetic.generate_dataset(data, scenes=2, size=256, seed=0, split=(0.5, 0.5, 0.0))
    with pytest.raises(SggInputError, match="hbb_rotate_any needs hbb_pseudo_obb"):
        DetectorDataModule(str(data), tile_size=64, hbb_dir=str(tmp_path), hbb_rotate_any=0.5).setup("fit")


def test_rpn_pseudo_boxes_weigh_midpoint_offsets_by_confidence():
    rpn = OrientedRPN(8, strides=[8], anchor_sizes=[32], ratios=[1.0], batch_size=64)
    anchors = torch.tensor([[0.0, 0, 32, 32], [100, 100, 132, 132]])
    logits, base = torch.zeros(1, 2), torch.zeros(1, 2, 6)
    other = base.clone()
    other[..., 4:] = 0.3
    gt = torch.tensor([[16.0, 16, 30, 10, 0.5]])

    def diff(weight):
        t = [{"boxes": gt, "labels": torch.tensor([0]), "hbb": True, "angle_weight": torch.tensor([weight])}]
        return float(rpn.losses(anchors, logits, other, t)["loss_rpn_reg"] - rpn.losses(anchors, logits, base, t)["loss_rpn_reg"])

    assert diff(0.0) == pytest.approx(0.0, abs=1e-7)
    assert diff(0.5) == pytest.approx(0.5 * diff(1.0), rel=1e-5) and diff(1.0) != 0.0


def test_roi_pseudo_box_loss_is_weighted_oriented_smooth_l1():
    torch.manual_seed(0)
    head = OrientedRoIHead(4, 3, strides=[4], representation_size=16, batch_size=8)
    torch.nn.init.zeros_(head.reg.weight)
    torch.nn.init.zeros_(head.reg.bias)  # deltas 0: the predicted box is the proposal
    feats = [torch.randn(1, 4, 32, 32)]
    roi = torch.tensor([[40.0, 40, 30, 10, 0.0]])
    pseudo = torch.tensor([[40.0, 40, 30, 10, 0.3]])
    env = box_to_envelope(roi)
    reg_t = torch.zeros(1, 5)
    reg_t[0, :4] = torch.cat([(env[0, :2] + env[0, 2:]) / 2, env[0, 2:] - env[0, :2]])
    obb_t = head.coder.encode(roi, pseudo)

    def loss(weight):
        head.sample = lambda p, t: (roi, torch.zeros(1, dtype=torch.long), torch.tensor([1]), reg_t,
                                    torch.tensor([True]), obb_t, torch.tensor([weight]))
        return float(head.losses(feats, None, None)["loss_roi_reg"].detach())

    assert loss(0.0) == pytest.approx(0.0, abs=1e-6)  # envelope met exactly, no pseudo term
    want = torch.nn.functional.smooth_l1_loss(torch.zeros(5), obb_t[0], beta=1.0, reduction="sum")
    assert float(want) > 0.1
    assert loss(0.7) == pytest.approx(0.7 * float(want), rel=1e-5)


def test_detector_training_step_uses_pseudo_weights():
    from sgg.detectors.hodnet import HODNet, total_loss

    tiny = dict(fpn_channels=16, representation_size=32, rpn_pre_nms_top_n=[200, 100], rpn_post_nms_top_n=[100, 50],
                roi_batch_size=32, rpn_batch_size=64)
    boxes = torch.tensor([[40.0, 30.0, 30.0, 12.0, 0.6], [20.0, 50.0, 16.0, 16.0, 0.0]])

    def losses(pseudo_weight, angle_weight, rpn_pseudo_weight=None):
        torch.manual_seed(0)
        m = HODNet(num_classes=3, backbone="resnet18", pretrained=False, pseudo_weight=pseudo_weight,
                   rpn_pseudo_weight=rpn_pseudo_weight, **tiny).train()
        m.set_generator(torch.Generator().manual_seed(0))
        t = {"boxes": boxes, "labels": torch.tensor([0, 2]), "hbb": True}
        if angle_weight is not None:
            t["angle_weight"] = torch.tensor(angle_weight)
        torch.manual_seed(1)
        return m, m(torch.rand(1, 3, 64, 64), [t])

    _, plain = losses(1.0, None)
    _, off = losses(0.0, [1.0, 0.0])  # pseudo_weight 0: exactly the horizontal-label losses
    for k in ("loss_rpn_reg", "loss_roi_reg", "loss_roi_cls"):
        assert float(off[k].detach()) == pytest.approx(float(plain[k].detach()), rel=1e-6)
    m, on = losses(1.0, [1.0, 0.0])
    assert float(on["loss_roi_reg"].detach()) > float(plain["loss_roi_reg"].detach())
    total_loss(on).backward()
    assert m.roi_head.reg.weight.grad.abs().sum() > 0
    # rpn_pseudo_weight sets the RPN's share alone: 0 leaves the RPN with the horizontal-label loss, the RoI head
    # keeps its pseudo-box loss; a larger one raises only the RPN's
    _, rpn_off = losses(1.0, [1.0, 0.0], rpn_pseudo_weight=0.0)
    assert float(rpn_off["loss_rpn_reg"].detach()) == pytest.approx(float(plain["loss_rpn_reg"].detach()), rel=1e-6)
    assert float(rpn_off["loss_roi_reg"].detach()) == pytest.approx(float(on["loss_roi_reg"].detach()), rel=1e-6)
    _, rpn_more = losses(1.0, [1.0, 0.0], rpn_pseudo_weight=3.0)
    assert float(rpn_more["loss_rpn_reg"].detach()) > float(on["loss_rpn_reg"].detach())
    assert float(rpn_more["loss_roi_reg"].detach()) == pytest.approx(float(on["loss_roi_reg"].detach()), rel=1e-6)
    _, roi_off = losses(0.0, [1.0, 0.0], rpn_pseudo_weight=1.0)  # and the RoI head's can be off alone
    assert float(roi_off["loss_rpn_reg"].detach()) == pytest.approx(float(on["loss_rpn_reg"].detach()), rel=1e-6)
    assert float(roi_off["loss_roi_reg"].detach()) == pytest.approx(float(plain["loss_roi_reg"].detach()), rel=1e-6)


def test_hbb_images_drawn_by_label_count(tmp_path):
    from sgg.datasets.datamodules import DetectorTileDataset, load_dota_scenes

    (tmp_path / "images").mkdir()
    (tmp_path / "labelTxt").mkdir()
    for stem, n in (("dense", 9), ("sparse", 1)):
        Image.fromarray(np.full((160, 200, 3), 90, dtype=np.uint8)).save(tmp_path / "images" / f"{stem}.png")
        lines = [f"{10 + 20 * i} 50 {25 + 20 * i} 50 {25 + 20 * i} 90 {10 + 20 * i} 90 boat 0" for i in range(n)]
        (tmp_path / "labelTxt" / f"{stem}.txt").write_text("gsd:null\n" + "\n".join(lines) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recs = load_dota_scenes(str(tmp_path), ["dense", "sparse"], Vocabulary.star(), {"boat": "ship"})

    def dense_share(power):
        ds = DetectorTileDataset(recs[1:], 64, (1.0,), train=True, tiles_per_epoch=2000, hbb_scenes=recs,
                                 hbb_fraction=1.0, hbb_scales=(1.0,), hbb_count_power=power)
        return np.mean([ds.tile_spec(i)[0] == 1 for i in range(2000)])  # index 1: the first hbb scene

    assert dense_share(0.0) == pytest.approx(0.5, abs=0.04)
    assert dense_share(1.0) == pytest.approx(0.9, abs=0.03)  # 9 labels against 1
    assert dense_share(0.5) == pytest.approx(3 / 4, abs=0.04)  # √9 against √1
