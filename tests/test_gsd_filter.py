"""Metric-size sanity filter and where the GSD comes from (#12): hand-made detections against the class
bounds, the synthetic generator's objects all inside them, detect_scene's metadata and sgg detect's flags."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sgg.detectors.sizes import MAX_LENGTH_M, MAX_WIDTH_M, SIZES, filter_sizes, implausible
from sgg.structures import Detections, OrientedBoxes, Vocabulary

STAR = Vocabulary.star()


def _dets(rows, vocabulary=STAR):
    """rows: (class name, w px, h px) → detections along a line, angle 0.3."""
    boxes = torch.tensor([[20.0 + 40 * i, 30.0, w, h, 0.3] for i, (_, w, h) in enumerate(rows)])
    labels = torch.tensor([vocabulary.object_index(c) for c, _, _ in rows])
    return Detections(OrientedBoxes(boxes), labels, torch.linspace(0.9, 0.5, len(rows)))


def test_bounds_are_twice_the_largest_instance():
    # car: synthetic 4.9 x 1.9 m, real (vans, buses) 15 x 3 m -> 30 x 6 m; ship: real 458 m -> 916 m
    assert (MAX_LENGTH_M["car"], MAX_WIDTH_M["car"]) == (30.0, 6.0)
    assert MAX_LENGTH_M["ship"] == 916.0 and MAX_LENGTH_M["airplane"] == 176.0
    assert set(SIZES) == set(STAR.objects)  # every STAR class has a bound
    assert all(MAX_LENGTH_M[c] >= MAX_WIDTH_M[c] for c in SIZES)


def test_filter_on_hand_made_detections():
    rows = [("car", 8, 4),        # 4 x 2 m at 0.5 m: kept
            ("car", 80, 4),       # 40 m long: dropped (> 30)
            ("car", 14, 10),      # 7 x 5 m (a bus seen loosely): kept (5 <= 6)
            ("car", 16, 20),      # 10 x 8 m: too wide (> 6), h > w must not matter
            ("ship", 1800, 100),  # 900 x 50 m: kept (<= 916)
            ("ship", 1900, 100),  # 950 m: dropped
            ("runway", 6000, 90)]  # 3 km x 45 m: kept
    det = _dets(rows)
    assert implausible(det, STAR, 0.5).tolist() == [False, True, False, True, False, True, False]
    kept, dropped = filter_sizes(det, STAR, 0.5)
    assert dropped == {"car": 2, "ship": 1}
    assert kept.labels.tolist() == [STAR.object_index(c) for c in ("car", "car", "ship", "runway")]
    torch.testing.assert_close(kept.scores, det.scores[[0, 2, 4, 6]])
    # the same pixels at 0.05 m are all small enough; at 300 m (Landsat) everything above goes
    assert filter_sizes(det, STAR, 0.05)[1] == {}
    assert len(filter_sizes(det, STAR, 300.0)[0]) == 0
    # a class the table does not know is never dropped
    other = Vocabulary(("widget", "car"), ())
    kept, dropped = filter_sizes(_dets([("widget", 5000, 5000), ("car", 5000, 5000)], other), other, 1.0)
    assert dropped == {"car": 1} and kept.labels.tolist() == [0]
    kept, dropped = filter_sizes(Detections.empty(), STAR, 0.5)
    assert len(kept) == 0 and dropped == {}


def test_no_synthetic_object_exceeds_its_bound():
    """The generator's own objects (metres, before rendering) on 1,024 m canvases of every layout: the
    filter must never drop a true object of the training data."""
    from sgg.datasets.synthetic.layouts import LAYOUTS, compose

    seen = set()
    for li, layout in enumerate(LAYOUTS):
        b = compose(np.random.default_rng([11, li]), 1024.0, 1024.0, layout)
        for o in b.objs:
            length, width = max(o["L"], o["W"]), min(o["L"], o["W"])
            assert length <= MAX_LENGTH_M[o["cls"]] and width <= MAX_WIDTH_M[o["cls"]], (layout, o["cls"], length, width)
            seen.add(o["cls"])
    assert len(seen) >= 40


class _Fixed(torch.nn.Module):
    """A tile detector that finds the same two cars in every tile: 8 x 4 px and 120 x 40 px."""

    vocabulary = Vocabulary(("car", "ship"), ())

    def forward(self, images):
        boxes = torch.tensor([[40.0, 40.0, 8.0, 4.0, 0.0], [150.0, 120.0, 120.0, 40.0, 0.5]])
        return [Detections(OrientedBoxes(boxes), torch.tensor([0, 0]), torch.tensor([0.9, 0.8]))
                for _ in range(len(images))]


@pytest.fixture()
def png(tmp_path):
    path = tmp_path / "images" / "P1.png"
    path.parent.mkdir()
    Image.fromarray(np.full((256, 256, 3), 90, dtype=np.uint8)).save(path)
    return path


def test_detect_scene_drops_and_counts(png):
    from sgg.detectors.inference import detect_scene

    kw = dict(tile_size=256, overlap=0, levels=[0], progress=False)
    sg = detect_scene(_Fixed(), png, gsd=0.5, **kw)  # the 60 m car goes
    assert len(sg.detections) == 1 and sg.metadata["gsd_source"] == "argument"
    assert sg.metadata["size_filter"] == {"applied": True, "dropped": 1, "by_class": {"car": 1}}
    sg = detect_scene(_Fixed(), png, gsd=0.5, size_filter=False, **kw)
    assert len(sg.detections) == 2 and sg.metadata["size_filter"]["applied"] is False
    sg = detect_scene(_Fixed(), png, **kw)  # no GSD anywhere: nothing to measure in metres
    assert len(sg.detections) == 2 and sg.metadata["gsd"] is None and sg.metadata["gsd_source"] is None
    assert sg.metadata["size_filter"] == {"applied": False, "dropped": 0, "by_class": {}}
    # DOTA layout: labelTxt/P1.txt beside images/ gives the GSD (0.05 m: both cars are small enough)
    (png.parent.parent / "labelTxt").mkdir()
    label = png.parent.parent / "labelTxt" / "P1.txt"
    label.write_text("imagesource:GoogleEarth\ngsd:0.05\n1 1 9 1 9 5 1 5 small-vehicle 0\n")
    sg = detect_scene(_Fixed(), png, **kw)
    assert sg.metadata["gsd"] == pytest.approx(0.05) and sg.metadata["gsd_source"] == "dota-label"
    assert sg.metadata["gsd_label"] == str(label) and len(sg.detections) == 2
    sg = detect_scene(_Fixed(), png, gsd=0.5, **kw)  # the argument wins over the label
    assert sg.metadata["gsd_source"] == "argument" and "gsd_label" not in sg.metadata


def test_dota_label_gsd_headers(tmp_path):
    from sgg.detectors.inference import dota_label_gsd

    img = tmp_path / "P2.png"
    img.write_bytes(b"")
    assert dota_label_gsd(img) is None  # no label
    label = tmp_path / "P2.txt"  # beside the image
    label.write_text("gsd:0.256\nimagesource:GoogleEarth\n1 1 9 1 9 5 1 5 ship 0\n")
    assert dota_label_gsd(img) == (pytest.approx(0.256), label)
    label.write_text("imagesource:GoogleEarth\ngsd:null\n")  # ships_ge: unknown
    assert dota_label_gsd(img) is None
    label.write_text("1 1 9 1 9 5 1 5 ship 0\ngsd:0.3\n")  # a header after the objects is not a header
    assert dota_label_gsd(img) is None
    label.write_text("imagesource:GoogleEarth\ngsd:about half a metre\n")
    with pytest.warns(UserWarning, match=r"P2.txt, line 2: gsd 'about half a metre' is not a positive number"):
        assert dota_label_gsd(img) is None


@pytest.fixture(scope="module")
def tiny_weights(tiny_detector_file):
    return tiny_detector_file([0.5, 2.0])


def test_sgg_detect_reports_the_gsd_source(png, tiny_weights, tmp_path, capsys):
    from sgg.cli import main
    from sgg.graph import read

    (png.parent.parent / "labelTxt").mkdir()
    label = png.parent.parent / "labelTxt" / "P1.txt"
    label.write_text("imagesource:GoogleEarth\ngsd:0.256\n")
    out = tmp_path / "p.scene.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no CRS on a PNG
        assert main(["detect", str(png), "--weights", str(tiny_weights), "--out", str(out), "--threads", "1"]) == 0
    text = capsys.readouterr()
    assert f"GSD 0.256 m ({label})" in text.out
    meta = read(out).metadata
    assert meta["gsd_source"] == "dota-label" and meta["gsd_label"] == str(label)
    assert meta["levels"] == [1] and meta["size_filter"]["applied"] is True  # 0.256 m -> 0.51 m at level 1
    assert main(["detect", str(png), "--weights", str(tiny_weights), "--out", str(out), "--gsd", "1.0",
                 "--no-size-filter", "--threads", "1"]) == 0
    meta = read(out).metadata
    assert meta["gsd_source"] == "argument" and meta["levels"] == [0] and meta["size_filter"]["applied"] is False
    assert math.isclose(meta["gsd"], 1.0)
    assert main(["detect", str(png), "--from-dota", str(tmp_path), "--no-size-filter", "--out", str(out)]) == 2
    assert "--no-size-filter only applies with --weights" in capsys.readouterr().err
