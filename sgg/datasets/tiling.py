"""Scene collections on disk and tile reading for the DataModules.

A data directory as ``sgg synth`` writes it: ``scenes/<id>.tif``, ``annotations/<id>.json`` (native
scene-graph JSON) and ``split.json`` (``{"train": [ids], "val": [...], "test": [...]}``).

Rasters are read with ``sgg.io.RasterScene`` (``.read(window, level)`` with ``window = (col_off, row_off,
width, height)`` in level-0 pixels, returning H×W×C uint8); pass :class:`ReaderCache` any ``opener`` with that
interface to swap it.
"""

from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sgg.errors import SggInputError
from sgg.io import RasterScene


def _to_chw_float(arr: Any) -> torch.Tensor:
    arr = getattr(arr, "array", arr)  # a Tile object or a plain array
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[..., None]
    elif a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):  # a (C,H,W) reader
        a = np.moveaxis(a, 0, -1)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    a = a[..., :3]
    t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)
    if t.dtype == torch.uint8:
        return t.float().div_(255.0)
    return t.float().clamp_(0, 1)


def read_window(reader, width: int, height: int, window: Sequence[float], out_size: int) -> torch.Tensor:
    """(3, out_size, out_size) float image in [0, 1] of a square level-0 ``window``, zero-padded off-image.

    Reads at the coarsest pyramid level that still has at least the output resolution, then resizes
    (antialiased when shrinking) to exactly ``out_size``. Corners and size may be fractional (scaled or
    turned training windows): the whole pixels covering the window are placed to the nearest output pixel.
    """
    x0, y0, size = float(window[0]), float(window[1]), float(window[2])
    s = out_size / size  # output pixels per level-0 pixel
    ix0, iy0 = max(0, math.floor(x0)), max(0, math.floor(y0))
    ix1, iy1 = min(width, math.ceil(x0 + size)), min(height, math.ceil(y0 + size))
    canvas = torch.zeros(3, out_size, out_size)
    if ix1 <= ix0 or iy1 <= iy0:
        return canvas
    level = max(0, int(math.floor(math.log2(1.0 / s) + 1e-9))) if s < 1 else 0
    level = min(level, max(0, int(math.floor(math.log2(max(1, min(ix1 - ix0, iy1 - iy0)))))))
    part = _to_chw_float(reader.read((ix0, iy0, ix1 - ix0, iy1 - iy0), level))
    # the whole-pixel read [ix0, ix1) at output scale, placed at the nearest output pixel; a fractional corner
    # puts it up to one level-0 pixel before the window (negative offset) and past its end: crop, don't squeeze
    ox, oy = round((ix0 - x0) * s), round((iy0 - y0) * s)
    pw, ph = max(1, round((ix1 - ix0) * s)), max(1, round((iy1 - iy0) * s))
    if part.shape[-2:] != (ph, pw):
        shrink = ph < part.shape[-2] or pw < part.shape[-1]
        part = F.interpolate(part[None], size=(ph, pw), mode="bilinear", align_corners=False, antialias=shrink)[0]
    cx0, cy0 = max(0, ox), max(0, oy)
    cx1, cy1 = min(out_size, ox + pw), min(out_size, oy + ph)
    if cx1 > cx0 and cy1 > cy0:
        canvas[:, cy0:cy1, cx0:cx1] = part[:, cy0 - oy : cy1 - oy, cx0 - ox : cx1 - ox].clamp_(0, 1)
    return canvas


def read_whole(reader, width: int, height: int) -> torch.Tensor:
    """(3, S, S) float image in [0, 1] of a whole ``width × height`` raster at level 0, S the long side
    (zero-padded below and right): level-0 pixel coordinates index it directly."""
    side = max(width, height)
    return read_window(reader, width, height, (0.0, 0.0, side, side), side)


@dataclass
class SceneRecord:
    """One scene's annotation as tensors (level-0 pixels) plus where its raster lives."""

    scene_id: str
    image_path: str
    width: int
    height: int
    boxes: torch.Tensor  # (N,5)
    labels: torch.Tensor  # (N,)
    difficult: torch.Tensor  # (N,) bool
    graph: Any  # the SceneGraph annotation
    # (N,) confidence of each box's angle when the boxes are oriented pseudo-boxes of horizontal labels
    # (sgg.datasets.pseudo_obb); None: the angles are labels (oriented data) or absent (horizontal data)
    angle_weight: torch.Tensor | None = None


def read_split(data_dir: str | os.PathLike) -> dict[str, list[str]]:
    """``split.json`` of a data directory → {"train": [...], "val": [...], "test": [...]}."""
    path = Path(data_dir) / "split.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SggInputError(f"cannot read split file: {exc.strerror or exc}", path=path) from None
    except json.JSONDecodeError as exc:
        raise SggInputError(f"not valid JSON: {exc.msg}", path=path, where=f"line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise SggInputError('expected {"train": [ids], "val": [ids], "test": [ids]}', path=path)
    out = {}
    for key in ("train", "val", "test"):
        ids = data.get(key, [])
        if not isinstance(ids, list):
            raise SggInputError("expected a list of scene ids", path=path, where=key)
        out[key] = [str(i) for i in ids]
    return out


def load_scenes(data_dir: str | os.PathLike, ids: Sequence[str], vocabulary=None) -> list[SceneRecord]:
    """Annotations of ``ids`` from ``data_dir/annotations/<id>.json``; the raster is the annotation's image
    path when it exists, else ``data_dir/scenes/<id>.tif``."""
    from sgg.datasets.native import read_scene_json

    data_dir = Path(data_dir)
    out = []
    for sid in ids:
        sg = read_scene_json(data_dir / "annotations" / f"{sid}.json", vocabulary)
        image = sg.image_path if sg.image_path and os.path.exists(sg.image_path) else str(data_dir / "scenes" / f"{sid}.tif")
        if sg.image_size is not None:
            w, h = sg.image_size
        else:
            with RasterScene.open(image) as r:
                w, h = int(r.width), int(r.height)
        det = sg.detections
        diff = sg.difficult if sg.difficult is not None else torch.zeros(len(det), dtype=torch.bool)
        out.append(SceneRecord(sid, image, int(w), int(h), det.boxes.tensor.float(), det.labels.long(), diff, sg))
    return out


class ReaderCache:
    """Per-process LRU of open rasters (at most ``max_open``; dropped when pickled into DataLoader workers)."""

    def __init__(self, opener: Callable | None = None, max_open: int = 16):
        self.opener, self.max_open = opener or RasterScene.open, int(max_open)
        self._open: OrderedDict[str, Any] = OrderedDict()

    def get(self, path: str):
        r = self._open.pop(path, None)
        if r is None:
            r = self.opener(path)
            while len(self._open) >= self.max_open:
                _, old = self._open.popitem(last=False)
                getattr(old, "close", lambda: None)()
        self._open[path] = r
        return r

    def __getstate__(self):
        return {"opener": self.opener, "max_open": self.max_open, "_open": OrderedDict()}


def sample_window(
    rng: np.random.Generator,
    width: int,
    height: int,
    size: int,
    centers: torch.Tensor | None = None,
    positive_fraction: float = 0.5,
    weights: np.ndarray | None = None,
    return_index: bool = False,
) -> tuple[int, int] | tuple[int, int, int | None]:
    """Random integer top-left corner of a ``size`` window inside the image (anchored at 0 if it is larger).

    With probability ``positive_fraction`` (and objects present) the window is placed so that a random
    object's centre falls in it (drawn with probabilities ``weights`` if given, else uniformly); otherwise
    the position is uniform. ``return_index`` adds that object's index (None for a uniform window).
    """

    def pick(extent: int, centre: float | None) -> int:
        hi = extent - size
        if hi <= 0:
            return 0
        if centre is None:
            return int(rng.integers(0, hi + 1))
        lo_c, hi_c = max(0, math.ceil(centre - size)), min(hi, math.floor(centre))
        return int(rng.integers(lo_c, hi_c + 1)) if hi_c >= lo_c else int(np.clip(round(centre - size / 2), 0, hi))

    cx = cy = k = None
    if centers is not None and len(centers) and rng.random() < positive_fraction:
        k = int(rng.choice(len(centers), p=weights)) if weights is not None else int(rng.integers(0, len(centers)))
        c = centers[k]
        cx, cy = float(c[0]), float(c[1])
    corner = pick(width, cx), pick(height, cy)
    return (*corner, k) if return_index else corner
