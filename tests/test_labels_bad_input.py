"""Bad input of #12: horizontal- and oriented-box label files mixed in one folder (a ``box_type`` per scene,
kept in the scene JSON annotation) and label boxes outside their image (reported with file and line)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sgg.datasets import read_dota_labels, read_scene_json, write_scene_json
from sgg.datasets.native import scene_from_dict
from sgg.errors import SggInputError


def _folder(tmp_path, labels: dict[str, list[str]], size=(200, 100)):
    (tmp_path / "images").mkdir()
    (tmp_path / "labelTxt").mkdir()
    for stem, lines in labels.items():
        Image.fromarray(np.zeros((size[1], size[0], 3), dtype=np.uint8)).save(tmp_path / "images" / f"{stem}.png")
        (tmp_path / "labelTxt" / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    return tmp_path / "labelTxt"


def _messages(fn):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(x.message) for x in w]


def test_mixed_folder_box_type_per_scene_kept_in_scene_json(tmp_path):
    labels = _folder(tmp_path, {
        "horizontal": ["10 10 50 10 50 30 10 30 boat 0", "60 40 70 40 70 80 60 80 boat 0"],
        "oriented": ["10 10 50 20 45 40 5 30 ship 0", "60 40 70 40 70 80 60 80 ship 0"],  # one tilted box
    })
    kinds = {}
    for f in sorted(labels.glob("*.txt")):
        sg = read_dota_labels(f, aliases={"boat": "ship"})
        assert sg.image_size == (200, 100)
        kinds[f.stem] = sg.metadata["box_type"]
        out = write_scene_json(sg, tmp_path / f"{f.stem}.json")
        back = read_scene_json(out)
        assert back.metadata["box_type"] == kinds[f.stem]
        assert torch.allclose(back.detections.boxes.tensor, sg.detections.boxes.tensor, atol=1e-4)
    assert kinds == {"horizontal": "hbb", "oriented": "obb"}


def test_native_box_type_must_be_obb_or_hbb():
    doc = {"format_version": "sgg-scene/1", "objects": [], "metadata": {"box_type": "poly"}}
    with pytest.raises(SggInputError, match=r"a\.json.*metadata\.box_type.*'poly'"):
        scene_from_dict(doc, path="a.json")
    doc["metadata"]["box_type"] = "hbb"
    assert scene_from_dict(doc, path="a.json").metadata["box_type"] == "hbb"


def test_dota_box_past_the_border_is_reported_with_its_line_and_kept(tmp_path):
    labels = _folder(tmp_path, {"a": [
        "10 10 50 10 50 30 10 30 ship 0",
        "190 10 201 10 201 30 190 30 ship 0",  # 1 px past the 200-px edge: a rounding, not reported
        "180 60 230 60 230 90 180 90 ship 0",  # 30 px past: reported, kept
        "300 10 320 10 320 30 300 30 ship 0",  # wholly outside: reported, skipped
    ]})
    sg, msgs = _messages(lambda: read_dota_labels(labels / "a.txt", aliases="dota_to_star"))
    assert len(sg.detections) == 3
    assert len(msgs) == 2
    past, = (m for m in msgs if "line 3" in m)
    out, = (m for m in msgs if "line 4" in m)
    assert "a.txt: line 3: polygon reaches 30.0 px past the 200×100 image" in past and past.endswith("kept")
    assert "a.txt: line 4: polygon outside the 200×100 image" in out and out.endswith("skipped")


def test_dota_labels_of_another_image_warn_per_line_then_summarise(tmp_path):
    # a label file scaled ×4 (or paired with the wrong image): 8 boxes past the edge, 5 named, then one summary
    rows = [f"{x} 80 {x + 40} 80 {x + 40} 110 {x} 110 ship 0" for x in range(20, 180, 20)]
    labels = _folder(tmp_path, {"b": rows})
    sg, msgs = _messages(lambda: read_dota_labels(labels / "b.txt", aliases="dota_to_star"))
    assert len(sg.detections) == 8 and len(msgs) == 6
    assert [m.split(": ")[1] for m in msgs[:5]] == [f"line {i}" for i in range(1, 6)]
    assert "3 more past polygons (line 6, line 7, line 8); kept" in msgs[5]


def test_native_object_outside_its_image_is_reported(tmp_path):
    def obj(i, cx):
        return {"id": i, "class": "ship", "box": {"cx": cx, "cy": 50.0, "w": 20.0, "h": 10.0, "angle": 0.0}}

    doc = {"format_version": "sgg-scene/1", "image": {"width": 100, "height": 100},
           "objects": [obj(0, 50.0), obj(1, 105.0), obj(2, 120.0)]}  # objects[1] straddles the edge: fine
    sg, msgs = _messages(lambda: scene_from_dict(doc, path=tmp_path / "s.json"))
    assert len(sg.detections) == 3
    assert len(msgs) == 1 and "s.json: 1 object(s) wholly outside the 100×100 image: objects[2]" in msgs[0]


def test_real_label_files_box_types_and_no_false_reports(real_dir):
    """Every real label file reads with the right box type, and none is reported as reaching past its image
    (P0706's one box 1 px past the border is a rounding)."""
    expect = {"ships_ge": "hbb", "airbus_aircraft": "hbb"}
    files = sorted((real_dir / "ships_ge" / "labelTxt").glob("*.txt"))[:60]
    files += sorted((real_dir / "airbus_aircraft" / "labelTxt").glob("*.txt")) + sorted((real_dir / "dota").glob("*.txt"))
    for f in files:
        aliases = {"boat": "ship"} if f.parent.name == "labelTxt" else "dota_to_star"
        sg, msgs = _messages(lambda f=f, aliases=aliases: read_dota_labels(f, aliases=aliases))
        assert not [m for m in msgs if "past" in m or "outside" in m], (f, msgs)
        assert sg.metadata["box_type"] == expect.get(f.parent.parent.name, "obb"), f
