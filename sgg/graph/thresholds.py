"""The two score thresholds of a detection run, kept apart and named.

* **evaluation threshold** (``sgg detect --score-threshold``, default 0.05): the lowest score the detector
  keeps. Low on purpose: mAP integrates precision over recall, so evaluation wants every detection. It is
  applied by the detector; ``sgg detect``'s native ``.json`` and ``--dota-out`` files keep all of them.
* **output threshold** (``--min-score`` of ``sgg detect``/``sgg export``, ``output_threshold=`` of
  :func:`sgg.graph.export`; default :data:`DEFAULT_OUTPUT_THRESHOLD` on the command line): the lowest
  score of an object in the layers written for people (GeoPackage, GeoJSON, GeoParquet, graph files).
  Relations touching a dropped object go with it. A float, or per class: ``"0.3,airplane=0.5"``.

Every written file records both (``evaluation_threshold``, ``output_threshold`` in the run record).
"""

from __future__ import annotations

from typing import Any

import torch

from sgg.errors import SggInputError

DEFAULT_OUTPUT_THRESHOLD = 0.3
Threshold = float | dict


def _check(value: Any, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SggInputError(f"{what}: expected a number in [0, 1], got {value!r}") from None
    if not 0.0 <= v <= 1.0:  # also refuses NaN
        raise SggInputError(f"{what}: {v:g} is outside [0, 1]")
    return v


def parse_threshold(text: str | float | dict | None) -> Threshold | None:
    """``0.3`` / ``"0.3"`` → 0.3; ``"0.3,airplane=0.5"`` → ``{"default": 0.3, "airplane": 0.5}``; values in [0, 1]."""
    if text is None or isinstance(text, dict):
        return None if text is None else {str(k): _check(v, f"output threshold of {k!r}") for k, v in text.items()}
    if not isinstance(text, str):
        return _check(text, "output threshold")
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, val = part.rpartition("=")
        key = name.strip() if sep else "default"
        if key in out:
            raise SggInputError(f"output threshold: {key!r} given twice in {text!r}")
        out[key] = _check(val.strip(), f"output threshold {part!r}")
    if not out:
        raise SggInputError(f"output threshold: nothing in {text!r}")
    return out["default"] if list(out) == ["default"] else out


def class_thresholds(threshold: Threshold, classes: tuple[str, ...] | list[str]) -> torch.Tensor:
    """(C,) threshold per class index; a per-class dict falls back to its ``default`` (else 0)."""
    if not isinstance(threshold, dict):
        return torch.full((len(classes),), _check(threshold, "output threshold"))
    unknown = sorted(set(threshold) - set(classes) - {"default"})
    if unknown:
        raise SggInputError(f"output threshold: classes {unknown} are not in the vocabulary")
    index = {c: i for i, c in enumerate(classes)}
    t = torch.full((len(classes),), _check(threshold.get("default", 0.0), "output threshold"))
    for name, v in threshold.items():
        if name != "default":
            t[index[name]] = _check(v, f"output threshold of {name!r}")
    return t


def select_objects(sg: Any, threshold: Threshold | None) -> Any:
    """The scene graph with the objects scoring at least ``threshold`` (per class if a dict) and the pairs
    between kept objects; records both thresholds in ``metadata["thresholds"]``. None: ``sg`` itself."""
    threshold = parse_threshold(threshold)
    if threshold is None:  # nothing dropped, metadata untouched (exact round trips)
        return sg
    record = threshold_record(sg, threshold)
    det = sg.detections
    thr = class_thresholds(threshold, sg.vocabulary.objects).to(det.scores.device)
    keep = det.scores >= thr[det.labels] if len(det) else torch.zeros(0, dtype=torch.bool)
    record["objects_dropped"] = int((~keep).sum())
    idx = keep.nonzero().flatten()
    remap = torch.full((len(det),), -1, dtype=torch.long, device=det.scores.device)
    remap[idx] = torch.arange(len(idx), device=remap.device)
    p = sg.pairs.pairs.long()
    keep_p = (keep[p[:, 0]] & keep[p[:, 1]]) if len(p) else torch.zeros(0, dtype=torch.bool)
    from sgg.structures import PairSet

    pair_scores = None if sg.pairs.scores is None else sg.pairs.scores[keep_p]
    pairs = PairSet(remap[p[keep_p]].reshape(-1, 2), pair_scores)
    return sg.replace(
        detections=det[idx],
        pairs=pairs,
        predicate_scores=None if sg.predicate_scores is None else sg.predicate_scores[keep_p],
        predicate_labels=None if sg.predicate_labels is None else sg.predicate_labels[keep_p],
        difficult=None if sg.difficult is None else sg.difficult[idx],
        metadata={**sg.metadata, "thresholds": record},
    )


def threshold_record(sg: Any, threshold: Threshold | None) -> dict[str, Any]:
    """``{"evaluation": detector's score threshold or None, "output": threshold or None}``.

    An output threshold recorded earlier (a file exported again) is kept when no new one is given."""
    prev = sg.metadata.get("thresholds") or {}
    evaluation = sg.metadata.get("score_threshold", prev.get("evaluation"))
    return {"evaluation": evaluation, "output": prev.get("output") if threshold is None else threshold}

