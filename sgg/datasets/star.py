"""STAR scene graphs in the Visual-Genome-style layout of the STAR toolkit (Zhuzi24/SGG-ToolKit).

Three files (names as in the toolkit's ``paths_catalog.py``)::

    STAR-SGG-with-attri.h5          boxes, labels, relations, per-image index ranges
    STAR-SGG-dicts-with-attri.json  label_to_idx / idx_to_label / predicate_to_idx / idx_to_predicate (1-based)
    STAR_image_data_v1.json         [{"image_id", "width", "height", ...}] in HDF5 image order
    STAR_img/<image_id:04d>.png     the images

HDF5 datasets, as read by the toolkit's ``maskrcnn_benchmark/data/datasets/visual_genome.py``
(``load_graphs``): ``split`` (I,), ``img_to_first_box``/``img_to_last_box`` (I,) inclusive global box
ranges, ``img_to_first_rel``/``img_to_last_rel`` (I,) (-1: none), ``labels`` (N,1) 1-based,
``relationships`` (R,2) *global* box indices, ``predicates`` (R,1) 1-based, ``boxes_<S>`` (N,4) axis-aligned
``cx, cy, w, h``, ``segmentation_<S>`` (N,1,8) the oriented box as a 4-corner polygon (the toolkit turns
it into an le90 box with ``poly2obb_np``), plus ``attributes`` (N,10), ``active_object_mask`` and
``img_to_first_seg``/``img_to_last_seg``, which sgg writes for compatibility and ignores on reading.

Uncertainties about the upstream layout (STAR's files cannot be downloaded here):

- Coordinate scale. The toolkit sets ``BOX_SCALE = 2000`` and restores pixels with
  ``boxes / BOX_SCALE * 6000`` (a fixed 6000, not the VG convention ``* max(w, h)``). ``coord_ref="star"``
  (default) follows the toolkit; ``coord_ref="vg"`` uses ``max(width, height)`` per image; a number is
  used as is. ``box_scale`` defaults to the largest ``segmentation_<S>``/``boxes_<S>`` key present.
- Split. STAR's loader ignores ``split`` and uses hard-coded image index lists; VG uses 0 = train (val is
  carved from it), 2 = test. sgg writes 0/1/2 = train/val/test and selects on that.
- Predicates 55–58 are ordered differently in different upstream files: everything is mapped BY NAME.
- sgg adds one dataset, ``rboxes`` (N,5) exact le90 boxes in level-0 pixels; when present the reader uses it
  (it agrees with ``segmentation_<S>``), otherwise it reads the polygons, otherwise ``boxes_<S>`` (angle 0).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from sgg.datasets.aliases import map_names
from sgg.errors import SggInputError
from sgg.io.atomic import atomic_write_text

H5_NAME = "STAR-SGG-with-attri.h5"
DICTS_NAME = "STAR-SGG-dicts-with-attri.json"
IMAGE_DATA_NAME = "STAR_image_data_v1.json"
SPLITS = {"train": 0, "val": 1, "test": 2}
STAR_REFERENCE_SIZE = 6000.0  # visual_genome.py: boxes / BOX_SCALE * 6000


def _load_json(path: Path, what: str):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SggInputError(f"cannot read {what}: {exc.strerror or exc}", path=path) from None
    except json.JSONDecodeError as exc:
        raise SggInputError(f"{what} is not valid JSON: {exc.msg}", path=path, where=f"line {exc.lineno}") from None


def _index_table(dicts: dict, key_to_idx: str, idx_to_key: str, path: Path) -> list[str | None]:
    """Names by 1-based index (slot 0 = background/None) from ``*_to_idx`` or ``idx_to_*``."""
    if isinstance(dicts.get(key_to_idx), dict):
        pairs = [(int(i), str(n)) for n, i in dicts[key_to_idx].items() if n != "__background__"]
    elif isinstance(dicts.get(idx_to_key), dict):
        pairs = [(int(i), str(n)) for i, n in dicts[idx_to_key].items()]
    else:
        raise SggInputError(f"missing {key_to_idx!r} / {idx_to_key!r}", path=path)
    size = max([i for i, _ in pairs], default=0) + 1
    table: list[str | None] = [None] * size
    for i, n in pairs:
        if i <= 0:
            raise SggInputError(f"{key_to_idx}: index {i} of {n!r} must be ≥ 1 (0 is background)", path=path)
        table[i] = n
    return table


def _scale_key(keys: Sequence[str], box_scale: int | None) -> tuple[str | None, str | None]:
    scales = sorted({int(m.group(2)) for k in keys if (m := re.match(r"^(segmentation|boxes)_(\d+)$", k))})
    if box_scale is None:
        box_scale = scales[-1] if scales else None
    if box_scale is None:
        return None, None
    seg, box = f"segmentation_{box_scale}", f"boxes_{box_scale}"
    return (seg if seg in keys else None), (box if box in keys else None)


def _check_indices(values: np.ndarray, table: np.ndarray, path: Path, name: str, dict_key: str) -> None:
    """Every 1-based index in ``values`` must name an entry of the dicts (``table`` slot != -2)."""
    known = (values >= 1) & (values < len(table))
    known[known] = table[values[known]] != -2
    if not known.all():
        bad = int(np.flatnonzero(~known)[0])
        raise SggInputError(f"index {values[bad]} is not in the dicts' {dict_key}", path=path, where=f"{name}[{bad}]")


def _ref_sizes(coord_ref, widths: np.ndarray, heights: np.ndarray) -> np.ndarray:
    if coord_ref == "star":
        return np.full(len(widths), STAR_REFERENCE_SIZE)
    if coord_ref == "vg":
        return np.maximum(widths, heights).astype(np.float64)
    return np.full(len(widths), float(coord_ref))


def read_star(
    h5_path: str | os.PathLike,
    dicts_path: str | os.PathLike,
    image_data_path: str | os.PathLike,
    split: str | None = None,
    vocabulary=None,
    *,
    aliases=None,
    image_dir: str | os.PathLike | None = None,
    box_scale: int | None = None,
    coord_ref: str | float = "star",
) -> list:
    """Read STAR/VG-style scene graphs → one SceneGraph annotation per image (optionally one split).

    Labels and predicates are mapped BY NAME onto ``vocabulary`` (default STAR's), through ``aliases``.
    ``image_path`` is ``image_dir/<file>`` (``file_name`` from the image data, else ``<id:04d>.png``);
    ``image_dir`` defaults to ``STAR_img/`` beside the HDF5 when that folder exists.
    """
    import h5py

    from sgg.datasets.dota import corners_to_boxes
    from sgg.structures import Detections, OrientedBoxes, PairSet, SceneGraph, Vocabulary

    h5_path, dicts_path, image_data_path = Path(h5_path), Path(dicts_path), Path(image_data_path)
    vocabulary = vocabulary or Vocabulary.star()
    if image_dir is None and (h5_path.parent / "STAR_img").is_dir():  # the toolkit's layout
        image_dir = h5_path.parent / "STAR_img"
    if split is not None and split not in SPLITS:
        raise SggInputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    dicts = _load_json(dicts_path, "STAR dicts")
    images = _load_json(image_data_path, "STAR image data")
    if not isinstance(images, list):
        raise SggInputError("image data must be a JSON list of {image_id, width, height}", path=image_data_path)
    obj_names = _index_table(dicts, "label_to_idx", "idx_to_label", dicts_path)
    pred_names = _index_table(dicts, "predicate_to_idx", "idx_to_predicate", dicts_path)
    # file index -> vocabulary index (-1: dropped by an alias; slot 0 unused)
    obj_map = np.full(len(obj_names), -2, dtype=np.int64)
    known = [i for i, n in enumerate(obj_names) if n is not None]
    obj_map[known] = map_names([obj_names[i] for i in known], vocabulary.objects, aliases, path=dicts_path,
                               where=[f"label_to_idx[{obj_names[i]!r}]" for i in known])
    pred_map = np.full(len(pred_names), -2, dtype=np.int64)
    known_p = [i for i, n in enumerate(pred_names) if n is not None]
    pred_map[known_p] = map_names([pred_names[i] for i in known_p], vocabulary.predicates[1:], path=dicts_path,
                                  where=[f"predicate_to_idx[{pred_names[i]!r}]" for i in known_p], kind="predicate") + 1

    try:
        f = h5py.File(h5_path, "r")
    except OSError as exc:
        raise SggInputError(f"cannot open HDF5: {exc}", path=h5_path) from None
    with f:
        keys = list(f.keys())
        need = ["split", "img_to_first_box", "img_to_last_box", "img_to_first_rel", "img_to_last_rel", "labels",
                "relationships", "predicates"]
        missing = [k for k in need if k not in keys]
        if missing:
            raise SggInputError(f"not a STAR/VG scene-graph HDF5: missing {missing}", path=h5_path)
        d = {k: f[k][()] for k in need}
        seg_key, box_key = _scale_key(keys, box_scale)
        rboxes = f["rboxes"][()] if "rboxes" in keys else None
        seg = f[seg_key][()].reshape(-1, 8) if rboxes is None and seg_key else None
        aabb = f[box_key][()] if rboxes is None and seg is None and box_key else None
    if rboxes is None and seg is None and aabb is None:
        raise SggInputError("no boxes: expected 'rboxes', 'segmentation_<S>' or 'boxes_<S>'", path=h5_path)
    scale = int(re.sub(r"\D", "", seg_key or box_key or "0") or 0)
    n_img = len(d["split"])
    if len(images) != n_img:
        raise SggInputError(f"image data lists {len(images)} images, the HDF5 {n_img}", path=image_data_path)
    labels_all = d["labels"].reshape(-1).astype(np.int64)
    _check_indices(labels_all, obj_map, h5_path, "labels", "label_to_idx")
    preds_all = d["predicates"].reshape(-1).astype(np.int64)
    _check_indices(preds_all, pred_map, h5_path, "predicates", "predicate_to_idx")
    widths = np.array([int(im.get("width", 0)) for im in images])
    heights = np.array([int(im.get("height", 0)) for im in images])
    ref = _ref_sizes(coord_ref, widths, heights)
    rels_all = d["relationships"].astype(np.int64)

    out = []
    for i in range(n_img):
        if split is not None and int(d["split"][i]) != SPLITS[split]:
            continue
        first, last = int(d["img_to_first_box"][i]), int(d["img_to_last_box"][i])
        sl = slice(first, last + 1) if first >= 0 else slice(0, 0)
        k = scale / ref[i] if scale else 1.0
        if rboxes is not None:
            boxes = torch.from_numpy(np.asarray(rboxes[sl], dtype=np.float64)).float()
        elif seg is not None:
            boxes = corners_to_boxes(seg[sl].astype(np.float64).reshape(-1, 4, 2) / k)
        else:
            b = aabb[sl].astype(np.float64) / k
            boxes = torch.from_numpy(np.concatenate([b, np.zeros((len(b), 1))], axis=1)).float()
        lab = obj_map[labels_all[sl]]
        keep = lab >= 0
        new_idx = np.cumsum(keep) - 1
        rf, rl = int(d["img_to_first_rel"][i]), int(d["img_to_last_rel"][i])
        rsl = slice(rf, rl + 1) if rf >= 0 else slice(0, 0)
        rel = rels_all[rsl] - max(first, 0)
        n_box = sl.stop - sl.start
        if rel.size and (rel.min() < 0 or rel.max() >= n_box):
            raise SggInputError(f"relationship points outside image {i}'s boxes [{first}, {last}]", path=h5_path,
                                where=f"relationships[{rf}:{rl + 1}]")
        pred = pred_map[preds_all[rsl]]
        rkeep = keep[rel[:, 0]] & keep[rel[:, 1]] if rel.size else np.zeros(0, dtype=bool)
        im = images[i]
        fname = im.get("file_name") or f"{str(im.get('image_id', i)).zfill(4)}.png"
        w, h = int(widths[i]), int(heights[i])
        out.append(SceneGraph(
            detections=Detections(OrientedBoxes(boxes[torch.from_numpy(keep)]), torch.from_numpy(lab[keep])),
            pairs=PairSet(torch.from_numpy(new_idx[rel[rkeep]].reshape(-1, 2))),
            predicate_labels=torch.from_numpy(pred[rkeep]),
            vocabulary=vocabulary,
            image_path=str(Path(image_dir) / fname) if image_dir is not None else fname,
            image_size=(w, h) if w > 0 and h > 0 else None,
            metadata={"image_id": im.get("image_id", i), "split": {v: k_ for k_, v in SPLITS.items()}.get(int(d["split"][i])),
                      "source_format": "star"},
        ))
    return out


def write_star(
    scene_graphs: Sequence,
    out_dir: str | os.PathLike,
    *,
    splits: Sequence[str] | None = None,
    image_ids: Sequence | None = None,
    box_scale: int = 2000,
    coord_ref: str | float = "star",
) -> dict[str, Path]:
    """Write scene graphs in the STAR toolkit layout (HDF5 + dicts JSON + image-data JSON) into ``out_dir``.

    All graphs must share a vocabulary. ``splits`` (default: every scene ``train``) and ``image_ids``
    (default: 0, 1, …; else ``metadata['image_id']``) are per scene. Returns the three paths.
    """
    import h5py

    from sgg.ops import box_to_corners

    sgs = list(scene_graphs)
    if not sgs:
        raise SggInputError("write_star: no scene graphs to write")
    voc = sgs[0].vocabulary
    if any(sg.vocabulary != voc for sg in sgs):
        raise SggInputError("write_star: all scene graphs must share one vocabulary")
    splits = list(splits) if splits is not None else [sg.metadata.get("split") or "train" for sg in sgs]
    if len(splits) != len(sgs) or any(s not in SPLITS for s in splits):
        raise SggInputError(f"write_star: splits must name one of {', '.join(SPLITS)} per scene")
    ids = list(image_ids) if image_ids is not None else [sg.metadata.get("image_id", i) for i, sg in enumerate(sgs)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    counts = np.array([len(sg.detections) for sg in sgs])
    rcounts = np.array([len(sg.pairs) for sg in sgs])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rstarts = np.concatenate([[0], np.cumsum(rcounts)[:-1]])
    first_box = np.where(counts > 0, starts, -1)
    last_box = np.where(counts > 0, starts + counts - 1, -1)
    first_rel = np.where(rcounts > 0, rstarts, -1)
    last_rel = np.where(rcounts > 0, rstarts + rcounts - 1, -1)
    rboxes = torch.cat([sg.detections.boxes.tensor.double().cpu() for sg in sgs]).reshape(-1, 5)
    labels = np.concatenate([sg.detections.labels.cpu().numpy() for sg in sgs]) + 1
    sizes = [sg.image_size or (0, 0) for sg in sgs]
    ref = _ref_sizes(coord_ref, np.array([s[0] for s in sizes]), np.array([s[1] for s in sizes]))
    if coord_ref == "vg" and (ref <= 0).any():
        raise SggInputError("write_star: coord_ref='vg' needs every scene's image_size")
    k = np.repeat(box_scale / ref, counts)[:, None]
    corners = box_to_corners(rboxes).numpy().reshape(-1, 8) if len(rboxes) else np.zeros((0, 8))
    seg = corners * k
    xy = corners.reshape(-1, 4, 2)
    env = np.concatenate([xy.min(1), xy.max(1)], axis=1) if len(xy) else np.zeros((0, 4))
    aabb = np.concatenate([(env[:, :2] + env[:, 2:]) / 2, env[:, 2:] - env[:, :2]], axis=1) * k
    rels = np.concatenate([sg.pairs.pairs.cpu().numpy() + s for sg, s in zip(sgs, starts)]).reshape(-1, 2)
    preds = np.concatenate([
        (sg.predicate_labels if sg.predicate_labels is not None else torch.zeros(len(sg.pairs), dtype=torch.long)).cpu().numpy()
        for sg in sgs
    ])
    if (preds <= 0).any():
        raise SggInputError("write_star: every relation needs a foreground predicate label (got background 0)")

    h5 = out_dir / H5_NAME
    tmp = h5.with_name(f".{h5.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            f["split"] = np.array([SPLITS[s] for s in splits], dtype=np.int64)
            for name, arr in (("img_to_first_box", first_box), ("img_to_last_box", last_box),
                              ("img_to_first_seg", first_box), ("img_to_last_seg", last_box),
                              ("img_to_first_rel", first_rel), ("img_to_last_rel", last_rel)):
                f[name] = arr.astype(np.int64)
            f["labels"] = labels.reshape(-1, 1).astype(np.int64)
            f[f"boxes_{box_scale}"] = aabb.astype(np.float32)
            f[f"segmentation_{box_scale}"] = seg.reshape(-1, 1, 8).astype(np.float32)
            f["rboxes"] = rboxes.numpy()
            f["attributes"] = np.zeros((len(labels), 10), dtype=np.int64)
            f["active_object_mask"] = np.ones((len(labels), 1), dtype=bool)
            f["relationships"] = rels.astype(np.int64)
            f["predicates"] = preds.reshape(-1, 1).astype(np.int64)
        os.replace(tmp, h5)
    finally:
        if tmp.exists():
            tmp.unlink()

    obj_count = np.bincount(labels - 1, minlength=voc.num_classes)
    pred_count = np.bincount(preds, minlength=voc.num_predicates)
    dicts = {
        "label_to_idx": {n: i + 1 for i, n in enumerate(voc.objects)},
        "idx_to_label": {str(i + 1): n for i, n in enumerate(voc.objects)},
        "predicate_to_idx": {n: i for i, n in enumerate(voc.predicates) if i > 0},
        "idx_to_predicate": {str(i): n for i, n in enumerate(voc.predicates) if i > 0},
        "attribute_to_idx": {},
        "idx_to_attribute": {},
        "object_count": {n: int(c) for n, c in zip(voc.objects, obj_count)},
        "predicate_count": {n: int(c) for n, c in zip(voc.predicates[1:], pred_count[1:])},
    }
    images = []
    for sg, image_id, (w, h) in zip(sgs, ids, sizes):
        rec = {"image_id": image_id, "width": int(w), "height": int(h)}
        if sg.image_path:
            rec["file_name"] = os.path.basename(sg.image_path)
        images.append(rec)
    paths = {"h5": h5, "dicts": out_dir / DICTS_NAME, "image_data": out_dir / IMAGE_DATA_NAME}
    atomic_write_text(paths["dicts"], json.dumps(dicts, indent=1) + "\n")
    atomic_write_text(paths["image_data"], json.dumps(images, indent=1) + "\n")
    return paths
