"""Benchmark the end-to-end pipeline (`sgg infer`; issue 16's targets).

  1. peak RSS of the whole pipeline (read, detect, merge, pairs, relations, caption, GeoPackage + GraphML +
     preview) on a 20,000² GeoTIFF over a 4,000² one (goal ≤ 1.3, and < 2.5 GB). Detector: ``stub`` (default;
     16 boxes per tile, every tile of every level, so memory grows with the image as it would with a dense
     real scene and the run ends in minutes) or ``bundled`` (the shipped HOD-Net, guided zoom);
  2. share of wall time outside detector forward passes (reading, merging, pairs, relations, caption, exports)
     on a 4,096² synthetic scene with ~2,000 objects (default: the industrial layout, seed 1), shipped HOD-Net
     (goal ≤ 10 %);
  3. ``sgg --help`` cold start (goal ≤ 1 s), best of 5 fresh processes.

Every measurement runs in its own process; peak RSS is that process's VmHWM (ru_maxrss carries the parent's
peak across fork/exec). The 20,000²/4,000² files are bench_reader.py's, cached in the temp dir.

    python benchmarks/bench_infer.py [--skip rss,share,help] [--detector stub|bundled] [--size 4096]
                                     [--layout industrial --seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_reader import build_in_child, peak_rss_mb


def stub_detector():
    import torch

    from sgg.structures import Detections, Vocabulary

    class Stub(torch.nn.Module):
        """16 boxes per tile on a 4×4 grid, class and angle from the tile's mean brightness (deterministic)."""

        def __init__(self):
            super().__init__()
            self.vocabulary = Vocabulary.star()
            self.inference = {"tile_size": 1024, "overlap": 200}
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def forward(self, images):
            out = []
            for img in images:
                h, w = img.shape[-2:]
                g = torch.arange(4, dtype=torch.float32)
                cy, cx = torch.meshgrid((g + 0.5) * h / 4, (g + 0.5) * w / 4, indexing="ij")
                m = float(img.mean())
                n = 16
                boxes = torch.stack([cx.flatten(), cy.flatten(), torch.full((n,), 30.0), torch.full((n,), 12.0),
                                     torch.full((n,), m - 0.5)], 1)
                labels = (torch.arange(n) + int(m * 100)) % 20
                out.append(Detections(boxes, labels, torch.full((n,), 0.6)))
            return out

    return Stub()


def worker_pipeline(path: str, detector: str, formats: list[str]) -> dict:
    """Run the pipeline on ``path`` as ``sgg infer`` does; times and this process's peak RSS."""
    import torch

    from sgg.infer_cli import write_outputs
    from sgg.pipeline import Pipeline

    base = peak_rss_mb()
    stage_peaks: dict[str, float] = {}

    def reset_peak() -> None:  # Linux: writing 5 to clear_refs resets VmHWM to the current RSS
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            pass

    if detector == "stub":
        pipe = Pipeline({"detector": {"weights": None, "zoom": "full"}, "pairs": {"budget": 10000}},
                        detector=stub_detector())
    else:
        pipe = Pipeline({"detector": {"weights": "bundled", "zoom": "guided"}})
    pipe.check()
    torch.set_num_threads(2)
    stages_s: dict[str, float] = {}
    t0 = time.perf_counter()

    def stage(name: str, fn, *args):
        reset_peak()
        ts = time.perf_counter()
        out = fn(*args)
        stages_s[name] = round(time.perf_counter() - ts, 2)
        stage_peaks[name] = round(peak_rss_mb())
        return out

    sg = stage("detect+merge", pipe.detect, path)
    sg = stage("pairs", pipe.propose_pairs, sg)
    sg = stage("relations", pipe.predict_relations, sg)
    t1 = time.perf_counter()

    def caption_and_write():
        with tempfile.TemporaryDirectory() as out:
            write_outputs(sg, Path(out), "bench", formats, pipe.caption(sg), 100)

    stage("caption+write", caption_and_write)
    overall = max([base, *stage_peaks.values()])
    total = time.perf_counter() - t0
    det_t = sg.metadata.get("timing", {})
    return {"path": path, "objects": len(sg.detections), "pairs": len(sg.pairs), "total_s": total,
            "pipeline_s": t1 - t0, "forward_s": det_t.get("forward_s"), "detect_s": det_t.get("total_s"),
            "merge_s": det_t.get("merge_s"), "stages_s": stages_s, "tiles": sg.metadata.get("tiles"),
            "base_rss_mb": base, "peak_rss_mb": overall, "stage_peak_rss_mb": stage_peaks}


def child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench_rss(cache: Path, detector: str) -> None:
    big = build_in_child(cache / "bench_20000.tif", 20000)
    small = build_in_child(cache / "bench_4000.tif", 4000)
    r = {}
    for p in (small, big):
        t0 = time.perf_counter()
        r[p] = child("--worker", "pipeline", "--path", str(p), "--detector", detector)
        print(f"  {p.name}: {r[p]['objects']:,} objects, {r[p]['pairs']:,} pairs, {time.perf_counter() - t0:.0f} s, "
              f"peak RSS {r[p]['peak_rss_mb']:.0f} MB (base {r[p]['base_rss_mb']:.0f}; per stage "
              + ", ".join(f"{k} {v:.0f}" for k, v in r[p]["stage_peak_rss_mb"].items()) + ")", flush=True)
    ratio = r[big]["peak_rss_mb"] / r[small]["peak_rss_mb"]
    print(f"peak RSS 20,000² / 4,000² ({detector} detector): {ratio:.2f}  (goal ≤ 1.3; "
          f"{r[big]['peak_rss_mb'] / 1024:.2f} GB, goal < 2.5 GB)")


def bench_share(cache: Path, size: int, seed: int, layout: str) -> None:
    path = cache / f"synth_{layout}_{size}_{seed}.tif"
    counts = path.with_suffix(".objects.json")  # annotated objects and relations, written with the scene
    if not path.exists() or not counts.exists():
        code = ("import json, sys; from sgg.datasets.synthetic import generate_scene; "
                f"sg = generate_scene({seed}, size={size}, layout={layout!r}, out_path=sys.argv[1]); "
                "open(sys.argv[2], 'w').write(json.dumps({'objects': len(sg.detections), "
                "'relations': len(sg.pairs)}))")
        subprocess.run([sys.executable, "-c", code, str(path), str(counts)], check=True)
    truth = json.loads(counts.read_text())
    r = child("--worker", "pipeline", "--path", str(path), "--detector", "bundled")
    outside = r["total_s"] - r["forward_s"]
    print(f"  {size}² synthetic {layout} scene (seed {seed}): {truth['objects']:,} annotated objects; the pipeline "
          f"carried {r['objects']:,} detections (score ≥ 0.05), {r['pairs']:,} pairs; tiles {r['tiles']}")
    print(f"  total {r['total_s']:.1f} s = detector forward {r['forward_s']:.1f} s + everything else {outside:.1f} s "
          f"(stages {r['stages_s']}, merge {r['merge_s']:.1f} s)")
    print(f"share of wall time outside detector forward: {100 * outside / r['total_s']:.1f} %  (goal ≤ 10 %)")


def bench_help(repeat: int = 5) -> None:
    exe = Path(sys.executable).with_name("sgg")
    cmd = [str(exe), "--help"] if exe.exists() else [sys.executable, "-m", "sgg.cli", "--help"]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    print(f"`sgg --help` cold start: best {min(times):.2f} s, median {sorted(times)[len(times) // 2]:.2f} s "
          f"of {repeat}  (goal ≤ 1 s)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip", default="", help="comma-separated: rss, share, help")
    ap.add_argument("--detector", choices=("stub", "bundled"), default="stub", help="detector for the RSS case")
    ap.add_argument("--size", type=int, default=4096, help="scene side for the time-share case")
    # industrial seed 1: 1,381 annotated objects, ~4,300 detections at score >= 0.05 (the target's ~2,000 objects
    # lies between; no layout of the generator holds ~2,000 at 4,096² and 0.5 m). mixed seed 3: 11,895 objects.
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--layout", default="industrial", help="synthetic layout of the time-share scene")
    ap.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "sgg_bench"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ns = ap.parse_args(argv)
    if ns.worker == "pipeline":
        print(json.dumps(worker_pipeline(ns.path, ns.detector, ["gpkg", "graphml", "caption", "preview"]), default=str))
        return 0
    cache = Path(ns.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    skip = set(ns.skip.split(","))
    if "help" not in skip:
        bench_help()
    if "rss" not in skip:
        bench_rss(cache, ns.detector)
    if "share" not in skip:
        bench_share(cache, ns.size, ns.seed, ns.layout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
