"""Oriented RoI head (DESIGN.md §5.2): rotated RoIAlign 7×7 + shared 2-FC + class / per-class box branches.

Training: the ground-truth boxes join the proposals, proposals are matched by exact rotated IoU (≥ 0.5
positive), 512 RoIs per image with at most 25 % positives are sampled, cross-entropy over C+1 classes
(index C is background) and smooth-L1 on the matched class's le90 deltas. Inference: softmax scores,
per-class decoding, score threshold, class-wise rotated NMS, top detections. With ``box_passes`` > 1 the box
head runs again on its own output (iterative box regression, Gidaris & Komodakis 2015): each RoI is pooled
afresh at the box of its most probable class, and the last pass gives the scores and boxes. Proposals come
from horizontal anchors and are often turned against the object; a box the head has already turned toward
it pools the object along its axes, which the head scores and regresses better (docs/detector_experiments.md).

Horizontal-box supervision (a target dict with ``hbb`` true: real images labelled with axis-aligned boxes):
proposals are matched by the IoU of their envelopes with the labels, and the regression loss is smooth-L1
on the predicted box's *envelope* against the label (centre offsets and log sizes in the proposal's envelope
frame) — the label says nothing about the angle, so there is no angle term. Coarse classes: with
``merge_groups`` (lists of class indices, e.g. STAR's ``ship`` and ``boat`` for a real ``boat`` label) the
cross-entropy of such a positive is −log of the summed probability of its group, so the split between the
group's classes is left to the oriented data; the envelope loss uses the group member the head rates highest.
When the horizontal labels come as oriented pseudo-boxes with an ``angle_weight`` per box
(:mod:`sgg.datasets.pseudo_obb`: same envelopes, angle from the image), the positives also get the full
oriented smooth-L1 against their pseudo-box, weighed by its confidence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou

from sgg.ops import box_to_envelope, rotated_iou, rotated_nms, rotated_roi_align

from .box_coder import DeltaXYWHACoder
from .rpn import sample_labels


def _xywh(env: torch.Tensor) -> torch.Tensor:
    """xyxy → (cx, cy, w, h) (N, 4)."""
    return torch.stack([(env[:, 0] + env[:, 2]) / 2, (env[:, 1] + env[:, 3]) / 2,
                        env[:, 2] - env[:, 0], env[:, 3] - env[:, 1]], 1)


class OrientedRoIHead(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, strides=(4, 8, 16, 32), representation_size: int = 256,
                 pool_size: int = 7, finest_scale: float = 56.0, batch_size: int = 512, pos_fraction: float = 0.25,
                 pos_iou: float = 0.5, score_threshold: float = 0.05, nms_iou: float = 0.1,
                 max_detections: int = 1000, pre_nms_top_n: int = 4000,
                 merge_groups: list[list[int]] | None = None, hbb_weight: float = 1.0, box_passes: int = 1):
        super().__init__()
        if int(box_passes) < 1:
            raise ValueError(f"box_passes must be at least 1, got {box_passes}")
        self.box_passes = int(box_passes)
        # group id per class column (background its own group); classes outside any group are their own group
        gid = torch.arange(num_classes + 1)
        for g in merge_groups or []:
            members = torch.as_tensor(list(g), dtype=torch.long)
            if len(members) and (members.min() < 0 or members.max() >= num_classes):
                raise ValueError(f"merge group {list(g)} names a class outside 0..{num_classes - 1}")
            gid[members] = int(members.min())
        self.register_buffer("group_id", gid, persistent=False)
        self.hbb_weight = float(hbb_weight)
        self.num_classes = num_classes
        self.representation_size = representation_size
        self.strides = list(strides)
        self.pool_size, self.finest_scale = pool_size, finest_scale
        self.fc1 = nn.Linear(in_channels * pool_size * pool_size, representation_size)
        self.fc2 = nn.Linear(representation_size, representation_size)
        self.cls = nn.Linear(representation_size, num_classes + 1)
        self.reg = nn.Linear(representation_size, num_classes * 5)
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.normal_(self.reg.weight, std=0.001)
        nn.init.zeros_(self.cls.bias)
        nn.init.zeros_(self.reg.bias)
        self.coder = DeltaXYWHACoder()
        self.batch_size, self.pos_fraction, self.pos_iou = batch_size, pos_fraction, pos_iou
        self.score_threshold, self.nms_iou = score_threshold, nms_iou
        self.max_detections, self.pre_nms_top_n = max_detections, pre_nms_top_n
        self.generator: torch.Generator | None = None

    # features ---------------------------------------------------------------------------------
    def map_levels(self, boxes: torch.Tensor) -> torch.Tensor:
        """FPN level index per box by scale (mmdet rule: < 112 px → P2, < 224 → P3, …)."""
        scale = torch.sqrt((boxes[:, 2] * boxes[:, 3]).clamp(min=1e-6))
        lvl = torch.floor(torch.log2(scale / self.finest_scale + 1e-6))
        return lvl.clamp(0, len(self.strides) - 1).long()

    def pool(self, feats: list[torch.Tensor], boxes: torch.Tensor, batch_idx: torch.Tensor) -> torch.Tensor:
        """(K, C, 7, 7) rotated RoIAlign features, each box from the level chosen by its scale."""
        c = feats[0].shape[1]
        out = feats[0].new_zeros(boxes.shape[0], c, self.pool_size, self.pool_size)
        levels = self.map_levels(boxes)
        for lvl, stride in enumerate(self.strides):
            idx = torch.nonzero(levels == lvl).flatten()
            if idx.numel():
                out[idx] = rotated_roi_align(feats[lvl], boxes[idx], batch_idx[idx], self.pool_size,
                                             1.0 / stride, sampling_ratio=2)
        return out

    def box_head(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.fc1(pooled.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.cls(x), self.reg(x).reshape(-1, self.num_classes, 5)

    # training ---------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, proposals: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]):
        """Sampled RoIs, their batch index, class targets (C = background) and regression targets."""
        rois, bidx, labels, reg_t, hbb_t, obb_t, aw_t = [], [], [], [], [], [], []
        for b, (props, tgt) in enumerate(zip(proposals, targets)):
            gt, gl = tgt["boxes"].to(props), tgt["labels"].to(props.device).long()
            hbb = bool(tgt.get("hbb", False))
            aw = tgt.get("angle_weight") if hbb else None
            props = torch.cat([props, gt]) if gt.numel() else props
            if gt.numel():
                iou = box_iou(box_to_envelope(props), box_to_envelope(gt)) if hbb else rotated_iou(props, gt)
                best, idx = iou.to(props.dtype).max(1)
                lab = torch.where(best >= self.pos_iou, gl[idx], torch.full_like(idx, self.num_classes))
            else:
                idx = torch.zeros(props.shape[0], dtype=torch.long, device=props.device)
                lab = torch.full_like(idx, self.num_classes)
            flag = (lab < self.num_classes).float()  # 1 positive, 0 negative for the sampler
            pos, neg = sample_labels(flag, self.batch_size, self.pos_fraction, self.generator)
            sel = torch.cat([pos, neg])
            rois.append(props[sel])
            bidx.append(torch.full((sel.numel(),), b, dtype=torch.long, device=props.device))
            labels.append(lab[sel])
            t, o, w = props.new_zeros(sel.numel(), 5), props.new_zeros(sel.numel(), 5), props.new_zeros(sel.numel())
            if pos.numel():
                # hbb: the label's envelope (cx, cy, w, h) goes in the first four columns; an oriented
                # pseudo-box's deltas in ``o``, its confidence in ``w``
                if hbb:
                    t[: pos.numel(), :4] = _xywh(box_to_envelope(gt[idx[pos]]))
                    if aw is not None:
                        o[: pos.numel()] = self.coder.encode(props[pos], gt[idx[pos]])
                        w[: pos.numel()] = aw.to(props)[idx[pos]]
                else:
                    t[: pos.numel()] = self.coder.encode(props[pos], gt[idx[pos]])
            reg_t.append(t)
            obb_t.append(o)
            aw_t.append(w)
            hbb_t.append(torch.full((sel.numel(),), hbb, dtype=torch.bool, device=props.device))
        return (torch.cat(rois), torch.cat(bidx), torch.cat(labels), torch.cat(reg_t), torch.cat(hbb_t),
                torch.cat(obb_t), torch.cat(aw_t))

    def losses(self, feats, proposals, targets, keep: dict | None = None) -> dict[str, torch.Tensor]:
        """Classification and regression losses; with a ``keep`` dict, the positive RoIs of hbb targets are
        put in it (``rois``, ``bidx``, ``cls``: the class their box is decoded with) for the rotation
        consistency branch (:mod:`sgg.detectors.consistency`)."""
        rois, bidx, labels, reg_t, hbb, obb_t, aw = self.sample(proposals, targets)
        logits, deltas = self.box_head(self.pool(feats, rois, bidx))
        n = max(labels.numel(), 1)
        # background is column C in training; the merged target is every column of the label's group
        # (a one-hot for oriented samples and for classes outside any group)
        gid = self.group_id
        logp = logits.log_softmax(1)
        col = torch.arange(self.num_classes + 1, device=labels.device)
        ok = torch.where(hbb[:, None], gid[None, :] == gid[labels][:, None], col[None, :] == labels[:, None])
        loss_cls = -torch.logsumexp(logp.masked_fill(~ok, float("-inf")), 1).sum() / n if labels.numel() \
            else logits.sum() * 0.0
        pos = torch.nonzero(labels < self.num_classes).flatten()
        loss_reg = deltas.sum() * 0.0
        if pos.numel():
            ob = pos[~hbb[pos]]
            if ob.numel():
                d = deltas[ob, labels[ob]]
                loss_reg = loss_reg + F.smooth_l1_loss(d, reg_t[ob], beta=1.0, reduction="sum") / n
            hb = pos[hbb[pos]]
            if hb.numel():  # envelope of the decoded box vs the horizontal label, in the proposal's frame
                cls = logp[hb, : self.num_classes].detach().masked_fill(~ok[hb, : self.num_classes], float("-inf"))
                best = cls.argmax(1)  # the group member the head rates highest
                pred = self.coder.decode(rois[hb], deltas[hb, best])
                if keep is not None:
                    keep.update(rois=rois[hb], bidx=bidx[hb], cls=best)
                e, g = _xywh(box_to_envelope(pred)), reg_t[hb, :4]
                pe = _xywh(box_to_envelope(rois[hb])).detach()
                d = torch.stack([(e[:, 0] - g[:, 0]) / pe[:, 2], (e[:, 1] - g[:, 1]) / pe[:, 3],
                                 torch.log(e[:, 2].clamp(min=1e-3) / g[:, 2]),
                                 torch.log(e[:, 3].clamp(min=1e-3) / g[:, 3])], 1)
                # scaled like the oriented deltas (stds 0.1, 0.1, 0.2, 0.2)
                d = d / d.new_tensor([0.1, 0.1, 0.2, 0.2])
                loss_reg = loss_reg + self.hbb_weight * F.smooth_l1_loss(
                    d, torch.zeros_like(d), beta=1.0, reduction="sum") / n
                # oriented pseudo-boxes: the full le90 deltas of that class, by each box's confidence
                pseudo = aw[hb] > 0
                po = hb[pseudo]
                if po.numel():
                    dp = deltas[po, best[pseudo]]
                    loss_reg = loss_reg + (F.smooth_l1_loss(dp, obb_t[po], beta=1.0, reduction="none").sum(1)
                                           * aw[po]).sum() / n
        acc = (logits.argmax(1) == labels).float().mean() if labels.numel() else logits.new_zeros(())
        return {"loss_roi_cls": loss_cls, "loss_roi_reg": loss_reg, "roi_acc": acc.detach()}

    # inference --------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, feats, proposals: list[torch.Tensor], with_features: bool = False) -> list[dict[str, torch.Tensor]]:
        """Per image {"boxes" (D,5), "labels" (D,), "scores" (D,)}; ``with_features`` adds "features" (D, R):
        the box head's representation (fc2) of each kept box re-pooled at its final box, and "class_scores"
        (D, C+1): the class probabilities of the proposal it came from, background first."""
        counts = [p.shape[0] for p in proposals]
        rois = torch.cat(proposals)
        bidx = torch.repeat_interleave(torch.arange(len(proposals), device=rois.device),
                                       torch.tensor(counts, device=rois.device))
        if rois.shape[0]:
            all_probs, boxes = self.refine(feats, rois, bidx)
            probs = all_probs[:, : self.num_classes]
        out = []
        start = 0
        for b, n in enumerate(counts):
            if n == 0:
                out.append(self._empty(feats[0].device, with_features, self.representation_size, self.num_classes))
                continue
            s, bx = probs[start:start + n].reshape(-1), boxes[start:start + n].reshape(-1, 5)
            lab = torch.arange(self.num_classes, device=s.device).repeat(n)
            roi = torch.arange(start, start + n, device=s.device).repeat_interleave(self.num_classes)
            start += n
            ok = (s > self.score_threshold) & (bx[:, 2] > 1e-2) & (bx[:, 3] > 1e-2) & torch.isfinite(bx).all(1)
            s, bx, lab, roi = s[ok], bx[ok], lab[ok], roi[ok]
            if s.numel() > self.pre_nms_top_n:
                top = s.topk(self.pre_nms_top_n).indices
                s, bx, lab, roi = s[top], bx[top], lab[top], roi[top]
            keep = rotated_nms(bx, s, self.nms_iou, labels=lab)[: self.max_detections]
            res = {"boxes": bx[keep], "labels": lab[keep], "scores": s[keep]}
            if with_features:
                p = all_probs[roi[keep]]
                res["class_scores"] = torch.cat([p[:, self.num_classes:], p[:, : self.num_classes]], dim=1)
                kb = res["boxes"]
                res["features"] = self.represent(feats, kb, torch.full((kb.shape[0],), b, dtype=torch.long,
                                                                       device=kb.device))
            out.append(res)
        return out

    def refine(self, feats, rois: torch.Tensor, bidx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class probabilities (R, C+1) and per-class boxes (R, C, 5) after ``box_passes`` passes of the box
        head; pass k > 1 pools each RoI at pass k-1's box of its most probable foreground class."""
        logits, deltas = self.box_head(self.pool(feats, rois, bidx))
        boxes = self.coder.decode(rois, deltas)  # (R, C, 5)
        for _ in range(self.box_passes - 1):
            best = logits[:, : self.num_classes].argmax(1)
            rois = boxes[torch.arange(rois.shape[0], device=rois.device), best]
            logits, deltas = self.box_head(self.pool(feats, rois, bidx))
            boxes = self.coder.decode(rois, deltas)
        return logits.softmax(1), boxes

    def represent(self, feats, boxes: torch.Tensor, batch_idx: torch.Tensor) -> torch.Tensor:
        """(K, R) box-head representation (fc2 after ReLU) of boxes pooled from the FPN: the per-object
        visual feature that relation heads read."""
        if boxes.shape[0] == 0:
            return feats[0].new_zeros(0, self.representation_size)
        x = F.relu(self.fc1(self.pool(feats, boxes, batch_idx).flatten(1)))
        return F.relu(self.fc2(x))

    @staticmethod
    def _empty(device, with_features: bool = False, dim: int = 0, num_classes: int = 0) -> dict[str, torch.Tensor]:
        out = {"boxes": torch.zeros(0, 5, device=device), "labels": torch.zeros(0, dtype=torch.long, device=device),
               "scores": torch.zeros(0, device=device)}
        if with_features:
            out["features"] = torch.zeros(0, dim, device=device)
            out["class_scores"] = torch.zeros(0, num_classes + 1, device=device)
        return out


