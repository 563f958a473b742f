"""Holistic multi-level detection over a whole scene (DESIGN.md §5.2), as in STAR's HOD-Net code.

``detect_scene`` runs a per-tile detector (any ``nn.Module`` mapping a float (B,3,H,W) batch in [0, 1] to a
list of tile-pixel :class:`~sgg.structures.Detections`) over a :class:`~sgg.io.RasterScene`:

* If the long side fits in one tile the image is detected once. Otherwise the pyramid has levels 0..L,
  halving until the long side fits a tile (``RasterScene.levels``); levels are swept coarse to fine with
  ``tile_size`` windows overlapping by ``overlap`` px (level pixels; STAR: 1024 and 200).
* ``zoom="guided"`` (STAR's behaviour): the coarsest level is swept whole; a finer level runs only the tiles
  that intersect an object found at a coarser level (score ≥ ``guide_threshold``), dilated by
  ``guide_margin`` level-0 px, so detail is looked for only where something is. ``zoom="full"`` runs every
  tile of every level.
* Tiles are read by the reader's thread pool ``prefetch`` tiles ahead of the model and batched
  ``batch_size`` at a time; a batch of unequal tiles is zero-padded and detections whose centre falls in the
  padding or on nodata are dropped. All-nodata tiles are skipped by the reader.
* Per-tile detections move to level-0 pixels and are merged (``sgg.detectors.merge``): border fragments,
  coarse small objects covered by a finer tile, class-wise rotated NMS within then across levels, and
  containment suppression.

The result is a :class:`~sgg.structures.SceneGraph` without pairs: objects, ``image_size``, ``georef``,
``image_path`` and ``metadata`` (levels, tiles run per level, timings).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from sgg.errors import SggInputError
from sgg.structures import Detections, SceneGraph, Vocabulary

from .merge import merge_detections, merge_single, tile_to_level0


# ------------------------------------------------------------------------------------------------ helpers
def _open_scene(scene: Any):
    from sgg.io import RasterScene

    if isinstance(scene, (str, os.PathLike)):
        path = Path(scene)
        if not path.exists():
            raise SggInputError("raster not found", path=path)
        return RasterScene.open(path)
    return scene


def _tile_geometry(tile: Any) -> tuple[tuple[float, float], float]:
    """Exact level-0 origin of a tile's top-left corner and level-0 px per tile px (mean of both axes:
    boxes scale isotropically; the axes differ only by rounding at levels that do not divide the size)."""
    origin = getattr(tile, "origin", None)
    factor = getattr(tile, "factor", None)
    if origin is None or factor is None:
        h, w = tile.array.shape[:2]
        win = tile.window
        return (float(win[0]), float(win[1])), 0.5 * (win[2] / w + win[3] / h)
    return (float(origin[0]), float(origin[1])), 0.5 * (float(factor[0]) + float(factor[1]))


def _to_batch(arrays: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """uint8 HxWxC tiles → float (B,3,Hmax,Wmax) in [0,1], zero-padded at the bottom/right."""
    if all(a.ndim == 3 and a.shape[2] == 3 and a.shape == arrays[0].shape for a in arrays):
        out = np.stack(arrays)  # the usual case: one copy, no padding
    else:
        hmax = max(a.shape[0] for a in arrays)
        wmax = max(a.shape[1] for a in arrays)
        out = np.zeros((len(arrays), hmax, wmax, 3), dtype=arrays[0].dtype)
        for i, a in enumerate(arrays):
            if a.ndim == 2:
                a = a[:, :, None]
            if a.shape[2] < 3:
                a = np.repeat(a[:, :, :1], 3, axis=2)
            out[i, : a.shape[0], : a.shape[1]] = a[:, :, :3]
    t = torch.from_numpy(out).to(device).permute(0, 3, 1, 2)
    if t.dtype == torch.uint8:
        return t.float().div_(255.0)
    return t.float()  # float scenes (RasterScene dtype="float32") are already in [0, 1]


def _valid_filter(det: Detections, shape: tuple[int, int], valid: np.ndarray | None) -> Detections:
    """Drop detections whose centre lies outside the tile's real pixels or on nodata."""
    if len(det) == 0:
        return det
    h, w = shape
    c = det.boxes.centers.detach().cpu()
    ok = (c[:, 0] >= 0) & (c[:, 0] < w) & (c[:, 1] >= 0) & (c[:, 1] < h)
    if valid is not None and not bool(np.all(valid)):
        ix = c[:, 0].clamp(0, w - 1).long().numpy()
        iy = c[:, 1].clamp(0, h - 1).long().numpy()
        ok &= torch.from_numpy(np.asarray(valid)[iy, ix].astype(bool))
    return det[ok.nonzero().flatten()] if not bool(ok.all()) else det


def _device_of(model: torch.nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    return p.device if p is not None else torch.device("cpu")


def _level_specs(scene: Any, tile_size: int, overlap: int, level: int) -> tuple[list[Any], np.ndarray]:
    """A level's grid (``TileSpec`` list) and its (T,4) level-0 windows, without reading pixels."""
    specs = list(scene.tile_windows(tile_size=tile_size, overlap=overlap, level=level))
    rows = [tuple(getattr(s, "window", s)) for s in specs]
    return specs, np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def select_guided(windows: np.ndarray, guides: torch.Tensor, margin: float) -> np.ndarray:
    """Indices of windows (T,4 xywh) that intersect any guide envelope (K,4 xyxy) dilated by ``margin``."""
    if len(guides) == 0 or len(windows) == 0:
        return np.zeros(0, dtype=np.int64)
    w = torch.as_tensor(windows, dtype=torch.float64)
    g = guides.double()
    g = torch.stack([g[:, 0] - margin, g[:, 1] - margin, g[:, 2] + margin, g[:, 3] + margin], dim=1)
    hit = (
        (w[:, None, 0] < g[None, :, 2])
        & (w[:, None, 0] + w[:, None, 2] > g[None, :, 0])
        & (w[:, None, 1] < g[None, :, 3])
        & (w[:, None, 1] + w[:, None, 3] > g[None, :, 1])
    ).any(dim=1)
    return hit.nonzero().flatten().numpy()


def _tiles(scene: Any, tile_size: int, overlap: int, level: int, specs: list[Any] | None, prefetch: int) -> Iterator[Any]:
    """Tiles of one level (all, or a subset of its grid), read ``prefetch`` ahead by the reader's threads
    with its bounded GDAL cache; all-nodata tiles are skipped."""
    kwargs: dict[str, Any] = {"specs": specs} if specs is not None else {}
    return iter(scene.tiles(tile_size=tile_size, overlap=overlap, level=level, skip_empty=True,
                            prefetch=prefetch, **kwargs))


# ------------------------------------------------------------------------------------------ main entry
def detect_scene(
    model: torch.nn.Module,
    scene: Any,
    tile_size: int | None = None,
    overlap: int | None = None,
    levels: str | Sequence[int] = "auto",
    zoom: str = "guided",
    batch_size: int = 2,
    prefetch: int = 2,
    score_threshold: float = 0.05,
    iou_threshold: float = 0.4,
    progress: bool = True,
    *,
    guide_threshold: float = 0.3,
    guide_margin: float | None = None,
    border_margin: float = 4.0,
    coarse_min_size: float = 32.0,
    containment_threshold: float = 0.8,
    vocabulary: Vocabulary | None = None,
) -> SceneGraph:
    """Detect every object of a scene (RasterScene or raster path) with holistic multi-level tiling.

    ``levels``: ``"auto"`` (the pyramid down to one tile) or explicit levels (``[0]`` = single-level
    sliding window). ``tile_size``/``overlap`` default to the checkpoint's ``inference`` hint (the training
    tile size and a quarter of it), else 1024 and 200 as in STAR. ``guide_margin`` defaults to ``overlap`` level-0 px. ``coarse_min_size`` (level px,
    0 disables): coarse-level objects shorter than this are dropped where a finer tile covers them.
    """
    hint = getattr(model, "inference", None) or {}
    tile_size = int(tile_size or hint.get("tile_size", 1024))  # the training tile size, else STAR's 1024
    if overlap is None:  # the checkpoint's overlap for its own tile size, else a quarter of the tile, ≤ 200
        same = hint.get("tile_size") == tile_size and "overlap" in hint
        overlap = int(hint["overlap"]) if same else min(200, tile_size // 4)
    if zoom not in ("guided", "full"):
        raise SggInputError(f"zoom must be 'guided' or 'full', got {zoom!r}")
    if tile_size < 32 or not 0 <= overlap < tile_size:
        raise SggInputError(f"need tile_size >= 32 and 0 <= overlap < tile_size (got {tile_size}, {overlap})")
    if batch_size < 1:
        raise SggInputError(f"batch_size must be >= 1, got {batch_size}")
    t_start = time.perf_counter()
    opened_here = isinstance(scene, (str, os.PathLike))
    scene = _open_scene(scene)
    width, height = int(scene.width), int(scene.height)
    if levels == "auto":
        lv = [0] if max(width, height) <= tile_size else [int(v) for v in scene.levels(tile_size)]
    else:
        lv = sorted({int(v) for v in levels})
        if not lv or lv[0] < 0:
            raise SggInputError(f"levels must be non-negative integers, got {levels!r}")
    lv = sorted(set(lv), reverse=True)  # coarse → fine
    vocabulary = vocabulary or getattr(model, "vocabulary", None) or Vocabulary.star()
    margin = float(overlap if guide_margin is None else guide_margin)
    device = _device_of(model)
    was_training = bool(getattr(model, "training", False))
    model.eval()

    parts: list[Detections] = []
    id_parts: list[torch.Tensor] = []
    tile_windows: list[tuple[float, ...]] = []
    tile_levels: list[int] = []
    tile_scales: list[float] = []
    tiles_info: dict[str, dict[str, int]] = {}
    t_wait = t_fwd = 0.0
    bar = _progress(progress)
    stream: Any = None
    try:
        for li, level in enumerate(lv):
            specs, windows = _level_specs(scene, tile_size, overlap, level)
            indices = None
            if zoom == "guided" and li > 0:
                found = Detections.cat(parts) if parts else Detections.empty()
                sel = found.scores >= guide_threshold
                guides = found.boxes[sel.nonzero().flatten()].envelope() if bool(sel.any()) else torch.zeros(0, 4)
                indices = select_guided(windows, guides, margin)
            n_sel = len(windows) if indices is None else len(indices)
            tiles_info[str(level)] = {"grid": int(len(windows)), "selected": int(n_sel), "run": 0}
            if n_sel == 0:
                continue
            if bar is not None:
                bar.total = (bar.total or 0) + n_sel
                bar.refresh()
            subset = None if indices is None else [specs[i] for i in indices]
            stream = _tiles(scene, tile_size, overlap, level, subset, prefetch)
            batch: list[Any] = []
            while True:  # the stream is closed (reader threads stopped) by the finally below
                t0 = time.perf_counter()
                tile = next(stream, None)
                t_wait += time.perf_counter() - t0
                if tile is not None:
                    batch.append(tile)
                if batch and (tile is None or len(batch) == batch_size):
                    t0 = time.perf_counter()
                    with torch.inference_mode():
                        out = model(_to_batch([t.array for t in batch], device))
                    t_fwd += time.perf_counter() - t0
                    if len(out) != len(batch):
                        raise ValueError(f"the detector returned {len(out)} results for a batch of {len(batch)} tiles")
                    for t, d in zip(batch, out):
                        origin, scale = _tile_geometry(t)
                        d = d.to("cpu")
                        d = d[(d.scores >= score_threshold).nonzero().flatten()]
                        d = _valid_filter(d, t.array.shape[:2], getattr(t, "valid", None))
                        tid = len(tile_windows)
                        tile_windows.append(tuple(float(v) for v in t.window))
                        tile_levels.append(level)
                        tile_scales.append(scale)
                        d = tile_to_level0(d, origin, scale, level)
                        parts.append(Detections(d.boxes, d.labels, d.scores, None, d.levels))
                        id_parts.append(torch.full((len(d),), tid, dtype=torch.long))
                    tiles_info[str(level)]["run"] += len(batch)
                    if bar is not None:
                        bar.update(len(batch))
                    batch = []
                if tile is None:
                    break
            stream = None
    finally:
        if stream is not None and hasattr(stream, "close"):
            stream.close()
        if bar is not None:
            bar.close()
        if was_training:
            model.train()
        if opened_here and hasattr(scene, "close"):
            scene.close()
    tile_ids = torch.cat(id_parts) if id_parts else torch.zeros(0, dtype=torch.long)
    t0 = time.perf_counter()
    merged = merge_detections(
        Detections.cat(parts) if parts else Detections.empty(),
        tile_ids,
        torch.tensor(tile_windows, dtype=torch.float32).reshape(-1, 4),
        torch.tensor(tile_levels, dtype=torch.long),
        torch.tensor(tile_scales, dtype=torch.float32),
        (width, height),
        iou_threshold=iou_threshold,
        border_margin=border_margin,
        containment_threshold=containment_threshold,
        coarse_min_size=coarse_min_size,
    )
    t_merge = time.perf_counter() - t0
    if len(merged) and int(merged.labels.max()) >= vocabulary.num_classes:
        raise SggInputError(
            f"the detector predicted class {int(merged.labels.max())} but its vocabulary has "
            f"{vocabulary.num_classes} classes"
        )
    total = time.perf_counter() - t_start
    meta = {
        "detector": type(model).__name__,
        "levels": lv,
        "zoom": zoom,
        "tile_size": tile_size,
        "overlap": overlap,
        "score_threshold": score_threshold,
        "iou_threshold": iou_threshold,
        "tiles": tiles_info,
        "timing": {"total_s": total, "forward_s": t_fwd, "read_wait_s": t_wait, "merge_s": t_merge},
    }
    path = getattr(scene, "path", None)
    return SceneGraph(
        merged,
        vocabulary=vocabulary,
        georef=getattr(scene, "georef", None),
        metadata=meta,
        image_path=None if path is None else str(path),
        image_size=(width, height),
    )


def _progress(enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=0, unit="tile", desc="detect", leave=False)


# ------------------------------------------------------------------------------ bring your own detections
def scenes_from_dota(
    path: str | os.PathLike | Iterable[str | os.PathLike],
    vocabulary: Vocabulary | None = None,
    aliases: Any = None,
    *,
    raster: Any = None,
    image_id: str | None = None,
    score_threshold: float = 0.0,
    iou_threshold: float | None = None,
) -> dict[str, SceneGraph]:
    """DOTA Task-1 results (``Task1_<class>.txt``, e.g. from mmrotate) → {image_id: SceneGraph}.

    The graphs continue down the pipeline like ``detect_scene``'s. ``raster`` (path or RasterScene) fills
    image size, georeference and path (then ``image_id`` defaults to the raster's file stem and only that
    image is returned). ``iou_threshold`` optionally re-runs class-wise rotated NMS + containment
    suppression (for unmerged per-patch results).
    """
    from sgg.datasets.dota import read_dota_results

    vocabulary = vocabulary or Vocabulary.star()
    results = read_dota_results(path, vocabulary=vocabulary, aliases=aliases)
    scene = _open_scene(raster) if raster is not None else None
    if scene is not None and image_id is None:
        image_id = Path(str(getattr(scene, "path", "") or "")).stem or None
    if image_id is not None:
        if image_id not in results:
            known = ", ".join(sorted(results)[:10]) or "none"
            raise SggInputError(f"no detections for image {image_id!r} (images in the results: {known})", path=path if isinstance(path, (str, os.PathLike)) else None)
        results = {image_id: results[image_id]}
    out: dict[str, SceneGraph] = {}
    for key, det in results.items():
        det = det[(det.scores >= score_threshold).nonzero().flatten()]
        if iou_threshold is not None:
            det = merge_single(det, iou_threshold)
        meta = {"source": "dota-results", "image_id": key}
        if scene is not None:
            sp = getattr(scene, "path", None)
            out[key] = SceneGraph(
                det, vocabulary=vocabulary, georef=getattr(scene, "georef", None), metadata=meta,
                image_path=None if sp is None else str(sp), image_size=(int(scene.width), int(scene.height)),
            )
        else:
            out[key] = SceneGraph(det, vocabulary=vocabulary, metadata=meta)
    return out


__all__ = ["detect_scene", "select_guided", "scenes_from_dota"]
