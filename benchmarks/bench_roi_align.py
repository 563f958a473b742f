"""Rotated RoIAlign speed: ``sgg.ops.rotated_roi_align`` (``grid_sample`` per image) against the reference of
earlier releases, the same bilinear samples gathered by index from a (B·H·W, C) view of the features, run in
the same process on the same boxes. The RoI head pools every proposal of every tile (1,500 per 512-px tile for
the shipped weights), so this op is most of a tile's detection time on a CPU.

    python benchmarks/bench_roi_align.py [--rois 1500] [--channels 128] [--size 128] [--threads 2] [--backward]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def gathered(features, boxes, batch_idx, out=7, scale=0.25, ratio=2):
    """The reference: four index gathers of (K·S, C) rows per sample (the implementation before grid_sample)."""
    import torch

    _, ch, height, width = features.shape
    cx, cy = boxes[:, 0] * scale - 0.5, boxes[:, 1] * scale - 0.5
    w, h, a = boxes[:, 2] * scale, boxes[:, 3] * scale, boxes[:, 4]
    g = out * ratio
    f = (torch.arange(g, dtype=features.dtype) + 0.5) / g - 0.5
    u, v = (w[:, None] * f)[:, None, :], (h[:, None] * f)[:, :, None]
    c, s = torch.cos(a)[:, None, None], torch.sin(a)[:, None, None]
    x = (cx[:, None, None] + u * c - v * s).reshape(len(boxes), -1)
    y = (cy[:, None, None] + u * s + v * c).reshape(len(boxes), -1)
    valid = ((y >= -1) & (y <= height) & (x >= -1) & (x <= width)).to(features.dtype)
    x, y = x.clamp(0, width - 1), y.clamp(0, height - 1)
    x0, y0 = x.floor(), y.floor()
    lx, ly = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    x1, y1 = (x0 + 1).clamp(max=width - 1), (y0 + 1).clamp(max=height - 1)
    rows = features.permute(0, 2, 3, 1).reshape(-1, ch)
    base = (batch_idx * height * width)[:, None]
    val = sum(rows[base + yy * width + xx] * (wt * valid)[..., None]
              for yy, xx, wt in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x1, (1 - ly) * lx),
                                 (y1, x0, ly * (1 - lx)), (y1, x1, ly * lx)))
    return val.reshape(-1, out, ratio, out, ratio, ch).mean(dim=(2, 4)).permute(0, 3, 1, 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rois", type=int, default=1500)
    ap.add_argument("--channels", type=int, default=128)
    ap.add_argument("--size", type=int, default=128, help="feature map side (P2 of a 512-px tile)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backward", action="store_true", help="time forward + backward (training)")
    args = ap.parse_args()
    import torch

    from sgg.ops import rotated_roi_align

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    k, side = args.rois, args.size * 4
    feats = torch.randn(1, args.channels, args.size, args.size, requires_grad=args.backward)
    boxes = torch.stack([torch.rand(k) * side, torch.rand(k) * side, 8 + torch.rand(k) * 120, 8 + torch.rand(k) * 40,
                         (torch.rand(k) - 0.5) * 3.1], 1)
    bidx = torch.zeros(k, dtype=torch.long)
    ours = lambda: rotated_roi_align(feats, boxes, bidx, 7, 0.25, 2)
    ref = lambda: gathered(feats, boxes, bidx)
    err = float((ours() - ref()).abs().max().detach())
    times = {"reference (gathered)": [], "rotated_roi_align": []}
    for _ in range(args.repeats):
        for name, fn in (("reference (gathered)", ref), ("rotated_roi_align", ours)):
            t0 = time.perf_counter()
            y = fn()
            if args.backward:
                y.square().sum().backward()
            times[name].append(time.perf_counter() - t0)
    r, o = (statistics.median(times[n]) for n in times)
    what = "forward + backward" if args.backward else "forward"
    print(f"{k} RoIs, {args.channels} channels, {args.size}² map, {what}: reference {r:.3f} s, rotated_roi_align "
          f"{o:.3f} s; speed-up reference / ours: {r / o:.2f}× (largest difference {err:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
