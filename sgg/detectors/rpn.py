"""Oriented region proposal network (Oriented R-CNN, DESIGN.md §5.2).

Axis-aligned anchors on every FPN level regress oriented proposals with the midpoint-offset coding.
Anchors are assigned by axis-aligned IoU against the envelopes of the ground-truth boxes (positive ≥ 0.7,
negative < 0.3, plus every anchor that ties for a ground truth's best IoU, so that 9 × 4 px cars get
anchors too); 256 anchors per image are sampled for BCE objectness and smooth-L1 regression. Proposals are
the top-scoring anchors per level, decoded and de-duplicated by NMS on their envelopes per level (as the
paper does), then cut to ``post_nms_top_n``. Everything is vectorised over anchors.

A target dict with ``hbb`` true (horizontal-box labels) supervises only what such a label fixes: the
objectness and the envelope deltas ``(dx, dy, dw, dh)``; the two midpoint offsets (the angle) get no loss,
unless the boxes are oriented pseudo-boxes with an ``angle_weight`` per box (their confidence weighs them;
an ``rpn_angle_weight``, when given, replaces it here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms

from sgg.ops import box_to_envelope

from .box_coder import MidpointOffsetCoder


def make_anchors(sizes: list[float], ratios: list[float], strides: list[int], shapes: list[tuple[int, int]],
                 device: torch.device) -> list[torch.Tensor]:
    """Per level (H·W·A, 4) xyxy anchors, ordered (y, x, anchor) as the head's outputs are flattened."""
    out = []
    r = torch.tensor(ratios, dtype=torch.float32, device=device)
    for size, stride, (h, w) in zip(sizes, strides, shapes):
        hr = torch.sqrt(r)
        ws, hs = size / hr, size * hr  # ratio = h / w
        base = torch.stack([-ws, -hs, ws, hs], 1) / 2  # (A,4)
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * stride
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * stride
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        shifts = torch.stack([xx, yy, xx, yy], -1).reshape(-1, 1, 4)
        out.append((shifts + base[None]).reshape(-1, 4))
    return out


def _pair_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of xyxy boxes a[i] and b[i]."""
    lt, rb = torch.maximum(a[:, :2], b[:, :2]), torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a + area_b - inter).clamp(min=1e-9)


def sample_labels(labels: torch.Tensor, num: int, pos_fraction: float, generator: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random balanced sample of indices with label ≥ 1 (positive) and == 0 (negative); −1 is ignored."""
    pos = torch.nonzero(labels >= 1).flatten()
    neg = torch.nonzero(labels == 0).flatten()
    n_pos = min(int(num * pos_fraction), pos.numel())
    n_neg = min(num - n_pos, neg.numel())
    pos = pos[torch.randperm(pos.numel(), generator=generator, device="cpu")[:n_pos].to(pos.device)]
    neg = neg[torch.randperm(neg.numel(), generator=generator, device="cpu")[:n_neg].to(neg.device)]
    return pos, neg


def adapt_ratios(state_dict: dict[str, torch.Tensor], old: list[float], new: list[float], prefix: str = "rpn."
                 ) -> dict[str, torch.Tensor]:
    """A state dict whose RPN head has ``old`` anchor ratios, rewritten for ``new`` ratios: each new ratio's
    objectness and delta channels start as a copy of the nearest old ratio's (in log scale). Lets a
    detector fine-tune with more anchor shapes (e.g. 1:8 for runways and bridges) from existing weights."""
    lo, ln = torch.tensor(old, dtype=torch.float64).log(), torch.tensor(new, dtype=torch.float64).log()
    src = (ln[:, None] - lo[None]).abs().argmin(1)
    out = dict(state_dict)
    for name, k in (("cls", 1), ("reg", 6)):
        for part in ("weight", "bias"):
            key = f"{prefix}{name}.{part}"
            if key in out:
                t = out[key]
                t = t.reshape(len(old), k, *t.shape[1:])[src]
                out[key] = t.reshape(len(new) * k, *t.shape[2:])
    return out


class OrientedRPN(nn.Module):
    """RPN head shared over levels + anchor assignment, losses and proposal selection."""

    def __init__(self, in_channels: int, strides=(4, 8, 16, 32, 64), anchor_sizes=(32, 64, 128, 256, 512),
                 ratios=(0.5, 1.0, 2.0), pos_iou: float = 0.7, neg_iou: float = 0.3, batch_size: int = 256,
                 pos_fraction: float = 0.5, pre_nms_top_n: tuple[int, int] = (2000, 1000),
                 post_nms_top_n: tuple[int, int] = (2000, 1000), nms_iou: float = 0.8, min_size: float = 1.0,
                 snap_angle: float = 0.12):
        super().__init__()
        self.strides, self.sizes, self.ratios = list(strides), list(anchor_sizes), list(ratios)
        a = len(ratios)
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.cls = nn.Conv2d(in_channels, a, 1)
        self.reg = nn.Conv2d(in_channels, a * 6, 1)
        for m in (self.conv, self.cls, self.reg):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)
        self.coder = MidpointOffsetCoder(snap_angle=snap_angle)
        self.pos_iou, self.neg_iou = pos_iou, neg_iou
        self.batch_size, self.pos_fraction = batch_size, pos_fraction
        self.pre_nms_top_n, self.post_nms_top_n = pre_nms_top_n, post_nms_top_n
        self.nms_iou, self.min_size = nms_iou, min_size
        self.generator: torch.Generator | None = None

    def head(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per level objectness (B, H·W·A) and deltas (B, H·W·A, 6)."""
        logits, deltas = [], []
        for f in feats:
            t = F.relu(self.conv(f))
            b = f.shape[0]
            logits.append(self.cls(t).permute(0, 2, 3, 1).reshape(b, -1))
            deltas.append(self.reg(t).permute(0, 2, 3, 1).reshape(b, -1, 6))
        return logits, deltas

    def iou_bound(self, gt_env: torch.Tensor) -> torch.Tensor:
        """(K, L) upper bound of the IoU of a box with any anchor of each level: min(a, g) / max(a, g) areas."""
        g_area = ((gt_env[:, 2] - gt_env[:, 0]) * (gt_env[:, 3] - gt_env[:, 1])).clamp(min=1e-6)
        a_area = torch.tensor(self.sizes, device=gt_env.device, dtype=torch.float32) ** 2
        return torch.minimum(a_area[None], g_area[:, None]) / torch.maximum(a_area[None], g_area[:, None])

    def candidate_pairs(self, shapes: list[tuple[int, int]], gt_env: torch.Tensor, use: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """(anchor index, gt index) pairs for the (box, level) entries of ``use`` (K, L), restricted to the
        grid cells whose anchors can touch the box's envelope — no dense anchors × boxes matrix. Not
        ``sgg.ops.spatial_pairs``: anchors lie on each level's regular grid, so the cells are computed
        directly (no sort of the ~10^5 anchors per step)."""
        dev = gt_env.device
        ratios = torch.tensor(self.ratios, device=dev)
        a = len(self.ratios)
        pairs_a, pairs_g, offset = [], [], 0
        for lvl, ((h, w), size, stride) in enumerate(zip(shapes, self.sizes, self.strides)):
            g = torch.nonzero(use[:, lvl]).flatten()
            if g.numel():
                half = 0.5 * size / torch.sqrt(ratios).min()  # the widest anchor's half-side (ratio = h/w)
                halfy = 0.5 * size * torch.sqrt(ratios).max()
                e = gt_env[g]
                j0 = torch.ceil((e[:, 0] - half) / stride - 0.5).clamp(0, w - 1).long()
                j1 = torch.floor((e[:, 2] + half) / stride - 0.5).clamp(0, w - 1).long()
                i0 = torch.ceil((e[:, 1] - halfy) / stride - 0.5).clamp(0, h - 1).long()
                i1 = torch.floor((e[:, 3] + halfy) / stride - 0.5).clamp(0, h - 1).long()
                nw, nh = (j1 - j0 + 1).clamp(min=0), (i1 - i0 + 1).clamp(min=0)
                cnt = nw * nh
                rep = torch.repeat_interleave(torch.arange(g.numel(), device=dev), cnt)
                local = torch.arange(int(cnt.sum()), device=dev) - torch.repeat_interleave(cnt.cumsum(0) - cnt, cnt)
                ii = i0[rep] + local // nw[rep]
                jj = j0[rep] + local % nw[rep]
                cell = (ii * w + jj)[:, None] * a + torch.arange(a, device=dev)[None]
                pairs_a.append((cell + offset).reshape(-1))
                pairs_g.append(g[rep].repeat_interleave(a))
            offset += h * w * a
        if not pairs_a:
            e = torch.zeros(0, dtype=torch.long, device=dev)
            return e, e
        return torch.cat(pairs_a), torch.cat(pairs_g)

    def assign(self, anchors: torch.Tensor, gt: torch.Tensor, shapes: list[tuple[int, int]] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels (1 pos, 0 neg, −1 ignore) and matched ground-truth index per anchor.

        With ``shapes`` (the levels' grid sizes) the IoU is computed only for candidate pairs; without, densely.
        """
        n = anchors.shape[0]
        labels = anchors.new_zeros(n)
        idx = torch.zeros(n, dtype=torch.long, device=anchors.device)
        if gt.numel() == 0:
            return labels, idx
        env = box_to_envelope(gt)
        if shapes is None:
            ia = torch.arange(n, device=anchors.device).repeat_interleave(gt.shape[0])
            ig = torch.arange(gt.shape[0], device=anchors.device).repeat(n)
            iou = _pair_iou(anchors[ia], env[ig])
        else:
            # levels whose IoU bound reaches neg_iou (elsewhere all anchors are negative) or is the box's best;
            # then any other level whose bound exceeds the best IoU found (exact low-quality matches)
            bound = self.iou_bound(env)
            use = (bound >= self.neg_iou) | (bound == bound.max(1, keepdim=True).values)
            ia, ig = self.candidate_pairs(shapes, env, use)
            iou = _pair_iou(anchors[ia], env[ig])
            gt_best = anchors.new_zeros(gt.shape[0]).scatter_reduce(0, ig, iou, "amax", include_self=True)
            more = ~use & (bound > gt_best[:, None])
            if bool(more.any()):
                ia2, ig2 = self.candidate_pairs(shapes, env, more)
                ia, ig = torch.cat([ia, ia2]), torch.cat([ig, ig2])
                iou = torch.cat([iou, _pair_iou(anchors[ia2], env[ig2])])
        best = anchors.new_zeros(n).scatter_reduce(0, ia, iou, "amax", include_self=True)
        win = (iou == best[ia]) & (iou > 0)
        idx[ia[win]] = ig[win]
        labels[(best >= self.neg_iou) & (best < self.pos_iou)] = -1
        labels[best >= self.pos_iou] = 1
        gt_best = anchors.new_zeros(gt.shape[0]).scatter_reduce(0, ig, iou, "amax", include_self=True)
        low = (iou == gt_best[ig]) & (iou > 0)  # every anchor tying for a box's best IoU is positive for it
        labels[ia[low]] = 1
        # an anchor tying for several boxes' best takes the one it overlaps most
        low_best = anchors.new_zeros(n).scatter_reduce(0, ia[low], iou[low], "amax", include_self=True)
        take = low & (iou == low_best[ia])
        idx[ia[take]] = ig[take]
        return labels, idx

    def losses(self, anchors: torch.Tensor, logits: torch.Tensor, deltas: torch.Tensor,
               targets: list[dict[str, torch.Tensor]], shapes: list[tuple[int, int]] | None = None
               ) -> dict[str, torch.Tensor]:
        all_logits, all_lab, pos_d, pos_t, pos_w = [], [], [], [], []
        for b, tgt in enumerate(targets):
            gt = tgt["boxes"].to(anchors)
            labels, idx = self.assign(anchors, gt, shapes)
            pos, neg = sample_labels(labels, self.batch_size, self.pos_fraction, self.generator)
            sel = torch.cat([pos, neg])
            all_logits.append(logits[b, sel])
            all_lab.append(labels[sel])
            if pos.numel():
                pos_d.append(deltas[b, pos])
                pos_t.append(self.coder.encode(anchors[pos], gt[idx[pos]]))
                w = deltas.new_ones(pos.numel(), 6)
                if bool(tgt.get("hbb", False)):
                    # no angle information in a horizontal label; an oriented pseudo-box's by its confidence
                    aw = tgt.get("rpn_angle_weight", tgt.get("angle_weight"))
                    w[:, 4:] = 0.0 if aw is None else aw.to(w)[idx[pos], None]
                pos_w.append(w)
        lg, lb = torch.cat(all_logits), torch.cat(all_lab)
        n = max(lb.numel(), 1)
        loss_cls = F.binary_cross_entropy_with_logits(lg, lb, reduction="sum") / n
        if pos_d:
            loss_reg = (F.smooth_l1_loss(torch.cat(pos_d), torch.cat(pos_t), beta=1 / 9, reduction="none")
                        * torch.cat(pos_w)).sum() / n
        else:
            loss_reg = deltas.sum() * 0.0
        return {"loss_rpn_cls": loss_cls, "loss_rpn_reg": loss_reg}

    @torch.no_grad()
    def proposals(self, anchors: list[torch.Tensor], logits: list[torch.Tensor], deltas: list[torch.Tensor],
                  image_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        """Per image (P, 5) oriented proposals (highest objectness first)."""
        pre = self.pre_nms_top_n[0 if self.training else 1]
        post = self.post_nms_top_n[0 if self.training else 1]
        b = logits[0].shape[0]
        sel_s, sel_b, sel_l = [], [], []
        for lvl, (an, lg, dl) in enumerate(zip(anchors, logits, deltas)):
            k = min(pre, lg.shape[1])
            s, i = lg.topk(k, dim=1)  # (B,k)
            boxes = self.coder.decode(an[i.reshape(-1)], dl.gather(1, i[..., None].expand(-1, -1, 6)).reshape(-1, 6))
            sel_s.append(s)
            sel_b.append(boxes.reshape(b, k, 5))
            sel_l.append(torch.full_like(i, lvl))
        scores, boxes, levels = torch.cat(sel_s, 1), torch.cat(sel_b, 1), torch.cat(sel_l, 1)
        out = []
        for j in range(b):
            bx, sc, lv = boxes[j], scores[j], levels[j]
            h, w = image_sizes[j]
            ok = (bx[:, 2] >= self.min_size) & (bx[:, 3] >= self.min_size) & torch.isfinite(bx).all(1)
            ok &= (bx[:, 0] >= 0) & (bx[:, 0] <= w) & (bx[:, 1] >= 0) & (bx[:, 1] <= h)
            bx, sc, lv = bx[ok], sc[ok], lv[ok]
            keep = batched_nms(box_to_envelope(bx), sc, lv, self.nms_iou)
            keep = keep[sc[keep].argsort(descending=True)[:post]]
            out.append(bx[keep])
        return out

    def forward(self, feats: list[torch.Tensor], image_sizes: list[tuple[int, int]],
                targets: list[dict[str, torch.Tensor]] | None = None):
        logits, deltas = self.head(feats)
        shapes = [tuple(f.shape[-2:]) for f in feats]
        anchors = make_anchors(self.sizes, self.ratios, self.strides, shapes, feats[0].device)
        props = self.proposals(anchors, [l.detach() for l in logits], [d.detach() for d in deltas], image_sizes)
        losses = {}
        if targets is not None:
            losses = self.losses(torch.cat(anchors), torch.cat(logits, 1), torch.cat(deltas, 1), targets, shapes)
        return props, losses
