"""detect_scene's seams for the relation stages: per-object features and class scores, the split
plan → run_tiles → merge_tiles, the tile cache a resumable ledger uses, progress, and the detector protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sgg.detectors.hodnet import HODNet, resolve_config
from sgg.detectors.inference import (
    detect_scene,
    merge_tiles,
    plan_scene,
    run_tiles,
    tile_key,
)
from sgg.detectors.protocol import TileDetector, detector_vocabulary
from sgg.errors import SggInputError
from sgg.io import RasterScene, write_geotiff
from sgg.structures import Detections, Vocabulary

VOC = Vocabulary(("red_thing", "green_thing", "blue_thing"), ())


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    cfg = resolve_config(num_classes=3, backbone="mobilenet_v3_large", pretrained=False, fpn_channels=32,
                         representation_size=48, rpn_pre_nms_top_n=[200, 200], rpn_post_nms_top_n=[100, 100],
                         score_threshold=0.0)
    model = HODNet(cfg, vocabulary=VOC, inference={"tile_size": 256, "overlap": 64}).eval()
    with torch.no_grad():  # an untrained head scores every class ~1/4: make class 1 stand out a little
        model.roi_head.cls.bias[1] += 0.5
    return model


@pytest.fixture()
def raster(tmp_path):
    rng = np.random.default_rng(0)
    img = (rng.random((300, 420, 3)) * 60).astype(np.uint8)
    img[40:80, 50:130] = 230
    img[200:230, 300:400, 1] = 250
    return write_geotiff(tmp_path / "s.tif", img, crs="EPSG:32633", transform=(0.5, 0, 500000, 0, -0.5, 5e6))


def test_features_and_class_scores_follow_every_kept_object(tiny_model, raster):
    sg = detect_scene(tiny_model, raster, with_features=True, progress=False, score_threshold=0.2)
    det = sg.detections
    n = len(det)
    assert n > 0
    assert det.features.shape == (n, 48) and det.features.dtype == torch.float16
    assert det.class_scores.shape == (n, 4)
    assert torch.allclose(det.class_scores.sum(1), torch.ones(n), atol=1e-4)
    # each object's score is its class's probability in its class-score row (column 0 is background)
    assert torch.allclose(det.class_scores[torch.arange(n), det.labels + 1], det.scores, atol=1e-5)
    assert sg.metadata["features"] == {"dim": 48, "dtype": "float16"}
    plain = detect_scene(tiny_model, raster, progress=False, score_threshold=0.2)
    assert plain.detections.features is None and plain.detections.class_scores is None
    assert torch.equal(plain.detections.boxes.tensor, det.boxes.tensor)  # features change nothing else


def test_features_are_the_box_head_representation_of_the_final_box(tiny_model, raster):
    """One tile (the scene fits): a kept object's feature equals the head's representation pooled at its box."""
    with RasterScene.open(raster) as scene:
        plan = plan_scene(scene, tile_size=512, overlap=64, levels=[0], zoom="full")
        (res,) = list(run_tiles(tiny_model, scene, plan, with_features=True, score_threshold=0.2))
        tile = next(iter(scene.tiles(tile_size=512, overlap=64, level=0)))
    x = torch.from_numpy(tile.array.copy()).permute(2, 0, 1).float()[None] / 255
    with torch.no_grad():
        batch, _ = tiny_model.preprocess(x)
        feats = tiny_model.features(batch)[:4]
        boxes = res.detections.boxes.tensor  # the scene is one tile at level 0: tile px == level-0 px
        want = tiny_model.roi_head.represent(feats, boxes, torch.zeros(len(boxes), dtype=torch.long))
    assert torch.allclose(res.detections.features.float(), want, atol=2e-2, rtol=1e-2)


def test_split_parts_compose_to_detect_scene(tiny_model, raster):
    ref = detect_scene(tiny_model, raster, tile_size=256, overlap=64, zoom="full", progress=False)
    with RasterScene.open(raster) as scene:
        plan = plan_scene(scene, 256, 64, "auto", "full")
        results = list(run_tiles(tiny_model, scene, plan))
    assert [lp.level for lp in plan.levels] == [1, 0] and len(results) == plan.max_tiles
    merged = merge_tiles(results, plan.image_size)
    assert torch.equal(merged.boxes.tensor, ref.detections.boxes.tensor)
    assert torch.equal(merged.labels, ref.detections.labels)


class _Counting(torch.nn.Module):
    """Wraps a detector and counts tiles it sees; ``fail`` makes any call an error."""

    def __init__(self, inner, fail=False):
        super().__init__()
        self.inner, self.fail, self.tiles = inner, fail, 0
        self.vocabulary, self.inference = inner.vocabulary, inner.inference
        self.eval()  # detect_scene restores a training model's mode afterwards: keep the shared fixture in eval

    def forward(self, images, with_features=False):
        if self.fail:
            raise AssertionError("a cached tile was run again")
        self.tiles += images.shape[0]
        return self.inner(images, with_features=with_features)


def test_tile_cache_skips_finished_tiles_and_gives_the_same_result(tiny_model, raster):
    cache: dict = {}
    first = detect_scene(_Counting(tiny_model), raster, tile_size=256, overlap=64, zoom="full", progress=False,
                         cache=cache, with_features=True)
    assert len(cache) == sum(v["run"] for v in first.metadata["tiles"].values()) > 1
    # a run killed after two tiles leaves two cache entries; the rerun runs only the rest
    partial: dict = {}
    with RasterScene.open(raster) as scene:
        plan = plan_scene(scene, 256, 64, "auto", "full")
        gen = run_tiles(tiny_model, scene, plan, cache=partial, batch_size=1, with_features=True)
        next(gen), next(gen)
        gen.close()  # the consumer stops: the reader threads stop too
    assert len(partial) == 2
    counting = _Counting(tiny_model)
    again = detect_scene(counting, raster, tile_size=256, overlap=64, zoom="full", progress=False, cache=partial,
                         with_features=True)
    assert counting.tiles == len(cache) - 2 and again.metadata["tiles_from_cache"] == 2
    assert torch.equal(again.detections.boxes.tensor, first.detections.boxes.tensor)
    assert torch.equal(again.detections.features, first.detections.features)
    full = detect_scene(_Counting(tiny_model, fail=True), raster, tile_size=256, overlap=64, zoom="full",
                        progress=False, cache=cache, with_features=True)
    assert torch.equal(full.detections.boxes.tensor, first.detections.boxes.tensor)
    assert tile_key(0, (0.0, 0.0, 256.0, 256.0)) in cache
    # results stored without features do not satisfy a run that wants them
    bare: dict = {}
    detect_scene(tiny_model, raster, tile_size=256, overlap=64, zoom="full", progress=False, cache=bare)
    redo = _Counting(tiny_model)
    detect_scene(redo, raster, tile_size=256, overlap=64, zoom="full", progress=False, cache=bare, with_features=True)
    assert redo.tiles == sum(1 for r in bare.values() if len(r.detections))


def test_progress_callback_reaches_each_levels_total(tiny_model, raster):
    calls = []
    detect_scene(tiny_model, raster, tile_size=256, overlap=64, zoom="full", progress=lambda *a: calls.append(a))
    last = {}
    for level, done, total in calls:
        assert 0 <= done <= total
        last[level] = (done, total)
    assert set(last) == {0, 1} and all(d == t for d, t in last.values())


def test_detector_protocol_and_vocabulary_is_required(tiny_model, raster):
    assert isinstance(tiny_model, TileDetector)
    bare = HODNet(resolve_config(num_classes=3, backbone="mobilenet_v3_large", pretrained=False, fpn_channels=32,
                                 representation_size=48))
    assert bare.vocabulary is None
    with pytest.raises(SggInputError, match="no vocabulary"):
        detect_scene(bare, raster, progress=False)
    with pytest.raises(SggInputError, match="3 classes but the vocabulary names 2"):
        detector_vocabulary(bare, Vocabulary(("a", "b"), ()))
    with pytest.raises(SggInputError, match="names 2 classes"):
        HODNet(resolve_config(num_classes=3, backbone="mobilenet_v3_large", pretrained=False),
               vocabulary=Vocabulary(("a", "b"), ()))

    class NoFeatures(torch.nn.Module):
        vocabulary, inference = VOC, {}

        def forward(self, images):
            return [Detections.empty() for _ in images]

    with pytest.raises(SggInputError, match="cannot return per-object features"):
        detect_scene(NoFeatures(), raster, with_features=True, progress=False)
    assert len(detect_scene(NoFeatures(), raster, progress=False).detections) == 0
