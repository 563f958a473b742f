"""Class-name aliases: map the names a file uses onto a :class:`~sgg.structures.Vocabulary`.

Files name classes in their own spelling (DOTA writes ``large-vehicle``, STAR ``truck``). Readers take an
``aliases`` mapping ``{file name: vocabulary name}``; a value of ``None`` drops objects of that class (for
classes the vocabulary has no counterpart for). Lookup order for a name: the alias mapping, the vocabulary
itself, then a loose match (case-insensitive, ``-`` and spaces read as ``_``). Anything else raises
:class:`~sgg.errors.SggInputError` naming the file, the line and (a short form of) the vocabulary.

``DOTA_TO_STAR`` maps DOTA v1.0/v1.5/v2.0 class names onto STAR's 48 classes. Choices:

- ``plane`` → ``airplane``; ``storage-tank`` → ``tank``; ``container-crane`` → ``crane``.
- ``harbor`` → ``dock``: DOTA's "harbor" boxes are the piers and quays ships moor at, which STAR calls
  ``dock`` (STAR's ``breakwater`` is a different structure).
- ``large-vehicle`` → ``truck`` (DOTA puts trucks, buses and trailers there); ``small-vehicle`` → ``car``.
- Same objects, STAR spelling: ``baseball-diamond``, ``tennis-court``, ``basketball-court``,
  ``ground-track-field``, ``soccer-ball-field``, ``roundabout``, ``bridge``, ``ship``.
- Dropped (``None``, STAR has no such class): ``helicopter``, ``swimming-pool``, ``helipad``, and
  ``airport`` (STAR annotates an airport's parts — runway, taxiway, apron, terminal — not the whole site).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from sgg.errors import SggInputError

DOTA_CLASSES: tuple[str, ...] = (
    "plane", "ship", "storage-tank", "baseball-diamond", "tennis-court", "basketball-court",
    "ground-track-field", "harbor", "bridge", "large-vehicle", "small-vehicle", "helicopter",
    "roundabout", "soccer-ball-field", "swimming-pool", "container-crane", "airport", "helipad",
)  # DOTA v1.0 (first 15), v1.5 adds container-crane, v2.0 adds airport and helipad

DOTA_TO_STAR: dict[str, str | None] = {
    "plane": "airplane",
    "ship": "ship",
    "storage-tank": "tank",
    "baseball-diamond": "baseball_diamond",
    "tennis-court": "tennis_court",
    "basketball-court": "basketball_court",
    "ground-track-field": "ground_track_field",
    "harbor": "dock",
    "bridge": "bridge",
    "large-vehicle": "truck",
    "small-vehicle": "car",
    "roundabout": "roundabout",
    "soccer-ball-field": "soccer_ball_field",
    "container-crane": "crane",
    "helicopter": None,
    "swimming-pool": None,
    "helipad": None,
    "airport": None,
}

# STAR name -> DOTA name for writing DOTA files from STAR-vocabulary graphs (the invertible part).
STAR_TO_DOTA: dict[str, str] = {v: k for k, v in DOTA_TO_STAR.items() if v is not None}


def _loose(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def short_list(names: Sequence[str], limit: int = 12) -> str:
    """``a, b, c, … (48 in all)`` — the vocabulary in an error message without flooding the terminal."""
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", … ({len(names)} in all)"


def resolve_aliases(aliases: Mapping[str, str | None] | str | None) -> Mapping[str, str | None]:
    """Accept a mapping, ``None`` (no aliases) or the name of a ready mapping (``"dota_to_star"``)."""
    if aliases is None:
        return {}
    if isinstance(aliases, str):
        key = _loose(aliases)
        if key in ("dota_to_star", "dota", "star"):
            return DOTA_TO_STAR
        raise SggInputError(f"unknown alias table {aliases!r}; the named table is 'dota_to_star' (Python also "
                           "takes a mapping {name: vocabulary name or None})")
    return aliases


def map_names(
    names: Iterable[str],
    table: Sequence[str],
    aliases: Mapping[str, str | None] | str | None = None,
    *,
    path: object | None = None,
    where: Sequence[str] | None = None,
    kind: str = "class",
) -> np.ndarray:
    """Indices of ``names`` in ``table`` (``-1`` for names aliased to ``None``, i.e. dropped).

    ``where[i]`` (e.g. ``"line 7"``) names the record of ``names[i]`` in error messages.
    """
    aliases = resolve_aliases(aliases)
    index = {n: i for i, n in enumerate(table)}
    loose = {_loose(n): i for i, n in enumerate(table)}
    cache: dict[str, int] = {}
    names = list(names)
    out = np.empty(len(names), dtype=np.int64)
    for i, name in enumerate(names):  # one dict lookup per name; unique names are resolved once
        hit = cache.get(name)
        if hit is None:
            target = aliases.get(name, name)
            if target is None:
                hit = -1
            elif target in index:
                hit = index[target]
            elif _loose(target) in loose:
                hit = loose[_loose(target)]
            else:
                extra = f" (alias of {name!r})" if target != name else ""
                if name in DOTA_TO_STAR and aliases is not DOTA_TO_STAR:
                    hint = "It is a DOTA name: use --aliases dota_to_star (Python: aliases='dota_to_star')"
                else:  # command line: another --vocabulary; Python: a mapping
                    hint = (f"Use a vocabulary that has it (--vocabulary), or map it (Python: "
                            f"aliases={{{name!r}: <vocabulary name or None to drop>}})")
                raise SggInputError(
                    f"unknown {kind} {target!r}{extra}; the vocabulary has: {short_list(table)}. {hint}",
                    path=path,
                    where=None if where is None else where[i],
                )
            cache[name] = hit
        out[i] = hit
    return out
