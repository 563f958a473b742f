"""FIT-RSRC questions from a graph and the CircularEval scorer (official answer matching)."""

from __future__ import annotations

import torch

from sgg.captioning.rsrc import circular_variants, extract_choice, rsrc_questions, score_rsrc
from sgg.structures import Detections, OrientedBoxes, PairSet, SceneGraph, Vocabulary


def _harbour() -> SceneGraph:
    v = Vocabulary.star()
    boxes = torch.tensor([[100, 100, 40, 10, 0], [100, 115, 40, 10, 0], [100, 150, 200, 12, 0], [300, 150, 20, 20, 0]],
                         dtype=torch.float32)
    labels = [v.object_index(c) for c in ("ship", "ship", "dock", "crane")]
    pairs = [[0, 2], [1, 2], [0, 1], [3, 2]]
    preds = [v.predicate_index(p) for p in ("parallelly docked at", "parallelly docked at", "docked alongside with", "over")]
    return SceneGraph(Detections(OrientedBoxes(boxes), labels), PairSet(pairs), predicate_labels=preds, image_size=(512, 512))


def test_questions_have_one_true_option_and_plausible_wrong_ones():
    g = _harbour()
    qs = rsrc_questions(g, per_category=2, num_options=4, seed=3)
    assert {q["category"] for q in qs} == {"relationship", "object", "subject", "exist"}
    truth = {("ship", "parallelly docked at", "dock"), ("ship", "docked alongside with", "ship"), ("crane", "over", "dock")}
    for q in qs:
        assert len(q["options"]) == 4 and len(set(q["options"])) == 4 and q["answer"] == 0
        if q["category"] == "exist":
            assert q["options"][0] in {" ".join(t) for t in truth}
            assert not any(o in {" ".join(t) for t in truth} for o in q["options"][1:])
        if q["category"] == "relationship" and "crane" in q["question"]:
            assert q["options"][0] == "over" and "over" not in q["options"][1:]
    # STAR's triplet counts rank the distractors: for ship→dock, other docking predicates come first
    rel = next(q for q in qs if q["category"] == "relationship" and q["options"][0] == "parallelly docked at")
    assert any("docked" in o for o in rel["options"][1:])
    assert rsrc_questions(g, seed=3) == rsrc_questions(g, seed=3)


def test_circular_variants_rotate_the_right_letter():
    q = {"category": "relationship", "question": "Q?", "options": ["right", "w1", "w2", "w3"], "answer": 0}
    vs = circular_variants(q, "q0", "img.png")
    assert [v["ground_truth"] for v in vs] == ["A", "D", "C", "B"]
    assert all(v["options"][ord(v["ground_truth"]) - 65] == "right" for v in vs)
    assert vs[1]["text"] == "Q?\nA. w1\nB. w2\nC. w3\nD. right\nAnswer with the option's letter from the given choices directly."


def test_circular_eval_scoring_hand_worked():
    q1 = circular_variants({"category": "relationship", "question": "Q1", "options": ["r", "a", "b", "c"], "answer": 0}, "q1")
    q2 = circular_variants({"category": "object", "question": "Q2", "options": ["r", "a", "b", "c"], "answer": 0}, "q2")
    q3 = circular_variants({"category": "exist", "question": "Q3", "options": ["r", "a", "b", "c"], "answer": 0}, "q3")
    answers = [dict(v, answer=f"The answer is {v['ground_truth']}.") for v in q1]  # all 4 right (letter found)
    answers += [dict(v, answer=v["ground_truth"].lower()) for v in q2[:3]] + [dict(q2[3], answer="A")]  # one wrong
    answers += [dict(v, answer="r") for v in q3]  # option text: not accepted by the official rule
    out = score_rsrc(answers)
    assert out["correct"] == 1 and out["total"] == 3 and abs(out["accuracy"] - 1 / 3) < 1e-12
    assert out["per_category"]["relationship"]["accuracy"] == 1.0 and out["per_category"]["object"]["accuracy"] == 0.0
    assert score_rsrc(answers, match_option_text=True)["per_category"]["exist"]["accuracy"] == 1.0


def test_first_standalone_letter_rule_and_its_article_quirk():
    assert extract_choice("B. parked alongside") == "B"
    assert extract_choice("I think (C)") == "C"
    assert extract_choice("A ship is over the dock, so D") == "A"  # the official regex reads the article
    assert extract_choice("none of them") is None
