"""Output threshold, QGIS styles (layer_styles, .qml sidecars) and the .qgz project, checked without QGIS."""

from __future__ import annotations

import json
import sqlite3
import warnings
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import pytest
import torch

from sgg.errors import SggInputError
from sgg.graph import export, read
from sgg.graph.qgis import pixel_extent, write_qgis_project, write_scene_project
from sgg.graph.styles import NEUTRAL, class_colour, objects_qml, relations_qml
from sgg.graph.thresholds import parse_threshold, select_objects
from sgg.structures import Detections, GeoReference, PairSet, SceneGraph, Vocabulary

VOCAB = Vocabulary(("airplane", "car", "boat"), ("parked on", "near"))


def _qml_root(text: str) -> ET.Element:
    return ET.fromstring(text.split("\n", 1)[1])  # skip the DOCTYPE line


def _scene(georef: bool = False) -> SceneGraph:
    boxes = torch.tensor([[10.0, 10, 8, 4, 0], [50, 10, 6, 6, 0], [10, 50, 8, 3, 0.2], [50, 50, 5, 5, 0]])
    det = Detections(boxes, torch.tensor([0, 1, 2, 0]), torch.tensor([0.9, 0.35, 0.2, 0.6]))
    ps = torch.zeros(4, 3)
    ps[:, 1] = torch.tensor([0.9, 0.8, 0.7, 0.6])
    geo = GeoReference("EPSG:32633", (0.5, 0, 400000.0, 0, -0.5, 5000000.0)) if georef else None
    if geo is not None:
        import pyproj

        geo = GeoReference(pyproj.CRS("EPSG:32633").to_wkt(), geo.transform)
    return SceneGraph(det, PairSet(torch.tensor([[0, 1], [1, 2], [2, 3], [3, 0]]), torch.tensor([1.0, 0.9, 0.8, 0.7])),
                      predicate_scores=ps, vocabulary=VOCAB, georef=geo, image_size=(64, 64),
                      metadata={"score_threshold": 0.05})


# ------------------------------------------------------------------------------------------ thresholds
def test_parse_threshold_and_refusals():
    assert parse_threshold("0.3") == 0.3 and parse_threshold(0.5) == 0.5 and parse_threshold(None) is None
    assert parse_threshold("0.3, airplane=0.5") == {"default": 0.3, "airplane": 0.5}
    for bad in ("1.5", "-0.1", "nan", "x", "0.3,car=2", "car=0.2,car=0.3", ""):
        with pytest.raises(SggInputError):
            parse_threshold(bad)


def test_select_objects_by_hand():
    sg = _scene()
    cut = select_objects(sg, 0.3)  # keeps objects 0 (0.9), 1 (0.35), 3 (0.6) -> new ids 0, 1, 2
    assert cut.detections.scores.tolist() == pytest.approx([0.9, 0.35, 0.6])
    # pairs (0,1) and (3,0) survive (both ends kept); (1,2), (2,3) touch the dropped object 2
    assert cut.pairs.pairs.tolist() == [[0, 1], [2, 0]]
    assert cut.pairs.scores.tolist() == pytest.approx([1.0, 0.7])
    assert cut.predicate_scores[:, 1].tolist() == pytest.approx([0.9, 0.6])
    assert cut.metadata["thresholds"] == {"evaluation": 0.05, "output": 0.3, "objects_dropped": 1}
    per_class = select_objects(sg, {"default": 0.3, "airplane": 0.7})  # object 3 (airplane 0.6) goes too
    assert per_class.detections.scores.tolist() == pytest.approx([0.9, 0.35])
    assert select_objects(sg, None) is sg
    with pytest.raises(SggInputError, match="tank"):
        select_objects(sg, {"tank": 0.5})


def test_every_format_records_both_thresholds(tmp_path):
    sg = _scene(georef=True)
    gpkg = export(sg, tmp_path / "s.gpkg", output_threshold=0.3)
    with sqlite3.connect(gpkg) as db:
        run = dict(db.execute("SELECT key, value FROM run").fetchall())
        n = db.execute("SELECT count(*) FROM objects").fetchone()[0]
    assert (run["evaluation_threshold"], run["output_threshold"], n) == ("0.05", "0.3", 3)
    gj = export(sg, tmp_path / "s.geojson", output_threshold=0.5)
    run = next(f for f in json.loads(gj.read_text())["features"] if f["properties"]["kind"] == "run")["properties"]["run"]
    run = run if isinstance(run, dict) else json.loads(run)
    assert run["evaluation_threshold"] == 0.05 and run["output_threshold"] == 0.5
    pq = pytest.importorskip("pyarrow.parquet")
    pa = export(sg, tmp_path / "s.parquet", output_threshold={"default": 0.3, "car": 0.4})
    md = json.loads(pq.read_schema(pa).metadata[b"sgg"])
    assert md["output_threshold"] == {"default": 0.3, "car": 0.4} and md["evaluation_threshold"] == 0.05
    assert read(pa).num_objects == 2  # car 0.35 < 0.4
    # no output threshold: everything written, nothing recorded as applied
    with sqlite3.connect(export(sg, tmp_path / "all.gpkg")) as db:
        run = dict(db.execute("SELECT key, value FROM run").fetchall())
    assert run["output_threshold"] == "null" and read(tmp_path / "all.gpkg").num_objects == 4


# ------------------------------------------------------------------------------------------ styles
def test_objects_style_by_class_and_score():
    root = _qml_root(objects_qml(["car", "airplane"], list(VOCAB.objects)))
    r = root.find("renderer-v2")
    assert r.get("type") == "categorizedSymbol" and r.get("attr") == "class"
    assert [(c.get("value"), c.get("label")) for c in r.find("categories")] == [("car", "car"),
                                                                              ("airplane", "airplane")]
    sym = r.find("symbols")[1]  # airplane = vocabulary index 0
    props = {p.get("k"): p.get("v") for p in sym.iter("prop")}
    assert props["outline_color"] == "{},{},{},255".format(*class_colour(0))
    dd = {o.get("name"): o for o in sym.find("layer").find("data_defined_properties").iter("Option")
          if o.get("type") == "Map" and o.get("name")}
    expr = next(o.get("value") for o in dd["fillColor"].iter("Option") if o.get("name") == "expression")
    assert '"score"' in expr and expr.startswith("color_rgba({},{},{},".format(*class_colour(0)))
    assert {"fillColor", "strokeColor", "strokeWidth"} <= set(dd)
    assert root.find("labeling/settings/rendering").get("scaleMax") == "1500"  # labels only zoomed in
    assert root.get("labelsEnabled") == "1" and "score" in root.findtext("mapTip")


def test_unknown_class_is_neutral_with_a_warning():
    with pytest.warns(UserWarning, match="tank"):
        root = _qml_root(objects_qml(["airplane", "tank"], list(VOCAB.objects)))
    props = {p.get("k"): p.get("v") for p in root.find("renderer-v2/symbols")[1].iter("prop")}
    assert props["outline_color"] == "{},{},{},255".format(*NEUTRAL)


def test_relations_style_arrows_and_topology():
    root = _qml_root(relations_qml(["near"], ["parked on", "near"]))
    rules = root.find("renderer-v2/rules")
    assert [r.get("label") for r in rules] == ["near", "topology (from geometry)"]
    assert "\"source\" <> 'geometry'" in rules[0].get("filter") and "'near'" in rules[0].get("filter")
    arrow, topo = root.find("renderer-v2/symbols")
    assert [lyr.get("class") for lyr in arrow.findall("layer")] == ["SimpleLine", "MarkerLine"]
    head = {p.get("k"): p.get("v") for p in arrow.findall("layer")[1].find("symbol").iter("prop")}
    assert head["name"] == "filled_arrowhead"
    assert {p.get("k"): p.get("v") for p in topo.iter("prop")}["line_style"] == "dash"


def test_styles_stored_and_sidecars(tmp_path):
    sg = _scene(georef=True)
    with sqlite3.connect(export(sg, tmp_path / "s.gpkg", topology=True)) as db:
        rows = dict(db.execute("SELECT f_table_name, styleQML FROM layer_styles WHERE useAsDefault").fetchall())
    assert set(rows) == {"objects", "relations"}
    assert _qml_root(rows["relations"]).find("renderer-v2").get("type") == "RuleRenderer"
    export(sg, tmp_path / "g.geojson")
    export(sg, tmp_path / "p.parquet")
    for name in ("g.qml", "g.relations.qml", "p.qml", "p.relations.qml"):
        _qml_root((tmp_path / name).read_text())
    assert not (tmp_path / "n.qml").exists()
    export(sg, tmp_path / "n.geojson", style=False)
    assert not (tmp_path / "n.qml").exists()


# ------------------------------------------------------------------------------------------ project
def _project(path) -> ET.Element:
    with zipfile.ZipFile(path) as zf:
        (name,) = zf.namelist()
        assert name.endswith(".qgs")
        text = zf.read(name).decode()
    return ET.fromstring(text.split("\n", 1)[1])


def test_project_pixel_frame(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    raster = tmp_path / "img" / "scene.png"
    raster.parent.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(raster, "w", driver="PNG", width=64, height=48, count=3, dtype="uint8") as dst:
            dst.write(np.zeros((3, 48, 64), np.uint8))
    sg = _scene()
    gpkg = export(sg, tmp_path / "out" / "s.gpkg", output_threshold=0.3)
    proj = write_scene_project(tmp_path / "out" / "s.qgz", gpkg, sg, raster_path=raster)
    root = _project(proj)
    tree = [(n.get("name"), n.get("source")) for n in root.find("layer-tree-group").findall("layer-tree-layer")]
    assert tree == [("relations", "./s.gpkg|layername=relations"), ("objects", "./s.gpkg|layername=objects"),
                    ("scene", "../img/scene.png")]  # top first, paths relative to the project
    assert root.findtext("projectCrs/spatialrefsys/wkt") == ""  # no CRS: pixel frame
    assert root.find("properties/SpatialRefSys/ProjectionsEnabled").text == "0"
    ext = root.find("ProjectViewSettings/DefaultViewExtent")
    assert [float(ext.get(k)) for k in ("xmin", "ymin", "xmax", "ymax")] == list(pixel_extent(64, 48))
    layers = {m.findtext("layername"): m for m in root.find("projectlayers")}
    assert layers["objects"].find("renderer-v2").get("attr") == "class"  # style embedded from layer_styles
    assert layers["scene"].find("pipe/rasterrenderer").get("type") == "multibandcolor"


def test_project_with_crs_and_errors(tmp_path):
    sg = _scene(georef=True)
    gpkg = export(sg, tmp_path / "s.gpkg")
    proj = write_qgis_project(tmp_path / "s.qgz", None, [gpkg], sg.georef.crs_wkt, (400000, 4999960, 400032, 5000000))
    root = _project(proj)
    assert root.findtext("projectCrs/spatialrefsys/authid") == "EPSG:32633"
    assert root.find("properties/SpatialRefSys/ProjectionsEnabled").text == "1"
    srs = {m.findtext("layername"): m.findtext("srs/spatialrefsys/authid") for m in root.find("projectlayers")}
    assert srs == {"relations": "EPSG:32633", "objects": "EPSG:32633"}
    with pytest.raises(SggInputError, match="qgz"):
        write_qgis_project(tmp_path / "s.zip", None, [gpkg], None, (0, 0, 1, 1))
    with pytest.raises(SggInputError, match="not found"):
        write_qgis_project(tmp_path / "t.qgz", tmp_path / "missing.tif", [gpkg], None, None)
    with pytest.raises(SggInputError, match="extent"):
        write_qgis_project(tmp_path / "t.qgz", None, [gpkg], None, (1, 0, 1, 1))


def test_cli_min_score_and_project(tmp_path, capsys):
    from sgg.cli import main

    sg = _scene(georef=True)
    src = export(sg, tmp_path / "s.gpkg")
    out, proj = tmp_path / "cut.gpkg", tmp_path / "cut.qgz"
    assert main(["export", str(src), "--out", str(out), "--qgis-project", str(proj)]) == 0
    assert read(out).num_objects == 3  # default output threshold 0.3 drops the boat (0.2)
    assert "left out" in capsys.readouterr().out and zipfile.is_zipfile(proj)
    assert main(["export", str(src), "--out", str(tmp_path / "all.gpkg"), "--min-score", "0"]) == 0
    assert read(tmp_path / "all.gpkg").num_objects == 4
    assert main(["export", str(src), "--out", str(tmp_path / "x.gpkg"), "--min-score", "1.5"]) == 2
    assert "1.5" in capsys.readouterr().err
    assert main(["export", str(src), "--out", str(tmp_path / "x.graphml"), "--qgis-project", str(proj)]) == 2


def test_detect_two_thresholds(tmp_path, capsys):
    """sgg detect --from-dota (no model): layers hold objects >= --min-score (default 0.3), .scene.json and
    --dota-out everything above --score-threshold; both thresholds recorded."""
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    from sgg.cli import main

    raster = tmp_path / "scene.tif"
    with rasterio.open(raster, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8", crs="EPSG:32633",
                       transform=from_origin(400000, 5000000, 0.5, 0.5)) as dst:
        dst.write(np.zeros((1, 64, 64), np.uint8))
    res = tmp_path / "results"
    res.mkdir()
    rows = [(0.9, 10), (0.4, 30), (0.2, 50), (0.04, 20)]  # the last is below the evaluation threshold 0.05
    (res / "Task1_airplane.txt").write_text("".join(
        f"scene {s} {x} 10 {x + 8} 10 {x + 8} 16 {x} 16\n" for s, x in rows))
    assert main(["detect", str(raster), "--from-dota", str(res), "--out", str(tmp_path / "d.gpkg"),
                 "--qgis-project", str(tmp_path / "d.qgz"), "--dota-out", str(tmp_path / "dota")]) == 0
    assert "scoring >= 0.3 (of 3 >= 0.05)" in capsys.readouterr().out
    assert read(tmp_path / "d.gpkg").num_objects == 2 and zipfile.is_zipfile(tmp_path / "d.qgz")
    assert len((tmp_path / "dota" / "Task1_airplane.txt").read_text().splitlines()) == 3
    with sqlite3.connect(tmp_path / "d.gpkg") as db:
        run = dict(db.execute("SELECT key, value FROM run").fetchall())
    assert (run["evaluation_threshold"], run["output_threshold"]) == ("0.05", "0.3")
    assert main(["detect", str(raster), "--from-dota", str(res), "--out", str(tmp_path / "d.scene.json")]) == 0
    sg = read(tmp_path / "d.scene.json")
    assert sg.num_objects == 3 and sg.metadata["thresholds"] == {"evaluation": 0.05, "output": None}
    assert main(["detect", str(raster), "--from-dota", str(res), "--out", str(tmp_path / "e.gpkg"),
                 "--min-score", "0.3,airplane=0.5"]) == 0
    assert read(tmp_path / "e.gpkg").num_objects == 1
    assert main(["detect", str(raster), "--from-dota", str(res), "--min-score", "-1"]) == 2
    assert main(["detect", str(raster), "--from-dota", str(res), "--qgis-project", str(tmp_path / "x.qgz")]) == 2
