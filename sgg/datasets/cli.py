"""``sgg synth``: write a synthetic STAR-vocabulary dataset (GeoTIFF scenes, native JSON + DOTA labels, split)."""

from __future__ import annotations

import argparse

from sgg.datasets.synthetic.layouts import LAYOUTS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sgg synth",
        description="Generate synthetic scenes: DIR/scenes/<id>.tif, DIR/annotations/<id>.json, DIR/dota/<id>.txt, "
        "DIR/split.json. Deterministic for a seed.",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--scenes", type=int, default=8, help="number of scenes (default 8)")
    p.add_argument("--size", type=int, default=2048, help="scene width and height in pixels (default 2048)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--gsd", type=float, default=0.5, help="ground sampling distance in metres per pixel (default 0.5)")
    p.add_argument("--layout", action="append", choices=LAYOUTS, default=None,
                   help="scene layout (repeatable; default: mostly 'mixed' plus some single-kind scenes)")
    p.add_argument("--split", type=float, nargs=3, default=(0.7, 0.15, 0.15), metavar=("TRAIN", "VAL", "TEST"),
                   help="train/val/test fractions (default 0.7 0.15 0.15)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sgg.datasets.synthetic import generate_dataset
    from sgg.errors import SggInputError

    if args.size < 64:
        raise SggInputError(f"must be at least 64 pixels, got {args.size}", where="--size")
    if args.gsd <= 0:
        raise SggInputError(f"must be > 0, got {args.gsd}", where="--gsd")
    split = generate_dataset(args.out, scenes=args.scenes, size=args.size, seed=args.seed, gsd=args.gsd, layouts=args.layout,
                             split=tuple(args.split), workers=args.workers, progress=not args.no_progress)
    print(f"wrote {sum(len(v) for v in split.values())} scenes to {args.out} "
          f"(train {len(split['train'])}, val {len(split['val'])}, test {len(split['test'])})")
    return 0
