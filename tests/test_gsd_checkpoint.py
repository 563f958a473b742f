"""Detector checkpoints carry the GSD range they were trained at (#12): the shipped files, set_gsd_range
(weights untouched), the one warning for a checkpoint without it, and DetectorModule measuring it from its
training scenes."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from sgg.detectors.checkpoint import load_detector, save_detector, set_gsd_range
from sgg.detectors.module import DetectorModule, training_gsd_range
from sgg.errors import SggInputError
from sgg.structures import Vocabulary

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
NAMES = ["car", "ship"]


def _no_gsd_warnings(fn, *args, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = fn(*args, **kw)
    return out, [str(x.message) for x in w if "gsd_range" in str(x.message)]


@pytest.mark.parametrize("name, expected", [("hodnet_effl0_synth.pt", [0.125, 2.0]),
                                            ("hodnet_effl0_mixed.pt", [0.33, 2.0]),
                                            ("hodnet_effl0_mixed_diag.pt", [0.125, 2.0])])
def test_shipped_detectors_record_their_gsd_range(name, expected):
    """synth: 0.125-0.5 m scenes (synth_cpu_fine.yaml) at rates 0.25-1; mixed: rates 0.25-1.5 (ships_ge: GSD
    unknown); mixed_diag: the fourth synthetic stage's scenes (0.125-0.5 m) with ships_ge."""
    path = WEIGHTS / name
    if not path.is_file():
        pytest.skip("weights file not in this checkout")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    assert ck["config"]["gsd_range"] == expected
    model, warned = _no_gsd_warnings(load_detector, path)
    assert not warned and model.config["gsd_range"] == expected
    shipped = sorted(p.name for p in WEIGHTS.glob("hodnet*.pt"))
    assert all(torch.load(WEIGHTS / n, weights_only=True)["config"].get("gsd_range") for n in shipped), shipped


@pytest.fixture()
def tiny(tmp_path):
    from sgg.detectors.hodnet import HODNet

    torch.manual_seed(0)
    m = HODNet(pretrained=False, backbone="resnet18", fpn_channels=16, representation_size=32,
               vocabulary=Vocabulary(tuple(NAMES), ()))
    return save_detector(m, tmp_path / "old.pt", m.vocabulary, half=True)


def test_set_gsd_range_keeps_the_weights_bit_for_bit(tiny, tmp_path):
    _, warned = _no_gsd_warnings(load_detector, tiny)
    assert len(warned) == 1 and str(tiny) in warned[0]  # names the file
    before = torch.load(tiny, weights_only=True)
    out = set_gsd_range(tiny, 0.3, 1.2, out=tmp_path / "new.pt")
    after = torch.load(out, weights_only=True)
    assert after["config"] == {**before["config"], "gsd_range": [0.3, 1.2]}
    assert {k: v for k, v in after.items() if k != "config"}.keys() == {k for k in before if k != "config"}
    assert after["vocabulary"] == before["vocabulary"] and after["inference"] == before["inference"]
    for k, v in before["state_dict"].items():
        w = after["state_dict"][k]
        assert w.dtype == v.dtype and w.shape == v.shape
        assert torch.equal(w.reshape(-1).view(torch.uint8), v.reshape(-1).view(torch.uint8)), k
    model, warned = _no_gsd_warnings(load_detector, out)
    assert not warned and model.config["gsd_range"] == [0.3, 1.2]
    with pytest.raises(SggInputError, match="gsd_range must be"):
        set_gsd_range(out, 2.0, 1.0)
    (tmp_path / "notes.pt").write_text("hello")
    with pytest.raises(SggInputError, match="not a PyTorch checkpoint"):
        set_gsd_range(tmp_path / "notes.pt", 0.5, 1.0)


def _scene(gsd=None, georef=None):
    return SimpleNamespace(graph=SimpleNamespace(metadata={"gsd": gsd}, georef=georef))


def test_training_gsd_range_from_scenes_and_rates():
    from sgg.datasets.synthetic.generator import georeference

    utm = georeference(3, 64, 64, 0.3)  # no metadata gsd: read from the projected georeference
    ds = SimpleNamespace(scenes=[_scene(0.5), _scene(None, utm), _scene(None)], num_obb=2,
                         scales=(0.25, 0.5, 1.0), hbb_scales=(0.5, 1.5))
    assert training_gsd_range(ds) == pytest.approx((0.3, 2.0))  # 0.3 / 1.0 and 0.5 / 0.25
    ds.scenes.append(_scene(0.6))  # a horizontal-box scene of known GSD at rates 0.5-1.5
    assert training_gsd_range(ds) == pytest.approx((0.3, 2.0)) and ds.num_obb == 2
    ds.scenes[-1] = _scene(3.0)
    assert training_gsd_range(ds) == pytest.approx((0.3, 6.0))
    assert training_gsd_range(SimpleNamespace(scenes=[_scene(None)], num_obb=1, scales=(1.0,))) is None


class _Tiles(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        boxes = torch.tensor([[20.0, 24.0, 14.0, 6.0, 0.3]])
        return torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(i)), {
            "boxes": boxes, "labels": torch.tensor([0]), "difficult": torch.zeros(1, dtype=torch.bool)}


class _DM(pl.LightningDataModule):
    """Two tiles; ``_dataset('train')`` describes them as DetectorDataModule would (0.5 m scenes, rates 0.5-1)."""

    def train_dataloader(self):
        return DataLoader(_Tiles(), batch_size=2, collate_fn=lambda b: (torch.stack([x[0] for x in b]),
                                                                         [x[1] for x in b]))

    def _dataset(self, stage):
        return SimpleNamespace(scenes=[_scene(0.5)], num_obb=1, scales=(0.5, 1.0))


@pytest.mark.parametrize("given, expected", [(None, [0.5, 1.0]), ([0.4, 3.0], [0.4, 3.0])])
def test_trained_checkpoint_carries_the_data_gsd_range(tmp_path, given, expected):
    torch.set_num_threads(1)
    tiny = dict(rpn_pre_nms_top_n=[200, 100], rpn_post_nms_top_n=[100, 50], roi_batch_size=32, rpn_batch_size=64,
                gsd_range=given)
    m = DetectorModule(class_names=NAMES, backbone="resnet18", pretrained=False, fpn_channels=16,
                       representation_size=32, detector=tiny)
    tr = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                    default_root_dir=tmp_path, max_steps=1, limit_val_batches=0, num_sanity_val_steps=0)
    tr.fit(m, _DM())
    ckpt = next(tmp_path.rglob("*.ckpt"))
    assert torch.load(ckpt, weights_only=True)["sgg_detector"]["config"]["gsd_range"] == expected
    model, warned = _no_gsd_warnings(load_detector, ckpt)
    assert not warned and model.config["gsd_range"] == expected
