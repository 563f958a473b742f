"""Predictions that keep their scores (native ``.scene.json``), one suffix per format, atomic parts."""

from __future__ import annotations

import json
import os

import pytest
import torch

from sgg.cli import main
from sgg.datasets.native import read_scene_json, write_scene_json
from sgg.errors import SggInputError
from sgg.graph import export, read
from sgg.graph.formats import format_of, suffix_format
from sgg.io.atomic import atomic_paths, clean_stale_parts
from sgg.structures import Detections, PairSet, SceneGraph, Vocabulary

VOC = Vocabulary(("ship", "harbor"), ("docked at", "near", "far"))


def prediction() -> SceneGraph:
    """Three pairs with hand-picked predicate scores (column 0 background) and pair scores."""
    det = Detections(torch.tensor([[10., 10, 5, 3, 0], [50, 50, 6, 4, 0.3], [90, 20, 4, 4, 0]]),
                     torch.tensor([0, 1, 0]), torch.tensor([0.9, 0.8, 0.7]))
    ps = torch.tensor([[0.1, 0.6, 0.2, 0.1],
                       [0.5, 0.1, 0.3, 0.1],
                       [0.2, 0.2, 0.2, 0.4]])
    return SceneGraph(det, PairSet([[0, 1], [1, 2], [2, 0]], torch.tensor([1.0, 0.5, 1.0])),
                      predicate_scores=ps, vocabulary=VOC, image_size=(100, 100))


def test_prediction_needs_an_explicit_top_k(tmp_path):
    with pytest.raises(SggInputError, match="top-K"):
        write_scene_json(prediction(), tmp_path / "p.scene.json")
    assert not list(tmp_path.iterdir())


def test_scored_triplets_by_hand(tmp_path):
    # triplet scores = predicate score x pair score, best first:
    # (0,1) docked 0.6; (2,0) far 0.4; (0,1) near 0.2; (2,0) docked 0.2; (2,0) near 0.2; (1,2) near 0.15 ...
    path = write_scene_json(prediction(), tmp_path / "p.scene.json", top_k=3, per_pair=2)
    doc = json.loads(path.read_text())
    rows = [(r["subject"], r["predicate"], r["object"], r["score"]) for r in doc["relations"]]
    assert rows == [(0, "docked at", 1, 0.6), (2, "far", 0, 0.4), (0, "near", 1, 0.2)]
    assert doc["prediction"] == {"top_k": 3, "per_pair": 2, "min_score": None, "candidate_pairs": 3}
    back = read_scene_json(path)
    assert back.pairs.pairs.tolist() == [[0, 1], [2, 0]]  # distinct pairs in rank order
    assert torch.allclose(back.predicate_scores, torch.tensor([[0.2, 0.6, 0.2, 0.0], [0.6, 0.0, 0.0, 0.4]]))
    t = back.triplets(top_k=3, per_pair=2)
    assert t["predicate"].tolist() == [1, 3, 2] and torch.allclose(t["score"], torch.tensor([0.6, 0.4, 0.2]))


def test_min_score_and_annotation_rows(tmp_path):
    path = write_scene_json(prediction(), tmp_path / "p.scene.json", top_k=10, min_score=0.3)
    assert [r["score"] for r in json.loads(path.read_text())["relations"]] == [0.6, 0.4]
    ann = SceneGraph(prediction().detections, PairSet([[0, 1], [1, 2]]), predicate_labels=[2, 0], vocabulary=VOC)
    doc = json.loads(write_scene_json(ann, tmp_path / "a.scene.json").read_text())  # labels: no top-K needed
    assert doc["relations"] == [{"subject": 0, "predicate": "near", "object": 1}] and "prediction" not in doc


def test_one_suffix_per_format():
    assert suffix_format("a/b.scene.json") == "scene" and suffix_format("b.JSON") == "json"
    assert suffix_format("b.graph.json") == "json" and suffix_format("b.tif") is None
    assert format_of("x.gpkg") == "gpkg" and format_of("x.json", "native") == "scene"
    with pytest.raises(SggInputError, match=r"\.scene\.json"):
        format_of("x.tif")


def test_export_and_detect_use_the_same_suffixes(tmp_path, capsys):
    src = export(prediction(), tmp_path / "p.gpkg", full_scores=True)
    assert main(["export", str(src), "--to", "scene", "--out", str(tmp_path / "p.scene.json")]) == 2
    assert "--top-k" in capsys.readouterr().err
    assert main(["export", str(src), "--out", str(tmp_path / "p.scene.json"), "--top-k", "2"]) == 0
    assert "2 relation rows" in capsys.readouterr().out
    assert len(read(tmp_path / "p.scene.json").triplets()["score"]) == 2
    assert main(["export", str(src), "--out", str(tmp_path / "p.json")]) == 0
    node_link = json.loads((tmp_path / "p.json").read_text())
    assert "nodes" in node_link and "format_version" not in node_link
    assert main(["export", str(src), "--to", "scene", "--out", str(tmp_path / "q.json")]) == 2  # wrong suffix


def test_atomic_parts_are_removed_on_failure_and_kept_while_alive(tmp_path):
    final = tmp_path / "x.gpkg"
    with pytest.raises(RuntimeError), atomic_paths(final) as (tmp,):
        tmp.write_text("half")
        (tmp.parent / (tmp.name + "-journal")).write_text("j")
        raise RuntimeError("writer died")
    assert not list(tmp_path.iterdir())
    mine = tmp_path / f".x.{os.getpid()}.00000000.part.gpkg"
    mine.write_text("in progress")
    assert clean_stale_parts(final) == [] and mine.exists()


def test_detect_drops_objects_centred_outside_the_raster(tmp_path, capsys):
    import numpy as np

    from sgg.datasets.dota import write_dota_results
    from sgg.io.writer import write_geotiff

    raster = write_geotiff(tmp_path / "r.tif", np.zeros((64, 80, 3), dtype=np.uint8), crs="EPSG:32633",
                           transform=(0.5, 0, 4e5, 0, -0.5, 5e6), overviews=False)
    star = Vocabulary.star()
    boxes = torch.tensor([[40., 30, 10, 6, 0], [78., 62, 12, 8, 0], [90., 30, 10, 6, 0], [40., -3, 10, 6, 0]])
    det = Detections(boxes, torch.full((4,), star.object_index("ship")), torch.tensor([0.9, 0.8, 0.7, 0.6]))
    write_dota_results({"r": det}, tmp_path / "res", star)
    assert main(["detect", str(raster), "--from-dota", str(tmp_path / "res"), "--out", str(tmp_path / "o.gpkg")]) == 0
    assert "2 objects" in (out := capsys.readouterr().out) and "dropped 2 centred outside the raster" in out
    kept = read(tmp_path / "o.gpkg").detections.boxes.tensor[:, :2].tolist()
    assert sorted(kept) == [[40.0, 30.0], [78.0, 62.0]]  # a box across the edge stays when its centre is inside
