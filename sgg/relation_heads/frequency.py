"""Frequency-prior baseline (Zellers et al.'s "FREQ"): predicate distribution of the (subject class,
object class) pair from training counts, nothing else.

Counts are a (C, C, P) tensor (predicate 0 = background). ``from_star()`` uses STAR's real training counts
(no background counts there, so every pair gets a foreground predicate); ``fit(graphs)`` counts annotated
scenes and, with ``negatives=True``, also the unannotated candidate pairs as background, so that class
pairs which are seldom related rank lower.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from sgg.datasets.relation_pairs import neighbour_pairs, pair_targets
from sgg.errors import SggInputError
from sgg.structures import SceneGraph, Vocabulary, star_triplet_counts

from .base import RelationHead


class FrequencyPrior(RelationHead):
    """``rel_logits = log((counts[subject class, object class] + alpha) / total)``; labels are required."""

    kind = "freq"

    def __init__(self, vocabulary: Vocabulary | dict | None = None, mode: str = "predcls", alpha: float = 0.5,
                 counts: torch.Tensor | None = None, pair_rule: dict | None = None, count_norm: float = 0.0,
                 **_: object):
        super().__init__(vocabulary, "predcls", pair_rule, count_norm=count_norm)
        c, p = self.num_classes, self.num_predicates
        self.alpha = float(alpha)
        self.config.update(alpha=self.alpha)
        counts = torch.zeros(c, c, p) if counts is None else torch.as_tensor(counts, dtype=torch.float32)
        if counts.shape != (c, c, p):
            raise SggInputError(f"FrequencyPrior: counts of shape {tuple(counts.shape)}, expected ({c}, {c}, {p})")
        self.register_buffer("counts", counts.float())

    @classmethod
    def from_star(cls, alpha: float = 0.5, count_norm: float = 0.0) -> FrequencyPrior:
        """STAR's training counts (48 classes, 58 predicates), background counts dropped."""
        t = torch.tensor(star_triplet_counts(), dtype=torch.float32)[1:, 1:]
        t[..., 0] = 0
        return cls(Vocabulary.star(), alpha=alpha, counts=t, count_norm=count_norm)

    def fit(self, graphs: Iterable[SceneGraph], negatives: bool = True) -> FrequencyPrior:
        """Add the counts of annotated scenes (and background counts of their unannotated candidates)."""
        c, p = self.num_classes, self.num_predicates
        flat = self.counts.view(-1)
        for g in graphs:
            if g.vocabulary != self.vocabulary:
                raise SggInputError("FrequencyPrior.fit: scene vocabulary differs from the prior's", path=g.image_path)
            lab, n = g.detections.labels, len(g.detections)
            rows = g.predicate_labels if g.predicate_labels is not None else torch.zeros(len(g.pairs), dtype=torch.long)
            pairs, tgt = pair_targets(g.pairs.pairs, rows, n, p)
            pi, pr = tgt.nonzero(as_tuple=True)
            idx = (lab[pairs[pi, 0]] * c + lab[pairs[pi, 1]]) * p + pr
            flat.index_add_(0, idx, torch.ones(len(idx)))
            if negatives:
                cand = neighbour_pairs(g.detections.boxes.tensor, **self.pair_rule)
                cand = cand[~torch.isin(cand[:, 0] * n + cand[:, 1], pairs[:, 0] * n + pairs[:, 1])]
                idx = (lab[cand[:, 0]] * c + lab[cand[:, 1]]) * p
                flat.index_add_(0, idx, torch.ones(len(idx)))
        return self

    def forward(self, boxes: torch.Tensor, labels: torch.Tensor | None, pairs: torch.Tensor,
                features: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if labels is None:
            raise SggInputError("FrequencyPrior needs object classes (PredCls/SGDet)")
        cnt = self.counts[labels[pairs[:, 0]], labels[pairs[:, 1]]] + self.alpha
        cnt[:, 0] = torch.where(self.counts[..., 0].sum() > 0, cnt[:, 0], torch.zeros_like(cnt[:, 0]))
        prob = cnt / cnt.sum(1, keepdim=True)
        return {"rel_logits": torch.log(prob.clamp_min(1e-12)), "obj_logits": None}
