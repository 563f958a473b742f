"""Synthetic scene generator: determinism, georeferencing, box/drawing agreement, rule-made relations, STAR
long-tail agreement (Spearman against the real STAR triplet counts) and the ``sgg synth`` command."""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter

import numpy as np
import pytest
import torch

from sgg.datasets.synthetic import generate_scene
from sgg.datasets.synthetic.relations import relations
from sgg.datasets.synthetic.render import SHAPES, place
from sgg.structures import Vocabulary


def _preds(names, geo):
    s, o, p = relations(np.array(names, dtype=object), {k: np.asarray(v, float) for k, v in geo.items()})
    return {(int(a), str(c), int(b)) for a, b, c in zip(s, o, p)}


def _geo(rows):
    """rows: (name, cx, cy, L, W, heading_deg) → names, geo dict."""
    names = [r[0] for r in rows]
    geo = {"cx": [r[1] for r in rows], "cy": [r[2] for r in rows], "L": [r[3] for r in rows], "W": [r[4] for r in rows],
           "heading": [math.radians(r[5]) for r in rows]}
    return names, geo


@pytest.fixture(scope="module")
def scene1024():
    return generate_scene(3, 1024, layout="mixed", return_image=True)


def test_deterministic_by_seed(scene1024):
    sg, img = scene1024
    sg2, img2 = generate_scene(3, 1024, layout="mixed", return_image=True)
    assert torch.equal(sg.detections.boxes.tensor, sg2.detections.boxes.tensor)
    assert torch.equal(sg.detections.labels, sg2.detections.labels)
    assert torch.equal(sg.pairs.pairs, sg2.pairs.pairs) and torch.equal(sg.predicate_labels, sg2.predicate_labels)
    assert hashlib.sha256(img.tobytes()).hexdigest() == hashlib.sha256(img2.tobytes()).hexdigest()
    sg3 = generate_scene(4, 1024, layout="mixed")
    assert len(sg3.detections) != len(sg.detections) or not torch.equal(sg3.detections.boxes.tensor, sg.detections.boxes.tensor)


def test_annotation_is_well_formed(scene1024):
    sg, img = scene1024
    assert img.shape == (1024, 1024, 3) and img.dtype == np.uint8
    assert sg.image_size == (1024, 1024)
    assert len(sg.detections) > 50 and bool((sg.detections.scores == 1).all())
    b32 = sg.detections.boxes.tensor.numpy()
    half = np.float32(math.pi / 2)
    assert (b32[:, 2] >= b32[:, 3]).all() and (b32[:, 4] >= -half).all() and (b32[:, 4] < half).all()
    b = b32.astype(np.float64)
    c, s = np.cos(b[:, 4]), np.sin(b[:, 4])
    ex = 0.5 * (b[:, 2] * np.abs(c) + b[:, 3] * np.abs(s))
    ey = 0.5 * (b[:, 2] * np.abs(s) + b[:, 3] * np.abs(c))
    assert (b[:, 0] - ex >= -1e-3).all() and (b[:, 0] + ex <= 1024 + 1e-3).all()
    assert (b[:, 1] - ey >= -1e-3).all() and (b[:, 1] + ey <= 1024 + 1e-3).all()
    p = sg.pairs.pairs
    assert len(p) > 50 and bool((p[:, 0] != p[:, 1]).all())
    rows = {(int(a), int(b_), int(c_)) for (a, b_), c_ in zip(p.tolist(), sg.predicate_labels.tolist())}
    assert len(rows) == len(p)  # no duplicate relation rows
    assert sg.georef is not None and "UTM zone 33N" in sg.georef.crs_wkt


def test_square_boxes_take_the_canonical_quarter_turn():
    # energy sites hold round tanks and towers (square boxes) on frames turned by quarter turns: a square is the
    # same box at angle a and a +- pi/2, and le90's canonical form keeps the one in [-pi/4, pi/4)
    b = generate_scene(1, 900, layout="energy").detections.boxes.tensor
    square = b[:, 2] == b[:, 3]
    assert int(square.sum()) >= 5
    assert bool((b[square, 4] >= -math.pi / 4).all() and (b[square, 4] < math.pi / 4).all())
    assert bool((b[~square, 2] > b[~square, 3]).all())


def test_boxes_are_minimum_rectangles_of_drawn_shapes():
    shapely = pytest.importorskip("shapely")
    rng = np.random.default_rng(0)
    for name, shape in SHAPES.items():
        for _ in range(3):
            L, h = rng.uniform(20, 80), rng.uniform(-3, 3)
            W = L * rng.uniform(0.85, 1.1) if name.startswith("plane") else L * rng.uniform(0.1, 0.9)  # span ≈ length
            poly = shapely.Polygon(place(shape, 100.0, 50.0, L, W, h))
            # tight in the object's own frame: unrotated, the drawing spans exactly L × W around the centre
            local = shapely.Polygon(place(shape, 0.0, 0.0, L, W, 0.0))
            assert local.bounds == pytest.approx((-L / 2, -W / 2, L / 2, W / 2), abs=1e-6), name
            if name.startswith("plane"):  # wings tilt a plane's minimum rectangle; boxes follow the fuselage (as DOTA)
                continue
            mrr = poly.minimum_rotated_rectangle
            assert mrr.area == pytest.approx(L * W, rel=0.02), name
            assert mrr.centroid.distance(shapely.Point(100, 50)) < 0.02 * L, name


def test_detailed_appearance_draws_inside_each_box_and_is_recorded():
    """``appearance="detailed"``: every decoration of a car, truck, engineering vehicle or airplane lies inside
    its object's box (so the annotation stays the tight box of what is drawn), both planforms occur, the
    scene says how it was drawn, and the basic look is untouched by the option's existence."""
    shapely = pytest.importorskip("shapely")
    from sgg.datasets.synthetic.builder import Builder
    from sgg.datasets.synthetic.layouts import compose
    from sgg.datasets.synthetic.sites import _detailed_airplane

    b = Builder(np.random.default_rng(0), 400.0, 400.0, detail=True)
    xs, ys, hs = np.full(40, 200.0), np.full(40, 200.0), np.linspace(-3, 3, 40)
    for cls in ("car", "truck", "engineering_vehicle"):
        b.cars(xs, ys, hs, cls)
    rng = np.random.default_rng(1)
    planes = [_detailed_airplane(rng, 50.0) for _ in range(60)]
    assert {p[1] for p in planes} == {"plane", "plane_straight"}
    items = [(o["shape"], o["deco"]) for o in b.objs] + [(p[1], p[3]) for p in planes]
    assert {s for s, _ in items} >= {"car", "rect", "plane", "plane_straight"}
    unit = shapely.box(-0.5 - 1e-9, -0.5 - 1e-9, 0.5 + 1e-9, 0.5 + 1e-9)
    for _, deco in items:
        assert len(deco) >= 3
        for shape, ox, oy, sl, sw, col in deco:
            assert unit.contains(shapely.Polygon(place(SHAPES[shape], ox, oy, sl, sw, 0.0))), (shape, ox, oy, sl, sw)
            assert len(col) == 3 and all(0 <= c <= 255 for c in col)
    sg, img = generate_scene(2, 512, gsd=0.125, layout="parking", appearance="detailed", return_image=True)
    basic, img0 = generate_scene(2, 512, gsd=0.125, layout="parking", return_image=True)
    assert sg.metadata["appearance"] == "detailed" and "appearance" not in basic.metadata
    assert not np.array_equal(img, img0)
    assert compose(np.random.default_rng(5), 300.0, 300.0, "parking").detail is False
    from sgg.errors import SggInputError

    with pytest.raises(SggInputError, match="unknown appearance"):
        generate_scene(0, 256, appearance="photoreal")


def _share_on_axes(sg, cls: str) -> tuple[int, float]:
    """(count, share within 0.05 rad of a quarter turn) of the headings of ``cls`` objects."""
    lab = sg.detections.labels.numpy() == Vocabulary.star().object_index(cls)
    a = sg.detections.boxes.tensor.numpy()[lab, 4]
    return int(lab.sum()), float(np.mean(np.abs((a + math.pi / 4) % (math.pi / 2) - math.pi / 4) < 0.05))


def test_site_angles_any_tilts_car_parks_airports_harbours():
    """``site_angles="any"``: car parks, airports and harbours are laid out off the image axes (their cars,
    aircraft and boats no longer sit on quarter turns), every object stays on the canvas, the scene records
    it; a tilted Frame is the largest rectangle of its proportions that fits the region, centred in it."""
    shapely = pytest.importorskip("shapely")
    from sgg.datasets.synthetic.builder import Builder, Frame
    from sgg.errors import SggInputError

    for layout, gsd, cls in (("parking", 0.25, "car"), ("airport", 0.5, "airplane"), ("harbour", 0.5, "boat")):
        axis, tilted = [], []
        for seed in range(3):
            axis.append(_share_on_axes(generate_scene(seed, 768, gsd, layout), cls))
            sg = generate_scene(seed, 768, gsd, layout, site_angles="any")
            tilted.append(_share_on_axes(sg, cls))
            assert sg.metadata["site_angles"] == "any"
            corners = sg.detections.boxes.corners().reshape(-1, 2)
            assert corners.min() >= 0 and corners.max() <= 768
        assert all(n > 0 for n, _ in axis + tilted), layout
        assert np.mean([s for _, s in axis]) > 0.75 and np.mean([s for _, s in tilted]) < 0.3, (layout, axis, tilted)
    b = Builder(np.random.default_rng(0), 500.0, 500.0)
    assert b.site_tilt() == 0.0 and "site_angles" not in generate_scene(0, 256).metadata
    region = shapely.box(100, 50, 400, 250)
    for k, tilt in ((0, 0.0), (1, 0.0), (0, 0.3), (1, -0.7), (3, 0.78)):
        f = Frame(b, 100, 50, 400, 250, k=k, tilt=tilt)
        quad = shapely.Polygon(np.column_stack(f.xy([0, f.U, f.U, 0], [0, 0, f.V, f.V])))
        assert quad.area == pytest.approx(f.U * f.V) and f.U / f.V == pytest.approx(300 / 200 if k % 2 == 0 else 200 / 300)
        assert region.buffer(1e-6).contains(quad) and quad.centroid.distance(region.centroid) < 1e-6
        # largest fit: the turned rectangle touches two opposite sides of the region
        x0, y0, x1, y1 = quad.bounds
        assert min(x0 - 100, 400 - x1) < 1e-6 or min(y0 - 50, 250 - y1) < 1e-6
        assert (f.c, f.s) == pytest.approx((math.cos(k * math.pi / 2 + tilt), math.sin(k * math.pi / 2 + tilt)), abs=1e-12)
    with pytest.raises(SggInputError, match="unknown site_angles"):
        generate_scene(0, 256, site_angles="diagonal")


def test_geotiff_georeferenced(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    path = tmp_path / "scene.tif"
    sg = generate_scene(5, (768, 512), gsd=0.3, layout="parking", out_path=path)
    with rasterio.open(path) as ds:
        assert (ds.width, ds.height, ds.count) == (768, 512, 3) and ds.dtypes[0] == "uint8"
        assert ds.crs.is_projected and ds.crs.to_epsg() == 32633
        assert ds.transform.a == pytest.approx(0.3) and ds.transform.e == pytest.approx(-0.3)
        assert tuple(ds.transform)[:6] == pytest.approx(sg.georef.transform)
        assert 100_000 < ds.transform.c < 900_000  # easting inside the UTM zone
        assert ds.profile.get("tiled") and ds.overviews(1)
    assert sg.image_path == str(path)


def test_rule_parked_on_and_alongside():
    # a lot along x; three cars nose-in (perpendicular to the lot axis), side by side; one car turned 40°;
    # one car outside the lot
    rows = [("car_parking", 50, 50, 60, 12, 0),
            ("car", 40.0, 47, 4.5, 1.8, 90), ("car", 42.6, 47, 4.5, 1.8, 90), ("car", 45.2, 47, 4.5, 1.8, -90),
            ("car", 55.0, 47, 4.5, 1.8, 130), ("car", 50, 90, 4.5, 1.8, 0)]
    rel = _preds(*_geo(rows))
    for car in (1, 2, 3):
        assert (car, "parallelly parked on", 0) in rel
    assert (4, "parallelly parked on", 0) not in rel and (4, "randomly parked on", 0) in rel
    assert not any(s == 5 and o == 0 for s, _, o in rel)  # outside the lot: not parked on it
    assert (1, "parked alongside with", 2) in rel and (2, "parked alongside with", 1) in rel and (2, "parked alongside with", 3) in rel
    assert (1, "parked alongside with", 3) not in rel  # not neighbours


def test_rule_emission_lines_docks_cranes():
    rows = [("chimney", 0, 0, 6, 6, 0), ("smoke", 60, 0, 120, 30, 0),  # big plume from chimney 0
            ("chimney", 500, 0, 6, 6, 0), ("smoke", 520, 0, 40, 12, 0),  # small plume
            ("lattice_tower", 1000, 0, 9, 9, 0), ("lattice_tower", 1090, 0, 9, 9, 0), ("lattice_tower", 1000, 30, 9, 9, 0),
            ("dock", 0, 500, 200, 20, 0), ("crane", 10, 500, 16, 30, 90), ("crane", 10, 600, 16, 30, 90),
            ("boat", -20, 517, 12, 4, 90), ("boat", -15, 517, 12, 4, 90)]
    rel = _preds(*_geo(rows))
    assert (0, "violently emit", 1) in rel and (0, "slightly emit", 1) not in rel
    assert (2, "slightly emit", 3) in rel and (2, "violently emit", 3) not in rel
    assert (4, "within same line of", 5) in rel and (4, "within same line of", 6) not in rel
    assert (4, "within different line of", 6) in rel
    assert (8, "over", 7) in rel and not any(s == 9 and p == "over" for s, p, _ in rel)
    assert (10, "parallelly docked at", 7) in rel and (10, "docked alongside with", 11) in rel


def _star_counts():
    from importlib import resources

    t = np.array(json.loads(resources.files("sgg.data").joinpath("star_triplet_counts.json").read_text()), dtype=np.float64)
    return t.sum(axis=(0, 1))


def _stats(seeds, size, layouts):
    from scipy.stats import spearmanr

    vocab = Vocabulary.star()
    counts = np.zeros(vocab.num_predicates)
    classes = Counter()
    for seed, layout in zip(seeds, layouts):
        sg = generate_scene(seed, size, layout=layout)
        counts += np.bincount(sg.predicate_labels.numpy(), minlength=vocab.num_predicates)
        classes.update(sg.detections.labels.tolist())
    covered = np.flatnonzero(counts[1:] > 0) + 1
    rho = spearmanr(counts[covered], _star_counts()[covered]).statistic
    return len(classes), len(covered), rho


def test_classes_predicates_and_star_long_tail_small():
    n_cls, n_pred, rho = _stats([0, 1, 2, 3, 4], 1280, ["mixed", "mixed", "harbour", "dam", "energy"])
    assert n_cls >= 30 and n_pred >= 30
    assert rho >= 0.6


@pytest.mark.slow
def test_star_long_tail_four_large_scenes():
    n_cls, n_pred, rho = _stats([0, 1, 2, 3], 2048, ["mixed"] * 4)
    assert n_cls >= 30 and n_pred >= 30
    assert rho >= 0.6


def test_cli_writes_dataset_and_round_trips(tmp_path):
    from sgg.datasets.cli import main
    from sgg.datasets.dota import read_dota_labels
    from sgg.datasets.native import read_scene_json

    out = tmp_path / "ds"
    assert main(["--out", str(out), "--scenes", "3", "--size", "384", "--seed", "7", "--layout", "parking", "--no-progress"]) == 0
    split = json.loads((out / "split.json").read_text())
    ids = sorted(split["train"] + split["val"] + split["test"])
    assert ids == ["s00000", "s00001", "s00002"] and all(split[k] for k in ("train", "val", "test"))
    for sid in ids:
        assert (out / "scenes" / f"{sid}.tif").is_file() and (out / "dota" / f"{sid}.txt").is_file()
    sg = read_scene_json(out / "annotations" / "s00000.json")
    ref = generate_scene(7 * 100003, 384, layout="parking")
    assert torch.allclose(sg.detections.boxes.tensor, ref.detections.boxes.tensor, atol=1e-3)
    assert torch.equal(sg.detections.labels, ref.detections.labels)
    assert torch.equal(sg.pairs.pairs, ref.pairs.pairs) and torch.equal(sg.predicate_labels, ref.predicate_labels)
    assert sg.georef.transform == pytest.approx(ref.georef.transform) and sg.image_size == (384, 384)
    dota = read_dota_labels(out / "dota" / "s00000.txt")
    assert len(dota.detections) == len(ref.detections)
    # same seed → same annotation bytes
    out2 = tmp_path / "ds2"
    assert main(["--out", str(out2), "--scenes", "1", "--size", "384", "--seed", "7", "--layout", "parking", "--no-progress"]) == 0
    assert (out2 / "annotations" / "s00000.json").read_bytes() == (out / "annotations" / "s00000.json").read_bytes()
    # --appearance detailed: recorded in the scene; an unknown look is a usage error, nothing written
    out3 = tmp_path / "ds3"
    assert main(["--out", str(out3), "--scenes", "1", "--size", "256", "--seed", "7", "--layout", "airport",
                 "--appearance", "detailed", "--no-progress"]) == 0
    assert read_scene_json(out3 / "annotations" / "s00000.json").metadata["appearance"] == "detailed"
    from sgg.cli_support import UsageError

    with pytest.raises(UsageError, match="--appearance: invalid choice"):
        main(["--out", str(tmp_path / "ds4"), "--appearance", "glossy"])
    assert not (tmp_path / "ds4").exists()
    assert main(["--out", str(tmp_path / "ds5"), "--scenes", "1", "--size", "256", "--seed", "7", "--layout",
                 "parking", "--site-angles", "any", "--no-progress"]) == 0
    assert read_scene_json(tmp_path / "ds5" / "annotations" / "s00000.json").metadata["site_angles"] == "any"


def test_vocabulary_subset_and_bad_input():
    from sgg.errors import SggInputError

    vocab = Vocabulary(("car", "car_parking"), ("parked alongside with", "parallelly parked on"))
    sg = generate_scene(1, 384, layout="parking", vocabulary=vocab)
    assert sg.vocabulary is vocab and len(sg.detections) > 10
    assert set(sg.detections.labels.tolist()) <= {0, 1} and set(sg.predicate_labels.tolist()) <= {1, 2}
    for layout in ("mixed", "harbour", "airport", "energy", "dam", "sports", "construction", "industrial"):
        for seed, size in ((0, 64), (1, (600, 160))):  # tiny and thin canvases: few objects, all on the canvas
            w, h = (size, size) if isinstance(size, int) else size
            sg, image = generate_scene(seed, size, layout=layout, return_image=True)
            assert image.shape == (h, w, 3) and image.dtype == np.uint8 and sg.image_size == (w, h)
            corners = sg.detections.boxes.corners()
            assert bool((corners[..., 0] >= 0).all() and (corners[..., 0] <= w).all()), layout
            assert bool((corners[..., 1] >= 0).all() and (corners[..., 1] <= h).all()), layout
            p = sg.pairs.pairs
            assert bool(((p >= 0) & (p < len(sg.detections))).all() and (p[:, 0] != p[:, 1]).all())
            assert bool((sg.predicate_labels > 0).all()) and len(sg.predicate_labels) == len(p)
            assert w < 100 or len(sg.detections) > 50  # 600 x 160 px still holds a strip of the site
    with pytest.raises(SggInputError, match="unknown layout"):
        generate_scene(0, 256, layout="moon")
    with pytest.raises(SggInputError):
        generate_scene(0, 16)
