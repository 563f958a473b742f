"""Evaluate a detector with holistic inference: held-out synthetic scenes or a labelled real image.

    # held-out synthetic scenes (the split written by `sgg synth`)
    python scripts/eval_detector.py weights/hodnet_effl0_synth.pt --data data/synth_det --split test
    # the real DOTA marina: DOTA `ship` is scored against predicted STAR `boat` and `ship` merged
    python scripts/eval_detector.py weights/hodnet_effl0_synth.pt --image ../shared/real/dota/P0706.png \
        --labels ../shared/real/dota/P0706.txt --merge boat=ship

Prints mAP@IoU (area AP, VOC07 with --use-07) over the classes present in the ground truth, per-class AP,
recall and counts, and the detection time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights")
    ap.add_argument("--data", help="scene directory (scenes/, annotations/, split.json)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--image", help="a raster with DOTA labels (--labels)")
    ap.add_argument("--labels")
    ap.add_argument("--merge", action="append", default=[], metavar="A=B",
                    help="score predicted class A as class B (after merging, class-wise NMS again)")
    ap.add_argument("--agnostic", metavar="CLASS",
                    help="class-agnostic: score every prediction as CLASS (localisation without classification)")
    ap.add_argument("--tile-size", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=128)
    ap.add_argument("--zoom", default="full", choices=("full", "guided"))
    ap.add_argument("--levels", default="auto", help="'auto' or comma-separated levels, e.g. 0")
    ap.add_argument("--iou", type=float, default=0.5)
    ap.add_argument("--use-07", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="evaluate only the first N scenes")
    a = ap.parse_args()

    import torch

    from sgg.datasets.dota import read_dota_labels
    from sgg.datasets.native import read_scene_json
    from sgg.datasets.tiling import read_split
    from sgg.detectors.checkpoint import load_detector
    from sgg.detectors.inference import detect_scene
    from sgg.evaluation.detection import format_table, rotated_map
    from sgg.ops import rotated_nms
    from sgg.structures import Detections

    torch.set_num_threads(a.threads)
    model = load_detector(a.weights).eval()
    vocab = model.vocabulary
    if a.data:
        ids = read_split(a.data)[a.split][: a.limit or None]
        items = [(Path(a.data) / "scenes" / f"{i}.tif", read_scene_json(Path(a.data) / "annotations" / f"{i}.json"))
                 for i in ids]
    elif a.image and a.labels:
        items = [(Path(a.image), read_dota_labels(a.labels, vocabulary=vocab, aliases="dota_to_star"))]
    else:
        ap.error("give --data DIR or --image and --labels")
    merge = {}
    for m in a.merge:
        src, dst = m.split("=")
        merge[vocab.object_index(src)] = vocab.object_index(dst)
    levels = "auto" if a.levels == "auto" else [int(v) for v in a.levels.split(",")]

    preds, gts, t0 = [], [], time.perf_counter()
    for path, gt in items:
        sg = detect_scene(model, path, tile_size=a.tile_size, overlap=a.overlap, levels=levels, zoom=a.zoom,
                          progress=False)
        det = sg.detections
        if a.agnostic and len(det):
            det = Detections(det.boxes, torch.full_like(det.labels, vocab.object_index(a.agnostic)), det.scores)
        if (merge or a.agnostic) and len(det):
            lab = det.labels.clone()
            for s, d in merge.items():
                lab[lab == s] = d
            keep = rotated_nms(det.boxes.tensor, det.scores, 0.4, labels=lab)
            det = Detections(det.boxes[keep], lab[keep], det.scores[keep])
        preds.append(det)
        gts.append(gt)
        print(f"{path.name}: {len(det)} detections, {len(gt.detections)} ground-truth objects")
    el = time.perf_counter() - t0
    res = rotated_map(preds, gts, iou_threshold=a.iou, use_07_metric=a.use_07, class_names=list(vocab.objects))
    print(format_table(res))
    print(f"mAP@{a.iou} = {res['mAP']:.4f} over {len(res['classes_evaluated'])} classes, {len(items)} images, "
          f"zoom={a.zoom}, levels={a.levels}, tile {a.tile_size}/{a.overlap}; detection {el:.1f} s")


if __name__ == "__main__":
    main()
