"""Lightning DataModules over a scene directory (``scenes/<id>.tif``, ``annotations/<id>.json``, ``split.json``).

``DetectorDataModule`` trains on random multi-scale tiles cut from large scenes, as STAR made its training
patches (rates 0.2/0.5/1.0/1.5 of 1024-px tiles): each training sample picks a scene (by area), a scale rate
``s`` (output pixels per image pixel), a ``tile_size / s`` window (half the time around a random object) and
reads it through the raster reader, resampled to ``tile_size``. Targets are the boxes with at least
``min_iof`` of their area inside the window, moved to tile pixels and *not cropped* (STAR/DOTA keep the whole
object). Flips and quarter turns update the le90 angles (``sgg.datasets.transforms``). Validation and test use
a fixed grid of tiles per scene and scale.

Training tiles are indexed by a global sample number: sample ``i`` is drawn from ``default_rng([seed, i])``,
and :class:`TileSampler` (a ``DistributedSampler``, so Lightning keeps it under DDP) hands epoch ``e`` the
numbers ``e·N … (e+1)·N - 1`` split round-robin across ranks — tiles are distinct per rank, new every epoch,
and identical for a given seed whatever the number of workers.

Batches (torchvision style): ``images`` (B,3,T,T) float in [0,1]; ``targets`` a list of dicts with
``boxes`` (K,5) float (tile pixels, le90), ``labels`` (K,) long (0-based classes), ``difficult`` (K,) bool,
``window`` (4,) level-0 ``(col_off, row_off, w, h)``, ``scale`` () and ``scene_index`` () — all tensors, so
``{k: v.to(device)}`` works. ``dm.scene_ids(stage)[scene_index]`` names the scene.

``RelationDataModule`` (whole-scene graphs for the relation heads) lives in :mod:`sgg.datasets.relation_data`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from sgg.datasets.copy_paste import AppearanceSwap, RowPaster, cut_image, stack_objects
from sgg.datasets.pseudo_obb import iter_pseudo_boxes
from sgg.datasets.relation_data import RelationDataModule, SceneGraphDataset, relation_collate  # noqa: F401  (old path)
from sgg.datasets.tiling import ReaderCache, SceneRecord, load_scenes, read_split, read_window, sample_window
from sgg.datasets.transforms import (
    padded_grid_windows,
    photometric,
    random_flip_rot90,
    rotate_about_centre,
    tile_targets,
)
from sgg.errors import SggInputError


def _dist_world_rank() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


class TileSampler(DistributedSampler):
    """Global sample numbers for one epoch, split round-robin over DDP ranks.

    Epoch ``e`` covers ``[e·T, (e+1)·T)`` with ``T = tiles_per_epoch`` rounded up to a multiple of the
    world size; rank ``r`` of ``W`` takes every ``W``-th number from ``r``. ``set_epoch`` (called by
    Lightning) moves to the next block, so each epoch draws fresh tiles.
    """

    def __init__(self, tiles_per_epoch: int, num_replicas: int | None = None, rank: int | None = None, seed: int = 0):
        world, r = _dist_world_rank()
        self.num_replicas = int(num_replicas if num_replicas is not None else world)
        self.rank = int(rank if rank is not None else r)
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"TileSampler: rank {self.rank} out of range for {self.num_replicas} replicas")
        self.tiles_per_epoch = int(tiles_per_epoch)
        self.num_samples = math.ceil(self.tiles_per_epoch / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self.seed, self.epoch, self.shuffle, self.drop_last = int(seed), 0, True, False

    def __iter__(self):
        base = self.epoch * self.total_size
        return iter(range(base + self.rank, base + self.total_size, self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples


class DetectorTileDataset(Dataset):
    """Tiles of scenes with their oriented targets: random (``train=True``, any int index) or a fixed grid."""

    def __init__(
        self,
        scenes: Sequence[SceneRecord],
        tile_size: int,
        scales: Sequence[float],
        *,
        train: bool,
        tiles_per_epoch: int = 1000,
        min_iof: float = 0.7,
        min_box_size: float = 1.0,
        positive_fraction: float = 0.5,
        class_balanced: bool = False,
        flip: bool = True,
        rotate: bool = True,
        rotate_any: float = 0.0,
        rotate_any_labels: Sequence[int] | None = None,
        photometric: float = 0.0,
        overlap: float = 0.0,
        seed: int = 0,
        opener=None,
        hbb_scenes: Sequence[SceneRecord] = (),
        hbb_fraction: float = 0.0,
        hbb_scales: Sequence[float] = (),
        hbb_count_power: float = 0.0,
        hbb_rotate_any: float = 0.0,
        paster=None,
        paste_prob: float = 0.0,
        swapper=None,
    ):
        if not scenes:
            raise SggInputError("DetectorTileDataset: no scenes in this split")
        if not scales or any(s <= 0 for s in scales):
            raise SggInputError(f"scales must be positive rates, got {tuple(scales)}")
        self.scenes, self.tile_size, self.scales = list(scenes), int(tile_size), tuple(float(s) for s in scales)
        self.train, self.tiles_per_epoch, self.min_iof = train, int(tiles_per_epoch), float(min_iof)
        self.min_box_size, self.positive_fraction = float(min_box_size), float(positive_fraction)
        self.flip, self.rotate, self.seed = flip, rotate, int(seed)
        self.rotate_any, self.photometric = float(rotate_any), float(photometric)
        # turn only tiles placed around an object of these classes (None: any tile)
        self.rotate_any_labels = None if rotate_any_labels is None else frozenset(int(c) for c in rotate_any_labels)
        self.readers = ReaderCache(opener)
        # copy-paste of real objects in dense rows into oriented training tiles (sgg.datasets.copy_paste)
        self.paster, self.paste_prob = paster, float(paste_prob) if paster is not None and train else 0.0
        # real looks painted over synthetic objects (sgg.datasets.copy_paste.AppearanceSwap)
        self.swapper = swapper if train else None
        areas = np.array([s.width * s.height for s in self.scenes], dtype=np.float64)
        self._scene_p = areas / areas.sum()
        # horizontal-box scenes (training only), indexed after the oriented ones
        self.num_obb = len(self.scenes)
        self.hbb_fraction = float(hbb_fraction) if hbb_scenes and train else 0.0
        self.hbb_scales = tuple(float(s) for s in (hbb_scales or scales))
        # real tiles turned by any angle: only with oriented pseudo-boxes, which turn with the tile (a turned
        # horizontal label is no longer its object's envelope)
        self.hbb_rotate_any = float(hbb_rotate_any) if self.hbb_fraction else 0.0
        if self.hbb_rotate_any and any(s.angle_weight is None for s in hbb_scenes):
            raise SggInputError("hbb_rotate_any needs oriented pseudo-boxes of the horizontal labels (hbb_pseudo_obb)")
        if self.hbb_fraction:
            self.scenes += list(hbb_scenes)
        # horizontal-box images drawn ∝ (number of labels)^power: 0 every image alike, 1 every label alike (a
        # few dense marinas hold most real boats); an image without labels counts as one
        self._hbb_p = None
        if self.hbb_fraction and hbb_count_power:
            n = np.array([max(1, len(s.labels)) for s in hbb_scenes], dtype=np.float64) ** float(hbb_count_power)
            self._hbb_p = n / n.sum()
        # class-balanced centring: each class present in a scene is equally likely to be centred on
        self._centre_p: list[np.ndarray | None] = [None] * len(self.scenes)
        if class_balanced:
            for i, sc in enumerate(self.scenes):
                lab = sc.labels.numpy()
                if lab.size:
                    _, inv, cnt = np.unique(lab, return_inverse=True, return_counts=True)
                    w = 1.0 / cnt[inv]
                    self._centre_p[i] = w / w.sum()
        self.grid: np.ndarray = np.zeros((0, 6))
        if not train:  # rows: scene index, scale, col_off, row_off, size, size
            rows = []
            for i, sc in enumerate(self.scenes):
                for s in self.scales:
                    size = self.tile_size / s
                    win = padded_grid_windows(sc.width, sc.height, size, overlap / s)
                    rows.append(np.column_stack([np.full(len(win), i), np.full(len(win), s), win]))
            self.grid = np.concatenate(rows)

    def __len__(self) -> int:
        return self.tiles_per_epoch if self.train else len(self.grid)

    def tile_spec(self, index: int) -> tuple[int, float, tuple[float, float, float, float]]:
        """(scene index, scale, level-0 window) of sample ``index`` — deterministic in (seed, index)."""
        return self._tile_spec(index)[:3]

    def _tile_spec(self, index: int) -> tuple[int, float, tuple[float, float, float, float], int | None]:
        """:meth:`tile_spec` and the index of the object the window was placed around (None: uniform)."""
        if not self.train:
            row = self.grid[index]
            return int(row[0]), float(row[1]), tuple(float(v) for v in row[2:6]), None
        rng = np.random.default_rng([self.seed, int(index)])
        if self.hbb_fraction and rng.random() < self.hbb_fraction:
            k = len(self.scenes) - self.num_obb
            si = self.num_obb + int(rng.integers(0, k) if self._hbb_p is None else rng.choice(k, p=self._hbb_p))
            s = self.hbb_scales[int(rng.integers(0, len(self.hbb_scales)))]
        else:
            si = int(rng.choice(self.num_obb, p=self._scene_p))
            s = self.scales[int(rng.integers(0, len(self.scales)))]
        size = max(1, round(self.tile_size / s))
        sc = self.scenes[si]
        x, y, k = sample_window(rng, sc.width, sc.height, size, sc.boxes[:, :2], self.positive_fraction,
                                self._centre_p[si], return_index=True)
        return si, self.tile_size / size, (float(x), float(y), float(size), float(size)), k

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        si, scale, window, centred = self._tile_spec(int(index))
        sc = self.scenes[si]
        rng = np.random.default_rng([self.seed, int(index), 1])
        # per image: the label file's box type when it records one, else the folder it came from
        box_type = (getattr(sc.graph, "metadata", None) or {}).get("box_type")
        hbb = box_type == "hbb" if box_type in ("hbb", "obb") else si >= self.num_obb
        # a horizontal label turned by an arbitrary angle is no longer the object's envelope: quarter turns only,
        # unless the labels are oriented pseudo-boxes (hbb_rotate_any), which then stand for the objects' boxes
        turn = self.train and self.rotate_any > 0 and rng.random() < self.rotate_any and not hbb
        if turn and self.rotate_any_labels is not None:  # large objects rarely fit whole in a turned tile
            turn = centred is not None and int(sc.labels[centred]) in self.rotate_any_labels
        if hbb and self.train and self.hbb_rotate_any > 0:
            turn = rng.random() < self.hbb_rotate_any
        theta = float(rng.uniform(-math.pi, math.pi)) if turn else 0.0
        if theta:  # read the turned window's envelope, turn, crop; keep boxes ≥ min_iof inside the crop
            grow = abs(math.cos(theta)) + abs(math.sin(theta))
            big_px = math.ceil(self.tile_size * grow / 2) * 2
            size = big_px / scale
            # whole-pixel corner: read_window places a fractional corner by rounding, which can fall off
            # the canvas when upsampling (scale > 1)
            x0 = float(math.floor(window[0] + window[2] / 2 - size / 2))
            y0 = float(math.floor(window[1] + window[3] / 2 - size / 2))
            big = read_window(self.readers.get(sc.image_path), sc.width, sc.height, (x0, y0, size, size), big_px)
            near, keep = tile_targets(sc.boxes, (x0, y0, size, size), scale, 1e-6)
            image, near = rotate_about_centre(big, near, theta, self.tile_size)
            t = float(self.tile_size)
            boxes, sub = tile_targets(near, (0.0, 0.0, t, t), 1.0, self.min_iof, self.min_box_size)
            keep = keep[sub]
        else:
            image = read_window(self.readers.get(sc.image_path), sc.width, sc.height, window, self.tile_size)
            boxes, keep = tile_targets(sc.boxes, window, scale, self.min_iof, self.min_box_size)
        if self.train and (self.flip or self.rotate):
            image, boxes = random_flip_rot90(image, boxes, rng, flip=self.flip, rotate=self.rotate)
        labels, difficult = sc.labels[keep].long(), sc.difficult[keep].bool()
        if self.swapper is not None and not hbb:
            image = self.swapper(image, boxes, labels, rng)
        pasted = self.paste_prob > 0 and not hbb and rng.random() < self.paste_prob
        if pasted:
            image, boxes, labels, difficult = self.paster(image, boxes.float(), labels, difficult, rng)
        if self.train and self.photometric > 0:
            image = photometric(image, rng, self.photometric)
        target = {
            "boxes": boxes.float(),
            "labels": labels,
            "difficult": difficult,
            "window": torch.tensor(window, dtype=torch.float32),
            "scale": torch.tensor(scale, dtype=torch.float32),
            "scene_index": torch.tensor(si, dtype=torch.long),
            "hbb": torch.tensor(hbb),
        }
        if sc.angle_weight is not None:  # oriented pseudo-boxes of horizontal labels: their confidences
            target["angle_weight"] = sc.angle_weight[keep].float()
        return image, target


def hbb_split(root: str, val_fraction: float = 0.2, seed: int = 0) -> dict[str, list[str]]:
    """Fixed train/val split of a DOTA-layout folder's label stems (``labelTxt/*.txt``): a permutation of the
    sorted stems by ``seed``; the first ``round(val_fraction · N)`` are "val"."""
    stems = sorted(f.stem for f in (Path(root) / "labelTxt").glob("*.txt"))
    if not stems:
        raise SggInputError("no labelTxt/*.txt label files", path=root)
    perm = np.random.default_rng(int(seed)).permutation(len(stems))
    n_val = int(round(float(val_fraction) * len(stems)))
    return {"train": sorted(stems[i] for i in perm[n_val:]), "val": sorted(stems[i] for i in perm[:n_val])}


def load_dota_scenes(root: str, stems: Sequence[str], vocabulary=None, aliases=None) -> list[SceneRecord]:
    """SceneRecords of ``root/labelTxt/<stem>.txt`` with their images (``root/images/``)."""
    from sgg.datasets.dota import read_dota_labels

    out = []
    for stem in stems:
        label = Path(root) / "labelTxt" / f"{stem}.txt"
        sg = read_dota_labels(label, vocabulary=vocabulary, aliases=aliases)
        if sg.image_path is None or sg.image_size is None:
            raise SggInputError("no readable image beside this label file (or in ../images/)", path=label)
        det = sg.detections
        out.append(SceneRecord(stem, sg.image_path, int(sg.image_size[0]), int(sg.image_size[1]),
                               det.boxes.tensor.float(), det.labels.long(), sg.difficult.bool(), sg))
    return out


def detection_collate(batch: Sequence[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, list[dict]]:
    """Stack same-size tiles into (B,3,T,T); keep per-tile target dicts in a list."""
    images = torch.stack([b[0] for b in batch])
    return images, [b[1] for b in batch]


class DetectorDataModule(pl.LightningDataModule):
    """Random multi-scale training tiles and fixed validation/test tiles from a scene directory.

    Args:
        data_dir: directory with ``scenes/``, ``annotations/`` and ``split.json`` (as ``sgg synth`` writes).
        tile_size: side of the tiles fed to the detector, in pixels.
        scales: training scale rates (tile pixels per image pixel); 0.5 sees twice the ground at half detail.
        levels: pyramid levels added to the rates as ``2**-level`` (level 1 = rate 0.5).
        tiles_per_epoch: training tiles per epoch (over all ranks).
        min_iof: keep a target when at least this share of its area lies in the tile (rotated IoF).
        min_box_size: drop targets whose short side is below this many tile pixels.
        positive_fraction: share of training tiles placed around a random object.
        class_balanced: pick that object class-balanced (each class in the scene equally likely), so rare
            classes are seen as often as cars — akin to repeat-factor sampling for long-tailed detection.
        flip, rotate: random flips and 90° rotations of training tiles.
        rotate_any: probability of turning a training tile by a uniform random angle (read wide, turned,
            cropped; boxes kept by ``min_iof`` against the crop) — for data whose objects sit near the axes.
        rotate_any_classes: turn (with probability ``rotate_any``) only tiles placed around an object of these
            classes, e.g. ``[car, truck, airplane, boat]``: large objects (dams, fields, yards) rarely fit whole
            in a turned tile and, turned, were learned worse (configs/detector/synth_cpu_detail.yaml). Empty: any.
        photometric: strength of random brightness/contrast/saturation/gamma/blur/noise (0 = off).
        val_scales, val_overlap: fixed grid of validation/test tiles (overlap in tile pixels).
        hbb_dir: a folder of real images with horizontal-box DOTA labels (``images/`` and ``labelTxt/``, e.g.
            ``../shared/real/ships_ge``) mixed into training: ``hbb_fraction`` of the training tiles come from
            its training part (:func:`hbb_split`: ``hbb_val_fraction`` of the images held out by ``hbb_seed``),
            at rates ``hbb_scales``, class names mapped by ``hbb_aliases`` (``{"boat": "ship"}``: with the
            model's ``merge_groups`` the label counts for STAR ``ship`` or ``boat``); targets carry ``hbb``.
        hbb_rotate_any: probability of turning a real (``hbb_dir``) training tile by a uniform random angle, as
            ``rotate_any`` does synthetic ones; needs ``hbb_pseudo_obb``: the pseudo-boxes turn with the tile and
            become the targets (their envelopes, no longer the labels', keep the envelope loss; their confidences
            the oriented loss). Real moored boats lie along the axes in ships_ge, diagonal in other harbours.
        paste_rows: probability that an oriented training tile gets a pasted row of real objects cut out of
            those images along their oriented pseudo-boxes (:class:`sgg.datasets.copy_paste.RowPaster`: moored
            boats side by side, which the real data rarely shows), labelled ``paste_class``.
        extra_train_dirs: more data directories whose ``train`` scenes join the training scenes (scene ids
            prefixed with the directory's name), e.g. extra ``sgg synth --layout dam`` scenes for classes the
            main set has few of; their vocabulary must be the main set's.
        swap_objects: probability that each ``paste_class`` object of an oriented (synthetic) training tile is
            painted over by a real object of similar aspect cut out of those images, on its own oriented box
            (:class:`sgg.datasets.copy_paste.AppearanceSwap`): synthetic layouts and labels, real looks.
        hbb_count_power: draw those images ∝ (number of labels)^power (0: uniformly; 1: every label alike).
        hbb_pseudo_obb: replace those horizontal labels by oriented pseudo-boxes with the same envelopes
            (:mod:`sgg.datasets.pseudo_obb`: angle and aspect from the image inside each label); targets then
            also carry ``angle_weight`` (K,), each box's confidence, for the detector's angle loss.
    """

    def __init__(
        self,
        data_dir: str,
        tile_size: int = 512,
        scales: tuple[float, ...] = (0.5, 1.0, 1.5),
        levels: tuple[int, ...] = (),
        tiles_per_epoch: int = 1000,
        batch_size: int = 2,
        num_workers: int = 0,
        min_iof: float = 0.7,
        min_box_size: float = 1.0,
        positive_fraction: float = 0.5,
        class_balanced: bool = False,
        flip: bool = True,
        rotate: bool = True,
        rotate_any: float = 0.0,
        rotate_any_classes: Sequence[str] = (),
        photometric: float = 0.0,
        val_scales: tuple[float, ...] = (1.0,),
        val_overlap: int = 0,
        seed: int = 0,
        hbb_dir: str | None = None,
        hbb_fraction: float = 0.5,
        hbb_scales: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5),
        hbb_aliases: dict[str, str] | None = None,
        hbb_val_fraction: float = 0.2,
        hbb_seed: int = 0,
        hbb_pseudo_obb: bool = False,
        hbb_count_power: float = 0.0,
        hbb_rotate_any: float = 0.0,
        paste_rows: float = 0.0,
        paste_class: str = "boat",
        swap_objects: float = 0.0,
        extra_train_dirs: Sequence[str] = (),
    ):
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = data_dir
        rates = [float(s) for s in scales] + [2.0 ** -int(lv) for lv in levels]
        self.train_scales = tuple(dict.fromkeys(rates))
        self.datasets: dict[str, DetectorTileDataset] = {}
        self.vocabulary = None

    def _dataset(self, stage: str) -> DetectorTileDataset:
        if stage not in self.datasets:
            hp = self.hparams
            ids = read_split(self.data_dir)[stage]
            scenes = load_scenes(self.data_dir, ids)
            if not scenes:
                raise SggInputError(f"split {stage!r} lists no scenes", path=f"{self.data_dir}/split.json")
            if stage == "train":  # more training scenes (e.g. layouts the main set has few of)
                for extra in hp.extra_train_dirs or ():
                    more = load_scenes(extra, read_split(extra)["train"])
                    if not more:
                        raise SggInputError("extra_train_dirs: split 'train' lists no scenes", path=f"{extra}/split.json")
                    scenes += [replace(s, scene_id=f"{Path(extra).name}/{s.scene_id}") for s in more]
            vocs = {s.graph.vocabulary for s in scenes}
            if len(vocs) != 1 or (self.vocabulary is not None and self.vocabulary not in vocs):
                raise SggInputError("scenes use different vocabularies", path=self.data_dir)
            self.vocabulary = next(iter(vocs))
            train = stage == "train"
            hbb, paster, swapper = [], None, None
            for name in ("paste_rows", "swap_objects", "hbb_rotate_any"):
                if not 0.0 <= getattr(hp, name) <= 1.0:
                    raise SggInputError(f"{name} must be a probability in [0, 1], got {getattr(hp, name)!r}")
            if train and hp.hbb_rotate_any and not hp.hbb_pseudo_obb:
                raise SggInputError("hbb_rotate_any needs hbb_pseudo_obb: a horizontal label turned by any angle is "
                                    "no longer its object's envelope; the oriented pseudo-boxes turn with the tile")
            if train and (hp.paste_rows or hp.swap_objects) and not hp.hbb_dir:
                raise SggInputError("paste_rows / swap_objects need hbb_dir: the real images whose objects are "
                                    "pasted")
            if train and hp.hbb_dir:
                names = hbb_split(hp.hbb_dir, hp.hbb_val_fraction, hp.hbb_seed)["train"]
                hbb = load_dota_scenes(hp.hbb_dir, names, self.vocabulary, hp.hbb_aliases or {"boat": "ship"})
                want_bank = bool(hp.paste_rows or hp.swap_objects)  # one bank of real objects for both
                if hp.hbb_pseudo_obb or want_bank:  # each image read once, for its pseudo-boxes and its cut-outs
                    pseudo, parts = [], []
                    for rec, image in iter_pseudo_boxes(hbb):
                        pseudo.append(rec)
                        if want_bank and image is not None:
                            parts.append(cut_image(rec, image))
                    hbb = pseudo if hp.hbb_pseudo_obb else hbb
                if want_bank:
                    bank, label = stack_objects(parts), self.vocabulary.object_index(hp.paste_class)
                    paster = RowPaster(*bank, label) if hp.paste_rows else None
                    swapper = AppearanceSwap(*bank, label, hp.swap_objects) if hp.swap_objects else None
            turn_labels = None
            if hp.rotate_any_classes:
                known = set(self.vocabulary.objects)
                bad = [c for c in hp.rotate_any_classes if c not in known]
                if bad:
                    raise SggInputError(f"rotate_any_classes: unknown object classes {bad}", path=self.data_dir)
                turn_labels = [self.vocabulary.object_index(c) for c in hp.rotate_any_classes]
            self.datasets[stage] = DetectorTileDataset(
                scenes, hp.tile_size, self.train_scales if train else hp.val_scales, train=train,
                tiles_per_epoch=hp.tiles_per_epoch, min_iof=hp.min_iof, min_box_size=hp.min_box_size,
                positive_fraction=hp.positive_fraction, class_balanced=hp.class_balanced, flip=hp.flip,
                rotate_any=hp.rotate_any, rotate_any_labels=turn_labels, photometric=hp.photometric, rotate=hp.rotate, overlap=hp.val_overlap,
                seed=hp.seed, hbb_scenes=hbb, hbb_fraction=hp.hbb_fraction, hbb_scales=hp.hbb_scales,
                hbb_count_power=hp.hbb_count_power, hbb_rotate_any=hp.hbb_rotate_any, paster=paster,
                paste_prob=hp.paste_rows,
                swapper=swapper,
            )
        return self.datasets[stage]

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), None: ("train", "val", "test")}
        for split in wanted.get(stage, ()):
            if read_split(self.data_dir)[split]:
                self._dataset(split)

    def scene_ids(self, split: str) -> list[str]:
        return [s.scene_id for s in self._dataset(split).scenes]

    def _world_rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return int(trainer.world_size), int(trainer.global_rank)
        return _dist_world_rank()

    def train_dataloader(self) -> DataLoader:
        ds = self._dataset("train")
        world, rank = self._world_rank()
        sampler = TileSampler(self.hparams.tiles_per_epoch, world, rank, self.hparams.seed)
        return DataLoader(ds, batch_size=self.hparams.batch_size, sampler=sampler, num_workers=self.hparams.num_workers,
                          collate_fn=detection_collate, persistent_workers=self.hparams.num_workers > 0)

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(self._dataset(split), batch_size=self.hparams.batch_size, shuffle=False,
                          num_workers=self.hparams.num_workers, collate_fn=detection_collate)

    def val_dataloader(self) -> DataLoader | list:
        return self._eval_loader("val") if read_split(self.data_dir)["val"] else []  # no val split: skip

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
