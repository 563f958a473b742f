"""Average detector weights (a model soup) or interpolate two of them (WiSE-FT) into one sgg detector file.

    python scripts/average_weights.py soup.pt run_s4.pt run_s5.pt run_s6.pt           # uniform soup
    python scripts/average_weights.py wise.pt mixed.pt synth.pt --coefs 0.7 0.3 --keep-mismatched

The first file is the base (its config, vocabulary, inference hints); see
``sgg.detectors.checkpoint.average_detectors``.
"""

from __future__ import annotations

import argparse
import sys

from sgg.detectors.checkpoint import average_detectors
from sgg.errors import SggInputError


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("weights", nargs="+", help="detector files or DetectorModule .ckpt, the first is the base")
    ap.add_argument("--coefs", type=float, nargs="+", help="one weight per file (normalised; default uniform)")
    ap.add_argument("--keep-mismatched", action="store_true",
                    help="take parameters whose shapes differ (other anchor ratios) from the first file")
    ap.add_argument("--fp32", action="store_true", help="keep float32 weights (default fp16)")
    a = ap.parse_args()
    try:
        path = average_detectors(a.weights, a.out, a.coefs, keep_mismatched=a.keep_mismatched, half=not a.fp32)
    except SggInputError as exc:
        sys.exit(f"error: {exc}")
    print(f"{' + '.join(a.weights)} -> {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
