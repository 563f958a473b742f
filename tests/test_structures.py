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


# ------------------------------------------------------------------------------------ seams (issue 10)
def _graph(n=4, scores=True):
    boxes = torch.tensor([[10.0 * i + 5, 20.0, 8.0, 4.0, 0.1 * i] for i in range(n)])
    det = Detections(boxes, torch.arange(n) % 3, torch.linspace(0.9, 0.5, n),
                     features=torch.randn(n, 6, generator=torch.Generator().manual_seed(0)).half(),
                     levels=torch.zeros(n, dtype=torch.long),
                     class_scores=torch.softmax(torch.randn(n, 4, generator=torch.Generator().manual_seed(1)), 1))
    voc = Vocabulary(("a", "b", "c"), ("on", "near"))
    pairs = PairSet(torch.tensor([[0, 1], [1, 2], [3, 0]]), torch.tensor([0.5, 0.25, 1.0]))
    ps = torch.softmax(torch.randn(3, 3, generator=torch.Generator().manual_seed(2)), 1) if scores else None
    return SceneGraph(det, pairs, predicate_scores=ps, vocabulary=voc, metadata={"k": 1})


def test_scene_graph_moves_through_lightning_to_meta():
    from lightning_fabric.utilities.apply_func import move_data_to_device

    sg = _graph()
    batch = {"graphs": [sg], "x": torch.zeros(2)}
    moved = move_data_to_device(batch, torch.device("meta"))
    g = moved["graphs"][0]
    tensors = [g.detections.boxes.tensor, g.detections.labels, g.detections.scores, g.detections.features,
               g.detections.levels, g.detections.class_scores, g.pairs.pairs, g.pairs.scores, g.predicate_scores]
    assert all(t.device.type == "meta" for t in tensors)
    assert g.detections.features.dtype == torch.float16 and g.pairs.pairs.dtype == torch.long
    assert g.vocabulary is sg.vocabulary and g.metadata == {"k": 1} and len(g.pairs) == 3
    assert sg.detections.boxes.tensor.device.type == "cpu"  # the original is untouched
    assert g.to("meta").device.type == "meta" and sg.to("cpu").device.type == "cpu"


def test_scene_graph_is_immutable_and_replace_validates():
    sg = _graph()
    with pytest.raises(AttributeError):  # a frozen dataclass: FrozenInstanceError
        sg.pairs = PairSet.empty()
    # new pairs drop the old per-pair predicate scores unless given anew
    sg2 = sg.replace(pairs=PairSet(torch.tensor([[0, 2]])))
    assert sg2.predicate_scores is None and len(sg2.pairs) == 1 and sg.predicate_scores is not None
    with pytest.raises(ValueError, match="predicate_scores"):
        sg.replace(pairs=PairSet(torch.tensor([[0, 2]])), predicate_scores=torch.ones(3, 3))
    with pytest.raises(ValueError, match="out of range"):
        sg.replace(pairs=PairSet(torch.tensor([[0, 9]])))
    with pytest.raises(TypeError, match="unknown field"):
        sg.replace(colour="red")
    assert sg.replace(image_path="x.tif").image_path == "x.tif"


def test_detections_extras_follow_indexing_and_concatenation():
    d = _graph().detections
    sub = d[torch.tensor([2, 0])]
    assert torch.equal(sub.class_scores, d.class_scores[[2, 0]]) and torch.equal(sub.features, d.features[[2, 0]])
    both = Detections.cat([d, sub])
    assert both.class_scores.shape == (6, 4) and both.features.dtype == torch.float16
    # an extra that only some parts have is dropped rather than misaligned
    plain = Detections(d.boxes, d.labels, d.scores)
    assert Detections.cat([d, plain]).class_scores is None
    with pytest.raises(ValueError, match="class_scores"):
        Detections(d.boxes, d.labels, class_scores=torch.ones(3, 4))
    with pytest.raises(ValueError, match="columns"):
        Detections(d.boxes, d.labels, class_scores=torch.ones(4, 3), num_classes=3)


def test_pairset_cat_offsets_and_device():
    a = PairSet(torch.tensor([[0, 1]]), torch.tensor([0.5]))
    b = PairSet(torch.tensor([[1, 0], [0, 2]]), torch.tensor([0.1, 0.2]))
    c = PairSet.cat([a, b], offsets=[0, 2])
    assert c.pairs.tolist() == [[0, 1], [3, 2], [2, 4]] and c.scores.tolist() == pytest.approx([0.5, 0.1, 0.2])
    assert PairSet.cat([a, PairSet(torch.tensor([[2, 3]]))]).scores is None
    assert c.device.type == "cpu" and c.to("meta").pairs.device.type == "meta"
    assert len(PairSet.cat([])) == 0


def test_vocabulary_combine_checks_object_names():
    det = Vocabulary(("a", "b"), ())
    rel = Vocabulary(("a", "b"), ("on", "near"))
    both = det.combine(rel)
    assert both.predicates == rel.predicates and both.objects == det.objects and both.has_predicates
    assert not det.has_predicates
    with pytest.raises(ValueError, match="different order"):
        det.combine(Vocabulary(("b", "a"), ("on",)))
    with pytest.raises(ValueError, match="only in the detector: \\['b'\\]"):
        det.combine(Vocabulary(("a", "z"), ("on",)))
