"""``sgg export GRAPH --to gpkg|geojson|parquet|graphml|json [--out PATH] [--crs CRS] [--topology]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sgg.graph.formats import EXTENSION, FORMATS  # light: stdlib only at import time


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sgg export",
        description="Convert a scene graph (any file `sgg export` writes, a native scene JSON annotation or "
        "a DOTA label file) to a GIS or graph format. Files are written atomically.",
    )
    p.add_argument("graph", metavar="GRAPH", help="input scene graph file")
    p.add_argument("--to", dest="fmt", required=True, choices=FORMATS, help="output format")
    p.add_argument("--out", "-o", help="output path (default: GRAPH with the format's suffix)")
    p.add_argument("--crs", default=None,
                   help="'native' (raster CRS), 'EPSG:4326', ... (default: native; GeoJSON: EPSG:4326)")
    p.add_argument("--topology", action="store_true",
                   help="add footprint relations (overlaps, within, contains, touches, ...) as source=geometry")
    p.add_argument("--distance", type=float, default=0.0,
                   help="with --topology: also relate disjoint footprints closer than this many pixels")
    p.add_argument("--top-k", type=int, default=None, help="predictions: keep the K best triplets")
    p.add_argument("--per-pair", type=int, default=1, help="predictions: predicates kept per pair")
    p.add_argument("--min-score", type=float, default=None, help="predictions: drop triplets scoring below")
    p.add_argument("--full-scores", action="store_true",
                   help="predictions: store each pair's predicate score vector (exact round trip)")
    p.add_argument("--no-style", action="store_true", help="GeoPackage: do not store the QGIS layer style")
    return p


def default_out(src: Path, fmt: str) -> Path:
    out = src.with_suffix(EXTENSION[fmt])
    if out.resolve() == src.resolve():
        out = src.with_name(src.stem + ".graph" + EXTENSION[fmt])
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from sgg.graph.formats import export, read

    src = Path(args.graph)
    sg = read(src)
    out = Path(args.out) if args.out else default_out(src, args.fmt)
    path = export(sg, out, args.fmt, crs=args.crs, topology=args.topology, distance=args.distance,
                  top_k=args.top_k, per_pair=args.per_pair, min_score=args.min_score, full_scores=args.full_scores,
                  style=not args.no_style)
    print(f"wrote {path} ({sg.num_objects} objects, {len(sg.pairs)} relation rows)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
