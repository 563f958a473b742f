"""One pair-budget rule (sgg.pairs.check_budget) for the pipeline's ``pairs.budget`` and PairProposer."""

import numpy as np
import pytest
import torch

from sgg.errors import SggInputError
from sgg.pairs import PairProposer, check_budget, resolve_budget, select_pairs
from sgg.pipeline import pair_limit


@pytest.mark.parametrize("bad", [2.5, -1, -3.0, "lots", "Auto", True, False, [5], float("nan")])
def test_a_bad_budget_is_refused_the_same_way_everywhere(bad):
    with pytest.raises(SggInputError, match="pairs.budget"):
        pair_limit(bad, 10)
    with pytest.raises(SggInputError, match="PairProposer budget"):
        PairProposer(budget=bad)
    prop = PairProposer(budget=5)
    with pytest.raises(SggInputError, match="budget"):
        prop.budget = bad  # set after construction (the pipeline does): refused at once, not at the first scene
    assert prop.budget == 5
    with pytest.raises(SggInputError, match="budget"):
        select_pairs(torch.tensor([[0, 1]]), torch.tensor([1.0]), bad)


@pytest.mark.parametrize("good, n, want", [(None, 7, None), ("auto", 7, 10_000), ("auto", 1_000, 32_000),
                                           (0, 7, 0), (12, 7, 12), (1e4, 7, 10_000), (np.int64(3), 7, 3)])
def test_good_budgets_agree(good, n, want):
    assert pair_limit(good, n) == resolve_budget(good, n) == want
    prop = PairProposer(budget=good)
    assert resolve_budget(prop.budget, n) == want
    if good not in (None, "auto"):
        assert type(check_budget(good)) is int  # a plain int, as configs and checkpoints store it


def test_select_pairs_keeps_exactly_the_integer_budget():
    pairs = torch.tensor([[0, 1], [1, 2], [2, 0], [0, 2]])
    got = select_pairs(pairs, torch.tensor([0.1, 0.9, 0.5, 0.7]), 2.0)
    assert got.pairs.tolist() == [[1, 2], [0, 2]]


# ---------------------------------------------------------------------------------- pair-score convention
def _scene(n=60, seed=2):
    from sgg.structures import Detections, Vocabulary

    g = torch.Generator().manual_seed(seed)
    boxes = torch.cat([torch.rand(n, 2, generator=g) * 400, torch.rand(n, 2, generator=g) * 20 + 8,
                       torch.zeros(n, 1)], 1)
    ship, dock = (Vocabulary.star().object_index(c) for c in ("ship", "dock"))
    return Detections(boxes, torch.tensor([ship, dock] * (n // 2)), torch.ones(n))


@pytest.mark.parametrize("with_ppg", [True, False])
def test_proposed_pair_scores_rank_triplets_best_pair_first(with_ppg):
    """PairProposer's scores are in (0, 1], best first, so SceneGraph.triplets (predicate score × pair score)
    ranks the best pair first; raw PPG scores (lower = keep) negated were <= 0 and turned that order over."""
    from sgg.pairs import PPG, PairPrior
    from sgg.structures import SceneGraph, Vocabulary

    det = _scene()
    prop = PairProposer(PPG.from_star() if with_ppg else None, PairPrior.star(), budget=30)
    out = prop(det)
    assert len(out) == 30 and bool((out.scores > 0).all()) and bool((out.scores <= 1).all())
    assert bool((out.scores[:-1] >= out.scores[1:]).all())
    if with_ppg:
        raw = prop.score(det, out)
        assert torch.allclose(out.scores, torch.exp(-raw))
    voc = Vocabulary.star()
    flat = torch.full((len(out), voc.num_predicates), 1.0 / voc.num_predicates)  # every pair alike
    sg = SceneGraph(det, out, predicate_scores=flat, vocabulary=voc)
    top = sg.triplets(top_k=3)
    assert torch.stack([top["subject"], top["object"]], 1).tolist() == out.pairs[:3].tolist()


def test_infer_cli_pair_budget_uses_the_same_rule():
    from sgg.cli_support import UsageError
    from sgg.infer_cli import build_parser

    parse = build_parser().parse_args
    assert parse(["x.tif", "--out", "o", "--pair-budget", "AUTO"]).pair_budget == "auto"
    assert parse(["x.tif", "--out", "o", "--pair-budget", "1e4"]).pair_budget == 10000
    for bad in ("2.5", "-1", "many"):
        with pytest.raises(UsageError, match="--pair-budget"):
            parse(["x.tif", "--out", "o", "--pair-budget", bad])
