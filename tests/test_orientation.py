"""A tile's dominant direction (#12, ``sgg.detectors.orientation``) and the ``align`` test-time view: stripes at
a known angle give that angle back, turning by it lays them along the axes, nodata corners do not vote, and the
view runs only on tiles whose layout lies off the axes, voting as a turned view does."""

from __future__ import annotations

import math

import pytest
import shapely
import torch

from sgg.detectors.orientation import align_angle, dominant_direction
from sgg.detectors.tta import TTADetector, parse_views, turn_images
from sgg.ops.conversions import box_to_shapely
from tests.test_tta import MomentDetector, _rotated_rect_image


def _stripes(deg: float, size: int = 160, period: float = 12.0) -> torch.Tensor:
    """(1,3,S,S) square-wave stripes whose edges run at ``deg`` degrees (pixel frame, y down)."""
    y, x = torch.meshgrid(torch.arange(size).double(), torch.arange(size).double(), indexing="ij")
    p = math.radians(deg)
    across = -math.sin(p) * x + math.cos(p) * y
    return (0.5 + 0.4 * torch.sign(torch.sin(2 * math.pi * across / period))).float().expand(1, 3, size, size).clone()


@pytest.mark.parametrize("deg", [0, 10, 22, 30, 45, 60, 75, 89])
def test_stripes_give_their_direction_and_turning_by_it_aligns_them(deg):
    img = _stripes(deg)
    d, c = dominant_direction(img)
    err = abs((math.degrees(float(d)) - deg + 45) % 90 - 45)  # modulo the axes
    assert err < 1.5 and float(c) > 0.8
    d2, c2 = dominant_direction(turn_images(img, float(d)))
    off = min(math.degrees(float(d2)), 90 - math.degrees(float(d2)))
    assert off < 1.5 and float(c2) > 0.8  # the turned canvas's zero corners do not pull it off


def test_a_direction_and_its_right_angle_count_alike_and_noise_has_none():
    a, b = _stripes(30), _stripes(120)
    assert float(dominant_direction(a)[0]) == pytest.approx(float(dominant_direction(b)[0]), abs=0.02)
    noise = torch.rand(2, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    assert dominant_direction(noise)[1].max() < 0.1


def test_nodata_edges_do_not_vote():
    flat = torch.full((1, 3, 120, 120), 0.5)
    turned = turn_images(flat, math.radians(30))  # only edges: the canvas's border with its zero corners
    d, c = dominant_direction(turned)
    assert float(c) == 0.0 and float(d) == 0.0
    d, c = dominant_direction(turned, margin=0)  # unmasked, the border would read as a strong layout at −30°
    assert float(c) > 0.5 and math.degrees(float(d)) == pytest.approx(90 - 30, abs=2)
    assert dominant_direction(torch.zeros(1, 3, 32, 32))[1].item() == 0.0  # an all-nodata tile


def test_align_angle_gates_on_axis_distance_and_coherence():
    batch = torch.cat([_stripes(40), _stripes(5), torch.rand(1, 3, 160, 160, generator=torch.Generator().manual_seed(1))])
    got = align_angle(batch, min_degrees=15, min_coherence=0.3)
    assert got[0] == pytest.approx(math.radians(40), abs=0.03) and got[1] is None and got[2] is None


class CountingMoments(MomentDetector):
    """MomentDetector that records the (H, W) of every image it is given."""

    def __init__(self, ghost: bool = False):
        super().__init__(ghost)
        self.seen: list[tuple[int, int]] = []

    def forward(self, images):
        self.seen += [tuple(images.shape[-2:])] * len(images)
        return super().forward(images)


def _grey_rect(theta: float) -> torch.Tensor:
    """``_rotated_rect_image`` on a grey ground (an all-zero pixel is nodata to the direction estimate)."""
    return _rotated_rect_image(theta=theta) * 0.7 + 0.2


def _iou(a, b):
    a, b = box_to_shapely(a), box_to_shapely(b)
    return float(shapely.area(shapely.intersection(a, b))[0] / shapely.area(shapely.union(a, b))[0])


def test_align_view_turns_an_off_axis_tile_and_skips_an_aligned_one():
    assert parse_views("auto") == ("identity", "align") and parse_views("d2,align")[-1] == "align"
    tilted = _grey_rect(0.6)  # 34° off the x axis: the only edges in the tile
    model = CountingMoments()
    out = TTADetector(model, "auto")(tilted)[0]
    assert len(model.seen) == 2 and model.seen[1] != model.seen[0]  # a grown, turned canvas
    plain = MomentDetector()(tilted)[0]
    assert len(out) == 1 and float(out.scores[0]) == pytest.approx(0.9)  # found in both views
    assert _iou(plain.boxes.tensor, out.boxes.tensor) > 0.9

    model = CountingMoments(ghost=True)
    out = TTADetector(model, "auto")(_grey_rect(0.0))[0]
    assert len(model.seen) == 1  # along the axes already: detected once
    assert sorted(out.scores.tolist()) == pytest.approx([0.8, 0.9])  # a skipped view does not halve scores


def test_align_view_in_a_batch_runs_per_tile():
    batch = torch.cat([_grey_rect(0.6), _grey_rect(0.0), _grey_rect(-0.7)])
    model = CountingMoments()
    outs = TTADetector(model, "identity,align")(batch)
    assert len(model.seen) == 3 + 2 and len(outs) == 3
    for img, out in zip(batch, outs, strict=True):
        assert len(out) == 1 and _iou(MomentDetector()(img[None])[0].boxes.tensor, out.boxes.tensor) > 0.9
