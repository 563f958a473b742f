import math

import pytest
import torch

from sgg.structures import Detections, GeoReference, OrientedBoxes, PairSet, SceneGraph, Vocabulary


def test_star_vocabulary():
    v = Vocabulary.star()
    assert v.num_classes == 48 and v.num_predicates == 59
    assert v.predicates[0] == "__background__"
    assert v.object_index("ship") == 0 and v.predicate_index("parallelly docked at") == 1
    with pytest.raises(ValueError, match="unknown object class 'spaceship'"):
        v.object_index("spaceship")
    assert Vocabulary.from_dict(v.to_dict()) == v


@pytest.mark.parametrize(
    "bad, field",
    [
        ([[0, 0, 1, 1]], "shape"),
        ([[0, 0, float("nan"), 1, 0]], "NaN"),
        ([[0, 0, 0, 1, 0]], "width and height"),
        ([[0, 0, -2, 1, 0]], "width and height"),
        ([[0, 0, 2, 1, float("inf")]], "NaN or inf"),
    ],
)
def test_boxes_validation(bad, field):
    with pytest.raises(ValueError, match=field):
        OrientedBoxes(bad)


def test_boxes_angle_wrap():
    b = OrientedBoxes([[0, 0, 4, 2, math.pi / 2], [0, 0, 4, 2, 3.5]])
    a = b.angles
    assert bool(((a >= -math.pi / 2) & (a < math.pi / 2)).all())
    assert a[0].item() == pytest.approx(-math.pi / 2)


def test_detections_validation():
    boxes = OrientedBoxes([[5, 5, 4, 2, 0.1], [9, 9, 3, 3, 0.0]])
    with pytest.raises(ValueError, match="Detections.labels"):
        Detections(boxes, [0])
    with pytest.raises(ValueError, match="Detections.scores"):
        Detections(boxes, [0, 1], [0.5])
    with pytest.raises(ValueError, match="out of range"):
        Detections(boxes, [0, 5], num_classes=3)
    with pytest.raises(ValueError, match="Detections.scores"):
        Detections(boxes, [0, 1], [0.5, float("nan")])
    d = Detections(boxes, [0, 1], [0.9, 0.2])
    assert len(Detections.cat([d, d])) == 4 and len(d[1:]) == 1


def test_pairs_and_graph_validation():
    d = Detections(OrientedBoxes([[5, 5, 4, 2, 0.1], [9, 9, 3, 3, 0.0]]), [0, 1])
    with pytest.raises(ValueError, match="itself"):
        PairSet([[0, 0]])
    with pytest.raises(ValueError, match="SceneGraph.pairs"):
        SceneGraph(d, PairSet([[0, 2]]))
    with pytest.raises(ValueError, match="predicate_scores"):
        SceneGraph(d, PairSet([[0, 1]]), predicate_scores=torch.zeros(1, 3))
    sg = SceneGraph(d, PairSet([[0, 1], [1, 0]]), predicate_scores=torch.rand(2, 59))
    t = sg.triplets(top_k=10, per_pair=2)
    assert len(t["score"]) == 4 and bool((t["predicate"] > 0).all())
    assert bool((t["score"][:-1] >= t["score"][1:]).all())


def test_georef_roundtrip():
    g = GeoReference("EPSG:32618", (0.5, 0, 100.0, 0, -0.5, 200.0))
    xy = torch.tensor([[10.0, 20.0], [0.0, 0.0]]).numpy()
    assert g.pixel_to_map(xy)[0].tolist() == [105.0, 190.0]
    assert abs(g.map_to_pixel(g.pixel_to_map(xy)) - xy).max() < 1e-9
    with pytest.raises(ValueError, match="transform"):
        GeoReference(None, (0, 0, 0, 0, 0, 0))
