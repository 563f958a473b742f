"""Relation heads (DESIGN.md §5.4): RPCM, the pair-MLP and frequency-prior baselines, their training module.

``load_relation_head(path)`` → a head with ``.vocabulary`` and ``.predict(graph) -> SceneGraph`` (predicate
probabilities for the graph's pairs, proposed with the head's spatial rule when it has none);
``FrequencyPrior.from_star()`` is a head too.
"""

from sgg.datasets.relation_pairs import neighbour_pairs, pair_targets, training_pairs

from .base import RelationHead, count_normalised, scatter_mean, shared_object_mean
from .checkpoint import build_head, load_relation_head, save_relation_head, set_ranking
from .features import footprint_raster, object_geometry, pair_geometry
from .frequency import FrequencyPrior
from .models import RPCM, PairMLP

__all__ = [
    "RelationHead",
    "RPCM",
    "PairMLP",
    "FrequencyPrior",
    "build_head",
    "load_relation_head",
    "save_relation_head",
    "set_ranking",
    "count_normalised",
    "neighbour_pairs",
    "pair_targets",
    "training_pairs",
    "object_geometry",
    "pair_geometry",
    "footprint_raster",
    "scatter_mean",
    "shared_object_mean",
]
