"""DetectorModule: Lightning fast_dev_run, LR schedule, .ckpt → load_detector, vocabulary check."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from sgg.detectors.checkpoint import load_detector
from sgg.detectors.module import DetectorModule
from sgg.errors import SggInputError
from sgg.structures import Detections, Vocabulary

torch.set_num_threads(1)
NAMES = ["car", "ship", "boat"]
TINY = dict(rpn_pre_nms_top_n=[200, 100], rpn_post_nms_top_n=[100, 50], roi_batch_size=32, rpn_batch_size=64)


class _Tiles(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        boxes = torch.tensor([[20.0, 24.0, 14.0, 6.0, 0.3], [44.0, 40.0, 10.0, 5.0, -0.7]])[: i % 3]
        return torch.rand(3, 64, 64, generator=g), {"boxes": boxes, "labels": torch.tensor([0, 2])[: i % 3],
                                                     "difficult": torch.zeros(i % 3, dtype=torch.bool)}


def _collate(b):
    return torch.stack([x[0] for x in b]), [x[1] for x in b]


class _DM(pl.LightningDataModule):
    def __init__(self, vocabulary=None):
        super().__init__()
        self.vocabulary = vocabulary

    def train_dataloader(self):
        return DataLoader(_Tiles(), batch_size=2, collate_fn=_collate)

    def val_dataloader(self):
        return DataLoader(_Tiles(), batch_size=2, collate_fn=_collate)


def _module(**kw):
    return DetectorModule(class_names=NAMES, backbone="resnet18", pretrained=False, fpn_channels=16,
                          representation_size=32, detector=TINY, **kw)


def _trainer(tmp_path, **kw):
    return pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=tmp_path, **kw)


def test_fast_dev_run(tmp_path):
    m = _module()
    tr = _trainer(tmp_path, fast_dev_run=True)
    tr.fit(m, _DM(Vocabulary(tuple(NAMES), ())))
    assert math.isfinite(float(tr.callback_metrics["train/loss"]))
    assert 0.0 <= float(tr.callback_metrics["val/mAP50"]) <= 1.0


class _Oracle(torch.nn.Module):
    """Stands in for the detector at validation: returns each tile's annotation as its detections (recognising
    the tile by its pixels), with the boats relabelled ``boat_as`` or dropped when ``boat_as`` is None."""

    def __init__(self, boat_as: int | None = 2):
        super().__init__()
        self.tiles, self.boat_as = _Tiles(), boat_as

    def forward(self, images, targets=None):
        out = []
        for img in images:
            i = next(k for k in range(len(self.tiles)) if torch.equal(self.tiles[k][0], img))
            t = self.tiles[i][1]
            labels = t["labels"].clone()
            keep = torch.ones(len(labels), dtype=torch.bool)
            if self.boat_as is None:
                keep = labels != 2
            else:
                labels[labels == 2] = self.boat_as
            out.append(Detections(t["boxes"][keep], labels[keep], torch.full((int(keep.sum()),), 0.9)))
        return out


@pytest.mark.parametrize("boat_as, expected", [(2, 1.0), (None, 0.5), (1, 0.5)])
def test_validation_logs_map_of_the_predictions(tmp_path, boat_as, expected):
    # validation tiles 1 and 2 hold a car and a car + a boat: perfect detections give mAP 1; a missed boat or a
    # boat called a ship leaves car AP 1 and boat AP 0 (ship has no annotation and is not averaged)
    m = _module()
    m.model = _Oracle(boat_as)
    tr = _trainer(tmp_path, limit_val_batches=2)
    tr.validate(m, _DM(Vocabulary(tuple(NAMES), ())), verbose=False)
    assert float(tr.callback_metrics["val/mAP50"]) == pytest.approx(expected)


def test_ckpt_loads_with_load_detector(tmp_path):
    m = _module()
    tr = _trainer(tmp_path, max_steps=2, limit_val_batches=1, num_sanity_val_steps=0)
    tr.fit(m, _DM())
    ckpt = next(tmp_path.rglob("*.ckpt"))
    net = load_detector(ckpt, vocabulary=NAMES)
    assert net.vocabulary.objects == tuple(NAMES) and net.config["backbone"] == "resnet18"
    torch.testing.assert_close(net.rpn.cls.weight, m.model.rpn.cls.weight)
    with pytest.raises(SggInputError, match="another vocabulary"):
        load_detector(ckpt, vocabulary=["car", "ship", "plane"])
    # fine-tuning starts from the checkpoint's weights; another architecture is refused
    tuned = _module(init_from=str(ckpt))
    torch.testing.assert_close(tuned.model.rpn.cls.weight, m.model.rpn.cls.weight)
    with pytest.raises(SggInputError, match="fpn_channels"):
        DetectorModule(class_names=NAMES, backbone="resnet18", pretrained=False, fpn_channels=32,
                       representation_size=32, detector=TINY, init_from=str(ckpt))


def test_vocabulary_mismatch_with_data_is_refused(tmp_path):
    tr = _trainer(tmp_path, fast_dev_run=True)
    with pytest.raises(SggInputError, match="differs from the model's class_names"):
        tr.fit(_module(), _DM(Vocabulary(("car", "plane", "boat"), ())))


@pytest.mark.parametrize("schedule", ["cosine", "step", "constant"])
def test_lr_schedule(schedule):
    m = _module(lr=1e-3, warmup_steps=10, max_steps=100, schedule=schedule, min_lr_ratio=0.05)
    cfg = m.configure_optimizers()
    opt, sched = cfg["optimizer"], cfg["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] < 1e-5 and abs(lrs[10] - 1e-3) < 1e-9
    if schedule == "cosine":
        assert abs(lrs[55] - 1e-3 * (0.05 + 0.95 * 0.5)) < 1e-5 and lrs[99] < 1e-4
    elif schedule == "step":
        assert abs(lrs[80] - 1e-4) < 1e-9
    else:
        assert lrs[99] == 1e-3


def test_bad_schedule():
    with pytest.raises(SggInputError, match="schedule"):
        _module(schedule="linear")


def test_sgg_train_detector_cli_end_to_end(tmp_path):
    """`sgg train detector --config FILE` on a tiny `sgg synth`-style directory (LightningCLI, one step)."""
    from sgg.datasets import synthetic

    synthetic.generate_dataset(tmp_path / "data", scenes=3, size=384, seed=0, split=(0.34, 0.33, 0.33))
    cfg = tmp_path / "det.yaml"
    cfg.write_text(f"""
seed_everything: 0
trainer:
  accelerator: cpu
  max_steps: 1
  limit_val_batches: 0
  num_sanity_val_steps: 0
  logger:
    class_path: pytorch_lightning.loggers.CSVLogger
    init_args:
      save_dir: {tmp_path / 'logs'}
  enable_progress_bar: false
  default_root_dir: {tmp_path / 'runs'}
model:
  backbone: resnet18
  pretrained: false
  fpn_channels: 16
  representation_size: 32
  detector: {{rpn_pre_nms_top_n: [200, 100], rpn_post_nms_top_n: [100, 50], roi_batch_size: 32}}
data:
  data_dir: {tmp_path / 'data'}
  tile_size: 128
  batch_size: 2
  tiles_per_epoch: 4
  seed: 3   # linked to model.seed (Lightning refuses model/data hparams that disagree)
""")
    from sgg.cli import main

    assert main(["train", "detector", "--config", str(cfg)]) == 0
    hparams = next((tmp_path / "logs").rglob("hparams.yaml")).read_text()
    lines = hparams.splitlines()
    assert "seed: 3" in lines and "seed: 0" not in lines  # the model took the data's seed
    # the checkpoint tells detect_scene the training tile size
    net = load_detector(next(tmp_path.rglob("*.ckpt")))
    assert net.inference == {"tile_size": 128, "overlap": 32}
