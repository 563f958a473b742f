"""Detector/relation DataModules: tile targets at borders, augmentation geometry, DDP sampling, batches."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio
import shapely
import torch
from affine import Affine
from rasterio.windows import Window

from sgg.datasets import DetectorDataModule, RelationDataModule, TileSampler, write_scene_json
from sgg.datasets.transforms import hflip, padded_grid_windows, render_box_mask, rot90, tile_targets, vflip
from sgg.errors import SggInputError
from sgg.ops import box_to_shapely
from sgg.structures import Detections, GeoReference, OrientedBoxes, PairSet, SceneGraph, Vocabulary

STAR = Vocabulary.star()
BG, FG = 20, 230


def _make_scene(root, sid: str, width: int, height: int, seed: int) -> SceneGraph:
    """A GeoTIFF with bright oriented rectangles on a dark background, and its annotation."""
    rng = np.random.default_rng(seed)
    n = 10
    boxes = np.column_stack([
        rng.uniform(25, width - 25, n), rng.uniform(25, height - 25, n),
        rng.uniform(12, 36, n), rng.uniform(6, 12, n), rng.uniform(-math.pi / 2, math.pi / 2, n),
    ])
    mask = render_box_mask(torch.tensor(boxes), height, width).numpy()
    img = np.where(mask, FG, BG).astype(np.uint8)
    img = np.stack([img, img // 2 + 10, img], axis=0)  # 3 bands, distinct
    tif = root / "scenes" / f"{sid}.tif"
    tif.parent.mkdir(parents=True, exist_ok=True)
    transform = Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 5600000.0)
    with rasterio.open(tif, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint8",
                       crs="EPSG:32632", transform=transform) as ds:
        ds.write(img)
    labels = rng.integers(0, 5, n)
    sg = SceneGraph(
        Detections(OrientedBoxes(torch.tensor(boxes, dtype=torch.float32)), torch.tensor(labels)),
        PairSet(torch.tensor([[0, 1], [1, 2], [3, 4]])),
        predicate_labels=torch.tensor([1, 2, 3]),
        image_path=str(tif),
        image_size=(width, height),
        georef=GeoReference("EPSG:32632", tuple(transform)[:6]),
    )
    write_scene_json(sg, root / "annotations" / f"{sid}.json")
    return sg


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    for sid, (w, h, seed) in {"s0": (300, 240, 0), "s1": (200, 260, 1), "s2": (180, 150, 2)}.items():
        _make_scene(root, sid, w, h, seed)
    (root / "split.json").write_text(json.dumps({"train": ["s0", "s1"], "val": ["s2"], "test": ["s2"]}))
    return root


# ------------------------------------------------------------------------------------------ targets
def test_tile_targets_border_rule():
    window = (100.0, 100.0, 200.0, 200.0)
    boxes = torch.tensor([
        [200.0, 200.0, 40.0, 10.0, 0.3],  # fully inside
        [115.0, 150.0, 50.0, 20.0, 0.0],  # x in [90, 140]: 80 % inside -> kept
        [100.0, 150.0, 50.0, 20.0, 0.0],  # x in [75, 125]: 50 % inside -> dropped
        [150.0, 290.0, 30.0, 30.0, 0.0],  # y in [275, 305]: 83 % inside -> kept
        [400.0, 400.0, 10.0, 10.0, 0.0],  # outside
        [105.0, 200.0, 40.0, 12.0, math.pi / 4],  # rotated, partly inside: decided by exact IoF
    ])
    out, keep = tile_targets(boxes, window, scale=0.5, min_iof=0.7)
    # independent reference: shapely intersection over area
    polys = box_to_shapely(boxes)
    tile = shapely.box(100, 100, 300, 300)
    iof = shapely.area(shapely.intersection(polys, tile)) / shapely.area(polys)
    assert np.isclose(iof[1], 0.8) and np.isclose(iof[2], 0.5)
    assert keep.tolist() == np.flatnonzero(iof >= 0.7).tolist()
    assert {0, 1, 3} <= set(keep.tolist()) and 2 not in keep.tolist()
    # moved to tile pixels at half scale, not cropped
    i = keep.tolist().index(1)
    assert torch.allclose(out[i], torch.tensor([7.5, 25.0, 25.0, 10.0, 0.0]))
    # min_size drops boxes that become too small at this scale
    _, keep_big = tile_targets(boxes, window, scale=0.5, min_iof=0.7, min_size=8.0)
    assert 0 not in keep_big.tolist() and 3 in keep_big.tolist()


def test_padded_grid_windows_cover_flush_and_pad():
    # stride 128 - 28 = 100: starts 0, 100, then flush with the edge at 300 - 128 = 172 and 240 - 128 = 112
    win = padded_grid_windows(300, 240, 128, overlap=28)
    assert win.tolist() == [[x, y, 128, 128] for y in (0, 100, 112) for x in (0, 100, 172)]
    # fractional windows (a tile at scale 0.75): side 64 / 0.75, stride 64 / 0.75 - 16 / 0.75 = 64
    frac = padded_grid_windows(150, 80, 64 / 0.75, 16 / 0.75)
    assert np.allclose(frac[:, 0], [0, 64, 150 - 64 / 0.75]) and np.allclose(frac[:, 1], 0) and np.allclose(frac[:, 2:], 64 / 0.75)
    # smaller than a tile: one full-size window reaching past the image (padded on read) ...
    assert padded_grid_windows(50, 40, 128).tolist() == [[0, 0, 128, 128]]
    # ... where sgg.io's grid_windows clips the window to the image
    from sgg.io import grid_windows

    assert grid_windows(50, 40, 128, 0).tolist() == [[0, 0, 50, 40]]
    assert grid_windows(300, 240, 128, 28).tolist() == win.astype(int).tolist()


# ------------------------------------------------------------------------------------- augmentation
@pytest.mark.parametrize("op", ["hflip", "vflip", "rot1", "rot2", "rot3", "hflip+rot1"])
def test_augmentation_moves_boxes_with_pixels(op):
    h, w = 70, 96  # not square: rot90 swaps the sides
    boxes = torch.tensor([[20.3, 30.7, 30.0, 8.0, 0.4], [70.1, 40.2, 24.0, 14.0, -1.2], [50.3, 12.9, 16.0, 6.0, -math.pi / 2]])
    image = render_box_mask(boxes, h, w)[None].float()
    img, b = image, boxes
    for step in op.split("+"):
        if step == "hflip":
            img, b = hflip(img, b)
        elif step == "vflip":
            img, b = vflip(img, b)
        else:
            img, b = rot90(img, b, int(step[-1]))
    assert ((b[:, 4] >= -math.pi / 2) & (b[:, 4] < math.pi / 2)).all()  # still le90
    redrawn = render_box_mask(b, img.shape[-2], img.shape[-1])
    agree = (redrawn == img[0].bool()).float().mean().item()
    assert agree > 0.999, f"{op}: boxes and pixels disagree on {1 - agree:.4%} of pixels"
    if op == "rot1":
        assert img.shape[-2:] == (w, h)


# ------------------------------------------------------------------------------------------- DDP
def test_tile_sampler_ranks_disjoint_and_epochs_fresh(data_dir):
    s0, s1 = TileSampler(10, num_replicas=2, rank=0), TileSampler(10, num_replicas=2, rank=1)
    a, b = list(s0), list(s1)
    assert len(a) == len(b) == len(s0) == 5
    assert not set(a) & set(b) and sorted(a + b) == list(range(10))
    for s in (s0, s1):
        s.set_epoch(1)
    a1, b1 = list(s0), list(s1)
    assert not set(a1) & set(b1) and not (set(a1) | set(b1)) & set(range(10))
    odd = TileSampler(7, num_replicas=2, rank=1)
    assert len(list(odd)) == 4  # padded to equal length per rank
    # the tiles behind those indices differ between ranks
    dm = DetectorDataModule(str(data_dir), tile_size=64, tiles_per_epoch=10, seed=3)
    dm.setup("fit")
    ds = dm.datasets["train"]
    tiles_a = {(ds.tile_spec(i)[0], ds.tile_spec(i)[2]) for i in a}
    tiles_b = {(ds.tile_spec(i)[0], ds.tile_spec(i)[2]) for i in b}
    assert len(tiles_a) == 5 and len(tiles_b) == 5 and tiles_a != tiles_b


# ------------------------------------------------------------------------------------ datamodules
def _interior(boxes: torch.Tensor, f: float = 0.5) -> torch.Tensor:
    b = boxes.clone()
    b[:, 2:4] *= f
    return b


def test_detector_train_batches(data_dir):
    dm = DetectorDataModule(str(data_dir), tile_size=64, scales=(0.5, 1.0, 1.5), tiles_per_epoch=12, batch_size=4,
                            min_box_size=3.0, seed=0)
    dm.setup("fit")
    assert dm.vocabulary == STAR
    loader = dm.train_dataloader()
    assert len(loader) == 3
    n_targets = 0
    for images, targets in loader:
        assert images.shape == (4, 3, 64, 64) and images.dtype == torch.float32
        assert 0.0 <= images.min() and images.max() <= 1.0
        for img, t in zip(images, targets):
            assert t["boxes"].shape[1] == 5 and t["labels"].dtype == torch.long
            assert len(t["boxes"]) == len(t["labels"]) == len(t["difficult"])
            assert min(abs(t["scale"].item() / s - 1) for s in (0.5, 1.0, 1.5)) < 0.02
            n_targets += len(t["boxes"])
            if len(t["boxes"]):
                # the boxes sit on the bright objects (after scaling, flips and rotations)
                inner = render_box_mask(_interior(t["boxes"]), 64, 64)
                if inner.any():
                    assert img[0][inner].mean() > 0.75
    assert n_targets > 0


def test_detector_determinism(data_dir):
    def first(seed):
        dm = DetectorDataModule(str(data_dir), tile_size=48, tiles_per_epoch=4, batch_size=2, seed=seed)
        dm.setup("fit")
        return next(iter(dm.train_dataloader()))

    (i1, t1), (i2, t2), (i3, _) = first(5), first(5), first(6)
    assert torch.equal(i1, i2) and all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(t1, t2))
    assert not torch.equal(i1, i3)


def test_detector_validation_grid_reads_exact_windows(data_dir):
    dm = DetectorDataModule(str(data_dir), tile_size=64, batch_size=2, val_overlap=16)
    dm.setup("validate")
    ds = dm.datasets["val"]
    expected = padded_grid_windows(180, 150, 64, 16)
    assert len(ds) == len(expected)
    specs = [ds.tile_spec(i)[2] for i in range(len(ds))]
    assert np.allclose(np.array(specs), expected)
    image, target = ds[len(ds) - 1]  # bottom-right tile, flush with the edges
    x, y = int(expected[-1][0]), int(expected[-1][1])
    with rasterio.open(data_dir / "scenes" / "s2.tif") as src:
        ref = src.read(window=Window(x, y, 64, 64)).astype(np.float32) / 255.0
    assert np.allclose(image.numpy(), ref)
    assert torch.equal(dm.val_dataloader().dataset[len(ds) - 1][1]["boxes"], target["boxes"])  # fixed
    # every target kept on the grid satisfies the IoF rule against its window
    for i in range(len(ds)):
        _, t = ds[i]
        for box in t["boxes"]:
            inside = shapely.area(shapely.intersection(box_to_shapely(box[None])[0], shapely.box(0, 0, 64, 64)))
            assert inside / float(box[2] * box[3]) >= 0.7 - 1e-4


def test_relation_datamodule(data_dir):
    dm = RelationDataModule(str(data_dir), batch_size=2, with_images=True, image_max_side=128)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert len(batch) == 2 and {b["scene_id"] for b in batch} == {"s0", "s1"}
    for b in batch:
        assert b["pairs"].tolist() == [[0, 1], [1, 2], [3, 4]] and b["predicates"].tolist() == [1, 2, 3]
        assert b["boxes"].shape == (10, 5) and b["labels"].shape == (10,)
        w, _ = b["image_size"].tolist()
        assert b["image"].shape[0] == 3 and max(b["image"].shape[1:]) <= 128
        assert b["image"].shape[2] == math.ceil(w * b["image_scale"].item() - 1e-6)
    val = next(iter(dm.val_dataloader()))
    assert val[0]["scene_id"] == "s2"


DDP_SCRIPT = r'''
import json, sys
import torch
import pytorch_lightning as pl
from sgg.datasets import DetectorDataModule

class Recorder(pl.LightningModule):
    def __init__(self, out):
        super().__init__()
        self.out, self.seen = out, {}
        self.w = torch.nn.Parameter(torch.zeros(1))
    def training_step(self, batch, _):
        images, targets = batch
        rows = [[int(t["scene_index"])] + t["window"].tolist() for t in targets]
        self.seen.setdefault(self.current_epoch, []).extend(rows)
        return (self.w * images.mean()).sum()
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)
    def on_train_end(self):
        with open(f"{self.out}/rank{self.global_rank}.json", "w") as f:
            json.dump(self.seen, f)

if __name__ == "__main__":
    torch.set_num_threads(1)
    data_dir, out = sys.argv[1], sys.argv[2]
    dm = DetectorDataModule(data_dir, tile_size=32, tiles_per_epoch=8, batch_size=2, seed=1)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=2, limit_val_batches=0,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Recorder(out), datamodule=dm)
'''


@pytest.mark.slow
def test_ddp_two_ranks_see_disjoint_fresh_tiles(data_dir, tmp_path):
    """Real two-process DDP (gloo on CPU): Lightning keeps TileSampler, ranks get disjoint tiles, epochs differ."""
    import subprocess
    import sys

    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(data_dir), str(tmp_path)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for epoch in ("0", "1"):
        a, b = ({tuple(x) for x in s[epoch]} for s in seen)
        assert len(a) == len(b) == 4 and not a & b
    assert {tuple(x) for x in seen[0]["0"]} != {tuple(x) for x in seen[0]["1"]}


def test_read_window_matches_plain_rasterio_read(data_dir):
    """read_window gives the level-0 pixels rasterio reads directly, scaled to [0, 1], and zero-pads the part of
    a window that lies off the image."""
    import rasterio
    from rasterio.windows import Window

    from sgg.datasets.tiling import ReaderCache, read_window

    path = data_dir / "scenes" / "s0.tif"
    with rasterio.open(path) as ds:
        full = torch.from_numpy(ds.read([1, 2, 3], window=Window(0, 0, 300, 240))).float() / 255
    reader = ReaderCache().get(str(path))
    inside = read_window(reader, 300, 240, (10, 20, 64, 64), 64)
    assert torch.allclose(inside, full[:, 20:84, 10:74], atol=1e-6)
    edge = read_window(reader, 300, 240, (250, 200, 64, 64), 64)  # 50 x 40 px of it lie on the image
    assert torch.allclose(edge[:, :40, :50], full[:, 200:240, 250:300], atol=1e-6)
    assert edge[:, 40:, :].abs().sum() == 0 and edge[:, :, 50:].abs().sum() == 0
    off = read_window(reader, 300, 240, (400, 300, 64, 64), 64)
    assert off.shape == (3, 64, 64) and off.abs().sum() == 0
    up = read_window(reader, 300, 240, (30, 40, 40, 40), 80)  # 2x upsampling keeps the mean colour
    assert up.shape == (3, 80, 80)
    assert torch.allclose(up.mean(dim=(1, 2)), full[:, 40:80, 30:70].mean(dim=(1, 2)), atol=0.01)


def test_synthetic_dataset_through_every_format(tmp_path):
    """`sgg synth` output: JSON and DOTA copies agree, STAR round-trips it, both DataModules serve it."""
    from sgg.datasets import read_dota_labels, read_scene_json, read_star, synthetic, write_star

    split = synthetic.generate_dataset(tmp_path, scenes=3, size=384, seed=0)
    ids = [i for k in ("train", "val", "test") for i in split[k]]
    graphs = [read_scene_json(tmp_path / "annotations" / f"{i}.json") for i in ids]
    for sid, sg in zip(ids, graphs):
        dota = read_dota_labels(tmp_path / "dota" / f"{sid}.txt")
        assert torch.equal(dota.detections.labels, sg.detections.labels)
        # same rectangles up to the 0.01 px rounding of DOTA's corner text (any corner order / w-h swap)
        d = torch.cdist(dota.detections.boxes.corners().double(), sg.detections.boxes.corners().double())
        assert d.min(dim=2).values.max() < 0.05
    paths = write_star(graphs, tmp_path / "star", splits=[k for k in ("train", "val", "test") for _ in split[k]])
    back = read_star(paths["h5"], paths["dicts"], paths["image_data"])
    for a, b in zip(graphs, back):
        assert torch.equal(a.pairs.pairs, b.pairs.pairs) and torch.equal(a.predicate_labels, b.predicate_labels)
    dm = DetectorDataModule(str(tmp_path), tile_size=128, tiles_per_epoch=4, batch_size=2)
    dm.setup("fit")
    images, targets = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, 128, 128) and sum(len(t["boxes"]) for t in targets) > 0
    rm = RelationDataModule(str(tmp_path))
    rm.setup("fit")
    assert len(next(iter(rm.train_dataloader()))[0]["pairs"]) == len(graphs[0].pairs)


def test_relation_batches_survive_lightning_transfer(data_dir):
    """A Trainer step: Lightning moves the batch through the DataModule's hook (SceneGraph stays intact)."""
    import pytorch_lightning as pl

    seen = []

    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, _):
            seen.append(batch)
            return (self.w * batch[0]["boxes"].sum()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    dm = RelationDataModule(str(data_dir), batch_size=2)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=1, limit_val_batches=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Probe(), datamodule=dm)
    sample = seen[0][0]
    assert isinstance(sample["graph"], SceneGraph) and sample["graph"].vocabulary == STAR
    assert torch.equal(sample["pairs"], sample["graph"].pairs.pairs)


def test_class_balanced_centring_favours_rare_classes(tmp_path):
    """With ``class_balanced`` the rare class is centred on about as often as the common one."""
    from sgg.datasets.datamodules import DetectorTileDataset
    from sgg.datasets.tiling import load_scenes, sample_window

    sg = _make_scene(tmp_path, "r0", 400, 400, 3)
    labels = torch.zeros(len(sg.detections), dtype=torch.long)
    labels[0] = 7  # one rare object among nine of class 0
    sg = SceneGraph(Detections(sg.detections.boxes, labels), image_path=sg.image_path, image_size=sg.image_size,
                    georef=sg.georef)
    write_scene_json(sg, tmp_path / "annotations" / "r0.json")
    scenes = load_scenes(tmp_path, ["r0"])
    centre = sg.detections.boxes.tensor[0, :2].numpy()

    def rare_share(balanced: bool) -> float:
        ds = DetectorTileDataset(scenes, 8, (1.0,), train=True, positive_fraction=1.0, class_balanced=balanced)
        hits = 0
        for i in range(400):
            _, _, (x, y, w, h) = ds.tile_spec(i)
            hits += x <= centre[0] <= x + w and y <= centre[1] <= y + h
        return hits / 400

    plain, balanced = rare_share(False), rare_share(True)
    assert plain < 0.25 and 0.35 < balanced < 0.65
    # explicit weights: all mass on one object puts its centre in every window
    rng = np.random.default_rng(0)
    w = np.zeros(len(labels))
    w[0] = 1.0
    for _ in range(20):
        x, y = sample_window(rng, 400, 400, 8, sg.detections.boxes.tensor[:, :2], 1.0, w)
        assert x <= centre[0] <= x + 8 and y <= centre[1] <= y + 8


def test_any_angle_rotation_keeps_boxes_on_their_objects(data_dir):
    """Tiles turned by arbitrary angles: every kept box still covers bright object pixels."""
    from sgg.datasets.transforms import rotate_about_centre

    dm = DetectorDataModule(str(data_dir), tile_size=64, scales=(1.0,), tiles_per_epoch=40, batch_size=1,
                            min_box_size=3.0, rotate_any=1.0, flip=False, rotate=False, seed=3)
    dm.setup("fit")
    ds = dm.datasets["train"]
    angles, n = set(), 0
    for i in range(40):
        img, t = ds[i]
        assert img.shape == (3, 64, 64)
        for b in t["boxes"]:
            angles.add(round(float(b[4]), 2))
            inner = render_box_mask(_interior(b[None], 0.4), 64, 64)
            if inner.sum() >= 4:
                assert img[0][inner].mean() > 0.6
                n += 1
    assert n > 10 and len(angles) > 10  # arbitrary angles, not just the scene's own
    # the geometry alone: a box drawn before turning covers the same pixels after
    box = torch.tensor([[40.0, 30.0, 30.0, 10.0, 0.3]])
    image = render_box_mask(box, 96, 96).float()[None].expand(3, -1, -1)
    out, moved = rotate_about_centre(image, box, 0.9, 64)
    mask = render_box_mask(_interior(moved, 0.8), 64, 64)
    assert out[0][mask].mean() > 0.95
    assert abs(float(moved[0, 4]) - 1.2) < 1e-5


def test_rotate_any_classes_turns_only_tiles_around_those_classes(data_dir, monkeypatch):
    """rotate_any_classes: exactly the tiles placed around an object of a listed class are turned; the window
    and the draw of everything else are those of a run without the restriction."""
    import sgg.datasets.datamodules as dmod
    from sgg.datasets.tiling import sample_window

    turned = []
    real = dmod.rotate_about_centre
    monkeypatch.setattr(dmod, "rotate_about_centre", lambda *a, **k: turned.append(1) or real(*a, **k))
    names = [STAR.objects[0], STAR.objects[1]]
    kw = dict(tile_size=64, scales=(1.0,), tiles_per_epoch=60, batch_size=1, positive_fraction=0.7,
              rotate_any=1.0, flip=False, rotate=False, seed=5)
    dm = DetectorDataModule(str(data_dir), rotate_any_classes=names, **kw)
    dm.setup("fit")
    ds = dm.datasets["train"]
    plain = DetectorDataModule(str(data_dir), **{**kw, "rotate_any": 0.0})
    plain.setup("fit")
    expected = n_turned = 0
    for i in range(60):
        si, _, _, k = ds._tile_spec(i)
        assert ds.tile_spec(i) == plain.datasets["train"].tile_spec(i)
        want = k is not None and int(ds.scenes[si].labels[k]) in (0, 1)
        before = len(turned)
        ds[i]
        assert (len(turned) > before) == want
        expected += want
        n_turned += len(turned) > before
    assert 0 < n_turned == expected < 60
    # the object index sample_window reports is the one whose centre the window holds; the corner is unchanged
    centres = ds.scenes[0].boxes[:, :2]
    for seed in range(20):
        x, y, k = sample_window(np.random.default_rng(seed), 300, 240, 64, centres, 1.0, return_index=True)
        assert (x, y) == sample_window(np.random.default_rng(seed), 300, 240, 64, centres, 1.0)
        assert x <= float(centres[k, 0]) <= x + 64 and y <= float(centres[k, 1]) <= y + 64
    assert sample_window(np.random.default_rng(0), 300, 240, 64, centres, 0.0, return_index=True)[2] is None
    with pytest.raises(SggInputError, match="rotate_any_classes: unknown object classes"):
        DetectorDataModule(str(data_dir), rotate_any_classes=["car", "spaceship"], **kw).setup("fit")


def test_photometric_jitter_is_seeded_and_bounded():
    from sgg.datasets.transforms import photometric

    img = torch.rand(3, 32, 32)
    a = photometric(img, np.random.default_rng(1), 1.0)
    b = photometric(img, np.random.default_rng(1), 1.0)
    assert torch.equal(a, b) and not torch.equal(a, img)
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert torch.equal(photometric(img, np.random.default_rng(1), 0.0), img)


def test_detector_tiles_with_pasted_rows(data_dir):
    from sgg.datasets.copy_paste import RowPaster
    from sgg.errors import SggInputError

    with pytest.raises(SggInputError, match="paste_rows / swap_objects need hbb_dir"):
        DetectorDataModule(str(data_dir), tile_size=64, paste_rows=0.5).setup("fit")
    with pytest.raises(SggInputError, match="paste_rows / swap_objects need hbb_dir"):
        DetectorDataModule(str(data_dir), tile_size=64, swap_objects=0.5).setup("fit")
    with pytest.raises(SggInputError, match="swap_objects must be a probability"):
        DetectorDataModule(str(data_dir), tile_size=64, swap_objects=1.5).setup("fit")
    with pytest.raises(SggInputError, match="paste_rows must be a probability"):
        DetectorDataModule(str(data_dir), tile_size=64, paste_rows=-0.1).setup("fit")
    dm = DetectorDataModule(str(data_dir), tile_size=64, tiles_per_epoch=6, seed=0)
    dm.setup("fit")
    ds = dm.datasets["train"]
    plain = [ds[i][1]["labels"] for i in range(6)]
    label = dm.vocabulary.object_index("boat")
    ds.paster = RowPaster(torch.rand(2, 3, 8, 24), torch.full((2,), 3.0), label, count=(3, 3), length=(12.0, 12.0))
    ds.paste_prob = 1.0
    for i in range(6):
        image, t = ds[i]
        assert image.shape == (3, 64, 64) and len(t["boxes"]) == len(t["labels"]) == len(t["difficult"])
        assert int((t["labels"] == label).sum()) - int((plain[i] == label).sum()) >= 1  # a row went in
    # appearance swap: every synthetic target of the class is painted in the bank's colour, labels unchanged
    from sgg.datasets.copy_paste import AppearanceSwap

    ds.paste_prob = 0.0
    target_class = int(torch.cat(plain).mode().values)
    ds.swapper = AppearanceSwap(torch.full((1, 3, 8, 24), 0.123), torch.tensor([3.0]), target_class, prob=1.0)
    seen = 0
    for i in range(6):
        image, t = ds[i]
        assert torch.equal(t["labels"], plain[i])
        for box in t["boxes"][(t["labels"] == target_class) & (t["boxes"][:, 2:4].min(1).values >= 3)]:
            x, y = int(box[0]), int(box[1])
            if 0 <= x < 64 and 0 <= y < 64:
                assert float(image[0, y, x]) == pytest.approx(0.123, abs=1e-4)
                seen += 1
    assert seen > 0


def test_extra_train_dirs_join_training_only(data_dir, tmp_path):
    from sgg.errors import SggInputError

    extra = tmp_path / "more"
    _make_scene(extra, "s0", 160, 160, 7)  # same id as the main set's s0: kept apart by the prefix
    (extra / "split.json").write_text(json.dumps({"train": ["s0"], "val": [], "test": []}))
    dm = DetectorDataModule(str(data_dir), tile_size=64, tiles_per_epoch=4, extra_train_dirs=[str(extra)])
    dm.setup("fit")
    assert dm.scene_ids("train") == ["s0", "s1", "more/s0"] and dm.scene_ids("val") == ["s2"]
    added = dm.datasets["train"].scenes[2]
    assert added.width == 160 and added.image_path.startswith(str(extra))
    assert len(dm.train_dataloader().dataset) == 4
    (extra / "split.json").write_text(json.dumps({"train": [], "val": ["s0"], "test": []}))
    with pytest.raises(SggInputError, match="extra_train_dirs"):
        DetectorDataModule(str(data_dir), tile_size=64, extra_train_dirs=[str(extra)]).setup("fit")
