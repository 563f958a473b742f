"""``sgg detect``: holistic oriented detection over a raster, or bring your own DOTA-format detections.

    sgg detect scene.tif --weights weights/hodnet_effl0_synth.pt --out scene.scene.json
    sgg detect scene.tif --weights W.pt --out scene.gpkg --zoom full --tile-size 1024 --overlap 200
    sgg detect scene.tif --from-dota mmrotate_results/ --out scene.scene.json   # no model

Every option and path is checked before the model loads or a tile is read. torch and rasterio are
imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sgg.cli_support import ArgumentParser, float_range, int_range, progress_for


def _levels(text: str):
    if text == "auto":
        return "auto"
    try:
        levels = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        levels = []
    if not levels or min(levels) < 0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or comma-separated levels >= 0 like 0,1,2; got {text!r}")
    return levels


def build_parser() -> ArgumentParser:
    from sgg.graph.formats import GRAPH_SUFFIXES

    p = ArgumentParser(
        prog="sgg detect",
        description="Detect oriented objects in a raster of any size (holistic multi-level tiling, "
        "guided zoom, class-wise rotated NMS within and across levels) and write a scene graph.",
        quiet_help="no warnings, progress or summary",
    )
    p.add_argument("raster", help="GeoTIFF (or any GDAL raster) to detect objects in")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", help="detector checkpoint (sgg detector file or DetectorModule .ckpt)")
    src.add_argument("--from-dota", metavar="DIR", help="load DOTA Task-1 results (Task1_<class>.txt, e.g. "
                     "from mmrotate) for this raster instead of running a model")
    p.add_argument("--out", help=f"output scene graph, format by suffix: {', '.join(GRAPH_SUFFIXES)} "
                   "(.scene.json = sgg native, .json = node-link); default <raster stem>.scene.json")
    p.add_argument("--dota-out", metavar="DIR", help="also write DOTA Task-1 results files to DIR")
    p.add_argument("--tile-size", type=int_range(32), default=None,
                   help="tile side in pixels (default: the weights' training tile size, else 1024)")
    p.add_argument("--overlap", type=int_range(0), default=None,
                   help="overlap between tiles, level pixels (default: a quarter of the weights' tile, else 200)")
    p.add_argument("--levels", type=_levels, default="auto", help="'auto' (pyramid down to one tile) or e.g. 0 or 0,1")
    p.add_argument("--zoom", choices=("guided", "full"), default="guided",
                   help="guided: finer tiles only where coarser levels found objects; full: everywhere")
    p.add_argument("--batch-size", type=int_range(1), default=2, help="tiles per forward pass")
    p.add_argument("--prefetch", type=int_range(0), default=2, help="tiles read ahead on a thread pool")
    p.add_argument("--score-threshold", type=float_range(0, 1), default=0.05,
                   help="evaluation threshold: the detector keeps detections scoring at least this (low, for mAP)")
    from sgg.graph.cli import add_output_arguments
    from sgg.graph.thresholds import DEFAULT_OUTPUT_THRESHOLD

    add_output_arguments(p, f"output threshold of the layers written to --out (default {DEFAULT_OUTPUT_THRESHOLD}; "
                         ".scene.json and --dota-out keep every detection above --score-threshold unless given)")
    p.add_argument("--iou-threshold", type=float_range(0, 1, lo_open=True), default=0.4,
                   help="class-wise rotated NMS IoU (STAR: 0.4)")
    p.add_argument("--guide-threshold", type=float_range(0, 1), default=0.3,
                   help="score a coarse object needs to guide the zoom")
    p.add_argument("--image-id", help="--from-dota: image id in the results (default: raster file stem)")
    p.add_argument("--aliases", help="--from-dota: class-name alias table, e.g. dota_to_star")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, mps")
    p.add_argument("--threads", type=int_range(1), default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--gsd", type=float_range(0, lo_open=True), default=None,
                   help="metres per pixel (overrides the raster's CRS and a DOTA label's gsd: header found beside "
                        "the image as P0706.txt or ../labelTxt/P0706.txt); sets the finest pyramid level against "
                        "the model's training GSD range and enables the size filter")
    p.add_argument("--no-size-filter", dest="size_filter", action="store_false",
                   help="keep objects impossibly large in metres for their class (by default dropped when the GSD "
                        "is known, e.g. a car over 30 m; see sgg.detectors.sizes)")
    p.add_argument("--join-linear", metavar="CLASSES", default=True,
                   help="comma-separated classes whose collinear pieces (a runway or dock cut by tiles) are joined "
                        "into one box (default: runway, dock, breakwater, bridge and the dams; "
                        "sgg.detectors.merge.join_collinear); with --from-dota nothing is joined unless classes "
                        "are named here")
    p.add_argument("--no-join-linear", dest="join_linear", action="store_const", const=False,
                   help="keep the pieces of long thin objects as detected")
    p.add_argument("--bands", type=int_range(1), nargs=3, default=None, metavar="B",
                   help="1-based bands read as red, green, blue (as sgg info --bands)")
    p.add_argument("--tta", default=None, metavar="VIEWS",
                   help="test-time augmentation: detect every tile also flipped/transposed/turned and vote (flips "
                        "= 3 views, d2 = 4, all = 8, d2r = d2 + rot45,rot135, auto = identity + align, the tile turned by its "
                        "own dominant direction when that lies off the axes, or a list such as hflip,rot45 or d2,align; "
                        "costs about that many times the time, a 45-degree turn twice; sgg.detectors.tta)")
    p.add_argument("--box-passes", type=int_range(1), default=None, metavar="N",
                   help="passes of the RoI box head: each pass after the first pools every box again where the last "
                        "pass put it (iterative box regression); default: what the weights file records")
    return p


def _check_join_names(objects, join) -> None:
    """``--join-linear CLASSES`` against the vocabulary, as a usage error naming the option."""
    if not isinstance(join, str):
        return
    from sgg.detectors.merge import linear_classes
    from sgg.errors import SggInputError

    try:
        linear_classes(list(objects), join)
    except ValueError as exc:
        raise SggInputError(str(exc), option="--join-linear") from None


def check_options(args: argparse.Namespace):
    """Everything that can be checked before work starts; returns (raster, out, dota_out)."""
    from sgg.cli_support import UsageError, input_path, output_dir, output_file
    from sgg.devices import check_device
    from sgg.graph.formats import GRAPH_SUFFIXES

    raster = input_path(args.raster, "RASTER")
    if args.overlap is not None and args.tile_size is not None and args.overlap >= args.tile_size:
        raise UsageError(f"--overlap {args.overlap} must be smaller than --tile-size {args.tile_size}")
    if args.from_dota:
        input_path(args.from_dota, "--from-dota", kind="any")
        ignored = [o for o, v in (("--tile-size", args.tile_size), ("--overlap", args.overlap),
                                  ("--levels", args.levels != "auto" or None), ("--zoom", args.zoom != "guided" or None),
                                  ("--threads", args.threads), ("--no-size-filter", not args.size_filter or None),
                                  ("--tta", args.tta), ("--box-passes", args.box_passes)) if v]
        if ignored:
            verb = "applies" if len(ignored) == 1 else "apply"
            raise UsageError(f"{', '.join(ignored)} only {verb} with --weights, not --from-dota")
    else:
        input_path(args.weights, "--weights")
        for opt, v in (("--image-id", args.image_id), ("--aliases", args.aliases)):
            if v:
                raise UsageError(f"{opt} only applies with --from-dota")
        check_device(args.device)
        if args.tta:
            from sgg.detectors.tta import parse_views

            args.tta = parse_views(args.tta, option="--tta")
    if args.aliases:
        from sgg.datasets.aliases import resolve_aliases
        from sgg.errors import SggInputError

        try:
            resolve_aliases(args.aliases)
        except SggInputError as exc:
            raise SggInputError(str(exc), option="--aliases") from None
    out = Path(args.out) if args.out else Path(f"{raster.stem}.scene.json")
    output_file(out, "--out", suffixes=GRAPH_SUFFIXES, inputs=[raster])
    dota_out = output_dir(args.dota_out, "--dota-out") if args.dota_out else None
    from sgg.graph.cli import check_project_option
    from sgg.graph.formats import suffix_format

    check_project_option(args, suffix_format(out), inputs=(raster,))
    return raster, out, dota_out


def _check_raster(raster: Path, out: Path) -> None:
    """Open the raster once up front: a corrupt file, or GeoJSON output for a raster without a CRS, fails
    before the model loads."""
    from sgg.errors import SggInputError
    from sgg.graph.formats import GEOJSON_NO_CRS, suffix_format
    from sgg.io.raster import RasterScene

    with RasterScene.open(raster) as scene:
        if suffix_format(out) == "geojson" and scene.crs is None:
            raise SggInputError(GEOJSON_NO_CRS.replace("this scene", f"raster {raster}"), path=out, option="--out")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    raster, out, dota_out = check_options(args)
    _check_raster(raster, out)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.from_dota:
        from sgg.detectors.inference import scenes_from_dota
        from sgg.detectors.merge import named_classes
        from sgg.structures import Vocabulary

        join = named_classes(args.join_linear)  # foreign results: joined only for classes named
        _check_join_names(Vocabulary.star().objects, join)  # before the results are read
        sg = next(iter(scenes_from_dota(Path(args.from_dota), aliases=args.aliases, raster=raster,
                                        image_id=args.image_id, score_threshold=args.score_threshold,
                                        join_linear=join).values()))
    else:
        from sgg.detectors.checkpoint import load_detector
        from sgg.detectors.inference import detect_scene

        weights = Path(args.weights)
        model = load_detector(weights, map_location=args.device, box_passes=args.box_passes).to(args.device)
        if args.tta:
            from sgg.detectors.tta import TTADetector

            model = TTADetector(model, args.tta).eval()
        from sgg.detectors.protocol import detector_vocabulary

        if isinstance(args.min_score, dict):  # per-class output threshold: class names checked before the run
            from sgg.errors import SggInputError
            from sgg.graph.thresholds import class_thresholds

            try:
                class_thresholds(args.min_score, detector_vocabulary(model).objects)
            except SggInputError as exc:
                raise SggInputError(str(exc), option="--min-score") from None
        _check_join_names(detector_vocabulary(model).objects, args.join_linear)  # before the run
        from sgg.io.raster import RasterScene

        with RasterScene.open(raster, bands=args.bands) as scene:
            sg = detect_scene(model, scene, tile_size=args.tile_size, overlap=args.overlap, levels=args.levels,
                              zoom=args.zoom, batch_size=args.batch_size, prefetch=args.prefetch,
                              score_threshold=args.score_threshold, iou_threshold=args.iou_threshold,
                              progress=progress_for("detect", args.quiet), guide_threshold=args.guide_threshold,
                              gsd=args.gsd, size_filter=args.size_filter, join_linear=args.join_linear)
        sg.metadata["weights"] = str(weights)
    dropped = int(sg.metadata.get("dropped_outside", 0))  # counted where the objects are made
    from sgg.graph.formats import export, suffix_format
    from sgg.graph.thresholds import DEFAULT_OUTPUT_THRESHOLD, select_objects

    # two thresholds: detections down to --score-threshold (evaluation) are kept for .scene.json/--dota-out;
    # layers for people hold the objects scoring at least --min-score (output threshold)
    fmt = suffix_format(out)
    min_score = args.min_score if args.min_score is not None or fmt == "scene" else DEFAULT_OUTPUT_THRESHOLD
    sg = sg.replace(metadata={**sg.metadata, "thresholds": {"evaluation": args.score_threshold, "output": None}})
    every = sg
    sg = select_objects(sg, min_score)
    written: dict = {}
    export(sg, out, summary=written)
    if args.qgis_project:
        from sgg.graph.qgis import write_scene_project

        write_scene_project(args.qgis_project, out, sg, raster_path=raster)
    if dota_out is not None:
        from sgg.datasets.dota import write_dota_results

        write_dota_results({args.image_id or raster.stem: every.detections}, dota_out, every.vocabulary)
    if not args.quiet:
        det = sg.detections
        counts = torch.bincount(det.labels, minlength=sg.vocabulary.num_classes) if len(det) else None
        top = [] if counts is None else sorted(
            ((int(c), sg.vocabulary.objects[i]) for i, c in enumerate(counts.tolist()) if c), reverse=True)[:8]
        summary = ", ".join(f"{n} {name}" for n, name in top) or "nothing"
        timing = sg.metadata.get("timing", {})
        extra = f" in {timing['total_s']:.1f} s" if "total_s" in timing else ""
        gone = f"; dropped {dropped} centred outside the raster" if dropped else ""
        gsd, source = sg.metadata.get("gsd"), sg.metadata.get("gsd_source")
        if gsd:
            where = {"argument": "--gsd", "raster": "raster CRS"}.get(source) or sg.metadata.get("gsd_label", source)
            gone += f"; GSD {gsd:.3g} m ({where})"
        big = (sg.metadata.get("size_filter") or {}).get("dropped", 0)
        if big:
            gone += f"; dropped {big} too large in metres for their class"
        kept = (f" scoring >= {min_score} (of {len(every.detections)} >= {args.score_threshold})"
                if min_score is not None else "")
        project = f" + {args.qgis_project}" if args.qgis_project else ""
        print(f"{raster}: {len(det)} objects{kept} ({summary}){extra}{gone} -> {out}{project}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
