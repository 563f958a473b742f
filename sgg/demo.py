"""``sgg demo``: the whole pipeline offline on a bundled sample, in about a minute on 2 CPU cores.

The sample is a synthetic georeferenced harbour scene (UTM 33N, 0.5 m pixels) drawn on the fly by
``sgg.datasets.synthetic.generate_scene`` — the same generator the shipped weights were trained on, with a
seed they never saw. No real VHR image ships: the real images the project can read (DOTA/Google Earth,
Airbus Pléiades CC BY-NC-SA) do not allow redistribution inside an Apache-2.0 package. Weights: the
shipped HOD-Net detector, sgg's PPG and RPCM relation head trained on synthetic scenes (``weights/``;
``configs/pipeline/demo.yaml``'s settings, built in here so the demo needs no file from the source tree).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEMO_CONFIG = {
    "detector": {"weights": "bundled", "zoom": "guided"},
    # the learned stages trained on synthetic scenes like the sample: our PPG and RPCM (PredCls head with
    # triangle messages, post-hoc logit adjustment and per-graph count normalisation), all shipped in
    # weights/ (sgg/data/weights in an installed package)
    "pairs": {"proposer": "bundled:ppg_synth.pt", "budget": 2000},
    "relations": {"head": "bundled:rpcm_predcls_tri_synth.pt"},
    "caption": True,
    "output": {"top_k": 50},
}
SAMPLE = {"seed": 20261130, "size": 768, "layout": "harbour"}


def build_parser() -> argparse.ArgumentParser:
    from sgg.cli_support import ArgumentParser

    p = ArgumentParser(prog="sgg demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="sgg-demo", help="output directory")
    p.add_argument("--size", type=int, default=SAMPLE["size"], help="sample scene side in pixels")
    p.add_argument("--relation-head", default=None, help="override the relation head ('none' to skip)")
    return p


def make_sample(out: Path, size: int = SAMPLE["size"]) -> tuple[Path, Path]:
    """Write the sample GeoTIFF and its ground-truth annotation under ``out/sample``; reuse them if present."""
    from sgg.datasets.native import write_scene_json
    from sgg.datasets.synthetic import generate_scene

    tif = out / "sample" / f"harbour_{size}.tif"
    ann = tif.with_suffix(".annotation.json")
    if not (tif.is_file() and ann.is_file()):
        tif.parent.mkdir(parents=True, exist_ok=True)
        gt = generate_scene(SAMPLE["seed"], size=size, layout=SAMPLE["layout"], out_path=tif)
        write_scene_json(gt, ann)
    return tif, ann


def main(argv: list[str] | None = None) -> int:
    import time

    from sgg.errors import SggInputError
    from sgg.infer_cli import check_writable, run_scenes
    from sgg.pipeline import Pipeline, resolve_config

    args = build_parser().parse_args(argv)
    out = Path(args.out)
    t0 = time.perf_counter()
    try:
        check_writable(out)
        cfg = resolve_config(DEMO_CONFIG)
        if args.relation_head is not None:
            cfg["relations"] = None if args.relation_head.lower() == "none" else {"head": args.relation_head,
                                                                                 "weights": None}
        pipe = Pipeline(cfg).check()
        out.mkdir(parents=True, exist_ok=True)
        if not args.quiet:
            print(f"sgg demo: drawing a {args.size}² synthetic harbour scene (seed {SAMPLE['seed']}) …")
        tif, ann = make_sample(out, args.size)
    except SggInputError as exc:
        if args.debug:
            raise
        print(f"sgg demo: error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"sgg demo: running {pipe!r} (detector {pipe.models.get('detector')}) …")
    status = run_scenes(pipe, [str(tif)], out, ["gpkg", "graphml", "caption", "preview", "qgis"], quiet=args.quiet,
                        debug=args.debug)
    if status == 0 and not args.quiet:
        stem = tif.stem
        print(f"\nsgg demo: done in {time.perf_counter() - t0:.0f} s. Look at:\n"
              f"  {out / (stem + '.preview.png')}   the scene with its objects and top relations\n"
              f"  {out / (stem + '.qgz')}           open in QGIS: the scene under its styled layers\n"
              f"  {out / (stem + '.gpkg')}          the layers objects, relations and the run table (GDAL/OGR)\n"
              f"  {out / (stem + '.graphml')}       the graph for networkx / Gephi\n"
              f"  {out / (stem + '.caption.txt')}   the scene described in words\n"
              f"  {ann}   the ground truth it was drawn from\n"
              f"Next: sgg infer YOUR.tif --out results/   (sgg infer --help)")
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
