"""A picture of a scene graph: the raster's overview, oriented footprints coloured by class and arrows for
the top relations (PIL only), as ``sgg infer`` writes next to its GIS outputs.

The overview is read at the pyramid level whose long side first fits ``max_side`` px (GDAL uses the file's
overviews when it has them), so a 30,000² scene costs one small read. Geometry is computed for all objects
at once; PIL draws them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sgg.io.atomic import atomic_paths


def _colour(index: int) -> tuple[int, int, int]:
    from sgg.graph.styles import class_colour

    return class_colour(index)


def overview(image_path: Any, max_side: int = 1600) -> tuple[np.ndarray, float]:
    """(H×W×3 uint8 overview, level-0 px per overview px) of a raster."""
    import warnings

    from sgg.io import RasterScene

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the pipeline has already said what it had to about this raster
        scene = RasterScene.open(image_path)
    with scene:
        level = 0
        while max(scene.width, scene.height) / 2**level > max_side:
            level += 1
        tile = scene.read(level=level)
        arr = tile.array
        scale = 0.5 * (float(tile.factor[0]) + float(tile.factor[1]))
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3]), scale


def render_preview(sg: Any, out_path: str | os.PathLike | None = None, *, top_k: int = 20, max_side: int = 1600,
                   image: np.ndarray | None = None, legend: int = 10):
    """Draw ``sg`` over its image (``sg.image_path`` unless ``image`` is given, then at level-0 scale).

    ``top_k`` relations are drawn as arrows subject → object, labelled with the predicate. Returns the PIL
    image; writes a PNG atomically when ``out_path`` is given.
    """
    from PIL import Image, ImageDraw, ImageFont

    if image is not None:
        arr, scale = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[:, :, :3]), 1.0
    elif sg.image_path and Path(sg.image_path).exists():
        arr, scale = overview(sg.image_path, max_side)
    else:  # no image: a dark canvas of the scene's size
        w, h = sg.image_size or (1024, 1024)
        scale = max(1.0, max(w, h) / max_side)
        arr = np.full((max(1, int(h / scale)), max(1, int(w / scale)), 3), 24, np.uint8)
    img = Image.fromarray(arr).convert("RGB")
    # dim the background so footprints stand out
    img = Image.blend(img, Image.new("RGB", img.size, (0, 0, 0)), 0.25)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    det, voc = sg.detections, sg.vocabulary
    width = max(1, round(min(img.size) / 500))
    if len(det):
        corners = (det.boxes.corners().detach().cpu().double() / scale).numpy()  # (N, 4, 2)
        labels = det.labels.cpu().numpy()
        colours = {int(c): _colour(int(c)) for c in np.unique(labels)}
        order = np.argsort(-det.boxes.area().detach().cpu().numpy(), kind="stable")  # big first, small on top
        for i in order:
            draw.polygon([tuple(p) for p in corners[i]], outline=colours[int(labels[i])], width=width)
    if sg.predicate_scores is not None and len(sg.pairs) and top_k > 0:
        tr = sg.triplets(top_k=top_k)
        centres = (det.boxes.centers.detach().cpu().double() / scale).numpy()
        s, o = centres[tr["subject"].numpy()], centres[tr["object"].numpy()]
        d = o - s
        n = np.linalg.norm(d, axis=1, keepdims=True)
        u = np.divide(d, n, out=np.zeros_like(d), where=n > 0)
        head = np.clip(n * 0.3, 4, 12)
        left = o - u * head + np.stack([-u[:, 1], u[:, 0]], 1) * head * 0.5
        right = o - u * head - np.stack([-u[:, 1], u[:, 0]], 1) * head * 0.5
        for k in range(len(s)):
            draw.line([tuple(s[k]), tuple(o[k])], fill=(255, 255, 255), width=width)
            draw.polygon([tuple(o[k]), tuple(left[k]), tuple(right[k])], fill=(255, 255, 255))
            mid = (s[k] + o[k]) / 2
            draw.text(tuple(mid + 2), voc.predicates[int(tr["predicate"][k])], fill=(255, 255, 120), font=font)
    if len(det) and legend:
        counts = torch.bincount(det.labels.cpu(), minlength=voc.num_classes)
        top = [int(i) for i in torch.argsort(counts, descending=True, stable=True)[:legend] if counts[i] > 0]
        lh = 12
        draw.rectangle([4, 4, 190, 8 + lh * len(top)], fill=(0, 0, 0))
        for r, c in enumerate(top):
            y = 6 + r * lh
            draw.rectangle([8, y + 2, 16, y + 10], fill=_colour(c))
            draw.text((20, y), f"{voc.objects[c]} ({int(counts[c])})", fill=(255, 255, 255), font=font)
    if out_path is not None:
        out_path = Path(out_path)
        with atomic_paths(out_path) as (tmp,):
            img.save(tmp, format="PNG", optimize=True)
    return img


__all__ = ["render_preview", "overview"]
