"""FIT-RSFG scorers against hand-worked answer sets, in the faithful and the clean mode."""

from __future__ import annotations

import pytest

from sgg.captioning.scorers import score_answers

G2 = "There are 2 relationships between tank and tank: tank <not co-storage with> tank, tank <co-storage with> tank"
SHIP_A = "{<20.00><20.00><10.00><4.00>|<90>}"
SHIP_B = "{<40.00><20.00><10.00><4.00>|<90>}"
DOCK = "{<30.00><40.00><40.00><5.00>|<90>}"


@pytest.fixture(scope="module")
def synthetic_scene():
    from sgg.datasets.synthetic import generate_scene

    return generate_scene(4, 768)


def test_relation_detection_micro_prf():
    recs = [
        {"category": "task2", "ground_truth": G2, "answer": "There is 1 relationship between tank and tank: tank <co-storage with> tank"},
        {"category": "task2", "ground_truth": G2,
         "answer": "tank <rel>co-storage with</rel> tank, tank <rel>parallelly docked at</rel> tank"},
    ]
    f = score_answers(recs, "faithful")["task2_relation_detection"]
    # official: every <…> is a predicate, so the tags "rel" and "/rel" are two false positives
    assert (f["tp"], f["fp"], f["fn"]) == (1, 2, 3)
    assert f["precision"] == pytest.approx(1 / 3) and f["recall"] == pytest.approx(1 / 4) and f["f1"] == pytest.approx(2 / 7)
    c = score_answers(recs, "clean")["task2_relation_detection"]
    assert (c["tp"], c["fp"], c["fn"]) == (2, 1, 2)
    assert c["precision"] == pytest.approx(2 / 3) and c["recall"] == pytest.approx(1 / 2) and c["f1"] == pytest.approx(4 / 7)


def test_relation_reasoning_wrong_classes():
    gt = "subject: ship, object: dock, relationship: <rel>parallelly docked at</rel>."
    recs = [{"category": "task3", "ground_truth": gt, "answer": gt},
            {"category": "task3", "ground_truth": gt,
             "answer": "subject: boat, object: dock, relationship: <rel>parallelly docked at</rel>."}]
    f = score_answers(recs, "faithful")["task3_relation_reasoning"]
    assert (f["tp"], f["fp"], f["fn"]) == (1, 0, 0)  # the official code drops the wrong answer's FP/FN
    c = score_answers(recs, "clean")["task3_relation_reasoning"]
    assert (c["tp"], c["fp"], c["fn"]) == (1, 1, 1) and c["f1"] == pytest.approx(0.5)


def test_detection_map_small_boxes_and_truncation():
    gt = "There are 2 cars in the image: <rbox>({<10.00><10.00><4.00><1.50>|<90>}, {<50.00><50.00><4.00><3.00>|<90>})</rbox>"
    recs = [{"category": "task1", "ground_truth": gt, "answer": "There is 1 car in the image: <rbox>({<50.00><50.00><4.00><3.00>|<90>})</rbox>"},
            {"category": "task1", "ground_truth": gt + ", and due to the context length, the remaining objects are not listed.",
             "answer": ""},
            {"category": "task1", "ground_truth": "I'm sorry, I cannot answer as the given image does not contain any given objects.",
             "answer": "There is 1 car in the image: <rbox>({<1.00><1.00><4.00><3.00>|<90>})</rbox>"}]
    f = score_answers(recs, "faithful")
    # the 1.5-unit-high car is below the official 2-unit filter: the one box left is found, AP 1
    assert f["task1_detection_map"] == pytest.approx(1.0)
    assert f["skipped"]["task1"] == 2  # truncated ground truth, negative sample
    # clean: both cars count; one found at rank 1 → precision 1 up to recall 0.5 → 6 of 11 VOC07 points
    assert score_answers(recs, "clean")["task1_detection_map"] == pytest.approx(6 / 11)


def test_image_level_sgg_recall_and_mean_recall():
    gt = (f"There are 2 <ref>ships</ref> in the image: <rbox>({SHIP_A}, {SHIP_B})</rbox>. There is 1 <ref>dock</ref> "
          f"in the image: <rbox>({DOCK})</rbox>. 2 <ref>ships</ref><rbox>({SHIP_A}, {SHIP_B})</rbox> are "
          f"<rel>parallelly docked at</rel> <ref>dock</ref><rbox>({DOCK})</rbox>.")
    half = f"1 <ref>ship</ref><rbox>({SHIP_A})</rbox> is <rel>parallelly docked at</rel> <ref>dock</ref><rbox>({DOCK})</rbox>."
    recs = [{"category": "task6", "ground_truth": gt, "answer": half},
            {"category": "task6", "ground_truth": gt, "answer": "I cannot see anything."}]
    f = score_answers(recs, "faithful")["task6_image_sgg"]
    assert f["images"] == 1 and f["skipped_empty_answers"] == 1
    assert f["recall"] == pytest.approx(0.5) and f["buckets"] == 59 and f["mean_recall"] == pytest.approx(0.5 / 59)
    c = score_answers(recs, "clean")["task6_image_sgg"]
    assert c["images"] == 2 and c["recall"] == pytest.approx(0.25)
    assert c["buckets"] == 58 and c["mean_recall"] == pytest.approx(0.25 / 58)
    # a subject box moved off its ship (IoU < 0.25) does not match
    moved = half.replace(SHIP_A, "{<20.00><30.00><10.00><4.00>|<90>}")
    assert score_answers([{"category": "task6", "ground_truth": gt, "answer": moved}], "clean")["task6_image_sgg"]["recall"] == 0.0


def test_region_level_target_class_only_in_clean_mode():
    gt = (f"A fully visible small ship on the top left part of the image. It is <rel>parallelly docked at</rel> 1 "
          f"<ref>dock</ref><rbox>({DOCK})</rbox>. 1 <ref>ship</ref><rbox>({SHIP_B})</rbox> is <rel>docked alongside with</rel> it.")
    ans = f"A small boat on the top left part of the image. It is <rel>parallelly docked at</rel> 1 <ref>dock</ref><rbox>({DOCK})</rbox>."
    recs = [{"category": "task5", "ground_truth": gt, "answer": ans}]
    assert score_answers(recs, "faithful")["task5_region_sgg"]["recall"] == pytest.approx(0.5)  # target never read
    assert score_answers(recs, "clean")["task5_region_sgg"]["recall"] == 0.0  # boat is not the ship
    right = ans.replace("small boat", "small ship")
    assert score_answers([{"category": "task5", "ground_truth": gt, "answer": right}], "clean")["task5_region_sgg"]["recall"] == pytest.approx(0.5)


def test_generated_answers_score_perfectly(synthetic_scene):
    from sgg.captioning.export import scene_records

    crops = scene_records(synthetic_scene, "s", max_per_task=2)
    # two crops: one with a faithful-mode image-level graph (large objects), one with a region-level one
    recs = [{"category": it["category"], "ground_truth": it["answer"], "answer": it["answer"]}
            for c in (crops[0], crops[2]) for it in c["items"]]
    assert {r["category"] for r in recs} == {"task1", "task2", "task3", "task5", "task6"}
    for mode in ("faithful", "clean"):
        out = score_answers(recs, mode)
        assert out["task1_detection_map"] == pytest.approx(1.0)
        assert out["task2_relation_detection"]["f1"] == pytest.approx(1.0)
        assert out["task3_relation_reasoning"]["f1"] == pytest.approx(1.0)
        assert out["task5_region_sgg"]["recall"] == pytest.approx(1.0)
        assert out["task6_image_sgg"]["recall"] == pytest.approx(1.0)
        assert out["num_parse_errors"] == 0


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        score_answers([], "strict")
