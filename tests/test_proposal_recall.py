"""RPN proposal recall (sgg.evaluation.proposals, HODNet.proposals, scripts/proposal_recall.py)."""

import math
import sys
from pathlib import Path

import pytest
import shapely
import torch

from sgg.evaluation.proposals import best_overlaps, recall_at
from sgg.ops import box_to_corners


def _shapely_iou(a, b):
    pa, pb = (shapely.Polygon(box_to_corners(torch.tensor([x]))[0].tolist()) for x in (a, b))
    return pa.intersection(pb).area / pa.union(pb).area


def test_best_overlaps_against_shapely():
    diag = [50.0, 50.0, 40.0, 8.0, math.pi / 4]  # a thin diagonal boat
    side = (40 + 8) / math.sqrt(2)
    env_box = [50.0, 50.0, side, side, 0.0]  # the horizontal-label answer: its envelope, angle 0
    turned = [50.0, 50.0, 40.0, 8.0, -math.pi / 4]
    gt = torch.tensor([diag])
    props = torch.tensor([env_box, turned])
    obb = best_overlaps(gt, props, "obb")
    want = max(_shapely_iou(diag, env_box), _shapely_iou(diag, turned))
    assert float(obb[0]) == pytest.approx(want, abs=1e-4)
    assert float(obb[0]) == pytest.approx(40 * 8 / side**2, abs=1e-4)  # the boat inside its envelope square
    # by envelope the horizontal answer is exact: what horizontal labels cannot tell apart
    assert float(best_overlaps(gt, props, "hbb")[0]) == pytest.approx(1.0, abs=1e-5)
    assert best_overlaps(gt, torch.zeros(0, 5)).tolist() == [0.0]
    assert best_overlaps(torch.zeros(0, 5), props).shape == (0,)
    with pytest.raises(ValueError, match="box_type"):
        best_overlaps(gt, props, "poly")


def test_recall_at_hand_worked():
    r = recall_at([torch.tensor([0.9, 0.5, 0.49]), torch.tensor([0.1])], thresholds=(0.3, 0.5, 0.7))
    assert r == {"objects": 4, "recall@0.3": 0.75, "recall@0.5": 0.5, "recall@0.7": 0.25}
    assert recall_at([]) == {"objects": 0, "recall@0.3": 0.0, "recall@0.5": 0.0, "recall@0.7": 0.0}


def test_hodnet_proposals_are_what_the_roi_head_gets():
    from sgg.detectors.hodnet import HODNet

    m = HODNet(num_classes=3, backbone="resnet18", pretrained=False, fpn_channels=16, representation_size=32,
               rpn_post_nms_top_n=[100, 50]).eval()
    img = torch.rand(3, 96, 128)
    props = m.proposals([img])
    caught = {}
    m.rpn.register_forward_hook(lambda mod, inp, out: caught.update(p=out[0]) and None)
    with torch.no_grad():
        m([img])
    assert len(props) == 1 and props[0].shape[1] == 5 and 0 < len(props[0]) <= 50
    assert torch.equal(props[0], caught["p"][0])
    assert m.training is False


def test_script_synthetic_counts_objects_inside_tiles(tmp_path):
    from sgg.datasets import synthetic
    from sgg.datasets.tiling import load_scenes, read_split
    from sgg.detectors.hodnet import HODNet
    from sgg.ops import box_to_envelope

    synthetic.generate_dataset(tmp_path, scenes=2, size=384, seed=0, split=(0.5, 0.5, 0.0))
    m = HODNet(backbone="resnet18", pretrained=False, fpn_channels=16, representation_size=32,
               rpn_post_nms_top_n=[100, 50]).eval()
    recs = load_scenes(tmp_path, read_split(tmp_path)["val"])
    classes = sorted({r.graph.vocabulary.objects[int(c)] for r in recs for c in r.labels})
    want = 0
    for r in recs:
        env = box_to_envelope(r.boxes[~r.difficult])
        want += int(((env[:, :2] >= 0) & (env[:, 2:] <= 384)).all(1).sum())  # one tile: 512 > 384
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    try:
        from proposal_recall import synthetic as script_synthetic
    finally:
        sys.path.pop(0)
    got = script_synthetic(m, tmp_path, "val", classes)["obb"]
    assert want > 0 and got["objects"] == want
    assert 0.0 <= got["recall@0.7"] <= got["recall@0.5"] <= got["recall@0.3"] <= 1.0
