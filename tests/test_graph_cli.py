"""`sgg export` (sgg.graph.cli)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from sgg.graph import export, read
from sgg.graph.cli import main
from sgg.structures import Detections, GeoReference, PairSet, SceneGraph, Vocabulary

VOCAB = Vocabulary(("ship", "harbor"), ("docked at", "near"))


def _scene() -> SceneGraph:
    g = torch.Generator().manual_seed(5)
    n = 12
    boxes = torch.cat([torch.rand(n, 2, generator=g) * 300, torch.rand(n, 2, generator=g) * 20 + 5,
                       (torch.rand(n, 1, generator=g) - 0.5) * math.pi], 1)
    det = Detections(boxes, torch.randint(0, 2, (n,), generator=g))
    return SceneGraph(det, PairSet([[0, 1], [2, 3], [4, 5]]), predicate_labels=[1, 2, 1], vocabulary=VOCAB,
                      georef=GeoReference("EPSG:32618", (0.5, 0, 500000, 0, -0.5, 4500000)), image_size=(320, 320))


@pytest.mark.parametrize("fmt", ["gpkg", "geojson", "parquet", "graphml", "json"])
def test_export_from_graphml(tmp_path, fmt, capsys):
    sg = _scene()
    src = export(sg, tmp_path / "scene.graphml")
    out = tmp_path / f"out.{fmt}"
    assert main([str(src), "--to", fmt, "--out", str(out), "--topology", "--distance", "5"]) == 0
    assert "wrote" in capsys.readouterr().out
    back = read(out)
    assert torch.equal(back.detections.boxes.tensor, sg.detections.boxes.tensor)
    assert torch.equal(back.predicate_labels, sg.predicate_labels) and back.georef == sg.georef


def test_default_out_and_crs(tmp_path):
    gpd = pytest.importorskip("geopandas")
    src = export(_scene(), tmp_path / "scene.json")
    assert main([str(src), "--to", "json"]) == 0
    assert (tmp_path / "scene.graph.json").exists()
    assert main([str(src), "--to", "gpkg", "--crs", "EPSG:3857"]) == 0
    assert gpd.read_file(tmp_path / "scene.gpkg", layer="objects").crs.to_epsg() == 3857


def test_native_scene_json_and_dota(tmp_path, real_dir):
    from sgg.datasets import native

    sg = _scene()
    src = tmp_path / "annotation.json"
    native.write_scene_json(sg, src)
    assert main([str(src), "--to", "gpkg", "--out", str(tmp_path / "a.gpkg")]) == 0
    back = read(tmp_path / "a.gpkg")
    assert back.num_objects == sg.num_objects and torch.equal(back.pairs.pairs, sg.pairs.pairs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        argv = [str(real_dir / "dota" / "P0706.txt"), "--to", "gpkg", "--out", str(tmp_path / "d.gpkg")]
        assert main(argv) == 0
    assert read(tmp_path / "d.gpkg").num_objects == 536


def test_bad_input_is_a_clean_error(tmp_path, capsys):
    from sgg.cli import main as sgg_main

    bad = tmp_path / "bad.gpkg"
    bad.write_text("not a geopackage")
    assert sgg_main(["export", str(bad), "--to", "json"]) == 2
    err = capsys.readouterr().err
    assert "bad.gpkg" in err and "Traceback" not in err
