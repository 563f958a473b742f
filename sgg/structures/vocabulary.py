"""Names of object classes and predicates (index 0 of predicates is background); STAR's is the default."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

BACKGROUND = "__background__"


@dataclass(frozen=True)
class Vocabulary:
    """Object class names (0-based, no background) and predicate names (index 0 is background)."""

    objects: tuple[str, ...]
    predicates: tuple[str, ...]

    def __post_init__(self) -> None:
        objects = tuple(str(o) for o in self.objects)
        predicates = tuple(str(p) for p in self.predicates)
        if not predicates or predicates[0] != BACKGROUND:
            predicates = (BACKGROUND, *predicates)
        for name, seq in (("objects", objects), ("predicates", predicates)):
            if len(set(seq)) != len(seq):
                dup = sorted({s for s in seq if seq.count(s) > 1})
                raise ValueError(f"Vocabulary.{name}: duplicate names {dup}")
        if not objects:
            raise ValueError("Vocabulary.objects: must name at least one class")
        object.__setattr__(self, "objects", objects)
        object.__setattr__(self, "predicates", predicates)
        object.__setattr__(self, "_obj_index", {n: i for i, n in enumerate(objects)})
        object.__setattr__(self, "_pred_index", {n: i for i, n in enumerate(predicates)})

    @property
    def num_classes(self) -> int:
        return len(self.objects)

    @property
    def num_predicates(self) -> int:
        """Number of predicate slots, background included."""
        return len(self.predicates)

    def object_index(self, name: str) -> int:
        try:
            return self._obj_index[name]  # type: ignore[attr-defined]
        except KeyError:
            raise ValueError(f"unknown object class {name!r}; the vocabulary has: {', '.join(self.objects)}") from None

    def predicate_index(self, name: str) -> int:
        try:
            return self._pred_index[name]  # type: ignore[attr-defined]
        except KeyError:
            raise ValueError(
                f"unknown predicate {name!r}; the vocabulary has: {', '.join(self.predicates[1:])}"
            ) from None

    def to_dict(self) -> dict[str, list[str]]:
        return {"objects": list(self.objects), "predicates": list(self.predicates[1:])}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocabulary:
        if not isinstance(data, dict) or "objects" not in data or "predicates" not in data:
            raise ValueError("Vocabulary: expected a mapping with 'objects' and 'predicates' lists")
        return cls(tuple(data["objects"]), tuple(data["predicates"]))

    def combine(self, relation: Vocabulary) -> Vocabulary:
        """This (detector) vocabulary's objects with ``relation``'s predicates.

        Detector checkpoints name objects only; a relation head names objects and predicates. The object
        names must agree in the same order (indices are shared by both stages), else ``ValueError`` says where.
        """
        if self.objects != relation.objects:
            ours, theirs = set(self.objects), set(relation.objects)
            if ours == theirs:
                why = "the same names in a different order"
            else:
                why = (f"only in the detector: {sorted(ours - theirs)[:8]}; "
                       f"only in the relation vocabulary: {sorted(theirs - ours)[:8]}")
            raise ValueError(f"object vocabularies disagree ({why})")
        return Vocabulary(self.objects, relation.predicates)

    @property
    def has_predicates(self) -> bool:
        return len(self.predicates) > 1

    @classmethod
    def star(cls) -> Vocabulary:
        """STAR's 48 object classes and 58 predicates (the default vocabulary)."""
        return _star_vocabulary()

    def __repr__(self) -> str:
        return f"Vocabulary({len(self.objects)} classes, {len(self.predicates) - 1} predicates)"


@lru_cache(maxsize=1)
def _star_vocabulary() -> Vocabulary:
    text = resources.files("sgg.data").joinpath("star_vocabulary.json").read_text()
    return Vocabulary.from_dict(json.loads(text))


@lru_cache(maxsize=1)
def star_triplet_counts() -> np.ndarray:
    """STAR's training triplet counts, read once: (49, 49, 59) subject × object × predicate (index 0 of each
    axis background; classes and predicates in ``Vocabulary.star()`` order). Read-only: copy before changing."""
    text = resources.files("sgg.data").joinpath("star_triplet_counts.json").read_text()
    data = json.loads(text)
    counts = np.asarray(data["counts"] if isinstance(data, dict) else data, dtype=np.int64)
    counts.setflags(write=False)
    return counts
