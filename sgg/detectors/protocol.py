"""The tile-detector protocol that holistic inference (``detect_scene``) runs.

Any ``nn.Module`` can be the per-tile detector of sgg's holistic inference (HOD-Net, an mmrotate model
behind an adapter, a test double) when it has:

* ``vocabulary``: a :class:`~sgg.structures.Vocabulary` naming its classes (indices of ``labels``);
* ``inference``: a dict of hints for tiled inference (``tile_size``, ``overlap``; may be empty);
* ``__call__(images, with_features=False) -> list[Detections]``: ``images`` a float (B,3,H,W) batch in
  [0, 1]; one :class:`~sgg.structures.Detections` per image in that image's pixels. With
  ``with_features=True`` each also carries ``features`` (N, D) and ``class_scores`` (N, C+1).

Both attributes are set at construction, never patched on afterwards, and a detector without a vocabulary
is refused (no silent fallback to STAR's classes).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from sgg.errors import SggInputError
from sgg.structures import Detections, Vocabulary


@runtime_checkable
class TileDetector(Protocol):
    vocabulary: Vocabulary | None
    inference: dict[str, Any]

    def __call__(self, images: torch.Tensor, *, with_features: bool = False) -> list[Detections]: ...


def detector_vocabulary(model: Any, vocabulary: Vocabulary | None = None) -> Vocabulary:
    """The vocabulary detections of ``model`` are named in: ``vocabulary`` if given (checked against the
    model's class count when it has one), else the model's own; neither is an error."""
    own = getattr(model, "vocabulary", None)
    if vocabulary is None:
        vocabulary = own
    if not isinstance(vocabulary, Vocabulary):
        raise SggInputError(
            f"the detector {type(model).__name__} has no vocabulary: load it from a checkpoint "
            "(sgg.detectors.load_detector) or pass vocabulary=", where="detector")
    n = getattr(model, "num_classes", None)
    if isinstance(n, int) and n != vocabulary.num_classes:
        raise SggInputError(f"the detector predicts {n} classes but the vocabulary names {vocabulary.num_classes}",
                            where="detector")
    return vocabulary


def supports_features(model: Any) -> bool:
    """Whether ``model(images, with_features=True)`` is accepted (HOD-Net and adapters that declare it)."""
    import inspect

    try:
        params = inspect.signature(model.forward if hasattr(model, "forward") else model).parameters
    except (TypeError, ValueError):
        return False
    return "with_features" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
