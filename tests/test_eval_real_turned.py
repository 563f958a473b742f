"""``scripts/eval_real.py``'s ``ships_ge_r45`` set (#12): a held-out image turned by 45° on a grown canvas, with
its oriented (pseudo-)boxes turned alike, so each turned box still lies on its object's pixels."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image

from sgg.datasets.dota import read_dota_labels
from sgg.ops.conversions import box_to_corners
from tests.scripts import load_script


def _inside(mask_shape, box):
    """Boolean (H, W) mask of pixel centres inside the oriented box."""
    h, w = mask_shape
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    cx, cy, bw, bh, t = box
    u = (xs - cx) * math.cos(t) + (ys - cy) * math.sin(t)
    v = -(xs - cx) * math.sin(t) + (ys - cy) * math.cos(t)
    return (np.abs(u) <= bw / 2) & (np.abs(v) <= bh / 2)


def test_turned_image_and_boxes_stay_together(tmp_path):
    img = np.zeros((120, 200, 3), np.uint8)
    img[40:60, 30:110] = 255  # an 80 x 20 "boat" along the x axis, centred at (70, 50)
    img[90:100, 150:190] = 200  # a 40 x 10 one, centred at (170, 95)
    Image.fromarray(img).save(tmp_path / "boat1.png")
    (tmp_path / "boat1.txt").write_text("gsd:null\n30 40 110 40 110 60 30 60 boat 0\n150 90 190 90 190 100 150 100 boat 0\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt = read_dota_labels(tmp_path / "boat1.txt", aliases={"boat": "ship"})
    out, turned = load_script("eval_real").turned(gt, tmp_path / "boat1.png", tmp_path / "work")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(out) as src:
            arr = src.read()
    side = math.ceil((200 + 120) / math.sqrt(2))
    assert arr.shape == (3, side, side) and turned.image_size == (side, side)
    boxes = turned.detections.boxes.tensor
    assert torch.allclose(boxes[:, 4].abs(), torch.full((2,), math.pi / 4), atol=1e-5)  # 45° from the axes
    for box, value in zip(boxes.tolist(), (255, 200), strict=True):
        core = _inside(arr.shape[1:], [*box[:2], box[2] - 4, box[3] - 4, box[4]])
        ring = _inside(arr.shape[1:], [*box[:2], box[2] + 6, box[3] + 6, box[4]]) & ~_inside(
            arr.shape[1:], [*box[:2], box[2] + 2, box[3] + 2, box[4]])
        assert arr[0][core].min() >= value - 2 and arr[0][ring].max() <= 2
    corners = box_to_corners(boxes)
    assert bool((corners >= 0).all() and (corners <= side).all())
    assert load_script("eval_real").turned(gt, tmp_path / "boat1.png", tmp_path / "work")[0] == out  # reused


def test_shards_cover_every_image_once_and_bad_shards_are_usage_errors():
    """``--shard K/N`` is 1-based: N shards split any key set between them, each key exactly once."""
    import argparse

    import pytest

    er = load_script("eval_real")
    assert er.parse_shard("1/2") == (1, 2) and er.parse_shard("2/2") == (2, 2)
    for bad in ("0/2", "3/2", "x/2", "1"):
        with pytest.raises(argparse.ArgumentTypeError):
            er.parse_shard(bad)
    keys = [f"ships_ge/{i}" for i in range(40)]
    owners = [[k for k in (1, 2, 3) if er.shard_owns(key, (k, 3))] for key in keys]
    assert all(len(o) == 1 for o in owners) and {o[0] for o in owners} == {1, 2, 3}



def test_another_shards_key_is_skipped_until_its_result_is_cached(tmp_path):
    import argparse

    er = load_script("eval_real")
    key = next(f"synthetic_r45/s{i:05d}" for i in range(50) if not er.shard_owns(f"synthetic_r45/s{i:05d}", (1, 2)))
    args = argparse.Namespace(cache=str(tmp_path), shard=(1, 2))
    assert er.elsewhere(key, args)
    assert not er.elsewhere(key, argparse.Namespace(cache=str(tmp_path), shard=(2, 2)))  # its owner
    assert not er.elsewhere(key, argparse.Namespace(cache=None, shard=None))  # no shards: everything here
    (tmp_path / key).parent.mkdir(parents=True)
    (tmp_path / f"{key}.pt").write_bytes(b"")
    assert not er.elsewhere(key, args)  # cached: the last run scores it


def test_group_scores_are_class_agnostic_within_a_group():
    """Hand-worked: 3 vehicles (2 cars, 1 truck); a car, a car called truck and a false car, by score.
    Class-agnostic: TP, TP, FP → precision 1, 1, 2/3 at recall 1/3, 2/3, 2/3: area AP 2/3, recall 2/3."""
    import pytest

    from sgg.structures import Detections, SceneGraph, Vocabulary

    er = load_script("eval_real")
    voc = Vocabulary.star()
    car, truck, ship = (voc.object_index(n) for n in ("car", "truck", "ship"))
    gt = SceneGraph(Detections(torch.tensor([[10., 10, 9, 4, 0], [40., 10, 9, 4, 0], [80., 40, 20, 5, 0.3],
                                             [200., 200, 60, 12, 0]]),
                               torch.tensor([car, car, truck, ship])), vocabulary=voc)
    pred = Detections(torch.tensor([[10., 10, 9, 4, 0], [40., 10, 9, 4, 0], [150., 150, 9, 4, 0]]),
                      torch.tensor([car, truck, car]), torch.tensor([0.9, 0.8, 0.7]))
    out = er.group_scores([pred], [gt], voc)
    assert set(out) == {"vehicles", "boats"}  # no airplane in the ground truth: no aircraft entry
    assert out["vehicles"]["AP50"] == pytest.approx(2 / 3) and out["vehicles"]["recall"] == pytest.approx(2 / 3)
    assert out["vehicles"]["gts"] == 3
    assert out["boats"] == {"AP50": 0.0, "recall": 0.0, "gts": 1}


def test_synthetic_r45_turns_scenes_and_their_boxes_together(tmp_path, monkeypatch):
    """``--sets synthetic_r45``: each validation scene is turned by 45° with its boxes; an oracle that returns
    the turned ground truth scores 1.0 (mAP and every group), one that returns the unturned boxes does not,
    and detection gets the scene's GSD (a turned GeoTIFF has no CRS to carry it)."""
    import argparse

    from sgg.datasets import synthetic
    from sgg.datasets.native import read_scene_json
    from sgg.structures import Vocabulary

    er = load_script("eval_real")
    data = tmp_path / "air"
    synthetic.generate_dataset(data, scenes=1, size=512, seed=3, gsd=0.5, layouts=["airport"], split=(0, 1, 0))
    sid = "s00000"
    plain = read_scene_json(data / "annotations" / f"{sid}.json")
    calls = []

    def oracle(turn_boxes):
        def detect(model, image, args, key, **kw):
            calls.append((image, key, kw))
            gt = plain if not turn_boxes else er.turned(plain, data / "scenes" / f"{sid}.tif", tmp_path / "c" / "synthetic_r45_images" / "air")[1]
            return gt.detections, 1
        return detect

    model = argparse.Namespace(vocabulary=Vocabulary.star())
    args = argparse.Namespace(cache=str(tmp_path / "c"), shard=None)
    monkeypatch.setattr(er, "detect_cached", oracle(True))
    out = er.eval_synthetic(model, [data], "val", args, turn=True)
    assert out["images"] == 1 and out["mAP50"] == pytest.approx(1.0)
    assert out["groups"]["aircraft"]["AP50"] == pytest.approx(1.0)
    image, key, kw = calls[-1]
    assert key == "synthetic_r45/s00000" and kw == {"gsd": 0.5} and image.suffix == ".tif"
    side = math.ceil(2 * 512 / math.sqrt(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(image) as src:
            assert (src.width, src.height) == (side, side)
    monkeypatch.setattr(er, "detect_cached", oracle(False))
    assert er.eval_synthetic(model, [data], "val", args, turn=True)["mAP50"] < 0.5


def test_other_turns_are_sets_of_their_own(tmp_path):
    """``ships_ge_r<deg>`` turns the held-out images by ``deg``; an unknown set is a usage error."""
    er = load_script("eval_real")
    assert er.turn_of("ships_ge_r30") == 30 and er.turn_of("ships_ge_r45") == 45
    assert er.turn_of("ships_ge_r90") is None and er.turn_of("ships_ge_rx") is None and er.turn_of("p0706") is None
    img = np.zeros((120, 200, 3), np.uint8)
    img[40:60, 30:110] = 255
    Image.fromarray(img).save(tmp_path / "boat1.png")
    (tmp_path / "boat1.txt").write_text("gsd:null\n30 40 110 40 110 60 30 60 boat 0\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt = read_dota_labels(tmp_path / "boat1.txt", aliases={"boat": "ship"})
    _, turned = er.turned(gt, tmp_path / "boat1.png", tmp_path / "work30", 30)
    assert float(turned.detections.boxes.tensor[0, 4].abs()) == pytest.approx(math.radians(30), abs=1e-5)
    with pytest.raises(SystemExit):
        er.main(["w.pt", "--sets", "ships_ge,nonsense"])
