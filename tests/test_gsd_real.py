"""GSD-aware detection on real rasters (#12): a 300 m Landsat GeoTIFF is recognised as far coarser than the
model's training range (one warning), and a DOTA label's ``gsd:`` header (given, or found beside the image)
drives the pyramid level of its PNG."""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image

from sgg.structures import Detections, Vocabulary


@pytest.fixture(scope="module")
def tiny_weights(tiny_detector_file):
    return tiny_detector_file([0.33, 2.0])


def test_sgg_detect_landsat_geotiff_warns_once(real_dir, tiny_weights, tmp_path, capsys):
    from sgg.cli import main
    from sgg.graph import read

    raster = real_dir / "rasterio" / "RGB.byte.tif"  # UTM 18N, 300.04 m pixels
    out = tmp_path / "rgb.scene.json"
    assert main(["detect", str(raster), "--weights", str(tiny_weights), "--out", str(out), "--levels", "2",
                 "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert err.count("far coarser than the model's training range 0.33–2 m") == 1, err
    assert "300.04 m pixels" in err
    assert read(out).metadata["gsd"] == pytest.approx(300.04, abs=0.01)


def test_dota_gsd_header_sets_the_finest_level(tmp_path):
    """What ``scripts/eval_real.py`` does for DOTA images: the label header's GSD (0.116 m, as P0003) starts
    detection two halvings down (0.46 m, inside the model's 0.33–2 m; 1000 px -> one 250-px tile); without
    it, level 0 and a warning."""
    from sgg.datasets import read_dota_labels
    from sgg.detectors.inference import detect_scene

    (tmp_path / "P.txt").write_text("imagesource:GoogleEarth\ngsd:0.116\n10 10 50 10 50 30 10 30 small-vehicle 0\n")
    Image.fromarray(np.zeros((600, 1000, 3), dtype=np.uint8)).save(tmp_path / "P.png")
    gt = read_dota_labels(tmp_path / "P.txt", aliases="dota_to_star")
    assert gt.metadata["gsd"] == pytest.approx(0.116) and gt.image_path.endswith("P.png")

    class Dummy(torch.nn.Module):
        vocabulary = Vocabulary(("car",), ())
        config: ClassVar[dict] = {"gsd_range": [0.33, 2.0]}

        def forward(self, images):
            return [Detections.empty() for _ in range(len(images))]

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        sg = detect_scene(Dummy(), gt.image_path, tile_size=256, overlap=0, zoom="full", progress=False,
                          gsd=gt.metadata["gsd"])
    assert sg.metadata["levels"] == [2] and not [x for x in w if "ground sampling" in str(x.message)]
    assert sg.metadata["gsd_source"] == "argument"
    # without gsd=, the label beside the image is found by itself
    sg = detect_scene(Dummy(), gt.image_path, tile_size=256, overlap=0, zoom="full", progress=False)
    assert sg.metadata["levels"] == [2] and sg.metadata["gsd_source"] == "dota-label"
    assert sg.metadata["gsd_label"] == str(tmp_path / "P.txt") and sg.metadata["gsd"] == pytest.approx(0.116)
    (tmp_path / "P.txt").rename(tmp_path / "other.txt")  # no label: unknown GSD, level 0 and a warning
    with pytest.warns(UserWarning, match="ground sampling distance unknown"):
        sg = detect_scene(Dummy(), gt.image_path, tile_size=256, overlap=0, zoom="full", progress=False)
    assert sg.metadata["levels"][-1] == 0 and sg.metadata["gsd_source"] is None
