"""One definition of "this scene is on a map" (``sgg.graph.tables.scene_crs`` on ``GeoReference.has_crs``),
so the table writers, the GeoJSON refusal and the QGIS project never disagree about a scene."""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zipfile

import pyproj
import pytest
import torch

from sgg.errors import SggInputError
from sgg.graph import export
from sgg.graph.qgis import write_scene_project
from sgg.graph.tables import scene_crs, scene_meta
from sgg.structures import Detections, GeoReference, SceneGraph, Vocabulary

UTM = pyproj.CRS.from_epsg(32633).to_wkt()
TRANSFORM = (0.5, 0.0, 400000.0, 0.0, -0.5, 5000000.0)


def _scene(georef):
    det = Detections(torch.tensor([[10.0, 10, 8, 4, 0], [40, 20, 6, 6, 0]]), [0, 1], [0.9, 0.8])
    return SceneGraph(det, vocabulary=Vocabulary(("car", "boat"), ("near",)), georef=georef, image_size=(64, 48))


CASES = [  # georeference -> map CRS expected
    (None, None),
    (GeoReference(None, TRANSFORM), None),
    (GeoReference("", TRANSFORM), None),  # an empty WKT (e.g. read back from a table) is no CRS
    (GeoReference(UTM, TRANSFORM), UTM),
]


@pytest.mark.parametrize("georef,crs", CASES)
def test_scene_crs_and_every_writer_agree(tmp_path, georef, crs):
    sg = _scene(georef)
    assert scene_crs(sg) == crs
    assert (georef is not None and georef.has_crs) == (crs is not None)
    assert georef is None or georef.is_pixel == (crs is None)
    meta = scene_meta(sg)
    assert meta["coordinates"] == ("pixel" if crs is None else "map")
    assert (meta["pixel_frame"] is None) == (crs is not None)
    if crs is None:
        with pytest.raises(SggInputError, match="no CRS"):
            export(sg, tmp_path / "s.geojson")
    else:
        export(sg, tmp_path / "s.geojson")
    gpkg = export(sg, tmp_path / "s.gpkg")
    proj = write_scene_project(tmp_path / "s.qgz", gpkg, sg)
    with zipfile.ZipFile(proj) as z:
        root = ET.fromstring(z.read(next(n for n in z.namelist() if n.endswith(".qgs"))))
    wkt = root.findtext("projectCrs/spatialrefsys/wkt")
    assert (wkt == "") == (crs is None)
    assert root.find("properties/SpatialRefSys/ProjectionsEnabled").text == ("0" if crs is None else "1")
