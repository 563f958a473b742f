"""Learned relation heads: the pair-MLP baseline and RPCM (sparse context-aware messaging + prototypes).

Both read the same inputs (``features``): per object the box geometry, a class embedding (PredCls/SGDet;
none in SGCls) and, when given, visual features (N, D); per pair the relative geometry and the footprint
raster of subject and object over their union.

RPCM (DESIGN §5.4) runs ``steps`` rounds of message passing over a sparse graph, mean aggregation and
residual updates (LayerNorm; ``skip``: zero-initialised, so training starts from the context-free pair
encoding), mean and — with ``pool='meanmax'`` — element-wise max aggregation:

* objects ← neighbouring objects (the candidate pairs, both ways), relations where they are subject, and
  relations where they are object;
* relations ← their subject and object, and the relations sharing their subject / their object. The
  relation–relation mean is taken without any relation–relation edge list: with ``S[v]`` the sum of the
  messages of all relations touching object ``v`` and ``deg[v]`` their number, relation ``r = (s, o)``
  receives ``(S[s] − m_r) / (deg[s] − 1)`` and ``(S[o] − m_r) / (deg[o] − 1)`` — two ``index_add`` per step,
  memory O(N + M) (STAR's dense version is O(M²); ``benchmarks/bench_relation.py`` compares them).
  With ``triangles``, relations also hear the third objects linked to both their ends (``_Step``).

The predicate classifier is PE-Net's prototype classifier: cosine similarity between the projected relation
state and one learned prototype per predicate (background included), times a learned temperature; training
adds a separation term (prototypes pushed apart) and a compactness triplet term (a relation closer to its
own prototype than to any other by a margin). In SGCls the final object states are also classified.
``classifier='mlp'`` uses the pair MLP's classifier on the refined state instead (so RPCM differs from the
MLP baseline by its context alone) and ``'proto+mlp'`` adds both logits: the cosine logits are bounded by
the temperature (≈ ±9 after training here), and post-hoc logit adjustment (τ · log prior spans ~13 nats on
the synthetic scenes) swamps them — ``README`` "Relations" measures the three.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .base import RelationHead, common_neighbours, scatter_mean, shared_object_max, shared_object_mean
from .features import OBJECT_DIM, PAIR_DIM, footprint_raster, object_geometry, pair_geometry


def mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.ReLU(inplace=True), nn.Linear(h, o))


class _Encoders(RelationHead):
    """Object and pair encoders shared by the learned heads."""

    def __init__(self, vocabulary=None, mode: str = "predcls", hidden: int = 128, class_dim: int = 64,
                 raster: int = 8, visual_dim: int = 0, pair_rule: dict | None = None, logit_adjust: float = 0.0,
                 freq_bias: bool = False, adjust_background: bool = True, count_norm: float = 0.0):
        super().__init__(vocabulary, mode, pair_rule, logit_adjust, adjust_background, count_norm)
        self.hidden, self.raster, self.visual_dim = int(hidden), int(raster), int(visual_dim)
        freq_bias = bool(freq_bias) and mode == "predcls"
        self.config.update(hidden=self.hidden, class_dim=int(class_dim), raster=self.raster, visual_dim=self.visual_dim,
                           freq_bias=freq_bias)
        # MOTIFS-style frequency bias: a learned (subject class, object class) → predicate logit table,
        # initialised by RelationModule from the training counts (log frequencies)
        self.freq_bias = nn.Embedding(self.num_classes ** 2, self.num_predicates) if freq_bias else None
        if self.freq_bias is not None:
            nn.init.zeros_(self.freq_bias.weight)
        obj_in = OBJECT_DIM
        if mode == "predcls":
            self.class_embed = nn.Embedding(self.num_classes, class_dim)
            obj_in += class_dim
        if visual_dim:
            self.visual = nn.Sequential(nn.Linear(visual_dim, hidden), nn.ReLU(inplace=True))
            obj_in += hidden
        self.obj_enc = nn.Sequential(mlp(obj_in, hidden, hidden), nn.LayerNorm(hidden))
        self.pair_enc = nn.Sequential(mlp(PAIR_DIM + 2 * raster * raster, hidden, hidden), nn.ReLU(inplace=True))
        self.rel_init = nn.Sequential(mlp(3 * hidden, hidden, hidden), nn.LayerNorm(hidden))
        self.obj_cls = nn.Linear(hidden, self.num_classes) if mode == "sgcls" else None

    def encode(self, boxes: torch.Tensor, labels: torch.Tensor | None, pairs: torch.Tensor,
               features: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [object_geometry(boxes)]
        if self.mode == "predcls":
            if labels is None:
                raise ValueError("a PredCls relation head needs object classes")
            parts.append(self.class_embed(labels))
        if self.visual_dim:
            if features is None or features.shape[1] != self.visual_dim:
                raise ValueError(f"this relation head needs ({len(boxes)}, {self.visual_dim}) visual features")
            parts.append(self.visual(features.float()))
        obj = self.obj_enc(torch.cat(parts, 1))
        geo = torch.cat([pair_geometry(boxes, pairs), footprint_raster(boxes, pairs, self.raster).flatten(1)], 1)
        rel = self.rel_init(torch.cat([obj[pairs[:, 0]], obj[pairs[:, 1]], self.pair_enc(geo)], 1))
        return obj, rel

    def bias(self, labels: torch.Tensor | None, pairs: torch.Tensor) -> torch.Tensor | float:
        if self.freq_bias is None or labels is None:
            return 0.0
        return self.freq_bias(labels[pairs[:, 0]] * self.num_classes + labels[pairs[:, 1]])


class PairMLP(_Encoders):
    """Baseline: each pair classified from its own subject, object and pair encodings (no context)."""

    kind = "mlp"

    def __init__(self, vocabulary=None, mode: str = "predcls", hidden: int = 128, class_dim: int = 64,
                 raster: int = 8, visual_dim: int = 0, pair_rule: dict | None = None, logit_adjust: float = 0.0,
                 freq_bias: bool = False, adjust_background: bool = True, count_norm: float = 0.0, **_: object):
        super().__init__(vocabulary, mode, hidden, class_dim, raster, visual_dim, pair_rule, logit_adjust, freq_bias,
                         adjust_background, count_norm)
        self.classifier = mlp(hidden, hidden, self.num_predicates)

    def forward(self, boxes, labels, pairs, features=None):
        obj, rel = self.encode(boxes, labels, pairs, features)
        return {"rel_logits": self.classifier(rel) + self.bias(labels, pairs), "obj_logits": self.obj_cls(obj) if self.obj_cls is not None else None}


class _Step(nn.Module):
    """One round of messages; ``context`` is the relation–relation mean (sparse by default; the benchmark
    swaps in a dense one). ``pool='meanmax'`` adds the element-wise max of the relation messages touching
    each end (:func:`shared_object_max`), and ``skip`` zero-initialises the last layer of both updates, so a
    fresh step is the identity (up to LayerNorm rounding) and a fresh RPCM classifies the same pair encoding
    as the pair MLP: the context starts as a no-op and is learned on top. ``triangles`` adds the messages of
    the third objects linked to *both* ends (:func:`common_neighbours`): for r = (i, j) and each such k,
    ``A e_ik ⊙ B e_jk`` (e: the undirected edge states, mean of both directions), mean and max over k. The
    other messages pool i's and j's relations separately, so "i and j are in the *same* lot / at the same
    dock" cannot be told from "each is in some lot"; the product of the two edges to one k can."""

    context = staticmethod(shared_object_mean)
    CHUNK = 65536  # triangles per chunk at inference

    def __init__(self, h: int, pool: str = "mean", skip: bool = False, triangles: bool = False):
        super().__init__()
        self.pool = pool
        self.ta, self.tb = (nn.Linear(h, h), nn.Linear(h, h)) if triangles else (None, None)
        self.nb, self.rs, self.ro, self.rr = (nn.Linear(h, h) for _ in range(4))
        self.rx = nn.Linear(h, h) if pool == "meanmax" else None
        self.obj_up = mlp(4 * h, h, h)
        self.rel_up = mlp((5 + 2 * (self.rx is not None) + 2 * triangles) * h, h, h)
        self.obj_norm, self.rel_norm = nn.LayerNorm(h), nn.LayerNorm(h)
        if skip:
            for up in (self.obj_up, self.rel_up):
                nn.init.zeros_(up[-1].weight)
                nn.init.zeros_(up[-1].bias)

    def forward(self, obj: torch.Tensor, rel: torch.Tensor, pairs: torch.Tensor,
                tri: tuple[torch.Tensor, ...] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        n = obj.shape[0]
        s, o = pairs[:, 0], pairs[:, 1]
        src, dst = torch.cat([s, o]), torch.cat([o, s])
        nb = scatter_mean(self.nb(obj)[src], dst, n)
        from_sub, from_obj = scatter_mean(self.rs(rel), s, n), scatter_mean(self.ro(rel), o, n)
        obj = self.obj_norm(obj + self.obj_up(torch.cat([obj, nb, from_sub, from_obj], 1)))
        parts = [rel, obj[s], obj[o], *self.context(self.rr(rel), pairs, n)]
        if self.rx is not None:
            parts += shared_object_max(self.rx(rel), pairs, n)
        if self.ta is not None:
            parts += self.triangle_messages(rel, tri)
        rel = self.rel_norm(rel + self.rel_up(torch.cat(parts, 1)))
        return obj, rel

    def triangle_messages(self, rel: torch.Tensor, tri: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        """Mean and max over the common neighbours k of each relation of ``ta(e_ik) ⊙ tb(e_jk)`` (0 if none)."""
        eid, r, e_ik, e_jk = tri
        m, d = len(rel), rel.shape[1]
        edge = scatter_mean(rel, eid, int(eid.max()) + 1 if len(eid) else 0)
        a, b = self.ta(edge), self.tb(edge)
        if torch.is_grad_enabled():
            msg = a[e_ik] * b[e_jk]
            best = rel.new_zeros(m, d).scatter_reduce(0, r[:, None].expand(-1, d), msg, "amax", include_self=False)
            return [scatter_mean(msg, r, m), best]
        # inference: triangles in chunks (a whole 2,048² scene has ~12 per relation; (T, d) at once is ~0.6 GB)
        total, best = rel.new_zeros(m, d), rel.new_full((m, d), float("-inf"))
        for c in range(0, len(r), self.CHUNK):
            rc = r[c:c + self.CHUNK]
            msg = a[e_ik[c:c + self.CHUNK]] * b[e_jk[c:c + self.CHUNK]]
            total.index_add_(0, rc, msg)
            best.scatter_reduce_(0, rc[:, None].expand(-1, d), msg, "amax")
        cnt = torch.bincount(r, minlength=m).clamp_min(1).to(rel.dtype)[:, None]
        return [total / cnt, torch.where(torch.isinf(best), torch.zeros_like(best), best)]


class RPCM(_Encoders):
    """Relation prediction with context-aware messaging (module docstring)."""

    kind = "rpcm"

    def __init__(self, vocabulary=None, mode: str = "predcls", hidden: int = 128, class_dim: int = 64,
                 raster: int = 8, visual_dim: int = 0, steps: int = 3, proto_dim: int = 128,
                 sep_weight: float = 0.1, compact_weight: float = 0.5, margin: float = 0.2,
                 pair_rule: dict | None = None, logit_adjust: float = 0.0, freq_bias: bool = False,
                 pool: str = "mean", skip: bool = False, classifier: str = "proto", triangles: bool = False,
                 adjust_background: bool = True, count_norm: float = 0.0, **_: object):
        super().__init__(vocabulary, mode, hidden, class_dim, raster, visual_dim, pair_rule, logit_adjust, freq_bias,
                         adjust_background, count_norm)
        if pool not in ("mean", "meanmax"):
            raise ValueError(f"RPCM: pool must be 'mean' or 'meanmax', got {pool!r}")
        if classifier not in ("proto", "mlp", "proto+mlp"):
            raise ValueError(f"RPCM: classifier must be 'proto', 'mlp' or 'proto+mlp', got {classifier!r}")
        self.config.update(steps=int(steps), proto_dim=int(proto_dim), sep_weight=float(sep_weight),
                           compact_weight=float(compact_weight), margin=float(margin), pool=pool, skip=bool(skip),
                           classifier=classifier, triangles=bool(triangles))
        self.steps = nn.ModuleList(_Step(hidden, pool, bool(skip), bool(triangles)) for _ in range(int(steps)))
        self.triangles = bool(triangles)
        self.proto = "proto" in classifier
        if self.proto:
            self.project = nn.Sequential(mlp(hidden, hidden, proto_dim))
            self.prototypes = nn.Parameter(torch.randn(self.num_predicates, proto_dim) / math.sqrt(proto_dim))
            self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        # the pair MLP's own classifier on the context-refined state (unbounded logits)
        self.classifier = mlp(hidden, hidden, self.num_predicates) if "mlp" in classifier else None

    def forward(self, boxes, labels, pairs, features=None):
        obj, rel = self.encode(boxes, labels, pairs, features)
        tri = common_neighbours(pairs, len(boxes)) if self.triangles else None
        for step in self.steps:
            obj, rel = step(obj, rel, pairs, tri)
        logits, cos = self.bias(labels, pairs), None
        if self.proto:
            emb = F.normalize(self.project(rel), dim=1)
            cos = emb @ F.normalize(self.prototypes, dim=1).t()
            logits = logits + self.log_scale.exp().clamp(1.0, 100.0) * cos
        if self.classifier is not None:
            logits = logits + self.classifier(rel)
        return {"rel_logits": logits, "cos": cos,
                "obj_logits": self.obj_cls(obj) if self.obj_cls is not None else None}

    def loss(self, out, targets, obj_labels=None, class_weight=None):
        losses = super().loss(out, targets, obj_labels, class_weight)
        if not self.proto:
            return losses
        proto = F.normalize(self.prototypes, dim=1)
        sim = proto @ proto.t()
        off = ~torch.eye(len(proto), dtype=torch.bool, device=sim.device)
        losses["proto_sep"] = self.config["sep_weight"] * F.relu(sim[off]).pow(2).mean()
        cos = out["cos"]
        if len(cos):
            pos = targets > 0
            own = torch.where(pos, cos, cos.new_full((), -2.0)).max(1).values  # best of the pair's own
            other = torch.where(pos, cos.new_full((), -2.0), cos).max(1).values
            losses["proto_compact"] = self.config["compact_weight"] * F.relu(other - own + self.config["margin"]).mean()
        return losses


HEADS = {"rpcm": RPCM, "mlp": PairMLP}
