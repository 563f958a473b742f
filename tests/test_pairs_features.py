"""STAR's 103-d pair feature and the PPG score against an independent plain-Python/shapely reference."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import shapely
import torch
from shapely.geometry import MultiPoint, Polygon

from sgg.errors import SggInputError
from sgg.pairs import PPG, star_pair_features
from sgg.pairs.features import union_rect_area
from sgg.structures import OrientedBoxes, Vocabulary

# STAR's file as released (the team's shared copy when present, else the package's copy)
_SHARED = Path(__file__).resolve().parents[2] / "shared/real/star/ppg/star_ppg_obb.pth"
STAR_OBB = _SHARED if _SHARED.exists() else Path(__file__).resolve().parents[1] / "sgg/data/ppg/star_ppg_obb.pth"


def _corners(b):
    cx, cy, w, h, a = (float(v) for v in b)
    c, s = math.cos(a), math.sin(a)
    return [(cx + dx * c - dy * s, cy + dx * s + dy * c)
            for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))]


def reference_features(boxes, labels, pairs, num_classes=48):
    """Plain Python + shapely, one pair at a time (the upstream definition, read independently)."""
    rows = []
    for s, o in pairs:
        bs, bo = boxes[s], boxes[o]
        ps, po = Polygon(_corners(bs)), Polygon(_corners(bo))
        inter = ps.intersection(po).area
        iou = inter / (ps.area + po.area - inter)
        u = MultiPoint(_corners(bs) + _corners(bo)).minimum_rotated_rectangle.area
        ds, do = math.hypot(bs[2], bs[3]), math.hypot(bo[2], bo[3])
        dist = math.hypot(bo[0] - bs[0], bo[1] - bs[1])
        a_s, a_o = bs[2] * bs[3], bo[2] * bo[3]
        onehot = [0.0] * (2 * num_classes)
        onehot[labels[s]] = 1.0
        onehot[num_classes + labels[o]] = 1.0
        rows.append(onehot + [iou, ds / do, dist / ds, dist / do, a_s / a_o, a_s / u, a_o / u])
    return np.array(rows)


def reference_score(state1, state2, x):
    def ae(sd, v):
        h = np.maximum(v @ sd["encoder.0.weight"].double().numpy().T + sd["encoder.0.bias"].double().numpy(), 0)
        h = np.maximum(h @ sd["encoder.2.weight"].double().numpy().T + sd["encoder.2.bias"].double().numpy(), 0)
        h = np.maximum(h @ sd["decoder.0.weight"].double().numpy().T + sd["decoder.0.bias"].double().numpy(), 0)
        h = h @ sd["decoder.2.weight"].double().numpy().T + sd["decoder.2.bias"].double().numpy()
        return 0.5 * (1 + np.tanh(h / 2))  # the logistic sigmoid, without exp overflow

    w1 = ae(state1, x)
    w2 = ae(state2, w1)
    return 0.5 * ((w1 - x) ** 2).mean(1) + 0.5 * ((w2 - x) ** 2).mean(1)


def random_scene(n=60, m=400, seed=0, spread=300.0):
    g = torch.Generator().manual_seed(seed)
    boxes = torch.cat([torch.rand(n, 2, generator=g, dtype=torch.float64) * spread,
                       torch.rand(n, 2, generator=g, dtype=torch.float64) * 60 + 1,
                       (torch.rand(n, 1, generator=g, dtype=torch.float64) - 0.5) * math.pi], 1)
    labels = torch.randint(0, 48, (n,), generator=g)
    pairs = torch.randint(0, n, (m, 2), generator=g)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return boxes, labels, pairs


def test_hand_worked_axis_aligned_pair():
    boxes = torch.tensor([[0.0, 0.0, 4.0, 2.0, 0.0], [2.0, 0.0, 2.0, 2.0, 0.0]], dtype=torch.float64)
    f = star_pair_features(OrientedBoxes(boxes), torch.tensor([3, 7]), torch.tensor([[0, 1]]))
    assert f.shape == (1, 103) and f.dtype == torch.float64
    assert f[0, 3] == 1 and f[0, 48 + 7] == 1 and f[0, :96].sum() == 2
    # overlap 1x2 of areas 8 and 4 -> IoU 0.2; union rectangle x[-2,3] x y[-1,1] = 10
    expected = [0.2, math.sqrt(20) / math.sqrt(8), 2 / math.sqrt(20), 2 / math.sqrt(8), 2.0, 0.8, 0.4]
    assert torch.allclose(f[0, 96:], torch.tensor(expected, dtype=torch.float64), rtol=1e-12)


def test_union_rectangle_follows_a_bridge_edge():
    # two unit squares on a diagonal: the minimum rectangle lies along the diagonal, 11√2 x √2 = 22 (not 121)
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[10.0, 10.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    assert union_rect_area(a, b).item() == pytest.approx(22.0, rel=1e-12)


def test_union_rectangle_matches_shapely_on_random_boxes():
    boxes, _, pairs = random_scene(n=80, m=600, seed=3)
    got = union_rect_area(boxes[pairs[:, 0]], boxes[pairs[:, 1]]).numpy()
    ref = shapely.area(shapely.minimum_rotated_rectangle(shapely.multipoints(
        [_corners(boxes[s]) + _corners(boxes[o]) for s, o in pairs.tolist()])))
    np.testing.assert_allclose(got, ref, rtol=1e-9)


def test_features_match_reference_float64():
    boxes, labels, pairs = random_scene(seed=1)
    # add nested, identical-centre and touching pairs
    extra = torch.tensor([[100, 100, 40, 20, 0.3], [100, 100, 10, 5, -0.7], [100, 100, 40, 20, 0.3 - math.pi / 2]],
                         dtype=torch.float64)
    boxes = torch.cat([boxes, extra])
    labels = torch.cat([labels, torch.tensor([0, 47, 5])])
    n = boxes.shape[0]
    pairs = torch.cat([pairs, torch.tensor([[n - 3, n - 2], [n - 2, n - 3], [n - 3, n - 1]])])
    got = star_pair_features(OrientedBoxes(boxes), labels, pairs).numpy()
    ref = reference_features(boxes.tolist(), labels.tolist(), pairs.tolist())
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


def test_star_score_matches_reference():
    boxes, labels, pairs = random_scene(seed=2)
    x = star_pair_features(OrientedBoxes(boxes), labels, pairs)
    ppg = PPG.from_star()
    got = ppg.score(x).numpy()
    raw = torch.load(STAR_OBB, weights_only=True)
    ref = reference_score(raw["model_state_dict1"], raw["model_state_dict2"],
                          reference_features(boxes.tolist(), labels.tolist(), pairs.tolist()))
    np.testing.assert_allclose(got, ref, rtol=1e-9)
    # float32 path agrees to float32 precision; chunking changes nothing
    got32 = ppg.score(x.float(), chunk_size=37).numpy()
    np.testing.assert_allclose(got32, ref, rtol=1e-4)
    # the one-hot shortcut of the pipeline gives the same scores
    fast = ppg.score_onehot(labels[pairs[:, 0]], labels[pairs[:, 1]], x[:, 96:], chunk_size=50).numpy()
    np.testing.assert_allclose(fast, ref, rtol=1e-9)
    hbb = PPG.from_star(kind="hbb").score(x)
    assert not torch.allclose(hbb, torch.as_tensor(got))


def test_star_weights_rank_related_geometry_first():
    # a car parked inside a car park scores lower (keep) than the same car far away from it
    car, park = Vocabulary.star().object_index("car"), Vocabulary.star().object_index("car_parking")
    boxes = torch.tensor([[500, 500, 4.5, 2.0, 0.1], [510, 505, 80, 40, 0.1], [3000, 3000, 4.5, 2.0, 0.1]],
                         dtype=torch.float64)
    f = star_pair_features(boxes, torch.tensor([car, park, car]), torch.tensor([[0, 1], [2, 1]]))
    s = PPG.from_star().score(f)
    assert s[0] < s[1]


def test_bad_inputs():
    boxes, labels, pairs = random_scene(n=5, m=10)
    with pytest.raises(ValueError, match="out of range"):
        star_pair_features(boxes, torch.tensor([0, 1, 2, 3, 48]), pairs)
    with pytest.raises(ValueError, match="pair index"):
        star_pair_features(boxes, labels, torch.tensor([[0, 5]]))
    assert star_pair_features(boxes, labels, torch.zeros(0, 2, dtype=torch.long)).shape == (0, 103)
    with pytest.raises(SggInputError, match=r"\(M, 103\)"):
        PPG.from_star().score(torch.zeros(3, 50))


def test_star_ppg_refuses_other_vocabularies(tmp_path):
    ppg = PPG.from_star()
    assert ppg.label_map(Vocabulary.star()) is None
    star = list(Vocabulary.star().objects)
    perm = Vocabulary(tuple(reversed(star)), ())
    assert ppg.label_map(perm).tolist() == list(range(47, -1, -1))
    with pytest.raises(SggInputError, match="one-hot layout is STAR"):
        ppg.label_map(Vocabulary(("ship", "plane"), ()))
    bad = tmp_path / "bad.pth"
    torch.save({"foo": torch.zeros(2)}, bad)
    with pytest.raises(SggInputError, match="not a PPG file"):
        PPG.load(bad)
    with pytest.raises(SggInputError, match="not found"):
        PPG.from_star(tmp_path / "missing.pth")


def test_own_ppg_roundtrip_fp16(tmp_path):
    torch.manual_seed(0)
    voc = Vocabulary(("a", "b", "c"), ("p",))
    ppg = PPG(3, voc, source="test")
    path = ppg.save(tmp_path / "p.pt", half=True)
    back = PPG.load(path)
    assert back.vocabulary == voc and back.in_dim == 13
    x = torch.rand(20, 13)
    assert torch.allclose(back.score(x), ppg.score(x), rtol=2e-3, atol=1e-4)
