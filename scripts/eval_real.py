"""Evaluate detector weights on every real set (and held-out synthetic scenes) in one command (issue #12).

    python scripts/eval_real.py weights/hodnet_effl0_synth.pt --synth data/synth_det --json real.json

Sets (``--real`` is ``../shared/real``; the figures are class-agnostic AP@0.5 within each class group):

* ``p0706``     DOTA marina P0706, boats (oriented; DOTA ``ship`` vs predicted STAR ``ship``/``boat``), GSD
  from the label header;
* ``ships_ge``  the held-out part of ships_ge (``hbb_split(..., 0.2, seed 0)["val"]``, the images the mixed
  training never saw), boats, horizontal boxes (predicted envelopes vs labels);
* ``ships_ge_obb`` the same images and detections scored as *oriented* boxes against the labels' oriented
  pseudo-boxes (:mod:`sgg.datasets.pseudo_obb`; ~0.07 rad median angle error on synthetic boats): a
  validation-side proxy for the boxes' angle and shape, which horizontal labels cannot check;
* ``ships_ge_r45`` the same images turned by 45° (on a grown canvas, :func:`sgg.detectors.tta.turn_images`)
  with their pseudo-boxes turned alike, scored as oriented boxes: real *diagonal* boats for validation (the
  held-out ships_ge boats lie mostly along the image axes; real marinas need not). The turned images are
  written under ``--cache`` (or a temporary folder); ``ships_ge_r<deg>`` turns them by another whole number of
  degrees (``ships_ge_r30``);
* ``vehicles``  DOTA P0003 + P1478 crop, ``small-vehicle``/``large-vehicle`` vs predicted ``car``/``truck``/
  ``engineering_vehicle`` (oriented);
* ``aircraft``  airbus_aircraft (0.5 m, CC BY-NC-SA: evaluation only), ``airplane`` (horizontal);
  ``--aircraft-limit N`` evaluates the first N images (each 2,560² is 49 tiles at level 0);
* ``synthetic`` held-out synthetic scenes (``--synth DIR[,DIR…] --split test``): ordinary mAP@0.5 over classes,
  and each class group's class-agnostic AP as for the real sets (``groups``).
* ``synthetic_r45`` the same scenes turned by 45° as ``ships_ge_r45`` turns its images (GSD from the scene's
  metadata): synthetic sites are laid out along the image axes, real airports and car parks need not be, so
  this checks on validation scenes how the weights see aircraft, vehicles and the rest at diagonal angles.

Per image the detector runs with holistic tiling (``--tile-size``/``--overlap``, every tile: ``zoom="full"``)
and the image's GSD when known (``detect_scene(gsd=)``); predictions of a group's classes are merged into
one class and de-duplicated by rotated NMS (IoU 0.4, the cross-level merge's threshold), ground truth of
other classes is dropped, difficult objects are ignored (DOTA devkit rules).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from pathlib import Path

GROUPS = {
    "boats": ("ship", "boat"),
    "vehicles": ("car", "truck", "engineering_vehicle"),
    "aircraft": ("airplane",),
}
SETS = ("p0706", "ships_ge", "ships_ge_obb", "ships_ge_r45", "vehicles", "aircraft", "synthetic", "synthetic_r45")
TURN = 45  # degrees, ships_ge_r45 and synthetic_r45
_SHIPS_TURNED = re.compile(r"ships_ge_r(\d{1,2})")  # ships_ge_r<deg>: the held-out images turned by deg


def turn_of(which: str) -> int | None:
    """The turn in degrees of a ``ships_ge_r<deg>`` set, else ``None``."""
    m = _SHIPS_TURNED.fullmatch(which)
    return int(m.group(1)) if m and 0 < int(m.group(1)) < 90 else None


def group_only(det, vocab, names, nms_iou: float = 0.4):
    """Detections of ``names`` merged into one class (label 0), de-duplicated by rotated NMS."""
    import torch

    from sgg.ops import rotated_nms
    from sgg.structures import Detections

    ids = torch.tensor([vocab.object_index(n) for n in names])
    if len(det) == 0:
        return Detections.empty()
    keep = torch.isin(det.labels, ids).nonzero().flatten()
    det = det[keep]
    if len(det) == 0:
        return Detections.empty()
    k = rotated_nms(det.boxes.tensor, det.scores, nms_iou)
    return Detections(det.boxes[k], torch.zeros(len(k), dtype=torch.long), det.scores[k])


def gt_only(sg, names):
    """The annotation with only the objects of ``names``, all as class 0 of a one-class vocabulary."""
    import torch

    from sgg.structures import Detections, SceneGraph, Vocabulary

    ids = torch.tensor([sg.vocabulary.object_index(n) for n in names])
    keep = torch.isin(sg.detections.labels, ids).nonzero().flatten()
    det = sg.detections[keep]
    diff = sg.difficult[keep] if sg.difficult is not None else None
    return SceneGraph(Detections(det.boxes, torch.zeros(len(keep), dtype=torch.long)),
                      vocabulary=Vocabulary(("object",), ()), difficult=diff)


def dota_items(real: Path, which: str, limit: int = 0) -> list[tuple[Path, Path]]:
    """(image, label file) pairs of a set (each label file's box type is read from it: ``metadata["box_type"]``)."""
    from sgg.datasets.datamodules import hbb_split

    if which == "p0706":
        return [(real / "dota" / "P0706.png", real / "dota" / "P0706.txt")]
    if which == "vehicles":
        return [(real / "dota" / f"{s}.png", real / "dota" / f"{s}.txt") for s in ("P0003", "P1478__1__853___962")]
    if which.startswith("ships_ge"):
        root = real / "ships_ge"
        return [(root / "images" / f"{s}.png", root / "labelTxt" / f"{s}.txt")
                for s in hbb_split(str(root), 0.2, 0)["val"]]
    if which == "aircraft":
        root = real / "airbus_aircraft"
        labels = sorted((root / "labelTxt").glob("*.txt"))[: limit or None]
        return [(root / "images" / f"{f.stem}.jpg", f) for f in labels]
    raise ValueError(which)


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` as ``(K, N)`` with 1 <= K <= N (argparse type: a bad value is a usage error, not an idle run)."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N such as 1/2, got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"shard {text}: K must be 1..N")
    return k, n


def shard_owns(key: str, shard: tuple[int, int]) -> bool:
    """Whether shard ``(K, N)`` detects the image cached as ``key`` (a stable hash: every key has one owner)."""
    import zlib

    k, n = shard
    return zlib.crc32(key.encode()) % n == k - 1


def elsewhere(key: str, args) -> bool:
    """Whether another ``--shard`` owns ``key`` and no cached result of it exists yet (then skip it here)."""
    cached = bool(args.cache) and (Path(args.cache) / f"{key}.pt").exists()
    return bool(args.shard) and not shard_owns(key, args.shard) and not cached


def detect_cached(model, image: Path, args, key: str, **kw):
    """``detect_scene`` detections of one image, or ``None`` when another shard owns it. With ``--cache DIR``
    results are stored per image (``<key>.pt``) and reused, so ``--shard k/N`` processes can split a set and a
    last run without ``--shard`` computes the figures from the cache."""
    import torch

    from sgg.detectors.inference import detect_scene
    from sgg.structures import Detections

    cache = Path(args.cache) / f"{key}.pt" if args.cache else None
    if cache is not None and cache.exists():
        d = torch.load(cache, weights_only=True)
        return Detections(d["boxes"], d["labels"], d["scores"]), int(d["tiles"])
    if elsewhere(key, args):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no-CRS PNGs, unknown GSD (ships_ge): expected here
        sg = detect_scene(model, image, tile_size=args.tile_size, overlap=args.overlap, zoom="full",
                          progress=False, **kw)
    det, tiles = sg.detections, sum(v["run"] for v in sg.metadata["tiles"].values())
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        torch.save({"boxes": det.boxes.tensor, "labels": det.labels, "scores": det.scores, "tiles": tiles}, tmp)
        tmp.replace(cache)
    return det, tiles


def turned(gt, image: Path, work: Path, degrees: int = TURN):
    """``image`` turned by ``degrees``, written under ``work`` as a GeoTIFF, and ``gt``'s boxes turned alike
    (:func:`sgg.detectors.tta.turn_boxes`)."""
    import math

    import torch

    from sgg.datasets.tiling import ReaderCache, read_whole
    from sgg.detectors.tta import turn_boxes, turn_images, turned_size
    from sgg.io import write_geotiff
    from sgg.structures import OrientedBoxes

    w, h = gt.image_size
    a = math.radians(degrees)
    out = work / f"{image.stem}.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no-CRS PNG in, no-CRS GeoTIFF out
        if not out.exists():
            img = read_whole(ReaderCache().get(str(image)), w, h)[:, :h, :w]
            arr = (turn_images(img[None], a)[0] * 255).round().clamp(0, 255).to(torch.uint8).numpy()
            # atomic under a per-writer name: shards may turn the same image at once; no overviews, so every
            # pyramid level is resampled from these pixels as for any plain image
            write_geotiff(out, arr.transpose(1, 2, 0), overviews=False)
    vh, vw = turned_size((h, w), a)
    det = gt.detections
    det = type(det)(OrientedBoxes(turn_boxes(det.boxes.tensor, a, (h, w))), det.labels, det.scores)
    return out, gt.replace(detections=det, image_size=(vw, vh))


def pseudo_labels(gt, image: Path):
    """``gt`` with its horizontal boxes replaced by their oriented pseudo-boxes (box type ``obb``)."""
    from sgg.datasets.pseudo_obb import pseudo_oriented_boxes
    from sgg.datasets.tiling import ReaderCache, read_whole
    from sgg.ops import box_to_envelope
    from sgg.structures import OrientedBoxes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no-CRS PNG
        img = read_whole(ReaderCache().get(str(image)), *gt.image_size)  # as training reads them
    det = gt.detections
    boxes, _ = pseudo_oriented_boxes(img, box_to_envelope(det.boxes.tensor))
    det = type(det)(OrientedBoxes(boxes), det.labels, det.scores)
    return gt.replace(detections=det, metadata={**gt.metadata, "box_type": "obb"})


def eval_dota_set(model, real: Path, which: str, args) -> dict:
    from sgg.datasets.dota import read_dota_labels
    from sgg.evaluation.detection import rotated_map

    group = GROUPS["boats" if which == "p0706" or which.startswith("ships_ge") else which]
    aliases = {"boat": "ship"} if which.startswith("ships_ge") else "dota_to_star"
    key = "ships_ge" if which == "ships_ge_obb" else which  # the same detections as ships_ge
    preds, gts, kinds, t0, tiles = [], [], set(), time.perf_counter(), 0
    turn = turn_of(which)
    if turn is not None:
        import tempfile

        scratch = None if args.cache else tempfile.TemporaryDirectory()
        work = Path(args.cache) / f"{which}_images" if args.cache else Path(scratch.name)
    for image, label in dota_items(real, which, args.aircraft_limit):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gt = read_dota_labels(label, aliases=aliases)
        if which == "ships_ge_obb" or turn is not None:
            gt = pseudo_labels(gt, image)
        if turn is not None:
            image, gt = turned(gt, image, work, turn)
        kinds.add(gt.metadata.get("box_type", "obb"))  # the label file's own kind (hbb: axis-aligned boxes)
        got = detect_cached(model, image, args, f"{key}/{image.stem}", gsd=gt.metadata.get("gsd"))
        if got is None:
            continue
        tiles += got[1]
        preds.append(group_only(got[0], model.vocabulary, group))
        gts.append(gt_only(gt, group))
    box_type = "hbb" if "hbb" in kinds else "obb"  # a horizontal label fixes only the envelope
    r = rotated_map(preds, gts, box_type=box_type, class_names=["object"])
    return {"AP50": r["AP"].get("object", 0.0), "recall": r["recall"].get("object", 0.0),
            "gts": r["num_gts"]["object"], "dets": r["num_dets"]["object"], "images": len(gts),
            "box_type": box_type, "tiles": tiles, "seconds": round(time.perf_counter() - t0, 1)}


def group_scores(preds, gts, vocab) -> dict:
    """Class-agnostic AP@0.5 (oriented) of each class group that the ground truth holds, as for the real sets."""
    from sgg.evaluation.detection import rotated_map

    out = {}
    for name, members in GROUPS.items():
        g = [gt_only(gt, [m for m in members if m in gt.vocabulary.objects]) for gt in gts]
        if not sum(len(x.detections) for x in g):
            continue
        r = rotated_map([group_only(p, vocab, members) for p in preds], g, class_names=["object"])
        out[name] = {"AP50": r["AP"].get("object", 0.0), "recall": r["recall"].get("object", 0.0),
                     "gts": r["num_gts"]["object"]}
    return out


def eval_synthetic(model, dirs: list[Path], split: str, args, turn: bool = False) -> dict:
    """mAP@0.5 over classes of the ``split`` scenes of one or more ``sgg synth`` directories, and the class
    groups' class-agnostic AP (e.g. vehicles in scenes rendered at 0.125 m); ``turn``: the scenes turned by
    :data:`TURN` degrees (:func:`turned`; images written under ``--cache`` or a temporary folder)."""
    import tempfile

    from sgg.datasets.native import read_scene_json
    from sgg.datasets.tiling import read_split
    from sgg.evaluation.detection import rotated_map

    name = "synthetic_r45" if turn else "synthetic"
    scratch = None if args.cache or not turn else tempfile.TemporaryDirectory()
    preds, gts, t0 = [], [], time.perf_counter()
    for data in dirs:
        prefix = name if len(dirs) == 1 else f"{name}/{data.name}"  # one dir: the old cache keys
        for i in read_split(data)[split]:
            key = f"{prefix}/{i}"
            if elsewhere(key, args):
                continue  # another shard's scene: do not turn it here
            gt, image = read_scene_json(data / "annotations" / f"{i}.json"), data / "scenes" / f"{i}.tif"
            if turn:
                work = (Path(args.cache) / f"{name}_images" if args.cache else Path(scratch.name)) / data.name
                image, gt = turned(gt, image, work)
            got = detect_cached(model, image, args, key, gsd=(gt.metadata or {}).get("gsd") if turn else None)
            if got is None:
                continue
            gts.append(gt)
            preds.append(got[0])
    r = rotated_map(preds, gts, class_names=list(model.vocabulary.objects))
    return {"mAP50": r["mAP"], "classes": len(r["classes_evaluated"]), "images": len(gts),
            "groups": group_scores(preds, gts, model.vocabulary), "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights")
    ap.add_argument("--real", default="../shared/real", help="the real-data folder")
    ap.add_argument("--synth", help="scene directory (or comma-separated directories) for held-out synthetic mAP "
                    "and class-group AP (sgg synth)")
    ap.add_argument("--split", default="test", help="split of --synth")
    ap.add_argument("--sets", default=",".join(SETS), help=f"comma-separated subset of {', '.join(SETS)}")
    ap.add_argument("--aircraft-limit", type=int, default=0, help="first N airbus images (0 = all 10)")
    ap.add_argument("--tile-size", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tta", help="test-time views (sgg.detectors.tta: flips, d2, all, d2r, auto or a list such as "
                    "hflip,rot45); use another --cache than the plain model's")
    ap.add_argument("--tta-vote", default="mean", choices=("mean", "anchored"),
                    help="score voting of the --tta views (sgg.detectors.tta.vote)")
    ap.add_argument("--align-min-coherence", type=float, default=None,
                    help="the align view's coherence gate (default sgg.detectors.tta.ALIGN_MIN_COHERENCE)")
    ap.add_argument("--box-passes", type=int, default=None,
                    help="passes of the RoI box head (iterative box regression); default: the checkpoint's own; "
                    "use another --cache than other settings'")
    ap.add_argument("--ensemble", nargs="+", default=[], metavar="WEIGHTS",
                    help="more weights files voted with the first on each tile (sgg.detectors.tta.EnsembleDetector)")
    ap.add_argument("--json", help="write the results as JSON")
    ap.add_argument("--cache", help="directory of per-image detections (reused; lets shards split the work)")
    ap.add_argument("--shard", metavar="K/N", type=parse_shard,
                    help="with --cache: detect only shard K of N (1 <= K <= N; figures are then partial: run once "
                    "more without --shard to score everything from the cache)")
    a = ap.parse_args(argv)
    unknown = [w for w in a.sets.split(",") if w not in SETS and turn_of(w) is None]
    if unknown:
        ap.error(f"unknown --sets {unknown}: choose from {', '.join(SETS)} or ships_ge_r<degrees>")

    import torch

    from sgg.detectors.checkpoint import load_detector

    torch.set_num_threads(a.threads)
    if a.box_passes is not None and a.box_passes < 1:
        ap.error("--box-passes must be at least 1")
    model = load_detector(a.weights, box_passes=a.box_passes).eval()
    if a.ensemble:
        from sgg.detectors.tta import EnsembleDetector

        model = EnsembleDetector([model] + [load_detector(w, box_passes=a.box_passes) for w in a.ensemble]).eval()
    if a.tta:
        from sgg.detectors.tta import TTADetector, parse_views
        from sgg.errors import SggInputError

        try:
            gate = {} if a.align_min_coherence is None else {"align_min_coherence": a.align_min_coherence}
            model = TTADetector(model, parse_views(a.tta, option="--tta"), vote=a.tta_vote, **gate).eval()
        except SggInputError as exc:
            ap.error(str(exc))
    real = Path(a.real)
    out = {"weights": a.weights, "ensemble": a.ensemble, "box_passes": a.box_passes, "gsd_range": model.config.get("gsd_range"), "tta": a.tta,
           "tta_vote": a.tta_vote if a.tta else None, "align_min_coherence": a.align_min_coherence}
    for which in a.sets.split(","):
        if which in ("synthetic", "synthetic_r45"):
            if not a.synth:
                continue
            out[which] = eval_synthetic(model, [Path(d) for d in a.synth.split(",")], a.split, a,
                                        turn=which == "synthetic_r45")
        else:
            out[which] = eval_dota_set(model, real, which, a)
        print(which, json.dumps(out[which]), flush=True)
    if a.json:
        from sgg.io.atomic import atomic_write_text

        atomic_write_text(a.json, json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
