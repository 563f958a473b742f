"""Lightning DataModule for the relation heads over a scene directory (``scenes/<id>.tif``,
``annotations/<id>.json``, ``split.json``).

``RelationDataModule`` yields whole-scene graphs (boxes, labels, relation pairs and predicates, and the
SceneGraph annotation itself under ``graph``), optionally with the scene image at a pyramid level whose long
side fits ``image_max_side``, plus training pairs: ``candidates`` (annotated pairs then background
neighbour pairs, ``sgg.datasets.relation_pairs``) with multi-hot ``candidate_targets``, optionally
inside a random ``crop`` window. Lightning moves batches itself (``SceneGraph.to``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from sgg.datasets.tiling import ReaderCache, SceneRecord, load_scenes, read_split, read_window
from sgg.errors import SggInputError


class SceneGraphDataset(Dataset):
    """Whole-scene annotations as relation-training samples (optionally with a downsampled image).

    With ``pairs`` settings (a dict for ``sgg.datasets.relation_pairs.training_pairs``: ``neg_ratio``, ``max_pairs``
    and the candidate rule) each sample also carries ``candidates`` (K, 2) and ``candidate_targets`` (K, P);
    with ``crop`` > 0 those come from the objects whose centres fall in a ``crop``-pixel square around a
    random object (boxes keep level-0 coordinates; ``crop_objects`` indexes the scene's objects). Random
    draws use ``default_rng``/``torch.Generator`` seeded by (seed, index, draw), with ``draw`` counting the
    dataset's samples, so a fixed ``random=False`` dataset (validation) gives the same pairs every time.
    """

    def __init__(self, scenes: Sequence[SceneRecord], with_images: bool = False, image_max_side: int = 2048, opener=None,
                 pairs: dict | None = None, crop: int = 0, seed: int = 0, random: bool = True):
        self.scenes, self.with_images, self.image_max_side = list(scenes), with_images, int(image_max_side)
        self.readers = ReaderCache(opener)
        self.pairs, self.crop, self.seed, self.random = pairs, int(crop), int(seed), bool(random)
        self.draws = 0

    def __len__(self) -> int:
        return len(self.scenes)

    def _training_pairs(self, index: int, sc: SceneRecord, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        from sgg.datasets.relation_pairs import training_pairs

        draw = self.draws if self.random else 0
        self.draws += 1
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, index, draw]).generate_state(1)[0]))
        g, boxes = sc.graph, sc.boxes
        keep = torch.arange(len(boxes))
        pairs = g.pairs.pairs.long()
        if self.crop > 0 and len(boxes):
            c = boxes[int(torch.randint(len(boxes), (1,), generator=gen))][:2]
            inside = ((boxes[:, :2] - c).abs() <= self.crop / 2).all(1)
            keep = inside.nonzero().flatten()
            remap = torch.full((len(boxes),), -1, dtype=torch.long)
            remap[keep] = torch.arange(len(keep))
            ok = inside[pairs[:, 0]] & inside[pairs[:, 1]]
            pairs, labels = remap[pairs[ok]], labels[ok]
        cand, tgt = training_pairs(boxes[keep], pairs, labels, g.vocabulary.num_predicates, generator=gen, **self.pairs)
        return {"crop_objects": keep, "candidates": cand, "candidate_targets": tgt}

    def __getitem__(self, index: int) -> dict[str, Any]:
        sc = self.scenes[index]
        g = sc.graph
        labels = g.predicate_labels if g.predicate_labels is not None else torch.zeros(len(g.pairs), dtype=torch.long)
        sample = {
            "scene_id": sc.scene_id,
            "graph": g,
            "boxes": sc.boxes,
            "labels": sc.labels,
            "pairs": g.pairs.pairs.long(),
            "predicates": labels.long(),
            "image_size": torch.tensor([sc.width, sc.height]),
        }
        if self.pairs is not None:
            sample.update(self._training_pairs(index, sc, labels.long()))
        if self.with_images:
            long_side = max(sc.width, sc.height)
            level = max(0, math.ceil(math.log2(long_side / self.image_max_side))) if long_side > self.image_max_side else 0
            size = math.ceil(long_side / 2**level)
            img = read_window(self.readers.get(sc.image_path), sc.width, sc.height, (0, 0, long_side, long_side), size)
            h, w = math.ceil(sc.height / 2**level), math.ceil(sc.width / 2**level)
            sample["image"] = img[:, :h, :w].contiguous()
            sample["image_scale"] = torch.tensor(size / long_side, dtype=torch.float32)
        return sample


def relation_collate(batch: Sequence[dict]) -> list[dict]:
    """Scenes differ in size: a batch is the list of samples."""
    return list(batch)


class RelationDataModule(pl.LightningDataModule):
    """Per-scene graphs (boxes, labels, pairs, predicates) for PPG/RPCM training; train/val/test from split.json.

    Args:
        data_dir: scene directory as for :class:`DetectorDataModule`.
        batch_size: scenes per batch (a batch is a list of per-scene dicts).
        with_images: add ``image`` (3,h,w) in [0,1] read at the pyramid level whose long side ≤
            ``image_max_side``, and ``image_scale`` (image pixels per level-0 pixel), for visual features.
        neg_ratio, max_pairs, margin_px, margin_rel, k: training pairs (``candidates``): every annotated pair
            plus at most ``neg_ratio`` background candidates per annotated pair, ≤ ``max_pairs`` per sample;
            candidates are objects whose envelopes grown by max(margin_px, margin_rel × long side) meet, or
            k nearest (``sgg.datasets.relation_pairs.neighbour_pairs``). ``neg_ratio`` < 0 serves no candidates.
        crop: training samples use the objects within a random ``crop``-pixel square (0: whole scenes);
            validation/test crops are fixed per scene.

    All scenes must share one vocabulary (``SggInputError`` names the first scene that differs).
    """

    def __init__(
        self,
        data_dir: str,
        batch_size: int = 1,
        num_workers: int = 0,
        with_images: bool = False,
        image_max_side: int = 2048,
        shuffle: bool = True,
        seed: int = 0,
        neg_ratio: float = 3.0,
        max_pairs: int = 30000,
        margin_px: float = 16.0,
        margin_rel: float = 0.5,
        k: int = 8,
        crop: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = data_dir
        self.datasets: dict[str, SceneGraphDataset] = {}
        self.vocabulary = None

    def _dataset(self, split: str) -> SceneGraphDataset:
        if split not in self.datasets:
            scenes = load_scenes(self.data_dir, read_split(self.data_dir)[split])
            for sc in scenes:
                if self.vocabulary is None:
                    self.vocabulary = sc.graph.vocabulary
                elif sc.graph.vocabulary != self.vocabulary:
                    raise SggInputError(f"scene {sc.scene_id} has a different vocabulary from the other scenes "
                                        f"({self.vocabulary!r} vs {sc.graph.vocabulary!r})", path=self.data_dir)
            hp = self.hparams
            pairs = None if hp.neg_ratio < 0 else {"neg_ratio": hp.neg_ratio, "max_pairs": hp.max_pairs,
                                                   "margin_px": hp.margin_px, "margin_rel": hp.margin_rel, "k": hp.k}
            self.datasets[split] = SceneGraphDataset(scenes, hp.with_images, hp.image_max_side, pairs=pairs,
                                                     crop=hp.crop, seed=hp.seed, random=split == "train")
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), None: ("train", "val", "test")}
        for split in wanted.get(stage, ()):
            self._dataset(split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        g = torch.Generator().manual_seed(self.hparams.seed)
        return DataLoader(self._dataset(split), batch_size=self.hparams.batch_size, shuffle=shuffle, generator=g,
                          num_workers=self.hparams.num_workers, collate_fn=relation_collate)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.hparams.shuffle)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
