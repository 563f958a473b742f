"""Training our own PPG: ``PPGDataModule`` (pair features of annotated relations) and ``PPGModule`` (USAD).

USAD (Audibert et al., KDD 2020) with STAR's two full autoencoders: on related-pair features W, in epoch n
(1-based),

    L1 = 1/n · ‖W − AE1(W)‖² + (1 − 1/n) · ‖W − AE2(AE1(W))‖²
    L2 = 1/n · ‖W − AE2(W)‖² − (1 − 1/n) · ‖W − AE2(AE1(W))‖²

AE1 learns to reconstruct and, more and more, to fool AE2; AE2 learns to reconstruct real pairs and to tell
them from AE1's reconstructions. Two Adam optimisers, manual optimisation. Validation logs ``val/score`` (mean
score of held-out related pairs) and ``val/auc`` (related pairs against random unrelated pairs of the same
scenes; higher is better). Checkpoints carry the vocabulary and config (``checkpoint["sgg_ppg"]``), so
:meth:`sgg.pairs.PPG.load` reads them directly.

    sgg train ppg --config configs/ppg/synth.yaml
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from sgg.errors import SggInputError
from sgg.structures import SceneGraph, Vocabulary

from .features import pair_feature_dim, star_pair_features
from .ppg import FORMAT, PPG

__all__ = ["PPGModule", "PPGDataModule", "related_pairs", "pair_auc"]


def related_pairs(graph: SceneGraph) -> torch.Tensor:
    """(K, 2) distinct ordered (subject, object) pairs that carry at least one foreground predicate."""
    return graph.related_pairs()


def pair_auc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """P(score of a random related pair < score of a random unrelated pair), ties counting ½ (lower = keep)."""
    if pos.numel() == 0 or neg.numel() == 0:
        return float("nan")
    allv = torch.cat([pos, neg]).double()
    order = torch.argsort(allv)
    ranks = torch.empty_like(allv)
    ranks[order] = torch.arange(1, allv.numel() + 1, dtype=torch.float64)
    uniq, inv, counts = torch.unique(allv, return_inverse=True, return_counts=True)  # average ranks of ties
    sums = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inv, ranks)
    ranks = (sums / counts)[inv]
    u = ranks[pos.numel():].sum() - neg.numel() * (neg.numel() + 1) / 2  # Mann–Whitney U of the negatives
    return float(u / (pos.numel() * neg.numel()))


class PPGDataModule(pl.LightningDataModule):
    """Pair features of every annotated relation of the train/val scenes of a data directory.

    Args:
        data_dir: ``annotations/<id>.json`` + ``split.json`` (as ``sgg synth`` writes; any vocabulary).
        batch_size: feature rows per step. negatives_per_scene: random unrelated pairs per validation scene
            for ``val/auc``. seed: shuffling and negative sampling.
    """

    def __init__(self, data_dir: str, batch_size: int = 256, num_workers: int = 0,
                 negatives_per_scene: int = 2000, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = data_dir
        self.vocabulary: Vocabulary | None = None
        self._sets: dict[str, TensorDataset] = {}

    def _features(self, split: str) -> TensorDataset:
        from sgg.datasets.tiling import load_scenes, read_split

        if split in self._sets:
            return self._sets[split]
        ids = read_split(self.data_dir)[split]
        scenes = load_scenes(self.data_dir, ids)
        g = torch.Generator().manual_seed(self.hparams.seed)
        pos, neg = [], []
        for sc in scenes:
            voc = sc.graph.vocabulary
            if self.vocabulary is None:
                self.vocabulary = voc
            elif tuple(voc.objects) != tuple(self.vocabulary.objects):
                raise SggInputError("scenes of one data directory use different vocabularies", path=self.data_dir,
                                    where=sc.scene_id)
            rel = sc.graph.related_pairs()
            pos.append(star_pair_features(sc.boxes, sc.labels, rel, voc.num_classes).float())
            n = len(sc.labels)
            if split != "train" and n > 1:
                cand = torch.randint(0, n, (self.hparams.negatives_per_scene, 2), generator=g)
                cand = cand[cand[:, 0] != cand[:, 1]]
                key = cand[:, 0] * n + cand[:, 1]
                cand = cand[~torch.isin(key, rel[:, 0] * n + rel[:, 1])]
                neg.append(star_pair_features(sc.boxes, sc.labels, cand, voc.num_classes).float())
        d = pair_feature_dim(self.vocabulary.num_classes if self.vocabulary else 0)
        x = torch.cat(pos) if pos else torch.zeros(0, d)
        y = torch.ones(x.shape[0], dtype=torch.bool)
        if neg:
            xn = torch.cat(neg)
            x, y = torch.cat([x, xn]), torch.cat([y, torch.zeros(xn.shape[0], dtype=torch.bool)])
        if split == "train" and x.shape[0] == 0:
            raise SggInputError("no annotated relations in the training scenes", path=self.data_dir)
        self._sets[split] = TensorDataset(x, y)
        return self._sets[split]

    def setup(self, stage: str | None = None) -> None:
        for split in {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(stage or "fit", ()):
            self._features(split)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        # whole batches by tensor indexing (one gather per batch instead of batch_size item calls + collate)
        ds = self._features(split)
        g = torch.Generator().manual_seed(self.hparams.seed)
        base = RandomSampler(ds, generator=g) if shuffle else SequentialSampler(ds)
        return DataLoader(ds, sampler=BatchSampler(base, batch_size, drop_last=False), batch_size=None,
                          num_workers=self.hparams.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.hparams.batch_size, True)

    def _eval(self, split: str) -> DataLoader:
        return self._loader(split, 8192, False)

    def val_dataloader(self) -> DataLoader:
        return self._eval("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval("test")


class PPGModule(pl.LightningModule):
    """Trains a :class:`PPG` on related-pair features in the USAD manner.

    Args:
        class_names: the one-hot layout's classes (default: STAR's 48); must match the data's vocabulary.
        hidden, latent: autoencoder widths (STAR: 50, 25). alpha, beta: score weights.
        lr, weight_decay: Adam for each autoencoder. seed: weight initialisation.
    """

    def __init__(self, class_names: list[str] | None = None, hidden: int = 50, latent: int = 25,
                 alpha: float = 0.5, beta: float = 0.5, lr: float = 1e-3, weight_decay: float = 0.0, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        names = tuple(class_names) if class_names else Vocabulary.star().objects
        voc = Vocabulary.star() if names == Vocabulary.star().objects else Vocabulary(names, ())
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.ppg = PPG(len(names), voc, hidden, latent, alpha, beta, source="sgg PPGModule (USAD)")
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def setup(self, stage: str | None = None) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        voc = getattr(dm, "vocabulary", None)
        if voc is not None and tuple(voc.objects) != tuple(self.ppg.vocabulary.objects):
            raise SggInputError(f"the data's vocabulary ({voc.num_classes} classes) differs from the model's "
                                f"class_names ({self.ppg.num_classes})", where="PPGModule")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ppg(x)

    def usad_losses(self, x: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(L1, L2) of USAD at 1-based ``epoch`` (module docstring)."""
        n = float(max(1, epoch))
        w1 = self.ppg.ae1(x)
        w2 = self.ppg.ae2(x)
        w3 = self.ppg.ae2(w1)
        e1, e2, e3 = (((w - x) ** 2).mean() for w in (w1, w2, w3))
        return e1 / n + (1 - 1 / n) * e3, e2 / n - (1 - 1 / n) * e3

    def training_step(self, batch, batch_idx):
        x = batch[0]
        opt1, opt2 = self.optimizers()
        epoch = self.current_epoch + 1
        l1, _ = self.usad_losses(x, epoch)
        opt1.zero_grad()
        self.manual_backward(l1)
        opt1.step()
        _, l2 = self.usad_losses(x, epoch)
        opt2.zero_grad()
        self.manual_backward(l2)
        opt2.step()
        self.log_dict({"train/loss_ae1": l1.detach(), "train/loss_ae2": l2.detach()}, prog_bar=True,
                      batch_size=x.shape[0])

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self._val.append((self.ppg(x).detach().cpu(), y.cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        s = torch.cat([v[0] for v in self._val])
        y = torch.cat([v[1] for v in self._val])
        self._val = []
        if y.any():
            self.log("val/score", s[y].mean(), prog_bar=True)
        auc = pair_auc(s[y], s[~y])
        if not math.isnan(auc):
            self.log("val/auc", auc, prog_bar=True)

    def configure_optimizers(self):
        mk = lambda m: torch.optim.Adam(m.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        return [mk(self.ppg.ae1), mk(self.ppg.ae2)]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        d = self.ppg.to_dict()
        checkpoint["sgg_ppg"] = {"format": FORMAT, "config": d["config"], "vocabulary": d["vocabulary"],
                                 "source": d["source"]}
