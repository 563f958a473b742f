"""Model soups / WiSE-FT interpolation of detector files (#12): the averaged weights are exactly the weighted
mean, the result loads and detects, and files that cannot be averaged are refused with a message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sgg.detectors.checkpoint import average_detectors, load_detector, read_checkpoint, save_detector
from sgg.detectors.hodnet import HODNet
from sgg.errors import SggInputError
from sgg.structures import Vocabulary

ROOT = Path(__file__).resolve().parents[1]


def _make(path, seed, names=("car", "ship"), ratios=(0.5, 1.0, 2.0)):
    torch.manual_seed(seed)
    m = HODNet(pretrained=False, backbone="resnet18", fpn_channels=16, representation_size=32,
               anchor_ratios=list(ratios), vocabulary=Vocabulary(tuple(names), ()), gsd_range=[0.5, 2.0])
    with torch.no_grad():  # distinct BatchNorm statistics and batch counts per file
        for name, buf in m.named_buffers():
            if buf.is_floating_point():
                buf.uniform_(0.5, 1.5)
            elif "num_batches_tracked" in name:
                buf.fill_(seed + 1)
    return save_detector(m, path, m.vocabulary)


def test_weighted_mean_of_every_float_tensor(tmp_path):
    a, b, c = (_make(tmp_path / f"{n}.pt", s) for n, s in (("a", 0), ("b", 1), ("c", 2)))
    out = average_detectors([a, b, c], tmp_path / "soup.pt", coefs=[2, 1, 1], half=False)
    sds = [read_checkpoint(p)[2] for p in (a, b, c)]
    vocab, cfg, avg = read_checkpoint(out)
    assert tuple(vocab.objects) == ("car", "ship") and cfg["gsd_range"] == [0.5, 2.0]
    for k, v in avg.items():
        if v.is_floating_point():
            want = 0.5 * sds[0][k] + 0.25 * sds[1][k] + 0.25 * sds[2][k]
            torch.testing.assert_close(v, want, rtol=0, atol=1e-6)
        else:
            assert torch.equal(v, sds[0][k])  # integer buffers from the base (the first file)
    assert any(not torch.equal(avg[k], sds[0][k]) for k in avg if avg[k].is_floating_point())


def test_soup_of_one_model_with_itself_detects_the_same(tmp_path):
    a = _make(tmp_path / "a.pt", 0)
    out = average_detectors([a, a], tmp_path / "same.pt", half=False)
    m0, m1 = load_detector(a), load_detector(out)
    img = [torch.rand(3, 128, 128)]
    with torch.no_grad():
        p0, p1 = m0(img)[0], m1(img)[0]
    assert len(p0.scores) > 0
    torch.testing.assert_close(p0.boxes.tensor, p1.boxes.tensor)
    torch.testing.assert_close(p0.scores, p1.scores)


def test_refuses_what_cannot_be_averaged(tmp_path):
    a = _make(tmp_path / "a.pt", 0)
    other_vocab = _make(tmp_path / "v.pt", 1, names=("car", "plane"))
    other_anchors = _make(tmp_path / "r.pt", 1, ratios=(0.25, 0.5, 1.0, 2.0, 4.0))
    with pytest.raises(SggInputError, match="another vocabulary") as e:
        average_detectors([a, other_vocab], tmp_path / "x.pt")
    assert "v.pt" in str(e.value)
    with pytest.raises(SggInputError, match="shapes differ.*keep_mismatched"):
        average_detectors([a, other_anchors], tmp_path / "x.pt")
    with pytest.raises(SggInputError, match="non-negative"):
        average_detectors([a, a], tmp_path / "x.pt", coefs=[1, -1])
    with pytest.raises(SggInputError, match="at least two"):
        average_detectors([a], tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_keep_mismatched_takes_other_shapes_from_the_base(tmp_path):
    """WiSE-FT between runs with other anchor ratios: shared tensors interpolated, the RPN outputs the base's."""
    base = _make(tmp_path / "base.pt", 0, ratios=(0.25, 0.5, 1.0, 2.0, 4.0))
    other = _make(tmp_path / "other.pt", 1)
    out = average_detectors([base, other], tmp_path / "wise.pt", coefs=[0.75, 0.25], keep_mismatched=True, half=False)
    b, o, w = (read_checkpoint(p)[2] for p in (base, other, out))
    assert w["rpn.cls.weight"].shape[0] == 5 and torch.equal(w["rpn.cls.weight"], b["rpn.cls.weight"])
    for k in ("rpn.conv.weight", "roi_head.cls.weight"):
        torch.testing.assert_close(w[k], 0.75 * b[k] + 0.25 * o[k], rtol=0, atol=1e-6)
    assert load_detector(out).config["anchor_ratios"] == [0.25, 0.5, 1.0, 2.0, 4.0]


def test_script_reports_errors_in_one_line(tmp_path):
    a = _make(tmp_path / "a.pt", 0)
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "average_weights.py"), str(tmp_path / "o.pt"), str(a),
                        str(tmp_path / "missing.pt")], check=False, capture_output=True, text=True)
    assert r.returncode != 0 and "missing.pt" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "average_weights.py"), str(tmp_path / "o.pt"), str(a),
                        str(a), "--coefs", "1", "3"], check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o.pt").is_file()
