"""Iterative box regression in the RoI head (``box_passes``): the second pass is the head run again on the
first pass's box of each RoI's most probable class, recomputed here by hand; options and errors."""

import pytest
import torch

from sgg.detectors.checkpoint import load_detector, set_box_passes
from sgg.detectors.hodnet import HODNet
from sgg.detectors.roi_head import OrientedRoIHead
from sgg.errors import SggInputError

TINY = dict(fpn_channels=16, representation_size=32, rpn_pre_nms_top_n=[200, 100], rpn_post_nms_top_n=[100, 50])


def _model(**kw):
    torch.manual_seed(0)
    m = HODNet(num_classes=3, backbone="resnet18", pretrained=False, score_threshold=0.0, **TINY, **kw).eval()
    with torch.no_grad():  # a regression branch that moves boxes visibly, so passes differ
        m.roi_head.reg.weight.normal_(0, 0.05)
    return m


def _rois(m, image):
    batch, sizes = m.preprocess([image])
    feats = m.features(batch)
    rois = m.rpn(feats, sizes)[0][0]
    return feats[:4], rois, torch.zeros(len(rois), dtype=torch.long)


@torch.no_grad()
def test_passes_match_the_head_run_by_hand():
    m = _model()
    h = m.roi_head
    feats, rois, bidx = _rois(m, torch.rand(3, 96, 128))
    assert len(rois) > 10
    logits, deltas = h.box_head(h.pool(feats, rois, bidx))
    boxes = h.coder.decode(rois, deltas)
    probs, got = h.refine(feats, rois, bidx)  # one pass: the plain head
    torch.testing.assert_close(probs, logits.softmax(1))
    torch.testing.assert_close(got, boxes)
    for _ in range(2):  # passes 2 and 3 by hand
        best = logits[:, :3].argmax(1)
        again = torch.stack([boxes[i, best[i]] for i in range(len(rois))])
        logits, deltas = h.box_head(h.pool(feats, again, bidx))
        boxes = h.coder.decode(again, deltas)
    h.box_passes = 3
    probs3, got3 = h.refine(feats, rois, bidx)
    torch.testing.assert_close(probs3, logits.softmax(1))
    torch.testing.assert_close(got3, boxes)
    assert not torch.allclose(got3, got)


@torch.no_grad()
def test_detections_with_several_passes_are_valid():
    m = _model(box_passes=2)
    assert m.roi_head.box_passes == 2 and m.config["box_passes"] == 2
    d = m([torch.rand(3, 96, 128)])[0]
    assert len(d) > 0 and torch.isfinite(d.boxes.tensor).all()
    assert float(d.scores.max()) <= 1.0 and int(d.labels.max()) < 3


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_box_passes_is_refused(bad):
    with pytest.raises(SggInputError, match="box_passes"):
        HODNet(num_classes=3, backbone="resnet18", pretrained=False, box_passes=bad, **TINY)
    with pytest.raises(ValueError, match="box_passes"):
        OrientedRoIHead(16, 3, box_passes=0)


def test_load_detector_overrides_the_files_passes(tiny_detector_file):
    path = tiny_detector_file([0.3, 1.0])
    assert load_detector(path).roi_head.box_passes == 1  # files written before the option: one pass
    m = load_detector(path, box_passes=3)
    assert m.roi_head.box_passes == 3 and m.config["box_passes"] == 3
    for bad in (0, 1.5, True, "2"):
        with pytest.raises(SggInputError, match="box_passes"):
            load_detector(path, box_passes=bad)


def test_set_box_passes_keeps_the_weights_bit_for_bit(tiny_detector_file, tmp_path):
    path = tiny_detector_file([0.3, 1.0])
    before = torch.load(path, weights_only=True)
    out = set_box_passes(path, 3, out=tmp_path / "new.pt")
    after = torch.load(out, weights_only=True)
    assert after["config"] == {**before["config"], "box_passes": 3}
    assert after["vocabulary"] == before["vocabulary"] and after["inference"] == before["inference"]
    for k, v in before["state_dict"].items():
        assert torch.equal(after["state_dict"][k], v), k
    assert load_detector(out).roi_head.box_passes == 3
    assert load_detector(out, box_passes=1).roi_head.box_passes == 1  # the caller's choice wins
    for bad in (0, 2.5, True):
        with pytest.raises(SggInputError, match="box_passes"):
            set_box_passes(out, bad)


@pytest.mark.parametrize("name, passes", [("hodnet_effl0_synth.pt", 3), ("hodnet_effl0_mixed_diag.pt", 3),
                                          ("hodnet_effl0_mixed.pt", 1)])
def test_shipped_files_record_the_passes_chosen_for_them(name, passes):
    """README "Box passes": three for the default and diagonal weights; the mixed weights' rule failed."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "weights" / name
    if not path.is_file():
        pytest.skip("weights file not in this checkout")
    assert torch.load(path, weights_only=True)["config"].get("box_passes", 1) == passes
