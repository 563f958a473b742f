"""Holistic multi-level inference with a fake detector that finds bright rectangles (cut by tile edges)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from sgg.detectors.inference import detect_scene, scenes_from_dota, select_guided
from sgg.io import RasterScene, write_geotiff
from sgg.structures import Detections, Vocabulary

VOC = Vocabulary(("red_thing", "green_thing"), ())
CRS, TRANSFORM = "EPSG:32618", (0.5, 0.0, 500000.0, 0.0, -0.5, 4000000.0)


class BlobDetector(torch.nn.Module):
    """Axis-aligned boxes around connected bright regions: channel 0 → class 0, channel 1 → class 1.

    Like a real detector it only sees its tile, so objects crossing a tile edge come out as fragments.
    """

    def __init__(self, min_pixels: int = 4):
        super().__init__()
        self.vocabulary = VOC
        self.min_pixels = min_pixels
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.calls: list[tuple[int, ...]] = []

    def forward(self, images: torch.Tensor) -> list[Detections]:
        self.calls.append(tuple(images.shape))
        out = []
        for img in images.numpy():
            rows, labels = [], []
            for c in (0, 1):
                lab, _ = ndimage.label(img[c] > 0.5)
                for k, sl in enumerate(ndimage.find_objects(lab), start=1):
                    if sl is None or (lab[sl] == k).sum() < self.min_pixels:
                        continue
                    y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
                    rows.append([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, 0.0])
                    labels.append(c)
            boxes = torch.tensor(rows, dtype=torch.float32).reshape(-1, 5)
            out.append(Detections(boxes, labels, torch.full((len(rows),), 0.9)))
        return out


def _scene(tmp_path, size, objects, name="scene.tif", nodata=None, fill=0):
    """Write a dark GeoTIFF with bright rectangles ``(x0, y0, x1, y1, class)``; return path and GT boxes."""
    w, h = size
    img = np.full((h, w, 3), fill, dtype=np.uint8)
    gt = []
    for x0, y0, x1, y1, c in objects:
        img[y0:y1, x0:x1, c] = 255
        gt.append([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, c])
    path = write_geotiff(tmp_path / name, img, nodata=nodata, crs=CRS, transform=TRANSFORM)
    return path, np.asarray(gt, dtype=np.float64).reshape(-1, 5)


def _sorted_rows(sg):
    t = torch.cat([sg.detections.boxes.tensor[:, :4], sg.detections.labels[:, None].float()], dim=1).numpy()
    return t[np.lexsort((t[:, 1], t[:, 0]))] if len(t) else t


# objects of a 1500 × 1100 scene; level-0 tiles of 512 / overlap 128 start at x 0, 384, 768, 988 and
# y 0, 384, 588: several objects cross tile edges
OBJECTS = [
    (480, 100, 560, 140, 0),  # crosses x = 512 (tile 0's right edge)
    (700, 360, 760, 420, 1),  # crosses y = 384 and sits in the overlap
    (1000, 500, 1090, 530, 0),  # crosses y = 512 (bottom edge of the first tile row)
    (100, 900, 130, 1000, 1),
    (1450, 1050, 1500, 1100, 0),  # touches the image corner
]


def test_level0_sweep_gives_each_object_once(tmp_path):
    path, gt = _scene(tmp_path, (1500, 1100), OBJECTS)
    model = BlobDetector()
    sg = detect_scene(model, path, tile_size=512, overlap=128, levels=[0], zoom="full", batch_size=3, progress=False)
    got = _sorted_rows(sg)
    ref = gt[np.lexsort((gt[:, 1], gt[:, 0]))]
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-3)
    assert sg.image_size == (1500, 1100) and sg.vocabulary == VOC and len(sg.pairs) == 0
    assert sg.metadata["tiles"]["0"]["run"] == 12 and sg.metadata["levels"] == [0]
    assert sg.image_path.endswith("scene.tif") and sg.georef.transform == TRANSFORM
    assert set(sg.metadata["timing"]) >= {"total_s", "forward_s", "read_wait_s", "merge_s"}
    # the batch size changes nothing but the number of calls
    model2 = BlobDetector()
    sg2 = detect_scene(model2, path, tile_size=512, overlap=128, levels=[0], zoom="full", batch_size=1, progress=False)
    np.testing.assert_allclose(_sorted_rows(sg2), got)
    assert len(model2.calls) == 12 and len(model.calls) == 4


def test_large_object_found_whole_by_the_pyramid(tmp_path):
    # a 700 × 60 "runway": larger than the overlap, so level-0 tiles only see pieces of it
    path, gt = _scene(tmp_path, (1500, 1100), [(300, 500, 1000, 560, 0), (1200, 200, 1230, 215, 1)])
    level0 = detect_scene(BlobDetector(), path, tile_size=512, overlap=128, levels=[0], zoom="full", progress=False)
    big0 = level0.detections[(level0.detections.labels == 0).nonzero().flatten()]
    assert len(big0) >= 2 and float(big0.boxes.widths.max()) < 600  # fragments only
    sg = detect_scene(BlobDetector(), path, tile_size=512, overlap=128, zoom="full", progress=False)
    assert sg.metadata["levels"] == [2, 1, 0]
    big = sg.detections[(sg.detections.labels == 0).nonzero().flatten()]
    assert len(big) == 1
    np.testing.assert_allclose(big.boxes.tensor[0, :4].numpy(), gt[0, :4], atol=4)
    assert int(big.levels[0]) > 0
    small = sg.detections[(sg.detections.labels == 1).nonzero().flatten()]
    assert len(small) == 1 and int(small.levels[0]) == 0  # the coarse copy gave way to level 0
    np.testing.assert_allclose(small.boxes.tensor[0, :4].numpy(), gt[1, :4], atol=1e-3)


def test_guided_zoom_runs_fewer_tiles_and_finds_the_same(tmp_path):
    objs = [(100, 100, 140, 120, 0), (200, 150, 212, 180, 1), (2300, 2300, 2330, 2316, 0)]
    path, gt = _scene(tmp_path, (2600, 2500), objs)
    full = detect_scene(BlobDetector(), path, tile_size=512, overlap=128, zoom="full", progress=False)
    guided = detect_scene(BlobDetector(), path, tile_size=512, overlap=128, zoom="guided",
                          guide_threshold=0.5, progress=False)
    np.testing.assert_allclose(_sorted_rows(guided), _sorted_rows(full))
    np.testing.assert_allclose(_sorted_rows(guided), gt[np.lexsort((gt[:, 1], gt[:, 0]))], atol=1e-3)
    t_full = sum(v["run"] for v in full.metadata["tiles"].values())
    t_guided = sum(v["run"] for v in guided.metadata["tiles"].values())
    assert t_guided < t_full / 2
    assert guided.metadata["tiles"]["0"]["selected"] < guided.metadata["tiles"]["0"]["grid"]


def test_small_scene_detected_once(tmp_path):
    path, gt = _scene(tmp_path, (300, 200), [(10, 10, 50, 30, 1)])
    model = BlobDetector()
    sg = detect_scene(model, path, tile_size=512, progress=False)
    assert model.calls == [(1, 3, 200, 300)] and sg.metadata["levels"] == [0]
    np.testing.assert_allclose(_sorted_rows(sg), gt, atol=1e-3)


def test_empty_and_nodata_scenes(tmp_path):
    path, _ = _scene(tmp_path, (900, 700), [])
    sg = detect_scene(BlobDetector(), path, tile_size=512, overlap=128, progress=False)
    assert len(sg.detections) == 0 and sg.image_size == (900, 700)
    # all nodata: every tile is skipped, nothing runs
    path, _ = _scene(tmp_path, (900, 700), [], name="nodata.tif", nodata=0)
    model = BlobDetector()
    sg = detect_scene(model, RasterScene.open(path), tile_size=512, overlap=128, progress=False)
    assert len(sg.detections) == 0 and model.calls == []


class FixedDetector(torch.nn.Module):
    """Returns the same two boxes (tile pixels) for every tile."""

    vocabulary = VOC

    def forward(self, images):
        boxes = torch.tensor([[50.0, 50.0, 20.0, 10.0, 0.0], [300.0, 50.0, 20.0, 10.0, 0.0]])
        return [Detections(boxes, [0, 1], [0.9, 0.8]) for _ in images]


def test_detections_on_nodata_are_dropped(tmp_path):
    img = np.zeros((400, 400, 3), dtype=np.uint8)
    img[:, 200:] = 100  # left half is nodata
    path = write_geotiff(tmp_path / "masked.tif", img, nodata=0, crs=CRS, transform=TRANSFORM)
    sg = detect_scene(FixedDetector(), path, tile_size=512, progress=False)
    assert sg.detections.labels.tolist() == [1]


def test_bad_input(tmp_path):
    from sgg.errors import SggInputError

    with pytest.raises(SggInputError, match="not found"):
        detect_scene(BlobDetector(), tmp_path / "missing.tif", progress=False)
    path, _ = _scene(tmp_path, (100, 100), [])
    with pytest.raises(SggInputError, match="zoom"):
        detect_scene(BlobDetector(), path, zoom="sometimes", progress=False)


def test_select_guided():
    windows = np.array([[0, 0, 100, 100], [80, 0, 100, 100], [0, 500, 100, 100]], dtype=float)
    guides = torch.tensor([[10.0, 10.0, 20.0, 20.0]])
    assert select_guided(windows, guides, 0).tolist() == [0]
    assert select_guided(windows, guides, 65).tolist() == [0, 1]
    assert select_guided(windows, torch.zeros(0, 4), 10).tolist() == []


def test_bring_your_own_dota_results(tmp_path):
    from sgg.datasets.dota import write_dota_results

    path, gt = _scene(tmp_path, (600, 400), [(10, 10, 50, 30, 1), (100, 100, 160, 120, 0)], name="P0001.tif")
    boxes = torch.tensor(np.column_stack([gt[:, :4], np.zeros(len(gt))]), dtype=torch.float32)
    det = Detections(boxes, gt[:, 4].astype(int), [0.8, 0.6])
    write_dota_results({"P0001": det, "P0002": det[:1]}, tmp_path / "res", VOC)
    graphs = scenes_from_dota(tmp_path / "res", vocabulary=VOC)
    assert set(graphs) == {"P0001", "P0002"}
    np.testing.assert_allclose(_sorted_rows(graphs["P0001"]), gt[np.lexsort((gt[:, 1], gt[:, 0]))], atol=0.02)
    one = scenes_from_dota(tmp_path / "res", vocabulary=VOC, raster=path)
    assert list(one) == ["P0001"] and one["P0001"].image_size == (600, 400)
    assert one["P0001"].georef is not None


def test_cli_from_dota_and_errors(tmp_path, capsys):
    from sgg.cli import main as sgg_main
    from sgg.datasets.dota import write_dota_results
    from sgg.datasets.native import read_scene_json
    from sgg.structures import Vocabulary as V

    star = V.star()
    path, gt = _scene(tmp_path, (600, 400), [(10, 10, 50, 30, 1), (100, 100, 160, 120, 0)], name="P0002.tif")
    boxes = torch.tensor(np.column_stack([gt[:, :4], np.zeros(len(gt))]), dtype=torch.float32)
    det = Detections(boxes, [star.object_index("ship"), star.object_index("car")], [0.8, 0.6])
    write_dota_results({"P0002": det}, tmp_path / "res", star)
    out = tmp_path / "out.scene.json"
    assert sgg_main(["detect", str(path), "--from-dota", str(tmp_path / "res"), "--out", str(out),
                     "--dota-out", str(tmp_path / "again")]) == 0
    sg = read_scene_json(out)
    assert len(sg.detections) == 2 and sg.image_size == (600, 400)
    assert sorted(star.objects[i] for i in sg.detections.labels.tolist()) == ["car", "ship"]
    assert (tmp_path / "again" / "Task1_ship.txt").read_text().startswith("P0002 0.8")
    assert "2 objects" in capsys.readouterr().out
    from sgg.graph import read

    assert sgg_main(["detect", str(path), "--from-dota", str(tmp_path / "res"), "--out", str(tmp_path / "o.gpkg"),
                     "--quiet"]) == 0
    back = read(tmp_path / "o.gpkg")
    assert len(back.detections) == 2
    assert sgg_main(["detect", str(tmp_path / "nope.tif"), "--weights", "w.pt"]) == 2
    assert "nope.tif: not found" in capsys.readouterr().err
    assert sgg_main(["detect", str(path), "--weights", str(tmp_path / "w.pt")]) == 2
    assert "--weights" in (err := capsys.readouterr().err) and "w.pt: not found" in err


def test_cli_with_weights(tmp_path):
    """`sgg detect --weights` writes what the Python API detects with the same checkpoint and settings."""
    from sgg.cli import main as sgg_main
    from sgg.datasets.native import read_scene_json
    from sgg.detectors.checkpoint import load_detector, save_detector
    from sgg.detectors.hodnet import HODNet, resolve_config

    torch.manual_seed(0)
    cfg = resolve_config(num_classes=2, backbone="mobilenet_v3_large", pretrained=False, fpn_channels=32,
                         representation_size=64, rpn_pre_nms_top_n=[100, 100], rpn_post_nms_top_n=[50, 50],
                         score_threshold=0.0)
    with torch.no_grad():  # an untrained head: make class 1 likely so that boxes survive
        model = HODNet(cfg)
        model.roi_head.cls.bias[1] += 2.0
    weights = save_detector(model, tmp_path / "tiny.pt", VOC, cfg)
    path, _ = _scene(tmp_path, (320, 256), [(10, 10, 50, 30, 1)])
    out = tmp_path / "g.scene.json"
    assert sgg_main(["detect", str(path), "--weights", str(weights), "--out", str(out), "--quiet",
                     "--score-threshold", "0.3", "--threads", "1"]) == 0
    sg = read_scene_json(out)
    ref = detect_scene(load_detector(weights), path, score_threshold=0.3, progress=False)
    assert len(ref.detections) > 0 and sg.vocabulary.objects == VOC.objects and sg.image_size == (320, 256)
    order = lambda d: torch.argsort(d.boxes.tensor[:, 0] * 1e4 + d.boxes.tensor[:, 1])
    a, b = sg.detections, ref.detections
    assert torch.allclose(a.boxes.tensor[order(a)], b.boxes.tensor[order(b)], atol=1e-3)
    assert torch.equal(a.labels[order(a)], b.labels[order(b)])
    assert torch.allclose(a.scores[order(a)], b.scores[order(b)], atol=1e-4)
    assert sg.metadata["levels"] == [0] and sg.metadata["weights"] == str(weights)