"""Every sub-command over a matrix of bad inputs: exit status 2, one stderr line naming the thing at fault,
no output or partial file left behind. Runs `sgg.cli.main` in-process; no detector is ever loaded."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sgg.cli import COMMANDS, main
from sgg.structures import Detections, GeoReference, PairSet, SceneGraph, Vocabulary

UTM = "EPSG:32633"
TRANSFORM = (0.5, 0.0, 400000.0, 0.0, -0.5, 5000000.0)


def scene_graph(image_path: str | None = None, georef: bool = True) -> SceneGraph:
    """Eight STAR objects with two relations on a 96-px scene (UTM 33N unless ``georef=False``)."""
    star = Vocabulary.star()
    g = torch.Generator().manual_seed(3)
    n = 8
    boxes = torch.cat([torch.rand(n, 2, generator=g) * 70 + 12, torch.rand(n, 2, generator=g) * 8 + 4,
                       (torch.rand(n, 1, generator=g) - 0.5) * math.pi], 1)
    labels = torch.tensor([star.object_index(c) for c in ["ship", "boat", "ship", "crane"] * 2])
    ref = GeoReference(UTM, TRANSFORM) if georef else None
    return SceneGraph(Detections(boxes, labels), PairSet([[0, 1], [2, 3]]), predicate_labels=[1, 2],
                      vocabulary=star, georef=ref, image_path=image_path, image_size=(96, 96))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Good inputs (raster, annotation, graph in every format) and bad ones of every kind."""
    from sgg.datasets.native import write_scene_json
    from sgg.graph import export
    from sgg.io.writer import write_geotiff

    d = tmp_path_factory.mktemp("inputs")
    f: dict[str, Path] = {"dir": d / "a_directory"}
    f["dir"].mkdir()
    rgb = (np.random.default_rng(0).random((96, 96, 3)) * 255).astype(np.uint8)
    f["raster"] = write_geotiff(d / "scene.tif", rgb, crs=UTM, transform=TRANSFORM, overviews=False)
    f["raster_nocrs"] = write_geotiff(d / "pixels.tif", rgb, overviews=False)
    sg = scene_graph(str(f["raster"]))
    f["annotation"] = write_scene_json(sg, d / "ann" / "scene.json")
    for fmt in ("gpkg", "geojson", "parquet", "graphml", "json", "scene"):
        f[fmt] = export(sg, d / "graphs" / f"scene.{'scene.json' if fmt == 'scene' else fmt}")
    f["nocrs_graph"] = export(scene_graph(str(f["raster_nocrs"]), georef=False), d / "pixels.gpkg")
    f["empty"] = d / "empty.gpkg"
    f["empty"].write_bytes(b"")
    f["text"] = d / "notes.gpkg"
    f["text"].write_text("not a geopackage\n")
    f["truncated"] = d / "truncated.scene.json"
    f["truncated"].write_bytes(f["scene"].read_bytes()[:300])
    f["corrupt"] = d / "corrupt.tif"
    f["corrupt"].write_bytes(b"II*\x00" + bytes(np.random.default_rng(1).integers(0, 255, 500, dtype=np.uint8)))
    f["schema"] = d / "wrong_schema.scene.json"
    f["schema"].write_text('{"hello": "world"}\n')
    f["suffix"] = d / "scene.xyz"
    f["suffix"].write_bytes(f["json"].read_bytes())
    f["weights_text"] = d / "weights.pt"
    f["weights_text"].write_text("these are not weights\n")
    f["weights_empty"] = d / "empty.pt"
    f["weights_empty"].write_bytes(b"")
    f["weights_truncated"] = d / "truncated.pt"
    buf = d / "full.pt"
    torch.save({"format": "sgg-detector", "state_dict": {"w": torch.zeros(4000)}}, buf)
    f["weights_truncated"].write_bytes(buf.read_bytes()[:2000])
    f["yaml_bad"] = d / "bad.yaml"
    f["yaml_bad"].write_text("model: [\n")
    return f


def run(argv: list[str], capsys) -> tuple[int, list[str], str]:
    """(status, stderr error lines, stdout); warnings are counted apart from the error line."""
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    lines = [ln for ln in cap.err.splitlines() if ln.strip()]
    return rc, lines, cap.out


def assert_one_error(rc: int, lines: list[str], *names: str, status: int = 2) -> str:
    errors = [ln for ln in lines if not ln.startswith("warning: ")]
    assert rc == status, lines
    assert len(errors) == 1 and errors[0].startswith("sgg ") and "error:" in errors[0], lines
    assert "Traceback" not in errors[0]
    for name in names:
        assert name in errors[0], (name, errors[0])
    return errors[0]


def listing(*dirs: Path) -> set[str]:
    return {str(p) for d in dirs if d.exists() for p in d.rglob("*")}


# --------------------------------------------------------------------------------------- the matrix
def cases(f: dict[str, Path], out: Path) -> list[tuple[str, list, tuple[str, ...]]]:
    """(case id, argv, names the error line must contain). Outputs all go under ``out``."""
    W = f["weights_text"]  # never loaded when the case fails earlier
    R, A, G = f["raster"], f["annotation"], f["gpkg"]
    return [
        # info
        ("info/missing", ["info", out / "nope.tif"], ("nope.tif", "not found")),
        ("info/directory", ["info", f["dir"]], ("a_directory", "directory")),
        ("info/empty", ["info", f["empty"]], ("empty.gpkg", "empty")),
        ("info/corrupt", ["info", f["corrupt"]], ("corrupt.tif",)),
        ("info/range", ["info", R, "--tile-size", "0"], ("--tile-size",)),
        ("info/combination", ["info", R, "--tile-size", "64", "--overlap", "64"], ("--overlap",)),
        # synth
        ("synth/existing-file", ["synth", "--out", A], ("--out", "scene.json", "is a file")),
        ("synth/existing-dataset", ["synth", "--out", f["dir"].parent], ("--out", "not empty", "--overwrite")),
        ("synth/unwritable", ["synth", "--out", A / "sub"], ("--out", "is a file")),
        ("synth/split", ["synth", "--out", out / "ds", "--split", ".5", ".5", ".5"], ("--split", "sum to 1")),
        ("synth/range", ["synth", "--out", out / "ds", "--size", "8"], ("--size",)),
        ("synth/gsd", ["synth", "--out", out / "ds", "--gsd", "0"], ("--gsd",)),
        # detect
        ("detect/missing-raster", ["detect", out / "nope.tif", "--weights", W], ("nope.tif", "not found")),
        ("detect/directory-raster", ["detect", f["dir"], "--weights", W], ("a_directory",)),
        ("detect/corrupt-raster", ["detect", f["corrupt"], "--weights", W, "--out", out / "o.gpkg"],
         ("corrupt.tif",)),
        ("detect/missing-weights", ["detect", R, "--weights", out / "w.pt", "--out", out / "o.gpkg"],
         ("--weights", "w.pt", "not found")),
        ("detect/text-weights", ["detect", R, "--weights", W, "--out", out / "o.gpkg"],
         ("weights.pt", "not a PyTorch checkpoint")),
        ("detect/empty-weights", ["detect", R, "--weights", f["weights_empty"], "--out", out / "o.gpkg"],
         ("empty.pt", "empty")),
        ("detect/truncated-weights", ["detect", R, "--weights", f["weights_truncated"], "--out", out / "o.gpkg"],
         ("truncated.pt", "truncated")),
        ("detect/suffix", ["detect", R, "--weights", W, "--out", out / "o.xyz"], ("--out", "o.xyz", "suffix")),
        ("detect/out-directory", ["detect", R, "--weights", W, "--out", f["dir"]], ("--out", "directory")),
        ("detect/out-is-input", ["detect", R, "--weights", W, "--out", R], ("--out",)),
        ("detect/dota-out-file", ["detect", R, "--weights", W, "--out", out / "o.gpkg", "--dota-out", A],
         ("--dota-out", "is a file")),
        ("detect/unwritable", ["detect", R, "--weights", W, "--out", A / "o.gpkg"], ("--out", "is a file")),
        ("detect/tile-size", ["detect", R, "--weights", W, "--tile-size", "0"], ("--tile-size",)),
        ("detect/overlap", ["detect", R, "--weights", W, "--tile-size", "64", "--overlap", "80"], ("--overlap",)),
        ("detect/iou", ["detect", R, "--weights", W, "--iou-threshold", "7"], ("--iou-threshold",)),
        ("detect/levels", ["detect", R, "--weights", W, "--levels", "-1"], ("--levels",)),
        ("detect/geojson-no-crs", ["detect", f["raster_nocrs"], "--weights", W, "--out", out / "o.geojson"],
         ("--out", "no CRS", ".gpkg")),
        ("detect/from-dota-missing", ["detect", R, "--from-dota", out / "res"], ("--from-dota", "not found")),
        ("detect/from-dota-with-model-option", ["detect", R, "--from-dota", f["dir"], "--tile-size", "64"],
         ("--tile-size", "--weights")),
        ("detect/aliases", ["detect", R, "--from-dota", f["dir"], "--aliases", "klingon"], ("--aliases",)),
        ("detect/tta-view", ["detect", R, "--weights", W, "--tta", "spin45", "--out", out / "o.gpkg"],
         ("--tta", "spin45")),
        ("detect/tta-from-dota", ["detect", R, "--from-dota", f["dir"], "--tta", "d2"], ("--tta", "--from-dota")),
        ("detect/box-passes", ["detect", R, "--weights", W, "--box-passes", "0"], ("--box-passes",)),
        ("detect/box-passes-from-dota", ["detect", R, "--from-dota", f["dir"], "--box-passes", "2"],
         ("--box-passes", "--from-dota")),
        ("detect/join-from-dota", ["detect", R, "--from-dota", f["dir"], "--join-linear", "klingon_wall"],
         ("--join-linear", "klingon_wall")),
        ("detect/no-source", ["detect", R], ("--weights",)),
        # eval
        ("eval/unknown", ["eval", "bogus"], ("bogus",)),
        ("eval/missing-pred", ["eval", "detection", "--pred", out / "p", "--gt", A], ("--pred", "not found")),
        ("eval/missing-gt", ["eval", "detection", "--pred", G, "--gt", out / "g"], ("--gt", "not found")),
        ("eval/raster-as-pred", ["eval", "detection", "--pred", R, "--gt", A], ("scene.tif", "suffix")),
        ("eval/empty-pred", ["eval", "detection", "--pred", f["empty"], "--gt", A], ("empty.gpkg", "empty")),
        ("eval/text-pred", ["eval", "detection", "--pred", f["text"], "--gt", A], ("notes.gpkg",)),
        ("eval/truncated-pred", ["eval", "detection", "--pred", f["truncated"], "--gt", A], ("truncated.scene.json",)),
        ("eval/schema-pred", ["eval", "detection", "--pred", f["schema"], "--gt", A], ("wrong_schema.scene.json",)),
        ("eval/iou", ["eval", "detection", "--pred", G, "--gt", A, "--iou-threshold", "7"], ("--iou-threshold",)),
        ("eval/json-dir", ["eval", "detection", "--pred", G, "--gt", A, "--json", f["dir"]], ("--json", "directory")),
        ("eval/json-suffix", ["eval", "detection", "--pred", G, "--gt", A, "--json", out / "r.txt"], ("--json",)),
        ("eval-sgg/missing-pred", ["eval", "sgg", "--pred", out / "p", "--gt", A], ("--pred", "not found")),
        ("eval-sgg/ks", ["eval", "sgg", "--pred", G, "--gt", A, "--ks", "0"], ("--ks",)),
        # export
        ("export/missing", ["export", out / "nope.gpkg", "--to", "json"], ("nope.gpkg", "not found")),
        ("export/directory", ["export", f["dir"], "--to", "json"], ("a_directory", "directory")),
        ("export/empty", ["export", f["empty"], "--to", "json", "--out", out / "o.json"], ("empty.gpkg", "empty")),
        ("export/text", ["export", f["text"], "--to", "json", "--out", out / "o.json"], ("notes.gpkg",)),
        ("export/truncated", ["export", f["truncated"], "--to", "gpkg", "--out", out / "o.gpkg"],
         ("truncated.scene.json",)),
        ("export/schema", ["export", f["schema"], "--to", "gpkg", "--out", out / "o.gpkg"], ("wrong_schema",)),
        ("export/suffix-in", ["export", f["suffix"], "--to", "gpkg", "--out", out / "o.gpkg"], ("scene.xyz",)),
        ("export/suffix-out", ["export", G, "--out", out / "o.tif"], ("--out", "o.tif")),
        ("export/suffix-vs-to", ["export", G, "--to", "geojson", "--out", out / "o.gpkg"], ("--out", ".geojson")),
        ("export/out-directory", ["export", G, "--to", "json", "--out", f["dir"]], ("--out", "directory")),
        ("export/out-is-input", ["export", G, "--to", "gpkg", "--out", G], ("--out", "input")),
        ("export/unwritable", ["export", G, "--to", "json", "--out", A / "o.json"], ("--out", "is a file")),
        ("export/crs", ["export", G, "--to", "gpkg", "--out", out / "o.gpkg", "--crs", "EPSG:999999"],
         ("--crs", "EPSG:999999")),
        ("export/top-k", ["export", G, "--to", "gpkg", "--out", out / "o.gpkg", "--top-k", "-1"], ("--top-k",)),
        ("export/distance", ["export", G, "--to", "gpkg", "--out", out / "o.gpkg", "--distance", "5"],
         ("--distance", "--topology")),
        ("export/geojson-no-crs", ["export", f["nocrs_graph"], "--to", "geojson", "--out", out / "o.geojson"],
         ("--out", "no CRS")),
        ("export/nothing-to-do", ["export", G], ("--to",)),
        # commands other sessions registered (fitrs, eval pairs, infer, demo)
        ("fitrs/missing-graph", ["fitrs", "export", out / "nope.gpkg", "--out", out / "fx"], ("nope.gpkg", "not found")),
        ("fitrs/missing-answers", ["fitrs", "score", out / "nope.jsonl"], ("nope.jsonl", "not found")),
        ("fitrs/wrong-suffix", ["fitrs", "caption", R], ("scene.tif", "suffix")),
        ("fitrs/missing-text", ["fitrs", "check", G, "--text", out / "t.txt"], ("--text", "not found")),
        ("eval-pairs/missing-gt", ["eval", "pairs", "--gt", out / "g"], ("g", "not found")),
        ("infer/out-is-file", ["infer", R, "--out", A], ("scene.json", "not a directory")),
        ("demo/out-is-file", ["demo", "--out", A], ("scene.json", "not a directory")),
        # train
        ("train/stage", ["train", "nope"], ("nope",)),
        ("train/config-missing", ["train", "detector", "--config", out / "c.yaml"], ("--config", "not found")),
        ("train/config-bad", ["train", "detector", "--config", f["yaml_bad"]], ("--config", "bad.yaml", "YAML")),
        ("train/data-dir", ["train", "detector", "--data.data_dir", out / "missing"], ("--data.data_dir", "missing")),
    ]


CASE_IDS = [c[0] for c in cases({k: Path(k) for k in ["weights_text", "raster", "annotation", "gpkg", "dir",
                                                     "empty", "corrupt", "weights_empty", "weights_truncated",
                                                     "raster_nocrs", "text", "truncated", "schema", "suffix",
                                                     "nocrs_graph", "yaml_bad"]}, Path("out"))]


@pytest.mark.parametrize("case", CASE_IDS)
def test_bad_input_matrix(case, files, tmp_path, capsys, monkeypatch):
    import sgg.detectors.checkpoint as ckpt

    monkeypatch.setattr(ckpt, "HODNet", lambda *a, **k: pytest.fail("a model was built"))
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)  # default outputs land here too
    argv, names = next((c[1], c[2]) for c in cases(files, out) if c[0] == case)
    before = listing(files["dir"].parent)
    rc, lines, _ = run(argv, capsys)
    assert_one_error(rc, lines, *names)
    assert listing(out) == set(), "output or partial file left behind"
    assert listing(files["dir"].parent) == before, "an input directory changed"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_an_unknown_option_in_one_line(command, capsys):
    rc, lines, _ = run([command, "--no-such-option"], capsys)
    assert_one_error(rc, lines)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    assert main([command, "--help"]) == 0
    assert "usage" in capsys.readouterr().out.lower()


def test_unknown_command_and_top_level_help(capsys):
    assert main(["frobnicate"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "COMMAND" in text and " args" not in text and "positional" not in text
    assert all(c in text for c in COMMANDS)


# ------------------------------------------------------------------------------ the error path itself
def test_debug_shows_the_traceback(files, capsys):
    from sgg.errors import SggInputError

    with pytest.raises(SggInputError, match="empty"):
        main(["--debug", "export", str(files["empty"]), "--to", "json"])
    with pytest.raises(SggInputError):
        main(["export", str(files["empty"]), "--to", "json", "--debug"])


def test_internal_error_is_status_1_and_says_so(files, capsys, monkeypatch):
    import sgg.io.cli

    monkeypatch.setattr(sgg.io.cli, "describe", lambda *a, **k: 1 / 0)
    rc, lines, _ = run(["info", files["raster"]], capsys)
    line = assert_one_error(rc, lines, "internal error", "ZeroDivisionError", "--debug", status=1)
    assert line.startswith("sgg info: error:")


def test_ctrl_c_is_one_line_and_leaves_nothing(files, tmp_path, capsys, monkeypatch):
    from sgg.detectors import inference

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(inference, "scenes_from_dota", interrupted)
    rc, lines, _ = run(["detect", files["raster"], "--from-dota", files["dir"], "--out", tmp_path / "o.gpkg"], capsys)
    assert rc == 130 and lines == ["sgg detect: interrupted; no half-written file is left"]
    assert not list(tmp_path.iterdir())


def test_warnings_one_channel_deduplicated_and_quiet(files, capsys):
    rc, lines, _ = run(["info", files["raster_nocrs"]], capsys)
    assert rc == 0 and len(lines) == 1 and lines[0].startswith("warning: ") and "no georeferencing" in lines[0]
    rc, lines, _ = run(["info", files["raster_nocrs"], "--quiet"], capsys)
    assert rc == 0 and lines == []
    rc, lines, _ = run(["--quiet", "info", files["raster_nocrs"]], capsys)
    assert rc == 0 and lines == []


def test_exit_status_of_success_is_zero(files, tmp_path, capsys):
    out = tmp_path / "o.graphml"
    rc, lines, stdout = run(["export", files["gpkg"], "--out", out], capsys)
    assert rc == 0 and lines == [] and out.is_file() and "2 relation rows" in stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------ issue #11 "Seen today", one by one
def test_seen_tracebacks_are_one_line(files, tmp_path, capsys):
    A = files["annotation"]
    # eval detection --pred X.gpkg now reads it; a raster as --pred is one line
    rc, _, out = run(["eval", "detection", "--pred", files["gpkg"], "--gt", A], capsys)
    assert rc == 0 and "mAP" in out
    assert_one_error(*run(["eval", "detection", "--pred", files["raster"], "--gt", A], capsys)[:2], "scene.tif")
    assert_one_error(*run(["export", files["gpkg"], "--to", "gpkg", "--out", tmp_path / "o.gpkg", "--crs",
                           "EPSG:999999"], capsys)[:2], "--crs EPSG:999999")
    assert_one_error(*run(["export", files["gpkg"], "--to", "json", "--out", tmp_path], capsys)[:2], "--out")
    assert_one_error(*run(["synth", "--out", A], capsys)[:2], "--out")
    assert_one_error(*run(["detect", files["raster"], "--from-dota", files["dir"], "--dota-out", A], capsys)[:2],
                     "--dota-out")
    demo = Path(__file__).resolve().parents[1] / "configs" / "detector" / "demo.yaml"
    assert_one_error(*run(["train", "detector", "--config", demo, "--data.data_dir", tmp_path / "missing"],
                          capsys)[:2], "--data.data_dir", "missing")
    assert not [p for p in tmp_path.iterdir()]


def test_seen_output_checked_before_the_work_in_command_line_terms(files, tmp_path, capsys, monkeypatch):
    import sgg.detectors.checkpoint as ckpt

    monkeypatch.setattr(ckpt, "load_detector", lambda *a, **k: pytest.fail("weights loaded before --out checked"))
    line = assert_one_error(*run(["detect", files["raster"], "--weights", files["weights_text"], "--out",
                                  tmp_path / "o.xyz"], capsys)[:2], "--out", ".scene.json")
    assert "fmt=" not in line
    for out in (tmp_path, tmp_path / "o.tif"):
        line = assert_one_error(*run(["export", files["gpkg"], "--out", out], capsys)[:2], "--out")
        assert "fmt=" not in line


def test_seen_summary_counts_the_rows_written(files, tmp_path, capsys):
    import networkx as nx
    import pyogrio

    rc, _, out = run(["export", files["gpkg"], "--to", "gpkg", "--out", tmp_path / "t.gpkg", "--topology",
                      "--distance", "50"], capsys)
    rows = pyogrio.read_info(tmp_path / "t.gpkg", layer="relations")["features"]
    assert rc == 0 and rows > 2 and f"{rows} relation rows" in out
    rc, _, out = run(["export", files["gpkg"], "--out", tmp_path / "t.graphml", "--topology"], capsys)
    edges = nx.read_graphml(tmp_path / "t.graphml").number_of_edges()
    assert rc == 0 and f"{edges} relation rows" in out


def test_seen_warnings_and_alias_messages(files, tmp_path, capsys):
    from sgg.datasets.dota import write_dota_results

    det = scene_graph().detections
    write_dota_results({"pixels": det}, tmp_path / "res", Vocabulary.star())
    argv = ["detect", files["raster_nocrs"], "--from-dota", tmp_path / "res", "--out", tmp_path / "p.gpkg"]
    rc, lines, _ = run(argv, capsys)
    assert rc == 0 and len(lines) == 1 and lines[0].startswith("warning: ") and "no georeferencing" in lines[0]
    assert "Warning" not in lines[0] and ".py:" not in lines[0]
    rc, lines, _ = run([*argv, "--quiet"], capsys)
    assert rc == 0 and lines == []
    plane = tmp_path / "dres" / "Task1_plane.txt"
    plane.parent.mkdir()
    plane.write_text("scene 0.9 1 1 10 1 10 10 1 10\n")
    line = assert_one_error(*run(["eval", "detection", "--pred", plane.parent, "--gt", files["annotation"]],
                                 capsys)[:2], "Task1_plane.txt: file name: unknown class 'plane'",
                            "--aliases dota_to_star")
    assert ": f:" not in line


def test_seen_geojson_without_crs_is_refused(files, tmp_path, capsys):
    rc, lines, _ = run(["export", files["nocrs_graph"], "--to", "geojson", "--out", tmp_path / "x.geojson"], capsys)
    assert_one_error(rc, lines, "no CRS", ".gpkg", ".graphml")
    assert not list(tmp_path.iterdir())
    rc, _, _ = run(["export", files["gpkg"], "--out", tmp_path / "ok.geojson"], capsys)  # with a CRS: EPSG:4326
    import json

    lon, lat = json.loads((tmp_path / "ok.geojson").read_text())["features"][0]["geometry"]["coordinates"][0][0]
    assert rc == 0 and -180 <= lon <= 180 and -90 <= lat <= 90


def test_seen_nonsense_is_refused(files, tmp_path, capsys):
    G, A = files["gpkg"], files["annotation"]
    cases = [(["eval", "detection", "--pred", G, "--gt", A, "--iou-threshold", "7"], "--iou-threshold"),
             (["detect", files["raster"], "--weights", files["weights_text"], "--tile-size", "0"], "--tile-size"),
             (["synth", "--out", tmp_path / "ds", "--split", "0.5", "0.5", "0.5"], "--split"),
             (["export", G, "--to", "gpkg", "--out", tmp_path / "o.gpkg", "--top-k", "-1"], "--top-k"),
             (["export", G, "--to", "gpkg", "--out", tmp_path / "o.gpkg", "--distance", "9"], "--distance"),
             (["export", G, "--to", "geojson", "--out", tmp_path / "x.gpkg"], "--out"),
             (["synth", "--out", files["dir"].parent], "--overwrite")]
    for argv, name in cases:
        assert_one_error(*run(argv, capsys)[:2], name)
    assert not list(tmp_path.iterdir())


def test_seen_checkpoint_errors_say_what_is_wrong(files, tmp_path, capsys):
    R, out = files["raster"], ["--out", str(tmp_path / "o.gpkg")]
    line = assert_one_error(*run(["detect", R, "--weights", files["weights_text"], *out], capsys)[:2], "weights.pt")
    assert "text file" in line and "IndexError" not in line
    line = assert_one_error(*run(["detect", R, "--weights", files["weights_empty"], *out], capsys)[:2], "empty.pt")
    assert "empty" in line and "EOFError" not in line
    if not torch.cuda.is_available():
        line = assert_one_error(*run(["detect", R, "--weights", files["weights_text"], "--device", "cuda", *out],
                                     capsys)[:2], "--device cuda", "CUDA is not available")
        assert "checkpoint" not in line


@pytest.mark.parametrize("fmt", ["gpkg", "geojson", "parquet", "graphml", "json", "scene"])
def test_seen_eval_reads_every_format_sgg_writes(files, fmt, capsys):
    rc, lines, out = run(["eval", "detection", "--pred", files[fmt], "--gt", files["annotation"]], capsys)
    assert rc == 0 and lines == [] and "mAP@0.50" in out and out.rstrip().endswith("1.0000")
    rc, lines, out = run(["eval", "detection", "--pred", files["annotation"], "--gt", files[fmt]], capsys)
    assert rc == 0 and lines == [] and out.rstrip().endswith("1.0000")  # as ground truth too


def test_seen_stale_parts_of_a_killed_export_are_removed(files, tmp_path, capsys):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=False)
    pid = int(dead.stdout)
    stale = tmp_path / f".o.{pid}.0123abcd.part.gpkg"
    stale.write_bytes(b"x" * 100)
    (tmp_path / (stale.name + "-journal")).write_bytes(b"j")
    live = tmp_path / f".o.{os.getpid()}.89abcdef.part.gpkg"  # a writer still running: left alone
    live.write_bytes(b"y")
    assert run(["export", files["gpkg"], "--out", tmp_path / "o.gpkg"], capsys)[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["o.gpkg", live.name])


def test_seen_help_texts(capsys):
    import subprocess
    import sys

    assert main(["detect", "--help"]) == 0
    text = capsys.readouterr().out
    assert "(default: 0.05)" in text and "(default: guided)" in text
    code = ("import sys; from sgg.cli import main; main(['train', 'detector', '--help']); "
            "print('LIGHTNING' if 'pytorch_lightning' in sys.modules else 'no lightning')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    lines = res.stdout.strip().splitlines()
    assert res.returncode == 0 and lines[-1] == "no lightning" and len(lines) < 80
    assert "--data.data_dir" in res.stdout and "--model.backbone" in res.stdout


def test_progress_lines_for_logs():
    import io

    from sgg.cli_support import LineProgress

    out = io.StringIO()
    p = LineProgress("detect", interval=60.0, stream=out)
    clock = iter([0.0, 1.0, 70.0, 71.0, 72.0])
    p._clock = lambda: next(clock)
    p._start = p._last = 0.0
    for level, done, total in [(2, 1, 4), (2, 2, 4), (2, 3, 4), (2, 4, 4), (1, 1, 9)]:
        p(level, done, total)
    lines = out.getvalue().splitlines()  # 0 s, 1 s: too soon; 70 s: due; 71 s: level done; 72 s: too soon
    assert lines == ["sgg detect: level 2: 3/4 tiles (75%), 70 s", "sgg detect: level 2: 4/4 tiles (100%), 71 s"]


def test_sigterm_unwinds_like_ctrl_c(files, tmp_path, capsys, monkeypatch):
    import signal

    from sgg.detectors import inference

    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:  # the runner handles SIGTERM itself
        pytest.skip("SIGTERM has a handler in this test runner; sgg leaves it alone")

    def terminated(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        pytest.fail("SIGTERM did not interrupt")

    monkeypatch.setattr(inference, "scenes_from_dota", terminated)
    rc, lines, _ = run(["detect", files["raster"], "--from-dota", files["dir"], "--out", tmp_path / "o.gpkg"], capsys)
    assert rc == 143 and lines == ["sgg detect: terminated; no half-written file is left"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and not list(tmp_path.iterdir())


def test_global_flags_reach_commands_with_plain_parsers(files, capsys):
    from sgg.errors import SggInputError

    # `sgg --debug CMD`: the flag is not handed to the command's own parser (fitrs uses plain argparse)
    with pytest.raises(SggInputError):
        main(["--debug", "fitrs", "caption", str(files["raster"])])
    rc, lines, _ = run(["--quiet", "fitrs", "caption", files["raster"]], capsys)
    assert_one_error(rc, lines, "scene.tif")
    from sgg.cli_support import GLOBAL

    assert GLOBAL == {"debug": False, "quiet": False}
