"""FIT-RS box codec and answer grammar: round trips, exact strings, tolerant parsing."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sgg.captioning import encode_boxes, parse_boxes, parse_relation_detection
from sgg.captioning.codec import FitTextWarning, parse_boxes_detail, resolve_class, split_sentences
from sgg.errors import SggInputError
from sgg.ops import box_to_corners
from sgg.structures import OrientedBoxes, Vocabulary


def _corner_gap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per box: the largest distance from a corner of ``a`` to the nearest corner of ``b`` (order-free)."""
    ca, cb = box_to_corners(a.double()), box_to_corners(b.double())
    d = torch.cdist(ca, cb)
    return d.min(dim=2).values.max(dim=1).values


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 512), st.floats(0, 512), st.floats(2, 300), st.floats(2, 300),
                          st.floats(-math.pi / 2, math.pi / 2 - 1e-6)), min_size=1, max_size=6),
       st.sampled_from([512, 800]))
def test_round_trip_random_boxes(rows, crop):
    boxes = OrientedBoxes(torch.tensor(rows, dtype=torch.float32))
    text = ", ".join(encode_boxes(boxes, crop))
    back = parse_boxes(text, crop, errors="raise")
    assert len(back) == len(boxes)
    # 2 decimals on a 0-100 grid: 0.005 grid units of position and size; integer degrees: 0.5°
    q = 0.005 * crop / 100
    half_diag = torch.hypot(boxes.widths, boxes.heights).double() / 2
    tol = 2 * q + half_diag * math.radians(0.5) * 1.01 + 1e-3
    assert bool((_corner_gap(boxes.tensor, back.tensor) <= tol).all())


def test_encoded_text_follows_fit_rs_format():
    boxes = OrientedBoxes(torch.tensor([[256.0, 128.0, 100.0, 20.0, 0.0],  # along x: oc θ = 90, w/h swapped
                                        [51.2, 51.2, 40.0, 10.0, -math.pi / 4],
                                        [10.0, 20.0, 30.0, 10.0, math.radians(30)]]))
    s = encode_boxes(boxes)
    assert s[0] == "{<50.00><25.00><3.91><19.53>|<90>}"
    assert s[1] == "{<10.00><10.00><1.95><7.81>|<45>}"
    assert s[2] == "{<1.95><3.91><5.86><1.95>|<30>}"
    for t in s:  # every angle in (0, 90]
        assert 0 < int(t.split("|<")[1].rstrip(">}")) <= 90


def test_angle_rounding_to_zero_writes_ninety_with_swapped_sides():
    b = OrientedBoxes(torch.tensor([[100.0, 100.0, 50.0, 10.0, math.radians(0.3)]]))
    (s,) = encode_boxes(b)
    assert s.endswith("|<90>}") and s.startswith("{<19.53><19.53><1.95><9.77>")


def test_parser_accepts_zero_degrees_polygons_and_spaces():
    text = "{<50.00><50.00><20.00><10.00>|<0>} and { <10> <10> <4> <2> | <90> } {<10,10><20,10><20,15><10,15>}"
    b = parse_boxes(text, errors="raise")
    assert len(b) == 3
    # 0° (w along x) equals 90° with the sides swapped; le90 canonical: w ≥ h along x
    torch.testing.assert_close(b.tensor[0], torch.tensor([256.0, 256.0, 102.4, 51.2, 0.0]))
    torch.testing.assert_close(b.tensor[2, :4], torch.tensor([76.8, 64.0, 51.2, 25.6]))


def test_unreadable_boxes_are_reported_not_zeroed():
    text = "<rbox>({<10><10><5><5>|<30>}, {<a><b><c><d>|<e>}, {<1><2><0><3>|<10>})</rbox>"
    detail = parse_boxes_detail(text)
    assert len(detail.boxes) == 1 and len(detail.errors) == 2
    assert "{<a><b><c><d>|<e>}" in detail.errors[0] and "zero" in detail.errors[1]
    with pytest.warns(FitTextWarning, match="unreadable box"):
        assert len(parse_boxes(text)) == 1
    with pytest.raises(SggInputError, match="unreadable box"):
        parse_boxes(text, errors="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(parse_boxes(text, errors="ignore")) == 1


def test_public_relation_detection_example():
    text = ("There are 2 relationships between tank and tank: tank <not co-storage with> tank, "
            "tank <co-storage with> tank")
    out = parse_relation_detection(text)
    assert out["count"] == 2 and out["subject"] == "tank" and out["object"] == "tank"
    assert out["relations"] == [("tank", "not co-storage with", "tank"), ("tank", "co-storage with", "tank")]
    one = parse_relation_detection("There is 1 relationship between ship and dock: ship <parallelly docked at> dock")
    assert one["count"] == 1 and one["relations"] == [("ship", "parallelly docked at", "dock")]


def test_plural_and_spelling_tolerance():
    classes = Vocabulary.star().objects
    assert resolve_class("car_parkings", classes) == "car_parking"
    assert resolve_class("Gas Stations", classes) == "gas_station"
    assert resolve_class("boarding-bridges", classes) == "boarding_bridge"
    assert resolve_class("ships", classes) == "ship" and resolve_class("ship", classes) == "ship"
    assert resolve_class("spaceships", classes) is None


def test_sentences_keep_their_tags():
    s = split_sentences("A small ship on the top part of the image. It is <rel>parallelly docked at</rel> 1 "
                        "<ref>dock</ref><rbox>({<1.00><2.00><30.00><4.00>|<90>})</rbox>.")
    assert len(s) == 2 and s[1].rels == ["parallelly docked at"] and s[1].refs == ["dock"]
    assert s[1].rboxes == ["{<1.00><2.00><30.00><4.00>|<90>}"]


def test_detection_answers_singular_plural_truncated_negative():
    from sgg.captioning import parse_detection

    one = parse_detection("There is 1 car_parking in the image: <rbox>({<50.00><50.00><20.00><10.00>|<90>})</rbox>")
    assert one["class"] == "car_parking" and one["count"] == 1 and len(one["boxes"]) == 1
    many = parse_detection("There are 23 cars in the image: <rbox>({<1.00><1.00><2.00><1.00>|<45>})</rbox>, "
                           "and due to the context length, the remaining objects are not listed.")
    assert many["class"] == "car" and many["count"] == 23 and many["truncated"] and len(many["boxes"]) == 1
    neg = parse_detection("I'm sorry, I cannot answer as the given image does not contain any given objects.")
    assert neg["negative"] and neg["class"] is None and len(neg["boxes"]) == 0
