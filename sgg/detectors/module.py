"""``DetectorModule``: HOD-Net as a LightningModule (``sgg train detector --config configs/detector/*.yaml``).

Optimiser AdamW with linear warm-up then cosine (or step) decay per optimiser step; logs every loss.
Validation runs the detector on the datamodule's fixed validation tiles and logs ``val/mAP50`` through
``sgg.evaluation.rotated_map``. Checkpoints carry
the vocabulary and the model config (``checkpoint["sgg_detector"]``), so ``load_detector`` reads them; the
config's ``gsd_range`` (metres per tile pixel the detector saw) is measured from the training data when
the config does not give it (:func:`training_gsd_range`), so ``detect_scene`` can match a raster to it.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch

from sgg.errors import SggInputError
from sgg.evaluation import rotated_map
from sgg.structures import Detections, SceneGraph, Vocabulary

from .hodnet import ARCHITECTURE_KEYS, HODNet, resolve_config, total_loss
from .rpn import adapt_ratios


def scene_gsd(graph: Any) -> float | None:
    """Metres per pixel of a training scene's annotation: ``metadata["gsd"]`` (``sgg synth``, DOTA's
    ``gsd:`` header), else the pixel size of a projected georeference; ``None`` when unknown."""
    g = (getattr(graph, "metadata", None) or {}).get("gsd")
    if g is not None and float(g) > 0:
        return float(g)
    geo = getattr(graph, "georef", None)
    if geo is None or not getattr(geo, "crs_wkt", None):
        return None
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    from sgg.io.raster import crs_gsd

    try:
        crs = CRS.from_wkt(geo.crs_wkt)
    except CRSError:  # an unreadable CRS: unknown
        return None
    return crs_gsd(crs, geo.transform)


def training_gsd_range(dataset: Any) -> tuple[float, float] | None:
    """``(min, max)`` metres per tile pixel of a ``DetectorTileDataset``'s training tiles: each scene's GSD
    divided by the largest and smallest scale rate it is sampled at (oriented scenes at ``scales``, mixed-in
    horizontal-box scenes at ``hbb_scales``). Scenes of unknown GSD (e.g. screen captures) are left out;
    ``None`` when no scene's GSD is known."""
    scenes = list(getattr(dataset, "scenes", []) or [])
    n_obb = int(getattr(dataset, "num_obb", len(scenes)))
    lo, hi = math.inf, 0.0
    for i, sc in enumerate(scenes):
        g = scene_gsd(getattr(sc, "graph", None))
        rates = dataset.scales if i < n_obb else getattr(dataset, "hbb_scales", dataset.scales)
        if g is None or not rates:
            continue
        lo, hi = min(lo, g / max(rates)), max(hi, g / min(rates))
    return None if hi == 0.0 else (round(lo, 4), round(hi, 4))


class DetectorModule(pl.LightningModule):
    """Trains HODNet on ``(images, targets)`` batches (``DetectorDataModule``).

    Args:
        class_names: object classes (default: STAR's 48); must match the datamodule's vocabulary.
        backbone, pretrained, weights_path, fpn_channels, representation_size, anchor_sizes: model options.
        detector: any further HODNet option (see ``sgg.detectors.hodnet.DEFAULT_CONFIG``).
        lr, weight_decay: AdamW. warmup_steps: linear warm-up. schedule: "cosine", "step" or "constant".
        max_steps: length of the schedule (default: the trainer's estimate). seed: samplers' random source.
        init_from: start from the weights of an sgg detector file or DetectorModule checkpoint (fine-tuning);
            its vocabulary and architecture must match, except the anchor ratios (the RPN head's channels
            are adapted, see ``sgg.detectors.rpn.adapt_ratios``). (To resume a run with its optimiser, use
            LightningCLI's ``--ckpt_path`` instead.)
    """

    def __init__(self, class_names: list[str] | None = None, backbone: str = "efficientnet_lite0",
                 pretrained: bool = True, weights_path: str | None = None, fpn_channels: int = 128,
                 representation_size: int = 256, anchor_sizes: list[int] | None = None,
                 detector: dict[str, Any] | None = None, lr: float = 2e-4, weight_decay: float = 1e-4,
                 warmup_steps: int = 100, schedule: str = "cosine", max_steps: int | None = None,
                 min_lr_ratio: float = 0.05, seed: int = 0, init_from: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        names = list(class_names) if class_names else list(Vocabulary.star().objects)
        self.vocabulary = Vocabulary(tuple(names), ())
        opts = dict(detector or {})
        opts.update(num_classes=len(names), backbone=backbone, pretrained=pretrained, weights_path=weights_path,
                    fpn_channels=fpn_channels, representation_size=representation_size)
        if anchor_sizes is not None:
            opts["anchor_sizes"] = list(anchor_sizes)
        self.model = HODNet(resolve_config(opts), vocabulary=self.vocabulary)
        if init_from:
            from .checkpoint import load_detector

            # anchor ratios may differ: the RPN head's channels are then adapted (nearest old ratio)
            arch = {k: v for k, v in self.model.config.items() if k in ARCHITECTURE_KEYS and k != "anchor_ratios"}
            src = load_detector(init_from, vocabulary=self.vocabulary, config=arch)
            sd = src.state_dict()
            if list(src.config["anchor_ratios"]) != list(self.model.config["anchor_ratios"]):
                sd = adapt_ratios(sd, src.config["anchor_ratios"], self.model.config["anchor_ratios"])
            self.model.load_state_dict(sd)
        if schedule not in ("cosine", "step", "constant"):
            raise SggInputError(f"schedule must be cosine, step or constant, not {schedule!r}", where="DetectorModule")
        self._val_preds: list[Detections] = []
        self._val_gts: list[SceneGraph] = []
        self._gen = torch.Generator().manual_seed(seed)
        self.model.set_generator(self._gen)

    # data -------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        voc = getattr(dm, "vocabulary", None)
        if voc is not None and tuple(voc.objects) != tuple(self.vocabulary.objects):
            raise SggInputError(
                f"the data's vocabulary ({voc.num_classes} classes: {', '.join(voc.objects[:6])}…) differs from "
                f"the model's class_names ({self.vocabulary.num_classes}: {', '.join(self.vocabulary.objects[:6])}…)",
                where="DetectorModule")

    @staticmethod
    def _unpack(batch):
        if isinstance(batch, dict):
            return batch["images"], batch["targets"]
        return batch[0], batch[1]

    def forward(self, images, targets=None):
        return self.model(images, targets)

    # steps ------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        images, targets = self._unpack(batch)
        losses = self.model(images, targets)
        loss = total_loss(losses)
        bs = len(targets)
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, batch_size=bs)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=bs)
        return loss

    def validation_step(self, batch, batch_idx):
        images, targets = self._unpack(batch)
        preds = self.model(images)
        for p, t in zip(preds, targets):
            self._val_preds.append(p.to("cpu"))
            gt = Detections(t["boxes"].detach().cpu().reshape(-1, 5), t["labels"].cpu())
            diff = t.get("difficult")
            self._val_gts.append(SceneGraph(gt, vocabulary=self.vocabulary,
                                            difficult=None if diff is None else diff.cpu()))

    def on_validation_epoch_end(self) -> None:
        if self._val_preds:
            res = rotated_map(self._val_preds, self._val_gts, iou_threshold=0.5,
                              class_names=list(self.vocabulary.objects))
            self.log("val/mAP50", float(res["mAP"]), prog_bar=True)
        self._val_preds, self._val_gts = [], []

    # optimisation -----------------------------------------------------------------------------
    def _total_steps(self) -> int:
        if self.hparams.max_steps:
            return int(self.hparams.max_steps)
        try:
            return max(1, int(self.trainer.estimated_stepping_batches))
        except Exception:  # noqa: BLE001 - no trainer / infinite: fall back to warm-up then constant
            return 10 ** 9

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total, warm = self._total_steps(), max(0, int(self.hparams.warmup_steps))
        sched, floor = self.hparams.schedule, float(self.hparams.min_lr_ratio)

        def factor(step: int) -> float:
            if step < warm:
                return 0.001 + 0.999 * step / max(1, warm)
            t = min(1.0, (step - warm) / max(1, total - warm))
            if sched == "cosine":
                return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
            if sched == "step":
                return 1.0 if t < 2 / 3 else (0.1 if t < 11 / 12 else 0.01)
            return 1.0

        lr = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": lr, "interval": "step"}}

    # checkpoints ------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        """Record the training data's GSD range in the model config unless the config gives one."""
        if self.model.config.get("gsd_range"):
            return
        dm = getattr(self.trainer, "datamodule", None)
        ds = dm._dataset("train") if dm is not None and hasattr(dm, "_dataset") else None
        rng = training_gsd_range(ds) if ds is not None else None
        if rng is None:
            import warnings

            warnings.warn("DetectorModule: no training scene records its GSD (metadata 'gsd' or a projected "
                          "georeference): the checkpoints will carry no gsd_range", stacklevel=2)
            return
        self.model.config["gsd_range"] = [float(rng[0]), float(rng[1])]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        cfg = dict(self.model.config)
        cfg["pretrained"], cfg["weights_path"] = False, None
        meta = {"vocabulary": self.vocabulary.to_dict(), "config": cfg}
        tile = getattr(getattr(getattr(self._trainer, "datamodule", None), "hparams", None), "tile_size", None) \
            if self._trainer is not None else None
        if tile:  # detect_scene's default tiles: the training tile size, a quarter of it as overlap
            meta["inference"] = {"tile_size": int(tile), "overlap": int(tile) // 4}
        checkpoint["sgg_detector"] = meta
