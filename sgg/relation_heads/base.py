"""What every relation head shares: vocabulary checks, pair proposal and :meth:`RelationHead.predict`.

A head maps ``(boxes (N,5), labels (N,) or None, pairs (M,2), features (N,D) or None)`` to
``{"rel_logits": (M, P) (column 0 background), "obj_logits": (N, C) or None}``. ``predict`` wraps that
for a :class:`~sgg.structures.SceneGraph`: it maps class names to the head's vocabulary, proposes pairs
when the graph has none, and returns ``graph.replace(predicate_scores=softmax(rel_logits − τ·log prior), …)`` (τ = ``logit_adjust``;
with ``adjust_background=False`` τ re-splits the foreground only, :func:`adjusted_scores`,
0 by default; the prior is the training predicate frequency, stored with the weights); an
SGCls head (``mode='sgcls'``) also replaces the object classes with its own.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn

from sgg.datasets.relation_pairs import DEFAULTS, neighbour_pairs
from sgg.errors import SggInputError
from sgg.structures import Detections, PairSet, SceneGraph, Vocabulary

MODES = ("predcls", "sgcls")


def scatter_mean(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of the rows of ``src`` sharing an ``index`` value → (size, D); empty groups give 0."""
    out = src.new_zeros(size, src.shape[1]).index_add_(0, index, src)
    cnt = torch.bincount(index, minlength=size).clamp_min(1).to(src.dtype)
    return out / cnt[:, None]


def shared_object_mean(m: torch.Tensor, pairs: torch.Tensor, num_objects: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each relation r = (s, o): the mean of ``m`` over the *other* relations touching s, and over those
    touching o (0 when there are none). Two ``index_add`` per call, memory O(N + M): no relation–relation
    edge list or matrix (a relation touching both s and o, e.g. (o, s), is counted in both means)."""
    s, o = pairs[:, 0], pairs[:, 1]
    total = m.new_zeros(num_objects, m.shape[1]).index_add_(0, s, m).index_add_(0, o, m)
    deg = (torch.bincount(s, minlength=num_objects) + torch.bincount(o, minlength=num_objects)).to(m.dtype)
    return ((total[s] - m) / (deg[s] - 1).clamp_min(1)[:, None], (total[o] - m) / (deg[o] - 1).clamp_min(1)[:, None])


def shared_object_max(m: torch.Tensor, pairs: torch.Tensor, num_objects: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each relation r = (s, o): the element-wise max of ``m`` over the relations touching s, and over
    those touching o (r itself included). Detects "some relation of my subject has property X" where the
    mean dilutes it among many neighbours (a car with one car alongside among 15 candidates). One
    ``scatter_reduce`` per call, memory O(N + M)."""
    s, o = pairs[:, 0], pairs[:, 1]
    d = m.shape[1]
    idx = torch.cat([s, o])[:, None].expand(-1, d)
    best = m.new_full((num_objects, d), float("-inf")).scatter_reduce(0, idx, torch.cat([m, m]), "amax")
    return best[s], best[o]


def common_neighbours(pairs: torch.Tensor, num_objects: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triangles of the pair graph: for each relation r = (i, j), every third object k linked (in either
    order) to both i and j. Returns ``(eid (M,), r (T,), e_ik (T,), e_jk (T,))``: ``eid`` maps each relation
    to its undirected edge {i, j} (U edges), ``e_ik`` / ``e_jk`` are the undirected edges i–k and j–k of
    triangle t. The neighbours of the lower-degree end are scanned and the other end looked up by binary
    search: work Σ_r min(deg i, deg j) (a car park's lot, linked to every car in it, is found as the
    common neighbour of two cars without scanning its hundreds of edges), no (M × M) or (N × N) matrix."""
    n, dev = num_objects, pairs.device
    empty = torch.zeros(0, dtype=torch.long, device=dev)
    if len(pairs) == 0:
        return empty, empty, empty, empty
    s, o = pairs[:, 0], pairs[:, 1]
    lo, hi = torch.minimum(s, o), torch.maximum(s, o)
    uniq, eid = torch.unique(lo * n + hi, return_inverse=True)
    ua, ub = uniq // n, uniq % n
    e = torch.arange(len(uniq), device=dev)
    src, dst, edge = torch.cat([ua, ub]), torch.cat([ub, ua]), torch.cat([e, e])
    adj_key, order = torch.sort(src * n + dst)
    adj_dst, adj_edge = dst[order], edge[order]
    deg = torch.bincount(src, minlength=n)
    ptr = torch.cumsum(deg, 0) - deg
    pivot_is_s = deg[s] <= deg[o]
    p, q = torch.where(pivot_is_s, s, o), torch.where(pivot_is_s, o, s)
    cnt = deg[p]
    r = torch.repeat_interleave(torch.arange(len(pairs), device=dev), cnt)
    if len(r) == 0:
        return eid, empty, empty, empty
    offs = torch.arange(len(r), device=dev) - torch.repeat_interleave(torch.cumsum(cnt, 0) - cnt, cnt)
    at = ptr[p][r] + offs
    k, e_pk = adj_dst[at], adj_edge[at]
    want = q[r] * n + k
    pos = torch.searchsorted(adj_key, want).clamp_max(len(adj_key) - 1)
    ok = (adj_key[pos] == want) & (k != q[r])
    r, e_pk, e_qk = r[ok], e_pk[ok], adj_edge[pos[ok]]
    sub = pivot_is_s[r]
    return eid, r, torch.where(sub, e_pk, e_qk), torch.where(sub, e_qk, e_pk)


def adjusted_scores(logits: torch.Tensor, log_prior: torch.Tensor, tau: float, background: bool = True,
                    count_norm: float = 0.0) -> torch.Tensor:
    """Predicate probabilities (M, P) after post-hoc logit adjustment (Menon et al. 2021).

    ``background=True``: softmax(z − τ·log prior) over all columns. ``background=False``: only the split among
    the foreground predicates is adjusted, the background probability stays the unadjusted one:
    [p_bg, (1 − p_bg) · softmax(z_fg − τ·log prior_fg)]. SGG recall ranks pairs by their best foreground score;
    adjusting the background column too (its prior is the largest) lifts every candidate pair's foreground
    mass at once, and on the synthetic crops the top 50 slots filled with confident rare-predicate guesses on
    background pairs (README "Relations").

    ``count_norm`` β > 0 then divides each foreground column by max(1, c_p)^β, c_p = Σ_r s_rp the graph's
    expected number of pairs with predicate p (:func:`count_normalised`)."""
    z = logits.float()
    if not tau:
        s = torch.softmax(z, 1)
    elif background:
        s = torch.softmax(z - tau * log_prior.to(z.device).float(), 1)
    else:
        p = torch.softmax(z, 1)
        fg = torch.softmax(z[:, 1:] - tau * log_prior.to(z.device).float()[1:], 1) * (1 - p[:, :1])
        s = torch.cat([p[:, :1], fg], 1)
    return count_normalised(s, count_norm)


def count_normalised(scores: torch.Tensor, beta: float) -> torch.Tensor:
    """Scores (M, P) ranked for mean per-predicate recall: foreground column p divided by max(1, c_p)^β, where
    c_p = Σ_r scores[r, p] is the expected number of the graph's pairs with predicate p (background kept).

    Mean recall averages, per predicate, hits / n_p over the images holding p; a slot given to pair r for
    predicate p gains about P(r is p) / n_p, and c_p estimates n_p from the graph itself (β = 1: that
    ratio; β < 1 a partial step, chosen on validation). A predicate expected less than once is not
    boosted (an image holding p holds it at least once). With β > 0 the scores rank triplets within one
    graph; they are no longer probabilities (rows need not sum to 1) and depend on the graph's other pairs."""
    if not beta or scores.shape[0] == 0:
        return scores
    fg = scores[:, 1:]
    return torch.cat([scores[:, :1], fg / fg.sum(0, keepdim=True).clamp_min(1.0) ** float(beta)], 1)


class RelationHead(nn.Module):
    """Base class; subclasses set ``kind`` and implement ``forward``."""

    kind = "base"

    def __init__(self, vocabulary: Vocabulary | dict | None = None, mode: str = "predcls",
                 pair_rule: dict[str, float] | None = None, logit_adjust: float = 0.0, adjust_background: bool = True,
                 count_norm: float = 0.0):
        super().__init__()
        if mode not in MODES:
            raise SggInputError(f"relation head: mode must be one of {MODES}, got {mode!r}")
        if isinstance(vocabulary, dict):
            vocabulary = Vocabulary.from_dict(vocabulary)
        self.vocabulary = vocabulary or Vocabulary.star()
        self.mode = mode
        self.pair_rule = {**DEFAULTS, **(pair_rule or {})}
        self.adjust_background = bool(adjust_background)  # False: τ re-splits the foreground only (adjusted_scores)
        self.config: dict[str, Any] = {"mode": mode, "pair_rule": dict(self.pair_rule),
                                       "adjust_background": self.adjust_background}
        # validated, and kept in ``config`` (saved with the weights) even when set after loading
        self.logit_adjust = logit_adjust
        self.count_norm = count_norm
        # log of the training predicate frequencies (background included, over training pairs); predict()
        # subtracts logit_adjust × this from the logits (post-hoc logit adjustment, Menon et al. 2021)
        self.register_buffer("log_prior", torch.zeros(self.vocabulary.num_predicates))

    @property
    def logit_adjust(self) -> float:
        """τ of the post-hoc logit adjustment: ``rel_logits − τ·log_prior`` before the softmax (0: none)."""
        return self.config["logit_adjust"]

    @logit_adjust.setter
    def logit_adjust(self, tau: float) -> None:
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau):
            raise SggInputError(f"relation head: logit_adjust must be a finite number, got {tau!r}")
        self.config["logit_adjust"] = float(tau)

    @property
    def count_norm(self) -> float:
        """β of :func:`count_normalised`: each graph's triplets ranked for mean recall (0: probabilities)."""
        return self.config["count_norm"]

    @count_norm.setter
    def count_norm(self, beta: float) -> None:
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta >= 0:
            raise SggInputError(f"relation head: count_norm must be >= 0 (a number), got {beta!r}")
        self.config["count_norm"] = float(beta)

    @property
    def num_classes(self) -> int:
        return self.vocabulary.num_classes

    @property
    def num_predicates(self) -> int:
        return self.vocabulary.num_predicates

    def loss(self, out: dict[str, torch.Tensor], targets: torch.Tensor, obj_labels: torch.Tensor | None = None,
             class_weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Soft cross-entropy against multi-hot targets (a pair's predicates share the mass), plus the object
        classification loss in SGCls."""
        t = targets / targets.sum(1, keepdim=True).clamp_min(1e-6)
        logp = torch.log_softmax(out["rel_logits"].float(), 1)
        per = -(t * logp)
        if class_weight is not None:
            per = per * class_weight[None, :]
        losses = {"rel": per.sum(1).mean() if len(t) else logp.sum() * 0}
        if self.mode == "sgcls" and out.get("obj_logits") is not None and obj_labels is not None:
            losses["obj"] = nn.functional.cross_entropy(out["obj_logits"].float(), obj_labels)
        return losses

    # ------------------------------------------------------------------------------------------------
    def _labels_in_vocabulary(self, graph: SceneGraph) -> torch.Tensor:
        labels = graph.detections.labels
        if graph.vocabulary.objects == self.vocabulary.objects:
            return labels
        src = graph.vocabulary.objects
        unknown = sorted({src[i] for i in labels.unique().tolist() if src[i] not in self.vocabulary.objects})
        if unknown:
            raise SggInputError(f"classes unknown to the relation head's checkpoint: {unknown} "
                                f"(it knows {len(self.vocabulary.objects)} classes: {', '.join(self.vocabulary.objects[:8])}, …)",
                                path=graph.image_path)
        table = torch.tensor([self.vocabulary.objects.index(n) if n in self.vocabulary.objects else -1 for n in src])
        return table.to(labels.device)[labels]

    def propose_pairs(self, graph: SceneGraph, proposer: Any = None) -> PairSet:
        """Candidate pairs for a graph without any: ``proposer(detections, vocabulary)`` (e.g. a
        ``sgg.pairs.PairProposer``) if given, else the head's own spatial rule (see ``candidates``) — the
        pairs it was trained on. On the synthetic test scenes the rule keeps 97–100 % of the annotated pairs
        where ``PairProposer.default()`` (STAR's PPG, 10,000 pairs) keeps 32–46 %: those scenes hold
        2,800–4,500 objects and ~6,000 relations each."""
        if proposer is not None:
            return proposer(graph.detections, graph.vocabulary)
        return PairSet(neighbour_pairs(graph.detections.boxes.tensor, **self.pair_rule))

    @torch.no_grad()
    def predict(self, graph: SceneGraph, pairs: PairSet | None = None, proposer: Any = None) -> SceneGraph:
        """Predicate probabilities (M, P) for ``pairs``, else the graph's pairs, else proposed ones."""
        labels = self._labels_in_vocabulary(graph)
        pairs = pairs if pairs is not None else graph.pairs
        if len(pairs) == 0:
            pairs = self.propose_pairs(graph, proposer)
        det = graph.detections
        if len(pairs) == 0:
            warnings.warn(f"{graph.image_path or 'scene'}: {len(det)} object(s), no pair to classify; "
                          "the scene graph has no relations", stacklevel=2)
        was = self.training
        self.eval()
        dev = next((p.device for p in self.parameters()), torch.device("cpu"))
        boxes = det.boxes.tensor.to(dev)
        feats = det.features.to(dev).float() if det.features is not None else None
        out = self(boxes, None if self.mode == "sgcls" else labels.to(dev), pairs.pairs.to(dev), feats)
        self.train(was)
        scores = adjusted_scores(out["rel_logits"], self.log_prior, self.logit_adjust,
                                 self.adjust_background, self.count_norm).to(det.boxes.device)
        if self.mode == "sgcls" and out.get("obj_logits") is not None:
            prob = torch.softmax(out["obj_logits"].float(), 1).to(det.boxes.device)
            sc, lab = prob.max(1)
            det = Detections(det.boxes, lab, sc, det.features, det.levels,
                             class_scores=torch.cat([prob.new_zeros(len(prob), 1), prob], 1))
        elif graph.vocabulary.objects != self.vocabulary.objects:
            det = Detections(det.boxes, labels, det.scores, det.features, det.levels)
        return graph.replace(detections=det, pairs=pairs.to(det.boxes.device), predicate_scores=scores,
                             predicate_labels=None, vocabulary=self.vocabulary)
