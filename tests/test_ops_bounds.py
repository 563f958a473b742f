"""sgg.ops.outside_image: the one "object outside the image" rule of detections and label readers."""

import math
import warnings

import numpy as np
import pytest
import torch

from sgg.datasets.dota import read_dota_labels
from sgg.datasets.native import scene_from_dict
from sgg.ops import box_to_corners, outside_image
from sgg.structures import Detections, Vocabulary

# an 80 x 64 image; hand-worked: (centre outside?, extent outside?)
BOXES = torch.tensor([
    [0.0, 0, 10, 6, 0],            # centre on the corner: inside by centre; overlaps the image: inside
    [-4.0, 10, 6, 6, 0],           # centre left of the image, reaches x = -1: outside both ways
    [-2.0, 10, 6, 6, 0],           # centre left, reaches x = 1 into the image: centre out, extent in
    [83.0, 30, 6, 6, 0],           # envelope starts at x = 80 exactly: touching from outside = outside
    [40.0, 70, 20, 4, math.pi / 2],  # rotated upright: envelope y 60..80 overlaps; centre below: out
    [40.0, 30, 10, 6, 1.0],        # well inside
])
WANT_CENTRE = [False, True, True, True, True, False]
WANT_EXTENT = [False, True, False, True, False, False]


def test_outside_image_by_centre_and_by_extent():
    assert outside_image(BOXES, (80, 64), by="centre").tolist() == WANT_CENTRE
    assert outside_image(BOXES, (80, 64)).tolist() == WANT_EXTENT
    # the same boxes as polygons (corners) and as float64 numpy give the same answers
    corners = box_to_corners(BOXES).double().numpy()
    assert outside_image(corners, (80, 64), by="centre").tolist() == WANT_CENTRE
    assert outside_image(corners, (80, 64)).tolist() == WANT_EXTENT
    assert outside_image(torch.zeros(0, 5), (8, 8)).shape == (0,)
    with pytest.raises(ValueError, match="centre"):
        outside_image(BOXES, (80, 64), by="center")


def test_detections_native_and_dota_use_the_same_rule(tmp_path):
    det = Detections(BOXES, [0] * 6, torch.linspace(1, 0.5, 6))
    kept = det.centred_inside((80, 64))
    assert kept.boxes.tensor.tolist() == BOXES[[not o for o in WANT_CENTRE]].tolist()

    voc = Vocabulary(("thing",), ())
    doc = {"format_version": "sgg-scene/1", "image": {"width": 80, "height": 64},
           "objects": [{"id": i, "class": "thing", "box": dict(zip(("cx", "cy", "w", "h", "angle"), b))}
                       for i, b in enumerate(BOXES.tolist())], "relations": []}
    with pytest.warns(UserWarning, match=r"2 object\(s\) wholly outside the 80×64 image: objects\[1\], objects\[3\]"):
        scene_from_dict(doc, voc, path=tmp_path / "s.json")

    lines = [" ".join(f"{v:.4f}" for v in c.reshape(-1)) + " thing 0" for c in box_to_corners(BOXES).numpy()]
    (tmp_path / "p.txt").write_text("\n".join(lines) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sg = read_dota_labels(tmp_path / "p.txt", voc, image_size=(80, 64))
    outside = [str(w.message) for w in caught if "outside" in str(w.message)]
    assert len(outside) == 2 and "line 2" in outside[0] and "line 4" in outside[1]
    assert np.allclose(sg.detections.boxes.tensor[:, :2].numpy(), BOXES[[0, 2, 4, 5], :2].numpy(), atol=1e-3)
