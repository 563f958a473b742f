"""Candidate pairs without building all N² of them: spatial neighbours per class pair, plus k nearest.

:class:`PairPrior` holds, per (subject class, object class), whether the pair ever relates (``allowed``,
from training counts: STAR's real triplet counts by default) and how far apart related pairs get:
``radius`` = a high quantile of ``centre distance / max(diag_s, diag_o)`` over training relations (distance
over box size, so it holds at any resolution). :func:`candidate_pairs` asks the shared sub-quadratic ops
for the boxes within each class pair's disc (``sgg.ops.pairs.radius_pairs``, one k-d tree query per partner
class, so a large box's reach only spans the classes it relates to), the boxes whose envelopes meet and
each box's ``k`` nearest (``sgg.ops.spatial_pairs``); then keeps, in each direction, the pairs the class
pair allows within its own radius (or touching, or among the k nearest), and at most
``max_per_object`` per box, the nearest relative to their radius first. Distant relations (lattice towers
in a line, a dam and its lock) keep their own large radius; a car does not inherit it.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from sgg.errors import SggInputError
from sgg.ops import box_to_envelope
from sgg.ops.pairs import radius_pairs, spatial_pairs
from sgg.structures import Detections, PairSet, SceneGraph, Vocabulary, star_triplet_counts

__all__ = ["PairPrior", "UnknownClassWarning", "candidate_pairs", "normalised_distance"]

PRIOR_FORMAT = "sgg-pair-prior/1"
SYNTH_RADIUS = "synth_pair_radius.json"
_BLOCK = 1 << 20
_MAX_CLASS_QUERIES = 128  # _within_reach: one k-d tree query per class present up to this many


class UnknownClassWarning(UserWarning):
    """Objects of classes the pair prior has no statistics for (their pairs are kept, not dropped)."""


def normalised_distance(boxes: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """(M,) centre distance over the larger of the two boxes' diagonals (in the boxes' float dtype)."""
    b = boxes if boxes.is_floating_point() else boxes.double()
    s, o = b[pairs[:, 0]], b[pairs[:, 1]]
    dist = torch.hypot(o[:, 0] - s[:, 0], o[:, 1] - s[:, 1])
    return dist / torch.maximum(torch.hypot(s[:, 2], s[:, 3]), torch.hypot(o[:, 2], o[:, 3]))


class PairPrior:
    """Per class pair: ``allowed`` (C, C) bool and ``radius`` (C, C) (normalised distance, see module doc).

    ``default_radius`` stands for class pairs that are allowed but were never seen with geometry, and for
    classes the prior does not know.
    """

    def __init__(self, classes: Iterable[str], allowed: torch.Tensor, radius: torch.Tensor,
                 default_radius: float = 4.0, source: str = ""):
        self.classes = tuple(classes)
        c = len(self.classes)
        self.allowed = torch.as_tensor(allowed, dtype=torch.bool).reshape(c, c)
        r = torch.as_tensor(radius, dtype=torch.float64).reshape(c, c)
        self.default_radius = float(default_radius)
        self.radius = torch.where(torch.isfinite(r) & (r > 0), r, torch.full_like(r, self.default_radius))
        self.source = source
        self._index = {n: i for i, n in enumerate(self.classes)}

    # construction -----------------------------------------------------------------------------
    @classmethod
    def from_counts(cls, classes: Iterable[str], counts: torch.Tensor, **kw: Any) -> PairPrior:
        """``allowed`` where (C, C) or (C, C, P) counts are > 0; radius default everywhere."""
        cnt = torch.as_tensor(counts)
        if cnt.dim() == 3:
            cnt = cnt.sum(-1)
        c = cnt.shape[0]
        return cls(classes, cnt > 0, torch.full((c, c), float("nan")), **kw)

    @classmethod
    def fit(cls, graphs: Iterable[SceneGraph], quantile: float = 0.98, slack: float = 1.25,
            min_count: int = 5, allowed_from: PairPrior | None = None, source: str = "") -> PairPrior:
        """Learn both tables from annotated scenes: ``radius`` = ``slack`` × the ``quantile`` of normalised
        distances of each class pair seen ≥ ``min_count`` times (else the quantile over all relations);
        ``allowed`` = seen at least once, or ``allowed_from``'s mask (e.g. STAR's real counts) when given."""
        vocab, rows = None, []
        for g in graphs:
            vocab = vocab or g.vocabulary
            if tuple(g.vocabulary.objects) != tuple(vocab.objects):
                raise SggInputError("PairPrior.fit: scenes use different vocabularies")
            p = g.related_pairs()
            if len(p):
                lab = g.detections.labels
                rows.append(torch.stack([lab[p[:, 0]].double(), lab[p[:, 1]].double(),
                                         normalised_distance(g.detections.boxes.tensor.double(), p)], 1))
        if vocab is None or not rows:
            raise SggInputError("PairPrior.fit: no annotated relations to learn from")
        data = torch.cat(rows)
        c = vocab.num_classes
        key = (data[:, 0] * c + data[:, 1]).long()
        counts = torch.bincount(key, minlength=c * c).reshape(c, c)
        radius = torch.full((c * c,), float("nan"), dtype=torch.float64)
        for k in torch.unique(key).tolist():  # one quantile per class pair seen (≤ C² small groups)
            d = data[key == k, 2]
            if d.numel() >= min_count:
                radius[k] = slack * torch.quantile(d, quantile)
        default = slack * float(torch.quantile(data[:, 2], quantile))
        allowed = counts > 0
        if allowed_from is not None:
            allowed = allowed_from.align(vocab.objects).allowed_for(vocab.objects)
        return cls(vocab.objects, allowed, radius.reshape(c, c), default, source)

    @classmethod
    def star(cls) -> PairPrior:
        """STAR's real class-pair mask (its training triplet counts) with radii learned from ``sgg synth``
        training scenes (``sgg/data/ppg/synth_pair_radius.json``) where available."""
        voc = Vocabulary.star()
        cnt = torch.tensor(star_triplet_counts())[1:, 1:, 1:]
        prior = cls.from_counts(voc.objects, cnt, source="STAR training triplet counts")
        ref = resources.files("sgg.data").joinpath("ppg", SYNTH_RADIUS)
        if ref.is_file():
            learned = cls.from_dict(json.loads(ref.read_text()))
            prior = cls(voc.objects, prior.allowed, learned.align(voc.objects).radius, learned.default_radius,
                        "STAR training triplet counts (mask); " + learned.source + " (radii)")
        return prior

    def align(self, classes: Iterable[str]) -> PairPrior:
        """This prior re-indexed to ``classes`` (unknown ones: allowed with anything, default radius)."""
        classes = tuple(classes)
        if classes == self.classes:
            return self
        idx = torch.tensor([self._index.get(n, -1) for n in classes])
        known = idx >= 0
        c = len(classes)
        allowed = torch.ones(c, c, dtype=torch.bool)
        radius = torch.full((c, c), self.default_radius, dtype=torch.float64)
        both = known[:, None] & known[None, :]
        ii, jj = idx.clamp_min(0)[:, None].expand(c, c), idx.clamp_min(0)[None, :].expand(c, c)
        allowed = torch.where(both, self.allowed[ii, jj], allowed)
        radius = torch.where(both, self.radius[ii, jj], radius)
        return PairPrior(classes, allowed, radius, self.default_radius, self.source)

    def allowed_for(self, classes: Iterable[str]) -> torch.Tensor:
        return self.align(classes).allowed

    # files ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": PRIOR_FORMAT, "classes": list(self.classes), "allowed": self.allowed.int().tolist(),
                "radius": [[round(float(v), 4) for v in row] for row in self.radius],
                "default_radius": self.default_radius, "source": self.source}

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Any = "<memory>") -> PairPrior:
        try:
            return cls(data["classes"], torch.tensor(data["allowed"]).bool(), torch.tensor(data["radius"]),
                       float(data["default_radius"]), str(data.get("source", "")))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise SggInputError(f"not a valid {PRIOR_FORMAT} table ({exc})", path=path) from None

    def save(self, path: str | os.PathLike) -> Path:
        from sgg.io.atomic import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict()) + "\n")
        return Path(path)

    def __repr__(self) -> str:
        return f"PairPrior({len(self.classes)} classes, {int(self.allowed.sum())} allowed class pairs)"


def _class_index(labels: torch.Tensor, vocabulary: Vocabulary | None, prior: PairPrior) -> torch.Tensor:
    """Prior index of each object's class (-1 unknown), warning once about unknown classes."""
    names = vocabulary.objects if vocabulary is not None else prior.classes
    table = torch.tensor([prior._index.get(n, -1) for n in names] + [-1])
    lab = labels.long().clamp(0, len(names))  # labels beyond the vocabulary: unknown
    lab = torch.where(labels.long() >= len(names), torch.full_like(lab, len(names)), lab)
    idx = table[lab]
    if bool((idx < 0).any()):
        bad = sorted({names[i] if i < len(names) else f"#{i}" for i in labels[idx < 0].tolist()})
        warnings.warn(f"pair prior has no statistics for classes {bad[:8]}: their pairs are kept with the default "
                      f"radius ({prior.default_radius:g} × box diagonal)", UnknownClassWarning, stacklevel=3)
    return idx


def candidate_pairs(detections: Detections, prior: PairPrior | None = None, *, vocabulary: Vocabulary | None = None,
                    k: int = 8, max_per_object: int | None = 32, radius_scale: float = 1.0) -> PairSet:
    """Ordered candidate pairs of ``detections`` (``scores`` = −distance/radius, higher = nearer).

    Args:
        prior: class-pair mask and radii (default :meth:`PairPrior.star`); ``vocabulary`` names the labels
            (default: the prior's classes).
        k: nearest neighbours kept per object whatever their distance (still subject to the mask).
        max_per_object: cap on the pairs an object keeps as subject and as object (nearest relative to
            their radius first; a pair survives when either end keeps it); None for no cap.
        radius_scale: multiplies every radius (recall/size trade-off).
    """
    n = len(detections)
    if n < 2:
        return PairSet(torch.zeros(0, 2, dtype=torch.long), torch.zeros(0))
    prior = prior if prior is not None else PairPrior.star()
    boxes = detections.boxes.tensor.detach().cpu().double()
    cls = _class_index(detections.labels.cpu(), vocabulary, prior)
    c = len(prior.classes)
    # unknown classes (index c) relate to everything at the default radius
    allowed = torch.ones(c + 1, c + 1, dtype=torch.bool)
    allowed[:c, :c] = prior.allowed
    radius = torch.full((c + 1, c + 1), prior.default_radius, dtype=torch.float64)
    radius[:c, :c] = prior.radius
    radius = torch.where(allowed, radius * radius_scale, torch.zeros_like(radius))
    ci = torch.where(cls < 0, torch.full_like(cls, c), cls)
    diag = torch.hypot(boxes[:, 2], boxes[:, 3])
    env = box_to_envelope(boxes)
    boxes32, radius32 = boxes.float(), radius.float().clamp_min(1e-12)

    def keep_allowed(und: torch.Tensor, exempt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both directions of unordered pairs, kept where the class pair relates and lies within its
        radius (or is ``exempt``: touching or k-nearest); with distance / radius. The normalised distance
        is symmetric, so it is computed once per unordered pair (float32 is ample for a ≤ 1 test)."""
        d = normalised_distance(boxes32, und)
        c0, c1 = ci[und[:, 0]], ci[und[:, 1]]
        out_p, out_r = [], []
        for p, cs, co in ((und, c0, c1), (und.flip(1), c1, c0)):
            ratio = d / radius32[cs, co]
            keep = allowed[cs, co] & ((ratio <= 1) | exempt)
            out_p.append(p[keep])
            out_r.append(ratio[keep])
        return torch.cat(out_p), torch.cat(out_r)

    parts = [keep_allowed(far, torch.zeros(far.shape[0], dtype=torch.bool))
             for far in _within_reach(boxes[:, :2], diag, ci, torch.maximum(radius, radius.T))]
    touch = spatial_pairs(env)  # envelopes that meet: exempt from the radius test
    parts.append(keep_allowed(touch, torch.ones(touch.shape[0], dtype=torch.bool)))
    if k > 0:  # each box's k nearest (centres as point envelopes), exempt from the radius test
        near = spatial_pairs(boxes[:, :2].repeat(1, 2), k=k)
        parts.append(keep_allowed(near, torch.ones(near.shape[0], dtype=torch.bool)))
    both = torch.cat([p for p, _ in parts]) if parts else torch.zeros(0, 2, dtype=torch.long)
    ratio = torch.cat([r for _, r in parts]) if parts else torch.zeros(0)
    key, inv = torch.unique(both[:, 0] * n + both[:, 1], return_inverse=True)  # touching/k-nearest repeat pairs
    ratio = torch.zeros(key.numel(), dtype=ratio.dtype).scatter_(0, inv, ratio)
    both = torch.stack([key // n, key % n], 1)
    if max_per_object is not None and both.shape[0]:
        both, ratio = _cap(both, ratio, n, int(max_per_object))
    return PairSet(both, -ratio)  # sorted by (subject, object)


def _within_reach(centres: torch.Tensor, diag: torch.Tensor, cls: torch.Tensor, reach: torch.Tensor,
                  chunk: int = _BLOCK) -> Iterator[torch.Tensor]:
    """Unordered pairs (i < j) whose centres lie within ``reach[c_i, c_j] · max(diag_i, diag_j)`` (a symmetric
    (C, C) table of normalised distances, 0 = never), each once, in blocks of about ``chunk``.

    One k-d tree query per partner class (``sgg.ops.pairs.radius_pairs``): every box looks for boxes of
    class c within its class pair's reach times its own diagonal, and a pair is kept from the end with the
    larger diagonal only, whose disc is the one that counts. Searching each class pair's own disc (rather than
    every box's widest one) keeps a large box's reach from pulling in classes it never relates to. A small
    relative and absolute slack keeps every pair that the float32 radius test accepts. With more than
    ``_MAX_CLASS_QUERIES`` classes present, one query instead, each box with its widest reach."""
    n = centres.shape[0]
    slack = 1e-6 * (float(centres.abs().max()) + float(diag.max()))
    present = torch.unique(cls)
    if present.numel() > _MAX_CLASS_QUERIES:  # a query per class would cost O(N · classes)
        yield radius_pairs(centres, reach.amax(1)[cls] * diag * (1 + 1e-5) + slack)
        return
    order = torch.empty(n, dtype=torch.long)
    order[torch.argsort(-diag, stable=True)] = torch.arange(n)  # larger diagonal first, then lower index
    out, size = [], 0
    for c in present.tolist():
        members = (cls == c).nonzero().flatten()
        r = reach[cls, c] * diag
        q = (r > 0).nonzero().flatten()
        if q.numel() == 0:
            continue
        hit = radius_pairs(centres[q], r[q] * (1 + 1e-5) + slack, centres[members], sort=False)
        i, j = q[hit[:, 0]], members[hit[:, 1]]
        mine = order[i] < order[j]
        i, j = i[mine], j[mine]
        out.append(torch.stack([torch.minimum(i, j), torch.maximum(i, j)], 1))
        size += i.numel()
        if size >= chunk:
            yield torch.cat(out)
            out, size = [], 0
    if out:
        yield torch.cat(out)


def _rank_within(group: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Rank (0-based) of each row among rows of the same ``group`` (>= 0) by ascending float32 ``value``;
    ties keep the rows' order (pairs come sorted by (subject, object), so ties go to the lower partner
    index). One stable sort of int64 keys (group, order-preserving bits of the value)."""
    bits = value.float().contiguous().view(torch.int32).long()
    bits = torch.where(bits < 0, -(bits & 0x7FFF_FFFF), bits)  # negative floats below positive ones
    order = torch.sort(group.long() * (1 << 32) + bits, stable=True).indices
    g = group[order]
    start = torch.ones_like(g, dtype=torch.bool)
    start[1:] = g[1:] != g[:-1]
    first = torch.cummax(torch.where(start, torch.arange(g.numel()), torch.zeros_like(g)), 0).values
    rank = torch.empty_like(order)
    rank[order] = torch.arange(g.numel()) - first
    return rank


def _cap(pairs: torch.Tensor, ratio: torch.Tensor, n: int, cap: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs (sorted by (subject, object)) that rank < ``cap`` for their subject or for their object."""
    keep = (_rank_within(pairs[:, 0], ratio) < cap) | (_rank_within(pairs[:, 1], ratio) < cap)
    return pairs[keep], ratio[keep]
