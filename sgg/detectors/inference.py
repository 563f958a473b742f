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
* GSD: the scene's metres per pixel (``gsd=``, a projected raster's own, or a DOTA label's ``gsd:`` header
  beside the image: :func:`resolve_gsd`) against the checkpoint's training ``gsd_range`` sets the finest
  level (:func:`gsd_min_level`); objects impossibly large in metres for their class are then dropped
  (:mod:`sgg.detectors.sizes`, ``size_filter=False`` keeps them).

The result is a :class:`~sgg.structures.SceneGraph` without pairs: objects, ``image_size``, ``georef``,
``image_path`` and ``metadata`` (levels, tiles run per level, timings).

``detect_scene`` is three parts that can be used on their own: :func:`plan_scene` (pyramid levels and tile
grids, nothing read), :func:`run_tiles` (a generator of per-tile results in level-0 pixels; a ``cache``
mapping lets a resumable ledger skip finished tiles) and :func:`merge_tiles` (the cross-tile/level merge).
The model follows :class:`~sgg.detectors.protocol.TileDetector`. With ``with_features=True`` every kept
object carries the detector's per-object feature (D = the box head's representation size, 256 for the
shipped weights, stored fp16: 512 bytes an object, 10 MB for 20,000 objects) and its class-score vector.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sgg.errors import SggInputError
from sgg.io.memory import reuse_freed_memory
from sgg.structures import Detections, SceneGraph, Vocabulary

from .gsd import dota_label_gsd, gsd_min_level, model_gsd_range, resolve_gsd
from .merge import join_and_suppress, linear_classes, merge_detections, merge_single, tile_to_level0
from .protocol import detector_vocabulary, supports_features
from .tta import TTADetector

if TYPE_CHECKING:
    from sgg.io import RasterScene


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


# ------------------------------------------------------------------------------------------------ plan
@dataclass(frozen=True)
class LevelPlan:
    """One pyramid level's tile grid: reader specs and their (T,4) level-0 ``x, y, w, h`` windows."""

    level: int
    specs: list[Any]
    windows: np.ndarray


@dataclass(frozen=True)
class DetectionPlan:
    """Where holistic inference looks: levels coarse → fine with their grids, before any pixel is read."""

    image_size: tuple[int, int]
    tile_size: int
    overlap: int
    zoom: str
    levels: list[LevelPlan]
    guide_threshold: float = 0.3
    guide_margin: float = 0.0

    @property
    def max_tiles(self) -> int:
        """Tiles if every level ran in full (guided zoom runs fewer)."""
        return int(sum(len(lp.windows) for lp in self.levels))


def resolve_tiling(model: Any, tile_size: int | None, overlap: int | None) -> tuple[int, int]:
    """Tile size and overlap: given values, else the checkpoint's ``inference`` hint (its training tile
    size and that size's overlap, or a quarter of the tile, ≤ 200), else STAR's 1024/200."""
    hint = getattr(model, "inference", None) or {}
    tile_size = int(tile_size or hint.get("tile_size", 1024))
    if overlap is None:
        same = hint.get("tile_size") == tile_size and "overlap" in hint
        overlap = int(hint["overlap"]) if same else min(200, tile_size // 4)
    return tile_size, int(overlap)


def plan_scene(scene: Any, tile_size: int = 1024, overlap: int = 200, levels: str | Sequence[int] = "auto",
               zoom: str = "guided", *, guide_threshold: float = 0.3, guide_margin: float | None = None,
               min_level: int = 0) -> DetectionPlan:
    """Pyramid levels (``"auto"``: halving until the long side fits one tile; or explicit levels) and each
    level's tile grid for an open :class:`~sgg.io.RasterScene`. ``min_level`` (from the GSD,
    :func:`gsd_min_level`) drops the auto levels finer than it (the image is read halved that many times)."""
    if zoom not in ("guided", "full"):
        raise SggInputError(f"zoom must be 'guided' or 'full', got {zoom!r}")
    if tile_size < 32 or not 0 <= overlap < tile_size:
        raise SggInputError(f"need tile_size >= 32 and 0 <= overlap < tile_size (got {tile_size}, {overlap})")
    width, height = int(scene.width), int(scene.height)
    if isinstance(levels, str):
        if levels != "auto":
            raise SggInputError(f"levels must be 'auto' or a list of integers, got {levels!r}")
        lv = [0] if max(width, height) <= tile_size else [int(v) for v in scene.levels(tile_size)]
        if min_level > 0:
            lv = [v for v in lv if v >= min_level] or [int(min_level)]
    else:
        lv = sorted({int(v) for v in levels})
        if not lv or lv[0] < 0:
            raise SggInputError(f"levels must be non-negative integers, got {levels!r}")
    plans = []
    for level in sorted(set(lv), reverse=True):  # coarse → fine
        specs = list(scene.tile_windows(tile_size=tile_size, overlap=overlap, level=level))
        rows = [tuple(getattr(sp, "window", sp)) for sp in specs]
        plans.append(LevelPlan(level, specs, np.asarray(rows, dtype=np.float64).reshape(-1, 4)))
    margin = float(overlap if guide_margin is None else guide_margin)
    return DetectionPlan((width, height), tile_size, overlap, zoom, plans, guide_threshold, margin)


# ------------------------------------------------------------------------------------------- run tiles
@dataclass
class TileResult:
    """Detections of one tile, already in level-0 pixels (CPU), with where they came from."""

    level: int
    window: tuple[float, float, float, float]  # level-0 x, y, w, h
    scale: float  # level-0 px per tile px
    detections: Detections

    @property
    def key(self) -> str:
        """Stable identity of the tile within a plan (ledger key, with the run's settings)."""
        return tile_key(self.level, self.window)


def tile_key(level: int, window: Sequence[float]) -> str:
    return f"L{int(level)}:" + ",".join(f"{float(v):.1f}" for v in window)


@dataclass
class RunStats:
    """Counters ``run_tiles`` fills while it runs (timings in seconds)."""

    tiles: dict[str, dict[str, int]] = field(default_factory=dict)
    forward_s: float = 0.0
    read_wait_s: float = 0.0
    cached: int = 0


ProgressFn = Callable[[int, int, int], None]  # (level, tiles done at this level, tiles at this level)


def run_tiles(
    model: torch.nn.Module,
    scene: Any,
    plan: DetectionPlan,
    *,
    batch_size: int = 2,
    prefetch: int = 2,
    score_threshold: float = 0.05,
    with_features: bool = False,
    cache: MutableMapping[str, TileResult] | None = None,
    progress: ProgressFn | None = None,
    stats: RunStats | None = None,
) -> Iterator[TileResult]:
    """Run the detector over the plan's tiles, coarse to fine, yielding one :class:`TileResult` a tile.

    Guided zoom selects a finer level's tiles from what coarser levels found. Tiles whose key is in
    ``cache`` are not read nor run (their stored result is yielded); new results are stored in it.
    Until the generator is exhausted or closed, the process's allocator keeps freed memory paged in
    (:func:`sgg.io.memory.reuse_freed_memory`): ``close()`` a generator you stop early.
    """
    if batch_size < 1:
        raise SggInputError(f"batch_size must be >= 1, got {batch_size}")
    if with_features and not supports_features(model):
        raise SggInputError(f"the detector {type(model).__name__} cannot return per-object features",
                            where="detector")
    stats = stats if stats is not None else RunStats()
    with reuse_freed_memory():  # the model's activations are re-allocated every tile: keep them paged in
        yield from _run_levels(model, scene, plan, batch_size, prefetch, score_threshold, with_features, cache,
                               progress, stats)


def _run_levels(model, scene, plan: DetectionPlan, batch_size: int, prefetch: int, score_threshold: float,
                with_features: bool, cache: MutableMapping[str, TileResult] | None, progress: ProgressFn | None,
                stats: RunStats) -> Iterator[TileResult]:
    device = _device_of(model)
    found: list[Detections] = []
    for li, lp in enumerate(plan.levels):
        indices = np.arange(len(lp.windows))
        if plan.zoom == "guided" and li > 0:
            seen = Detections.cat(found) if found else Detections.empty()
            sel = (seen.scores >= plan.guide_threshold).nonzero().flatten()
            guides = seen.boxes[sel].envelope() if len(sel) else torch.zeros(0, 4)
            indices = select_guided(lp.windows, guides, plan.guide_margin)
        info = stats.tiles.setdefault(str(lp.level), {"grid": int(len(lp.windows)), "selected": 0, "run": 0})
        info["selected"] = int(len(indices))
        todo = []
        done = 0
        for i in indices:
            hit = cache.get(tile_key(lp.level, lp.windows[i])) if cache is not None else None
            if hit is not None and with_features and len(hit.detections) and hit.detections.features is None:
                hit = None  # stored by a run without features: run the tile again
            if hit is None:
                todo.append(lp.specs[i])
                continue
            stats.cached += 1
            done += 1
            found.append(hit.detections)
            yield hit
        if progress is not None and len(indices):
            progress(lp.level, done, len(indices))
        if not todo:
            continue
        stream = iter(scene.tiles(tile_size=plan.tile_size, overlap=plan.overlap, level=lp.level,
                                  skip_empty=True, prefetch=prefetch, specs=todo))
        try:
            batch: list[Any] = []
            while True:
                t0 = time.perf_counter()
                tile = next(stream, None)
                stats.read_wait_s += time.perf_counter() - t0
                if tile is not None:
                    batch.append(tile)
                if batch and (tile is None or len(batch) == batch_size):
                    for res in _run_batch(model, batch, lp.level, device, score_threshold, with_features, stats):
                        if cache is not None:
                            cache[res.key] = res
                        found.append(res.detections)
                        yield res
                    info["run"] += len(batch)
                    done += len(batch)
                    if progress is not None:
                        progress(lp.level, done, len(indices))
                    batch = []
                if tile is None:
                    break
        finally:  # stop the reader's prefetch threads even when the consumer stops early
            if hasattr(stream, "close"):
                stream.close()


def _run_batch(model, batch: list[Any], level: int, device: torch.device, score_threshold: float,
               with_features: bool, stats: RunStats) -> list[TileResult]:
    t0 = time.perf_counter()
    with torch.inference_mode():
        images = _to_batch([t.array for t in batch], device)
        out = model(images, with_features=True) if with_features else model(images)
    stats.forward_s += time.perf_counter() - t0
    if len(out) != len(batch):
        raise ValueError(f"the detector returned {len(out)} results for a batch of {len(batch)} tiles")
    results = []
    for t, d in zip(batch, out):
        origin, scale = _tile_geometry(t)
        d = d.to("cpu")
        d = d[(d.scores >= score_threshold).nonzero().flatten()]
        d = _valid_filter(d, t.array.shape[:2], getattr(t, "valid", None))
        if d.features is not None:
            d = Detections(d.boxes, d.labels, d.scores, d.features.half(), d.levels, d.class_scores)
        d = tile_to_level0(d, origin, scale, level)
        results.append(TileResult(level, tuple(float(v) for v in t.window), scale, d))
    return results


# ----------------------------------------------------------------------------------------------- merge
def merge_tiles(results: Sequence[TileResult], image_size: tuple[int, int], *, iou_threshold: float = 0.4,
                border_margin: float = 4.0, containment_threshold: float = 0.8,
                coarse_min_size: float = 32.0, join_classes: Sequence[int | Sequence[int]] = ()) -> Detections:
    """Merge per-tile results into the scene's objects (``sgg.detectors.merge.merge_detections``)."""
    dets = [r.detections for r in results]
    tile_ids = torch.cat([torch.full((len(d),), i, dtype=torch.long) for i, d in enumerate(dets)]) if dets \
        else torch.zeros(0, dtype=torch.long)
    return merge_detections(
        Detections.cat(dets) if dets else Detections.empty(),
        tile_ids,
        torch.tensor([r.window for r in results], dtype=torch.float32).reshape(-1, 4),
        torch.tensor([r.level for r in results], dtype=torch.long),
        torch.tensor([r.scale for r in results], dtype=torch.float32),
        image_size,
        iou_threshold=iou_threshold,
        border_margin=border_margin,
        containment_threshold=containment_threshold,
        coarse_min_size=coarse_min_size,
        join_classes=join_classes,
    )


# ------------------------------------------------------------------------------------------ main entry
def detect_scene(
    model: torch.nn.Module,
    scene: RasterScene | str | os.PathLike,
    tile_size: int | None = None,
    overlap: int | None = None,
    levels: str | Sequence[int] = "auto",
    zoom: str = "guided",
    batch_size: int = 2,
    prefetch: int = 2,
    score_threshold: float = 0.05,
    iou_threshold: float = 0.4,
    progress: bool | ProgressFn = True,
    *,
    with_features: bool = False,
    cache: MutableMapping[str, TileResult] | None = None,
    guide_threshold: float = 0.3,
    guide_margin: float | None = None,
    border_margin: float = 4.0,
    coarse_min_size: float = 32.0,
    containment_threshold: float = 0.8,
    vocabulary: Vocabulary | None = None,
    gsd: float | None = None,
    size_filter: bool = True,
    join_linear: bool | str | Sequence[str] = True,
) -> SceneGraph:
    """Detect every object of a scene (RasterScene or raster path) with holistic multi-level tiling.

    ``levels``: ``"auto"`` (the pyramid down to one tile) or explicit levels (``[0]`` = single-level
    sliding window). ``tile_size``/``overlap`` default to the checkpoint's ``inference`` hint, else 1024 and
    200 as in STAR. ``guide_margin`` defaults to ``overlap`` level-0 px. ``coarse_min_size`` (level px, 0
    disables): coarse-level objects shorter than this are dropped where a finer tile covers them.
    ``with_features``: objects carry ``features`` (N, D fp16) and ``class_scores`` (N, C+1).
    ``progress``: a tqdm bar per level (``True``), nothing (``False``) or ``fn(level, done, total)``.
    ``cache``: a mapping of finished tiles (see :func:`run_tiles`).
    ``gsd``: metres per pixel, overriding the raster's own (projected CRS) and a DOTA label's ``gsd:`` header
    beside the image (:func:`resolve_gsd`; ``metadata["gsd_source"]`` says which was used); with the model's
    training range (checkpoint ``gsd_range``) it sets the finest auto level (:func:`gsd_min_level`).
    ``size_filter``: when the GSD is known, drop objects too large in metres for their class
    (:mod:`sgg.detectors.sizes`), counted in ``metadata["size_filter"]``.
    ``join_linear``: join collinear pieces of long thin objects cut by tiles (a runway, a dock) into one box
    (:func:`sgg.detectors.merge.join_collinear`): ``True`` the vocabulary's
    :data:`~sgg.detectors.merge.LINEAR_CLASSES`, ``False`` none, or class names.
    """
    vocabulary = detector_vocabulary(model, vocabulary)
    try:
        join_classes = linear_classes(list(vocabulary.objects), join_linear)
    except ValueError as exc:
        raise SggInputError(str(exc), where="join_linear") from None
    tile_size, overlap = resolve_tiling(model, tile_size, overlap)
    t_start = time.perf_counter()
    opened_here = isinstance(scene, (str, os.PathLike))
    scene = _open_scene(scene)
    was_training = bool(getattr(model, "training", False))
    model.eval()
    stats = RunStats()
    bars = _LevelBars() if progress is True else None
    try:
        scene_gsd, gsd_source, gsd_label = resolve_gsd(scene, gsd)
        min_level = gsd_min_level(scene_gsd, model_gsd_range(model), str(getattr(scene, "path", "the raster")))
        plan = plan_scene(scene, tile_size, overlap, levels, zoom, guide_threshold=guide_threshold,
                          guide_margin=guide_margin, min_level=min_level)
        results = list(run_tiles(model, scene, plan, batch_size=batch_size, prefetch=prefetch,
                                 score_threshold=score_threshold, with_features=with_features, cache=cache,
                                 progress=bars if bars is not None else (progress or None), stats=stats))
    finally:
        if bars is not None:
            bars.close()
        if was_training:
            model.train()
        if opened_here and hasattr(scene, "close"):
            scene.close()
    t0 = time.perf_counter()
    merged = merge_tiles(results, plan.image_size, iou_threshold=iou_threshold, border_margin=border_margin,
                         containment_threshold=containment_threshold, coarse_min_size=coarse_min_size,
                         join_classes=join_classes)
    t_merge = time.perf_counter() - t0
    if len(merged) and int(merged.labels.max()) >= vocabulary.num_classes:
        raise SggInputError(
            f"the detector predicted class {int(merged.labels.max())} but its vocabulary has "
            f"{vocabulary.num_classes} classes"
        )
    meta = {
        "detector": type(model).__name__,
        **({"tta": list(model.views)} if isinstance(model, TTADetector) else {}),
        "levels": [lp.level for lp in plan.levels],
        "gsd": scene_gsd,
        "gsd_source": gsd_source,
        "zoom": zoom,
        "tile_size": tile_size,
        "overlap": overlap,
        "score_threshold": score_threshold,
        "iou_threshold": iou_threshold,
        "join_linear": [vocabulary.objects[c] for c in join_classes],
        "tiles": stats.tiles,
        "tiles_from_cache": stats.cached,
        "features": {"dim": int(merged.features.shape[1]), "dtype": "float16"} if merged.features is not None else None,
        "timing": {"total_s": time.perf_counter() - t_start, "forward_s": stats.forward_s,
                   "read_wait_s": stats.read_wait_s, "merge_s": t_merge},
    }
    path = getattr(scene, "path", None)
    inside = merged.centred_inside(plan.image_size)  # coarse levels can place a centre past the edge
    meta["dropped_outside"] = len(merged) - len(inside)
    if gsd_label is not None:
        meta["gsd_label"] = gsd_label
    meta["size_filter"] = {"applied": bool(size_filter and scene_gsd), "dropped": 0, "by_class": {}}
    if size_filter and scene_gsd:
        from .sizes import filter_sizes

        inside, by_class = filter_sizes(inside, vocabulary, scene_gsd)
        meta["size_filter"].update(dropped=sum(by_class.values()), by_class=by_class)
    return SceneGraph(
        inside,
        vocabulary=vocabulary,
        georef=getattr(scene, "georef", None),
        metadata=meta,
        image_path=None if path is None else str(path),
        image_size=plan.image_size,
    )


class _LevelBars:
    """One tqdm bar per pyramid level (totals are known when a level starts); silent when stderr is not
    a terminal (tqdm's ``disable=None``)."""

    def __init__(self) -> None:
        self.bar = None
        self.level: int | None = None

    def __call__(self, level: int, done: int, total: int) -> None:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover
            return
        if level != self.level:
            self.close()
            self.level = level
            self.bar = tqdm(total=total, unit="tile", desc=f"detect level {level}", leave=False, disable=None)
        if self.bar is not None:
            self.bar.n = done
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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
    join_linear: bool | str | Sequence[str] = False,
) -> dict[str, SceneGraph]:
    """DOTA Task-1 results (``Task1_<class>.txt``, e.g. from mmrotate) → {image_id: SceneGraph}.

    The graphs continue down the pipeline like ``detect_scene``'s. ``raster`` (path or RasterScene) fills
    image size, georeference and path (then ``image_id`` defaults to the raster's file stem and only that
    image is returned). ``iou_threshold`` optionally re-runs class-wise rotated NMS + containment
    suppression (for unmerged per-patch results). ``join_linear`` (off by default: foreign results are kept
    as given) joins collinear pieces of the named classes (``True``: :data:`~sgg.detectors.merge.LINEAR_CLASSES`)
    as :func:`detect_scene` does, for patch-merged results whose runways and docks come out in pieces.
    """
    from sgg.datasets.dota import read_dota_results

    vocabulary = vocabulary or Vocabulary.star()
    try:
        join_classes = linear_classes(list(vocabulary.objects), join_linear)
    except ValueError as exc:
        raise SggInputError(str(exc), where="join_linear") from None
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
        if join_classes:
            size = (int(scene.width), int(scene.height)) if scene is not None else None
            det = join_and_suppress(det, join_classes, image_size=size)
            det = det[torch.argsort(det.scores, descending=True, stable=True)]
            meta["join_linear"] = [vocabulary.objects[c] for c in join_classes]
        if scene is not None:
            sp = getattr(scene, "path", None)
            n = len(det)
            det = det.centred_inside((int(scene.width), int(scene.height)))
            meta["dropped_outside"] = n - len(det)
            out[key] = SceneGraph(
                det, vocabulary=vocabulary, georef=getattr(scene, "georef", None), metadata=meta,
                image_path=None if sp is None else str(sp), image_size=(int(scene.width), int(scene.height)),
            )
        else:
            out[key] = SceneGraph(det, vocabulary=vocabulary, metadata=meta)
    return out


__all__ = ["detect_scene", "plan_scene", "run_tiles", "merge_tiles", "resolve_tiling", "DetectionPlan", "LevelPlan",
           "TileResult", "RunStats", "tile_key", "select_guided", "scenes_from_dota", "model_gsd_range",
           "gsd_min_level", "resolve_gsd", "dota_label_gsd"]
