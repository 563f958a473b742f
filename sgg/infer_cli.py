"""``sgg infer``: the whole pipeline over one or more rasters, with GIS, graph, text and picture outputs.

    sgg infer scene.tif [more.tif …] --out results/
    sgg infer scene.tif --out results/ --config configs/pipeline/default.yaml --tile-size 512 --pair-budget 5000

For each scene ``DIR/<name>.gpkg`` (layers ``objects`` and ``relations``, table ``run``), ``.graphml``,
``.caption.txt`` and ``.preview.png`` (the scene overview, footprints coloured by class, arrows for the top
relations), then a one-screen summary. Every file of a scene is written to a staging folder and moved in
only when all of them are complete. Tiles are recorded in ``DIR/.sgg-ledger/`` as they finish, so a run
that is killed and started again skips them. Bad input gives one line and exit status 2 (``--debug`` for
a traceback).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

FORMATS = ("gpkg", "graphml", "caption", "preview", "qgis", "geojson", "parquet", "json")
DEFAULT_FORMATS = "gpkg,graphml,caption,preview,qgis"
OUTPUT_THRESHOLD = "0.3"  # objects written to layers, captions and previews (detection keeps >= 0.05 for mAP)
SUFFIX = {"gpkg": ".gpkg", "graphml": ".graphml", "caption": ".caption.txt", "preview": ".preview.png", "qgis": ".qgz",
          "geojson": ".geojson", "parquet": ".parquet", "json": ".json"}


def _formats(text: str) -> list[str]:
    out = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise argparse.ArgumentTypeError(f"unknown format(s) {bad}; choose from {', '.join(FORMATS)}")
    if "qgis" in out and "gpkg" not in out:
        raise argparse.ArgumentTypeError("qgis (the .qgz project) opens the GeoPackage: add gpkg")
    return out


def _levels(text: str):
    if text == "auto":
        return "auto"
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or levels like 0,1,2; got {text!r}") from None


def _budget(text: str):
    """``--pair-budget``: 'auto' or a whole number >= 0 (``1e4`` included), by sgg.pairs' one budget rule."""
    from sgg.errors import SggInputError
    from sgg.pairs.proposer import check_budget

    text = text.strip()
    try:
        value: object = "auto" if text.lower() == "auto" else float(text)  # check_budget takes 5000.0 as 5000
    except ValueError:
        value = text
    try:
        return check_budget(value, "--pair-budget")
    except SggInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _none(text: str) -> str | None:
    return None if text.lower() in ("none", "null", "off") else text


def _threshold(text: str):
    from sgg.graph.cli import threshold_arg

    return threshold_arg(text)


def build_parser() -> argparse.ArgumentParser:
    from sgg.cli_support import ArgumentParser, float_range, int_range

    p = ArgumentParser(prog="sgg infer", description="Scene graphs for rasters of any size: detection, pair "
                       "proposal, relations, GIS/graph/caption/preview outputs.")
    p.add_argument("scenes", nargs="+", metavar="SCENE", help="GeoTIFF or any GDAL raster (PNG/JPEG: pixel coordinates)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--config", help="pipeline YAML (configs/pipeline/*.yaml); options below override it")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", help="detector checkpoint ('bundled': the shipped HOD-Net weights)")
    src.add_argument("--from-dota", metavar="DIR", help="DOTA Task-1 results instead of running a detector")
    src.add_argument("--from-annotation", metavar="PATH", help="ground-truth objects (sgg JSON or DOTA labels, "
                     "a file or a directory of <name>.json/.txt): PredCls")
    p.add_argument("--aliases", help="class-name alias table for foreign files, e.g. dota_to_star")
    p.add_argument("--device", help="torch device (config default: cpu)")
    p.add_argument("--tile-size", type=int_range(32), help="tile side in px (default: the weights' training tile)")
    p.add_argument("--overlap", type=int_range(0), help="tile overlap in level px")
    p.add_argument("--levels", type=_levels, help="'auto' (pyramid down to one tile) or e.g. 0 or 0,1")
    p.add_argument("--zoom", choices=("guided", "full"), help="guided: finer tiles only under coarser objects")
    p.add_argument("--batch-size", type=int_range(1), help="tiles per forward pass (config default 2)")
    p.add_argument("--score-threshold", type=float_range(0, 1), help="config default 0.05")
    p.add_argument("--gsd", type=float_range(0, None, lo_open=True), help="metres per pixel when the raster does not "
                   "say (default: its CRS, else a DOTA label's gsd: header beside the image)")
    p.add_argument("--tta", metavar="VIEWS", help="test-time augmentation as sgg detect --tta: flips, d2, all, d2r, auto or "
                   "a list such as hflip,rot45 (costs about that many times the detection time)")
    p.add_argument("--box-passes", type=int_range(1), metavar="N", help="passes of the RoI box head as sgg detect "
                   "--box-passes (default: what the weights file records)")
    p.add_argument("--no-size-filter", dest="size_filter", action="store_false", default=None,
                   help="keep objects impossibly large in metres for their class (dropped by default when the GSD "
                        "is known)")
    p.add_argument("--join-linear", metavar="CLASSES", dest="join_linear", default=None,
                   help="comma-separated classes whose collinear pieces are joined (default: runway, dock, breakwater, "
                        "bridge and the dams; with --from-dota nothing is joined unless classes are named here)")
    p.add_argument("--no-join-linear", dest="join_linear", action="store_const", const=False, default=None,
                   help="keep the pieces of runways, docks and other long thin objects cut by tiles as detected "
                        "(joined into one box by default)")
    p.add_argument("--pair-proposer", type=_none, help="'default' (STAR's PPG), a proposer/PPG file, or none")
    p.add_argument("--pair-budget", type=_budget, help="pairs kept per scene: 'auto' (config default: "
                   "max(10,000, 32 × objects)) or a number (STAR: 10,000)")
    p.add_argument("--relation-head", type=_none, help="'frequency', a relation-head checkpoint, "
                   "'package.module:factory', or none")
    p.add_argument("--count-norm", type=float_range(0, None), metavar="BETA",
                   help="rank each scene's relations for mean recall with this β (0: plain probabilities; "
                        "default: the head's own, README 'Relations')")
    p.add_argument("--formats", type=_formats, default=DEFAULT_FORMATS,
                   help=f"comma-separated, from {', '.join(FORMATS)}")
    p.add_argument("--top-k", type=int_range(0), help="relations kept in exports, captions and previews (config default 100)")
    p.add_argument("--min-score", type=_threshold, default=OUTPUT_THRESHOLD,
                   help="output threshold: objects scoring below it are left out of every written file, "
                        "e.g. 0.3 or 0.3,airplane=0.5 (the evaluation threshold is --score-threshold)")
    p.add_argument("--keep-ledger", action="store_true", help="keep the per-tile ledger after a scene completes")
    p.add_argument("--threads", type=int_range(1), help="torch intra-op threads")
    return p


def pipeline_from_args(args: argparse.Namespace):
    from sgg.pipeline import Pipeline, resolve_config

    if getattr(args, "tta", None):
        from sgg.detectors.tta import parse_views

        args.tta = list(parse_views(args.tta, option="--tta"))
    over: dict[str, Any] = {}
    for opt, key in (("weights", "detector.weights"), ("from_dota", "detector.from_dota"),
                     ("from_annotation", "detector.from_annotation"), ("aliases", "detector.aliases"),
                     ("tile_size", "detector.tile_size"), ("overlap", "detector.overlap"),
                     ("levels", "detector.levels"), ("zoom", "detector.zoom"), ("batch_size", "detector.batch_size"),
                     ("score_threshold", "detector.score_threshold"), ("pair_budget", "pairs.budget"),
                     ("gsd", "detector.gsd"), ("size_filter", "detector.size_filter"), ("tta", "detector.tta"),
                     ("box_passes", "detector.box_passes"),
                     ("join_linear", "detector.join_linear"),
                     ("top_k", "output.top_k"), ("device", "device")):
        if getattr(args, opt, None) is not None:
            over[key] = getattr(args, opt)
    cfg_over: dict[str, Any] = {}
    if args._pair_given:
        cfg_over["pairs"] = None if args.pair_proposer is None else {"proposer": args.pair_proposer}
    if args._head_given:
        cfg_over["relations"] = None if args.relation_head is None else {"head": args.relation_head, "count_norm": None}
    if args.count_norm is not None and (cfg_over.get("relations", True) is not None):
        over["relations.count_norm"] = args.count_norm
    cfg_over["caption"] = "caption" in args.formats
    if args.config:
        pipe = Pipeline.from_config(args.config)
        cfg = pipe.config
        base = pipe.base_dir
    else:
        cfg, base = resolve_config(), None
    for k, v in cfg_over.items():
        if v is None:
            cfg[k] = None
        elif isinstance(v, dict):
            cfg[k] = {**(cfg.get(k) or resolve_config()[k]), **v}
        else:
            cfg[k] = v
    if args.from_dota or args.from_annotation:
        cfg["detector"]["weights"] = None
    cfg = resolve_config(cfg, **over)
    return Pipeline(cfg, base_dir=base)


def check_writable(out: Path) -> None:
    """Refuse an output directory that cannot be written, before any work and without creating anything."""
    from sgg.errors import SggInputError

    if out.exists() and not out.is_dir():
        raise SggInputError("output path exists and is not a directory", path=out)
    probe_dir = out
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    try:  # a real write (root passes every os.access check)
        if not probe_dir.is_dir():
            raise NotADirectoryError(f"{probe_dir} is not a directory")
        fd, probe = tempfile.mkstemp(prefix=".sgg-write-test.", dir=probe_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise SggInputError(f"output directory is not writable ({exc.strerror or exc})", path=out) from None


# ------------------------------------------------------------------------------------------ outputs
def write_outputs(sg: Any, out: Path, name: str, formats: list[str], caption: str | None, top_k: int) -> list[Path]:
    """Write the chosen outputs of one scene into a staging folder, then move each into ``out``."""
    from sgg.graph import export
    from sgg.io.atomic import atomic_write_text
    from sgg.preview import render_preview

    stage = Path(tempfile.mkdtemp(prefix=f".sgg-staging-{name}.", dir=out))
    finals: list[Path] = []
    try:
        for f in formats:
            if f == "qgis":  # written after the layers it opens are in place
                continue
            target = stage / f"{name}{SUFFIX[f]}"
            if f == "caption":
                if caption is None:
                    continue
                atomic_write_text(target, caption.rstrip("\n") + "\n")
            elif f == "preview":
                render_preview(sg, target, top_k=min(top_k, 30))
            else:
                export(sg, target, top_k=top_k)
            finals.append(target)
            if f == "parquet":  # the relations file beside it
                rel = target.with_name(f"{name}.relations.parquet")
                if rel.exists():
                    finals.append(rel)
        moved = []
        for t in finals:
            os.replace(t, out / t.name)
            moved.append(out / t.name)
        if "qgis" in formats and "gpkg" in formats:  # the raster under the scene's layers, in its CRS
            from sgg.graph.qgis import write_scene_project

            moved.append(write_scene_project(out / f"{name}.qgz", out / f"{name}.gpkg", sg))
        return moved
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def summary(sg: Any, name: str, files: list[Path], top: int = 8) -> str:
    """A one-screen text summary: objects per class, top relations, time per stage, files."""
    import torch

    voc, det = sg.vocabulary, sg.detections
    lines = []
    t = sg.metadata.get("timing_s", {})
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in t.items() if k != "total")
    lines.append(f"{name}: {len(det):,} objects, {len(sg.pairs):,} pairs in {t.get('total', 0):.1f} s ({stages})")
    if len(det):
        counts = torch.bincount(det.labels.cpu(), minlength=voc.num_classes)
        order = torch.argsort(counts, descending=True, stable=True)
        cls = [f"{int(counts[i])} {voc.objects[i]}" for i in order[:top].tolist() if counts[i] > 0]
        more = int((counts > 0).sum()) - len(cls)
        lines.append("  objects: " + ", ".join(cls) + (f", … {more} more classes" if more > 0 else ""))
    if sg.predicate_scores is not None and len(sg.pairs):
        tr = sg.triplets(top_k=5)
        lab = det.labels.cpu()
        beta = (sg.metadata.get("relation_ranking") or {}).get("count_norm", 0.0)
        lines.append("  top relations" + (f" (ranking scores, count-normalised β {beta:g}):" if beta
                                          else " (probabilities):"))
        for s, o, p, sc in zip(tr["subject"].tolist(), tr["object"].tolist(), tr["predicate"].tolist(),
                               tr["score"].tolist()):
            lines.append(f"    {voc.objects[int(lab[s])]}#{s} —{voc.predicates[p]}→ {voc.objects[int(lab[o])]}#{o}"
                         f"  ({sc:.2f})")
    if "ledger" in sg.metadata and sg.metadata["ledger"].get("tiles_reused"):
        lines.append(f"  resumed: {sg.metadata['ledger']['tiles_reused']} tiles from the ledger")
    if files:
        lines.append("  → " + ", ".join(str(f) for f in files))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ main
def run_scenes(pipe: Any, scenes: list[str], out: Path, formats: list[str], *, quiet: bool = False,
               keep_ledger: bool = False, debug: bool = False, min_score: Any = OUTPUT_THRESHOLD) -> int:
    """Run ``pipe`` on each scene and write its outputs; returns the exit status (2 if any scene failed).
    ``min_score``: the output threshold (objects below it are left out of every written file; None keeps all)."""
    from sgg.cli_support import _is_input_error, describe_error, progress_for
    from sgg.errors import SggInputError
    from sgg.graph.thresholds import select_objects
    from sgg.pipeline import TileLedger

    status, used = 0, set()
    progress = progress_for("infer", quiet)  # a bar per level on a terminal, periodic lines in logs
    top_k = int((pipe.config.get("output") or {}).get("top_k") or 100)
    for scene in scenes:
        path = Path(scene)
        name = path.stem
        while name in used:
            name += "_"
        used.add(name)
        ledger = TileLedger(out / ".sgg-ledger" / name)
        try:
            if not path.exists():
                raise SggInputError("raster not found", path=path)
            t0 = time.perf_counter()
            sg = select_objects(pipe.run(path, ledger=ledger, progress=progress), min_score)
            if len(sg.detections) == 0:
                warnings.warn(f"{path}: no objects found (empty or all-nodata scene); writing empty layers")
            t1 = time.perf_counter()
            caption = pipe.caption(sg) if "caption" in formats else None
            timing = dict(sg.metadata.get("timing_s", {}), caption=round(time.perf_counter() - t1, 4))
            sg = sg.replace(metadata=dict(sg.metadata, timing_s=timing))
            files = write_outputs(sg, out, name, formats, caption, top_k)
            timing["write"] = round(time.perf_counter() - t1 - timing["caption"], 4)
            timing["total"] = round(time.perf_counter() - t0, 4)
            if not keep_ledger:
                shutil.rmtree(ledger.root, ignore_errors=True)
            if not quiet:
                print(summary(sg, name, files))
        except KeyboardInterrupt:
            print(f"sgg infer: interrupted; finished tiles are kept in {ledger.root} and reused next time",
                  file=sys.stderr)
            return 130
        except Exception as exc:
            if debug:
                raise
            msg = describe_error(exc)
            print(f"sgg infer: error: {msg if str(path) in msg else f'{path}: {msg}'}", file=sys.stderr)
            status = max(status, 2 if _is_input_error(exc) else 1)
    if (out / ".sgg-ledger").is_dir() and not any((out / ".sgg-ledger").iterdir()):
        (out / ".sgg-ledger").rmdir()
    return status


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args._pair_given = any(a == "--pair-proposer" or a.startswith("--pair-proposer=") for a in argv)
    args._head_given = any(a == "--relation-head" or a.startswith("--relation-head=") for a in argv)
    from sgg.errors import SggInputError

    try:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        out = Path(args.out)
        check_writable(out)
        pipe = pipeline_from_args(args).check()
        out.mkdir(parents=True, exist_ok=True)
    except SggInputError as exc:
        if args.debug:
            raise
        print(f"sgg infer: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return run_scenes(pipe, args.scenes, out, args.formats, quiet=args.quiet, keep_ledger=args.keep_ledger,
                      debug=args.debug, min_score=args.min_score)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
