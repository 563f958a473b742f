"""``sgg detect``: holistic oriented detection over a raster, or bring your own DOTA-format detections.

    sgg detect scene.tif --weights weights/hodnet_effl0_synth.pt --out scene.graph.json
    sgg detect scene.tif --weights W.pt --out scene.gpkg --zoom full --tile-size 1024 --overlap 200
    sgg detect scene.tif --from-dota mmrotate_results/ --out scene.graph.json   # no model

torch and rasterio are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _levels(text: str):
    if text == "auto":
        return "auto"
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or comma-separated levels like 0,1,2; got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sgg detect",
        description="Detect oriented objects in a raster of any size (holistic multi-level tiling, "
        "guided zoom, class-wise rotated NMS within and across levels) and write a scene graph.",
    )
    p.add_argument("raster", help="GeoTIFF (or any GDAL raster) to detect objects in")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", help="detector checkpoint (sgg detector file or DetectorModule .ckpt)")
    src.add_argument("--from-dota", metavar="DIR", help="load DOTA Task-1 results (Task1_<class>.txt, e.g. "
                     "from mmrotate) for this raster instead of running a model")
    p.add_argument("--out", help="output scene graph: .json (native) or any `sgg export` format "
                   "(.gpkg, .geojson, .parquet, .graphml); default <raster stem>.graph.json")
    p.add_argument("--dota-out", metavar="DIR", help="also write DOTA Task-1 results files to DIR")
    p.add_argument("--tile-size", type=int, default=None,
                   help="tile side in pixels (default: the weights' training tile size, else 1024)")
    p.add_argument("--overlap", type=int, default=None,
                   help="overlap between tiles, level pixels (default: a quarter of the weights' tile, else 200)")
    p.add_argument("--levels", type=_levels, default="auto", help="'auto' (pyramid down to one tile) or e.g. 0 or 0,1")
    p.add_argument("--zoom", choices=("guided", "full"), default="guided",
                   help="guided: finer tiles only where coarser levels found objects (default); full: everywhere")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--prefetch", type=int, default=2, help="tiles read ahead on a thread pool")
    p.add_argument("--score-threshold", type=float, default=0.05)
    p.add_argument("--iou-threshold", type=float, default=0.4, help="class-wise rotated NMS IoU (STAR: 0.4)")
    p.add_argument("--guide-threshold", type=float, default=0.3, help="score a coarse object needs to guide the zoom")
    p.add_argument("--image-id", help="--from-dota: image id in the results (default: raster file stem)")
    p.add_argument("--aliases", help="--from-dota: class-name alias table, e.g. dota_to_star")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return p


def _write(sg, out: Path) -> None:
    if out.suffix.lower() == ".json":
        from sgg.datasets.native import write_scene_json

        write_scene_json(sg, out)
    else:
        from sgg.graph import export

        export(sg, out)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from sgg.errors import SggInputError

    raster = Path(args.raster)
    if not raster.exists():
        raise SggInputError("raster not found", path=raster)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path(f"{raster.stem}.graph.json")
    if args.from_dota:
        from sgg.detectors.inference import scenes_from_dota

        src = Path(args.from_dota)
        if not src.exists():
            raise SggInputError("DOTA results not found", path=src)
        sg = next(iter(scenes_from_dota(src, aliases=args.aliases, raster=raster, image_id=args.image_id,
                                        score_threshold=args.score_threshold).values()))
    else:
        from sgg.detectors.checkpoint import load_detector
        from sgg.detectors.inference import detect_scene

        weights = Path(args.weights)
        if not weights.is_file():
            raise SggInputError("detector weights not found (train with `sgg train detector` or pass --from-dota)",
                                path=weights)
        model = load_detector(weights, map_location=args.device).to(args.device)
        sg = detect_scene(model, raster, tile_size=args.tile_size, overlap=args.overlap, levels=args.levels,
                          zoom=args.zoom, batch_size=args.batch_size, prefetch=args.prefetch,
                          score_threshold=args.score_threshold, iou_threshold=args.iou_threshold,
                          progress=not args.quiet and sys.stderr.isatty(), guide_threshold=args.guide_threshold)
        sg.metadata["weights"] = str(weights)
    _write(sg, out)
    if args.dota_out:
        from sgg.datasets.dota import write_dota_results

        write_dota_results({args.image_id or raster.stem: sg.detections}, args.dota_out, sg.vocabulary)
    if not args.quiet:
        det = sg.detections
        counts = torch.bincount(det.labels, minlength=sg.vocabulary.num_classes) if len(det) else None
        top = [] if counts is None else sorted(
            ((int(c), sg.vocabulary.objects[i]) for i, c in enumerate(counts.tolist()) if c), reverse=True)[:8]
        summary = ", ".join(f"{n} {name}" for n, name in top) or "nothing"
        timing = sg.metadata.get("timing", {})
        extra = f" in {timing['total_s']:.1f} s" if "total_s" in timing else ""
        print(f"{raster}: {len(det)} objects ({summary}){extra} -> {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
