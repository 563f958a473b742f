"""Captions from graphs (synthetic, real DOTA P0706, a real Airbus airport) and their faithfulness checks."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import torch

from sgg.captioning import caption, check_faithfulness
from sgg.captioning.faithfulness import extract_claims
from sgg.captioning.language import noun, plural, predicate_phrase
from sgg.structures import Detections, OrientedBoxes, PairSet, SceneGraph, Vocabulary

REAL = Path(__file__).resolve().parents[2] / "shared" / "real"


@pytest.fixture(scope="module")
def synthetic():
    from sgg.datasets.synthetic import generate_scene

    return generate_scene(4, 768)


def _harbour() -> SceneGraph:
    """Three ships parallelly docked at one dock (two also alongside each other), one crane over the dock."""
    v = Vocabulary.star()
    boxes = torch.tensor([[100, 100, 40, 10, 0], [100, 115, 40, 10, 0], [100, 130, 40, 10, 0],
                          [100, 150, 200, 12, 0], [300, 150, 20, 20, 0]], dtype=torch.float32)
    labels = [v.object_index(c) for c in ("ship", "ship", "ship", "dock", "crane")]
    pairs = [[0, 3], [1, 3], [2, 3], [0, 1], [4, 3]]
    preds = [v.predicate_index(p) for p in ("parallelly docked at",) * 3 + ("docked alongside with", "over")]
    return SceneGraph(Detections(OrientedBoxes(boxes), labels), PairSet(pairs), predicate_labels=preds,
                      image_size=(400, 300), metadata={"gsd": 0.5})


def test_english_forms():
    assert plural("ship") == "ships" and plural("car park") == "car parks" and plural("bus") == "buses"
    assert plural("boarding bridge") == "boarding bridges" and noun("smoke", 3) == "smoke plumes"
    assert predicate_phrase("parallelly docked at", True) == "are parallelly docked at"
    assert predicate_phrase("violently emit", False) == "violently emits"
    assert predicate_phrase("driving in the same direction with", True) == "are driving in the same direction as"


def test_caption_of_a_hand_made_harbour():
    text = caption(_harbour())
    assert text.startswith("This 400 × 300 px image (0.5 m per pixel) shows three ships, one dock and one crane.")
    assert "Three ships are parallelly docked at the dock." in text
    assert "A crane is over the dock." in text and "A ship is docked alongside another ship." in text
    rep = check_faithfulness(text, _harbour())
    assert rep["hallucination_rate"] == 0.0 and rep["relations"]["recall"] == 1.0
    assert rep["objects"]["recall"] == 1.0 and rep["counts"]["recall"] == 1.0


def test_caption_is_deterministic_and_faithful_on_a_synthetic_scene(synthetic):
    a, b = caption(synthetic), caption(synthetic)
    assert a == b
    counts = Counter(synthetic.vocabulary.objects[i] for i in synthetic.detections.labels.tolist())
    cls, n = counts.most_common(1)[0]
    assert f"{n:,} {noun(cls, n)}" in a
    rep = check_faithfulness(a, synthetic)
    assert rep["hallucination_rate"] == 0.0
    assert rep["relations"]["supported"] and not rep["relations"]["contradicted"]


def test_planted_errors_are_each_detected(synthetic):
    good = caption(synthetic)
    claims = extract_claims(good)
    cls, n = next((c, k) for c, k in claims["counts"] if k > 1)
    sc, pred, oc = claims["relations"][0][:3]
    v = synthetic.vocabulary
    held = {v.predicates[k] for (s, o), k in zip(synthetic.pairs.pairs.tolist(), synthetic.predicate_labels.tolist())
            if v.objects[synthetic.detections.labels[s]] == sc and v.objects[synthetic.detections.labels[o]] == oc}
    wrong_pred = next(p for p in ("incorrectly parked on", "violently emit", "pass under") if p not in held)
    # 1) a wrong count
    wrong_count = good.replace(f"{n:,} {noun(cls, n)}", f"{n + 1:,} {noun(cls, n + 1)}", 1)
    rep = check_faithfulness(wrong_count, synthetic)
    assert [d["class"] for d in rep["counts"]["contradicted"]] == [cls]
    assert rep["counts"]["contradicted"][0]["stated"] == n + 1
    # 2) an invented object
    absent = next(c for c in ("wind_mill", "stadium", "tennis_court") if c not in {v.objects[i] for i in synthetic.detections.labels.tolist()})
    rep = check_faithfulness(good + f" {noun(absent, 1).capitalize()} stands in the top left part.", synthetic)
    assert rep["objects"]["unsupported"] == [absent] and rep["hallucination_rate"] > 0
    # 3) a wrong predicate
    first = next(s for s in re.split(r"(?<=\.)\s+", good) if predicate_phrase(pred, True) in s or predicate_phrase(pred, False) in s)
    phrase = predicate_phrase(pred, True) if predicate_phrase(pred, True) in first else predicate_phrase(pred, False)
    bad = good.replace(first, first.replace(phrase, predicate_phrase(wrong_pred, phrase.startswith("are ") or not phrase.startswith("is "))))
    rep = check_faithfulness(bad, synthetic)
    flagged = rep["relations"]["contradicted"] + rep["relations"]["unsupported"]
    assert [(r["subject"], r["predicate"], r["object"]) for r in flagged] == [(sc, wrong_pred, oc)]
    # the clean caption has none of these
    assert check_faithfulness(good, synthetic)["hallucination_rate"] == 0.0


def test_fit_text_faithfulness_and_pronouns():
    g = _harbour()
    region = ("A fully visible small ship on the top left part of the image. It is <rel>parallelly docked at</rel> 1 "
              "<ref>dock</ref><rbox>({<25.00><50.00><50.00><3.00>|<90>})</rbox>. 1 <ref>crane</ref><rbox>({<1><1><5><5>|<90>})</rbox> "
              "is <rel>over</rel> it.")
    rep = check_faithfulness(region, g)
    rows = {(r["subject"], r["predicate"], r["object"]) for r in rep["relations"]["supported"]}
    assert ("ship", "parallelly docked at", "dock") in rows
    assert [(r["subject"], r["object"]) for r in rep["relations"]["unsupported"]] == [("crane", "ship")]
    task2 = "There are 2 relationships between ship and dock: ship <parallelly docked at> dock, ship <over> dock"
    rep = check_faithfulness(task2, g)
    assert len(rep["relations"]["supported"]) == 1
    assert rep["relations"]["contradicted"][0]["predicate"] == "over"


def test_predicted_graph_uses_its_best_triplets():
    g = _harbour()
    v = g.vocabulary
    scores = torch.zeros(len(g.pairs), v.num_predicates)
    scores[torch.arange(len(g.pairs)), g.predicate_labels] = torch.tensor([0.9, 0.8, 0.7, 0.2, 0.6])
    pred = SceneGraph(g.detections, g.pairs, predicate_scores=scores, image_size=g.image_size, metadata=g.metadata)
    text = caption(pred, top_k=3)
    assert "Three ships are parallelly docked at the dock." in text and "crane is over" not in text
    assert "The graph holds three relations" in text


@pytest.mark.skipif(not (REAL / "dota" / "P0706.txt").exists(), reason="shared/real/dota/P0706 not present")
def test_caption_of_real_marina_p0706():
    from sgg.datasets import read_dota_labels

    g = read_dota_labels(REAL / "dota" / "P0706.txt", aliases="dota_to_star")
    text = caption(g)
    assert text.startswith("This 1,111 × 1,182 px image (0.26 m per pixel) shows 531 ships and five docks.")
    m = re.search(r"([\d,]+) of the 531 ships lie within 5 m of a dock", text)
    assert m and 0 < int(m.group(1).replace(",", "")) <= 531
    assert check_faithfulness(text, g)["hallucination_rate"] == 0.0


@pytest.mark.skipif(not (REAL / "airbus_aircraft" / "labelTxt").is_dir(), reason="shared/real/airbus_aircraft not present")
def test_caption_of_a_real_airbus_airport():
    from sgg.datasets import read_dota_labels

    path = REAL / "airbus_aircraft" / "labelTxt" / "fc06c595-7905-46c3-91c0-daf56af0f926.txt"
    if not path.exists():
        path = min((REAL / "airbus_aircraft" / "labelTxt").glob("*.txt"))
    g = read_dota_labels(path, aliases="dota_to_star")
    text = caption(g)
    n = g.num_objects
    assert text.startswith(f"This 2,560 × 2,560 px image (0.5 m per pixel) shows {n} airplanes.")
    rep = check_faithfulness(text, g)
    assert rep["counts"]["supported"] == [{"class": "airplane", "stated": n, "graph": n}]
    assert rep["hallucination_rate"] == 0.0


def test_free_text_synonyms_and_absence():
    g = _harbour()
    text = ("Three vessels are moored at a pier. There are no aircraft and no stadiums. "
            "One crane stands over the quay. Two planes are parked on the apron.")
    rep = check_faithfulness(text, g)
    assert {"ship", "dock", "crane"} <= set(rep["objects"]["supported"])
    assert rep["objects"]["unsupported"] == ["airplane", "apron"]  # the planes and the apron, not the "no" ones
    stated = {(d["class"], d["stated"]) for d in rep["counts"]["supported"]}
    assert {("ship", 3), ("airplane", 0), ("stadium", 0)} <= stated
    # "over" makes the crane sentence a relation: its number is the relation's subject count
    assert rep["relations"]["supported"] == [{"subject": "crane", "predicate": "over", "object": "dock",
                                               "stated_subjects": 1}]
    assert rep["counts"]["contradicted"] == [{"class": "airplane", "stated": 2, "graph": 0}]
