"""Scene-graph recall metrics with the Scene-Graph-Benchmark (SGB, Tang et al.) protocol.

A ground-truth triplet (subject class, predicate, object class, subject box, object box) is recalled at K
when one of the K best-ranked predicted triplets has the same three labels and both of its boxes reach
IoU ≥ ``iou_threshold`` (rotated IoU for ``box_type='obb'``, IoU of the axis-aligned envelopes for
``'hbb'``). As in SGB, a prediction may recall several ground-truth rows and duplicated ground-truth rows
count separately; images without foreground ground-truth relations are skipped.

* graph constraint (``R@K``): one predicate per predicted pair, its best foreground one; triplets rank by
  predicate score × subject score × object score (stable: ties keep the pair order);
* no graph constraint (``ngR@K``): every (pair, foreground predicate) scored the same way and ranked;
* ``mR@K``: per image and predicate, the fraction of that predicate's rows recalled; averaged over the
  images where the predicate occurs, then over *all* foreground predicates of the vocabulary — a predicate
  absent from the test set counts 0 (as SGB does), so mR is low on small test sets;
* ``zR@K``: recall of the ground-truth rows whose (subject class, object class, predicate) has no training
  instance in ``train_counts``, averaged over images that have such rows (NaN when none does / no counts);
* ``HMR@K`` (STAR) and ``F@K`` (SBG) are both the harmonic mean of R@K and mR@K; ``A@K`` = (R@K + mR@K)/2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from sgg.errors import SggInputError
from sgg.structures import SceneGraph, Vocabulary

MODES = ("predcls", "sgcls", "sgdet")
BOX_TYPES = ("obb", "hbb")


def hbb_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, M) IoU of the axis-aligned envelopes of le90 boxes ``a`` (N,5) and ``b`` (M,5)."""
    from torchvision.ops import box_iou

    from sgg.ops import box_to_envelope

    iou = box_iou(box_to_envelope(a.double()), box_to_envelope(b.double()))
    return torch.nan_to_num(iou, nan=0.0)  # 0/0 of two empty envelopes: no overlap


def zero_shot_mask(train_counts: Any, num_classes: int, num_predicates: int) -> torch.Tensor:
    """(C, C, P) bool: True where (subject class, object class, predicate) never occurs in ``train_counts``.

    ``train_counts`` is (C, C, P) or STAR's (C+1, C+1, P) layout (object index 0 = background, dropped).
    """
    t = torch.as_tensor(np.asarray(train_counts), dtype=torch.float64)
    c, p = num_classes, num_predicates
    if t.shape == (c + 1, c + 1, p):
        t = t[1:, 1:]
    if t.shape != (c, c, p):
        raise SggInputError(f"train_counts: expected shape ({c}, {c}, {p}) or ({c + 1}, {c + 1}, {p}), got {tuple(t.shape)}")
    return t <= 0


def _name(g: SceneGraph) -> str:
    return str(g.image_path or g.metadata.get("scene_id") or g.metadata.get("image_id") or "<scene>")


class SGGEvaluator:
    """Accumulates images with :meth:`add`; :meth:`compute` returns the metrics of the module docstring.

    Args:
        mode: ``predcls`` / ``sgcls`` (predictions keep the ground-truth boxes, so the object count must
            match; PredCls also the classes) or ``sgdet``.
        ks: the K of R@K; STAR reports 1000/1500/2000 for its large scenes.
        train_counts: optional training triplet counts for zero-shot recall (see :func:`zero_shot_mask`).
    """

    def __init__(
        self,
        mode: str = "predcls",
        ks: Sequence[int] = (20, 50, 100),
        iou_threshold: float = 0.5,
        box_type: str = "obb",
        train_counts: Any | None = None,
    ):
        if mode not in MODES:
            raise SggInputError(f"SGGEvaluator: mode must be one of {MODES}, got {mode!r}")
        if box_type not in BOX_TYPES:
            raise SggInputError(f"SGGEvaluator: box_type must be one of {BOX_TYPES}, got {box_type!r}")
        self.ks = tuple(sorted({int(k) for k in ks}))
        if not self.ks or self.ks[0] <= 0:
            raise SggInputError(f"SGGEvaluator: ks must be positive integers, got {ks!r}")
        self.mode, self.box_type, self.iou_threshold = mode, box_type, float(iou_threshold)
        self.train_counts = train_counts
        self.vocabulary: Vocabulary | None = None
        self._zs: torch.Tensor | None = None
        self.reset()

    def reset(self) -> None:
        # per image: first matching rank of each ground-truth row (graph constraint / none), its predicate,
        # and whether it is zero-shot
        self._rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.skipped = 0

    # ------------------------------------------------------------------------------------------------
    def _check(self, gt: SceneGraph, pred: SceneGraph) -> None:
        where = _name(gt)
        if gt.vocabulary != pred.vocabulary:
            raise SggInputError(
                "prediction vocabulary differs from the ground truth's "
                f"({len(pred.vocabulary.objects)} classes/{len(pred.vocabulary.predicates) - 1} predicates vs "
                f"{len(gt.vocabulary.objects)}/{len(gt.vocabulary.predicates) - 1}); map the names first",
                path=where,
            )
        if self.vocabulary is None:
            self.vocabulary = gt.vocabulary
            if self.train_counts is not None:
                self._zs = zero_shot_mask(self.train_counts, gt.vocabulary.num_classes, gt.vocabulary.num_predicates)
        elif gt.vocabulary != self.vocabulary:
            raise SggInputError("vocabulary differs from the earlier images'", path=where)
        if pred.predicate_scores is None:
            raise SggInputError("prediction has no predicate_scores", path=where)
        if self.mode in ("predcls", "sgcls") and len(pred.detections) != len(gt.detections):
            raise SggInputError(
                f"{self.mode} prediction has {len(pred.detections)} objects, the ground truth "
                f"{len(gt.detections)}; {self.mode} keeps the ground-truth boxes",
                path=where,
            )
        if self.mode == "predcls" and not torch.equal(pred.detections.labels.cpu(), gt.detections.labels.cpu()):
            raise SggInputError("predcls prediction changes ground-truth classes", path=where)

    def _iou(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.box_type == "hbb":
            return hbb_iou(a, b)
        from sgg.ops import rotated_iou

        return rotated_iou(a.double(), b.double())

    def add(self, ground_truth: SceneGraph, prediction: SceneGraph) -> None:
        """Score one image: ``prediction.predicate_scores`` (M, P) over ``prediction.pairs``."""
        self._check(ground_truth, prediction)
        gt, pr = ground_truth, prediction
        lab = gt.predicate_labels if gt.predicate_labels is not None else torch.zeros(len(gt.pairs), dtype=torch.long)
        lab = lab.cpu()
        keep = lab > 0
        if not bool(keep.any()):
            self.skipped += 1
            return
        g_pairs, g_pred = gt.pairs.pairs.cpu()[keep], lab[keep]
        g_lab = gt.detections.labels.cpu()
        kmax = self.ks[-1]

        scores = pr.predicate_scores.detach().float().cpu()
        p_pairs = pr.pairs.pairs.cpu()
        osc = pr.detections.scores.detach().float().cpu()
        pair_sc = osc[p_pairs[:, 0]] * osc[p_pairs[:, 1]] if len(p_pairs) else torch.zeros(0)
        fg = scores[:, 1:]
        # graph constraint: best foreground predicate per pair (first index on ties, as np.argmax)
        if len(p_pairs):
            best, arg = fg.max(dim=1)
            order = torch.argsort(best * pair_sc, descending=True, stable=True)[:kmax]
            gc_pairs, gc_pred = p_pairs[order], arg[order] + 1
            # no graph constraint: all (pair, predicate) cells, ranked together (row-major on ties)
            flat = (fg * pair_sc[:, None]).reshape(-1)
            cells = torch.argsort(flat, descending=True, stable=True)[:kmax]
            ng_pairs, ng_pred = p_pairs[cells // fg.shape[1]], cells % fg.shape[1] + 1
        else:
            gc_pairs = ng_pairs = torch.zeros(0, 2, dtype=torch.long)
            gc_pred = ng_pred = torch.zeros(0, dtype=torch.long)

        # IoU between the ground-truth objects and the predicted objects the ranked lists use
        used = torch.unique(torch.cat([gc_pairs.reshape(-1), ng_pairs.reshape(-1)]))
        g_used = torch.unique(g_pairs.reshape(-1))
        iou = torch.zeros(len(gt.detections), len(pr.detections), dtype=torch.float64)
        if len(used):
            iou[g_used[:, None], used[None, :]] = self._iou(gt.detections.boxes.tensor.cpu()[g_used],
                                                            pr.detections.boxes.tensor.cpu()[used])
        box_ok = iou >= self.iou_threshold
        p_lab = pr.detections.labels.cpu()

        def first_hit(pp: torch.Tensor, ppred: torch.Tensor) -> torch.Tensor:
            if len(pp) == 0:
                return torch.full((len(g_pairs),), kmax, dtype=torch.long)
            out = []
            for g0 in range(0, len(g_pairs), 4096):  # bounded (rows × K) matrices
                gp, gpr = g_pairs[g0 : g0 + 4096], g_pred[g0 : g0 + 4096]
                m = gpr[:, None] == ppred[None, :]
                m &= g_lab[gp[:, 0]][:, None] == p_lab[pp[:, 0]][None, :]
                m &= g_lab[gp[:, 1]][:, None] == p_lab[pp[:, 1]][None, :]
                m &= box_ok[gp[:, 0][:, None], pp[:, 0][None, :]]
                m &= box_ok[gp[:, 1][:, None], pp[:, 1][None, :]]
                rank = torch.arange(len(pp)).expand_as(m)
                out.append(torch.where(m, rank, torch.full_like(rank, kmax)).min(dim=1).values)
            return torch.cat(out)

        if self._zs is not None:
            zs = self._zs[g_lab[g_pairs[:, 0]], g_lab[g_pairs[:, 1]], g_pred]
        else:
            zs = torch.zeros(len(g_pairs), dtype=torch.bool)
        self._rows.append((first_hit(gc_pairs, gc_pred), first_hit(ng_pairs, ng_pred), g_pred, zs))

    # ------------------------------------------------------------------------------------------------
    def _recalls(self, k: int, which: int) -> tuple[float, np.ndarray, float]:
        """Mean image recall, per-predicate recall (P-1,) and zero-shot recall at ``k``."""
        p = self.vocabulary.num_predicates
        img_rec, zs_rec = [], []
        pred_sum, pred_n = torch.zeros(p, dtype=torch.float64), torch.zeros(p, dtype=torch.float64)
        for row in self._rows:
            hit, pred, zs = (row[which] < k).double(), row[2], row[3]
            img_rec.append(float(hit.mean()))
            cnt = torch.bincount(pred, minlength=p).double()
            got = torch.bincount(pred, weights=hit, minlength=p)
            present = cnt > 0
            pred_sum[present] += got[present] / cnt[present]
            pred_n += present.double()
            if bool(zs.any()):
                zs_rec.append(float(hit[zs].mean()))
        per_pred = torch.where(pred_n > 0, pred_sum / pred_n.clamp_min(1), torch.zeros_like(pred_sum))[1:]
        return float(np.mean(img_rec)), per_pred.numpy(), float(np.mean(zs_rec)) if zs_rec else math.nan

    def compute(self) -> dict[str, Any]:
        """Metrics keyed ``R@K, mR@K, ngR@K, ngmR@K, zR@K, HMR@K, A@K, F@K`` for every K, plus
        ``per_predicate_R@K`` / ``per_predicate_ngR@K`` ({predicate name: recall}), ``images``, ``skipped``."""
        if not self._rows:
            raise SggInputError("SGGEvaluator: no image with ground-truth relations was added")
        out: dict[str, Any] = {"mode": self.mode, "box_type": self.box_type, "iou_threshold": self.iou_threshold,
                               "images": len(self._rows), "skipped": self.skipped}
        names = self.vocabulary.predicates[1:]
        for k in self.ks:
            r, per, zr = self._recalls(k, 0)
            ngr, ngper, _ = self._recalls(k, 1)
            mr, ngmr = float(per.mean()), float(ngper.mean())
            hm = 2 * r * mr / (r + mr) if r + mr > 0 else 0.0
            out.update({f"R@{k}": r, f"mR@{k}": mr, f"ngR@{k}": ngr, f"ngmR@{k}": ngmr, f"zR@{k}": zr,
                        f"HMR@{k}": hm, f"A@{k}": (r + mr) / 2, f"F@{k}": hm})
            out[f"per_predicate_R@{k}"] = dict(zip(names, per.tolist()))
            out[f"per_predicate_ngR@{k}"] = dict(zip(names, ngper.tolist()))
        return out


def format_sgg_table(result: dict[str, Any]) -> str:
    """Plain-text table of the headline metrics (rows: metric, columns: K)."""
    ks = sorted(int(k.split("@")[1]) for k in result if k.startswith("R@"))
    head = "metric  " + "".join(f"{'@' + str(k):>9}" for k in ks)
    lines = [head]
    for m in ("R", "mR", "ngR", "ngmR", "zR", "HMR", "A", "F"):
        lines.append(f"{m:<8}" + "".join(f"{100 * result[f'{m}@{k}']:>9.2f}" for k in ks))
    return "\n".join(lines)
