"""Per-graph count normalisation (``count_norm``): the ranking of a graph's triplets for mean recall."""

from __future__ import annotations

import pytest
import torch

from sgg.errors import SggInputError
from sgg.relation_heads import build_head, count_normalised, load_relation_head, save_relation_head, set_ranking
from sgg.relation_heads.base import adjusted_scores
from sgg.structures import Detections, PairSet, SceneGraph, Vocabulary


def test_count_normalised_hand_worked():
    s = torch.tensor([[0.5, 0.4, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    # expected counts: predicate 1 0.4 + 0.7 + 0.1 = 1.2, predicate 2 1.0 → column 1 / 1.2^β, column 2 kept
    got = count_normalised(s, 1.0)
    want = torch.tensor([[0.5, 0.4 / 1.2, 0.1], [0.2, 0.7 / 1.2, 0.1], [0.1, 0.1 / 1.2, 0.8]])
    assert torch.allclose(got, want, atol=1e-7)
    half = count_normalised(s, 0.5)
    assert torch.allclose(half[:, 1], s[:, 1] / 1.2 ** 0.5, atol=1e-7)
    assert torch.equal(count_normalised(s, 0.0), s)
    empty = torch.zeros(0, 3)
    assert count_normalised(empty, 1.0).shape == (0, 3)


def test_count_normalised_no_boost_below_one_and_ranks_rare_first():
    """A predicate expected less than once is left alone; a frequent one is divided down, so a rare
    predicate's confident pair outranks the 10th copy of a frequent one."""
    s = torch.tensor([[0.1, 0.9, 0.0]] * 10 + [[0.2, 0.0, 0.6]])
    out = count_normalised(s, 1.0)
    assert torch.allclose(out[:, 2], s[:, 2])  # c = 0.6 < 1: kept
    assert torch.allclose(out[:10, 1], torch.full((10,), 0.1))  # 0.9 / 9
    fg = out[:, 1:].max(1).values
    assert int(fg.argmax()) == 10


def test_adjusted_scores_then_count_norm():
    z = torch.log(torch.tensor([[0.5, 0.4, 0.1], [0.1, 0.8, 0.1]]))
    lp = torch.log(torch.tensor([0.7, 0.2, 0.1]))
    assert torch.allclose(adjusted_scores(z, lp, 1.0, True, 0.5), count_normalised(adjusted_scores(z, lp, 1.0), 0.5))
    assert torch.allclose(adjusted_scores(z, lp, 0.0, True, 1.0), count_normalised(torch.exp(z), 1.0), atol=1e-6)


def _graph(vocab: Vocabulary) -> SceneGraph:
    g = torch.Generator().manual_seed(0)
    n = 12
    boxes = torch.cat([torch.rand(n, 2, generator=g) * 200, torch.full((n, 2), 12.0), torch.zeros(n, 1)], 1)
    boxes[:, 3] = 6.0
    det = Detections(boxes, torch.randint(0, 5, (n,), generator=g), torch.ones(n))
    return SceneGraph(det, PairSet.empty(), vocabulary=vocab, image_size=(256, 256))


@pytest.mark.parametrize("kind", ["mlp", "freq"])
def test_predict_with_count_norm_and_set_ranking(tmp_path, kind):
    vocab = Vocabulary.star()
    torch.manual_seed(0)
    head = build_head(kind, vocab, hidden=16, class_dim=4) if kind == "mlp" else build_head("freq", vocab)
    if kind == "freq":
        head.counts.uniform_(0, 5)
    head.eval()
    graph = _graph(vocab)
    plain = head.predict(graph)
    assert len(plain.pairs) > 0
    head.count_norm = 0.7
    normed = head.predict(graph)
    assert torch.allclose(normed.predicate_scores, count_normalised(plain.predicate_scores, 0.7), atol=1e-6)
    head.count_norm = 0.0
    path = save_relation_head(head, tmp_path / "h.pt", half=True)
    out = set_ranking(path, tmp_path / "h_cn.pt", count_norm=0.7, logit_adjust=0.0)
    a, b = torch.load(path, weights_only=True), torch.load(out, weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert b["config"]["count_norm"] == 0.7 and a["config"]["count_norm"] == 0.0
    again = load_relation_head(out).predict(graph)
    ref = load_relation_head(path)
    ref.count_norm = 0.7
    assert torch.allclose(again.predicate_scores, ref.predict(graph).predicate_scores, atol=1e-6)


def test_set_ranking_refuses_bad_settings(tmp_path):
    head = build_head("mlp", Vocabulary.star(), hidden=8, class_dim=4)
    path = save_relation_head(head, tmp_path / "h.pt")
    with pytest.raises(SggInputError, match="unknown setting"):
        set_ranking(path, hidden=3)
    with pytest.raises(SggInputError, match="count_norm must be >= 0"):
        set_ranking(path, count_norm=-1)
    assert torch.load(path, weights_only=True)["config"]["count_norm"] == 0.0  # nothing written
    with pytest.raises(SggInputError, match="not found"):
        set_ranking(tmp_path / "missing.pt", count_norm=1)


def test_logit_adjust_set_after_loading_is_saved_and_validated(tmp_path):
    head = build_head("mlp", Vocabulary.star(), hidden=8, class_dim=4)
    path = save_relation_head(head, tmp_path / "h.pt")
    loaded = load_relation_head(path)
    loaded.logit_adjust = 0.5
    assert loaded.config["logit_adjust"] == 0.5
    again = load_relation_head(save_relation_head(loaded, tmp_path / "h2.pt"))
    assert again.logit_adjust == 0.5
    for bad in (float("nan"), "1", True):
        with pytest.raises(SggInputError, match="logit_adjust must be a finite number"):
            loaded.logit_adjust = bad
    assert loaded.logit_adjust == 0.5
