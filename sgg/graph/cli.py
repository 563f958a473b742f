"""``sgg export GRAPH [--to gpkg|geojson|parquet|graphml|json|scene] [--out PATH] [--crs CRS] [--topology]``."""

from __future__ import annotations

import sys
from pathlib import Path

from sgg.graph.formats import EXTENSION, FORMATS, GRAPH_SUFFIXES  # light: stdlib only at import time


def build_parser():
    from sgg.cli_support import ArgumentParser, float_range, int_range

    p = ArgumentParser(
        prog="sgg export",
        description="Convert a scene graph (any file sgg writes: " + ", ".join(GRAPH_SUFFIXES) + "; a native "
        "scene JSON annotation or a DOTA label file) to a GIS or graph format. Files are written atomically; "
        "an existing output file is replaced.",
        quiet_help="no warnings or summary",
    )
    p.add_argument("graph", metavar="GRAPH", help="input scene graph file")
    p.add_argument("--to", dest="fmt", choices=FORMATS, default=None,
                   help="output format (default: from --out's suffix; scene = sgg native .scene.json)")
    p.add_argument("--out", "-o", help="output path (default: GRAPH with the format's suffix)")
    p.add_argument("--crs", default=None,
                   help="'native' (raster CRS), 'EPSG:4326', ... (default: native; GeoJSON: EPSG:4326)")
    p.add_argument("--topology", action="store_true",
                   help="add footprint relations (overlaps, within, contains, touches, ...) as source=geometry")
    p.add_argument("--distance", type=float_range(0), default=None,
                   help="with --topology: also relate disjoint footprints closer than this many pixels (default 0)")
    p.add_argument("--top-k", type=int_range(0), default=None, help="predictions: keep the K best triplets")
    p.add_argument("--per-pair", type=int_range(1), default=1, help="predictions: predicates kept per pair")
    p.add_argument("--min-relation-score", type=float_range(0, 1), default=None,
                   help="predictions: drop triplets scoring below")
    from sgg.graph.thresholds import DEFAULT_OUTPUT_THRESHOLD

    add_output_arguments(p, f"drop objects scoring below this, with their relations (default "
                         f"{DEFAULT_OUTPUT_THRESHOLD}; 0 keeps all)")
    p.add_argument("--full-scores", action="store_true",
                   help="predictions: store each pair's predicate score vector (exact round trip)")
    p.add_argument("--no-style", action="store_true",
                   help="do not store QGIS layer styles (GeoPackage layer_styles, .qml beside GeoJSON/GeoParquet)")
    return p


# --------------------------------------------------------------------------------------------------
# Command-line options shared by ``sgg detect`` and ``sgg export``
# --------------------------------------------------------------------------------------------------
def threshold_arg(text: str):
    """argparse type of ``--min-score``: ``0.3`` or ``0.3,airplane=0.5`` (values in [0, 1])."""
    import argparse

    from sgg.errors import SggInputError
    from sgg.graph.thresholds import parse_threshold

    try:
        return parse_threshold(text)
    except SggInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_output_arguments(p, min_score_help: str) -> None:
    """``--min-score`` (the output threshold) and ``--qgis-project`` on a command's parser."""
    p.add_argument("--min-score", type=threshold_arg, default=None, metavar="T",
                   help=min_score_help + "; per class: 0.3,airplane=0.5 (the output threshold, see README)")
    p.add_argument("--qgis-project", metavar="PROJECT.qgz",
                   help="also write a QGIS project: the raster under the styled layers of --out "
                   "(.gpkg, .geojson or .parquet), zoomed to the scene")


def check_project_option(args, fmt: str | None, inputs: tuple = ()):
    """The ``--qgis-project`` path, checked before work starts (None if not asked for)."""
    if not getattr(args, "qgis_project", None):
        return None
    from sgg.cli_support import UsageError, output_file

    if fmt not in ("gpkg", "geojson", "parquet"):
        raise UsageError("--qgis-project needs GIS layers: write --out as .gpkg, .geojson or .parquet")
    return output_file(args.qgis_project, "--qgis-project", suffixes=(".qgz", ".qgs"), inputs=inputs)


def default_out(src: Path, fmt: str) -> Path:
    stem = src.name[: -len(".scene.json")] if src.name.lower().endswith(".scene.json") else src.stem
    out = src.with_name(stem + EXTENSION[fmt])
    if out.resolve() == src.resolve():
        out = src.with_name(stem + ".graph" + EXTENSION[fmt])
    return out


def check_options(args):
    """Options and paths checked before the graph is read: returns (source, output, format)."""
    from sgg.cli_support import UsageError, input_path, output_file
    from sgg.errors import SggInputError
    from sgg.graph.formats import suffix_format

    src = input_path(args.graph, "GRAPH")
    if args.distance is not None and not args.topology:
        raise UsageError("--distance only applies with --topology")
    if args.out:
        out = Path(args.out)
        if out.is_dir():
            output_file(out, "--out")  # refuses a directory, naming it
        by_suffix = suffix_format(out)
        fmt = args.fmt or by_suffix
        if fmt is None:
            raise SggInputError(f"unknown output suffix; use one of {', '.join(GRAPH_SUFFIXES)} or pass --to",
                                path=out, option="--out")
        if by_suffix != fmt:
            raise SggInputError(f"--to {fmt} writes {EXTENSION[fmt]} files, not {''.join(out.suffixes[-1:]) or 'no suffix'}; "
                                f"name the output *{EXTENSION[fmt]}", path=out, option="--out")
    elif args.fmt:
        fmt, out = args.fmt, default_out(src, args.fmt)
    else:
        raise UsageError("say what to write: --to FORMAT or --out FILE")
    output_file(out, "--out", inputs=[src])
    check_project_option(args, fmt, inputs=(src, out))
    if args.crs not in (None, "native"):
        import pyproj

        try:
            pyproj.CRS.from_user_input(args.crs)
        except pyproj.exceptions.CRSError:
            raise SggInputError("not a CRS pyproj knows (try EPSG:4326, EPSG:32633, a WKT or PROJ string)",
                                path=args.crs, option="--crs") from None
        if fmt in ("graphml", "json", "scene"):
            raise UsageError(f"--crs does not apply to {fmt} (its nodes carry pixel and map coordinates)")
    if fmt == "scene" and (args.topology or args.full_scores):
        raise UsageError("--topology and --full-scores are not stored in native scene JSON; write "
                         ".gpkg, .geojson, .parquet, .graphml or .json")
    return src, out, fmt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    src, out, fmt = check_options(args)
    from sgg.errors import SggInputError
    from sgg.graph.formats import GEOJSON_NO_CRS, export, read
    from sgg.graph.tables import scene_crs

    sg = read(src)
    if fmt == "geojson" and scene_crs(sg) is None:
        raise SggInputError(GEOJSON_NO_CRS.replace("this scene", f"{src}"), path=out, option="--out")
    if fmt == "scene" and sg.predicate_scores is not None and len(sg.pairs) and args.top_k is None:
        raise SggInputError(f"{src} is a prediction with {len(sg.pairs)} candidate pairs: native scene JSON "
                            "keeps its best triplets only, pass --top-k K", path=out, option="--out")
    from sgg.graph.thresholds import DEFAULT_OUTPUT_THRESHOLD

    written: dict = {}
    min_score = DEFAULT_OUTPUT_THRESHOLD if args.min_score is None else args.min_score
    path = export(sg, out, fmt, crs=args.crs, topology=args.topology, distance=args.distance or 0.0,
                  top_k=args.top_k, per_pair=args.per_pair, min_score=args.min_relation_score,
                  full_scores=args.full_scores, style=not args.no_style, summary=written,
                  output_threshold=min_score)
    if args.qgis_project:
        from sgg.graph.qgis import write_scene_project

        write_scene_project(args.qgis_project, path, sg)
    if not args.quiet:
        dropped = sg.num_objects - written["objects"]
        note = f"; {dropped} below --min-score {min_score} left out" if dropped else ""
        print(f"wrote {path} ({written['objects']} objects, {written['relations']} relation rows{note})"
              + (f" + {args.qgis_project}" if args.qgis_project else ""))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
