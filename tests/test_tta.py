"""Test-time augmentation (#12): views map boxes back exactly (checked against pixel moves and shapely), an
equivariant detector gives the same boxes through every view, score voting divides one-view false
positives, and ``detect_scene`` runs the wrapper like any tile detector."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
import shapely.affinity as aff
import torch

from sgg.detectors.inference import detect_scene
from sgg.detectors.tta import (
    VIEWS,
    EnsembleDetector,
    TTADetector,
    axis_distance,
    boxes_to_original,
    inside_original,
    parse_views,
    transform_images,
    turn_boxes,
    turn_degrees,
    turn_images,
    vote,
)
from sgg.errors import SggInputError
from sgg.ops.conversions import box_to_corners, box_to_shapely, corners_to_box
from sgg.structures import Detections, OrientedBoxes, Vocabulary
from tests.test_inference import OBJECTS, BlobDetector, _scene, _sorted_rows

H, W = 48, 64


def _point_map(view: str):
    """Where a pixel (x, y) of the original lands in the view, found by moving a single bright pixel."""
    img = torch.zeros(1, 1, H, W)
    img[0, 0, 5, 11] = 1.0
    v = transform_images(img, view)[0, 0]
    y, x = (v == 1).nonzero()[0].tolist()
    return (x, y), tuple(v.shape)


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_boxes_map_back_exactly(view):
    (vx, vy), (vh, vw) = _point_map(view)
    fx, fy, tr = VIEWS[view]
    # the continuous map that moves pixel centre (11.5, 5.5) to the found pixel's centre
    def fwd(p):
        x, y = (p[..., 1], p[..., 0]) if tr else (p[..., 0], p[..., 1])
        x = vw - x if fx else x
        y = vh - y if fy else y
        return torch.stack([x, y], dim=-1)
    torch.testing.assert_close(fwd(torch.tensor([11.5, 5.5])), torch.tensor([vx + 0.5, vy + 0.5]))
    g = torch.Generator().manual_seed(0)
    orig = torch.cat([torch.rand(40, 2, generator=g) * torch.tensor([W, H]), 2 + torch.rand(40, 2, generator=g) * 20,
                      (torch.rand(40, 1, generator=g) - 0.5) * math.pi], dim=1)
    in_view = corners_to_box(fwd(box_to_corners(orig)))  # what a perfect detector would report in the view
    back = boxes_to_original(in_view, view, (H, W))
    a, b = box_to_shapely(orig), box_to_shapely(back)
    iou = shapely.area(shapely.intersection(a, b)) / shapely.area(shapely.union(a, b))
    assert np.all(iou > 0.9999), iou.min()
    assert torch.all((back[:, 4] >= -math.pi / 2) & (back[:, 4] < math.pi / 2))


@pytest.mark.parametrize("view", ["rot90", "rot180", "rot270"])
def test_turns_agree_with_the_exact_quarter_turns(view):
    img = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(1))
    deg = int(view[3:])
    torch.testing.assert_close(turn_images(img, math.radians(deg)), transform_images(img, view), atol=1e-5, rtol=0)
    g = torch.Generator().manual_seed(2)
    boxes = torch.cat([torch.rand(30, 2, generator=g) * torch.tensor([W, H]), 2 + torch.rand(30, 2, generator=g) * 20,
                       (torch.rand(30, 1, generator=g) - 0.5) * math.pi], dim=1)
    a = box_to_shapely(turn_boxes(boxes, math.radians(deg), (H, W)))
    b = box_to_shapely(_exact_view_boxes(boxes, view))
    iou = shapely.area(shapely.intersection(a, b)) / shapely.area(shapely.union(a, b))
    assert np.all(iou > 0.9999), iou.min()


def _exact_view_boxes(boxes, view):
    """Boxes where the dihedral ``view`` puts them: the inverse of ``boxes_to_original`` (an involution's
    inverse for flips and transposes; a quarter turn's inverse is the opposite turn)."""
    inverse = {"rot90": "rot270", "rot270": "rot90"}.get(view, view)
    tr = VIEWS[view][2]
    return boxes_to_original(boxes, inverse, (W, H) if tr else (H, W))


@pytest.mark.parametrize("deg", [30, 45, 135, 300])
def test_turned_boxes_match_shapely_and_map_back(deg):
    g = torch.Generator().manual_seed(deg)
    boxes = torch.cat([torch.rand(40, 2, generator=g) * torch.tensor([W, H]), 2 + torch.rand(40, 2, generator=g) * 20,
                       (torch.rand(40, 1, generator=g) - 0.5) * math.pi], dim=1)
    view = turn_images(torch.zeros(1, 1, H, W), math.radians(deg))
    vh, vw = view.shape[-2:]
    turned = turn_boxes(boxes, math.radians(deg), (H, W))
    # shapely turns counter-clockwise with y up; on a y-down image "counter-clockwise as displayed" is -deg
    want = [aff.translate(aff.rotate(p, -deg, origin=(W / 2, H / 2)), vw / 2 - W / 2, vh / 2 - H / 2)
            for p in box_to_shapely(boxes)]
    got = box_to_shapely(turned)
    iou = shapely.area(shapely.intersection(got, want)) / shapely.area(shapely.union(got, want))
    assert np.all(iou > 0.9999), iou.min()
    back = boxes_to_original(turned, f"rot{deg}", (H, W))
    a, b = box_to_shapely(back), box_to_shapely(boxes)
    assert np.all(shapely.area(shapely.intersection(a, b)) / shapely.area(shapely.union(a, b)) > 0.9999)
    assert inside_original(back, (H, W)).all() and turn_degrees(f"rot{deg}") == deg


def test_a_turned_image_moves_a_bright_spot_where_turn_boxes_says():
    img = torch.zeros(1, 1, H, W)
    img[0, 0, 9:13, 40:44] = 1.0  # a 4 px square centred at (42, 11)
    view = turn_images(img, math.radians(45))[0, 0]
    ys, xs = torch.meshgrid(torch.arange(view.shape[0]) + 0.5, torch.arange(view.shape[1]) + 0.5, indexing="ij")
    centre = torch.stack([(xs * view).sum(), (ys * view).sum()]) / view.sum()
    want = turn_boxes(torch.tensor([[42.0, 11.0, 4.0, 4.0, 0.0]]), math.radians(45), (H, W))[0, :2]
    torch.testing.assert_close(centre, want, atol=0.05, rtol=0)
    assert turn_images(img, math.radians(45)).shape[-2:] == (80, 80)  # ceil((48 + 64) / sqrt 2)


class MomentDetector(torch.nn.Module):
    """One oriented box per image from the bright pixels' second moments: exactly equivariant to flips and
    the transpose. ``ghost`` adds a false positive at a fixed view position (seen in one view only)."""

    def __init__(self, ghost: bool = False):
        super().__init__()
        self.vocabulary = Vocabulary(("thing",), ())
        self.ghost = ghost
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images):
        out = []
        for img in images:
            yx = (img[0] > 0.5).nonzero().double() + 0.5
            c = yx.mean(0)
            cov = torch.cov(yx.T)
            evals, evecs = torch.linalg.eigh(cov)
            major = evecs[:, 1]  # (dy, dx)
            theta = math.atan2(float(major[0]), float(major[1]))
            box = [float(c[1]), float(c[0]), math.sqrt(12 * float(evals[1])), math.sqrt(12 * float(evals[0])), theta]
            rows, scores = [box], [0.9]
            if self.ghost:
                rows.append([6.0, 14.0, 6.0, 4.0, 0.0])
                scores.append(0.8)
            b = torch.tensor(rows, dtype=torch.float32)
            b[:, 4] = (b[:, 4] + math.pi / 2) % math.pi - math.pi / 2
            out.append(Detections(OrientedBoxes(b), torch.zeros(len(rows), dtype=torch.long), torch.tensor(scores)))
        return out


def _rotated_rect_image(cx=30.0, cy=22.0, w=30.0, h=8.0, theta=0.6):
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    u = (xs - cx) * math.cos(theta) + (ys - cy) * math.sin(theta)
    v = -(xs - cx) * math.sin(theta) + (ys - cy) * math.cos(theta)
    img = np.zeros((3, H, W), np.float32)
    img[0] = (np.abs(u) <= w / 2) & (np.abs(v) <= h / 2)
    return torch.from_numpy(img)[None]


def test_equivariant_detector_gives_its_own_box_through_every_view():
    img = _rotated_rect_image()
    plain = MomentDetector()(img)[0]
    tta = TTADetector(MomentDetector(), views="all")(img)[0]
    assert len(tta) == 1 and float(tta.scores[0]) == pytest.approx(0.9)
    a, b = box_to_shapely(plain.boxes.tensor), box_to_shapely(tta.boxes.tensor)
    assert float(shapely.area(shapely.intersection(a, b))[0] / shapely.area(shapely.union(a, b))[0]) > 0.999
    assert abs(float(tta.boxes.tensor[0, 4]) - 0.6) < 0.05


def test_turned_views_find_the_same_box_and_drop_centres_in_the_corners():
    img = _rotated_rect_image()
    plain = MomentDetector()(img)[0]
    out = TTADetector(MomentDetector(), views="identity,rot45,rot30")(img)[0]
    assert len(out) == 1 and float(out.scores[0]) == pytest.approx(0.9)  # resampled, found in every view
    a, b = box_to_shapely(plain.boxes.tensor), box_to_shapely(out.boxes.tensor)
    assert float(shapely.area(shapely.intersection(a, b))[0] / shapely.area(shapely.union(a, b))[0]) > 0.9
    # the ghost at view pixel (6, 14) lies in the grown canvas's empty corner of a 45° view: dropped there
    ghost = TTADetector(MomentDetector(ghost=True), views="identity,rot45")(img)[0]
    assert len(ghost) == 2 and sorted(ghost.scores.tolist()) == pytest.approx([0.4, 0.9])


def test_score_voting_divides_a_one_view_false_positive():
    img = _rotated_rect_image()
    out = TTADetector(MomentDetector(ghost=True), views="d2")(img)[0]
    # the ghost sits at view pixel (6, 14): every view puts it somewhere else in the original image
    assert len(out) == 1 + 4
    s = sorted(out.scores.tolist(), reverse=True)
    assert s[0] == pytest.approx(0.9) and all(x == pytest.approx(0.8 / 4) for x in s[1:])


def test_vote_keeps_features_and_handles_empty_views():
    d = Detections(OrientedBoxes(torch.tensor([[10.0, 10.0, 8.0, 4.0, 0.0]])), torch.tensor([0]), torch.tensor([0.6]),
                   torch.ones(1, 3), class_scores=torch.tensor([[0.4, 0.6]]))
    e = Detections(OrientedBoxes(torch.tensor([[10.5, 10.0, 8.0, 4.0, 0.0]])), torch.tensor([0]),
                   torch.tensor([0.8]), torch.zeros(1, 3), class_scores=torch.tensor([[0.2, 0.8]]))
    empty = Detections(OrientedBoxes.empty(), torch.zeros(0, dtype=torch.long), torch.zeros(0), torch.zeros(0, 3),
                       class_scores=torch.zeros(0, 2))
    out = vote([d, e, empty], 0.5)
    assert len(out) == 1 and float(out.scores[0]) == pytest.approx((0.6 + 0.8 + 0) / 3)
    assert torch.equal(out.features[0], torch.zeros(3)) and float(out.boxes.tensor[0, 0]) == 10.5  # the best box
    assert len(vote([empty, empty], 0.5)) == 0


def test_vote_takes_the_box_drawn_nearest_an_axis_in_its_view():
    def det(box, score):
        return Detections(OrientedBoxes(torch.tensor([box])), torch.tensor([0]), torch.tensor([score]))

    a, b = [20.0, 20.0, 30.0, 8.0, 0.50], [20.5, 20.0, 30.0, 8.0, 0.52]  # one object seen in two views
    angles = [torch.tensor([0.30]), torch.tensor([0.02])]  # b lay along an axis in its (turned) view
    out = vote([det(a, 0.9), det(b, 0.6)], 0.5, angles)
    assert float(out.boxes.tensor[0, 0]) == 20.5 and float(out.scores[0]) == pytest.approx(0.75)
    out = vote([det(a, 0.9), det(b, 0.4)], 0.5, angles)  # below half the winner's score: the winner stays
    assert float(out.boxes.tensor[0, 0]) == 20.0 and float(out.scores[0]) == pytest.approx(0.65)
    assert float(vote([det(a, 0.9), det(b, 0.6)], 0.5).boxes.tensor[0, 0]) == 20.0  # no angles: the winner
    t = torch.tensor([0.3, -0.3, math.pi / 2 - 0.3, 0.3 - math.pi / 2, 1.2])  # flips/transposes keep the distance
    torch.testing.assert_close(axis_distance(t), torch.tensor([0.3, 0.3, 0.3, 0.3, math.pi / 2 - 1.2]))


def test_detect_scene_runs_the_wrapper(tmp_path):
    path, gt = _scene(tmp_path, (1500, 1100), OBJECTS)
    ref = detect_scene(BlobDetector(), path, tile_size=512, overlap=128, levels=[0], zoom="full", progress=False)
    sg = detect_scene(TTADetector(BlobDetector(), views="all"), path, tile_size=512, overlap=128, levels=[0],
                      zoom="full", progress=False)
    assert len(sg.detections) == len(ref.detections) == len(gt)
    a, b = box_to_shapely(ref.detections.boxes.tensor), box_to_shapely(sg.detections.boxes.tensor)
    iou = shapely.area(shapely.intersection(a[:, None], b[None])) / shapely.area(shapely.union(a[:, None], b[None]))
    assert np.all(iou.max(axis=1) > 0.999)
    assert torch.allclose(sg.detections.scores, torch.full((len(gt),), 0.9))
    assert _sorted_rows(ref).shape == (len(gt), 5)


def test_bad_views_are_refused():
    assert parse_views("flips") == ("identity", "hflip", "vflip")
    assert parse_views("hflip,transpose") == ("identity", "hflip", "transpose")
    assert parse_views("d2r")[-2:] == ("rot45", "rot135") and parse_views("rot30") == ("identity", "rot30")
    for bad in ("rot90x", "rot360", "rot0", "rot-45", "rot1000"):
        with pytest.raises(SggInputError, match="unknown test-time view"):
            parse_views(bad)
    with pytest.raises(SggInputError, match="iou_threshold"):
        TTADetector(BlobDetector(), iou_threshold=1.5)


def test_sgg_detect_tta_records_its_views(tmp_path, tiny_detector_file):
    from sgg.cli import main
    from sgg.datasets.native import read_scene_json

    path, _ = _scene(tmp_path, (300, 260), OBJECTS[:1])
    w = tiny_detector_file([0.5, 2.0])
    out = tmp_path / "o.scene.json"
    assert main(["detect", str(path), "--weights", str(w), "--tta", "hflip", "--out", str(out), "--quiet"]) == 0
    assert read_scene_json(out).metadata["tta"] == ["identity", "hflip"]
    assert main(["detect", str(path), "--weights", str(w), "--tta", "d2,align", "--out", str(out), "--quiet"]) == 0
    assert read_scene_json(out).metadata["tta"] == ["identity", "hflip", "vflip", "transpose", "align"]


# model ensembles --------------------------------------------------------------------------------------------
class FixedDetector(torch.nn.Module):
    """Returns the same rows on every image: a stand-in ensemble member with a chosen vocabulary and GSD."""

    def __init__(self, rows, scores, objects=("thing",), gsd_range=None):
        super().__init__()
        self.vocabulary = Vocabulary(tuple(objects), ())
        self.config = {"gsd_range": gsd_range} if gsd_range else {}
        self.rows, self.scores = torch.tensor(rows, dtype=torch.float32).reshape(-1, 5), torch.tensor(scores)
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images):
        n = len(self.rows)
        return [Detections(OrientedBoxes(self.rows.clone()), torch.zeros(n, dtype=torch.long), self.scores.clone())
                for _ in images]


def test_ensemble_votes_members_boxes():
    obj = [20.0, 20.0, 30.0, 8.0, 0.3]
    a = FixedDetector([obj, [50.0, 40.0, 6.0, 4.0, 0.0]], [0.9, 0.7])  # a second box only member a sees
    b = FixedDetector([[20.5, 20.0, 30.0, 8.0, 0.3]], [0.6])
    out = EnsembleDetector([a, b])(torch.zeros(2, 3, 64, 64))
    assert len(out) == 2
    for det in out:
        s = sorted(det.scores.tolist(), reverse=True)
        assert s == pytest.approx([(0.9 + 0.6) / 2, 0.7 / 2])  # mean over members; a one-member box halves
        assert float(det.boxes.tensor[0, 0]) == 20.0  # the best-scoring member's box


def test_ensemble_checks_vocabularies_and_gsd_ranges():
    one = FixedDetector([[5.0, 5.0, 4.0, 4.0, 0.0]], [0.5], gsd_range=[0.3, 1.0])
    with pytest.raises(SggInputError, match="at least two"):
        EnsembleDetector([one])
    with pytest.raises(SggInputError, match="one object vocabulary"):
        EnsembleDetector([one, FixedDetector([[5.0, 5.0, 4.0, 4.0, 0.0]], [0.5], objects=("other",))])
    with pytest.raises(SggInputError, match="disjoint GSD"):
        EnsembleDetector([one, FixedDetector([[5.0, 5.0, 4.0, 4.0, 0.0]], [0.5], gsd_range=[2.0, 4.0])])
    ens = EnsembleDetector([one, FixedDetector([[5.0, 5.0, 4.0, 4.0, 0.0]], [0.5], gsd_range=[0.5, 2.0])])
    assert ens.config["gsd_range"] == [0.5, 1.0] and ens.vocabulary == one.vocabulary
    none = EnsembleDetector([FixedDetector([], []), FixedDetector([], [])])
    assert "gsd_range" not in none.config and len(none(torch.zeros(1, 3, 8, 8))[0]) == 0


def test_ensemble_runs_in_detect_scene(tmp_path):
    path, _ = _scene(tmp_path, (1500, 1100), OBJECTS)
    ref = detect_scene(BlobDetector(), path, tile_size=512, overlap=128, levels=[0], zoom="full", progress=False)
    sg = detect_scene(EnsembleDetector([BlobDetector(), BlobDetector()]), path, tile_size=512, overlap=128,
                      levels=[0], zoom="full", progress=False)
    torch.testing.assert_close(_sorted_rows(sg), _sorted_rows(ref))


def test_anchored_vote_never_ranks_an_identity_box_below_its_own_score():
    def det(box, score):
        return Detections(OrientedBoxes(torch.tensor([box])), torch.tensor([0]), torch.tensor([score]))

    empty = Detections(OrientedBoxes.empty(), torch.zeros(0, dtype=torch.long), torch.zeros(0))
    a, far = [20.0, 20.0, 30.0, 8.0, 0.0], [60.0, 60.0, 30.0, 8.0, 0.0]
    assert float(vote([det(a, 0.6), empty], 0.5).scores[0]) == pytest.approx(0.3)  # mean: halved
    assert float(vote([det(a, 0.6), empty], 0.5, anchored=True).scores[0]) == pytest.approx(0.6)
    assert float(vote([empty, det(far, 0.8)], 0.5, anchored=True).scores[0]) == pytest.approx(0.4)  # other views: mean
    both = vote([det(a, 0.4), det(a, 0.9)], 0.5, anchored=True)
    assert float(both.scores[0]) == pytest.approx(0.65)  # raised by the other view
    assert parse_views("rot45,identity")[0] == "identity"
    with pytest.raises(SggInputError, match="vote"):
        TTADetector(MomentDetector(), "auto", vote="max")
