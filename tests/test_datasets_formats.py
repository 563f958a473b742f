"""Native JSON, DOTA and STAR formats: round trips, real DOTA files, malformed input."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest
import shapely
import torch

from sgg.datasets import (
    DOTA_TO_STAR,
    DOTA_VOCABULARY,
    FORMAT_VERSION,
    load_schema,
    read_dota_labels,
    read_dota_results,
    read_scene_json,
    read_star,
    write_dota_labels,
    write_dota_results,
    write_scene_json,
    write_star,
)
from sgg.errors import SggInputError
from sgg.ops import box_to_corners, normalize_le90
from sgg.structures import Detections, GeoReference, OrientedBoxes, PairSet, SceneGraph, Vocabulary

STAR = Vocabulary.star()
# the fixtures' objects lie inside their images: a reader's "outside the image" warning here is a bug
pytestmark = pytest.mark.filterwarnings("error:.*outside the .*image:UserWarning")


def _same_boxes(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-3) -> bool:
    """Boxes equal as rectangles: compare sorted corner sets (handles the w/h swap and half-turn)."""
    ca, cb = box_to_corners(a.double()), box_to_corners(b.double())
    d = torch.cdist(ca, cb)  # (N,4,4): every corner of a must coincide with one of b
    return bool((d.min(dim=2).values.max() < tol).item()) if len(a) else len(b) == 0


def _scene(n: int = 6, seed: int = 0, vocabulary: Vocabulary = STAR) -> SceneGraph:
    g = torch.Generator().manual_seed(seed)
    boxes = torch.cat(
        # centres 50 px from the edges of the 1024×768 image (boxes are at most 43 px long): all inside it
        [torch.rand(n, 2, generator=g) * torch.tensor([924.0, 668.0]) + 50, torch.rand(n, 2, generator=g) * 40 + 3,
         (torch.rand(n, 1, generator=g) - 0.5) * math.pi], dim=1
    )
    labels = torch.randint(0, vocabulary.num_classes, (n,), generator=g)
    pairs = torch.tensor([[0, 1], [0, 1], [2, 3], [4, 0]])  # (0, 1) carries two predicates
    p = vocabulary.num_predicates - 1
    preds = torch.tensor([1, min(9, p), min(12, p), p])
    return SceneGraph(
        Detections(OrientedBoxes(boxes), labels, torch.tensor([1.0] * (n - 1) + [0.75])),
        PairSet(pairs),
        predicate_labels=preds,
        vocabulary=vocabulary,
        difficult=torch.tensor([False, True] + [False] * (n - 2)),
        image_size=(1024, 768),
        georef=GeoReference('PROJCS["WGS 84 / UTM zone 32N"]', (0.5, 0.0, 500000.0, 0.0, -0.5, 5600000.0)),
        metadata={"gsd": 0.5, "seed": seed},
    )


# ---------------------------------------------------------------------------------------------- native
def test_native_round_trip(tmp_path):
    sg = _scene()
    img = tmp_path / "scenes" / "s1.tif"
    img.parent.mkdir()
    img.write_bytes(b"")
    sg = sg.replace(image_path=str(img))
    out = write_scene_json(sg, tmp_path / "annotations" / "s1.json")
    doc = json.loads(out.read_text())
    assert doc["format_version"] == FORMAT_VERSION == "sgg-scene/1"
    assert doc["image"]["path"] == "../scenes/s1.tif"  # relative to the JSON file
    assert "vocabulary" not in doc  # STAR is the default
    back = read_scene_json(out)
    assert back.image_path == str(img)
    assert back.image_size == (1024, 768)
    assert torch.allclose(back.detections.boxes.tensor, sg.detections.boxes.tensor, atol=1e-5)
    assert torch.equal(back.detections.labels, sg.detections.labels)
    assert torch.allclose(back.detections.scores, sg.detections.scores)
    assert torch.equal(back.pairs.pairs, sg.pairs.pairs)
    assert torch.equal(back.predicate_labels, sg.predicate_labels)
    assert torch.equal(back.difficult, sg.difficult)
    assert back.georef.crs_wkt == sg.georef.crs_wkt and back.georef.transform == sg.georef.transform
    assert back.metadata == {"gsd": 0.5, "seed": 0}
    # relations are stored by name
    assert doc["relations"][1]["predicate"] == STAR.predicates[9]


def test_native_custom_vocabulary_round_trip(tmp_path):
    voc = Vocabulary(("car", "road"), ("on", "near"))
    sg = _scene(n=5, vocabulary=voc)
    p = write_scene_json(sg, tmp_path / "c.json")
    back = read_scene_json(p)
    assert back.vocabulary == voc
    assert [voc.objects[i] for i in back.detections.labels] == [voc.objects[i] for i in sg.detections.labels]


def test_schema_documents_what_the_writer_writes(tmp_path):
    schema = load_schema()
    assert schema["properties"]["format_version"]["const"] == FORMAT_VERSION
    doc = json.loads(write_scene_json(_scene(), tmp_path / "a.json").read_text())
    assert set(doc) <= set(schema["properties"])
    obj_schema = schema["properties"]["objects"]["items"]
    for obj in doc["objects"]:
        assert set(obj) <= set(obj_schema["properties"]) and set(obj_schema["required"]) <= set(obj)
        assert set(obj["box"]) == set(obj_schema["properties"]["box"]["required"])
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(doc, schema)


def _doc(**over):
    doc = {
        "format_version": FORMAT_VERSION,
        "objects": [
            {"id": "a", "class": "ship", "box": {"cx": 10, "cy": 10, "w": 8, "h": 3, "angle": 0.1}},
            {"id": "b", "class": "dock", "box": {"cx": 20, "cy": 12, "w": 30, "h": 5, "angle": 0.0}},
        ],
        "relations": [{"subject": "a", "predicate": "parallelly docked at", "object": "b"}],
    }
    doc.update(over)
    return doc


def test_native_string_ids(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps(_doc()))
    sg = read_scene_json(p)
    assert sg.pairs.pairs.tolist() == [[0, 1]]
    assert STAR.predicates[int(sg.predicate_labels[0])] == "parallelly docked at"
    assert sg.image_path is None and sg.georef is None


@pytest.mark.parametrize(
    "change, needle",
    [
        (dict(format_version="sgg-scene/2"), "format_version"),
        (dict(format_version=None), "unsupported format_version"),
        (dict(relations=[{"subject": "a", "predicate": "over", "object": "zz"}]), "relations[0]"),
        (dict(relations=[{"subject": "a", "predicate": "hovering near", "object": "b"}]), "unknown predicate"),
        (dict(relations=[{"subject": "a", "predicate": "over", "object": "a"}]), "itself"),
    ],
)
def test_native_rejects(tmp_path, change, needle):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(_doc(**change)))
    with pytest.raises(SggInputError) as e:
        read_scene_json(p)
    assert needle in str(e.value) and "bad.json" in str(e.value)


def test_native_rejects_bad_objects(tmp_path):
    p = tmp_path / "bad.json"
    doc = _doc()
    doc["objects"][1]["box"]["h"] = 0
    p.write_text(json.dumps(doc))
    with pytest.raises(SggInputError, match=r"objects\[1\]\.box\.h.*zero-area"):
        read_scene_json(p)
    doc = _doc()
    doc["objects"][0]["class"] = "spaceship"
    p.write_text(json.dumps(doc))
    with pytest.raises(SggInputError, match=r"objects\[0\]\.class.*unknown class 'spaceship'.*ship, boat"):
        read_scene_json(p)
    doc = _doc()
    doc["objects"][1]["id"] = "a"
    p.write_text(json.dumps(doc))
    with pytest.raises(SggInputError, match="duplicate object id"):
        read_scene_json(p)
    p.write_text("{not json")
    with pytest.raises(SggInputError, match="not valid JSON"):
        read_scene_json(p)


# ---------------------------------------------------------------------------------------------- DOTA
def _dota_polygons(path):
    rows = [ln.split() for ln in path.read_text().splitlines() if len(ln.split()) >= 9]
    return np.array([[float(v) for v in r[:8]] for r in rows]).reshape(-1, 4, 2), [r[8] for r in rows]


def test_real_dota_p0706(real_dir):
    path = real_dir / "dota" / "P0706.txt"
    sg = read_dota_labels(path, aliases={"harbor": "dock"})
    names = [STAR.objects[i] for i in sg.detections.labels]
    assert names.count("ship") == 531 and names.count("dock") == 5 and len(names) == 536
    assert sg.metadata["gsd"] == pytest.approx(0.255589285596)
    assert sg.metadata["imagesource"] == "GoogleEarth"
    assert sg.image_path.endswith("P0706.png") and sg.image_size == (1111, 1182)
    # the ready table gives the same answer
    sg2 = read_dota_labels(path, aliases="dota_to_star")
    assert torch.equal(sg2.detections.labels, sg.detections.labels)
    # independent reference: shapely's minimum rotated rectangle of each polygon has the same area
    corners, _ = _dota_polygons(path)
    ref = shapely.area(shapely.minimum_rotated_rectangle(shapely.polygons(corners)))
    assert np.allclose(sg.detections.boxes.area().numpy(), ref, rtol=1e-4, atol=1e-2)
    # every polygon corner lies in (or on) its box
    inside = shapely.covers(shapely.buffer(sg.detections.boxes.to_shapely(), 1e-3)[:, None], shapely.points(corners))
    assert inside.all()


def test_real_dota_p1888(real_dir):
    sg = read_dota_labels(real_dir / "dota" / "P1888.txt", aliases=DOTA_TO_STAR)
    names = [STAR.objects[i] for i in sg.detections.labels]
    assert names.count("truck") == 50 and names.count("car") == 14
    native = read_dota_labels(real_dir / "dota" / "P1888.txt", vocabulary=DOTA_VOCABULARY)
    dnames = [DOTA_VOCABULARY.objects[i] for i in native.detections.labels]
    assert dnames.count("large-vehicle") == 50 and dnames.count("small-vehicle") == 14


def test_dota_to_star_targets_exist():
    for src, dst in DOTA_TO_STAR.items():
        assert dst is None or dst in STAR.objects, src
    assert DOTA_TO_STAR["harbor"] == "dock" and DOTA_TO_STAR["plane"] == "airplane"


def test_dota_alias_none_drops(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("0 0 10 0 10 5 0 5 helicopter 0\n0 0 10 0 10 5 0 5 plane 1\n")
    sg = read_dota_labels(p, aliases=DOTA_TO_STAR)
    assert [STAR.objects[i] for i in sg.detections.labels] == ["airplane"]
    assert sg.difficult.tolist() == [True]


@pytest.mark.parametrize("line", ["0 0 10 0 20 0 30 0 ship 0", "3 3 3 3 3 3 3 3 ship 0"])
def test_dota_degenerate_polygon_is_skipped_with_a_warning(tmp_path, line):
    """As the DOTA devkit: a zero-area polygon is reported (file and line) and skipped, the rest is read."""
    p = tmp_path / "d.txt"
    p.write_text(f"0 0 10 0 10 5 0 5 ship 0\n{line}\n")
    with pytest.warns(UserWarning, match="d.txt: line 2: degenerate polygon"):
        sg = read_dota_labels(p)
    assert len(sg.detections) == 1


def test_dota_difficulty_above_one_is_difficult(tmp_path):
    p = tmp_path / "d.txt"
    p.write_text("0 0 10 0 10 5 0 5 ship 2\n0 0 10 0 10 5 0 5 ship 0\n")  # DOTA_devkit crops write 2
    assert read_dota_labels(p).difficult.tolist() == [True, False]


def test_dota_corner_order_and_missing_difficulty(tmp_path):
    p = tmp_path / "o.txt"
    p.write_text("gsd:null\n0 0 10 5 10 0 0 5 ship\n")  # "bow-tie" order, no difficulty column
    sg = read_dota_labels(p, image_size=(64, 32))
    assert torch.allclose(sg.detections.boxes.tensor, torch.tensor([[5.0, 2.5, 10.0, 5.0, 0.0]]))
    assert sg.metadata["gsd"] is None and sg.difficult.tolist() == [False] and sg.image_size == (64, 32)
    assert sg.image_path is None


def test_dota_labels_round_trip(tmp_path):
    sg = _scene(n=12, seed=3)
    p = write_dota_labels(sg, tmp_path / "P1.txt", gsd=0.3, imagesource="synthetic")
    lines = p.read_text().splitlines()
    assert lines[:2] == ["imagesource:synthetic", "gsd:0.3"]
    back = read_dota_labels(p)
    assert back.metadata["gsd"] == 0.3 and back.metadata["imagesource"] == "synthetic"
    assert torch.equal(back.detections.labels, sg.detections.labels)
    assert torch.equal(back.difficult, sg.difficult)
    assert _same_boxes(back.detections.boxes.tensor, sg.detections.boxes.tensor, tol=0.02)
    assert torch.allclose(back.detections.boxes.tensor, normalize_le90(sg.detections.boxes.tensor), atol=0.02)
    # STAR names back to DOTA names
    voc_sg = SceneGraph(Detections(OrientedBoxes([[5, 5, 4, 2, 0.0]]), [STAR.object_index("truck")]))
    q = write_dota_labels(voc_sg, tmp_path / "P2.txt", class_names="star_to_dota")
    assert q.read_text().split()[8] == "large-vehicle"


@pytest.mark.parametrize(
    "line, needle",
    [
        ("1 2 3 4 5 6 7 ship 0", "got 7 numbers"),
        ("1 2 3 x 5 6 7 8 ship 0", "non-numeric coordinate 'x'"),
        ("0 0 10 0 10 5 0 5 spaceship 0", "unknown class 'spaceship'"),
        ("0 0 10 0 10 5 0 5 ship x", "difficulty must be a non-negative integer"),
        ("0 0 10 0 10 5 0 5 ship 0 extra", "got 8 numbers in 11 fields"),
    ],
)
def test_dota_malformed(tmp_path, line, needle):
    p = tmp_path / "bad.txt"
    p.write_text("imagesource:x\ngsd:0.5\n0 0 10 0 10 5 0 5 ship 0\n" + line + "\n")
    with pytest.raises(SggInputError) as e:
        read_dota_labels(p)
    msg = str(e.value)
    assert needle in msg and "bad.txt" in msg and "line 4" in msg


def test_dota_unknown_class_lists_vocabulary(tmp_path):
    p = tmp_path / "u.txt"
    p.write_text("0 0 10 0 10 5 0 5 large-vehicle 0\n")
    with pytest.raises(SggInputError, match=r"ship, boat, crane.*\(48 in all\).*aliases"):
        read_dota_labels(p)


def test_dota_results_round_trip(tmp_path):
    g = torch.Generator().manual_seed(1)
    res = {}
    for image_id, n in (("P0001", 7), ("P0002", 3)):
        boxes = torch.cat([torch.rand(n, 2, generator=g) * 500, torch.rand(n, 2, generator=g) * 30 + 4,
                           (torch.rand(n, 1, generator=g) - 0.5) * math.pi], 1)
        res[image_id] = Detections(boxes, torch.randint(0, 4, (n,), generator=g), torch.rand(n, generator=g))
    files = write_dota_results(res, tmp_path / "res", STAR)
    assert len(files) == STAR.num_classes and (tmp_path / "res" / "Task1_ship.txt").exists()
    first = next(ln for f in files for ln in f.read_text().splitlines()).split()
    assert len(first) == 10 and first[0] in res
    back = read_dota_results(tmp_path / "res")
    assert set(back) == set(res)
    for k, det in res.items():
        order = torch.argsort(det.scores, descending=True)
        b = back[k]
        assert torch.equal(b.labels, det.labels[order])
        assert torch.allclose(b.scores, det.scores[order], atol=1e-6)
        assert _same_boxes(b.boxes.tensor, det.boxes.tensor[order], tol=0.02)
    # one file, DOTA names through aliases
    f = tmp_path / "Task1_small-vehicle.txt"
    f.write_text("P9 0.9 0 0 10 0 10 5 0 5\nP9 0.5 20 20 30 20 30 25 20 25\n")
    one = read_dota_results(f, aliases=DOTA_TO_STAR)
    assert one["P9"].labels.tolist() == [STAR.object_index("car")] * 2
    f.write_text("P9 0.9 0 0 10 0 10 5 0\n")
    with pytest.raises(SggInputError, match="line 1"):
        read_dota_results(f, aliases=DOTA_TO_STAR)


# ---------------------------------------------------------------------------------------------- STAR
def test_star_round_trip(tmp_path):
    sgs = [_scene(n=n, seed=s) for n, s in ((6, 0), (7, 1), (5, 2))]
    sgs = [sg.replace(image_path=f"/data/{i:04d}.png") for i, sg in enumerate(sgs)]
    paths = write_star(sgs, tmp_path, splits=["train", "val", "test"])
    back = read_star(paths["h5"], paths["dicts"], paths["image_data"])
    assert len(back) == 3
    for a, b in zip(sgs, back):
        assert torch.equal(a.detections.labels, b.detections.labels)
        assert torch.equal(a.pairs.pairs, b.pairs.pairs)
        assert torch.equal(a.predicate_labels, b.predicate_labels)
        assert _same_boxes(a.detections.boxes.tensor, b.detections.boxes.tensor, tol=1e-3)
        assert b.image_size == (1024, 768)
    assert [sg.metadata["split"] for sg in back] == ["train", "val", "test"]
    only_val = read_star(paths["h5"], paths["dicts"], paths["image_data"], split="val", image_dir="/imgs")
    assert len(only_val) == 1 and only_val[0].image_path == "/imgs/0001.png"
    # the layout, checked independently with h5py: 1-based labels/predicates, global box indices
    with h5py.File(paths["h5"]) as f:
        assert f["labels"].shape == (18, 1) and int(f["labels"][:].min()) >= 1
        assert f["segmentation_2000"].shape == (18, 1, 8) and f["boxes_2000"].shape == (18, 4)
        assert f["img_to_first_box"][:].tolist() == [0, 6, 13] and f["img_to_last_box"][:].tolist() == [5, 12, 17]
        assert f["img_to_first_rel"][:].tolist() == [0, 4, 8]
        assert f["relationships"][4:8].tolist() == (sgs[1].pairs.pairs + 6).tolist()
        assert f["predicates"][:, 0].tolist() == torch.cat([sg.predicate_labels for sg in sgs]).tolist()
        # polygons are stored at BOX_SCALE/6000 of pixels (the toolkit restores * 6000 / 2000)
        seg = f["segmentation_2000"][:6, 0].reshape(6, 4, 2) * 3.0
        assert np.allclose(seg, box_to_corners(sgs[0].detections.boxes.tensor.double()).numpy(), atol=1e-2)
    dicts = json.loads(paths["dicts"].read_text())
    assert dicts["label_to_idx"]["ship"] == 1 and dicts["idx_to_predicate"]["1"] == STAR.predicates[1]


def test_star_upstream_layout_by_name(tmp_path):
    """A hand-made file in the toolkit's layout, with its own index order, polygons only (no sgg extras)."""
    dicts = {"label_to_idx": {"car": 1, "car_parking": 2}, "predicate_to_idx": {"parked alongside with": 1, "parallelly parked on": 2},
             "attribute_to_idx": {}, "predicate_count": {}, "object_count": {}}
    (tmp_path / "d.json").write_text(json.dumps(dicts))
    (tmp_path / "i.json").write_text(json.dumps([{"image_id": 7, "width": 3000, "height": 2000}]))
    poly_px = np.array([[[100, 100], [110, 100], [110, 104], [100, 104]], [[120, 100], [130, 100], [130, 104], [120, 104]],
                        [[90, 90], [200, 90], [200, 120], [90, 120]]], dtype=np.float64)
    with h5py.File(tmp_path / "g.h5", "w") as f:
        f["split"] = np.array([2])
        f["img_to_first_box"], f["img_to_last_box"] = np.array([0]), np.array([2])
        f["img_to_first_rel"], f["img_to_last_rel"] = np.array([0]), np.array([2])
        f["labels"] = np.array([[1], [1], [2]])
        f["segmentation_2000"] = (poly_px.reshape(3, 1, 8) / 3.0).astype(np.float32)
        f["relationships"] = np.array([[0, 1], [0, 2], [1, 2]])
        f["predicates"] = np.array([[1], [2], [2]])
    sgs = read_star(tmp_path / "g.h5", tmp_path / "d.json", tmp_path / "i.json")
    sg = sgs[0]
    assert [STAR.objects[i] for i in sg.detections.labels] == ["car", "car", "car_parking"]
    assert [STAR.predicates[i] for i in sg.predicate_labels] == ["parked alongside with", "parallelly parked on", "parallelly parked on"]
    assert sg.image_path == "0007.png" and sg.metadata["split"] == "test"
    assert torch.allclose(sg.detections.boxes.tensor[2], torch.tensor([145.0, 105.0, 110.0, 30.0, 0.0]), atol=1e-3)
    # a relation pointing at another image's box is rejected
    with h5py.File(tmp_path / "g.h5", "a") as f:
        f["relationships"][2] = [1, 5]
    with pytest.raises(SggInputError, match="relationship"):
        read_star(tmp_path / "g.h5", tmp_path / "d.json", tmp_path / "i.json")
    dicts["label_to_idx"]["bus"] = dicts["label_to_idx"].pop("car")
    (tmp_path / "d.json").write_text(json.dumps(dicts))
    with pytest.raises(SggInputError, match="unknown class 'bus'"):
        read_star(tmp_path / "g.h5", tmp_path / "d.json", tmp_path / "i.json")
