"""sgg's layers, styles and project file opened and rendered by real QGIS (Debian's python3-qgis, headless).

Runs when the system Python has PyQGIS (``apt-get install python3-qgis``; ``.ci/run`` installs it): the
render script runs in a subprocess, the PNG is read back and checked pixel by pixel on a synthetic scene
whose colours follow from the style rules (fill alpha by score over a flat grey raster).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from sgg.graph import export
from sgg.graph.qgis import write_scene_project
from sgg.graph.styles import class_colour, fill_alpha, predicate_colour
from sgg.structures import Detections, GeoReference, PairSet, SceneGraph, Vocabulary

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"
GREY = 128
W, H = 320, 240
VOCAB = Vocabulary(("airplane", "car", "boat"), ("parked on", "near"))
# cx, cy, w, h, angle (pixels); the last one scores below the output threshold
BOXES = [[60.0, 60, 60, 30, 0.3], [250, 70, 40, 40, 0], [80, 180, 50, 20, -0.5], [240, 180, 40, 40, 0]]
LABELS, SCORES = [0, 1, 2, 0], [0.9, 0.8, 0.95, 0.1]
# a point inside each kept box, in box-local (along w, along h) fractions, away from lines and labels
PROBES = {0: (-0.25, -0.25), 1: (0.25, -0.25), 2: (-0.25, 0.25)}


def _has_pyqgis() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True, timeout=60, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = [
    pytest.mark.skipif(not _has_pyqgis(), reason="PyQGIS not importable by /usr/bin/python3 (apt-get install python3-qgis)"),
    pytest.mark.filterwarnings("ignore:Dataset has no geotransform"),
    pytest.mark.filterwarnings("ignore:Use `@` matmul"),
]


def _scene(tmp: Path, georef: bool):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    tr = from_origin(500000.0, 4000000.0, 2.0, 2.0)  # 2 m pixels: labels stay off at full view
    path = tmp / ("scene.tif" if georef else "scene.png")
    kw = {"crs": "EPSG:32618", "transform": tr} if georef else {}
    with rasterio.open(path, "w", driver="GTiff" if georef else "PNG", width=W, height=H, count=3, dtype="uint8",
                       **kw) as dst:
        dst.write(np.full((3, H, W), GREY, np.uint8))
    ps = torch.zeros(3, 3)
    ps[0, 1], ps[1, 2], ps[2, 1] = 0.9, 0.8, 0.9  # airplane→car, boat→car, low-score airplane→car
    geo = GeoReference(rasterio.crs.CRS.from_epsg(32618).to_wkt(), tuple(tr)[:6]) if georef else None
    det = Detections(torch.tensor(BOXES), torch.tensor(LABELS), torch.tensor(SCORES))
    sg = SceneGraph(det, PairSet(torch.tensor([[0, 1], [2, 1], [3, 1]])), predicate_scores=ps, vocabulary=VOCAB,
                    georef=geo, image_path=str(path), image_size=(W, H),
                    metadata={"score_threshold": 0.05})
    gpkg = export(sg, tmp / "scene.gpkg", output_threshold=0.3, topology=True, distance=400)
    project = write_scene_project(tmp / "scene.qgz", gpkg, sg)
    return sg, path, gpkg, project


def _render(tmp: Path, *args: str, name: str = "render") -> tuple[dict, np.ndarray]:
    import rasterio

    png, rep = tmp / f"{name}.png", tmp / f"{name}.json"
    # Qt and QGIS write their temporary folders under TMPDIR: keep them in the test's own directory
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(tmp), TMPDIR=str(tmp))
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([SYSTEM_PYTHON, str(ROOT / "scripts" / "render_qgis.py"), *args, "--out", str(png),
                           "--report", str(rep)], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with rasterio.open(png) as src:
        img = src.read()[:3].transpose(1, 2, 0).astype(int)
    return json.loads(rep.read_text()), img


def _probe_pixel(i: int) -> tuple[int, int]:
    cx, cy, w, h, a = BOXES[i]
    u, v = PROBES[i]
    x = cx + u * w * math.cos(a) - v * h * math.sin(a)
    y = cy + u * w * math.sin(a) + v * h * math.cos(a)
    return int(round(x)), int(round(y))


@pytest.mark.parametrize("georef", [False, True], ids=["pixel-frame", "utm"])
def test_project_renders_in_qgis(tmp_path, georef):
    _, raster, _, project = _scene(tmp_path, georef)
    rep, img = _render(tmp_path, "--project", str(project), "--width", str(W))
    assert rep["project_read"] and not rep["errors"]
    names = [lyr["name"] for lyr in rep["layers"]]
    assert names == ["relations", "objects", raster.stem]  # top first: arrows over footprints over the image
    assert all(lyr["valid"] for lyr in rep["layers"])
    assert rep["project_crs_valid"] is georef and (rep["project_crs"] == "EPSG:32618") is georef
    rel, obj, ras = rep["layers"]
    assert obj["features"] == 3 and obj["renderer"] == "categorizedSymbol"  # the 0.1 object is not written
    assert obj["legend"] == ["airplane", "car", "boat"]
    assert rel["features"] == 2 + 3 and rel["renderer"] == "RuleRenderer"  # 2 learned + 3 topology edges
    assert rel["legend"] == ["parked on", "near", "topology (from geometry)"]
    assert obj["labels_enabled"] and rel["labels_enabled"]
    assert ras["type"] == "raster" and ras["renderer"] == "multibandcolor"
    full = [500000.0, 4000000.0 - 2 * H, 500000.0 + 2 * W, 4000000.0] if georef else [0.0, -H, W, 0.0]
    assert np.allclose(rep["rendered_extent"], full)  # zoomed to the scene: one PNG pixel per raster pixel
    assert img.shape == (H, W, 3)

    # footprints land on the objects: the probe colour is the class fill (alpha by score) over the grey
    for i, (x, y) in ((i, _probe_pixel(i)) for i in PROBES):
        a = fill_alpha(SCORES[i]) / 255.0
        want = np.array(class_colour(LABELS[i])) * a + GREY * (1 - a)
        assert np.abs(img[y, x] - want).max() <= 6, (i, img[y, x].tolist(), want.round().tolist())
    # the base image shows where there is nothing, and where the dropped low-score object was
    for x, y in ((300, 230), (10, 120), (240, 190)):
        assert np.abs(img[y, x] - GREY).max() <= 2, (x, y, img[y, x].tolist())
    # the airplane → car arrow is drawn in the colour of "parked on" halfway along its line
    mx, my = (BOXES[0][0] + BOXES[1][0]) / 2, (BOXES[0][1] + BOXES[1][1]) / 2
    win = img[int(my) - 3:int(my) + 4, int(mx) - 3:int(mx) + 4].reshape(-1, 3)
    assert np.abs(win - np.array(predicate_colour(0))).max(axis=1).min() <= 30  # index in to_dict()["predicates"]


def test_stored_styles_load_when_adding_the_layers(tmp_path):
    """No project: QGIS' "add layer" path takes the default style from the GeoPackage's layer_styles."""
    _, raster, gpkg, _ = _scene(tmp_path, georef=True)
    rep, img = _render(tmp_path, "--layers", str(gpkg), "--raster", str(raster), "--width", str(W))
    by = {lyr["name"]: lyr for lyr in rep["layers"]}
    assert set(by["objects"]["db_styles"]) == {"sgg objects", "sgg relations"}
    assert by["objects"]["renderer"] == "categorizedSymbol" and by["relations"]["renderer"] == "RuleRenderer"
    x, y = _probe_pixel(0)
    a = fill_alpha(SCORES[0]) / 255.0
    assert np.abs(img[y, x] - (np.array(class_colour(0)) * a + GREY * (1 - a))).max() <= 6


def test_labels_show_only_at_large_scales(tmp_path):
    _, _, _, project = _scene(tmp_path, georef=True)
    _, far = _render(tmp_path, "--project", str(project), "--width", str(W), name="far")
    cx, cy = 500000.0 + 2 * BOXES[0][0], 4000000.0 - 2 * BOXES[0][1]
    near_extent = f"{cx - 30},{cy - 30},{cx + 30},{cy + 30}"  # 60 m over 400 px: about 1:560
    _, near = _render(tmp_path, "--project", str(project), "--width", "400", "--extent", near_extent, name="near")
    dark = lambda im: int((im.max(axis=2) < 60).sum())
    assert dark(far) == 0 and dark(near) > 30


def test_geojson_project_with_sidecar_styles(tmp_path):
    """GeoJSON (EPSG:4326) in a UTM project: QGIS splits the FeatureCollection by geometry type, the .qml
    sidecars style both parts, and the reprojected footprints still land on the objects."""
    sg, raster, _, _ = _scene(tmp_path, georef=True)
    gj = export(sg, tmp_path / "scene.geojson", output_threshold=0.3)
    project = write_scene_project(tmp_path / "gj.qgz", gj, sg)
    rep, img = _render(tmp_path, "--project", str(project), "--width", str(W))
    assert [(lyr["name"], lyr["valid"]) for lyr in rep["layers"]] == [
        ("scene relations", True), ("scene objects", True), (raster.stem, True)]
    rel, obj, _ = rep["layers"]
    assert obj["features"] == 3 and obj["crs"] == "EPSG:4326" and obj["legend"] == ["airplane", "car", "boat"]
    assert rel["features"] == 2 and rel["renderer"] == "RuleRenderer"
    for i in PROBES:
        x, y = _probe_pixel(i)
        a = fill_alpha(SCORES[i]) / 255.0
        assert np.abs(img[y, x] - (np.array(class_colour(LABELS[i])) * a + GREY * (1 - a))).max() <= 6
