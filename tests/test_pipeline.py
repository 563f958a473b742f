"""sgg.Pipeline: configs, stage seams, metadata, the resumable tile ledger, previews and `sgg infer` outputs.

A fake detector that boxes bright rectangles keeps these fast; the shipped weights run in the notebook test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from sgg.errors import SggInputError
from sgg.io import write_geotiff
from sgg.pipeline import DEFAULTS, Pipeline, TileLedger, _stage_module, load_config, resolve_config
from sgg.structures import Detections, PairSet, SceneGraph, Vocabulary

ROOT = Path(__file__).resolve().parents[1]
VOC = Vocabulary(("car", "ship", "dock"), ("near", "docked at"))
CRS, TRANSFORM = "EPSG:32633", (0.1, 0.0, 400000.0, 0.0, -0.1, 5000000.0)  # 0.1 m: the bright "cars" (40 x 20 px) are 4 x 2 m, within the size filter


class BrightBoxes(torch.nn.Module):
    """Axis-aligned boxes around bright regions of channel c → class c (c = 0, 1, 2); counts tiles seen."""

    def __init__(self, fail_after: int | None = None):
        super().__init__()
        self.vocabulary = VOC
        self.inference = {"tile_size": 256, "overlap": 64}
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.tiles = 0
        self.fail_after = fail_after

    def forward(self, images: torch.Tensor) -> list[Detections]:
        if self.fail_after is not None and self.tiles + len(images) > self.fail_after:
            raise KeyboardInterrupt  # the run is killed here
        self.tiles += len(images)
        out = []
        for img in images.numpy():
            rows, labels = [], []
            for c in range(3):
                lab, _ = ndimage.label(img[c] > 0.5)
                for sl in ndimage.find_objects(lab):
                    y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
                    rows.append([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, 0.0])
                    labels.append(c)
            out.append(Detections(torch.tensor(rows, dtype=torch.float32).reshape(-1, 5), labels,
                                  torch.full((len(rows),), 0.9)))
        return out


class CentreBox(BrightBoxes):
    """One box at each tile's centre (real imagery would give BrightBoxes thousands of noise blobs)."""

    def forward(self, images: torch.Tensor) -> list[Detections]:
        self.tiles += len(images)
        h, w = images.shape[-2:]
        box = torch.tensor([[w / 2, h / 2, w / 8, h / 16, 0.3]])
        return [Detections(box, [1], [0.8]) for _ in images]


class NearHead:
    """A weight-free relation head: 'near' scored by closeness (tests the pluggable seam)."""

    def predict(self, graph):
        c = graph.detections.boxes.centers
        d = (c[graph.pairs.subjects] - c[graph.pairs.objects]).norm(dim=1)
        near = 1.0 / (1.0 + d / 100.0)
        scores = torch.stack([1 - near, near, torch.zeros_like(near)], dim=1)
        return graph.replace(predicate_scores=scores) if hasattr(graph, "replace") else \
            type(graph)(**{**graph.__dict__, "predicate_scores": scores})


def all_pairs(det: Detections) -> PairSet:
    n = len(det)
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = i != j
    p = torch.stack([i[keep], j[keep]], 1)
    return PairSet(p, -(det.boxes.centers[p[:, 0]] - det.boxes.centers[p[:, 1]]).norm(dim=1))


def make_scene(tmp_path: Path, size=(700, 500), name="scene.tif") -> Path:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.repeat(((xx * 7 + yy * 3) % 97).astype(np.uint8)[:, :, None], 3, axis=2)  # every tile differs
    for x0, y0, x1, y1, c in [(40, 40, 80, 60, 0), (300, 200, 360, 230, 1), (380, 190, 600, 215, 2),
                              (620, 420, 660, 440, 0), (240, 100, 290, 140, 1)]:
        img[y0:y1, x0:x1, c] = 255
    return write_geotiff(tmp_path / name, img, crs=CRS, transform=TRANSFORM)


def fake_pipeline(model=None, **cfg) -> Pipeline:
    base = {"detector": {"weights": None, "zoom": "full"}, "pairs": {"proposer": "injected"},
            "relations": {"head": "injected"}, "caption": False}
    base.update(cfg)
    return Pipeline(base, detector=model or BrightBoxes(), pair_proposer=all_pairs, relation_head=NearHead())


# ------------------------------------------------------------------------------------------ configs
def test_config_files_match_the_code():
    assert load_config(ROOT / "configs/pipeline/default.yaml") == DEFAULTS
    from sgg.demo import DEMO_CONFIG

    assert load_config(ROOT / "configs/pipeline/demo.yaml") == resolve_config(DEMO_CONFIG)
    for name in ("predcls.yaml", "dota_results.yaml"):
        load_config(ROOT / "configs/pipeline" / name)  # valid keys


def test_config_errors_name_the_key_and_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("detector:\n  tile_sise: 512\n")
    with pytest.raises(SggInputError, match=r"bad.yaml.*detector\.tile_sise"):
        load_config(bad)
    bad.write_text("detector: [1, 2\n")
    with pytest.raises(SggInputError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(SggInputError, match="unknown config key 'pairs.bugdet'"):
        resolve_config(**{"pairs.bugdet": 3})
    cfg = resolve_config({"pairs": None}, **{"detector.tile_size": 384})
    assert cfg["pairs"] is None and cfg["detector"]["tile_size"] == 384 and cfg["detector"]["zoom"] == "guided"


def test_missing_stage_is_a_clear_error():
    with pytest.raises(SggInputError, match="sgg.no_such_stage .*not available in this build"):
        _stage_module("sgg.no_such_stage")


def test_missing_or_bad_weights(tmp_path):
    with pytest.raises(SggInputError, match="detector weights not found"):
        Pipeline.from_checkpoints(detector=tmp_path / "nope.pt", pairs=None, relations=None).check()
    with pytest.raises(SggInputError, match="not a torch device"):
        Pipeline({"device": "gpu7", "pairs": None, "relations": None}).check()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SggInputError, match="junk.pt"):
        Pipeline.from_checkpoints(detector=junk, pairs=None, relations=None).check()


# ------------------------------------------------------------------------------------------ running
def test_run_chains_stages_and_records_metadata(tmp_path):
    path = make_scene(tmp_path)
    pipe = fake_pipeline()
    pipe.models["detector"] = "fake@0123"
    sg = pipe.run(path)
    assert len(sg.detections) == 5
    assert sorted(sg.detections.labels.tolist()) == [0, 0, 1, 1, 2]
    assert len(sg.pairs) == 20 and sg.predicate_scores.shape == (20, 3)
    assert set(sg.metadata["timing_s"]) == {"detect", "pairs", "relations", "total"}
    assert sg.metadata["models"]["detector"] == "fake@0123" and sg.metadata["mode"] == "sgdet"
    # the closest pair ranks first: ship (240..290) near ship/dock? centres: (265,120) & (330,215) vs dock (490,202)
    top = sg.triplets(top_k=1)
    c = sg.detections.boxes.centers
    d = (c[:, None] - c[None]).norm(dim=2) + torch.eye(5) * 1e9
    assert d[top["subject"][0], top["object"][0]] == d.min()
    # metadata reaches the GeoPackage's run table
    from sgg.graph import export, read

    export(sg, tmp_path / "g.gpkg")
    back = read(tmp_path / "g.gpkg")
    assert back.metadata["models"]["detector"] == "fake@0123"
    assert back.metadata["timing_s"]["total"] == pytest.approx(sg.metadata["timing_s"]["total"])


def test_pair_budget_keeps_the_best_scored_pairs(tmp_path):
    pipe = fake_pipeline(pairs={"proposer": "injected", "budget": 3})
    sg = pipe.run(make_scene(tmp_path))
    ref = all_pairs(sg.detections)  # scores: minus centre distance
    order = torch.argsort(ref.scores, descending=True, stable=True)[:3]
    assert torch.equal(sg.pairs.pairs, ref.pairs[order])
    # out-of-range pair scores are mapped into (0, 1] in order: exp(s - max s)
    assert torch.allclose(sg.pairs.scores, torch.exp(ref.scores[order] - ref.scores.max()))


def test_predcls_and_dota_results_feed_the_pipeline(tmp_path):
    from sgg.datasets import write_dota_results
    from sgg.datasets.native import write_scene_json
    from sgg.detectors.inference import detect_scene

    path = make_scene(tmp_path)
    det = detect_scene(BrightBoxes(), path, zoom="full", progress=False, vocabulary=VOC)
    star = Vocabulary.star()
    to_star = torch.tensor([star.object_index(n) for n in ("car", "ship", "dock")])
    gt = SceneGraph(Detections(det.detections.boxes, to_star[det.detections.labels]), vocabulary=star,
                    image_size=det.image_size)
    write_scene_json(gt, tmp_path / "ann" / "scene.json")
    pipe = Pipeline({"detector": {"weights": None, "from_annotation": str(tmp_path / "ann")}, "pairs": None,
                     "relations": None, "caption": False})
    sg = pipe.run(path)
    assert pipe.mode == "predcls" and torch.allclose(sg.detections.boxes.tensor, gt.detections.boxes.tensor, atol=1e-4)
    assert sg.georef is not None and sg.georef.transform == TRANSFORM
    write_dota_results({"scene": gt.detections}, tmp_path / "dota", star)
    pipe = Pipeline({"detector": {"weights": None, "from_dota": str(tmp_path / "dota")}, "pairs": None,
                     "relations": None, "caption": False})
    sg2 = pipe.run(path)
    assert pipe.mode == "dota" and len(sg2.detections) == len(gt.detections)
    assert sorted(sg2.detections.labels.tolist()) == sorted(gt.detections.labels.tolist())


# ------------------------------------------------------------------------------------------ ledger
def _layers(gpkg: Path):
    import geopandas as gpd

    objs = gpd.read_file(gpkg, layer="objects").drop(columns="geometry")
    rels = gpd.read_file(gpkg, layer="relations").drop(columns="geometry")
    return objs.sort_values(["cx", "cy"]).reset_index(drop=True), rels.sort_values(["subject", "object"]).reset_index(drop=True)


def test_killed_run_resumes_from_the_ledger_and_writes_the_same_layers(tmp_path):
    from sgg.infer_cli import run_scenes

    path = make_scene(tmp_path, size=(900, 700))
    full = fake_pipeline()
    assert run_scenes(full, [str(path)], tmp_path / "a", ["gpkg"], quiet=True) == 0
    n_tiles = full._detector.tiles
    assert n_tiles >= 6

    killed = fake_pipeline(BrightBoxes(fail_after=4))
    assert run_scenes(killed, [str(path)], tmp_path / "b", ["gpkg"], quiet=True) == 130
    assert not (tmp_path / "b" / "scene.gpkg").exists()  # nothing half-written
    stored = list((tmp_path / "b" / ".sgg-ledger").rglob("*.pt"))
    assert len(stored) == killed._detector.tiles >= 3  # every tile finished before the kill (batches of ≤ 2)

    again = fake_pipeline()
    assert run_scenes(again, [str(path)], tmp_path / "b", ["gpkg"], quiet=True) == 0
    assert again._detector.tiles == n_tiles - len(stored)  # finished tiles skipped
    assert not (tmp_path / "b" / ".sgg-ledger").exists()  # cleaned up after success
    for x, y in zip(_layers(tmp_path / "a" / "scene.gpkg"), _layers(tmp_path / "b" / "scene.gpkg")):
        assert x.equals(y)


def test_tile_cache_round_trips_results_and_keys_on_the_run(tmp_path):
    from sgg.detectors.inference import TileResult

    led = TileLedger(tmp_path)
    assert led.run_dir("a@1", {}) != led.run_dir("a@2", {}) != led.run_dir("a@1", {"tile_size": 512})
    det = Detections(torch.tensor([[10.0, 20, 8, 4, 0.3]]), [2], [0.7], torch.rand(1, 6).half(), [1],
                     torch.softmax(torch.rand(1, 4), 1))
    res = TileResult(1, (0.0, 512.0, 1024.0, 1024.0), 2.0, det)
    cache = led.cache("m@1", {"tile_size": 512})
    assert cache.get(res.key) is None and len(cache) == 0
    cache[res.key] = res
    back = led.cache("m@1", {"tile_size": 512})[res.key]
    assert (back.level, back.window, back.scale) == (1, (0.0, 512.0, 1024.0, 1024.0), 2.0)
    for name in ("labels", "scores", "features", "levels", "class_scores"):
        assert torch.equal(getattr(back.detections, name), getattr(det, name)), name
    assert torch.equal(back.detections.boxes.tensor, det.boxes.tensor)
    assert led.cache("m@2", {"tile_size": 512}).get(res.key) is None  # other weights: other run
    assert list(cache) == [res.key]
    del cache[res.key]
    assert len(cache) == 0


# ------------------------------------------------------------------------------------------ outputs
def test_preview_draws_footprints_in_class_colours_and_arrows(tmp_path):
    from sgg.preview import _colour, render_preview

    det = Detections(torch.tensor([[50.0, 50, 40, 20, 0], [150, 150, 30, 30, 0]]), [0, 2])
    sg = SceneGraph(det, PairSet([[0, 1]]), predicate_scores=torch.tensor([[0.1, 0.9, 0.0]]), vocabulary=VOC)
    img = render_preview(sg, tmp_path / "p.png", image=np.zeros((200, 200, 3), np.uint8), legend=0)
    arr = np.asarray(img)
    assert tuple(arr[50, 30]) == _colour(0)  # left edge of box 0
    assert tuple(arr[150, 165]) == _colour(2)  # right edge of box 1
    assert tuple(arr[100, 100]) == (255, 255, 255)  # the arrow passes the midpoint
    assert tuple(arr[100, 20]) == (0, 0, 0)
    assert (tmp_path / "p.png").is_file()


def test_infer_outputs_and_summary(tmp_path, capsys):
    from sgg.graph import read
    from sgg.infer_cli import run_scenes, summary

    path = make_scene(tmp_path)
    assert run_scenes(fake_pipeline(), [str(path)], tmp_path / "out", ["gpkg", "graphml", "preview"]) == 0
    out = capsys.readouterr().out
    assert "scene: 5 objects, 20 pairs" in out and "2 car" in out and "top relations (probabilities):" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scene.gpkg", "scene.graphml", "scene.preview.png"]
    g = read(tmp_path / "out" / "scene.gpkg")
    assert len(g.detections) == 5 and "timing_s" in g.metadata
    # a head ranking by count normalisation: its scores are named as ranks, not probabilities
    sg = fake_pipeline().run(path)
    assert sg.metadata["relation_ranking"] == {"logit_adjust": 0.0, "count_norm": 0.0}
    ranked = sg.replace(metadata={**sg.metadata, "relation_ranking": {"logit_adjust": 0.5, "count_norm": 0.5}})
    assert "top relations (ranking scores, count-normalised β 0.5):" in summary(ranked, "scene", [])


def test_every_real_raster_runs_or_fails_cleanly(real_dir, tmp_path, capsys):
    from sgg.infer_cli import run_scenes

    ras = real_dir / "rasterio"
    ok = ["RGBA.uint16.tif", "float_raster_with_nodata.tif", "shade.tif", "alpha.tif", "rgb1_fake_nir_epsg3857.tif",
          "world.byte.tif", "all-nodata.tif"]
    pipe = fake_pipeline(CentreBox(), detector={"weights": None, "zoom": "full", "tile_size": 256, "overlap": 0})
    with pytest.warns(UserWarning, match="no objects found"):
        assert run_scenes(pipe, [str(ras / f) for f in ok] + [str(real_dir / "dota" / "P1888.png")],
                          tmp_path, ["gpkg", "preview"], quiet=True) == 0
    for f in [*ok, "P1888.png"]:
        assert (tmp_path / (Path(f).stem + ".gpkg")).is_file(), f
    assert run_scenes(pipe, [str(ras / "corrupt.tif")], tmp_path / "bad", ["gpkg"], quiet=True) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "corrupt.tif" in err[0] and "Traceback" not in err[0]
    assert not any((tmp_path / "bad").glob("*.gpkg"))


def test_cli_refuses_bad_setup_without_partial_output(tmp_path, capsys):
    from sgg.cli import main

    scene = str(make_scene(tmp_path))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detector:\n  wieghts: x.pt\n")
    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    (tmp_path / "file").write_text("")
    cases = [(["--weights", str(tmp_path / "missing.pt")], "detector weights not found"),
             (["--config", str(cfg)], "unknown config key 'detector.wieghts'"),
             (["--weights", str(junk)], "junk.pt"),
             (["--pair-proposer", "none", "--relation-head", "none", "--formats", "gpkg"], None)]
    for i, (extra, msg) in enumerate(cases[:3]):
        assert main(["infer", scene, "--out", str(tmp_path / f"o{i}"), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err
        assert not (tmp_path / f"o{i}").exists()
    assert main(["infer", scene, "--out", str(tmp_path / "file" / "sub"), "--weights", "bundled"]) == 2
    assert "not writable" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ demo
@pytest.mark.slow  # loads every bundled model (the notebook test covers them in the default run)
def test_demo_stages_are_all_bundled():
    from sgg.demo import DEMO_CONFIG

    pipe = Pipeline(DEMO_CONFIG).check()
    assert set(pipe.models) == {"detector", "pairs", "relations"}
    assert pipe.models["detector"].startswith("hodnet_effl0_synth.pt@")
    assert pipe.models["pairs"].startswith("ppg_synth.pt@")
    assert pipe.models["relations"].startswith("rpcm_predcls_tri_synth.pt@")
    # every bundled file is in sgg/data/weights, so an installed wheel (no source tree) has them too
    for name in ("hodnet_effl0_synth.pt", "ppg_synth.pt", "rpcm_predcls_tri_synth.pt"):
        assert (Path(__file__).resolve().parents[1] / "sgg" / "data" / "weights" / name).is_file()
    assert callable(pipe.captioner)


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, capsys):
    from sgg.demo import main
    from sgg.graph import read

    out = tmp_path / "demo"
    assert main(["--out", str(out), "--size", "512"]) == 0
    printed = capsys.readouterr().out
    assert "Look at:" in printed and "harbour_512.preview.png" in printed
    assert sorted(p.name for p in out.iterdir()) == ["harbour_512.caption.txt", "harbour_512.gpkg",
                                                      "harbour_512.graphml", "harbour_512.preview.png", "harbour_512.qgz",
                                                      "sample"]
    g = read(out / "harbour_512.gpkg")
    assert len(g.detections) > 10 and len(g.pairs) > 0
    assert set(g.metadata["models"]) == {"detector", "pairs", "relations"}
    assert " shows " in (out / "harbour_512.caption.txt").read_text()


def test_config_paths_resolve_beside_the_config(tmp_path, monkeypatch):
    from sgg.datasets.native import write_scene_json

    path = make_scene(tmp_path)
    gt = SceneGraph(Detections(torch.tensor([[50.0, 50, 20, 10, 0]]), [7]), image_size=(700, 500))
    (tmp_path / "cfg").mkdir()
    write_scene_json(gt, tmp_path / "cfg" / "truth.json")
    (tmp_path / "cfg" / "p.yaml").write_text("detector:\n  weights: null\n  from_annotation: truth.json\n"
                                             "pairs: null\nrelations: null\ncaption: false\n")
    monkeypatch.chdir(tmp_path)  # the working directory has no truth.json
    sg = Pipeline.from_config(tmp_path / "cfg" / "p.yaml").run(path)
    assert sg.detections.labels.tolist() == [7] and sg.metadata["mode"] == "predcls"
    assert sg.pairs.pairs.shape == (0, 2) and sg.predicate_scores is None


def test_cli_options_reach_the_pipeline(tmp_path, capsys):
    from sgg.cli import main
    from sgg.datasets.synthetic import generate_scene
    from sgg.graph import read

    truth = generate_scene(5, size=512, layout="harbour", out_path=tmp_path / "lot.tif")
    from sgg.datasets.native import write_scene_json

    write_scene_json(truth, tmp_path / "ann" / "lot.json")
    out = tmp_path / "out"
    rc = main(["infer", str(tmp_path / "lot.tif"), "--out", str(out), "--from-annotation", str(tmp_path / "ann"),
               "--pair-budget", "5", "--relation-head", "frequency", "--formats", "gpkg,caption", "--top-k", "3"])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["lot.caption.txt", "lot.gpkg"]
    g = read(out / "lot.gpkg")
    assert len(g.detections) == len(truth.detections) and g.metadata["mode"] == "predcls"
    assert g.metadata["models"]["relations"] == "FrequencyPrior.from_star"
    assert len(g.pairs) == 3  # --top-k relations exported, from the 5 pairs kept
    assert "lot: " in capsys.readouterr().out


def test_infer_output_threshold_and_qgis_project(tmp_path):
    """`sgg infer` writes only objects at or above --min-score, records both thresholds, and a .qgz that
    opens the raster under the GeoPackage's layers."""
    import zipfile

    from sgg.cli import main as sgg_main
    from sgg.datasets.native import write_scene_json
    from sgg.datasets.synthetic import generate_scene
    from sgg.graph import read

    tif = tmp_path / "s.tif"
    gt = generate_scene(4, 512, out_path=tif)
    scores = torch.linspace(0.05, 0.95, len(gt.detections))
    ann = gt.replace(detections=type(gt.detections)(gt.detections.boxes, gt.detections.labels, scores))
    write_scene_json(ann, tmp_path / "s.json")
    out = tmp_path / "out"
    assert sgg_main(["infer", str(tif), "--from-annotation", str(tmp_path / "s.json"), "--out", str(out),
                     "--relation-head", "frequency", "--pair-proposer", "none", "--min-score", "0.5", "--quiet"]) == 0
    back = read(out / "s.gpkg")
    assert len(back.detections) == int((scores >= 0.5).sum()) and bool((back.detections.scores >= 0.5).all())
    assert back.metadata["thresholds"]["output"] == {"default": 0.5} or back.metadata["thresholds"]["output"] == 0.5
    with zipfile.ZipFile(out / "s.qgz") as z:
        qgs = z.read(next(n for n in z.namelist() if n.endswith(".qgs"))).decode()
    assert "s.gpkg" in qgs and "s.tif" in qgs


def test_pair_budget_auto_scales_with_the_scene(tmp_path):
    from sgg.pairs import auto_budget
    from sgg.pipeline import pair_limit

    assert DEFAULTS["pairs"]["budget"] == "auto"
    assert pair_limit("auto", 100) == 10_000 and pair_limit("auto", 2_000) == 64_000 == auto_budget(2_000)
    assert pair_limit(None, 5) is None and pair_limit(7, 5) == 7
    for bad in (-1, "lots", 2.5, True):
        with pytest.raises(SggInputError, match="pairs.budget"):
            pair_limit(bad, 5)
    # a proposer with a budget attribute is handed "auto" itself (it resolves it on the scene's N)
    seen = []

    class Proposer:
        budget = 10_000

        def __call__(self, det):
            seen.append(self.budget)
            return all_pairs(det)

    pipe = fake_pipeline()
    pipe._proposer = Proposer()
    sg = pipe.run(make_scene(tmp_path))
    assert seen == ["auto"] and sg.metadata["pair_budget"] == 10_000
    assert len(sg.pairs) == len(all_pairs(sg.detections))  # fewer than the budget: all kept
    from sgg.infer_cli import build_parser

    args = build_parser().parse_args(["x.tif", "--out", "o", "--pair-budget", "auto"])
    assert args.pair_budget == "auto"
    assert build_parser().parse_args(["x.tif", "--out", "o", "--pair-budget", "500"]).pair_budget == 500


def test_pipeline_gsd_and_size_filter_reach_detect_scene(tmp_path):
    path = make_scene(tmp_path)  # 0.1 m pixels: the 40 x 20 px "cars" are 4 x 2 m
    sg = fake_pipeline().run(path)
    assert len(sg.detections) == 5 and sg.metadata["gsd"] == pytest.approx(0.1)
    assert sg.metadata["gsd_source"] == "raster"
    # read as 2 m pixels the same boxes are 80 x 40 m cars: impossible, dropped by the size filter
    big = fake_pipeline(detector={"weights": None, "zoom": "full", "gsd": 2.0}).run(path)
    assert big.metadata["gsd"] == pytest.approx(2.0) and big.metadata["gsd_source"] == "argument"
    assert len(big.detections) < len(sg.detections)
    kept = fake_pipeline(detector={"weights": None, "zoom": "full", "gsd": 2.0, "size_filter": False}).run(path)
    assert len(kept.detections) == 5


def test_infer_cli_gsd_options_reach_the_config():
    from sgg.infer_cli import build_parser, pipeline_from_args

    def config(*argv):
        args = build_parser().parse_args(["x.tif", "--out", "o", *argv])
        args._pair_given = args._head_given = False  # set by the command from its argv
        return pipeline_from_args(args).config["detector"]

    cfg = config("--gsd", "0.3", "--no-size-filter")
    assert cfg["gsd"] == 0.3 and cfg["size_filter"] is False
    cfg = config()
    assert cfg["gsd"] is None and cfg["size_filter"] is True
    from sgg.cli_support import UsageError

    with pytest.raises(UsageError, match="--gsd: must be > 0"):
        build_parser().parse_args(["x.tif", "--out", "o", "--gsd", "0"])


def test_relation_count_norm_key_and_infer_option():
    """``relations.count_norm`` sets the head's per-graph ranking (null: the head's own; the frequency prior's
    is 0.75); ``sgg infer --count-norm`` reaches it; bad values are refused naming the key."""
    from sgg.infer_cli import build_parser, pipeline_from_args

    assert Pipeline({}).relation_head.count_norm == 0.75
    assert Pipeline({"relations": {"head": "frequency", "count_norm": 0}}).relation_head.count_norm == 0.0
    for bad in (-1, "x", True):
        with pytest.raises(SggInputError, match="relations.count_norm"):
            Pipeline({"relations": {"head": "frequency", "count_norm": bad}}).relation_head  # noqa: B018

    def head(*argv):
        args = build_parser().parse_args(["x.tif", "--out", "o", *argv])
        args._pair_given = False
        args._head_given = "--relation-head" in argv
        return pipeline_from_args(args).relation_head

    assert head("--count-norm", "0.2").count_norm == 0.2
    assert head("--relation-head", "frequency", "--count-norm", "0").count_norm == 0.0
    assert head().count_norm == 0.75
    from sgg.cli_support import UsageError

    with pytest.raises(UsageError, match="--count-norm"):
        build_parser().parse_args(["x.tif", "--out", "o", "--count-norm", "-1"])


def test_pipeline_tta_runs_every_view_and_is_recorded(tmp_path):
    path = make_scene(tmp_path)
    model, plain_model = BrightBoxes(), BrightBoxes()
    plain = fake_pipeline(plain_model).run(path)
    sg = fake_pipeline(model, detector={"weights": None, "zoom": "full", "tta": "d2"}).run(path)
    assert len(sg.detections) == len(plain.detections) == 5
    assert torch.allclose(sg.detections.scores, plain.detections.scores)  # every view agrees: score kept
    assert sg.metadata["tta"] == ["identity", "hflip", "vflip", "transpose"] and "tta" not in plain.metadata
    assert model.tiles == 4 * plain_model.tiles > 0
    from sgg.infer_cli import build_parser, pipeline_from_args

    args = build_parser().parse_args(["x.tif", "--out", "o", "--tta", "flips"])
    args._pair_given = args._head_given = False
    assert pipeline_from_args(args).config["detector"]["tta"] == ["identity", "hflip", "vflip"]
    args = build_parser().parse_args(["x.tif", "--out", "o", "--tta", "spin45"])
    args._pair_given = args._head_given = False
    with pytest.raises(SggInputError, match="spin45"):
        pipeline_from_args(args)
