"""Pair recall targets on held-out synthetic scenes: STAR's released PPG, our PPG, nearest neighbours, random.

    python scripts/ppg_targets.py /work/data/ppg_synth --ours weights/ppg_synth.pt [--split test] [--json out.json]

Ground-truth boxes (PredCls setting). Budgets: 1 %, 2 %, 5 % of each scene's N(N−1) ordered pairs, STAR's
fixed 10,000 and ``budget="auto"`` (R@auto: max(10,000, 32·N), ``sgg.pairs.auto_budget``). PPG methods rank the candidates of ``sgg.pairs.candidate_pairs`` (so recall at large budgets
is capped by the candidates' recall, printed as R@all); "nearest" ranks every object's k-th nearest
neighbour (by centre distance) before any (k+1)-th, with no class prior; "random" keeps uniformly random
ordered pairs (seeded). Recall is per scene, averaged over scenes.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from sgg.datasets.tiling import load_scenes, read_split
from sgg.evaluation.pairs import MISSED, first_hit_ranks, format_pair_table, mean_pair_recall
from sgg.pairs import PPG, PairPrior, PairProposer, auto_budget
from sgg.pairs.module import related_pairs

FRACTIONS = (0.01, 0.02, 0.05)
BUDGET = 10_000


def recall_row(ranks: torch.Tensor, n: int, kept: int, g: int) -> dict:
    row = {"gt_pairs": g, "objects": n, "ordered_pairs": n * (n - 1), "kept": kept}
    for f in FRACTIONS:
        row[f"R@{100 * f:g}%"] = float((ranks < int(f * n * (n - 1))).sum()) / max(g, 1)
    row[f"R@{BUDGET}"] = float((ranks < BUDGET).sum()) / max(g, 1)
    row["R@auto"] = float((ranks < auto_budget(n)).sum()) / max(g, 1)
    row["R@all"] = float((ranks < MISSED).sum()) / max(g, 1)
    return row


def nearest_ranking(boxes: torch.Tensor, max_fraction: float) -> torch.Tensor:
    """Ordered pairs, every object's 1st neighbour first, then 2nd, … (ties by distance), up to the budget."""
    from scipy.spatial import cKDTree

    n = boxes.shape[0]
    k = min(n - 1, math.ceil(max_fraction * (n - 1)) + 1)
    ctr = boxes[:, :2].double().numpy()
    d, idx = cKDTree(ctr).query(ctr, k=k + 1)
    d, idx = d[:, 1:], idx[:, 1:]  # drop self (distance 0; exact duplicates are rare here)
    order = np.lexsort((d.T.reshape(-1), np.repeat(np.arange(k), n)))
    subj = np.tile(np.arange(n), k)[order]
    obj = idx.T.reshape(-1)[order]
    keep = subj != obj
    return torch.from_numpy(np.stack([subj[keep], obj[keep]], 1)).long()


def random_ranks(n: int, gt_pairs: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Rank of each ground-truth pair in a uniformly random order of all N(N−1) ordered pairs."""
    m = n * (n - 1)
    return torch.from_numpy(rng.choice(m, size=len(gt_pairs), replace=False)).long()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir")
    ap.add_argument("--ours", help="our PPG (proposer or PPG file)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--json")
    args = ap.parse_args()
    scenes = load_scenes(args.data_dir, read_split(args.data_dir)[args.split])
    methods: dict[str, PairProposer | None] = {
        "STAR PPG (released OBB weights)": PairProposer(PPG.from_star(), PairPrior.star(), budget=None),
    }
    if args.ours:
        methods["our PPG (synthetic, USAD)"] = PairProposer.load(args.ours, budget=None)
    methods["candidates, nearest first (no PPG)"] = PairProposer(None, PairPrior.star(), budget=None)
    methods["nearest neighbours only"] = None
    methods["random"] = None
    rows: dict[str, list[dict]] = {m: [] for m in methods}
    times: dict[str, float] = {m: 0.0 for m in methods}
    rng = np.random.default_rng(0)
    for sc in scenes:
        det, gt = sc.graph.detections, related_pairs(sc.graph)
        n = len(det)
        for name, prop in methods.items():
            t = time.perf_counter()
            if prop is not None:
                ranked = prop(det, vocabulary=sc.graph.vocabulary).pairs
                ranks = first_hit_ranks(ranked, gt, n)
            elif name.startswith("nearest"):
                ranked = nearest_ranking(det.boxes.tensor, max(FRACTIONS))
                ranks = first_hit_ranks(ranked, gt, n)
            else:
                ranks, ranked = random_ranks(n, gt, rng), torch.zeros(n * (n - 1), 0)
            times[name] += time.perf_counter() - t
            rows[name].append(recall_row(ranks, n, len(ranked), len(gt)))
        print(f"{sc.scene_id}: {n} objects, {len(gt)} related pairs", flush=True)
    mean = {m: mean_pair_recall(r) for m, r in rows.items()}
    print(format_pair_table(mean))
    for m in methods:
        print(f"{m}: {times[m]:.1f} s over {len(scenes)} scenes; mean kept/candidates {mean[m]['kept'] / len(scenes):.0f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"mean": mean, "scenes": [s.scene_id for s in scenes], "seconds": times}, fh, indent=1)


if __name__ == "__main__":
    main()
