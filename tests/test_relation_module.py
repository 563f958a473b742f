"""RelationDataModule candidates/crops and RelationModule fitting + export through Lightning."""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl
import torch

from sgg.datasets import RelationDataModule, read_scene_json, write_scene_json
from sgg.errors import SggInputError
from sgg.relation_heads import FrequencyPrior, load_relation_head
from sgg.relation_heads.module import RelationModule
from sgg.structures import Detections, PairSet, SceneGraph, Vocabulary

STAR = Vocabulary.star()


def _scene(seed: int, vocab: Vocabulary = STAR) -> SceneGraph:
    g = torch.Generator().manual_seed(seed)
    n = 30
    xy = torch.rand(n, 2, generator=g) * 400
    boxes = torch.cat([xy, 10 + torch.rand(n, 2, generator=g) * 10, torch.zeros(n, 1)], 1)
    labels = torch.randint(0, 3, (n,), generator=g)
    d = torch.cdist(xy, xy) + torch.eye(n) * 1e9
    near = d.argmin(1)
    pairs = torch.stack([torch.arange(n), near], 1)
    preds = torch.where(xy[near, 0] > xy[:, 0], 1, 2)  # object right of subject → predicate 1, else 2
    return SceneGraph(Detections(boxes, labels), PairSet(pairs), predicate_labels=preds, vocabulary=vocab,
                      image_size=(400, 400))


@pytest.fixture(scope="module")
def rel_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("rel")
    for i in range(4):
        write_scene_json(_scene(i), root / "annotations" / f"r{i}.json")
    (root / "split.json").write_text(json.dumps({"train": ["r0", "r1"], "val": ["r2"], "test": ["r3"]}))
    return root


def test_datamodule_candidates_and_crops(rel_dir):
    dm = RelationDataModule(str(rel_dir), neg_ratio=2.0, crop=200, seed=3)
    dm.setup("fit")
    s = dm._dataset("train")[0]
    keep, cand, tgt = s["crop_objects"], s["candidates"], s["candidate_targets"]
    assert bool(((s["boxes"][keep, :2] - s["boxes"][keep, :2].mean(0)).abs() <= 200).all())
    n_pos = int((tgt[:, 0] == 0).sum())
    assert 0 < n_pos and len(cand) - n_pos <= 2 * n_pos and int(cand.max()) < len(keep)
    # positives are exactly the annotated pairs with both objects in the crop, with their predicates
    inside = torch.zeros(len(s["boxes"]), dtype=torch.bool)
    inside[keep] = True
    p = s["pairs"]
    ok = inside[p[:, 0]] & inside[p[:, 1]]
    want = {(int((keep == a).nonzero()), int((keep == b).nonzero()), int(lab)) for (a, b), lab in zip(p[ok].tolist(), s["predicates"][ok])}
    got = {(a, b, int(t.argmax())) for (a, b), t in zip(cand[:n_pos].tolist(), tgt[:n_pos])}
    assert got == want
    val = dm._dataset("val")
    assert torch.equal(val[0]["candidates"], val[0]["candidates"])  # validation draws are fixed
    other = Vocabulary(("a", "b", "c"), ("p", "q"))
    write_scene_json(_scene(9, other), rel_dir / "annotations" / "r9.json")
    (rel_dir / "split2").mkdir()
    bad = rel_dir / "split2"
    (bad / "annotations").symlink_to(rel_dir / "annotations")
    (bad / "split.json").write_text(json.dumps({"train": ["r0", "r9"], "val": [], "test": []}))
    with pytest.raises(SggInputError, match="r9 has a different vocabulary"):
        RelationDataModule(str(bad))._dataset("train")


@pytest.mark.parametrize("head", ["mlp", "rpcm", "freq"])
def test_module_fits_and_exports(rel_dir, tmp_path, head):
    out = tmp_path / f"{head}.pt"
    model = RelationModule(head=head, hidden=16, class_dim=4, proto_dim=8, steps=1, export=str(out), lr=1e-2)
    dm = RelationDataModule(str(rel_dir), neg_ratio=1.0, shuffle=False)
    trainer = pl.Trainer(accelerator="cpu", max_steps=4 if head != "freq" else -1, max_epochs=2 if head != "freq" else 1,
                         limit_val_batches=1, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    back = load_relation_head(out)
    assert back.kind == head and back.vocabulary == STAR
    g = _scene(3)
    pred = back.predict(g.replace(pairs=PairSet.empty(), predicate_labels=None))
    assert pred.predicate_scores.shape == (len(pred.pairs), STAR.num_predicates) and len(pred.pairs) > 0
    if head == "freq":  # the two training scenes, counted once, plus their background candidates
        want = FrequencyPrior(STAR).fit([read_scene_json(rel_dir / "annotations" / f"r{i}.json") for i in (0, 1)])
        assert torch.equal(back.counts, want.counts)


def test_frequency_bias_starts_from_training_counts(rel_dir):
    model = RelationModule(head="mlp", hidden=8, class_dim=4, freq_bias=True, alpha=0.5)
    dm = RelationDataModule(str(rel_dir))
    trainer = pl.Trainer(accelerator="cpu", max_steps=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    counts = FrequencyPrior(STAR).fit([read_scene_json(rel_dir / "annotations" / f"r{i}.json") for i in (0, 1)]).counts
    want = torch.log((counts + 0.5) / (counts + 0.5).sum(-1, keepdim=True)).reshape(-1, STAR.num_predicates)
    assert torch.allclose(model.head.freq_bias.weight, want, atol=1e-5)
    # the bias is added for the pair's classes
    lab, pairs = torch.tensor([1, 2]), torch.tensor([[0, 1]])
    assert torch.allclose(model.head.bias(lab, pairs), want[1 * 48 + 2][None])


def test_context_pairs_all_messages_over_every_candidate(rel_dir):
    """``context_pairs='all'``: RPCM runs over every candidate pair of the sample, the loss rows are the
    served pairs that the candidate rule proposes (with their own targets), and the MLP gets those rows."""
    from sgg.relation_heads import neighbour_pairs

    dm = RelationDataModule(str(rel_dir), neg_ratio=1.0, crop=300, seed=1)
    s = dm._dataset("train")[0]
    keep = s["crop_objects"]
    boxes, labels = s["boxes"][keep], s["labels"][keep]
    served, targets = s["candidates"], s["candidate_targets"]
    graph = neighbour_pairs(boxes)
    index = {tuple(p): i for i, p in enumerate(graph.tolist())}
    ok = [tuple(p) in index for p in served.tolist()]
    assert any(ok) and len(graph) > len(served)  # the full graph holds more pairs than the served ones
    for head in ("rpcm", "mlp"):
        model = RelationModule(head=head, hidden=16, class_dim=4, proto_dim=8, steps=2, context_pairs="all",
                               pool="meanmax", skip=False)
        out, tgt = model._forward(boxes, labels, served, targets)
        assert torch.equal(tgt, targets[torch.tensor(ok)])
        if head == "rpcm":
            full = model.head(boxes, labels, graph)["rel_logits"]
            want = full[[index[tuple(p)] for p, k in zip(served.tolist(), ok) if k]]
            # the served pairs alone give other logits: the context differs
            alone = model.head(boxes, labels, served[torch.tensor(ok)])["rel_logits"]
            assert not torch.allclose(alone, want, atol=1e-4)
        else:
            want = model.head(boxes, labels, served[torch.tensor(ok)])["rel_logits"]
        assert torch.allclose(out["rel_logits"], want, atol=1e-5)
    with pytest.raises(SggInputError, match="context_pairs"):
        RelationModule(context_pairs="some")
