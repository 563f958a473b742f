"""PPG — pair proposal generation (DESIGN.md §5.3): spatial candidates, STAR's pair features, adversarial
autoencoder scoring (STAR's released weights or our own) and top-K selection.

``star_pair_features`` → ``PPG.score`` (lower = keep) → ``select_pairs``; ``candidate_pairs`` finds the
pairs worth scoring without building all N² of them; ``PairProposer`` chains the lot for the pipeline.
"""

from .candidates import PairPrior, UnknownClassWarning, candidate_pairs, normalised_distance
from .features import STAR_NUM_CLASSES, pair_feature_dim, spatial_pair_features, star_pair_features, union_rect_area
from .ppg import PPG, AutoEncoder
from .proposer import PairProposer, auto_budget, check_budget, resolve_budget, select_pairs

__all__ = [
    "STAR_NUM_CLASSES",
    "pair_feature_dim",
    "spatial_pair_features",
    "star_pair_features",
    "union_rect_area",
    "PPG",
    "AutoEncoder",
    "PairPrior",
    "UnknownClassWarning",
    "candidate_pairs",
    "normalised_distance",
    "PairProposer",
    "select_pairs",
    "auto_budget",
    "check_budget",
    "resolve_budget",
    "PPGModule",
    "PPGDataModule",
]


def __getattr__(name: str):
    # the Lightning pieces load on first use (importing pytorch_lightning is slow)
    if name in ("PPGModule", "PPGDataModule", "related_pairs"):
        from . import module

        return getattr(module, name)
    raise AttributeError(f"module 'sgg.pairs' has no attribute {name!r}")
