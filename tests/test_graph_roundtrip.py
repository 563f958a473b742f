"""Round trips SceneGraph → networkx / every export format → SceneGraph (sgg.graph)."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pyproj
import pytest
import torch

from sgg.errors import SggInputError
from sgg.graph import export, from_networkx, read, to_networkx
from sgg.structures import Detections, GeoReference, PairSet, SceneGraph, Vocabulary

FORMATS = [".gpkg", ".geojson", ".parquet", ".graphml", ".json"]
UTM18 = pyproj.CRS.from_epsg(32618).to_wkt()
VOCAB = Vocabulary(("ship", "harbor", "car", "crane"), ("docked at", "parked alongside with", "near", "over"))


def synthetic_scene(n: int = 40, m: int = 60, seed: int = 0, predictions: bool = False) -> SceneGraph:
    """Random boxes, labels and relations (a pair may repeat with another predicate), UTM 18N georef."""
    g = torch.Generator().manual_seed(seed)
    boxes = torch.cat([torch.rand(n, 2, generator=g) * 900, torch.rand(n, 2, generator=g) * 60 + 2,
                       (torch.rand(n, 1, generator=g) - 0.5) * math.pi], 1)
    det = Detections(boxes, torch.randint(0, VOCAB.num_classes, (n,), generator=g),
                     torch.rand(n, generator=g), levels=torch.randint(0, 3, (n,), generator=g))
    s = torch.randint(0, n, (m,), generator=g)
    o = (s + torch.randint(1, n, (m,), generator=g)) % n
    pairs = PairSet(torch.stack([s, o], 1))
    common = dict(vocabulary=VOCAB, image_path="scene.tif", image_size=(1000, 950),
                  georef=GeoReference(UTM18, (0.3, 0.0, 441000.0, 0.0, -0.3, 4380000.0), source="scene.tif"),
                  metadata={"detector": "oriented-rcnn@abc123", "relation_model": "hetsgg v1", "seed": seed})
    if predictions:
        return SceneGraph(det, pairs, predicate_scores=torch.rand(m, VOCAB.num_predicates, generator=g), **common)
    labels = torch.randint(1, VOCAB.num_predicates, (m,), generator=g)
    return SceneGraph(det, pairs, predicate_labels=labels, difficult=torch.rand(n, generator=g) < 0.2, **common)


def assert_same_scene(a: SceneGraph, b: SceneGraph) -> None:
    assert torch.equal(a.detections.boxes.tensor, b.detections.boxes.tensor)
    assert torch.equal(a.detections.labels, b.detections.labels)
    assert torch.equal(a.detections.scores, b.detections.scores)
    la, lb = a.detections.levels, b.detections.levels
    assert (la is None and lb is None) or torch.equal(la, lb)
    assert torch.equal(a.pairs.pairs, b.pairs.pairs)
    assert torch.equal(a.predicate_labels, b.predicate_labels)
    assert (a.difficult is None) == (b.difficult is None)
    if a.difficult is not None:
        assert torch.equal(a.difficult, b.difficult)
    assert a.vocabulary == b.vocabulary
    assert a.georef == b.georef
    assert a.metadata == b.metadata
    assert a.image_path == b.image_path and a.image_size == b.image_size


# ----------------------------------------------------------------------------------------------
def test_to_networkx_structure():
    sg = synthetic_scene()
    g = to_networkx(sg)
    assert isinstance(g, nx.MultiDiGraph)
    assert g.number_of_nodes() == sg.num_objects and g.number_of_edges() == len(sg.pairs)
    assert g.graph["crs"] == UTM18 and g.graph["vocabulary"] == VOCAB.to_dict()
    assert g.graph["metadata"]["detector"] == "oriented-rcnn@abc123" and g.graph["sgg_version"]
    assert g.graph["image_path"] == "scene.tif" and g.graph["image_size"] == [1000, 950]
    nd = g.nodes[7]
    box = sg.detections.boxes.tensor[7].tolist()
    assert nd["box"] == box and nd["class"] == VOCAB.objects[int(sg.detections.labels[7])]
    assert nd["level"] == int(sg.detections.levels[7]) and nd["difficult"] == bool(sg.difficult[7])
    # polygon corners: centre is the box centre, side lengths are w and h (independent of corner order)
    poly = np.asarray(nd["polygon"])
    assert np.allclose(poly.mean(0), box[:2], atol=1e-6)
    sides = np.linalg.norm(np.roll(poly, -1, 0) - poly, axis=1)
    assert np.allclose(sorted(sides), sorted([box[2], box[2], box[3], box[3]]), atol=1e-4)
    # map polygon = affine transform of the pixel polygon
    a, b, c, d, e, f = sg.georef.transform
    mp = np.asarray(nd["map_polygon"])
    assert np.allclose(mp[:, 0], a * poly[:, 0] + b * poly[:, 1] + c)
    assert np.allclose(mp[:, 1], d * poly[:, 0] + e * poly[:, 1] + f)
    # one edge per labelled row, even when a pair repeats
    row = 5
    s, o = sg.pairs.pairs[row].tolist()
    ed = g.get_edge_data(s, o)[row]
    assert ed["predicate"] == VOCAB.predicates[int(sg.predicate_labels[row])]
    assert ed["source"] == "annotation" and ed["score"] == 1.0


def test_networkx_roundtrip_annotation():
    sg = synthetic_scene()
    assert_same_scene(sg, from_networkx(to_networkx(sg)))


def _small_prediction(pair_scores=None) -> SceneGraph:
    """Four objects, three scored pairs (columns: background, docked at, parked alongside with, near, over)."""
    det = Detections(torch.tensor([[10.0, 10, 8, 4, 0], [30, 10, 8, 4, 0], [10, 40, 8, 4, 0], [30, 40, 8, 4, 0]]),
                     torch.tensor([0, 1, 2, 2]), torch.tensor([0.9, 0.8, 0.7, 0.6]))
    scores = torch.tensor([[0.50, 0.90, 0.05, 0.30, 0.10],   # (0, 1)
                           [0.10, 0.20, 0.80, 0.60, 0.02],   # (2, 3)
                           [0.90, 0.04, 0.12, 0.35, 0.70]])  # (1, 0): background best, never exported
    pairs = PairSet(torch.tensor([[0, 1], [2, 3], [1, 0]]), None if pair_scores is None else torch.tensor(pair_scores))
    return SceneGraph(det, pairs, predicate_scores=scores, vocabulary=VOCAB, image_size=(50, 50))


@pytest.mark.parametrize("pair_scores, expected", [
    # the two best foreground predicates of each pair, ranked by score, at most 5, then score >= 0.5
    (None, [(0, 1, "docked at", 0.90), (2, 3, "parked alongside with", 0.80), (1, 0, "over", 0.70),
            (2, 3, "near", 0.60)]),
    # pair scores multiply: (2, 3) x 0.5 -> 0.40 / 0.30 (dropped), (1, 0) x 0.9 -> 0.63 / 0.315 (dropped)
    ([1.0, 0.5, 0.9], [(0, 1, "docked at", 0.90), (1, 0, "over", 0.63)]),
])
def test_networkx_prediction_edges_and_roundtrip(pair_scores, expected):
    sg = _small_prediction(pair_scores)
    g = to_networkx(sg, top_k=5, per_pair=2, min_score=0.5)
    rows = sorted((d["rank"], u, v, d["predicate"], d["score"]) for u, v, d in g.edges(data=True))
    assert [r[0] for r in rows] == list(range(1, len(expected) + 1))
    assert [r[1:4] for r in rows] == [e[:3] for e in expected]
    assert np.allclose([r[4] for r in rows], [e[3] for e in expected])
    assert all(d["source"] == "model" for *_, d in g.edges(data=True))
    t = from_networkx(g).triplets()  # exported triplets come back as one-hot predicate_scores rows
    got = list(zip(t["subject"].tolist(), t["object"].tolist(), [VOCAB.predicates[i] for i in t["predicate"].tolist()]))
    assert got == [e[:3] for e in expected]
    assert np.allclose(t["score"].numpy(), [e[3] for e in expected])


def test_topology_edges_flagged_and_ignored_on_read():
    sg = synthetic_scene()
    g = to_networkx(sg, topology=True, distance=20)
    geo = [d for *_, d in g.edges(data=True) if d["source"] == "geometry"]
    names = {"equals", "within", "contains", "overlaps", "touches", "disjoint"}
    assert geo and all(d["predicate"] in names for d in geo)
    assert g.number_of_edges() == len(sg.pairs) + len(geo)
    assert_same_scene(sg, from_networkx(g))


@pytest.mark.parametrize("suffix", FORMATS)
def test_file_roundtrip_annotation(tmp_path, suffix):
    sg = synthetic_scene()
    path = export(sg, tmp_path / f"scene{suffix}", topology=True, distance=15)
    assert path.exists()
    assert_same_scene(sg, read(path))
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


@pytest.mark.parametrize("suffix", FORMATS)
def test_file_roundtrip_prediction(tmp_path, suffix):
    sg = synthetic_scene(predictions=True)
    path = export(sg, tmp_path / f"pred{suffix}", top_k=40, per_pair=2)
    back = read(path)
    t, t2 = sg.triplets(top_k=40, per_pair=2), back.triplets()
    for k in ("subject", "object", "predicate", "score"):
        assert torch.equal(t[k], t2[k]), k
    assert back.predicate_scores is not None and back.metadata == sg.metadata and back.georef == sg.georef


@pytest.mark.parametrize("suffix", [None, *FORMATS])
def test_full_scores_roundtrip_is_exact(tmp_path, suffix):
    sg = synthetic_scene(n=25, m=30, predictions=True)
    sg = sg.replace(pairs=PairSet(sg.pairs.pairs, torch.rand(len(sg.pairs), generator=torch.Generator().manual_seed(9))),
                    predicate_scores=sg.predicate_scores)
    opts = dict(per_pair=3, topology=True, distance=10, full_scores=True)
    if suffix is None:
        back = from_networkx(to_networkx(sg, **opts))
    else:
        back = read(export(sg, tmp_path / f"full{suffix}", **opts))
    assert torch.equal(back.pairs.pairs, sg.pairs.pairs) and torch.equal(back.pairs.scores, sg.pairs.scores)
    assert torch.equal(back.predicate_scores, sg.predicate_scores)
    assert back.predicate_labels is None and back.georef == sg.georef
    # with top_k, only pairs that kept a triplet survive, in pair order, with their full vectors
    cut = read(export(sg, tmp_path / "cut.graphml", top_k=7, full_scores=True))
    kept = sorted({int(r) for r in _rows_of(sg, 7)})
    assert torch.equal(cut.pairs.pairs, sg.pairs.pairs[kept])
    assert torch.equal(cut.predicate_scores, sg.predicate_scores[kept])


def _rows_of(sg, top_k):
    t = sg.triplets(top_k=top_k)
    lookup = {tuple(p): i for i, p in enumerate(sg.pairs.pairs.tolist())}
    return [lookup[(s, o)] for s, o in zip(t["subject"].tolist(), t["object"].tolist())]


@pytest.mark.parametrize("suffix", FORMATS)
def test_file_roundtrip_empty_and_pixel(tmp_path, suffix):
    sg = SceneGraph(Detections.empty(), vocabulary=VOCAB, image_size=(64, 32))
    if suffix == ".geojson":  # GeoJSON is lon/lat: a scene without a CRS is refused, nothing written
        with pytest.raises(SggInputError, match="no CRS"):
            export(sg, tmp_path / f"empty{suffix}")
        assert not list(tmp_path.iterdir())
        return
    back = read(export(sg, tmp_path / f"empty{suffix}"))
    assert back.num_objects == 0 and len(back.pairs) == 0 and back.georef is None
    assert back.image_size == (64, 32) and back.vocabulary == VOCAB


# ----------------------------------------------------------------------------------------------
# Real annotations: DOTA P0706 (531 ships, 5 harbours, no georeferencing)
# ----------------------------------------------------------------------------------------------
def _dota_quads(path):
    """Tiny independent DOTA parser: (N,4,2) corners, class names, difficult flags."""
    quads, names, diff = [], [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 9 or ":" in parts[0]:
            continue
        quads.append([float(v) for v in parts[:8]])
        names.append(parts[8])
        diff.append(len(parts) > 9 and parts[9] == "1")
    return np.asarray(quads).reshape(-1, 4, 2), names, np.asarray(diff)


def _quads_to_boxes(quads: np.ndarray) -> torch.Tensor:
    try:
        from sgg.ops import corners_to_box
    except ImportError:  # ops not built yet: a box from the first two edges (enough for a round trip)
        e1, e2 = quads[:, 1] - quads[:, 0], quads[:, 2] - quads[:, 1]
        ang = np.arctan2(e1[:, 1], e1[:, 0])
        ang = (ang + np.pi / 2) % np.pi - np.pi / 2
        b = np.stack([*quads.mean(1).T, np.linalg.norm(e1, axis=1), np.linalg.norm(e2, axis=1), ang], 1)
        return torch.as_tensor(b, dtype=torch.float32)
    return corners_to_box(torch.as_tensor(quads, dtype=torch.float32))


@pytest.fixture(scope="module")
def dota_scene(real_dir):
    quads, names, diff = _dota_quads(real_dir / "dota" / "P0706.txt")
    voc = Vocabulary(("ship", "harbor"), ("docked at", "docked alongside with"))
    labels = torch.as_tensor([voc.object_index(n) for n in names])
    det = Detections(_quads_to_boxes(quads), labels)
    ships = torch.nonzero(labels == 0).flatten()
    harbors = torch.nonzero(labels == 1).flatten()
    centres = det.boxes.centers
    nearest = harbors[torch.cdist(centres[ships], centres[harbors]).argmin(1)]
    pairs = torch.cat([torch.stack([ships, nearest], 1), torch.stack([ships[:-1], ships[1:]], 1)])
    preds = torch.cat([torch.ones(len(ships), dtype=torch.long), torch.full((len(ships) - 1,), 2)])
    return SceneGraph(det, PairSet(pairs), predicate_labels=preds, vocabulary=voc, difficult=torch.as_tensor(diff),
                      image_path=str(real_dir / "dota" / "P0706.png"), image_size=(1111, 1182),
                      metadata={"source": "DOTA devkit example", "gsd": 0.255589285596})


def test_dota_counts(dota_scene):
    g = to_networkx(dota_scene)
    classes = [d["class"] for _, d in g.nodes(data=True)]
    assert classes.count("ship") == 531 and classes.count("harbor") == 5
    assert g.graph["crs"] is None and g.graph["coordinates"] == "pixel"
    assert "map_polygon" not in g.nodes[0]


@pytest.mark.parametrize("suffix", FORMATS)
def test_dota_roundtrip(tmp_path, dota_scene, suffix):
    if suffix == ".geojson":  # RFC 7946 coordinates are lon/lat: a scene without a CRS is refused
        with pytest.raises(SggInputError, match="no CRS"):
            export(dota_scene, tmp_path / f"P0706{suffix}")
        assert not list(tmp_path.iterdir())
        return
    path = export(dota_scene, tmp_path / f"P0706{suffix}", topology=True, distance=5)
    assert_same_scene(dota_scene, read(path))


def test_geojson_explicit_crs_without_georef_is_an_error(tmp_path, dota_scene):
    with pytest.raises(SggInputError, match="no CRS"):
        export(dota_scene, tmp_path / "x.geojson", crs="EPSG:4326")
    assert not list(tmp_path.iterdir())


def test_read_errors(tmp_path):
    with pytest.raises(SggInputError, match="not found"):
        read(tmp_path / "missing.gpkg")
    bad = tmp_path / "bad.graphml"
    bad.write_text("<graphml><oops")
    with pytest.raises(SggInputError):
        read(bad)
    with pytest.raises(SggInputError, match="format"):
        export(synthetic_scene(n=3, m=2), tmp_path / "x.shp")


# ----------------------------------------------------------------------------------------------
# Property: any annotation round-trips through networkx and GraphML text
# ----------------------------------------------------------------------------------------------
hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(n=st.integers(0, 12), m=st.integers(0, 20), seed=st.integers(0, 10_000),
                  georef=st.booleans(), levels=st.booleans())
def test_property_roundtrip(tmp_path_factory, n, m, seed, georef, levels):
    g = torch.Generator().manual_seed(seed)
    boxes = torch.cat([torch.randn(n, 2, generator=g) * 1e4, torch.rand(n, 2, generator=g) * 100 + 1e-3,
                       (torch.rand(n, 1, generator=g) - 0.5) * math.pi], 1)
    det = Detections(boxes, torch.randint(0, VOCAB.num_classes, (n,), generator=g), torch.rand(n, generator=g),
                     levels=torch.randint(0, 4, (n,), generator=g) if levels else None)
    if n < 2:
        m = 0
    s = torch.randint(0, max(n, 1), (m,), generator=g)
    o = (s + torch.randint(1, max(n, 2), (m,), generator=g)) % max(n, 1)
    pairs = PairSet(torch.stack([s, o], 1))
    geo = GeoReference(UTM18 if georef else None, (2.0, 0.1, 5.0, -0.2, -2.0, 7.0))
    sg = SceneGraph(det, pairs, predicate_labels=torch.randint(1, VOCAB.num_predicates, (m,), generator=g),
                    vocabulary=VOCAB, georef=geo, metadata={"k": [1, 2]})
    assert_same_scene(sg, from_networkx(to_networkx(sg)))
    path = tmp_path_factory.mktemp("prop") / "g.graphml"
    assert_same_scene(sg, read(export(sg, path)))
