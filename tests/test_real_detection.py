"""Issue #12 pieces: horizontal-box evaluation and supervision, class merging, DOTA label edge cases,
anchor-ratio adaptation, mixed hbb/obb training tiles and GSD-aware tiling (hand-worked examples)."""

from __future__ import annotations

import math
import warnings
from typing import ClassVar

import numpy as np
import pytest
import torch

from sgg.datasets.dota import axis_aligned, read_dota_labels
from sgg.detectors.roi_head import OrientedRoIHead
from sgg.detectors.rpn import OrientedRPN, adapt_ratios
from sgg.errors import SggInputError
from sgg.evaluation.detection import rotated_map
from sgg.structures import Detections, SceneGraph, Vocabulary

VOC = Vocabulary(("plane", "ship", "boat"), ())


def _gt(boxes, labels, difficult=None):
    return SceneGraph(Detections(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 5), torch.tensor(labels)),
                      vocabulary=VOC, difficult=None if difficult is None else torch.tensor(difficult))


def _pred(boxes, labels, scores):
    return Detections(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 5), torch.tensor(labels),
                      torch.tensor(scores, dtype=torch.float32))


# ------------------------------------------------------------------------------------------ evaluation
def test_hbb_compares_envelopes():
    # a 40×10 box turned 45°: its envelope is a 35.36² square; the horizontal label is that square
    side = 50 / math.sqrt(2)
    gt = _gt([[100, 100, side, side, 0.0]], [1])
    pred = _pred([[100, 100, 40, 10, math.pi / 4]], [1], [0.9])
    assert rotated_map([pred], [gt])["AP"]["ship"] == 0.0  # rotated IoU 400/1250 = 0.32
    res = rotated_map([pred], [gt], box_type="hbb")
    assert res["AP"]["ship"] == pytest.approx(1.0) and res["box_type"] == "hbb"
    # envelope IoU exactly at a hand-computed value: a 20×10 hbb vs a 20×10 shifted by 5 px → 150/250 = 0.6
    gt2 = _gt([[0, 0, 20, 10, 0]], [1])
    near = _pred([[5, 0, 20, 10, 0]], [1], [0.9])
    assert rotated_map([near], [gt2], box_type="hbb", iou_threshold=0.59)["mAP"] == pytest.approx(1.0)
    assert rotated_map([near], [gt2], box_type="hbb", iou_threshold=0.61)["mAP"] == 0.0
    with pytest.raises(ValueError, match="box_type"):
        rotated_map([near], [gt2], box_type="poly")


def test_merge_and_class_agnostic():
    # ground truth: two `ship`s; predictions: one called `boat`, one `plane`, one `ship` duplicate of the first
    gt = _gt([[0, 0, 20, 10, 0], [100, 0, 20, 10, 0]], [1, 1])
    pred = _pred([[0, 0, 20, 10, 0], [100, 0, 20, 10, 0], [0, 0, 20, 10, 0]], [2, 0, 1], [0.9, 0.8, 0.7])
    plain = rotated_map([pred], [gt])
    assert plain["AP"]["ship"] == pytest.approx(0.5)  # only the 0.7 ship hits (g1); recall 0.5
    merged = rotated_map([pred], [gt], merge={"boat": "ship"})
    # ranks: boat→ship 0.9 TP(g1), ship 0.7 duplicate FP → recall 0.5 at precision 1
    assert merged["AP"]["ship"] == pytest.approx(0.5) and merged["num_dets"]["ship"] == 2
    agn = rotated_map([pred], [gt], class_agnostic=True)
    # 0.9 TP g1, 0.8 TP g2, 0.7 FP → AP 1.0 over the one class "object"
    assert agn["classes_evaluated"] == ["object"] and agn["mAP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="merge names class 'dinghy'"):
        rotated_map([pred], [gt], merge={"dinghy": "ship"})


def test_cli_box_type_merge_agnostic(tmp_path, capsys):
    from sgg.datasets.dota import write_dota_labels, write_dota_results
    from sgg.evaluation.cli import detection_main

    star = Vocabulary.star()
    ship, boat = star.object_index("ship"), star.object_index("boat")
    gt = SceneGraph(Detections(torch.tensor([[50.0, 50, 30, 30, 0]]), torch.tensor([ship])), vocabulary=star)
    write_dota_labels(gt, tmp_path / "gt" / "img.txt")
    # a boat predicted as a 40×10 box turned so that its envelope is the labelled square
    side = 30.0
    w = side * math.sqrt(2) - 5.0 / math.sqrt(2)  # w cos45 + h sin45 = side with h = 5
    det = Detections(torch.tensor([[50.0, 50, w, 5.0, math.pi / 4]]), torch.tensor([boat]), torch.tensor([0.8]))
    write_dota_results({"img": det}, tmp_path / "pred")
    args = ["--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt")]
    assert detection_main(args + ["--box-type", "hbb", "--merge", "boat=ship"]) == 0
    assert "ship" in capsys.readouterr().out
    assert detection_main(args + ["--box-type", "hbb", "--class-agnostic", "--json", str(tmp_path / "r.json")]) == 0
    import json

    r = json.loads((tmp_path / "r.json").read_text())
    assert r["mAP"] == pytest.approx(1.0) and r["class_agnostic"] and r["box_type"] == "hbb"
    assert detection_main(args)  == 0 and "0.0000" in capsys.readouterr().out.splitlines()[-1]
    with pytest.raises(SggInputError, match="--merge: class 'dinghy'"):
        detection_main(args + ["--merge", "dinghy=ship"])


# ------------------------------------------------------------------------------------------ DOTA labels
def test_dota_difficulty_degenerate_box_type(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("gsd:0.3\n"
                 "10 10 30 10 30 20 10 20 ship 0\n"
                 "1 187 1 187 1 219 1 219 small-vehicle 2\n"      # a line: degenerate, skipped with a warning
                 "40 40 60 40 60 50 40 50 small-vehicle 2\n")     # difficulty 2 = difficult
    with pytest.warns(UserWarning, match=r"a\.txt: line 3: degenerate polygon"):
        sg = read_dota_labels(f, aliases="dota_to_star")
    assert len(sg.detections) == 2 and sg.difficult.tolist() == [False, True]
    assert sg.metadata["box_type"] == "hbb"
    f.write_text("10 10 30 12 29 22 9 20 ship 0\n40 40 60 40 60 50 40 50 ship 0\n")
    assert read_dota_labels(f, aliases="dota_to_star").metadata["box_type"] == "obb"
    f.write_text("10 10 30 10 30 20 10 20 ship x\n")
    with pytest.raises(SggInputError, match="line 1: difficulty must be a non-negative integer"):
        read_dota_labels(f, aliases="dota_to_star")
    # outside the image (size given): reported with its line and skipped
    f.write_text("10 10 30 10 30 20 10 20 ship 0\n500 500 530 500 530 520 500 520 ship 0\n")
    with pytest.warns(UserWarning, match=r"line 2: polygon outside the 100×100 image"):
        sg = read_dota_labels(f, aliases="dota_to_star", image_size=(100, 100))
    assert len(sg.detections) == 1
    assert axis_aligned(np.array([[[0, 0], [4, 0], [4, 2], [0, 2]], [[0, 0], [4, 1], [3, 5], [-1, 4]]])).tolist() \
        == [True, False]


def test_real_p1478_reads_with_warnings(real_dir):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        sg = read_dota_labels(real_dir / "dota" / "P1478__1__853___962.txt", aliases="dota_to_star")
    msgs = [str(x.message) for x in w if "degenerate" in str(x.message)]
    assert len(msgs) == 2 and "line 2" in msgs[0]
    assert len(sg.detections) == 293 and int(sg.difficult.sum()) == 6


# ------------------------------------------------------------------------------------------ supervision
def test_rpn_hbb_ignores_midpoint_offsets():
    torch.manual_seed(0)
    rpn = OrientedRPN(8, strides=[8], anchor_sizes=[32], ratios=[1.0], batch_size=64)
    anchors = torch.tensor([[0.0, 0, 32, 32], [32, 0, 64, 32], [100, 100, 132, 132]])
    logits = torch.zeros(1, 3)
    base = torch.zeros(1, 3, 6)
    other = base.clone()
    other[..., 4:] = 0.3  # only the offsets (the angle) differ
    gt = torch.tensor([[16.0, 16, 32, 32, 0.0]])
    for hbb, same in ((True, True), (False, False)):
        t = [{"boxes": gt, "labels": torch.tensor([0]), "hbb": hbb}]
        a = rpn.losses(anchors, logits, base, t)["loss_rpn_reg"]
        b = rpn.losses(anchors, logits, other, t)["loss_rpn_reg"]
        assert (float(a) == pytest.approx(float(b))) is same


def _head(groups=None):
    torch.manual_seed(0)
    head = OrientedRoIHead(4, 3, strides=[4], representation_size=16, batch_size=8, merge_groups=groups)
    torch.nn.init.zeros_(head.reg.weight)
    torch.nn.init.zeros_(head.reg.bias)  # deltas 0: the predicted box is the proposal
    return head


def test_roi_merged_class_loss_is_log_of_summed_probability():
    head = _head(groups=[[1, 2]])
    rois = torch.tensor([[20.0, 20, 10, 10, 0], [30.0, 30, 10, 10, 0]])
    labels, hbb = torch.tensor([1, 3]), torch.tensor([True, True])  # a ship and a background RoI
    reg_t = torch.zeros(2, 5)
    reg_t[0, :4] = torch.tensor([20.0, 20, 10, 10])
    head.sample = lambda props, targets: (rois, torch.zeros(2, dtype=torch.long), labels, reg_t, hbb,
                                          torch.zeros(2, 5), torch.zeros(2))
    feats = [torch.randn(1, 4, 16, 16)]
    out = head.losses(feats, None, None)
    logits, _ = head.box_head(head.pool(feats, rois, torch.zeros(2, dtype=torch.long)))
    p = logits.softmax(1)
    want = -(torch.log(p[0, 1] + p[0, 2]) + torch.log(p[1, 3])) / 2
    assert float(out["loss_roi_cls"].detach()) == pytest.approx(float(want), rel=1e-5)
    assert float(out["loss_roi_reg"].detach()) == pytest.approx(0.0, abs=1e-6)  # envelope equals the label
    # the same RoI as an oriented sample: plain cross-entropy on class 1
    head.sample = lambda props, targets: (rois, torch.zeros(2, dtype=torch.long), labels, reg_t * 0,
                                          torch.tensor([False, False]), torch.zeros(2, 5), torch.zeros(2))
    want_obb = -(torch.log(p[0, 1]) + torch.log(p[1, 3])) / 2
    assert float(head.losses(feats, None, None)["loss_roi_cls"].detach()) == pytest.approx(float(want_obb), rel=1e-5)


def test_roi_hbb_regression_has_no_angle_term():
    head = _head()
    feats = [torch.randn(1, 4, 32, 32)]
    label = torch.tensor([40.0, 40, 30, 10])
    # a proposal with the label's envelope but described turned by 90° (w/h swapped): no loss
    for roi, zero in (([40.0, 40, 10, 30, math.pi / 2], True), ([40.0, 40, 30, 10, 0.4], False)):
        rois = torch.tensor([roi])
        reg_t = torch.zeros(1, 5)
        reg_t[0, :4] = label
        head.sample = lambda p, t, r=rois, g=reg_t: (r, torch.zeros(1, dtype=torch.long), torch.tensor([0]), g,
                                                      torch.tensor([True]), torch.zeros(1, 5), torch.zeros(1))
        loss = float(head.losses(feats, None, None)["loss_roi_reg"].detach())
        assert (loss == pytest.approx(0.0, abs=1e-5)) is zero


def test_adapt_ratios_copies_nearest():
    old, new = [0.5, 1.0, 2.0], [0.125, 0.5, 1.0, 2.0, 8.0]
    sd = {"rpn.cls.weight": torch.arange(3.0).reshape(3, 1, 1, 1), "rpn.cls.bias": torch.arange(3.0),
          "rpn.reg.weight": torch.arange(18.0).reshape(18, 1, 1, 1), "rpn.reg.bias": torch.arange(18.0)}
    out = adapt_ratios(sd, old, new)
    assert out["rpn.cls.bias"].tolist() == [0, 0, 1, 2, 2]
    assert out["rpn.reg.bias"].reshape(5, 6)[:, 0].tolist() == [0, 0, 6, 12, 12]
    rpn = OrientedRPN(1, strides=[4], anchor_sizes=[16], ratios=new)
    rpn.load_state_dict({k[4:]: v for k, v in out.items()} | {"conv.weight": rpn.conv.weight, "conv.bias": rpn.conv.bias})


# ------------------------------------------------------------------------------------------ GSD-aware tiling
def test_gsd_min_level_and_warnings():
    from sgg.detectors.inference import gsd_min_level

    rng = (0.33, 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning within or finer than the range
        assert gsd_min_level(0.116, rng) == 2  # log2(0.33 / 0.116) = 1.51 → two halvings (0.46 m)
        assert gsd_min_level(0.256, rng) == 0  # log2(1.29) = 0.37
        assert gsd_min_level(0.1, rng) == 2 and gsd_min_level(0.5, rng) == 0 and gsd_min_level(2.9, rng) == 0
        assert gsd_min_level(None, None) == 0  # a model without a range: nothing to compare
    with pytest.warns(UserWarning, match="a.tif: ground sampling distance unknown"):
        assert gsd_min_level(None, rng, "a.tif") == 0
    with pytest.warns(UserWarning, match="30 m pixels are far coarser"):
        assert gsd_min_level(30.0, rng) == 0


def test_detect_scene_uses_gsd(tmp_path):
    from PIL import Image

    from sgg.detectors.inference import detect_scene, plan_scene
    from sgg.io import RasterScene

    path = tmp_path / "img.png"
    Image.fromarray(np.zeros((600, 1000, 3), dtype=np.uint8)).save(path)

    class Dummy(torch.nn.Module):
        vocabulary = Vocabulary(("ship",), ())
        config: ClassVar[dict] = {"gsd_range": [0.4, 2.0]}

        def forward(self, images):
            return [Detections.empty() for _ in range(len(images))]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a PNG has no CRS
        with RasterScene.open(path) as sc:
            assert [lp.level for lp in plan_scene(sc, 256, 0, min_level=1).levels] == [2, 1]
            assert [lp.level for lp in plan_scene(sc, 256, 0, min_level=5).levels] == [5]
        sg = detect_scene(Dummy(), path, tile_size=256, overlap=0, zoom="full", progress=False, gsd=0.1)
    assert sg.metadata["levels"] == [2] and sg.metadata["gsd"] == 0.1  # log2(0.4/0.1) = 2 halvings
    with pytest.warns(UserWarning, match="ground sampling distance unknown"):
        detect_scene(Dummy(), path, tile_size=256, overlap=0, zoom="full", progress=False)


# ------------------------------------------------------------------------------------------ mixed training tiles
def _write_dota(root, stem, lines, size=(200, 160)):
    from PIL import Image

    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labelTxt").mkdir(exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 90, dtype=np.uint8)).save(root / "images" / f"{stem}.png")
    (root / "labelTxt" / f"{stem}.txt").write_text("gsd:null\n" + "\n".join(lines) + "\n")


def test_hbb_split_and_mixed_tiles(tmp_path):
    from sgg.datasets.datamodules import DetectorTileDataset, hbb_split, load_dota_scenes

    real = tmp_path / "real"
    for i in range(10):
        _write_dota(real, f"boat{i}", ["60 50 100 50 100 70 60 70 boat 0"])
    split = hbb_split(str(real), 0.2, 0)
    assert len(split["val"]) == 2 and len(split["train"]) == 8 and not set(split["val"]) & set(split["train"])
    assert split == hbb_split(str(real), 0.2, 0) and split != hbb_split(str(real), 0.2, 1)
    obb_dir = tmp_path / "obb"
    _write_dota(obb_dir, "s0", ["50 50 90 60 85 80 45 70 ship 0"], size=(400, 400))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obb = load_dota_scenes(str(obb_dir), ["s0"], Vocabulary.star(), "dota_to_star")
        hbb = load_dota_scenes(str(real), split["train"], Vocabulary.star(), {"boat": "ship"})
        assert hbb[0].graph.metadata["box_type"] == "hbb" and obb[0].graph.metadata["box_type"] == "obb"
        ds = DetectorTileDataset(obb, 128, (1.0,), train=True, tiles_per_epoch=40, positive_fraction=1.0,
                                 rotate_any=1.0, hbb_scenes=hbb, hbb_fraction=0.5, hbb_scales=(1.5,))
        kinds = []
        for i in range(40):
            image, t = ds[i]
            assert image.shape == (3, 128, 128)
            kinds.append(bool(t["hbb"]))
            if t["hbb"] and len(t["boxes"]):  # horizontal labels stay axis-aligned (quarter turns only)
                a = torch.remainder(t["boxes"][:, 4], math.pi / 2)
                assert torch.allclose(torch.minimum(a, math.pi / 2 - a), torch.zeros_like(a), atol=1e-5)
                assert torch.allclose(torch.sort(t["boxes"][0, 2:4]).values, torch.tensor([20.0, 40.0]) * t["scale"],
                                      atol=1e-3)  # the 40×20 label at the tile's rate (≈ 1.5)
    assert 10 < sum(kinds) < 30


def test_box_type_is_per_image_not_per_folder(tmp_path):
    """An hbb label file among oriented ones is trained as horizontal (no free rotation, flagged ``hbb``)."""
    from sgg.datasets.datamodules import DetectorTileDataset, load_dota_scenes

    root = tmp_path / "mixed"
    _write_dota(root, "obb0", ["50 50 90 60 85 80 45 70 ship 0"], size=(400, 400))
    _write_dota(root, "hbb0", ["60 50 100 50 100 70 60 70 ship 0"], size=(400, 400))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scenes = load_dota_scenes(str(root), ["obb0", "hbb0"], Vocabulary.star(), "dota_to_star")
        assert [s.graph.metadata["box_type"] for s in scenes] == ["obb", "hbb"]
        ds = DetectorTileDataset(scenes, 128, (1.0,), train=True, tiles_per_epoch=40, positive_fraction=1.0,
                                 rotate_any=1.0)
        seen = {}
        for i in range(40):
            si = ds.tile_spec(i)[0]
            _, t = ds[i]
            seen.setdefault(si, set()).add(bool(t["hbb"]))
    assert seen == {0: {False}, 1: {True}}


def test_sgg_detect_gsd_and_bands(tmp_path, capsys):
    from PIL import Image

    from sgg.cli import main
    from sgg.detectors.checkpoint import save_detector
    from sgg.detectors.hodnet import HODNet

    torch.manual_seed(0)
    m = HODNet(pretrained=False, backbone="mobilenet_v3_large", fpn_channels=16, representation_size=32,
               vocabulary=Vocabulary(("ship", "boat"), ()), gsd_range=[0.4, 2.0])
    w = save_detector(m, tmp_path / "w.pt", m.vocabulary, inference={"tile_size": 128, "overlap": 0})
    img = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(img)
    out = tmp_path / "out.scene.json"
    assert main(["detect", str(img), "--weights", str(w), "--out", str(out), "--gsd", "0.1", "--bands", "3", "2", "1",
                 "--zoom", "full"]) == 0
    from sgg.graph import read

    assert read(out).metadata["levels"] == [2] and read(out).metadata["gsd"] == 0.1
    assert main(["detect", str(img), "--weights", str(w), "--out", str(out), "--zoom", "full"]) == 0
    assert "ground sampling distance unknown" in capsys.readouterr().err
    assert main(["detect", str(img), "--weights", str(w), "--out", str(out), "--gsd", "0"]) == 2


def test_sgg_detect_join_linear_options(tmp_path, capsys):
    from PIL import Image

    from sgg.cli import main
    from sgg.detectors.checkpoint import save_detector
    from sgg.detectors.hodnet import HODNet
    from sgg.graph import read

    torch.manual_seed(0)
    m = HODNet(pretrained=False, backbone="mobilenet_v3_large", fpn_channels=16, representation_size=32,
               vocabulary=Vocabulary(("runway", "dock", "car"), ()), gsd_range=[0.4, 2.0])
    w = save_detector(m, tmp_path / "w.pt", m.vocabulary, inference={"tile_size": 128, "overlap": 0})
    img = tmp_path / "img.png"
    Image.fromarray(np.zeros((200, 200, 3), dtype=np.uint8)).save(img)
    out = tmp_path / "out.scene.json"
    base = ["detect", str(img), "--weights", str(w), "--out", str(out), "--gsd", "0.5", "--quiet"]
    assert main(base) == 0 and read(out).metadata["join_linear"] == ["runway", "dock"]
    assert main([*base, "--join-linear", "car"]) == 0 and read(out).metadata["join_linear"] == ["car"]
    assert main([*base, "--no-join-linear"]) == 0 and read(out).metadata["join_linear"] == []
    capsys.readouterr()
    out.unlink()
    assert main([*base, "--join-linear", "taxiway"]) == 2
    err = capsys.readouterr().err
    assert "--join-linear" in err and "taxiway" in err and not out.exists()
