"""The scene's ground sample distance (metres per pixel) against a detector's training range.

Where the GSD comes from (:func:`resolve_gsd`: an argument, a projected raster's own, or a DOTA label's
``gsd:`` header beside the image), what range a checkpoint was trained at (:func:`model_gsd_range`), and
the finest pyramid level that shows objects at the training scale (:func:`gsd_min_level`).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any


def model_gsd_range(model: Any) -> tuple[float, float] | None:
    """The ``[min, max]`` ground sampling distance (m/px) a detector was trained on, if its checkpoint says."""
    rng = (getattr(model, "config", None) or {}).get("gsd_range") or (getattr(model, "inference", None) or {}).get(
        "gsd_range")
    return None if not rng else (float(rng[0]), float(rng[1]))


FAR_OUTSIDE = 1.5  # a raster coarser than this × the model's coarsest training GSD is warned about


def gsd_min_level(gsd: float | None, gsd_range: tuple[float, float] | None, name: str = "the raster") -> int:
    """Finest pyramid level to detect at so objects appear at the training scale, warning when unsure.

    A raster finer than the model's range is halved ``round(log2(min / gsd))`` times (a 0.12 m DOTA image
    seen by a model trained at ≥ 0.33 m starts at level 2, 0.46 m); within the range, level 0; coarser than
    the range: level 0 and a warning that objects may be too small to find (e.g. Landsat's 30 m). Unknown
    GSD (no projected CRS and no ``gsd=``): level 0 and a warning. Warnings are ``UserWarning``s (the
    command line shows them once through its warning channel).
    """
    if gsd_range is None:
        return 0
    lo, hi = gsd_range
    if gsd is None or not gsd > 0:
        warnings.warn(f"{name}: ground sampling distance unknown; detecting at full resolution as if it were "
                      f"within the model's training range {lo:g}–{hi:g} m (pass gsd= / --gsd)", stacklevel=3)
        return 0
    if gsd > hi * FAR_OUTSIDE:
        warnings.warn(f"{name}: {gsd:g} m pixels are far coarser than the model's training range {lo:g}–{hi:g} m; "
                      "objects may be too small to detect", stacklevel=3)
        return 0
    return max(0, int(round(math.log2(lo / gsd)))) if gsd < lo else 0


def dota_label_gsd(image: str | os.PathLike) -> tuple[float, Path] | None:
    """``(gsd, label file)`` from the ``gsd:`` header of the DOTA label file of an image, if one is there.

    Looked for beside the image (``P0706.png`` ↔ ``P0706.txt``) and in DOTA's layout (``images/P0706.png``
    ↔ ``labelTxt/P0706.txt``). Only the header is used (:func:`sgg.datasets.dota.read_dota_header`);
    ``gsd:null`` or no header gives ``None``; a header that is not a positive number is warned about (naming
    file and line) and ignored.
    """
    from sgg.datasets.dota import parse_gsd, read_dota_header

    image = Path(image)
    for label in (image.with_suffix(".txt"), image.parent.parent / "labelTxt" / f"{image.stem}.txt"):
        if not label.is_file() or label == image or "gsd" not in (header := read_dota_header(label)):
            continue
        value, lineno = header["gsd"]
        try:
            gsd = parse_gsd(value)
        except ValueError:
            gsd = float("nan")
        if gsd is None:
            return None
        if not 0 < gsd < math.inf:
            warnings.warn(f"{label}, line {lineno}: gsd {value!r} is not a positive number; ignored", stacklevel=2)
            return None
        return gsd, label
    return None


def resolve_gsd(scene: Any, gsd: float | None = None) -> tuple[float | None, str | None, str | None]:
    """The scene's metres per pixel and where it came from: ``(gsd, source, label file)``.

    In order: the ``gsd`` given (source ``"argument"``), the raster's own (a projected CRS: ``"raster"``),
    the ``gsd:`` header of a DOTA label file beside the image (``"dota-label"``, :func:`dota_label_gsd`);
    else ``(None, None, None)``.
    """
    if gsd is not None:
        return float(gsd), "argument", None
    own = getattr(scene, "gsd", None)
    if own is not None and own > 0:
        return float(own), "raster", None
    path = getattr(scene, "path", None)
    found = dota_label_gsd(path) if path else None
    if found is not None:
        return found[0], "dota-label", str(found[1])
    return None, None, None


__all__ = ["model_gsd_range", "gsd_min_level", "dota_label_gsd", "resolve_gsd", "FAR_OUTSIDE"]
