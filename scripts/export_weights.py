"""Turn a ``DetectorModule`` Lightning checkpoint into a compact sgg detector file (fp16 by default).

    python scripts/export_weights.py runs/detector_synth/checkpoints/last.ckpt weights/hodnet_effl0_synth.pt

The output holds only the model weights with its vocabulary and architecture config (no optimiser state),
loads with ``sgg.detectors.load_detector`` / ``sgg detect --weights`` under ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import argparse

from sgg.detectors.checkpoint import load_detector, read_checkpoint, save_detector


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt")
    ap.add_argument("out")
    ap.add_argument("--tile-size", type=int, help="detect_scene's default tile size (default: the training tile size)")
    ap.add_argument("--overlap", type=int, help="detect_scene's default overlap (default: a quarter of the tile)")
    ap.add_argument("--fp32", action="store_true", help="keep float32 weights (default fp16, half the size)")
    a = ap.parse_args()
    vocab, cfg, _ = read_checkpoint(a.ckpt)
    model = load_detector(a.ckpt)
    hint = dict(model.inference)
    if a.tile_size:
        hint = {"tile_size": a.tile_size, "overlap": a.overlap if a.overlap is not None else a.tile_size // 4}
    elif a.overlap is not None:
        hint["overlap"] = a.overlap
    path = save_detector(model, a.out, vocab, cfg, half=not a.fp32, inference=hint)
    print(f"{a.ckpt} -> {path} ({path.stat().st_size / 1e6:.1f} MB, {vocab.num_classes} classes, inference {hint})")


if __name__ == "__main__":
    main()
