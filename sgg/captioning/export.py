"""Instruction export: LLaVA-style conversation records for 512-px crops, from annotations or predictions.

For each scene, the image is cut into ``crop``-px windows (``gap`` px overlap, as FIT-RS's
``split_512_100``); every crop holding at least one object gives

* ``images/<scene>__512__<x>___<y>.png`` — the crop (padded with black to ``crop`` px at a small image's edge,
  so that the 0–100 grid always spans ``crop`` px);
* one record in ``instructions.json``: ``{"id", "image", "conversations": [{"from": "human", "value":
  "<image>\\n…"}, {"from": "gpt", "value": "…"}, …]}`` with one human/gpt turn per task item
  (:func:`sgg.captioning.tasks.task_items`) and, last, the caption of the crop;
* with ``questions=True``, one line per task item in ``questions.jsonl``: ``{"question_id", "image",
  "category", "text", "ground_truth"}`` — the evaluation file a model answers (adding ``"answer"``) and
  ``sgg fitrs score`` reads.

All files are written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from sgg.structures import SceneGraph

from .realiser import describe
from .tasks import crop_graph, crop_windows, labelled, task_items

CAPTION_QUESTION = "[caption]Describe the image in detail."


def crop_name(scene: str, x: int, y: int, crop: int = 512) -> str:
    return f"{scene}__{crop}__{x}___{y}"


def _write_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    from sgg.io.atomic import atomic_paths

    with atomic_paths(path) as (tmp,):
        Image.fromarray(array).save(tmp, format="PNG")


def _crop_array(scene: Any, x: int, y: int, crop: int) -> np.ndarray:
    tile = scene.read((x, y, crop, crop))
    a = tile.array
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    a = a[:, :, :3]
    if a.shape[0] < crop or a.shape[1] < crop:
        pad = np.zeros((crop, crop, 3), dtype=a.dtype)
        pad[: a.shape[0], : a.shape[1]] = a
        a = pad
    return np.ascontiguousarray(a.astype(np.uint8))


def scene_records(graph: SceneGraph, scene: str, crop: int = 512, gap: int = 100, seed: int = 0,
                  top_k: int | None = None, min_score: float | None = None, max_per_task: int = 4) -> list[dict[str, Any]]:
    """Per crop with objects: ``{"name", "window", "items", "caption"}`` (no files written)."""
    g = labelled(graph, top_k=top_k, min_score=min_score)
    if g.image_size is None:
        raise ValueError(f"{scene}: the scene graph has no image_size; cannot cut it into crops")
    out = []
    for k, (x, y) in enumerate(crop_windows(*g.image_size, crop=crop, gap=gap)):
        cg = crop_graph(g, x, y, crop)
        if cg.num_objects == 0:
            continue
        cg.metadata["gsd"] = (g.metadata or {}).get("gsd")
        items = task_items(cg, crop, seed=seed + k, max_per_task=max_per_task)
        out.append({"name": crop_name(scene, x, y, crop), "window": (x, y, crop, crop), "items": items,
                    "caption": describe(cg, top_k=None)})
    return out


def export_instructions(scenes: Iterable[tuple[SceneGraph, str | Path | None]], out_dir: str | Path,
                        crop: int = 512, gap: int = 100, seed: int = 0, top_k: int | None = None,
                        min_score: float | None = None, write_images: bool = True, questions: bool = False,
                        max_per_task: int = 4) -> dict[str, Any]:
    """Write crops, ``instructions.json`` (and ``questions.jsonl``) under ``out_dir`` for ``(graph, image)``
    pairs; ``image`` None uses ``graph.image_path``. Returns counts and the paths written."""
    from sgg.io.atomic import atomic_write_text

    out = Path(out_dir)
    records: list[dict[str, Any]] = []
    qlines: list[str] = []
    n_images = 0
    for graph, image in scenes:
        image = image if image is not None else graph.image_path
        scene = Path(str(image)).stem if image else str((graph.metadata or {}).get("scene", "scene"))
        crops = scene_records(graph, scene, crop, gap, seed, top_k, min_score, max_per_task)
        if write_images and crops:
            if not image or not Path(str(image)).exists():
                raise FileNotFoundError(f"{scene}: image {image!r} not found; pass it or use write_images=False")
            import warnings

            from sgg.io import RasterScene
            from sgg.io.raster import NoCRSWarning

            with warnings.catch_warnings():  # crops are pixel images: a PNG without a CRS is expected
                warnings.simplefilter("ignore", NoCRSWarning)
                rs = RasterScene.open(image)
            with rs:
                for c in crops:
                    x, y = c["window"][:2]
                    _write_png(_crop_array(rs, x, y, crop), out / "images" / f"{c['name']}.png")
                    n_images += 1
        for c in crops:
            conv = []
            for j, it in enumerate(c["items"] + [{"category": "caption", "question": CAPTION_QUESTION,
                                                  "answer": c["caption"]}]):
                q = ("<image>\n" if j == 0 else "") + it["question"]
                conv += [{"from": "human", "value": q}, {"from": "gpt", "value": it["answer"]}]
                if questions and it["category"] != "caption":
                    qlines.append(json.dumps({"question_id": f"{c['name']}_{j}", "image": f"{c['name']}.png",
                                              "category": it["category"], "text": it["question"],
                                              "ground_truth": it["answer"]}))
            records.append({"id": c["name"], "image": f"{c['name']}.png", "conversations": conv})
    atomic_write_text(out / "instructions.json", json.dumps(records, indent=1, ensure_ascii=False))
    result = {"records": len(records), "images": n_images, "instructions": str(out / "instructions.json")}
    if questions:
        atomic_write_text(out / "questions.jsonl", "\n".join(qlines) + ("\n" if qlines else ""))
        result["questions"] = str(out / "questions.jsonl")
        result["num_questions"] = len(qlines)
    return result


def export_rsrc(scenes: Iterable[tuple[SceneGraph, str | Path | None]], out_dir: str | Path, crop: int = 512,
                gap: int = 100, seed: int = 0, top_k: int | None = None, min_score: float | None = None) -> int:
    """Write ``rsrc_questions.jsonl`` (FIT-RSRC CircularEval variants of every crop) under ``out_dir``;
    returns the number of lines."""
    from sgg.io.atomic import atomic_write_text

    from .rsrc import circular_variants, rsrc_questions

    lines = []
    for n, (g, img) in enumerate(scenes):
        g = labelled(g, top_k=top_k, min_score=min_score)
        stem = Path(str(img or g.image_path or f"scene{n}")).stem
        for x, y in crop_windows(*g.image_size, crop=crop, gap=gap):
            cg = crop_graph(g, x, y, crop)
            name = crop_name(stem, x, y, crop)
            for j, q in enumerate(rsrc_questions(cg, crop, seed=seed + x * 7919 + y)):
                lines += [json.dumps(v) for v in circular_variants(q, f"{name}_{j}", f"{name}.png")]
    atomic_write_text(Path(out_dir) / "rsrc_questions.jsonl", "\n".join(lines) + ("\n" if lines else ""))
    return len(lines)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Records of a JSONL file (or a JSON list); bad lines raise SggInputError naming the line."""
    from sgg.errors import SggInputError

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SggInputError(f"cannot read ({exc.strerror or exc})", path=p) from None
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SggInputError(f"invalid JSON ({exc})", path=p) from None
        return list(data)
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SggInputError(f"invalid JSON ({exc.msg})", path=p, where=f"line {n}") from None
        if not isinstance(rec, dict):
            raise SggInputError("expected a JSON object", path=p, where=f"line {n}")
        out.append(rec)
    return out
