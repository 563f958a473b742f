"""Objects centred outside the raster are dropped where detections are made (detect_scene, scenes_from_dota),
so ``sgg detect``, ``sgg infer`` and the Python API agree; the count is in ``metadata['dropped_outside']``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sgg.detectors.inference import detect_scene, scenes_from_dota
from sgg.io import write_geotiff
from sgg.structures import Detections, Vocabulary

VOC = Vocabulary(("thing",), ())


def test_centred_inside_keeps_edge_centres_and_straddling_boxes():
    boxes = torch.tensor([[0.0, 0, 10, 6, 0],     # centre on the corner: kept
                          [80.0, 64, 30, 8, 0],   # centre on the far corner, box mostly outside: kept
                          [80.5, 10, 4, 4, 0],    # just right of the edge: dropped
                          [10.0, -0.1, 4, 4, 0],  # just above: dropped
                          [40.0, 30, 10, 6, 1]])
    det = Detections(boxes, [0, 0, 0, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.5], levels=[0, 1, 2, 3, 4])
    kept = det.centred_inside((80, 64))
    assert kept.scores.tolist() == pytest.approx([0.9, 0.8, 0.5]) and kept.levels.tolist() == [0, 1, 4]
    assert kept.centred_inside((80, 64)) is kept  # nothing to drop: the same object back
    assert len(Detections.empty().centred_inside((5, 5))) == 0


class _Overshoot(torch.nn.Module):
    """A detector that reports one object well inside its tile and one centred on the tile's last pixel
    column: at pyramid level 1 of a 65-px-wide raster that column maps past level-0 x = 65."""

    def __init__(self) -> None:
        super().__init__()
        self.vocabulary = VOC
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images: torch.Tensor) -> list[Detections]:
        boxes = torch.tensor([[15.0, 10, 12, 8, 0], [32.9, 10, 12, 8, 0]])
        return [Detections(boxes, [0, 0], [0.9, 0.8]) for _ in images]


def _raster(tmp_path, width=64):
    img = np.zeros((48, width, 3), dtype=np.uint8)
    return write_geotiff(tmp_path / "r.tif", img, crs="EPSG:32633", transform=(0.5, 0, 4e5, 0, -0.5, 5e6),
                         overviews=False)


def test_detect_scene_drops_objects_centred_outside(tmp_path):
    sg = detect_scene(_Overshoot(), _raster(tmp_path, 65), tile_size=64, overlap=0, levels=[1], zoom="full",
                      progress=False)
    assert len(sg.detections) == 1 and 25 < float(sg.detections.boxes.tensor[0, 0]) < 35
    assert sg.metadata["dropped_outside"] == 1 and sg.image_size == (65, 48)


def test_scenes_from_dota_drops_objects_centred_outside(tmp_path):
    from sgg.datasets.dota import write_dota_results

    star = Vocabulary.star()
    ship = star.object_index("ship")
    det = Detections(torch.tensor([[40.0, 30, 10, 6, 0], [70.0, 30, 10, 6, 0]]), [ship, ship], [0.9, 0.8])
    write_dota_results({"r": det}, tmp_path / "res", star)
    (sg,) = scenes_from_dota(tmp_path / "res", raster=_raster(tmp_path)).values()
    assert sg.detections.boxes.tensor[:, 0].tolist() == [40.0] and sg.metadata["dropped_outside"] == 1
    (free,) = scenes_from_dota(tmp_path / "res").values()  # no raster, no size: nothing can be judged outside
    assert len(free.detections) == 2 and "dropped_outside" not in free.metadata
