"""Merging tile detections: border fragments, cross-level NMS, containment, coarse small objects."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sgg.detectors.merge import containment_suppress, merge_detections, merge_single, tile_to_level0
from sgg.ops import rotated_iof
from sgg.structures import Detections

# image 1800 × 1000, level 0 tiles of 1024 with overlap 200: A = x 0..1024, B = x 776..1800 (flush)
IMAGE = (1800, 1000)
WIN_A = (0.0, 0.0, 1024.0, 1000.0)
WIN_B = (776.0, 0.0, 1024.0, 1000.0)


def _det(rows, labels, scores, levels):
    return Detections(torch.tensor(rows, dtype=torch.float32).reshape(-1, 5), labels, scores, levels=levels)


def _merge(det, tile_ids, windows, tile_levels, **kw):
    scales = [2.0**lv for lv in tile_levels]
    return merge_detections(det, torch.tensor(tile_ids), torch.tensor(windows), torch.tensor(tile_levels),
                            torch.tensor(scales), IMAGE, **kw)


def test_tile_to_level0_moves_and_scales():
    d = _det([[10, 20, 8, 4, 0.3]], [1], [0.7], None)
    out = tile_to_level0(d, (100, 200, 512, 512), 2.0, level=1)
    assert torch.allclose(out.boxes.tensor, torch.tensor([[120.0, 240.0, 16.0, 8.0, 0.3]]))
    assert out.levels.tolist() == [1] and out.labels.tolist() == [1]


def test_straddling_object_gives_exactly_the_whole_box():
    whole = [1000.0, 500.0, 100.0, 40.0, 0.0]  # x 950..1050 crosses A's right edge at 1024
    fragment = [987.0, 500.0, 74.0, 40.0, 0.0]  # what tile A sees: x 950..1024
    # the fragment scores higher: plain NMS (IoU 0.74) would keep it instead of the whole object
    det = _det([fragment, whole], [0, 0], [0.9, 0.8], [0, 0])
    out = _merge(det, [0, 1], [WIN_A, WIN_B], [0, 0])
    assert len(out) == 1
    assert torch.allclose(out.boxes.tensor[0], torch.tensor(whole))
    plain = merge_single(det)
    assert torch.allclose(plain.boxes.tensor[0], torch.tensor(fragment))  # what the border rule prevents


def test_rotated_straddling_object():
    whole = [1010.0, 300.0, 120.0, 30.0, math.pi / 6]
    fragment = [985.0, 286.0, 70.0, 30.0, math.pi / 6]  # the part left of x = 1024
    det = _det([fragment, whole], [2, 2], [0.95, 0.6], [0, 0])
    out = _merge(det, [0, 1], [WIN_A, WIN_B], [0, 0])
    assert len(out) == 1 and torch.allclose(out.boxes.tensor[0], torch.tensor(whole))


def test_fragment_kept_when_no_neighbour_ran():
    fragment = [987.0, 500.0, 74.0, 40.0, 0.0]
    out = _merge(_det([fragment], [0], [0.9], [0]), [0], [WIN_A], [0])
    assert len(out) == 1  # tile B was not run (guided zoom): the fragment is all there is


def test_image_edge_is_not_a_tile_border():
    at_edge = [1790.0, 500.0, 20.0, 20.0, 0.0]  # touches the image's right edge inside tile B
    in_overlap = [900.0, 100.0, 20.0, 20.0, 0.0]  # clear of every border: seen by both tiles
    det = _det([at_edge, in_overlap, in_overlap], [0, 0, 0], [0.9, 0.8, 0.7], [0, 0, 0])
    out = _merge(det, [1, 0, 1], [WIN_A, WIN_B], [0, 0])
    assert len(out) == 2
    assert sorted(out.boxes.tensor[:, 0].tolist()) == [900.0, 1790.0]


def test_large_object_fragments_suppressed_by_coarse_whole():
    # a 600-px object: no level-0 tile sees it whole (overlap 248), level 1 does
    whole = [1000.0, 500.0, 600.0, 60.0, 0.0]  # x 700..1300
    frag_a = [862.0, 500.0, 324.0, 60.0, 0.0]  # x 700..1024 (tile A)
    frag_b = [1038.0, 500.0, 524.0, 60.0, 0.0]  # x 776..1300 (tile B)
    windows = [WIN_A, WIN_B, (0.0, 0.0, 1800.0, 1000.0)]
    det = _det([frag_a, frag_b, whole], [0, 0, 0], [0.9, 0.85, 0.5], [0, 0, 1])
    out = _merge(det, [0, 1, 2], windows, [0, 0, 1])
    assert len(out) == 1 and torch.allclose(out.boxes.tensor[0], torch.tensor(whole))
    assert out.levels.tolist() == [1]


def test_cross_level_nms_and_classwise():
    a0 = [300.0, 300.0, 60.0, 30.0, 0.1]
    a1 = [302.0, 301.0, 62.0, 30.0, 0.12]  # same object found at level 1 (40 level px long: kept)
    other_class = [300.0, 300.0, 60.0, 30.0, 0.1]
    windows = [WIN_A, (0.0, 0.0, 1800.0, 1000.0)]
    det = _det([a0, a1, other_class], [0, 0, 1], [0.7, 0.9, 0.5], [0, 1, 0])
    out = _merge(det, [0, 1, 0], windows, [0, 1], coarse_min_size=0)
    assert sorted(out.labels.tolist()) == [0, 1]
    assert out.scores.tolist() == pytest.approx([0.9, 0.5])


def test_coarse_small_objects_dropped_where_a_finer_tile_covers_them():
    small = [300.0, 300.0, 40.0, 20.0, 0.0]  # 20 px long at level 1
    big = [600.0, 600.0, 200.0, 100.0, 0.0]  # 100 px long at level 1
    windows = [WIN_A, (0.0, 0.0, 1800.0, 1000.0)]
    det = _det([small, big], [0, 1], [0.9, 0.9], [1, 1])
    out = _merge(det, [1, 1], windows, [0, 1])
    assert out.labels.tolist() == [1]
    # no finer tile over it: the small coarse detection stays
    det = _det([[1500.0, 300.0, 40.0, 20.0, 0.0]], [0], [0.9], [1])
    assert len(_merge(det, [1], windows, [0, 1])) == 1


def test_containment_matches_bruteforce():
    g = np.random.default_rng(3)
    n = 60
    rows = np.column_stack([g.uniform(0, 200, n), g.uniform(0, 200, n), g.uniform(5, 80, n),
                            g.uniform(5, 40, n), g.uniform(-1.5, 1.5, n)])
    det = Detections(torch.tensor(rows, dtype=torch.float32), g.integers(0, 2, n), g.random(n))
    keep = containment_suppress(det, 0.8)
    iof = rotated_iof(det.boxes.tensor, det.boxes.tensor)
    expected = torch.ones(n, dtype=torch.bool)
    for i in range(n):
        for j in range(n):
            if (i != j and det.labels[i] == det.labels[j] and det.scores[j] > det.scores[i]
                    and det.boxes.area()[i] <= det.boxes.area()[j] and iof[i, j] >= 0.8):
                expected[i] = False
    assert torch.equal(keep, expected)
    assert (~expected).sum() > 0


def test_empty():
    out = _merge(Detections.empty(), [], [WIN_A], [0])
    assert len(out) == 0
