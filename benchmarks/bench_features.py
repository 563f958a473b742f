"""Cost of ``detect_scene(with_features=True)``: peak RSS and wall time with and without per-object
features, on one synthetic 4,096² scene with the shipped weights. Each case runs in its own child process
(its ``ru_maxrss`` is its own); the figure is the ratio features / plain (goal for RSS: ≤ 1.10).

    python benchmarks/bench_features.py [--size 4096] [--weights weights/hodnet_effl0_synth.pt] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time, torch
torch.set_num_threads(int(sys.argv[4]))
from sgg.detectors import load_detector, detect_scene
model = load_detector(sys.argv[1])
t0 = time.perf_counter()
sg = detect_scene(model, sys.argv[2], with_features=sys.argv[3] == "1", progress=False)
wall = time.perf_counter() - t0
f = sg.detections.features
print(json.dumps({"objects": len(sg.detections), "wall_s": wall, "forward_s": sg.metadata["timing"]["forward_s"],
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "feature_mb": 0 if f is None else f.numel() * f.element_size() / 2**20}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--weights", default="weights/hodnet_effl0_synth.pt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    from sgg.datasets.synthetic import generate_scene

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scene.tif"
        generate_scene(args.seed, args.size, out_path=path)
        runs = {}
        for name, flag in (("plain", "0"), ("features", "1")):
            out = subprocess.run([sys.executable, "-c", CHILD, args.weights, str(path), flag, str(args.threads)],
                                 check=True, capture_output=True, text=True).stdout
            runs[name] = json.loads(out.strip().splitlines()[-1])
            print(f"{name:9s} {json.dumps(runs[name])}")
    p, f = runs["plain"], runs["features"]
    print(f"peak RSS features/plain: {f['rss_mb'] / p['rss_mb']:.3f} ({f['rss_mb']:.0f} vs {p['rss_mb']:.0f} MB; "
          f"features {f['feature_mb']:.1f} MB for {f['objects']} objects)")
    print(f"wall time features/plain: {f['wall_s'] / p['wall_s']:.3f}; forward time: {f['forward_s'] / p['forward_s']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
