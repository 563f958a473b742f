"""Rotation-consistency self-supervision for horizontal-box (``hbb``) training tiles (issue #12).

A horizontal label fixes a box's envelope, not its angle; "angle 0, box = the label's envelope" satisfies the
envelope loss exactly. The H2RBox / H2RBox-v2 idea adds what the label cannot: a tile and a copy turned by θ
must give boxes turned by θ. Adapted to HOD-Net's two-stage head:

* only the hbb tiles of a batch get the turned view (a second backbone pass on those tiles only), each turned
  by its own θ ~ U(−max_angle, max_angle) about its centre (corners filled with the mean colour, i.e. 0 after
  normalisation);
* the RoI head reads both views through **axis-aligned** RoIs — the envelope of a positive hbb RoI in the
  original view, the envelope of that RoI turned by θ in the turned view. (The head pools rotated RoIs in
  their own frame, so reusing turned rotated RoIs would make the two pooled features identical and the loss
  trivially 0.) The head must read the orientation from the image content;
* the loss compares the turned view's decoded box with the original view's decoded box turned by θ. The
  original side is the target (detached, as H2RBox-v2 does): only the turned view gets gradients, so the
  loss cannot be lowered by moving the target, and the head cannot tell which view is the "original".
  Terms (smooth-L1, scaled like the RoI head's deltas, stds 0.1/0.1/0.2/0.2/0.1): centre offset over the
  turned RoI's size, log w and log h, and the angle difference. The le90 edge swap is handled: when the
  angle difference is nearer a quarter turn than 0 the target's w and h are swapped and the angle is
  compared a quarter turn round, so the same rectangle written two ways costs nothing.

The trivial answer (angle 0 in both views) costs the angle term of θ; a perfectly equivariant head costs 0.

Measured (issue #12, configs/detector/mixed_cpu_stage3_rc.yaml): 300-step continuations of the mixed
weights do not learn it (held-out angle inconsistency stays ~0.5 rad), and on a toy (bars at uniform random
angles) the loss does not fall in 800 steps where the same head learns the true angle by supervision in
~500. A likely reason: with object orientations uniform, the turned tile is distributed like the original,
so at a constant-angle head the expected gradient of the angle term is zero (E[θ | turned content] = 0):
the trivial answer is a stationary point. Off by default (``rc_weight`` 0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sgg.ops import box_to_envelope, rotate_boxes, wrap_le90

from .roi_head import _xywh

_HALF_PI = math.pi / 2
# scales of the loss terms: the RoI head's delta stds (dx, dy, log w, log h, angle)
_STDS = (0.1, 0.1, 0.2, 0.2, 0.1)


def rotate_images(images: torch.Tensor, theta: torch.Tensor, sizes: list[tuple[int, int]] | None = None
                  ) -> torch.Tensor:
    """Images (B,C,H,W) each turned by ``theta`` (B,) about the centre of its ``sizes`` (H_i, W_i) part (the
    whole canvas by default), with the geometry of :func:`rotate_boxes`; bilinear, zeros outside."""
    b, _, hp, wp = images.shape
    if sizes is None:
        sizes = [(hp, wp)] * b
    ctr = images.new_tensor([[w / 2, h / 2] for h, w in sizes])  # (B, 2) x, y
    ys = torch.arange(hp, dtype=images.dtype, device=images.device) + 0.5
    xs = torch.arange(wp, dtype=images.dtype, device=images.device) + 0.5
    py, px = torch.meshgrid(ys, xs, indexing="ij")
    dx = px[None] - ctr[:, 0, None, None]
    dy = py[None] - ctr[:, 1, None, None]
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    qx = ctr[:, 0, None, None] + c * dx + s * dy  # the source point: R(−θ) applied to the output point
    qy = ctr[:, 1, None, None] - s * dx + c * dy
    grid = torch.stack([2 * qx / wp - 1, 2 * qy / hp - 1], -1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def envelope_rois(boxes: torch.Tensor) -> torch.Tensor:
    """(N,5) axis-aligned RoIs (angle 0) covering the boxes' envelopes."""
    return F.pad(_xywh(box_to_envelope(boxes)), (0, 1))


def consistency_terms(pred: torch.Tensor, target: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    """(N,5) scaled differences of ``pred`` against ``target`` boxes (centre over the RoI's w/h, log w, log h,
    angle), with the target written the le90 way nearer to the prediction's angle (the edge swap)."""
    d = wrap_le90(pred[:, 4] - target[:, 4])
    swap = d.abs() > math.pi / 4
    tw = torch.where(swap, target[:, 3], target[:, 2])
    th = torch.where(swap, target[:, 2], target[:, 3])
    da = torch.where(swap, d - torch.sign(d) * _HALF_PI, d)
    t = torch.stack([(pred[:, 0] - target[:, 0]) / rois[:, 2].clamp(min=1.0),
                     (pred[:, 1] - target[:, 1]) / rois[:, 3].clamp(min=1.0),
                     torch.log(pred[:, 2].clamp(min=1e-3) / tw.clamp(min=1e-3)),
                     torch.log(pred[:, 3].clamp(min=1e-3) / th.clamp(min=1e-3)), da], 1)
    return t / t.new_tensor(_STDS)


def consistency_loss(pred_rot: torch.Tensor, pred_orig: torch.Tensor, theta: torch.Tensor, centre: torch.Tensor,
                     rois_rot: torch.Tensor) -> torch.Tensor:
    """Mean over boxes of the smooth-L1 (summed over the 5 terms) between the turned view's boxes and the
    original view's boxes (detached: the target) turned by ``theta`` about ``centre``."""
    if pred_rot.shape[0] == 0:
        return pred_rot.sum() * 0.0
    target = rotate_boxes(pred_orig.detach(), theta, centre)
    t = consistency_terms(pred_rot, target, rois_rot)
    return F.smooth_l1_loss(t, torch.zeros_like(t), beta=1.0, reduction="sum") / pred_rot.shape[0]


def rotation_consistency(model, batch: torch.Tensor, sizes: list[tuple[int, int]], feats: list[torch.Tensor],
                         rois: torch.Tensor, bidx: torch.Tensor, cls: torch.Tensor, *, max_angle: float = math.pi / 4,
                         max_rois: int = 64, generator: torch.Generator | None = None,
                         train_backbone: bool = True) -> torch.Tensor:
    """The consistency loss of a training batch (``HODNet.forward``'s normalised ``batch`` and ``feats``).

    ``rois`` (K,5), ``bidx`` (K,), ``cls`` (K,): the positive RoIs of the hbb tiles and the class each is
    decoded with (the RoI head's choice for the envelope loss). At most ``max_rois`` of them, drawn at random;
    only their tiles are turned and passed through the backbone again. With ``train_backbone`` false the turned
    view's backbone pass runs without gradients: only the RoI head learns from this loss (cheaper, and the
    backbone and RPN keep what the detection losses taught them).
    """
    head = model.roi_head
    if rois.shape[0] == 0:
        return feats[0].sum() * 0.0
    if rois.shape[0] > max_rois:
        pick = torch.randperm(rois.shape[0], generator=generator)[:max_rois].to(rois.device)
        rois, bidx, cls = rois[pick], bidx[pick], cls[pick]
    imgs, sub = torch.unique(bidx, return_inverse=True)
    theta_img = (torch.rand(imgs.numel(), generator=generator) * 2 - 1).to(batch) * max_angle
    centre_img = batch.new_tensor([[sizes[i][1] / 2, sizes[i][0] / 2] for i in imgs.tolist()])
    theta, centre = theta_img[sub], centre_img[sub]
    turned = rotate_images(batch[imgs], theta_img, [sizes[i] for i in imgs.tolist()])
    with torch.set_grad_enabled(train_backbone and torch.is_grad_enabled()):
        feats_r = model.features(turned)[:4]
    env_o = envelope_rois(rois)
    env_r = envelope_rois(rotate_boxes(rois, theta, centre))
    k = torch.arange(rois.shape[0], device=rois.device)
    with torch.no_grad():  # the target side
        _, d_o = head.box_head(head.pool([f.detach() for f in feats[:4]], env_o, bidx))
        pred_o = head.coder.decode(env_o, d_o[k, cls])
    _, d_r = head.box_head(head.pool(feats_r, env_r, sub))
    pred_r = head.coder.decode(env_r, d_r[k, cls])
    return consistency_loss(pred_r, pred_o, theta, centre, env_r)
