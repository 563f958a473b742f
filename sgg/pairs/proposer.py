"""Selection and the pipeline's one callable: candidates → pair features → PPG score → top-K.

``PairProposer.default()`` is STAR's setting: STAR's released PPG (OBB), STAR's class-pair mask, 10,000
pairs per image. ``budget="auto"`` keeps ``max(10,000, 32·N)`` pairs instead (:func:`auto_budget`): scenes
of thousands of objects hold more related pairs than 10,000 (the held-out synthetic scenes ~2.5 per object),
so a fixed budget caps recall there. Unlike the STAR toolkit it never builds the N² pairs: candidates come from
:func:`candidate_pairs` and are scored ``chunk_size`` pairs at a time, so memory stays bounded.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any

import torch

from sgg.errors import SggInputError
from sgg.structures import Detections, PairSet, Vocabulary

from .candidates import PairPrior, candidate_pairs
from .features import spatial_pair_features
from .ppg import PPG, _load, _save

__all__ = ["select_pairs", "auto_budget", "check_budget", "resolve_budget", "PairProposer", "PROPOSER_FORMAT", "AUTO_PER_OBJECT", "STAR_BUDGET"]

PROPOSER_FORMAT = "sgg-pair-proposer/1"
STAR_BUDGET = 10_000
# pairs per object of budget="auto": on the 4 held-out synthetic scenes (2,274-5,395 objects) recall at
# max(10,000, k·N) is 0.78 / 0.88 / 0.994 for k = 16 / 24 / 32 with STAR's and our PPG, and 0.994 is all the
# candidates hold; at 32 about 70 % of the candidates are kept.
AUTO_PER_OBJECT = 32


def auto_budget(num_objects: int, per_object: int = AUTO_PER_OBJECT, floor: int = STAR_BUDGET) -> int:
    """Pairs kept for a scene of ``num_objects`` under ``budget="auto"``: ``max(floor, per_object · N)``."""
    return max(int(floor), int(per_object) * int(num_objects))


def check_budget(budget: Any, name: str = "budget") -> int | str | None:
    """A pair budget as given by a user, validated: ``"auto"``, an integer >= 0 (an integral float such as
    ``1e4`` from a JSON file counts) or None. Anything else, 2.5 or ``True`` included, raises
    :class:`SggInputError` naming ``name``; the pipeline and :class:`PairProposer` both check through here."""
    if budget is None or (isinstance(budget, str) and budget == "auto"):
        return budget
    if isinstance(budget, float) and budget.is_integer():
        budget = int(budget)
    if isinstance(budget, bool) or not isinstance(budget, numbers.Integral) or budget < 0:
        raise SggInputError(f'{name} must be "auto", an integer >= 0 or null, got {budget!r}')
    return int(budget)


def resolve_budget(budget: Any, num_objects: int | None, name: str = "budget") -> int | None:
    """Pairs kept for a scene of ``num_objects``: :func:`check_budget`, with ``"auto"`` turned into
    :func:`auto_budget` of ``num_objects``; None means no cap."""
    budget = check_budget(budget, name)
    if budget == "auto":
        if num_objects is None:
            raise SggInputError(f'{name}="auto" needs num_objects')
        return auto_budget(num_objects)
    return budget


def select_pairs(pairs: PairSet | torch.Tensor, scores: torch.Tensor, budget: int | str | None = STAR_BUDGET, *,
                 threshold: float | None = None, lower_is_better: bool = False,
                 num_objects: int | None = None) -> PairSet:
    """The best pairs, best first: the ``budget`` top-scoring ones (None: no cap; ``"auto"``:
    :func:`auto_budget` of ``num_objects``) and, with ``threshold``, only those scoring at least it (at most
    it when ``lower_is_better``, e.g. raw PPG scores).

    The returned PairSet's scores are the ranking key, "higher = keep" (negated when ``lower_is_better``), not
    necessarily in [0, 1]: map them (as :class:`PairProposer` does) before they go into a SceneGraph."""
    p = pairs.pairs if isinstance(pairs, PairSet) else torch.as_tensor(pairs, dtype=torch.long).reshape(-1, 2)
    s = torch.as_tensor(scores).reshape(-1).float()
    if s.shape[0] != p.shape[0]:
        raise SggInputError(f"select_pairs: {s.shape[0]} scores for {p.shape[0]} pairs")
    budget = resolve_budget(budget, num_objects)
    s = -s if lower_is_better else s
    keep = torch.ones_like(s, dtype=torch.bool) if threshold is None else s >= (-threshold if lower_is_better else threshold)
    p, s = p[keep], s[keep]
    k = s.numel() if budget is None else min(int(budget), s.numel())
    if 0 < k < s.numel() // 4 and not bool(s.isnan().any()):  # only rows at least as good as the k-th best can be kept: sort those
        thr = torch.topk(s, k, sorted=False).values.min()
        idx = (s >= thr).nonzero().flatten()  # in pair order, so the stable sort below is unchanged
        p, s = p[idx], s[idx]
    # stable order: ties go to the earlier pair, so results do not depend on the sort implementation
    order = torch.argsort(s, descending=True, stable=True)[:k]
    return PairSet(p[order], s[order])


class PairProposer:
    """Detections → the pairs worth classifying (a PairSet, best first, ``scores`` higher = keep).

    Pair scores follow ``PairSet``'s convention: in (0, 1], higher = keep, so that ``SceneGraph.triplets``
    can rank by predicate score × pair score. They are ``exp(-PPG error)`` (without a PPG,
    ``exp(-distance / radius)``): absolute, so comparable between scenes. The raw PPG errors (lower = keep)
    come from :meth:`score`; :func:`select_pairs` ranks by any key and returns that key.

    Args:
        ppg: the scorer (None: rank candidates by distance relative to their class pair's radius).
        prior: class-pair mask and radii for the candidates (default: :meth:`PairPrior.star`).
        budget: pairs kept per image (STAR: 10,000; ``"auto"``: ``max(10,000, 32·N)``, see
            :func:`auto_budget`; None: all candidates); ``fraction``: also at most this share of N(N−1);
            ``threshold``: also only pairs whose PPG score is ≤ it.
        k, max_per_object, radius_scale: candidate options (:func:`candidate_pairs`).
        chunk_size: pairs featurised and scored at once.
    """

    def __init__(self, ppg: PPG | None = None, prior: PairPrior | None = None, *, budget: int | str | None = STAR_BUDGET,
                 fraction: float | None = None, threshold: float | None = None, k: int = 8,
                 max_per_object: int | None = 32, radius_scale: float = 1.0, chunk_size: int = 1 << 16):
        self.ppg = ppg.eval() if ppg is not None else None
        self.prior = prior if prior is not None else PairPrior.star()
        self.budget, self.fraction, self.threshold = budget, fraction, threshold  # budget: checked by its setter
        self.k, self.max_per_object, self.radius_scale = int(k), max_per_object, float(radius_scale)
        self.chunk_size = int(chunk_size)

    @property
    def budget(self) -> int | str | None:
        return self._budget

    @budget.setter
    def budget(self, value: Any) -> None:  # refuse a bad budget when it is set, not at the first scene
        self._budget = check_budget(value, "PairProposer budget")

    @classmethod
    def default(cls) -> PairProposer:
        """STAR's released PPG (OBB weights) + STAR's class-pair prior, 10,000 pairs per image."""
        return cls(PPG.from_star(), PairPrior.star(), budget=STAR_BUDGET)

    # steps ------------------------------------------------------------------------------------
    def candidates(self, detections: Detections, vocabulary: Vocabulary | None = None) -> PairSet:
        return candidate_pairs(detections, self.prior, vocabulary=vocabulary, k=self.k,
                               max_per_object=self.max_per_object, radius_scale=self.radius_scale)

    def _labels(self, detections: Detections, vocabulary: Vocabulary | None) -> torch.Tensor:
        lab = detections.labels.cpu()
        table = self.ppg.label_map(vocabulary)
        if table is not None:
            lab = table[lab]
        if len(lab) and int(lab.max()) >= self.ppg.num_classes:
            raise SggInputError(f"class index {int(lab.max())} out of range for the PPG's {self.ppg.num_classes} "
                                "classes", where="PairProposer")
        return lab

    def score(self, detections: Detections, pairs: PairSet | torch.Tensor,
              vocabulary: Vocabulary | None = None) -> torch.Tensor:
        """(M,) raw PPG scores of ``pairs`` (lower = keep), ``chunk_size`` pairs at a time."""
        if self.ppg is None:
            raise SggInputError("this PairProposer has no PPG to score with", where="PairProposer")
        p = pairs.pairs if isinstance(pairs, PairSet) else torch.as_tensor(pairs, dtype=torch.long)
        lab = self._labels(detections, vocabulary)
        boxes = detections.boxes.tensor.detach().cpu()
        out = torch.empty(p.shape[0])
        for lo in range(0, p.shape[0], self.chunk_size):
            q = p[lo:lo + self.chunk_size]
            x = spatial_pair_features(boxes, q).float()
            out[lo:lo + self.chunk_size] = self.ppg.score_onehot(lab[q[:, 0]], lab[q[:, 1]], x, self.chunk_size)
        return out

    def __call__(self, detections: Detections, vocabulary: Vocabulary | None = None) -> PairSet:
        n = len(detections)
        if n < 2:
            return PairSet(torch.zeros(0, 2, dtype=torch.long), torch.zeros(0))
        if self.ppg is not None:
            self._labels(detections, vocabulary)  # refuse a foreign vocabulary before any work
        cand = self.candidates(detections, vocabulary)
        budget = resolve_budget(self.budget, n)
        if self.fraction is not None:
            cap = int(self.fraction * n * (n - 1))
            budget = cap if budget is None else min(budget, cap)
        if self.ppg is None:
            out = select_pairs(cand, cand.scores, budget)  # ranked by -distance/radius
        else:  # ranked by -PPG error
            out = select_pairs(cand, self.score(detections, cand, vocabulary), budget, threshold=self.threshold,
                               lower_is_better=True)
        # both ranking keys are <= 0: exp maps them into (0, 1] in the same order (see the class docstring)
        return PairSet(out.pairs, torch.exp(out.scores).clamp_(max=1.0)).to(detections.device)

    # files ------------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"budget": self.budget, "fraction": self.fraction, "threshold": self.threshold, "k": self.k,
                "max_per_object": self.max_per_object, "radius_scale": self.radius_scale,
                "chunk_size": self.chunk_size}

    def to_dict(self, half: bool = False) -> dict[str, Any]:
        return {"format": PROPOSER_FORMAT, "config": self.config(), "prior": self.prior.to_dict(),
                "ppg": None if self.ppg is None else self.ppg.to_dict(half=half)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Any = "<memory>") -> PairProposer:
        try:
            ppg = None if data.get("ppg") is None else PPG.from_dict(data["ppg"], path)
            return cls(ppg, PairPrior.from_dict(data["prior"], path), **data["config"])
        except (KeyError, TypeError) as exc:
            raise SggInputError(f"not a valid {PROPOSER_FORMAT} file ({exc})", path=path) from None

    def save(self, path: str | os.PathLike, half: bool = True) -> Path:
        """One file with the PPG (fp16 by default), the prior and the options; loads with weights_only."""
        return _save(self.to_dict(half=half), path)

    @classmethod
    def load(cls, path: str | os.PathLike, **overrides: Any) -> PairProposer:
        """A proposer file, or any PPG file (STAR release, sgg-ppg/1, checkpoint) with the STAR prior."""
        data = _load(path)
        if isinstance(data, dict) and data.get("format") == PROPOSER_FORMAT:
            prop = cls.from_dict(data, path)
        else:
            prop = cls(PPG._from_file_data(data, path))
        for k, v in overrides.items():
            if not hasattr(prop, k):
                raise SggInputError(f"unknown PairProposer option {k!r}", path=path)
            setattr(prop, k, v)
        return prop

    def __repr__(self) -> str:
        src = "none" if self.ppg is None else (self.ppg.source or "PPG")
        return f"PairProposer(ppg={src!r}, budget={self.budget}, prior={self.prior!r})"
