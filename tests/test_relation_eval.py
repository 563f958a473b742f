"""scripts/eval_relation.py's crop protocol (windows of the held-out scenes) and the logit-adjusted loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl
import torch

from sgg.datasets import RelationDataModule, write_scene_json
from sgg.relation_heads.module import RelationModule
from sgg.structures import Detections, PairSet, SceneGraph, Vocabulary
from tests.scripts import load_script

STAR = Vocabulary.star()


def _script():
    return load_script("eval_relation")


def _scene() -> SceneGraph:
    # 1000 x 700 image, 512-px windows: x starts 0, 488 (flush right), y starts 0, 188 (flush bottom)
    boxes = torch.tensor([
        [100.0, 100, 40, 20, 0],   # 0: window (0, 0) only (y 90..110 < 188)
        [200, 100, 40, 20, 0],     # 1: window (0, 0) only
        [470, 100, 100, 20, 0],    # 2: x 420..520: 92 % in x-window 0, 32 % in x-window 488 → (0, 0) only
        [500, 100, 100, 20, 0],    # 3: x 450..550: 62 % in window 0, 62 % in window 488 → dropped everywhere
        [900, 600, 40, 20, 0.5],   # 4: bottom-right window only
        [950, 650, 40, 20, 0],     # 5: bottom-right window only
    ])
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    pairs = torch.tensor([[0, 1], [1, 2], [2, 3], [4, 5], [0, 1], [5, 4]])
    preds = torch.tensor([1, 2, 3, 4, 5, 6])  # pair (0, 1) carries two predicates
    return SceneGraph(Detections(boxes, labels), PairSet(pairs), predicate_labels=preds, vocabulary=STAR,
                      image_size=(1000, 700))


def test_crop_graphs_hand_worked():
    crops = _script().crop_graphs([_scene()], 512, min_inside=0.7)
    assert [c.metadata["crop"] for c in crops] == [[0.0, 0.0, 512], [488.0, 188.0, 512]]  # others: no relation
    a, b = crops
    assert a.detections.labels.tolist() == [0, 1, 2]  # object 3 (62 % in each) is nowhere
    assert a.pairs.pairs.tolist() == [[0, 1], [1, 2], [0, 1]] and a.predicate_labels.tolist() == [1, 2, 5]
    assert b.detections.labels.tolist() == [4, 5]
    assert b.pairs.pairs.tolist() == [[0, 1], [1, 0]] and b.predicate_labels.tolist() == [4, 6]
    assert torch.equal(b.detections.boxes.tensor, _scene().detections.boxes.tensor[4:])  # scene pixels kept
    # a lower threshold keeps the straddling object in both windows on its row
    loose = _script().crop_graphs([_scene()], 512, min_inside=0.6)
    assert 3 in loose[0].detections.labels.tolist()


def _rel_dir(root: Path) -> Path:
    g = torch.Generator().manual_seed(0)
    for i in range(3):
        n = 20
        xy = torch.rand(n, 2, generator=g) * 300
        boxes = torch.cat([xy, 10 + torch.rand(n, 2, generator=g) * 10, torch.zeros(n, 1)], 1)
        near = (torch.cdist(xy, xy) + torch.eye(n) * 1e9).argmin(1)
        pairs = torch.stack([torch.arange(n), near], 1)
        preds = torch.where(torch.arange(n) % 5 == 0, 3, 1)  # predicate 1 frequent, 3 rare
        sg = SceneGraph(Detections(boxes, torch.randint(0, 3, (n,), generator=g)), PairSet(pairs),
                        predicate_labels=preds, vocabulary=STAR, image_size=(300, 300))
        write_scene_json(sg, root / "annotations" / f"r{i}.json")
    (root / "split.json").write_text(json.dumps({"train": ["r0", "r1"], "val": ["r2"], "test": ["r2"]}))
    return root


def test_logit_adjusted_loss_and_background_weight(tmp_path):
    model = RelationModule(head="mlp", hidden=8, class_dim=4, train_logit_adjust=0.7, bg_weight=0.25)
    dm = RelationDataModule(str(_rel_dir(tmp_path)), neg_ratio=1.0, shuffle=False)
    trainer = pl.Trainer(accelerator="cpu", max_steps=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, datamodule=dm)  # runs setup: prior and class weights
    prior = model.head.log_prior
    assert prior[1] > prior[3] > -float("inf") and prior[2] == 0  # 1 frequent, 3 rare, 2 unseen (no boost)
    assert model.class_weight[0] == 0.25 and torch.all(model.class_weight[1:] == 1)
    batch = next(iter(dm.train_dataloader()))
    model.log = lambda *a, **k: None
    got = model._step(batch, "train")
    # independent: soft CE of (logits + τ·log prior) against the normalised multi-hot targets, weighted
    want = 0.0
    for s in batch:
        keep = s["crop_objects"]
        z = model.head(s["boxes"][keep], s["labels"][keep], s["candidates"])["rel_logits"] + 0.7 * prior
        t = s["candidate_targets"] / s["candidate_targets"].sum(1, keepdim=True)
        want = want + (-(t * torch.log_softmax(z, 1)) * model.class_weight).sum(1).mean()
    assert torch.allclose(got, want / len(batch), atol=1e-6)


def test_tau_sweep_equals_predicting_with_each_tau():
    """``evaluate(..., taus=…)`` re-adjusts one set of predictions per τ: the same figures as a head that
    predicts with ``logit_adjust = τ`` itself."""
    from sgg.relation_heads import build_head

    torch.manual_seed(0)
    head = build_head("rpcm", STAR, hidden=16, class_dim=4, proto_dim=8, steps=1)
    head.log_prior.copy_(torch.log_softmax(torch.randn(STAR.num_predicates) * 3, 0))
    g = _scene()
    mod = _script()
    ks = (5, 50, 200, 2000)  # no-graph-constraint recall over every (pair, predicate): non-zero figures
    sweep = mod.evaluate(head, [g], "predcls", ks, taus=[0.0, 1.5])
    for tau in (0.0, 1.5):
        head.logit_adjust = tau
        one = mod.evaluate(head, [g], "predcls", ks)
        for key in [f"{m}@{k}" for m in ("R", "mR", "ngR", "ngmR") for k in ks]:
            assert abs(sweep[tau][key] - one[key]) < 1e-9, (tau, key)
    assert sweep[0.0]["ngR@2000"] > 0.5
    assert any(sweep[0.0][f"ngR@{k}"] != sweep[1.5][f"ngR@{k}"] for k in ks)  # τ changes the ranking
    grid = mod.evaluate(head, [g], "predcls", ks, taus=[(1.5, 0.0), (0.5, 1.0)])  # (τ, β) settings
    head.logit_adjust, head.count_norm = 0.5, 1.0
    one = mod.evaluate(head, [g], "predcls", ks)
    assert head.logit_adjust == 0.5 and head.count_norm == 1.0  # the sweep restores the head's own settings
    for key in [f"{m}@{k}" for m in ("R", "mR", "ngR", "ngmR") for k in ks]:
        assert abs(grid[(1.5, 0.0)][key] - sweep[1.5][key]) < 1e-9, key
        assert abs(grid[(0.5, 1.0)][key] - one[key]) < 1e-9, key


def test_crop_graphs_cuts_detections_by_the_same_windows():
    gt = _scene()
    # detections: object 0 of window (0, 0), object 4's neighbour in the bottom-right window, one straddler
    boxes = torch.tensor([[102.0, 101, 40, 20, 0], [905, 602, 40, 20, 0.5], [500, 100, 100, 20, 0]])
    det = SceneGraph(Detections(boxes, torch.tensor([0, 4, 3]), torch.tensor([0.9, 0.8, 0.7])), PairSet.empty(),
                     vocabulary=STAR, image_size=(1000, 700))
    mod = _script()
    gts, dets = mod.crop_graphs([gt], 512, min_inside=0.7, detections=[det])
    assert len(gts) == len(dets) == len(mod.crop_graphs([gt], 512, min_inside=0.7))
    got = {tuple(g.metadata["crop"][:2]): d.detections.boxes.tensor[:, 0].tolist() for g, d in zip(gts, dets)}
    assert got == {(0.0, 0.0): [102.0], (488.0, 188.0): [905.0]}  # the straddler (62 % / 62 %) is in neither
    assert all(len(d.pairs) == 0 and d.predicate_scores is None for d in dets)
