"""Export a trained PPG (PPGModule checkpoint or sgg-ppg file) as a small fp16 PairProposer file.

    python scripts/export_ppg.py runs/ppg_synth/lightning_logs/version_0/checkpoints/last.ckpt weights/ppg_synth.pt \
        [--data /work/data/ppg_synth] [--budget 10000]

The file holds the PPG (fp16 weights, vocabulary, config) and the candidate prior: with ``--data``, radii
fitted on that directory's training split (``PairPrior.fit``, STAR's class-pair mask kept), else
``PairPrior.star()``. Load it with ``sgg.pairs.PairProposer.load(path)`` (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import argparse

from sgg.pairs import PPG, PairPrior, PairProposer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--data", help="scene directory whose training split the prior's radii are fitted on")
    ap.add_argument("--budget", type=int, default=10_000)
    args = ap.parse_args()
    ppg = PPG.load(args.checkpoint)
    ppg.source = f"sgg PPGModule (USAD) trained on {args.data or 'unknown data'}"
    prior = PairPrior.star()
    if args.data:
        from sgg.datasets.tiling import load_scenes, read_split

        scenes = load_scenes(args.data, read_split(args.data)["train"])
        prior = PairPrior.fit((s.graph for s in scenes), allowed_from=prior, source=f"{args.data} training split")
    path = PairProposer(ppg, prior, budget=args.budget).save(args.out, half=True)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB): {ppg.source}; {prior!r}")


if __name__ == "__main__":
    main()
