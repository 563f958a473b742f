"""Synthetic STAR-vocabulary scenes: georeferenced RGB GeoTIFFs with oriented boxes and rule-made relations.

``generate_scene`` composes a large scene from STAR's scene kinds (``layouts`` with ``sites`` /
``facilities``), draws it (``render``), derives relations from the generated geometry (``relations``) and
returns the annotation as a ``SceneGraph`` (scores 1, one row per relation). ``generate_dataset`` writes
``scenes/<id>.tif``, ``annotations/<id>.json``, ``dota/<id>.txt`` and ``split.json``; everything is
deterministic for a seed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sgg.datasets.synthetic.layouts import LAYOUTS

APPEARANCES = ("basic", "detailed")
SITE_ANGLES = ("quarter", "any")


def _check_appearance(appearance: str, site_angles: str = "quarter") -> None:
    from sgg.errors import SggInputError

    if appearance not in APPEARANCES:
        raise SggInputError(f"unknown appearance {appearance!r}; choose from {', '.join(APPEARANCES)}", where="appearance")
    if site_angles not in SITE_ANGLES:
        raise SggInputError(f"unknown site_angles {site_angles!r}; choose from {', '.join(SITE_ANGLES)}",
                            where="site_angles")

UTM_EPSG = 32633  # WGS 84 / UTM zone 33N
_ORIGIN = (380000.0, 5820000.0)  # a point inside zone 33N (north-east Germany)


def _size(size) -> tuple[int, int]:
    if np.isscalar(size):
        return int(size), int(size)
    w, h = size
    return int(w), int(h)


def _indices(names: np.ndarray, lookup) -> np.ndarray:
    """Vocabulary indices of an array of names (one lookup per distinct name)."""
    if not len(names):
        return np.zeros(0, np.int64)
    uniq, inv = np.unique(names.astype(str), return_inverse=True)
    return np.array([lookup(u) for u in uniq], np.int64)[inv.reshape(-1)]


def georeference(seed: int, width: int, height: int, gsd: float):
    """A GeoReference in UTM 33N with ``gsd``-metre square pixels, origin shifted per seed."""
    from sgg.structures import GeoReference

    rng = np.random.default_rng([seed, 7])
    x0 = _ORIGIN[0] + float(rng.integers(0, 200)) * 1000.0
    y0 = _ORIGIN[1] + float(rng.integers(0, 300)) * 1000.0
    return GeoReference(_crs_wkt(), (gsd, 0.0, x0, 0.0, -gsd, y0))


def _crs_wkt() -> str:
    from rasterio.crs import CRS

    return CRS.from_epsg(UTM_EPSG).to_wkt()


def _objects_px(b, gsd: float):
    """Builder objects (metres) → draw lists in pixels and the (N,) arrays used for boxes and relations."""
    from sgg.datasets.synthetic.render import SHAPES, place

    k = 1.0 / gsd
    draw = []
    plumes = []
    for o in b.objs:
        cx, cy, L, W, h = o["cx"] * k, o["cy"] * k, o["L"] * k, o["W"] * k, o["heading"]
        c, s = math.cos(h), math.sin(h)
        if o["plume"] > 0:
            plumes.append((place(SHAPES[o["shape"]], cx, cy, L, W, h), o["color"], o["plume"]))
            continue
        polys = [(place(SHAPES[o["shape"]], cx, cy, L, W, h), o["color"])]
        for shape, ox, oy, sl, sw, col in o["deco"]:
            polys.append((place(SHAPES[shape], cx + c * ox * L - s * oy * W, cy + s * ox * L + c * oy * W, sl * L, sw * W, h), col))
        shadow = None
        if o["z"] >= 2 and o["height"] > 0:
            if o["shadow"] is not None:
                shadow = [p * k for p in o["shadow"]]
            else:
                dx, dy = b.sun[0] * o["height"] * k, b.sun[1] * o["height"] * k
                shadow = [polys[0][0] + np.array([dx, dy])]
        draw.append(dict(poly=polys, shadow=shadow, z=o["z"]))
    ground = [(pts * k, col, kind) for pts, col, kind in b.ground]
    return ground, draw, plumes


def generate_scene(seed: int, size=4096, gsd: float = 0.5, layout: str = "mixed", out_path=None, vocabulary=None,
                   return_image: bool = False, appearance: str = "basic", site_angles: str = "quarter"):
    """Generate one scene; write its GeoTIFF to ``out_path`` if given; return its annotation SceneGraph
    (and the HxWx3 uint8 image with ``return_image``).

    ``appearance``: ``"basic"`` (flat vehicles and aircraft; every published figure was measured on it) or
    ``"detailed"`` (cars with shaded flanks, windscreens and rear windows of random proportions; airliners
    and turboprops with grey wings, white fuselage, engine pods, cockpit and fin; random shadow depth).
    ``site_angles``: ``"quarter"`` (sites laid out along the image axes, turned by multiples of 90°; the
    published scenes) or ``"any"`` (car parks, airports and harbours tilted by up to ±45°, as real ones are)."""
    import torch

    from sgg.datasets.synthetic.layouts import compose
    from sgg.datasets.synthetic.relations import relations
    from sgg.datasets.synthetic.render import LAND, render
    from sgg.errors import SggInputError
    from sgg.ops import normalize_le90
    from sgg.structures import Detections, OrientedBoxes, PairSet, SceneGraph, Vocabulary

    _check_appearance(appearance, site_angles)
    if layout not in LAYOUTS:
        raise SggInputError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}", where="layout")
    width, height = _size(size)
    if width < 64 or height < 64 or not gsd > 0:
        raise SggInputError(f"scene size must be >= 64 px and gsd > 0 (got {width}x{height}, gsd {gsd})", where="size")
    vocab = vocabulary or Vocabulary.star()
    rng = np.random.default_rng([int(seed), LAYOUTS.index(layout)])
    b = compose(rng, width * gsd, height * gsd, layout, detail=appearance == "detailed", any_angle=site_angles == "any")
    # drop classes the vocabulary does not know
    known = set(vocab.objects)
    b.objs = [o for o in b.objs if o["cls"] in known]
    land = list(rng.choice(list(LAND), size=int(rng.integers(2, 4)), replace=False))
    ground, draw, plumes = _objects_px(b, gsd)
    image = render(rng, width, height, gsd, land, ground, draw, plumes, b.sun, shade=b.shade)
    n = len(b.objs)
    geo = {key: np.array([o[key] for o in b.objs], np.float64) for key in ("cx", "cy", "L", "W", "heading")}
    names = np.array([o["cls"] for o in b.objs], dtype=object)
    cls = _indices(names, vocab.object_index)
    subj, obj, pred = relations(names, geo)
    keep = np.isin(pred.astype(str), list(vocab.predicates[1:]))
    subj, obj, pred = subj[keep], obj[keep], pred[keep]
    pred_idx = _indices(pred, vocab.predicate_index)
    # boxes in level-0 pixels, le90 canonical (w >= h)
    k = 1.0 / gsd
    boxes = normalize_le90(torch.as_tensor(np.stack([geo["cx"] * k, geo["cy"] * k, geo["L"] * k, geo["W"] * k, geo["heading"]], 1)))
    order = np.lexsort((pred_idx, obj, subj))
    det = Detections(OrientedBoxes(boxes.reshape(n, 5).float()), torch.as_tensor(cls), torch.ones(n))
    sg = SceneGraph(det, PairSet(torch.as_tensor(np.stack([subj[order], obj[order]], 1).reshape(-1, 2))),
                    predicate_labels=torch.as_tensor(pred_idx[order]), vocabulary=vocab,
                    georef=georeference(int(seed), width, height, gsd), image_size=(width, height),
                    difficult=torch.zeros(n, dtype=torch.bool),
                    metadata={"gsd": gsd, "layout": layout, "seed": int(seed), "generator": "sgg.datasets.synthetic",
                              **({"appearance": appearance} if appearance != "basic" else {}),
                              **({"site_angles": site_angles} if site_angles != "quarter" else {})})
    if out_path is not None:
        out_path = Path(out_path)
        write_image(out_path, image, sg.georef)
        sg = sg.replace(image_path=str(out_path),
                        georef=type(sg.georef)(sg.georef.crs_wkt, sg.georef.transform, str(out_path)))
    return (sg, image) if return_image else sg


def write_image(path: Path, image: np.ndarray, georef) -> None:
    """RGB uint8 GeoTIFF, tiled + deflate + overviews, written atomically (``sgg.io.write_geotiff``)."""
    from affine import Affine

    from sgg.io import write_geotiff

    path.parent.mkdir(parents=True, exist_ok=True)
    write_geotiff(path, image, georef.crs_wkt, Affine(*georef.transform))


def _one(args) -> str:
    out_dir, sid, seed, size, gsd, layout, vocabulary, appearance, site_angles = args
    from sgg.datasets.dota import write_dota_labels
    from sgg.datasets.native import write_scene_json

    out_dir = Path(out_dir)
    sg = generate_scene(seed, size, gsd, layout, out_path=out_dir / "scenes" / f"{sid}.tif", vocabulary=vocabulary,
                        appearance=appearance, site_angles=site_angles)
    write_scene_json(sg, out_dir / "annotations" / f"{sid}.json")
    write_dota_labels(sg, out_dir / "dota" / f"{sid}.txt", gsd=gsd, imagesource="sgg-synthetic")
    return sid


def generate_dataset(out_dir, scenes: int = 8, size=2048, seed: int = 0, gsd: float = 0.5,
                     layouts: Sequence[str] | None = None, split=(0.7, 0.15, 0.15), workers: int = 1,
                     vocabulary=None, progress: bool = False, appearance: str = "basic",
                     site_angles: str = "quarter") -> dict[str, list[str]]:
    """Write ``scenes`` synthetic scenes under ``out_dir`` and a train/val/test ``split.json``; returns the split.

    Scene i uses seed ``seed * 100003 + i`` and layout ``layouts[i % len(layouts)]`` (default: mostly
    "mixed", with every fourth scene one single kind so that each kind also appears at full scale).
    ``appearance``, ``site_angles``: as in :func:`generate_scene`."""
    from sgg.errors import SggInputError
    from sgg.io.atomic import atomic_write_text

    if scenes < 1:
        raise SggInputError(f"scenes must be >= 1, got {scenes}", where="scenes")
    _check_appearance(appearance, site_angles)
    if len(split) != 3 or any(s < 0 for s in split) or sum(split) <= 0:
        raise SggInputError(f"split must be three non-negative fractions, got {split}", where="split")
    out_dir = Path(out_dir)
    kinds = [k for k in LAYOUTS if k != "mixed"]
    if layouts:
        bad = [l for l in layouts if l not in LAYOUTS]
        if bad:
            raise SggInputError(f"unknown layout(s) {bad}; choose from {', '.join(LAYOUTS)}", where="layouts")
    jobs = []
    for i in range(scenes):
        lay = layouts[i % len(layouts)] if layouts else ("mixed" if i % 4 != 3 else kinds[(i // 4 + seed) % len(kinds)])
        jobs.append((str(out_dir), f"s{i:05d}", int(seed) * 100003 + i, size, gsd, lay, vocabulary, appearance,
                     site_angles))
    it = None
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers)
        it = pool.map(_one, jobs)
    else:
        pool = None
        it = map(_one, jobs)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=len(jobs), unit="scene", desc="sgg synth")
    ids = list(it)
    if pool is not None:
        pool.shutdown()
    rng = np.random.default_rng([int(seed), 99])
    perm = [ids[i] for i in rng.permutation(len(ids))]
    frac = np.asarray(split, np.float64) / float(sum(split))
    n_val = int(round(frac[1] * len(ids)))
    n_test = int(round(frac[2] * len(ids)))
    if len(ids) >= 3:
        n_val, n_test = max(n_val, 1 if frac[1] > 0 else 0), max(n_test, 1 if frac[2] > 0 else 0)
    n_train = max(0, len(ids) - n_val - n_test)
    out = {"train": sorted(perm[:n_train]), "val": sorted(perm[n_train:n_train + n_val]), "test": sorted(perm[n_train + n_val:])}
    atomic_write_text(out_dir / "split.json", json.dumps(out, indent=1) + "\n")
    return out
