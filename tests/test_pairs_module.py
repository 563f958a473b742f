"""PPGModule (USAD training) and PPGDataModule on a tiny hand-made scene directory."""

from __future__ import annotations

import json
import math

import pytest
import pytorch_lightning as pl
import torch

from sgg.datasets.native import write_scene_json
from sgg.errors import SggInputError
from sgg.pairs import PPG, PPGDataModule, PPGModule
from sgg.pairs.module import pair_auc, related_pairs
from sgg.structures import Detections, PairSet, SceneGraph, Vocabulary

VOC = Vocabulary(("car", "car_parking", "tower"), ("parked on", "in line with"))


def tiny_scene(seed: int) -> SceneGraph:
    """Cars inside car parks (related), towers far apart in a row (related), nothing else related."""
    g = torch.Generator().manual_seed(seed)
    boxes, labels, pairs, preds = [], [], [], []
    for k in range(6):
        px, py = 300.0 * k + 100, 200.0
        boxes.append([px, py, 80, 40, 0.0])
        labels.append(1)
        park = len(boxes) - 1
        for c in range(4):
            boxes.append([px - 30 + 20 * c + float(torch.rand(1, generator=g)), py, 4.5, 2.0, math.pi / 2])
            labels.append(0)
            pairs.append([len(boxes) - 1, park])
            preds.append(1)
    for t in range(5):
        boxes.append([150.0 * t + 50, 900, 12, 12, 0.0])
        labels.append(2)
        if t:
            pairs.append([len(boxes) - 2, len(boxes) - 1])
            preds.append(2)
    return SceneGraph(Detections(torch.tensor(boxes), torch.tensor(labels)), PairSet(torch.tensor(pairs)),
                      predicate_labels=torch.tensor(preds), vocabulary=VOC, image_size=(2000, 1000))


@pytest.fixture()
def data_dir(tmp_path):
    ids = [f"s{i}" for i in range(4)]
    for i, sid in enumerate(ids):
        write_scene_json(tiny_scene(i), tmp_path / "annotations" / f"{sid}.json")
    (tmp_path / "split.json").write_text(json.dumps({"train": ids[:3], "val": ids[3:], "test": ids[3:]}))
    return tmp_path


def test_pair_auc_hand_worked():
    assert pair_auc(torch.tensor([0.1, 0.2]), torch.tensor([0.3, 0.15])) == pytest.approx(0.75)
    assert pair_auc(torch.tensor([0.1]), torch.tensor([0.1])) == pytest.approx(0.5)  # a tie counts half


def test_related_pairs_dedups_and_drops_background():
    sg = tiny_scene(0)
    sg2 = SceneGraph(sg.detections, PairSet(torch.cat([sg.pairs.pairs, sg.pairs.pairs[:2], torch.tensor([[0, 5]])])),
                     predicate_labels=torch.cat([sg.predicate_labels, sg.predicate_labels[:2], torch.tensor([0])]),
                     vocabulary=VOC)
    assert related_pairs(sg2).tolist() == torch.unique(sg.pairs.pairs, dim=0).tolist()


def test_usad_losses_follow_the_epoch_schedule():
    torch.manual_seed(0)
    m = PPGModule(class_names=list(VOC.objects))
    x = torch.rand(16, 13)
    ae1, ae2 = m.ppg.ae1, m.ppg.ae2
    e = lambda w: ((w - x) ** 2).mean()
    for n in (1, 4):
        l1, l2 = m.usad_losses(x, n)
        assert l1.item() == pytest.approx((e(ae1(x)) / n + (1 - 1 / n) * e(ae2(ae1(x)))).item(), rel=1e-6)
        assert l2.item() == pytest.approx((e(ae2(x)) / n - (1 - 1 / n) * e(ae2(ae1(x)))).item(), rel=1e-6)


def test_training_separates_related_pairs_and_checkpoint_loads(data_dir, tmp_path):
    dm = PPGDataModule(str(data_dir), batch_size=16, negatives_per_scene=300, seed=0)
    model = PPGModule(class_names=list(VOC.objects), lr=5e-3, seed=0)
    trainer = pl.Trainer(max_epochs=8, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, enable_checkpointing=False)
    trainer.fit(model, dm)
    assert dm.vocabulary == VOC and len(dm._features("train")) == 3 * 28
    assert trainer.callback_metrics["val/auc"] > 0.9
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    ppg = PPG.load(ckpt)
    assert ppg.vocabulary.objects == VOC.objects
    x = dm._features("val").tensors[0]
    assert torch.allclose(ppg.score(x), model.ppg.score(x))


def test_vocabulary_mismatch_refused(data_dir):
    dm = PPGDataModule(str(data_dir))
    dm.setup("fit")
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(SggInputError, match="vocabulary"):
        trainer.fit(PPGModule(), dm)  # STAR's 48 classes against a 3-class data set


def test_shipped_synthetic_ppg_loads_and_ranks():
    from pathlib import Path

    from sgg.pairs import PairProposer, star_pair_features

    path = Path(__file__).resolve().parents[1] / "weights" / "ppg_synth.pt"
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "sgg-pair-proposer/1"
    assert all(v.dtype == torch.float16 for v in raw["ppg"]["state_dict"].values())
    prop = PairProposer.load(path)
    star = Vocabulary.star()
    assert prop.ppg.vocabulary.objects == star.objects and prop.budget == 10_000
    car, park = star.object_index("car"), star.object_index("car_parking")
    boxes = torch.tensor([[500, 500, 9, 4, 0.1], [510, 505, 160, 80, 0.1], [3000, 3000, 9, 4, 0.1]], dtype=torch.float64)
    s = prop.ppg.score(star_pair_features(boxes, torch.tensor([car, park, car]), torch.tensor([[0, 1], [2, 1]])))
    assert s[0] < s[1]  # the car inside the car park before the car 3 km away
