"""``RelationModule``: one LightningModule for every relation head (``rpcm``, ``mlp``, ``freq``).

Trained by ``sgg train relation --config configs/relation/<name>.yaml`` on ``RelationDataModule`` batches
(``candidates`` and multi-hot ``candidate_targets``, optionally cropped). PredCls feeds ground-truth boxes
and classes; SGCls only boxes, and the head also learns to classify objects. ``freq`` has no weights: its
single epoch counts the training scenes (and their background candidates). ``export`` writes the head in
the relation-head checkpoint format at the end of fitting (fp16 with ``export_half``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from sgg.datasets.relation_pairs import neighbour_pairs
from sgg.errors import SggInputError
from sgg.structures import Vocabulary

from .checkpoint import build_head, save_relation_head


def training_log_prior(graphs, num_predicates: int, neg_ratio: float) -> torch.Tensor:
    """log frequency of each predicate over training pairs: a pair's predicates share one count (as in the
    multi-hot targets), background = ``neg_ratio`` × the annotated pairs (the negatives served per scene).
    Predicates without training instance get 0 (no boost from the adjustment)."""
    from sgg.datasets.relation_pairs import pair_targets

    counts = torch.zeros(num_predicates, dtype=torch.float64)
    for g in graphs:
        lab = g.predicate_labels if g.predicate_labels is not None else torch.zeros(len(g.pairs), dtype=torch.long)
        _, t = pair_targets(g.pairs.pairs, lab, len(g.detections), num_predicates)
        counts += (t / t.sum(1, keepdim=True).clamp_min(1)).sum(0).double()
        counts[0] += max(neg_ratio, 0.0) * len(t)
    logp = torch.log(counts / counts.sum().clamp_min(1))
    return torch.where(counts > 0, logp, torch.zeros_like(logp)).float()  # unseen predicates: no boost


def _vocabulary(spec: str | None) -> Vocabulary:
    if spec in (None, "star"):
        return Vocabulary.star()
    try:
        return Vocabulary.from_dict(json.loads(Path(spec).read_text()))
    except (OSError, ValueError) as exc:
        raise SggInputError(f"cannot read vocabulary ({exc})", path=spec) from None


class RelationModule(pl.LightningModule):
    """Args: ``head`` kind, ``mode`` (predcls/sgcls), the head's hyper-parameters, ``reweight`` β (CE weight
    (n_p / median n)^-β per predicate, 0 = plain CE), ``obj_weight`` (SGCls object loss), ``freq_bias`` (PredCls: add a learned class-pair predicate bias
    initialised from the training counts, as MOTIFS does), ``logit_adjust`` τ (predict() subtracts τ·log prior of the
    training predicates, stored in the head at ``setup``), ``count_norm`` β (predict() ranks each graph's triplets
for mean recall, :func:`~.base.count_normalised`), ``train_logit_adjust`` τ' (logit-adjusted loss, Menon et
    al. 2021: the loss sees logits + τ'·log prior, so the head's own logits come out balanced over predicates and
    rare ones are not drowned by frequent ones — the long-tail remedy for mR), ``bg_weight`` (CE weight of the
    background column, multiplied into the class weights), ``context_pairs`` (``served``: a head sees only the
    served training pairs — every annotated pair plus a few negatives, a graph whose very edges give the
    labels away; ``all``: messages run over every candidate pair of the crop, as at inference, and the loss
    is taken on the served pairs among them), optimiser settings, ``export`` path, ``num_threads`` (torch
    threads while fitting; 0 keeps torch's default). RPCM's ``pool``, ``skip``, ``classifier`` and ``triangles``: :class:`~.models.RPCM`."""

    def __init__(
        self,
        head: str = "rpcm",
        mode: str = "predcls",
        vocabulary: str | None = None,
        hidden: int = 128,
        class_dim: int = 64,
        raster: int = 8,
        visual_dim: int = 0,
        steps: int = 3,
        proto_dim: int = 128,
        sep_weight: float = 0.1,
        compact_weight: float = 0.5,
        margin: float = 0.2,
        alpha: float = 0.5,
        reweight: float = 0.0,
        obj_weight: float = 1.0,
        logit_adjust: float = 0.0,
        count_norm: float = 0.0,
        freq_bias: bool = False,
        train_logit_adjust: float = 0.0,
        bg_weight: float = 1.0,
        context_pairs: str = "served",
        pool: str = "mean",
        skip: bool = False,
        classifier: str = "proto",
        triangles: bool = False,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        seed: int = 0,
        export: str | None = None,
        export_half: bool = True,
        num_threads: int = 0,
    ):
        super().__init__()
        if context_pairs not in ("served", "all"):
            raise SggInputError(f"relation module: context_pairs must be 'served' or 'all', got {context_pairs!r}")
        self.save_hyperparameters()
        pl.seed_everything(seed, workers=True, verbose=False)
        cfg = dict(mode=mode, hidden=hidden, class_dim=class_dim, raster=raster, visual_dim=visual_dim, steps=steps,
                   proto_dim=proto_dim, sep_weight=sep_weight, compact_weight=compact_weight, margin=margin, alpha=alpha,
                   logit_adjust=logit_adjust, count_norm=count_norm, freq_bias=freq_bias, pool=pool, skip=skip,
                   classifier=classifier, triangles=triangles)
        self.head = build_head(head, _vocabulary(vocabulary), **cfg)
        self.register_buffer("class_weight", torch.ones(self.head.num_predicates))
        if head == "freq":
            self.automatic_optimization = False
            self._dummy = torch.nn.Parameter(torch.zeros(1))  # Lightning wants an optimiser

    def setup(self, stage: str) -> None:
        if self.hparams.num_threads > 0:  # small sparse ops: one thread beats several on a busy machine
            torch.set_num_threads(self.hparams.num_threads)
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None or stage != "fit":
            return
        train = dm._dataset("train")
        if dm.vocabulary is not None and dm.vocabulary != self.head.vocabulary:
            raise SggInputError(f"the data's vocabulary ({dm.vocabulary!r}) differs from the head's "
                                f"({self.head.vocabulary!r}); set model.vocabulary", path=dm.data_dir)
        self.head.log_prior.copy_(training_log_prior([sc.graph for sc in train.scenes], self.head.num_predicates,
                                                     float(dm.hparams.neg_ratio)))
        if getattr(self.head, "freq_bias", None) is not None:  # log frequencies of the class pair's predicates
            from .frequency import FrequencyPrior

            prior = FrequencyPrior(self.head.vocabulary, pair_rule=self.head.pair_rule).fit([sc.graph for sc in train.scenes])
            cnt = prior.counts + self.hparams.alpha
            with torch.no_grad():
                self.head.freq_bias.weight.copy_(torch.log(cnt / cnt.sum(-1, keepdim=True)).reshape(-1, cnt.shape[-1]))
        if self.hparams.reweight > 0:
            p = self.head.num_predicates
            n = torch.zeros(p)
            for sc in train.scenes:
                lab = sc.graph.predicate_labels
                if lab is not None:
                    n += torch.bincount(lab, minlength=p).float()
            fg = n[1:]
            med = fg[fg > 0].median() if bool((fg > 0).any()) else torch.tensor(1.0)
            w = torch.ones(p)
            w[1:] = ((fg.clamp_min(1) / med) ** -self.hparams.reweight).clamp(0.1, 10.0)
            self.class_weight.copy_(w)
        self.class_weight[0] *= float(self.hparams.bg_weight)

    def _step(self, batch: list[dict], split: str) -> torch.Tensor:
        total, parts = 0.0, {}
        for s in batch:
            keep = s["crop_objects"]
            boxes, labels = s["boxes"][keep], s["labels"][keep]
            out, targets = self._forward(boxes, labels if self.head.mode == "predcls" else None, s["candidates"],
                                         s["candidate_targets"])
            if self.hparams.train_logit_adjust:  # logit-adjusted loss: balanced logits at test time
                out["rel_logits"] = out["rel_logits"] + self.hparams.train_logit_adjust * self.head.log_prior
            losses = self.head.loss(out, targets, labels, self.class_weight)
            if "obj" in losses:
                losses["obj"] = losses["obj"] * self.hparams.obj_weight
            total = total + sum(losses.values())
            for k, v in losses.items():
                parts[k] = parts.get(k, 0.0) + float(v.detach())
        loss = total / max(len(batch), 1)
        self.log(f"{split}/loss", loss, prog_bar=True, batch_size=len(batch))
        for k, v in parts.items():
            self.log(f"{split}/{k}", v / max(len(batch), 1), batch_size=len(batch))
        return loss

    def _forward(self, boxes, labels, served, targets):
        """The head on one sample → (outputs for the loss rows, their targets); see ``context_pairs``."""
        if self.hparams.context_pairs == "served":
            return self.head(boxes, labels, served), targets
        n = len(boxes)
        graph = neighbour_pairs(boxes, **self.head.pair_rule)  # sorted by subject * n + object
        key, want = graph[:, 0] * n + graph[:, 1], served[:, 0] * n + served[:, 1]
        at = torch.searchsorted(key, want).clamp_max(max(len(key) - 1, 0))
        ok = key[at] == want if len(key) else torch.zeros(len(want), dtype=torch.bool)
        rows, targets = at[ok], targets[ok]  # annotated pairs the rule never proposes cannot be recalled
        if self.head.kind == "mlp":  # no context: the rows alone give the same logits
            return self.head(boxes, labels, graph[rows]), targets
        out = self.head(boxes, labels, graph)
        out = {k: v[rows] if k in ("rel_logits", "cos") and v is not None else v for k, v in out.items()}
        return out, targets

    def training_step(self, batch: list[dict], batch_idx: int) -> Any:
        if self.head.kind == "freq":
            self.head.fit([s["graph"] for s in batch])
            return None
        return self._step(batch, "train")

    def validation_step(self, batch: list[dict], batch_idx: int) -> None:
        if self.head.kind != "freq":
            self._step(batch, "val")

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if self.head.kind == "freq":
            return opt
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        warm = max(1, min(50, steps // 10))

        def factor(i: int) -> float:  # linear warm-up, then cosine to 0
            return (i + 1) / warm if i < warm else 0.5 * (1 + math.cos(math.pi * min(1.0, (i - warm) / max(1, steps - warm))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_fit_end(self) -> None:
        if self.hparams.export and self.trainer.is_global_zero:
            path = save_relation_head(self.head.cpu(), self.hparams.export, half=self.hparams.export_half)
            print(f"relation head written to {path}")
