"""Holistic multi-level inference vs single-level sliding window, same weights, on large-object scenes.

Synthetic held-out scenes (``sgg.datasets.synthetic.generate_scene``, layouts with runways, docks,
breakwaters and dams; seeds far from the training ones) are detected three ways with the same HOD-Net
weights and tile size:

* ``single``  – level 0 only, every tile (the sliding window of SAHI / mmrotate / DOTA devkit);
* ``guided``  – the pyramid, finer levels only where coarser ones found something (STAR's HOD-Net);
* ``full``    – the pyramid, every tile of every level.

Printed: AP@0.5 (area) on the large classes (runway, dock, breakwater, dam, and any class whose median
ground-truth long side exceeds half a tile), their mean, the mAP over all classes, and tiles/time per run.

    /work/venv/bin/python benchmarks/bench_holistic.py --weights weights/hodnet_effl0_synth.pt \
        [--scenes 3 --size 2048 --tile-size 512 --overlap 100 --threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NAMED_LARGE = ("runway", "dock", "breakwater", "dam")
LAYOUTS = ("airport", "harbour", "dam")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default="weights/hodnet_effl0_synth.pt")
    ap.add_argument("--scenes", type=int, default=3, help="scenes (cycling through airport, harbour, dam layouts)")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--gsd", type=float, default=0.5)
    ap.add_argument("--tile-size", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=100)
    ap.add_argument("--seed", type=int, default=90_000, help="first scene seed (keep away from training seeds)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", default="single,guided,full",
                    help="comma-separated single, guided, full; a '+tta' suffix (full+tta) runs that mode through "
                         "sgg.detectors.tta.TTADetector and is compared with the plain mode")
    ap.add_argument("--tta", default="d2", help="test-time views for '+tta' modes (flips, d2, all, d2r, or a list)")
    ap.add_argument("--ensemble", nargs="+", default=[], metavar="WEIGHTS",
                    help="more weights voted with --weights on each tile (sgg.detectors.tta.EnsembleDetector)")
    ap.add_argument("--join-linear", default="on", choices=("on", "off"),
                    help="join collinear pieces of linear classes (detect_scene(join_linear=), default on)")
    ap.add_argument("--workdir")
    a = ap.parse_args()

    import torch

    from sgg.datasets.synthetic import generate_scene
    from sgg.detectors.checkpoint import load_detector
    from sgg.detectors.inference import detect_scene
    from sgg.detectors.tta import EnsembleDetector, TTADetector
    from sgg.evaluation.detection import rotated_map

    torch.set_num_threads(a.threads)
    weights = Path(a.weights)
    if not weights.is_file():
        print(f"weights not found: {weights} (train them with `sgg train detector --config configs/detector/demo.yaml`)")
        return 2
    model = load_detector(weights)
    if a.ensemble:
        model = EnsembleDetector([model] + [load_detector(w) for w in a.ensemble]).eval()
    vocab = model.vocabulary
    tmp = tempfile.TemporaryDirectory() if a.workdir is None else None
    work = Path(a.workdir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)

    gts, paths = [], []
    for i in range(a.scenes):
        layout = LAYOUTS[i % len(LAYOUTS)]
        path = work / f"holistic_{layout}_{a.seed + i}.tif"
        gt = generate_scene(a.seed + i, size=a.size, gsd=a.gsd, layout=layout, out_path=path, vocabulary=vocab)
        gts.append(gt)
        paths.append(path)

    # large classes: named ones present, plus any class whose median long side exceeds half a tile
    labels = torch.cat([g.detections.labels for g in gts])
    long_side = torch.cat([torch.maximum(g.detections.boxes.widths, g.detections.boxes.heights) for g in gts])
    large = []
    for c in torch.unique(labels).tolist():
        name = vocab.objects[c]
        if name in NAMED_LARGE or float(long_side[labels == c].median()) > a.tile_size / 2:
            large.append(name)
    counts = {n: int((labels == vocab.object_index(n)).sum()) for n in large}
    print(f"{a.scenes} scenes of {a.size}² px at {a.gsd} m ({', '.join(LAYOUTS[: a.scenes])}); tile {a.tile_size}, "
          f"overlap {a.overlap}; weights {weights}" + (f" + {', '.join(a.ensemble)} (ensemble)" if a.ensemble else "")
          + f"; join_linear {a.join_linear}")
    print("large classes (ground-truth count): " + ", ".join(f"{n} ({counts[n]})" for n in large))

    settings = {"single": dict(levels=[0], zoom="full"), "guided": dict(levels="auto", zoom="guided"),
                "full": dict(levels="auto", zoom="full")}
    results = {}
    for mode in a.modes.split(","):
        preds, tiles, t0 = [], 0, time.perf_counter()
        base_mode, tta = mode.removesuffix("+tta"), mode.endswith("+tta")
        det = TTADetector(model, a.tta).eval() if tta else model
        for path in paths:
            sg = detect_scene(det, path, tile_size=a.tile_size, overlap=a.overlap, progress=False,
                              join_linear=a.join_linear == "on",
                              **settings[base_mode])
            preds.append(sg.detections)
            tiles += sum(v["run"] for v in sg.metadata["tiles"].values())
        el = time.perf_counter() - t0
        r = rotated_map(preds, gts, iou_threshold=0.5)
        ap_large = {n: r["AP"].get(n, 0.0) for n in large}
        results[mode] = (r, ap_large, tiles, el)
        print(f"\n[{mode}] {tiles} tiles, {el:.1f} s; mAP@0.5 all classes {r['mAP']:.4f}; "
              f"mean AP on large classes {np.mean(list(ap_large.values())) if ap_large else float('nan'):.4f}")
        for n in large:
            print(f"  {n:<24} AP {ap_large[n]:.4f}  recall {r['recall'].get(n, 0.0):.4f}")
    if "single" in results:
        base = np.mean(list(results["single"][1].values())) if large else float("nan")
        for mode in results:
            if mode != "single":
                m = np.mean(list(results[mode][1].values())) if large else float("nan")
                print(f"large-class mean AP: {mode} {m:.4f} vs single-level {base:.4f} ({m - base:+.4f})")
    for mode, (r1, l1, _, t1) in results.items():
        plain = mode.removesuffix("+tta")
        if mode.endswith("+tta") and plain in results:
            r0, l0, _, t0 = results[plain]
            m1 = np.mean(list(l1.values())) if large else float("nan")
            m0 = np.mean(list(l0.values())) if large else float("nan")
            print(f"tta {a.tta} vs {plain}: mAP@0.5 {r1['mAP']:.4f} vs {r0['mAP']:.4f}, large-class {m1:.4f} vs "
                  f"{m0:.4f}, time {t1 / t0:.2f} x the plain run's")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
