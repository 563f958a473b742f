"""``sgg synth``: write a synthetic STAR-vocabulary dataset (GeoTIFF scenes, native JSON + DOTA labels, split)."""

from __future__ import annotations

from sgg.datasets.synthetic.layouts import LAYOUTS


def build_parser():
    from sgg.cli_support import ArgumentParser, float_range, int_range

    p = ArgumentParser(
        prog="sgg synth",
        description="Generate synthetic scenes: DIR/scenes/<id>.tif, DIR/annotations/<id>.json, DIR/dota/<id>.txt, "
        "DIR/split.json. Deterministic for a seed.",
        quiet_help="no warnings, progress or summary",
    )
    p.add_argument("--out", required=True, help="output directory (new, or empty unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out directory")
    p.add_argument("--scenes", type=int_range(1), default=8, help="number of scenes")
    p.add_argument("--size", type=int_range(64), default=2048, help="scene width and height in pixels")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--gsd", type=float_range(0, lo_open=True), default=0.5,
                   help="ground sampling distance in metres per pixel")
    p.add_argument("--layout", action="append", choices=LAYOUTS, default=None,
                   help="scene layout (repeatable; default: mostly 'mixed' plus some single-kind scenes)")
    p.add_argument("--appearance", choices=("basic", "detailed"), default="basic",
                   help="object looks: 'detailed' draws cars with windows and shaded flanks, aircraft with "
                   "engines, grey wings and a white fuselage, and random shadow depth")
    p.add_argument("--site-angles", choices=("quarter", "any"), default="quarter",
                   help="'any' tilts car parks, airports and harbours by up to 45 degrees off the image axes "
                   "(default: laid out along them, turned by quarter turns)")
    p.add_argument("--split", type=float_range(0, 1), nargs=3, default=(0.7, 0.15, 0.15),
                   metavar=("TRAIN", "VAL", "TEST"), help="train/val/test fractions, summing to 1")
    p.add_argument("--workers", type=int_range(1), default=1, help="parallel processes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sgg.cli_support import UsageError, output_dir

    if abs(sum(args.split) - 1.0) > 1e-6:
        raise UsageError(f"--split fractions must sum to 1, got {' + '.join(f'{v:g}' for v in args.split)} "
                         f"= {sum(args.split):g}")
    output_dir(args.out, "--out", empty=True, overwrite=args.overwrite)
    from sgg.datasets.synthetic import generate_dataset

    split = generate_dataset(args.out, scenes=args.scenes, size=args.size, seed=args.seed, gsd=args.gsd, layouts=args.layout,
                             split=tuple(args.split), workers=args.workers, appearance=args.appearance,
                             site_angles=args.site_angles,
                             progress=not (args.no_progress or args.quiet))
    if not args.quiet:
        print(f"wrote {sum(len(v) for v in split.values())} scenes to {args.out} "
              f"(train {len(split['train'])}, val {len(split['val'])}, test {len(split['test'])})")
    return 0
