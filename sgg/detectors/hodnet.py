"""HOD-Net's per-image detector: backbone + FPN (P2–P6), oriented RPN, oriented RoI head (DESIGN.md §5.2).

torchvision-style API. ``model(images, targets)`` in train mode returns a dict of losses;
``model(images)`` in eval mode returns ``list[Detections]`` in the input images' pixel coordinates.
``images``: a float tensor (B,3,H,W) in [0, 1] or a list of (3,H,W) tensors of any sizes (padded here);
``targets``: list of ``{"boxes": (K,5) le90, "labels": (K,) 0-based}`` (K may be 0), optionally with
``"hbb": True`` for horizontal-box labels (envelope supervision, no angle; see the RPN and RoI head).
The constructor takes plain keyword arguments; ``model.config`` returns them, for checkpoints.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from sgg.errors import SggInputError
from sgg.structures import Detections, Vocabulary

from .backbones import BACKBONES, BackboneFPN
from .consistency import rotation_consistency
from .roi_head import OrientedRoIHead
from .rpn import OrientedRPN

DEFAULT_CONFIG: dict[str, Any] = {
    "num_classes": 48,
    "backbone": "efficientnet_lite0",
    "pretrained": True,
    "weights_path": None,
    "fpn_channels": 128,
    "freeze_bn": True,
    "frozen_stages": 2,
    "anchor_sizes": [32, 64, 128, 256, 512],
    "anchor_ratios": [0.5, 1.0, 2.0],
    "rpn_pre_nms_top_n": [2000, 1000],
    "rpn_post_nms_top_n": [2000, 1000],
    "rpn_nms_iou": 0.8,
    "rpn_batch_size": 256,
    "representation_size": 256,
    "roi_batch_size": 512,
    "roi_pos_fraction": 0.25,
    "score_threshold": 0.05,
    "nms_iou": 0.1,
    "max_detections": 1000,
    # inference passes of the RoI box head (iterative box regression, sgg.detectors.roi_head); 1 = one pass
    "box_passes": 1,
    "size_divisor": 32,
    # horizontal-box (``hbb``) training targets: class groups scored on their summed probability, e.g.
    # [["ship", "boat"]] for real `boat` labels that mean either; weight of the envelope loss
    "merge_groups": [],
    "hbb_weight": 1.0,
    # hbb targets with oriented pseudo-boxes (``angle_weight`` per box, sgg.datasets.pseudo_obb): weight of the
    # full oriented loss (RPN midpoint offsets, RoI deltas) on them, times each box's confidence (0 = off)
    "pseudo_weight": 1.0,
    # the same weight for the RPN's oriented offsets alone (None: pseudo_weight); the RPN's proposals set what
    # the RoI head can reach, so it may take the pseudo-boxes' angle more firmly than the RoI head does
    "rpn_pseudo_weight": None,
    # rotation-consistency self-supervision on hbb tiles (sgg.detectors.consistency): loss weight (0 = off),
    # largest turn θ (radians) of the second view, at most this many positive RoIs per batch, whether the loss
    # also trains the backbone (false: the RoI head only)
    "rc_weight": 0.0,
    "rc_max_angle": math.pi / 4,
    "rc_max_rois": 64,
    "rc_train_backbone": True,
    # ground sampling distances (m/px) of the training data, [min, max]; detect_scene resamples to it
    "gsd_range": None,
}
# keys that change the parameters' shapes or meaning: a checkpoint must agree on these
ARCHITECTURE_KEYS = ("num_classes", "backbone", "fpn_channels", "anchor_sizes", "anchor_ratios", "representation_size")


def resolve_config(config: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """DEFAULT_CONFIG updated by ``config`` and ``overrides``; unknown keys are refused."""
    cfg = dict(DEFAULT_CONFIG)
    for src in (config or {}, overrides):
        unknown = sorted(set(src) - set(cfg))
        if unknown:
            raise SggInputError(f"unknown detector option(s) {unknown}; known: {sorted(cfg)}", where="detector config")
        cfg.update(src)
    if cfg["backbone"] not in BACKBONES:
        raise SggInputError(f"unknown backbone {cfg['backbone']!r}; choose from {', '.join(BACKBONES)}",
                            where="detector config")
    if len(cfg["anchor_sizes"]) != 5:
        raise SggInputError("anchor_sizes needs 5 sizes (P2..P6)", where="detector config")
    for k in ("anchor_sizes", "anchor_ratios", "rpn_pre_nms_top_n", "rpn_post_nms_top_n"):
        cfg[k] = list(cfg[k])
    cfg["merge_groups"] = [list(g) for g in cfg["merge_groups"] or []]
    if isinstance(cfg["box_passes"], bool) or not isinstance(cfg["box_passes"], int) or cfg["box_passes"] < 1:
        raise SggInputError(f"box_passes must be a whole number of at least 1, got {cfg['box_passes']!r}",
                            where="detector config")
    if cfg["gsd_range"] is not None:
        lo, hi = (float(v) for v in cfg["gsd_range"])
        if not 0 < lo <= hi:
            raise SggInputError(f"gsd_range must be [min, max] metres per pixel, got {cfg['gsd_range']}",
                                where="detector config")
        cfg["gsd_range"] = [lo, hi]
    return cfg


class HODNet(nn.Module):
    """Two-stage oriented detector in the style of Oriented R-CNN.

    Follows the tile-detector protocol (:class:`sgg.detectors.TileDetector`): ``vocabulary`` names its
    classes (required by ``detect_scene``; a checkpoint always carries one) and ``inference`` holds hints for
    tiled inference (training ``tile_size``/``overlap``), both set at construction.
    """

    def __init__(self, config: dict[str, Any] | None = None, *, vocabulary: Vocabulary | None = None,
                 inference: dict[str, Any] | None = None, **overrides: Any):
        super().__init__()
        if vocabulary is not None and "num_classes" not in overrides and not (config or {}).get("num_classes"):
            overrides["num_classes"] = vocabulary.num_classes
        cfg = resolve_config(config, **overrides)
        if vocabulary is not None and vocabulary.num_classes != cfg["num_classes"]:
            raise SggInputError(f"the vocabulary names {vocabulary.num_classes} classes but num_classes is "
                                f"{cfg['num_classes']}", where="detector config")
        self.vocabulary = vocabulary
        self.inference = dict(inference or {})
        self.config = cfg
        self.backbone = BackboneFPN(cfg["backbone"], cfg["pretrained"], cfg["weights_path"], cfg["fpn_channels"],
                                    cfg["freeze_bn"], cfg["frozen_stages"])
        self.register_buffer("pixel_mean", torch.tensor(self.backbone.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(self.backbone.std).view(1, 3, 1, 1), persistent=False)
        c = cfg["fpn_channels"]
        names = vocabulary.objects if vocabulary is not None else Vocabulary.star().objects
        groups = []
        for g in cfg["merge_groups"] or []:
            bad = [n for n in g if n not in names]
            if bad or len(names) != cfg["num_classes"]:
                raise SggInputError(f"merge_groups names unknown classes {bad or list(g)}", where="detector config")
            groups.append([names.index(n) for n in g])
        self.rpn = OrientedRPN(c, BackboneFPN.strides, cfg["anchor_sizes"], cfg["anchor_ratios"],
                               batch_size=cfg["rpn_batch_size"], pre_nms_top_n=tuple(cfg["rpn_pre_nms_top_n"]),
                               post_nms_top_n=tuple(cfg["rpn_post_nms_top_n"]), nms_iou=cfg["rpn_nms_iou"])
        self.roi_head = OrientedRoIHead(c, cfg["num_classes"], BackboneFPN.strides[:4], cfg["representation_size"],
                                        batch_size=cfg["roi_batch_size"], pos_fraction=cfg["roi_pos_fraction"],
                                        score_threshold=cfg["score_threshold"], nms_iou=cfg["nms_iou"],
                                        max_detections=cfg["max_detections"], merge_groups=groups,
                                        hbb_weight=cfg["hbb_weight"], box_passes=cfg["box_passes"])

    @property
    def num_classes(self) -> int:
        return int(self.config["num_classes"])

    def set_generator(self, generator: torch.Generator | None) -> None:
        """Random source of the anchor and RoI samplers (reproducible training)."""
        self.rpn.generator = generator
        self.roi_head.generator = generator

    def preprocess(self, images: torch.Tensor | list[torch.Tensor]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """Normalise and pad to a common size divisible by ``size_divisor``; returns batch and (H, W) sizes."""
        if isinstance(images, torch.Tensor):
            if images.dim() == 3:
                images = images[None]
            if images.dim() != 4 or images.shape[1] != 3:
                raise SggInputError(f"images must be (B,3,H,W) floats in [0,1]; got shape {tuple(images.shape)}")
            images = list(images)
        if not images:
            raise SggInputError("no images given")
        sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        d = int(self.config["size_divisor"])
        hmax = -(-max(s[0] for s in sizes) // d) * d
        wmax = -(-max(s[1] for s in sizes) // d) * d
        batch = self.pixel_mean.new_zeros(len(images), 3, hmax, wmax)
        for i, im in enumerate(images):
            if im.dim() != 3 or im.shape[0] != 3:
                raise SggInputError(f"image {i} must be (3,H,W); got shape {tuple(im.shape)}")
            x = (im.to(batch) - self.pixel_mean[0]) / self.pixel_std[0]
            batch[i, :, : x.shape[1], : x.shape[2]] = x
        return batch, sizes

    def features(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """FPN maps P2..P6 of a normalised, padded batch."""
        return list(self.backbone(batch).values())

    @property
    def feature_dim(self) -> int:
        """Width D of the per-object features returned with ``with_features=True``."""
        return int(self.config["representation_size"])

    @torch.no_grad()
    def proposals(self, images) -> list[torch.Tensor]:
        """Per image the RPN's (P, 5) oriented proposals in tile pixels, best first: what the RoI head starts
        from (the eval-mode top-n unless the model is training). See :mod:`sgg.evaluation.proposals`."""
        batch, sizes = self.preprocess(images)
        return self.rpn(self.features(batch), sizes, None)[0]

    def _train_target(self, t: dict[str, torch.Tensor], like: torch.Tensor) -> dict[str, torch.Tensor]:
        """A training target on ``like``'s device; pseudo-box confidences become the RoI head's ``angle_weight``
        (× pseudo_weight) and the RPN's ``rpn_angle_weight`` (× rpn_pseudo_weight)."""
        out = {"boxes": t["boxes"].to(like).reshape(-1, 5), "labels": t["labels"].to(like.device).long(),
               "hbb": bool(t.get("hbb", False))}
        aw = t.get("angle_weight")
        if aw is not None:
            aw = aw.to(like).reshape(-1)
            pw = float(self.config["pseudo_weight"])
            rpw = self.config["rpn_pseudo_weight"]
            rpw = pw if rpw is None else float(rpw)
            if pw > 0:
                out["angle_weight"] = aw * pw
            out["rpn_angle_weight"] = aw * rpw  # zeros: the RPN's offsets get no loss
        return out

    def forward(self, images, targets: list[dict[str, torch.Tensor]] | None = None, *, with_features: bool = False):
        """Training: dict of losses. Inference: one :class:`Detections` per image (tile pixels); with
        ``with_features`` each also carries ``features`` (N, D) and ``class_scores`` (N, C+1)."""
        batch, sizes = self.preprocess(images)
        if self.training:
            if targets is None or len(targets) != len(sizes):
                raise SggInputError("training needs one target dict per image")
            targets = [self._train_target(t, batch) for t in targets]
        feats = self.features(batch)
        proposals, rpn_losses = self.rpn(feats, sizes, targets if self.training else None)
        if self.training:
            rc = float(self.config["rc_weight"])
            keep: dict[str, torch.Tensor] | None = {} if rc > 0 else None
            losses = {**rpn_losses, **self.roi_head.losses(feats[:4], proposals, targets, keep=keep)}
            if keep is not None:  # hbb tiles: a turned copy must give the turned boxes
                losses["loss_rc"] = rc * rotation_consistency(
                    self, batch, sizes, feats, keep["rois"], keep["bidx"], keep["cls"],
                    max_angle=float(self.config["rc_max_angle"]), max_rois=int(self.config["rc_max_rois"]),
                    generator=self.roi_head.generator, train_backbone=bool(self.config["rc_train_backbone"])
                ) if keep else feats[0].sum() * 0.0
            return losses
        results = self.roi_head.predict(feats[:4], proposals, with_features=with_features)
        return [Detections(r["boxes"].float(), r["labels"], r["scores"].float(), r.get("features"),
                           class_scores=r.get("class_scores")) for r in results]


def total_loss(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of the ``loss_*`` entries (accuracy etc. are logged, not optimised)."""
    return sum(v for k, v in losses.items() if k.startswith("loss_"))


