"""Benchmark pair proposal: sgg's sub-quadratic PairProposer against a dense N² implementation (STAR toolkit).

Run:  python benchmarks/bench_pairs.py [--sizes 5000 10000 20000] [--dense-sizes 1000 2000] [--threads 2]
      [--single 20000]

Layout (seeded, STAR-like density ~1 object per 1,000 px²): car parks (grids of cars), marinas (boats
in rows along docks), lines of lattice towers, and scattered objects of other classes and sizes.
Each measurement runs in its own child process; peak RSS is reset just before the timed run (Linux
``/proc/self/clear_refs``), so "Δ" is the run's own growth above the resident imports and inputs:
  ours  — PairProposer.default(): candidates (sgg.ops.spatial_pairs + class-pair prior), STAR's 103-d
          features, STAR's released PPG score, top-10,000 — timed per step;
  dense — as the STAR toolkit: all N(N−1) ordered pairs, their features in one tensor, PPG score, top-10,000.
Goal (issue #13): ours ≤ 3 s at N = 20,000 on 2 cores; peak RSS growing linearly with N.
Times: wall clock with torch (and scipy's k-d tree) on ``--threads`` threads, and CPU seconds; ``--single``
sizes are run once more on one thread (CPU s single-threaded). The machine may be shared, so the last lines
divide by a reference measured in the same run: the dense implementation at the largest N it ran.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

import torch

STAR_CLASSES = {"car": 16, "car_parking": 18, "boat": 1, "dock": 7, "lattice_tower": 26}


def layout(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(n,5) boxes and STAR labels: 60 % cars in parks, 20 % boats at docks, 5 % towers, 15 % scattered."""
    g = torch.Generator().manual_seed(seed)
    side = math.sqrt(n * 1000.0)
    boxes, labels = [], []

    def rnd(*shape):
        return torch.rand(*shape, generator=g)

    # car parks: 10 x 10 grids of cars (4.5 x 2 px at 0.5 m... here 9 x 4 px), each in a park box
    n_cars = int(0.6 * n)
    lots = max(1, n_cars // 100)
    for _ in range(lots):
        cx, cy = rnd(2) * side
        gx, gy = torch.meshgrid(torch.arange(10.0), torch.arange(10.0), indexing="ij")
        c = torch.stack([cx + gx.reshape(-1) * 6 - 27, cy + gy.reshape(-1) * 12 - 54], 1)
        boxes.append(torch.cat([c, torch.tensor([[9.0, 4.0]]).expand(100, 2), torch.full((100, 1), math.pi / 2)], 1))
        labels.append(torch.full((100,), STAR_CLASSES["car"]))
        boxes.append(torch.tensor([[float(cx), float(cy), 70.0, 130.0, 0.0]]))
        labels.append(torch.tensor([STAR_CLASSES["car_parking"]]))
    # marinas: docks 200 px long with 20 boats on each side
    for _ in range(max(1, int(0.2 * n) // 40)):
        cx, cy = rnd(2) * side
        a = float((rnd(1) - 0.5) * math.pi)
        u = torch.tensor([math.cos(a), math.sin(a)])
        v = torch.tensor([-u[1], u[0]])
        t = torch.arange(20.0) * 10 - 95
        for sgn in (-1, 1):
            c = torch.tensor([cx, cy]) + t[:, None] * u + sgn * 12 * v
            boxes.append(torch.cat([c, torch.tensor([[14.0, 5.0]]).expand(20, 2), torch.full((20, 1), a + math.pi / 2)], 1))
            labels.append(torch.full((20,), STAR_CLASSES["boat"]))
        boxes.append(torch.tensor([[float(cx), float(cy), 200.0, 8.0, a]]))
        labels.append(torch.tensor([STAR_CLASSES["dock"]]))
    # power lines: 10 towers 300 px apart
    for _ in range(max(1, int(0.05 * n) // 10)):
        p0, a = rnd(2) * side, float(rnd(1) * math.pi)
        c = p0 + torch.arange(10.0)[:, None] * 300 * torch.tensor([math.cos(a), math.sin(a)])
        boxes.append(torch.cat([c, torch.full((10, 2), 12.0), torch.zeros(10, 1)], 1))
        labels.append(torch.full((10,), STAR_CLASSES["lattice_tower"]))
    b, lab = torch.cat(boxes), torch.cat(labels)
    rest = n - len(b)
    if rest > 0:  # scattered objects of any class, 6..120 px
        wh = 6 + rnd(rest, 2) * 114
        b = torch.cat([b, torch.cat([rnd(rest, 2) * side, wh, (rnd(rest, 1) - 0.5) * math.pi], 1)])
        lab = torch.cat([lab, torch.randint(0, 48, (rest,), generator=g)])
    return b[:n].clamp_min(0) + torch.tensor([0, 0, 0, 0, 0.0]), lab[:n]


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def start_rss() -> float:
    """Reset the process's peak RSS (Linux: ``5`` > /proc/self/clear_refs) and return the current RSS, so the
    peak read after a run is that run's, not the imports'; elsewhere the lifetime peak (``ru_maxrss``)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _status_mb("VmRSS") or rss_mb()
    except OSError:
        return rss_mb()


def rss_mb() -> float:
    """Peak RSS (MB) since :func:`start_rss` (VmHWM), or of the process's lifetime."""
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(n: int) -> dict:
    from sgg.pairs import PairProposer, select_pairs
    from sgg.structures import Detections

    boxes, labels = layout(n)
    det = Detections(boxes, labels)
    prop = PairProposer.default()
    import scipy.spatial  # noqa: F401 - imported before the clock starts, as a long-running process has it

    base = start_rss()
    c0, t0 = time.process_time(), time.perf_counter()
    cand = prop.candidates(det)
    c1, t1 = time.process_time(), time.perf_counter()
    scores = prop.score(det, cand)
    c2, t2 = time.process_time(), time.perf_counter()
    kept = select_pairs(cand, scores, 10_000, lower_is_better=True)
    t3, c3 = time.perf_counter(), time.process_time()
    return {"n": n, "candidates": len(cand), "kept": len(kept), "t_candidates": t1 - t0, "t_features_score": t2 - t1,
            "t_select": t3 - t2, "t_total": t3 - t0, "cpu_candidates": c1 - c0, "cpu_features_score": c2 - c1,
            "cpu_total": c3 - c0, "rss_before_mb": base, "rss_peak_mb": rss_mb(), "top": kept.pairs[:2000].tolist()}


def run_dense(n: int) -> dict:
    from sgg.pairs import PPG, star_pair_features

    boxes, labels = layout(n)
    ppg = PPG.from_star()
    base = start_rss()
    c0, t0 = time.process_time(), time.perf_counter()
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    pairs = torch.stack([i.reshape(-1), j.reshape(-1)], 1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    feats = star_pair_features(boxes, labels, pairs).float()  # all N(N-1) rows at once, as upstream
    scores = ppg.score(feats, chunk_size=len(feats) or 1)
    top = torch.topk(scores, min(10_000, len(scores)), largest=False).indices
    t1, c1 = time.perf_counter(), time.process_time()
    return {"n": n, "pairs": len(pairs), "t_total": t1 - t0, "cpu_total": c1 - c0, "rss_before_mb": base,
            "rss_peak_mb": rss_mb(),
            "top": pairs[top[:2000]].tolist()}


def child(kind: str, n: int, threads: int, wait_policy: str = "PASSIVE") -> dict:
    cmd = [sys.executable, __file__, "--child", kind, str(n), "--threads", str(threads)]
    env = dict(os.environ)
    if wait_policy != "keep":
        env["OMP_WAIT_POLICY"] = wait_policy
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[5000, 10000, 20000])
    ap.add_argument("--dense-sizes", type=int, nargs="*", default=[1000, 2000])
    ap.add_argument("--dense-max-gb", type=float, default=3.0,
                    help="skip dense runs whose estimated memory (2.3 kB per pair, measured) exceeds this")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--single", type=int, nargs="*", default=[20000], help="sizes also run on one thread")
    ap.add_argument("--omp-wait-policy", default="PASSIVE",
                    help="OMP_WAIT_POLICY of the measured processes ('keep': inherit). On a shared, oversubscribed "
                         "machine OpenMP threads spinning at each barrier take the CPU their partner needs "
                         "(measured: 2-thread runs 3-5x slower than 1 thread at load 9 on 2 CPUs)")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        kind, n = args.child[0], int(args.child[1])
        print(json.dumps(run_ours(n) if kind == "ours" else run_dense(n)))
        return
    policy = os.environ.get("OMP_WAIT_POLICY", "default") if args.omp_wait_policy == "keep" else args.omp_wait_policy
    print(f"torch {torch.__version__}, {args.threads} threads, OMP_WAIT_POLICY {policy}; each row is its own process; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print("| N | candidates | candidates s (CPU) | features+score s (CPU) | select s | total s (CPU s) | peak RSS MB (Δ) |")
    print("|---|---|---|---|---|---|---|")
    ours = {}
    for n in sorted(set(args.sizes) | set(args.dense_sizes)):
        r = ours[n] = child("ours", n, args.threads, args.omp_wait_policy)
        print(f"| {n} | {r['candidates']} | {r['t_candidates']:.2f} ({r['cpu_candidates']:.2f}) | "
              f"{r['t_features_score']:.2f} ({r['cpu_features_score']:.2f}) | {r['t_select']:.3f} | "
              f"{r['t_total']:.2f} ({r['cpu_total']:.2f}) | {r['rss_peak_mb']:.0f} (+{r['rss_peak_mb'] - r['rss_before_mb']:.0f}) |")
    single = {}
    for n in args.single:
        r = single[n] = child("ours", n, 1, args.omp_wait_policy)
        print(f"N = {n} on 1 thread: {r['t_total']:.2f} s wall, {r['cpu_total']:.2f} CPU s (candidates "
              f"{r['cpu_candidates']:.2f}, features+score {r['cpu_features_score']:.2f})")
    print("\nDense N² reference (all ordered pairs featurised at once, as the STAR toolkit):")
    print("| N | pairs | dense s (CPU s) | dense peak RSS MB (Δ) | sgg s (CPU s) | time ratio (CPU) | RSS Δ ratio | top-2000 overlap |")
    print("|---|---|---|---|---|---|---|---|")
    ref = None
    for n in args.dense_sizes:
        need = n * (n - 1) * 2300 / 1e9
        if need > args.dense_max_gb:
            print(f"| {n} | {n * (n - 1)} | skipped: needs ~{need:.1f} GB (> --dense-max-gb {args.dense_max_gb:g}) | | | | | |")
            continue
        try:
            d = child("dense", n, args.threads, args.omp_wait_policy)
        except subprocess.CalledProcessError as exc:
            print(f"| {n} | — | failed ({exc.returncode}) | | | | | |")
            continue
        ref = d
        o = ours[n]
        dd, do = d["rss_peak_mb"] - d["rss_before_mb"], max(o["rss_peak_mb"] - o["rss_before_mb"], 1.0)
        overlap = len({tuple(p) for p in d["top"]} & {tuple(p) for p in o["top"]}) / max(len(d["top"]), 1)
        print(f"| {n} | {d['pairs']} | {d['t_total']:.2f} ({d['cpu_total']:.2f}) | {d['rss_peak_mb']:.0f} (+{dd:.0f}) | "
              f"{o['t_total']:.2f} ({o['cpu_total']:.2f}) | {d['t_total'] / o['t_total']:.1f}x "
              f"({d['cpu_total'] / o['cpu_total']:.1f}x) | {dd / do:.1f}x | {overlap:.3f} |")
    if ref is not None:
        big = ours[max(ours)]
        print(f"\nsgg at N = {big['n']} against the dense reference at N = {ref['n']} ({ref['pairs']} pairs), same run: "
              f"wall {big['t_total'] / ref['t_total']:.2f}x, CPU {big['cpu_total'] / ref['cpu_total']:.2f}x"
              + "".join(f"; 1 thread at N = {n}: CPU {r['cpu_total'] / ref['cpu_total']:.2f}x" for n, r in single.items()))


if __name__ == "__main__":
    main()
