"""Cost of extra RoI box-head passes (``box_passes``, iterative box regression): forward time of the shipped
weights on the same synthetic 512² tiles with 1, 2 and 3 passes, interleaved in one process; the figure is
the median time of N passes / 1 pass (the backbone, FPN and RPN run once whatever the passes).

    python benchmarks/bench_box_passes.py [--weights weights/hodnet_effl0_mixed_diag.pt] [--tiles 4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default="weights/hodnet_effl0_mixed_diag.pt")
    ap.add_argument("--tiles", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    import torch

    from sgg.datasets.synthetic import generate_scene
    from sgg.detectors import load_detector

    torch.set_num_threads(args.threads)
    model = load_detector(args.weights).eval()
    _, image = generate_scene(args.seed, 1024, return_image=True)
    img = torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 255  # HxWx3 uint8 → 3xHxW in [0, 1]
    tiles = [img[:, r:r + 512, c:c + 512] for r in (0, 512) for c in (0, 512)][: args.tiles]
    times: dict[int, list[float]] = {1: [], 2: [], 3: []}
    counts = {}
    with torch.no_grad():
        model(tiles[:1])  # warm-up
        for _ in range(args.repeats):
            for k, ts in times.items():
                model.roi_head.box_passes = k
                t0 = time.perf_counter()
                out = model(tiles)
                ts.append(time.perf_counter() - t0)
                counts[k] = sum(len(d) for d in out)
    base = statistics.median(times[1])
    for k, ts in times.items():
        print(f"{k} pass(es): median {statistics.median(ts):.2f} s for {len(tiles)} tiles, {counts[k]} detections; "
              f"time / 1 pass: {statistics.median(ts) / base:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
