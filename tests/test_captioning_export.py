"""Crops, instruction export (real DOTA image) and the ``sgg fitrs`` command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from sgg.captioning.tasks import crop_graph, crop_windows, detection_answer, image_sgg_answer
from sgg.structures import Detections, OrientedBoxes, PairSet, SceneGraph, Vocabulary

REAL = Path(__file__).resolve().parents[2] / "shared" / "real"


def test_crop_windows_are_flush_with_the_edges():
    assert crop_windows(1111, 1182) == [(x, y) for y in (0, 412, 670) for x in (0, 412, 599)]
    assert crop_windows(300, 200) == [(0, 0)]


def test_crop_keeps_objects_mostly_inside_and_shifts_them():
    v = Vocabulary.star()
    # centres 512+/-: a 100-px-wide ship centred on x=512 has half its area in the first crop (IoF 0.5 < 0.55)
    boxes = torch.tensor([[100, 100, 40, 10, 0], [512, 100, 100, 10, 0], [530, 100, 100, 10, 0], [480, 300, 100, 10, 0]],
                         dtype=torch.float32)
    g = SceneGraph(Detections(OrientedBoxes(boxes), [v.object_index("ship")] * 4), PairSet([[0, 3], [1, 3]]),
                   predicate_labels=[v.predicate_index("docked alongside with")] * 2, image_size=(1024, 512))
    c = crop_graph(g, 0, 0)
    assert c.metadata["source_index"] == [0, 3]
    torch.testing.assert_close(c.detections.boxes.tensor[1], torch.tensor([480.0, 300.0, 100.0, 10.0, 0.0]))
    assert c.pairs.pairs.tolist() == [[0, 1]] and c.metadata["visible"][1] == pytest.approx(0.82, abs=1e-4)  # x 430..530
    right = crop_graph(g, 412, 0)
    assert right.metadata["source_index"] == [1, 2, 3]
    torch.testing.assert_close(right.detections.boxes.tensor[0, :2], torch.tensor([100.0, 100.0]))


def test_detection_answer_truncates_after_twenty():
    v = Vocabulary.star()
    boxes = torch.tensor([[20 + 20 * i, 50, 10, 5, 0] for i in range(23)], dtype=torch.float32)
    g = SceneGraph(Detections(OrientedBoxes(boxes), [v.object_index("car")] * 23), image_size=(512, 512))
    text = detection_answer(g, "car")
    assert text.startswith("There are 23 cars in the image: <rbox>({")
    assert text.count("{<") == 20
    assert text.endswith("})</rbox>, and due to the context length, the remaining objects are not listed.")
    one = detection_answer(SceneGraph(g.detections[0:1], image_size=(512, 512)), "car")
    assert one == "There is 1 car in the image: <rbox>({<3.91><9.77><0.98><1.95>|<90>})</rbox>"
    assert image_sgg_answer(SceneGraph(Detections.empty(), image_size=(512, 512))).startswith("I'm sorry")


@pytest.mark.skipif(not (REAL / "dota" / "P1888.txt").exists(), reason="shared/real/dota/P1888 not present")
def test_export_writes_crops_and_llava_records(tmp_path):
    from PIL import Image

    from sgg.captioning.export import export_instructions
    from sgg.datasets import read_dota_labels

    g = read_dota_labels(REAL / "dota" / "P1888.txt", aliases="dota_to_star")
    res = export_instructions([(g, None)], tmp_path, questions=True)
    names = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert names == ["P1888__512__0___0.png", "P1888__512__0___45.png", "P1888__512__200___0.png", "P1888__512__200___45.png"]
    assert all(Image.open(tmp_path / "images" / n).size == (512, 512) for n in names)
    recs = json.loads((tmp_path / "instructions.json").read_text())
    assert res["records"] == len(recs) == 4
    conv = recs[0]["conversations"]
    assert recs[0]["image"] == recs[0]["id"] + ".png"
    assert conv[0]["from"] == "human" and conv[0]["value"].startswith("<image>\n[detection]")
    assert [c["from"] for c in conv] == ["human", "gpt"] * (len(conv) // 2)
    assert conv[-1]["value"].startswith("This 512 × 512 px image")
    qs = [json.loads(line) for line in (tmp_path / "questions.jsonl").read_text().splitlines()]
    assert qs and all(q["category"] == "task1" for q in qs)  # DOTA labels: objects only, no relations
    assert not list(tmp_path.glob("**/.*.part*"))


def test_cli_export_caption_check_and_score(tmp_path, capsys):
    from sgg.captioning.cli import main
    from sgg.datasets import write_scene_json
    from sgg.datasets.synthetic import generate_scene

    scene = tmp_path / "s.json"
    write_scene_json(generate_scene(4, 768), scene)
    assert main(["export", str(scene), "--out", str(tmp_path / "out"), "--no-images", "--questions", "--rsrc"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["records"] > 0 and res["rsrc_questions"] > 0 and not (tmp_path / "out" / "images").exists()
    answers = tmp_path / "answers.jsonl"
    lines = (tmp_path / "out" / "rsrc_questions.jsonl").read_text().splitlines()[:8]
    answers.write_text("\n".join(json.dumps(dict(json.loads(l), answer=json.loads(l)["ground_truth"])) for l in lines))
    assert main(["score", str(answers), "--json", str(tmp_path / "scores.json")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"FIT-RSRC CircularEval accuracy 1\.0000 \(2/2\)", out)
    assert json.loads((tmp_path / "scores.json").read_text())["rsrc"]["accuracy"] == 1.0

    assert main(["caption", str(scene), "--check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("This 768 × 768 px image") and "hallucination rate 0.000" in out
    text = tmp_path / "claim.txt"
    text.write_text("There are 3 stadiums in the image.")
    assert main(["check", str(scene), "--text", str(text), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["objects"]["unsupported"] == ["stadium"] and rep["counts"]["contradicted"][0]["stated"] == 3


def test_predicted_graph_exports_its_best_triplets():
    from sgg.captioning.export import scene_records

    v = Vocabulary.star()
    boxes = torch.tensor([[100, 100, 60, 20, 0], [100, 160, 300, 30, 0], [300, 300, 60, 20, 0]], dtype=torch.float32)
    det = Detections(OrientedBoxes(boxes), [v.object_index("ship"), v.object_index("dock"), v.object_index("ship")])
    scores = torch.zeros(2, v.num_predicates)
    scores[0, v.predicate_index("parallelly docked at")] = 0.9
    scores[1, v.predicate_index("randomly docked at")] = 0.1
    pred = SceneGraph(det, PairSet([[0, 1], [2, 1]]), predicate_scores=scores, image_size=(512, 512))
    (crop,) = scene_records(pred, "p", top_k=1)
    answers = {it["category"]: it["answer"] for it in crop["items"]}
    assert answers["task2"] == "There is 1 relationship between ship and dock: ship <parallelly docked at> dock"
    assert "randomly" not in answers["task6"] and crop["name"] == "p__512__0___0"


def test_box_text_cache_never_answers_with_another_graphs_boxes():
    """The encoded-box cache is keyed by the tensor itself (weakly): graphs made and dropped in turn (so
    ids get reused) each read their own boxes, an in-place edit re-encodes, and no tensor is kept alive."""
    import gc
    import weakref

    from sgg.captioning.codec import format_rbox

    v = Vocabulary.star()
    car = v.object_index("car")
    for i in range(40):  # each graph is freed (reference count) before the next is made
        g = SceneGraph(Detections(torch.tensor([[20.0 + 10 * i, 50, 10, 5, 0]]), [car]), image_size=(512, 512))
        assert detection_answer(g, "car") == f"There is 1 car in the image: {format_rbox(g.detections.boxes)}"
        del g
    g = SceneGraph(Detections(torch.tensor([[20.0, 50, 10, 5, 0]]), [car]), image_size=(512, 512))
    before = detection_answer(g, "car")
    g.detections.boxes.tensor[0, 0] = 300.0  # edited in place: same tensor, new values
    after = detection_answer(g, "car")
    assert after != before and after.endswith(format_rbox(g.detections.boxes))
    assert detection_answer(g, "car", crop=1024).endswith(format_rbox(g.detections.boxes, 1024))
    alive = weakref.ref(g.detections.boxes.tensor)
    del g
    gc.collect()
    assert alive() is None
