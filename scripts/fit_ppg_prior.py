"""Fit a PairPrior (class-pair mask + per-class-pair search radius) on the training split of a scene directory.

    python scripts/fit_ppg_prior.py /work/data/ppg_synth sgg/data/ppg/synth_pair_radius.json --star-mask

``--star-mask``: keep STAR's real class-pair mask (its training counts) and learn only the radii here.
Prints, for the validation split, the share of related pairs that the candidates reach and their number.
"""

from __future__ import annotations

import argparse
import time

import torch

from sgg.datasets.tiling import load_scenes, read_split
from sgg.pairs import PairPrior, candidate_pairs
from sgg.pairs.module import related_pairs


def candidate_recall(prior, scenes, **kw):
    hit = tot = ncand = nall = 0
    for sc in scenes:
        det, rel = sc.graph.detections, related_pairs(sc.graph)
        cand = candidate_pairs(det, prior, vocabulary=sc.graph.vocabulary, **kw)
        n = len(det)
        key = cand.pairs[:, 0] * n + cand.pairs[:, 1]
        hit += int(torch.isin(rel[:, 0] * n + rel[:, 1], key).sum())
        tot, ncand, nall = tot + len(rel), ncand + len(cand), nall + n * (n - 1)
    return hit / max(tot, 1), ncand, nall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir")
    ap.add_argument("out")
    ap.add_argument("--quantile", type=float, default=0.98)
    ap.add_argument("--slack", type=float, default=1.25)
    ap.add_argument("--star-mask", action="store_true")
    args = ap.parse_args()
    split = read_split(args.data_dir)
    train = load_scenes(args.data_dir, split["train"])
    prior = PairPrior.fit((s.graph for s in train), quantile=args.quantile, slack=args.slack,
                          allowed_from=PairPrior.star() if args.star_mask else None,
                          source=f"sgg synth training scenes ({args.data_dir}, q={args.quantile}, slack={args.slack})")
    prior.save(args.out)
    print(prior, "default radius", round(prior.default_radius, 2))
    val = load_scenes(args.data_dir, split["val"])
    t = time.perf_counter()
    rec, nc, na = candidate_recall(prior, val)
    print(f"val: candidate recall {rec:.4f}, {nc} candidates of {na} ordered pairs ({100 * nc / na:.2f} %), "
          f"{time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
