"""GIS exports checked with second tools: ogrinfo, sqlite3, geopandas, pyarrow, rasterio (sgg.graph)."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from sgg.graph import export, read
from sgg.structures import Detections, GeoReference, PairSet, SceneGraph, Vocabulary

VOCAB = Vocabulary(("ship", "harbor", "car"), ("docked at", "near"))


@pytest.fixture(scope="module")
def rgb_scene(real_dir):
    """Boxes on RGB.byte.tif (UTM 18N) with the raster's own CRS and transform."""
    rasterio = pytest.importorskip("rasterio")
    with rasterio.open(real_dir / "rasterio" / "RGB.byte.tif") as src:
        crs_wkt, transform, size = src.crs.to_wkt(), src.transform, (src.width, src.height)
    g = torch.Generator().manual_seed(3)
    n = 30
    boxes = torch.cat([torch.rand(n, 2, generator=g) * torch.tensor([700.0, 650.0]) + 40,
                       torch.rand(n, 2, generator=g) * 30 + 4, (torch.rand(n, 1, generator=g) - 0.5) * math.pi], 1)
    boxes[:5, 4] = 0.0  # a few axis-aligned boxes: corners known by hand
    det = Detections(boxes, torch.randint(0, 3, (n,), generator=g), torch.rand(n, generator=g))
    pairs = torch.stack([torch.arange(0, n - 1), torch.arange(1, n)], 1)
    sg = SceneGraph(det, PairSet(pairs), predicate_labels=torch.randint(1, 3, (n - 1,), generator=g),
                    vocabulary=VOCAB, georef=GeoReference(crs_wkt, tuple(transform)[:6], source="RGB.byte.tif"),
                    image_path="RGB.byte.tif", image_size=size)
    return sg, transform


def _hand_corners(box) -> np.ndarray:
    cx, cy, w, h, a = (float(v) for v in box)
    c, s = math.cos(a), math.sin(a)
    return np.array([[cx + sx * w / 2 * c - sy * h / 2 * s, cy + sx * w / 2 * s + sy * h / 2 * c]
                     for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))])


def _same_vertices(poly, expected: np.ndarray, tol: float) -> bool:
    got = np.asarray(poly.exterior.coords)[:-1]
    d = np.linalg.norm(got[:, None, :] - expected[None, :, :], axis=2)
    return got.shape == expected.shape and bool((d.min(1) < tol).all() and (d.min(0) < tol).all())


def test_gpkg_footprints_on_raster_transform(tmp_path, rgb_scene):
    gpd = pytest.importorskip("geopandas")
    sg, transform = rgb_scene
    path = export(sg, tmp_path / "rgb.gpkg")
    objects = gpd.read_file(path, layer="objects")
    assert objects.crs.to_epsg() == 32618 and len(objects) == sg.num_objects
    for i in range(sg.num_objects):
        px = _hand_corners(sg.detections.boxes.tensor[i])
        mx = np.array([transform @ (float(x), float(y)) for x, y in px])  # rasterio's affine
        assert _same_vertices(objects.geometry.iloc[i], mx, 1e-3), i
    # the first boxes are axis-aligned: their map extent is the transform of the pixel envelope
    b = sg.detections.boxes.tensor[0].tolist()
    x0, y0 = transform @ (b[0] - b[2] / 2, b[1] - b[3] / 2)
    x1, y1 = transform @ (b[0] + b[2] / 2, b[1] + b[3] / 2)
    assert np.allclose(objects.geometry.iloc[0].bounds, (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), atol=1e-4)
    rel = gpd.read_file(path, layer="relations")
    assert len(rel) == len(sg.pairs) and rel.crs.to_epsg() == 32618
    start = np.asarray(rel.geometry.iloc[0].coords)[0]
    assert np.allclose(start, transform @ tuple(sg.detections.boxes.tensor[0, :2].tolist()), atol=1e-4)
    assert list(rel["predicate"]) == [VOCAB.predicates[i] for i in sg.predicate_labels.tolist()]


def test_gpkg_version_and_style(tmp_path, rgb_scene):
    sg, _ = rgb_scene
    path = export(sg, tmp_path / "rgb.gpkg")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47  # 'GPKG'
        assert db.execute("PRAGMA user_version").fetchone()[0] == 10200  # GeoPackage 1.2
        contents = dict(db.execute("SELECT table_name, data_type FROM gpkg_contents").fetchall())
        assert contents == {"objects": "features", "relations": "features", "run": "attributes",
                            "layer_styles": "attributes"}
        rows = db.execute("SELECT f_table_name, f_geometry_column, styleName, styleQML, useAsDefault "
                          "FROM layer_styles").fetchall()
        run = dict(db.execute("SELECT key, value FROM run").fetchall())
        geom_col = db.execute("SELECT column_name FROM gpkg_geometry_columns WHERE table_name='objects'").fetchone()[0]
    assert [r[0] for r in rows] == ["objects", "relations"] and rows[0][1] == geom_col and rows[0][4] == 1
    root = ET.fromstring(rows[0][3].split("\n", 1)[1])  # skip the DOCTYPE line
    renderer = root.find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == "class"
    cats = [c.get("value") for c in renderer.find("categories")]
    present = {VOCAB.objects[i] for i in sg.detections.labels.tolist()}
    assert set(cats) == present and len(renderer.find("symbols")) == len(cats)
    assert run["coordinates"] == "map" and run["crs_wkt"] == sg.georef.crs_wkt
    assert json.loads(run["vocabulary"]) == VOCAB.to_dict()
    assert json.loads(run["transform"]) == list(sg.georef.transform)


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="ogrinfo (gdal-bin) not installed")
def test_gpkg_with_ogrinfo(tmp_path, rgb_scene):
    sg, _ = rgb_scene
    path = export(sg, tmp_path / "rgb.gpkg", topology=True, distance=10)
    n_rel = len(read(path).pairs)
    out = subprocess.run(["ogrinfo", "-ro", "-so", "-al", str(path)], capture_output=True, text=True, check=True)
    assert "Warning" not in out.stderr and "ERROR" not in out.stderr, out.stderr
    layers = {}
    for block in out.stdout.split("Layer name: ")[1:]:
        name = block.split("\n", 1)[0].strip()
        count = int(block.split("Feature Count: ")[1].split("\n", 1)[0])
        layers[name] = (count, block)
    assert set(layers) >= {"objects", "relations", "run"}
    assert layers["objects"][0] == sg.num_objects
    assert layers["relations"][0] >= n_rel == len(sg.pairs)
    assert layers["run"][0] > 5
    for name in ("objects", "relations"):
        block = layers[name][1]
        assert 'ID["EPSG",32618]' in block or "UTM zone 18N" in block
    assert "Geometry: Polygon" in layers["objects"][1] and "Geometry: Line String" in layers["relations"][1]


def test_gpkg_pixel_coordinates(tmp_path):
    det = Detections(torch.tensor([[10.0, 20.0, 8.0, 4.0, 0.0]]), torch.tensor([0]))
    sg = SceneGraph(det, vocabulary=VOCAB, image_size=(100, 100))
    path = export(sg, tmp_path / "px.gpkg")
    with sqlite3.connect(path) as db:
        srs = db.execute("SELECT srs_id FROM gpkg_geometry_columns WHERE table_name='objects'").fetchone()[0]
        run = dict(db.execute("SELECT key, value FROM run").fetchall())
    assert srs == -1 and run["coordinates"] == "pixel"
    gpd = pytest.importorskip("geopandas")
    obj = gpd.read_file(path, layer="objects")
    assert obj.crs is None or "Undefined Cartesian" in obj.crs.to_wkt()  # GeoPackage's "no CRS" entry
    assert np.allclose(obj.geometry.iloc[0].bounds, (6.0, -22.0, 14.0, -18.0))  # (column, -row): QGIS's image frame
    assert obj["cy"].iloc[0] == 20.0


def test_geojson_rfc7946_wgs84(tmp_path, rgb_scene):
    gpd = pytest.importorskip("geopandas")
    from rasterio.warp import transform as warp

    sg, transform = rgb_scene
    path = export(sg, tmp_path / "rgb.geojson")
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc  # RFC 7946: WGS 84 lon/lat, no crs member
    kinds = [f["properties"]["kind"] for f in doc["features"]]
    assert kinds.count("object") == sg.num_objects and kinds.count("relation") == len(sg.pairs)
    assert kinds.count("run") == 1
    first = next(f for f in doc["features"] if f["properties"]["kind"] == "object")
    ring = np.asarray(first["geometry"]["coordinates"][0])
    px = _hand_corners(sg.detections.boxes.tensor[first["properties"]["id"]])
    mx = np.array([transform @ (float(x), float(y)) for x, y in px])
    lon, lat = warp("EPSG:32618", "EPSG:4326", mx[:, 0].tolist(), mx[:, 1].tolist())
    d = np.linalg.norm(ring[:-1, None, :] - np.stack([lon, lat], 1)[None], axis=2)
    assert (d.min(1) < 1e-6).all()  # RFC 7946 writes 7 decimals
    native = export(sg, tmp_path / "native.geojson", crs="native")
    assert gpd.read_file(native).crs.to_epsg() == 32618


def test_parquet_files_and_metadata(tmp_path, rgb_scene):
    pq = pytest.importorskip("pyarrow.parquet")
    gpd = pytest.importorskip("geopandas")
    sg, _ = rgb_scene
    path = export(sg, tmp_path / "rgb.parquet", crs="EPSG:3857")
    rel = tmp_path / "rgb.relations.parquet"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rgb.parquet", "rgb.qml", "rgb.relations.parquet",
                                                           "rgb.relations.qml"]  # + QGIS default styles
    md = pq.read_schema(path).metadata
    geo = json.loads(md[b"geo"])
    assert geo["primary_column"] == "geometry" and geo["columns"]["geometry"]["geometry_types"] == ["Polygon"]
    assert json.loads(md[b"sgg"])["crs_wkt"] == sg.georef.crs_wkt
    assert gpd.read_parquet(path).crs.to_epsg() == 3857 and gpd.read_parquet(rel).crs.to_epsg() == 3857
    assert read(path).georef == sg.georef  # the native georeference survives a reprojected export


def test_atomic_write_keeps_old_file(tmp_path, rgb_scene, monkeypatch):
    from sgg.graph import gis

    sg, _ = rgb_scene
    path = export(sg, tmp_path / "rgb.gpkg")
    before = path.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(gis, "style_frame", boom)  # fail after objects/relations/run were written
    with pytest.raises(RuntimeError, match="disk full"):
        export(sg, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rgb.gpkg"]
    monkeypatch.setattr(gis, "_write_parquet", boom)
    with pytest.raises(RuntimeError):
        export(sg, tmp_path / "new.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rgb.gpkg"]


def _system_qgis() -> str | None:
    """A Python interpreter with PyQGIS (Debian: python3-qgis), if this machine has one."""
    for exe in ("/usr/bin/python3", shutil.which("python3")):
        if exe and subprocess.run([exe, "-c", "import qgis.core"], capture_output=True, check=False).returncode == 0:
            return exe
    return None


QGIS_SCRIPT = """
import os, sys, json
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from qgis.core import QgsApplication, QgsVectorLayer
app = QgsApplication([], False); app.initQgis()
lyr = QgsVectorLayer(sys.argv[1] + "|layername=objects", "objects", "ogr")
r = lyr.renderer()
print(json.dumps({"valid": lyr.isValid(), "count": lyr.featureCount(), "crs": lyr.crs().authid(),
                  "renderer": r.type(), "attr": r.classAttribute() if r.type() == "categorizedSymbol" else None,
                  "categories": [c.value() for c in r.categories()] if r.type() == "categorizedSymbol" else []}))
app.exitQgis()
"""


def test_qgis_opens_gpkg_coloured_by_class(tmp_path, rgb_scene):
    exe = _system_qgis()
    if exe is None:
        pytest.skip("PyQGIS (python3-qgis) not installed")
    sg, _ = rgb_scene
    path = export(sg, tmp_path / "rgb.gpkg")
    out = subprocess.run([exe, "-c", QGIS_SCRIPT, str(path)], capture_output=True, text=True, timeout=120, check=False)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["valid"] and info["count"] == sg.num_objects and info["crs"] == "EPSG:32618"
    assert info["renderer"] == "categorizedSymbol" and info["attr"] == "class"  # the stored default style
    assert set(info["categories"]) == {VOCAB.objects[i] for i in sg.detections.labels.tolist()}


def test_run_table_names_what_the_graph_is(tmp_path, rgb_scene):
    """The GeoPackage run record says annotation, detection (detector output) or prediction."""
    sg, _ = rgb_scene
    det_only = sg.replace(pairs=sg.pairs.__class__.empty(), metadata={**sg.metadata, "detector": "HODNet"})
    scored = det_only.replace(pairs=sg.pairs, predicate_scores=torch.full((len(sg.pairs), VOCAB.num_predicates), 0.1))
    kinds = {}
    for name, g in (("ann", sg), ("det", det_only), ("pred", scored)):
        path = export(g, tmp_path / f"{name}.gpkg", top_k=10) if name == "pred" else export(g, tmp_path / f"{name}.gpkg")
        with sqlite3.connect(path) as db:
            kinds[name] = dict(db.execute("SELECT key, value FROM run").fetchall())["kind"]
    assert kinds == {"ann": "annotation", "det": "detection", "pred": "prediction"}
