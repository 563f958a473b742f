"""Reading a raster never writes beside it: GDAL's PAM would save statistics computed on a dataset to a new
``<file>.aux.xml`` in the user's image folder when the dataset closes (sgg.io.raster.open_dataset)."""

import os
import shutil

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from sgg.io import write_geotiff
from sgg.io.raster import RasterScene, open_dataset


def _dirty(ds) -> None:
    """What GDAL keeps in PAM: approximate statistics of band 1 (as QGIS or `gdalinfo -stats` compute)."""
    ds.stats(indexes=1, approx=True)


@pytest.fixture
def input_dir(tmp_path):
    src = write_geotiff(tmp_path / "made" / "s.tif", np.random.default_rng(0).integers(0, 255, (300, 400, 3),
                        dtype=np.uint8), crs="EPSG:32633", transform=(0.5, 0, 4e5, 0, -0.5, 5e6), overviews=False)
    d = tmp_path / "input"
    d.mkdir()
    shutil.copy(src, d / "s.tif")  # a copied GeoTIFF, as a user's file would be
    return d


def test_reading_leaves_no_new_file(input_dir, monkeypatch):
    before = sorted(os.listdir(input_dir))
    with RasterScene.open(input_dir / "s.tif") as scene:
        scene.statistics()
        scene.read(level=1)
        _dirty(scene._ds)
        # the prefetching readers open handles of their own: dirty those too
        read_spec = RasterScene._read_spec

        def dirty_read(self, spec, ds=None):
            if ds is not None:
                _dirty(ds)
            return read_spec(self, spec, ds)

        monkeypatch.setattr(RasterScene, "_read_spec", dirty_read)
        assert len(list(scene.tiles(128, 0, prefetch=2))) == 12
    assert sorted(os.listdir(input_dir)) == before == ["s.tif"]


def test_plain_rasterio_would_have_written_a_sidecar(input_dir):
    """The control: the same statistics through a default rasterio handle do write ``s.tif.aux.xml``."""
    with rasterio.open(input_dir / "s.tif") as ds:
        _dirty(ds)
    assert (input_dir / "s.tif.aux.xml").exists()
    os.remove(input_dir / "s.tif.aux.xml")
    with open_dataset(input_dir / "s.tif") as ds:
        _dirty(ds)
    assert os.listdir(input_dir) == ["s.tif"]


def test_an_existing_sidecar_is_still_read(tmp_path):
    """A PNG's CRS lives in its ``.aux.xml``: that sidecar is read as before (and not rewritten)."""
    png = tmp_path / "g.png"
    with rasterio.open(png, "w", driver="PNG", width=16, height=8, count=3, dtype="uint8", crs="EPSG:32633",
                       transform=from_origin(4e5, 5e6, 0.5, 0.5)) as dst:
        dst.write(np.full((3, 8, 16), 7, np.uint8))
    aux = tmp_path / "g.png.aux.xml"
    text = aux.read_text()
    with RasterScene.open(png) as scene:
        scene.statistics()
        assert scene.crs.to_epsg() == 32633 and scene.transform.a == 0.5
    assert aux.read_text() == text and sorted(os.listdir(tmp_path)) == ["g.png", "g.png.aux.xml"]
