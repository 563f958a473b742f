"""Rotated (oriented-box) detection mAP, DOTA-devkit style (DESIGN.md §5.8).

Matching follows the DOTA devkit's ``voc_eval`` exactly: detections of a class are ranked by score over all
images; each is compared with the ground truth of its image (difficult objects included) and takes the one
of highest rotated IoU. If that IoU exceeds ``iou_threshold``: a difficult target makes the detection
neither TP nor FP; otherwise it is a TP if the target is still free, else an FP (a duplicate). Below the
threshold it is an FP. Difficult objects are not counted in the number of positives.

Because each detection's target is its arg-max ground truth whatever was matched before (as in the
devkit), matching is vectorised: a TP is the first-ranked detection of each non-difficult target.

AP: ``use_07_metric=True`` gives VOC07's 11-point interpolation, otherwise the area under the
monotone precision envelope (VOC2010+/"area"). The mean is over classes with at least one non-difficult
ground-truth object (as mmdet/mmrotate do; the DOTA devkit would produce NaN for such a class), and
``class_names`` restricts the evaluated classes.

Real sets with coarser labels (issue #12): ``box_type="hbb"`` compares axis-aligned envelopes (the predicted
footprint's envelope against a horizontal label, by plain IoU), ``merge={"boat": "ship"}`` scores classes
as one (labels of ``boat`` on both sides become ``ship``), and ``class_agnostic=True`` scores every object as
one class ``"object"`` (localisation only). Both are pure relabelling: two detections of one object under
merged classes stay two (one is a false positive) — run class-agnostic NMS first if that is not wanted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from sgg.structures import Detections, SceneGraph


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool = False) -> float:
    """Average precision from a recall/precision curve (VOC07 11-point or area under the envelope)."""
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if use_07_metric:
        ts = np.arange(0.0, 1.1, 0.1)
        # max precision at recall >= t, 0 if never reached
        p = np.where(recall[None, :] >= ts[:, None], precision[None, :], 0.0)
        return float((p.max(axis=1) if recall.size else np.zeros(len(ts))).sum() / 11.0)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _match_image(
    pb: torch.Tensor, gb: torch.Tensor, g_diff: torch.Tensor, iou_threshold: float, hbb: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """For one image and class (preds sorted by score): (target gt index or -1, target-is-difficult)."""
    from torchvision.ops import box_iou

    from sgg.ops import box_to_envelope, rotated_iou

    n = pb.shape[0]
    if gb.shape[0] == 0 or n == 0:
        return torch.full((n,), -1, dtype=torch.long), torch.zeros(n, dtype=torch.bool)
    iou = box_iou(box_to_envelope(pb.double()), box_to_envelope(gb.double())) if hbb else rotated_iou(pb, gb)
    ovmax, jmax = iou.max(dim=1)  # first index on ties, like numpy's argmax
    hit = ovmax > iou_threshold
    target = torch.where(hit, jmax, torch.full_like(jmax, -1))
    return target, hit & g_diff[jmax]


def _class_names(gts: Sequence[SceneGraph], class_names: Sequence[str] | None) -> list[str]:
    if class_names is not None:
        return list(class_names)
    if gts:
        return list(gts[0].vocabulary.objects)
    return []


def rotated_map(
    preds: Sequence[Detections],
    gts: Sequence[SceneGraph],
    iou_threshold: float = 0.5,
    use_07_metric: bool = False,
    class_names: Sequence[str] | None = None,
    *,
    box_type: str = "obb",
    class_agnostic: bool = False,
    merge: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Per-class rotated AP and their mean for predictions ``preds[i]`` on annotations ``gts[i]``.

    Labels index ``class_names`` (default: the first annotation's vocabulary). Returns ``mAP``, and per
    class ``AP``, ``recall`` (at the last detection), ``precision`` (idem), ``num_gts`` (non-difficult),
    ``num_dets``; plus ``classes_evaluated`` (those in the mean), ``iou_threshold`` and ``metric``.
    ``box_type="hbb"``: IoU of axis-aligned envelopes. ``merge``: {class: class it is scored as}.
    ``class_agnostic``: one class ``"object"``.
    """
    if len(preds) != len(gts):
        raise ValueError(f"rotated_map: {len(preds)} predictions for {len(gts)} annotated images")
    if box_type not in ("obb", "hbb"):
        raise ValueError(f"rotated_map: box_type must be 'obb' or 'hbb', not {box_type!r}")
    names = _class_names(gts, class_names)
    if merge or class_agnostic:
        table = _relabel_table(names, merge or {}, class_agnostic)
        preds = [_relabel(p, table) for p in preds]
        gts = [g.replace(detections=_relabel(g.detections, table)) for g in gts]
        if class_agnostic:
            names = ["object"]
    num_classes = len(names)
    # per class: lists of (scores, tp, fp) over images, and the positive count
    scores_c: list[list[torch.Tensor]] = [[] for _ in range(num_classes)]
    tp_c: list[list[torch.Tensor]] = [[] for _ in range(num_classes)]
    fp_c: list[list[torch.Tensor]] = [[] for _ in range(num_classes)]
    npos = np.zeros(num_classes, dtype=np.int64)
    for pred, gt in zip(preds, gts):
        pred = pred.to("cpu")
        gdet = gt.detections.to("cpu")
        g_diff = gt.difficult if gt.difficult is not None else torch.zeros(len(gdet), dtype=torch.bool)
        g_lab, p_lab = gdet.labels, pred.labels
        if len(g_lab):
            counts = torch.bincount(g_lab[~g_diff], minlength=num_classes)[:num_classes]
            npos += counts.numpy()
        present = torch.unique(p_lab) if len(p_lab) else p_lab
        for c in present.tolist():
            if c >= num_classes:
                continue
            psel = (p_lab == c).nonzero().flatten()
            order = torch.argsort(pred.scores[psel], descending=True, stable=True)
            psel = psel[order]
            gsel = (g_lab == c).nonzero().flatten()
            target, ignored = _match_image(
                pred.boxes.tensor[psel], gdet.boxes.tensor[gsel], g_diff[gsel], iou_threshold, box_type == "hbb"
            )
            # a TP is the first-ranked (highest score) detection of each free non-difficult target
            valid = (target >= 0) & ~ignored
            first = torch.zeros_like(valid)
            if bool(valid.any()):
                vi = valid.nonzero().flatten()
                t = target[vi]
                # first occurrence of each target among valid rows (rows are in rank order)
                first_pos = torch.full((len(gsel),), len(psel), dtype=torch.long)
                first_pos.scatter_reduce_(0, t, vi, reduce="amin")
                first[vi] = first_pos[t] == vi
            tp = first
            fp = ~first & ~ignored
            scores_c[c].append(pred.scores[psel])
            tp_c[c].append(tp)
            fp_c[c].append(fp)
    ap, rec_out, prec_out, ndet = {}, {}, {}, {}
    for c, name in enumerate(names):
        if scores_c[c]:
            s = torch.cat(scores_c[c])
            order = torch.argsort(s, descending=True, stable=True)
            tp = torch.cat(tp_c[c])[order].numpy().astype(np.float64)
            fp = torch.cat(fp_c[c])[order].numpy().astype(np.float64)
        else:
            tp = fp = np.zeros(0)
        ndet[name] = int(tp.size)
        if npos[c] == 0:
            continue
        tpc, fpc = np.cumsum(tp), np.cumsum(fp)
        rec = tpc / float(npos[c])
        prec = tpc / np.maximum(tpc + fpc, np.finfo(np.float64).eps)
        ap[name] = voc_ap(rec, prec, use_07_metric)
        rec_out[name] = float(rec[-1]) if rec.size else 0.0
        prec_out[name] = float(prec[-1]) if prec.size else 0.0
    evaluated = [n for c, n in enumerate(names) if npos[c] > 0]
    return {
        "mAP": float(np.mean([ap[n] for n in evaluated])) if evaluated else 0.0,
        "AP": ap,
        "recall": rec_out,
        "precision": prec_out,
        "num_gts": {n: int(npos[c]) for c, n in enumerate(names)},
        "num_dets": ndet,
        "classes_evaluated": evaluated,
        "iou_threshold": float(iou_threshold),
        "metric": "voc07" if use_07_metric else "area",
        "box_type": box_type,
        "class_agnostic": bool(class_agnostic),
        "merge": dict(merge or {}),
    }


def _relabel_table(names: Sequence[str], merge: dict[str, str], agnostic: bool) -> torch.Tensor:
    """Label → new label: 0 for everything (agnostic), or each merged class's target index."""
    if agnostic:
        return torch.zeros(len(names), dtype=torch.long)
    table = torch.arange(len(names))
    for src, dst in merge.items():
        for n in (src, dst):
            if n not in names:
                raise ValueError(f"rotated_map: merge names class {n!r}, not among the evaluated classes")
        table[names.index(src)] = names.index(dst)
    return table


def _relabel(det: Detections, table: torch.Tensor) -> Detections:
    if len(det) == 0:
        return det
    lab = det.labels.cpu()
    ok = lab < len(table)
    new = torch.where(ok, table[lab.clamp(max=len(table) - 1)], lab)
    return Detections(det.boxes, new.to(det.labels.device), det.scores)


def format_table(result: dict[str, Any]) -> str:
    """A plain-text per-class table (classes with ground truth or detections) and the mAP line."""
    rows = [f"{'class':<28} {'gts':>6} {'dets':>7} {'recall':>7} {'AP':>7}"]
    for name, n in result["num_gts"].items():
        d = result["num_dets"].get(name, 0)
        if n == 0 and d == 0:
            continue
        if n == 0:
            rows.append(f"{name:<28} {n:>6} {d:>7} {'-':>7} {'-':>7}")
        else:
            rows.append(f"{name:<28} {n:>6} {d:>7} {result['recall'][name]:>7.4f} {result['AP'][name]:>7.4f}")
    metric = "VOC07 11-point" if result["metric"] == "voc07" else "area (VOC12)"
    rows.append(
        f"mAP@{result['iou_threshold']:.2f} ({metric}) over {len(result['classes_evaluated'])} classes: "
        f"{result['mAP']:.4f}"
    )
    return "\n".join(rows)


__all__ = ["rotated_map", "voc_ap", "format_table"]
