"""Tile grid geometry: exact coverage, stated overlaps, flush edges, pyramid levels (no pixels read)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgg.io.tiles import axis_starts, grid_windows, level_shape, num_levels, tile_specs


def _check_axis(length: int, tile: int, overlap: int) -> None:
    starts = axis_starts(length, tile, overlap)
    size = min(tile, length)
    ends = starts + size
    assert starts[0] == 0 and ends[-1] == length  # flush at both edges
    assert np.all(np.diff(starts) > 0) and np.all(ends <= length) and np.all(starts >= 0)
    if length <= tile:
        assert starts.tolist() == [0]
        return
    gaps = ends[:-1] - starts[1:]  # overlap between consecutive windows
    assert np.all(gaps[:-1] == overlap)  # stride is exactly tile - overlap ...
    assert gaps[-1] >= overlap  # ... except the last window, moved back flush with the edge
    # minimal: one window fewer could not cover the axis with the stated overlap
    assert len(starts) == math.ceil((length - tile) / (tile - overlap)) + 1


@pytest.mark.parametrize("length", [1, 5, 511, 512, 513, 1024, 1025, 1848, 2048, 2672, 4000, 20000])
@pytest.mark.parametrize("tile,overlap", [(512, 0), (512, 100), (1024, 200), (1024, 1023), (7, 3)])
def test_axis_starts_cover_exactly(length, tile, overlap):
    _check_axis(length, tile, overlap)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 1100), st.data())
def test_axis_starts_property(length, tile, data):
    overlap = data.draw(st.integers(0, tile - 1))
    _check_axis(length, tile, overlap)


def test_axis_starts_hand_worked():
    assert axis_starts(2048, 1024, 200).tolist() == [0, 824, 1024]
    assert axis_starts(1848, 1024, 200).tolist() == [0, 824]  # exact multiple: last overlap is exactly 200
    assert axis_starts(1024, 1024, 200).tolist() == [0]
    assert axis_starts(300, 1024, 200).tolist() == [0]
    assert axis_starts(10, 4, 0).tolist() == [0, 4, 6]


@pytest.mark.parametrize("width,height", [(1, 1), (300, 200), (1024, 1024), (1111, 1182), (2880, 1200),
                                          (3000, 70), (1848, 2672)])
def test_grid_union_covers_every_pixel(width, height):
    tile, overlap = 1024, 200
    win = grid_windows(width, height, tile, overlap)
    count = np.zeros((height, width), dtype=np.int32)
    for c, r, w, h in win.tolist():
        assert 0 <= c and 0 <= r and c + w <= width and r + h <= height
        assert w == min(tile, width) and h == min(tile, height)  # no padding, no partial tiles
        count[r:r + h, c:c + w] += 1
    assert count.min() >= 1
    assert len(win) == len(axis_starts(width, tile, overlap)) * len(axis_starts(height, tile, overlap))
    # row-major: rows outer
    assert win[:, 1].tolist() == sorted(win[:, 1].tolist())


def test_image_smaller_than_tile_gives_one_tile_of_image_size():
    assert grid_windows(300, 200, 1024, 200).tolist() == [[0, 0, 300, 200]]


def test_levels_halve_until_long_side_fits():
    assert num_levels(1024, 1024, 1024) == 1
    assert num_levels(1025, 10, 1024) == 2
    assert num_levels(20000, 20000, 1024) == 6  # 20000 / 2**5 = 625
    assert num_levels(27860, 31096, 1024) == 6  # STAR's largest scene: 31096 / 32 = 972
    assert level_shape(1001, 7, 1) == (501, 4)  # ceil, as GDAL overviews
    with pytest.raises(ValueError):
        axis_starts(10, 4, 4)


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_tile_specs_level0_windows_cover_image(level):
    width, height = 1001, 777
    specs = tile_specs(width, height, 128, 32, level)
    lw, lh = level_shape(width, height, level)
    count = np.zeros((height, width), dtype=np.int32)
    lcount = np.zeros((lh, lw), dtype=np.int32)
    for s in specs:
        c, r, w, h = s.window
        count[r:r + h, c:c + w] += 1
        lc, lr, lww, lhh = s.level_window
        lcount[lr:lr + lhh, lc:lc + lww] += 1
        fx, fy = s.factor
        assert fx == pytest.approx(width / lw) and fy == pytest.approx(height / lh)
        x0, y0, fw, fh = s.float_window
        assert c <= x0 + 1e-9 and r <= y0 + 1e-9 and x0 + fw <= c + w + 1e-9 and y0 + fh <= r + h + 1e-9
    assert count.min() >= 1 and lcount.min() >= 1
    assert [s.index for s in specs] == list(range(len(specs)))


def test_stripe_order_is_a_permutation_in_stripes():
    from sgg.io.tiles import stripe_order

    perm = stripe_order(3, 5, 2)
    grid = [(i // 5, i % 5) for i in perm.tolist()]  # (row, col)
    assert grid == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1),
                    (0, 2), (0, 3), (1, 2), (1, 3), (2, 2), (2, 3),
                    (0, 4), (1, 4), (2, 4)]
    assert stripe_order(3, 5, 5).tolist() == list(range(15))  # one stripe: row-major
    assert sorted(stripe_order(7, 9, 4).tolist()) == list(range(63))
