"""RPN proposal recall of detector weights on validation data (issue #12): is an object reachable at all?

    python scripts/proposal_recall.py weights/hodnet_effl0_mixed.pt --synth data/synth_det --json recall.json

The RoI head refines proposals, so an object that no proposal fits at IoU 0.5 is rarely detected well; on real
moored boats the proposals had the right envelopes but not the boats' angle (:mod:`sgg.evaluation.proposals`).
Sets, validation only (never the DOTA test images):

* ``ships_ge`` the held-out part of ships_ge (as ``eval_real.py``), each image whole as one tile at level 0,
  split ``dense`` (≥ ``--dense`` boats, the marinas) / ``sparse``; recall by envelope IoU against the
  horizontal labels (``hbb``) and by oriented IoU against their pseudo-boxes (``obb``, a proxy of the angle);
* ``synthetic`` ``--synth DIR --split val``: the boats and ships (``--classes``) of the split's scenes, read in
  512 level-0 tiles; objects wholly inside a tile count once, by oriented IoU against their exact boxes.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def ships_ge(model, real: Path, dense: int) -> dict:
    import torch
    from eval_real import dota_items

    from sgg.datasets.dota import read_dota_labels
    from sgg.datasets.pseudo_obb import pseudo_oriented_boxes
    from sgg.datasets.tiling import ReaderCache, read_whole
    from sgg.evaluation.proposals import best_overlaps, recall_at
    from sgg.ops import box_to_envelope

    best: dict[str, list[torch.Tensor]] = {f"{k}_{b}": [] for k in ("dense", "sparse") for b in ("hbb", "obb")}
    for image, label in dota_items(real, "ships_ge"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no-CRS PNGs
            gt = read_dota_labels(label, aliases={"boat": "ship"})
            img = read_whole(ReaderCache().get(str(image)), *gt.image_size)
        if not len(gt.detections):
            continue
        boxes = gt.detections.boxes.tensor
        pseudo = pseudo_oriented_boxes(img, box_to_envelope(boxes))[0]  # as eval_real's ships_ge_obb, same pixels
        props = model.proposals([img])[0]
        kind = "dense" if len(boxes) >= dense else "sparse"
        best[f"{kind}_hbb"].append(best_overlaps(boxes, props, "hbb"))
        best[f"{kind}_obb"].append(best_overlaps(pseudo, props, "obb"))
    return {k: recall_at(v) for k, v in best.items()}


def synthetic(model, data: Path, split: str, classes: list[str], tile: int = 512) -> dict:
    import torch

    from sgg.datasets.tiling import ReaderCache, load_scenes, read_split, read_window
    from sgg.evaluation.proposals import best_overlaps, recall_at
    from sgg.ops import box_to_envelope

    best = []
    for rec in load_scenes(data, read_split(data)[split]):  # labels in the annotations' own vocabulary
        objects = rec.graph.vocabulary.objects
        ids = torch.tensor([objects.index(c) for c in classes if c in objects], dtype=torch.long)
        keep = torch.isin(rec.labels, ids) & ~rec.difficult
        boxes = rec.boxes[keep]
        if not len(boxes):
            continue
        env = box_to_envelope(boxes)
        reader = ReaderCache().get(rec.image_path)
        for y0 in range(0, rec.height, tile):
            for x0 in range(0, rec.width, tile):
                inside = (env[:, 0] >= x0) & (env[:, 1] >= y0) & (env[:, 2] <= x0 + tile) & (env[:, 3] <= y0 + tile)
                if not bool(inside.any()):
                    continue
                img = read_window(reader, rec.width, rec.height, (x0, y0, tile), tile)
                props = model.proposals([img])[0]
                gt = boxes[inside] - torch.tensor([x0, y0, 0.0, 0.0, 0.0])
                best.append(best_overlaps(gt, props, "obb"))
    return {"obb": recall_at(best)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights")
    ap.add_argument("--real", default="../shared/real", help="the real-data folder (ships_ge)")
    ap.add_argument("--synth", help="scene directory (sgg synth) for the synthetic set")
    ap.add_argument("--split", default="val", help="split of --synth")
    ap.add_argument("--classes", default="ship,boat", help="synthetic classes counted (comma-separated)")
    ap.add_argument("--dense", type=int, default=10, help="ships_ge images with this many boats count as dense")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the results as JSON")
    a = ap.parse_args(argv)

    import torch

    from sgg.detectors.checkpoint import load_detector

    torch.set_num_threads(a.threads)
    model = load_detector(a.weights).eval()
    out: dict = {"weights": a.weights}
    if Path(a.real).is_dir():
        out["ships_ge"] = ships_ge(model, Path(a.real), a.dense)
        print("ships_ge", json.dumps(out["ships_ge"]), flush=True)
    if a.synth:
        out["synthetic"] = synthetic(model, Path(a.synth), a.split, a.classes.split(","))
        print("synthetic", json.dumps(out["synthetic"]), flush=True)
    if a.json:
        from sgg.io.atomic import atomic_write_text

        atomic_write_text(a.json, json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
