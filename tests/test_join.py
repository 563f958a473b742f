"""Joining collinear pieces of long thin objects (sgg.detectors.merge.join_collinear)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import shapely
import torch

from sgg.detectors.merge import LINEAR_CLASSES, join_collinear, linear_classes, merge_detections
from sgg.ops import rotated_iou
from sgg.structures import Detections, OrientedBoxes


def _piece(whole, t0, t1, width=None, angle=None):
    """The part of ``whole`` (cx, cy, L, W, a) between axis positions t0..t1 (0 = the whole's start)."""
    cx, cy, length, w, a = whole
    t = (t0 + t1) / 2 - length / 2
    return [cx + t * math.cos(a), cy + t * math.sin(a), t1 - t0, width or w, a if angle is None else angle]


def _det(rows, labels, scores, features=False):
    rows = torch.tensor(rows, dtype=torch.float32).reshape(-1, 5)
    feats = torch.arange(len(rows) * 2, dtype=torch.float32).reshape(-1, 2) if features else None
    return Detections(rows, labels, scores, features=feats)


RUNWAY = [1000.0, 700.0, 1900.0, 60.0, math.pi / 6]


def test_two_overlapping_pieces_become_the_whole():
    a, b = _piece(RUNWAY, 0, 1000), _piece(RUNWAY, 900, 1900)
    out = join_collinear(_det([a, b], [3, 3], [0.9, 0.7]), [3])
    assert len(out) == 1
    assert float(rotated_iou(out.boxes.tensor, torch.tensor([RUNWAY]))) > 0.99
    # checked against shapely: the joined box covers both pieces
    joined = out.boxes.to_shapely()[0].buffer(1e-2)
    assert all(joined.covers(p) for p in OrientedBoxes(torch.tensor([a, b])).to_shapely())
    assert out.labels.tolist() == [3] and out.scores.tolist() == pytest.approx([0.9])


def test_a_gap_is_bridged_within_the_length_rule_only():
    a, b = _piece(RUNWAY, 0, 800), _piece(RUNWAY, 1100, 1900)  # gap 300 px = 0.375 × the shorter piece
    assert len(join_collinear(_det([a, b], [0, 0], [0.9, 0.8]), [0])) == 1
    assert len(join_collinear(_det([a, b], [0, 0], [0.9, 0.8]), [0], max_gap_length=0.25)) == 2
    far = _piece(RUNWAY, 0, 300), _piece(RUNWAY, 1600, 1900)  # gap 1300 px > 0.75 × 300
    assert len(join_collinear(_det(list(far), [0, 0], [0.9, 0.8]), [0])) == 2


@pytest.mark.parametrize("case", ["parallel", "turned", "other_class", "not_listed", "too_wide", "square"])
def test_pieces_that_are_not_one_object_stay_apart(case):
    a, b = _piece(RUNWAY, 0, 1000), _piece(RUNWAY, 900, 1900)
    labels, classes = [0, 0], [0]
    if case == "parallel":  # side by side, 3 widths apart across the axis (two runways)
        b[0] -= 180 * math.sin(RUNWAY[4])
        b[1] += 180 * math.cos(RUNWAY[4])
    elif case == "turned":
        b[4] += 0.3
    elif case == "other_class":
        labels = [0, 1]
    elif case == "not_listed":
        classes = [1]
    elif case == "too_wide":
        b[3] = 200.0
    elif case == "square":
        a, b = _piece(RUNWAY, 0, 50), _piece(RUNWAY, 40, 90)
    assert len(join_collinear(_det([a, b], labels, [0.9, 0.8]), classes)) == 2


def test_chain_of_pieces_and_lead_attributes():
    pieces = [_piece(RUNWAY, s, s + 500) for s in (0, 450, 900, 1400)]
    pieces.append([200.0, 200.0, 30.0, 10.0, 0.0])  # an unrelated small object of the class
    det = _det(pieces, [2, 2, 2, 2, 2], [0.3, 0.95, 0.5, 0.4, 0.99], features=True)
    out = join_collinear(det, [2])
    assert len(out) == 2
    j = int(torch.argmax(out.boxes.widths))
    assert float(rotated_iou(out.boxes.tensor[j : j + 1], torch.tensor([RUNWAY]))) > 0.99
    # lead = the largest score × length (piece 1); score = the best of the lead's class
    assert torch.equal(out.features[j], det.features[1]) and float(out.scores[j]) == pytest.approx(0.95)


def test_groups_join_across_classes_and_take_the_leads_label():
    dock, breakwater = 7, 6
    a, b = _piece(RUNWAY, 0, 1200), _piece(RUNWAY, 1100, 1900)
    det = _det([a, b], [dock, breakwater], [0.6, 0.8])
    assert len(join_collinear(det, [dock, breakwater])) == 2  # each class alone
    out = join_collinear(det, [(dock, breakwater)])
    assert len(out) == 1
    assert out.labels.tolist() == [dock] and float(out.scores[0]) == pytest.approx(0.6)  # 0.6·1200 > 0.8·800


def _reference_pairs(
    rows,
    labels,
    classes,
    max_angle=0.1,
    max_offset=1.0,
    max_gap=3.0,
    max_gap_length=0.75,
    max_width_ratio=2.5,
    min_aspect=2.0,
):
    """Scalar re-statement of the joining rule with shapely's line distances (independent of the tensor code)."""
    boxes = []
    for cx, cy, w, h, a in rows:
        if h > w:
            w, h, a = h, w, a + math.pi / 2
        boxes.append((cx, cy, w, h, a))
    pairs = set()
    for i, bi in enumerate(boxes):
        for j, bj in enumerate(boxes):
            if j <= i or labels[i] != labels[j] or labels[i] not in classes:
                continue
            if bi[2] < min_aspect * bi[3] or bj[2] < min_aspect * bj[3]:
                continue
            d = (bi[4] - bj[4]) % math.pi
            if min(d, math.pi - d) > max_angle:
                continue
            wide, narrow = max(bi[3], bj[3]), min(bi[3], bj[3])
            if wide > max_width_ratio * narrow:
                continue
            ok = True
            for b in (bi, bj):  # distances measured on each piece's axis line
                u = (math.cos(b[4]), math.sin(b[4]))
                axis = shapely.LineString(
                    [(b[0] - 1e5 * u[0], b[1] - 1e5 * u[1]), (b[0] + 1e5 * u[0], b[1] + 1e5 * u[1])]
                )
                across = axis.distance(shapely.Point(bj[0] if b is bi else bi[0], bj[1] if b is bi else bi[1]))
                along = abs((bj[0] - bi[0]) * u[0] + (bj[1] - bi[1]) * u[1])
                gap = along - (bi[2] + bj[2]) / 2
                ok &= (
                    across <= max_offset * wide + 1e-6
                    and gap <= max(max_gap * wide, max_gap_length * min(bi[2], bj[2])) + 1e-6
                )
            if ok:
                pairs.add((i, j))
    return pairs


def test_components_match_a_scalar_reference():
    g = np.random.default_rng(0)
    rows, labels = [], []
    for _ in range(12):  # lines cut into pieces with jitter, plus clutter
        whole = [g.uniform(0, 3000), g.uniform(0, 3000), g.uniform(600, 2000), g.uniform(8, 60), g.uniform(-1.5, 1.5)]
        cuts = np.sort(g.uniform(0, whole[2], int(g.integers(1, 4))))
        edges = [0.0, *cuts, whole[2]]
        lab = int(g.integers(0, 3))
        for t0, t1 in itertools.pairwise(edges):
            if t1 - t0 > 20:
                p = _piece(whole, t0 - g.uniform(0, 60), t1 + g.uniform(-80, 60), angle=whole[4] + g.normal(0, 0.05))
                p[3] = whole[3] * g.uniform(0.6, 1.5)
                rows.append(p)
                labels.append(lab)
    classes = [0, 1]
    pairs = _reference_pairs(rows, labels, classes)
    # expected output count: pieces minus merges in the first round (components of the reference graph)
    parent = list(range(len(rows)))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in pairs:
        parent[find(i)] = find(j)
    expected = len({find(i) for i in range(len(rows))})
    out = join_collinear(_det(rows, labels, g.uniform(0.1, 1, len(rows))), classes, rounds=1)
    assert len(pairs) > 3 and len(out) == expected


def test_merge_detections_joins_a_runway_longer_than_the_tiles():
    image = (2000, 400)
    windows = torch.tensor([[0.0, 0.0, 1100.0, 400.0], [900.0, 0.0, 1100.0, 400.0]])
    whole = [1000.0, 200.0, 1900.0, 60.0, 0.0]
    a, b = _piece(whole, 0, 1050), _piece(whole, 850, 1900)  # each tile's view, cut at its inner edge
    det = Detections(torch.tensor([a, b]), [4, 4], [0.9, 0.8], levels=[0, 0])
    args = (torch.tensor([0, 1]), windows, torch.tensor([0, 0]), torch.tensor([1.0, 1.0]), image)
    assert len(merge_detections(det, *args)) == 2  # off by default at this level
    out = merge_detections(det, *args, join_classes=[4])
    assert len(out) == 1 and float(rotated_iou(out.boxes.tensor, torch.tensor([whole]))) > 0.99


def test_linear_classes_by_name():
    objects = ["ship", "runway", "dock", "car"]
    assert linear_classes(objects, True) == [1, 2]
    assert linear_classes(objects, False) == [] and linear_classes(objects, "") == []
    assert linear_classes(objects, "car, ship") == [3, 0]
    with pytest.raises(ValueError, match="taxi"):
        linear_classes(objects, ["taxi"])
    assert "taxiway" not in LINEAR_CLASSES


def test_empty_and_single():
    assert len(join_collinear(Detections.empty(), [0])) == 0
    one = _det([RUNWAY], [0], [0.5])
    assert torch.equal(join_collinear(one, [0]).boxes.tensor, one.boxes.tensor)


def test_detect_scene_joins_a_strip_cut_by_every_tile(tmp_path):
    import warnings
    from typing import ClassVar

    from PIL import Image

    from sgg.detectors.inference import detect_scene
    from sgg.errors import SggInputError
    from sgg.structures import Vocabulary

    path = tmp_path / "strip.png"
    Image.fromarray(np.zeros((256, 1000, 3), dtype=np.uint8)).save(path)  # one row of 4 tiles

    class Strip(torch.nn.Module):
        """Sees, in every tile, the part of a 40-px-wide runway along y = 100 that the tile holds."""

        vocabulary = Vocabulary(("car", "runway"), ())
        config: ClassVar[dict] = {}

        def forward(self, images):
            w = images.shape[-1]
            return [Detections(torch.tensor([[w / 2, 100.0, float(w), 40.0, 0.0]]), [1], [0.9]) for _ in images]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a PNG has no CRS
        kw = dict(tile_size=256, overlap=0, levels=[0], zoom="full", progress=False)
        joined = detect_scene(Strip(), path, **kw)
        pieces = detect_scene(Strip(), path, join_linear=False, **kw)
        with pytest.raises(SggInputError, match="taxiway"):
            detect_scene(Strip(), path, join_linear=["taxiway"], **kw)
    assert len(pieces.detections) == 4 and pieces.metadata["join_linear"] == []
    assert len(joined.detections) == 1 and joined.metadata["join_linear"] == ["runway"]
    assert float(rotated_iou(joined.detections.boxes.tensor, torch.tensor([[500.0, 100.0, 1000.0, 40.0, 0.0]]))) > 0.99


def test_foreign_results_are_joined_only_when_asked(tmp_path):
    """scenes_from_dota keeps mmrotate-style results as given unless join_linear names classes."""
    from sgg.datasets.dota import write_dota_results
    from sgg.detectors.inference import scenes_from_dota
    from sgg.errors import SggInputError
    from sgg.structures import Vocabulary

    voc = Vocabulary.star()
    rw, car = voc.object_index("runway"), voc.object_index("car")
    a, b = _piece(RUNWAY, 0, 1000), _piece(RUNWAY, 900, 1900)
    write_dota_results({"scene": _det([a, b, [300.0, 300.0, 9.0, 4.0, 0.0]], [rw, rw, car], [0.9, 0.7, 0.8])},
                       tmp_path, voc)
    kept = scenes_from_dota(tmp_path)["scene"]
    assert sorted(kept.detections.labels.tolist()) == sorted([rw, rw, car])
    joined = scenes_from_dota(tmp_path, join_linear=True)["scene"]
    assert sorted(joined.detections.labels.tolist()) == sorted([rw, car])
    r = joined.detections[(joined.detections.labels == rw).nonzero().flatten()]
    assert float(rotated_iou(r.boxes.tensor, torch.tensor([RUNWAY]))) > 0.98  # DOTA files round to 0.01 px
    assert joined.metadata["join_linear"] == list(LINEAR_CLASSES)
    assert len(scenes_from_dota(tmp_path, join_linear="dock")["scene"].detections) == 3
    with pytest.raises(SggInputError, match="klingon"):
        scenes_from_dota(tmp_path, join_linear="klingon")


DOCK = [300.0, 200.0, 500.0, 20.0, 0.3]


def _dock_results(tmp_path):
    """A 600 × 400 GeoTIFF ``r.tif`` and DOTA results ``res/`` holding one dock (``DOCK``) in two pieces."""
    import numpy as np

    from sgg.datasets.dota import write_dota_results
    from sgg.io.writer import write_geotiff
    from sgg.structures import Vocabulary

    raster = write_geotiff(tmp_path / "r.tif", np.zeros((400, 600, 3), dtype=np.uint8), crs="EPSG:32633",
                           transform=(0.5, 0, 4e5, 0, -0.5, 5e6), overviews=False)
    voc = Vocabulary.star()
    det = _det([_piece(DOCK, 0, 260), _piece(DOCK, 240, 500)], [voc.object_index("dock")] * 2, [0.9, 0.8])
    write_dota_results({"r": det}, tmp_path / "res", voc)
    return raster


def test_sgg_detect_from_dota_joins_named_classes(tmp_path):
    from sgg.cli import main
    from sgg.datasets.native import read_scene_json

    raster = _dock_results(tmp_path)
    base = ["detect", str(raster), "--from-dota", str(tmp_path / "res"), "-q"]
    assert main(base + ["--out", str(tmp_path / "a.scene.json")]) == 0
    assert len(read_scene_json(tmp_path / "a.scene.json").detections) == 2  # foreign results kept as given
    assert main(base + ["--join-linear", "dock", "--out", str(tmp_path / "b.scene.json")]) == 0
    joined = read_scene_json(tmp_path / "b.scene.json").detections
    assert len(joined) == 1 and float(rotated_iou(joined.boxes.tensor, torch.tensor([DOCK]))) > 0.98


def test_pipeline_joins_foreign_results_only_for_named_classes(tmp_path):
    from sgg.pipeline import Pipeline

    raster = _dock_results(tmp_path)

    def run(join):
        cfg = {"detector": {"weights": None, "from_dota": str(tmp_path / "res"), "join_linear": join},
               "pairs": None, "relations": None, "caption": False}
        return Pipeline(cfg).run(raster).detections

    assert len(run(True)) == 2  # the default: foreign results kept as given
    joined = run(["dock"])
    assert len(joined) == 1 and float(rotated_iou(joined.boxes.tensor, torch.tensor([DOCK]))) > 0.98
    assert len(run("dock")) == 1
    # the command line: sgg infer --from-dota … --join-linear CLASSES
    import json

    from sgg.cli import main

    out = tmp_path / "out"
    assert main(["infer", str(raster), "--from-dota", str(tmp_path / "res"), "--join-linear", "dock", "--out", str(out),
                 "--formats", "json", "--pair-proposer", "none", "--relation-head", "none", "-q"]) == 0
    assert len(json.loads((out / "r.json").read_text())["nodes"]) == 1
