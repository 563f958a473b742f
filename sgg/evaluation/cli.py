"""``sgg eval``: evaluate predictions against ground truth.

    sgg eval detection --pred results/ --gt annotations/ [--iou-threshold 0.5] [--use-07] [--json out.json]
        [--box-type hbb] [--class-agnostic] [--merge boat=ship]
    sgg eval sgg --pred graphs/ --gt annotations/ [--mode predcls|sgcls|sgdet] [--box-type hbb] [--ks 20 50 100]

``--pred``: a DOTA Task-1 results directory (``Task1_<class>.txt``, e.g. from mmrotate or
``sgg detect --dota-out``), or native scene-graph JSON files (a directory or one file, e.g. from
``sgg detect --out``). ``--gt``: a directory (or file) of native JSON annotations or DOTA label files.
Images are matched by id: the stem of the graph's ``image_path``, else the file stem (``.graph`` dropped).
Classes are matched by name; the vocabulary is the annotations' (``--vocabulary`` for DOTA labels).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sgg.cli_support import ArgumentParser, UsageError, float_range, int_range, warn


def _vocabulary(spec: str | None):
    from sgg.structures import Vocabulary

    if spec is None or spec == "star":
        return Vocabulary.star()
    if spec == "dota":
        from sgg.datasets.dota import DOTA_VOCABULARY

        return DOTA_VOCABULARY
    from sgg.errors import SggInputError

    path = Path(spec)
    try:
        return Vocabulary.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise SggInputError(f"cannot read vocabulary ({exc})", path=path) from None


def _image_id(sg, file: Path) -> str:
    if sg.image_path:
        return Path(sg.image_path).stem
    name = file.name.split(".")[0]
    return name


def _graph_files(path: Path) -> list[Path]:
    """Scene graph files: ``path`` itself, or the graph files of a directory (Parquet relation side files
    belong to their objects file and are not graphs of their own)."""
    from sgg.graph.formats import suffix_format

    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and suffix_format(p)
                      and not p.name.lower().endswith(".relations.parquet"))
    return [path]


def _files(path: Path, suffix: str) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() == suffix and p.is_file())
    return [path]


def load_ground_truth(path: str | Path, vocabulary=None, aliases=None) -> dict:
    """{image_id: SceneGraph} from annotations: native scene JSON, DOTA label files (``.txt``) or any graph
    format sgg writes (a directory or a file). Class names resolve against ``vocabulary`` when given."""
    from sgg.datasets.dota import read_dota_labels
    from sgg.errors import SggInputError

    path = Path(path)
    if not path.exists():
        raise SggInputError("ground truth not found", path=path)
    txt = [path] if path.is_file() and path.suffix.lower() == ".txt" else _files(path, ".txt") if path.is_dir() else []
    graphs = [] if txt and path.is_file() else _graph_files(path)
    if not txt and not graphs:
        raise SggInputError("no annotations here (native .json, DOTA .txt or a scene graph file)", path=path)
    out = {}
    for f in txt:
        out[f.stem] = read_dota_labels(f, vocabulary, aliases)
    for f in graphs:
        sg = _read_annotation(f, vocabulary)
        out[_image_id(sg, f)] = sg
    return out


def _read_annotation(f: Path, vocabulary):
    """A native scene JSON read against ``vocabulary``; any other graph file read by ``sgg.graph.read``
    and its classes re-indexed by name (a class the vocabulary lacks is an error, never dropped)."""
    from sgg.datasets.native import read_scene_json
    from sgg.errors import SggInputError
    from sgg.graph import read
    from sgg.graph.formats import suffix_format

    if suffix_format(f) in ("json", "scene"):
        try:
            return read_scene_json(f, vocabulary)
        except SggInputError as exc:
            if exc.where != "format_version":  # a native file with a real problem
                raise
    sg = read(f)
    if vocabulary is None or tuple(sg.vocabulary.objects) == tuple(vocabulary.objects):
        return sg
    missing = sorted({sg.vocabulary.objects[i] for i in sg.detections.labels.tolist()} - set(vocabulary.objects))
    if missing:
        raise SggInputError(f"classes {missing[:5]} are not in the vocabulary", path=f)
    det = _remap(sg.detections, sg.vocabulary, vocabulary)
    return sg.replace(detections=det, vocabulary=vocabulary, pairs=sg.pairs[:0], predicate_labels=None,
                      predicate_scores=None)


def load_predictions(path: str | Path, vocabulary, aliases=None) -> dict:
    """{image_id: Detections} (labels in ``vocabulary``) from DOTA Task-1 results or scene graphs in any
    format sgg writes (``sgg.graph.read``: .scene.json, .gpkg, .geojson, .parquet, .graphml, node-link .json);
    a directory is read file by file."""
    from sgg.datasets.dota import read_dota_results
    from sgg.errors import SggInputError
    from sgg.graph import read

    path = Path(path)
    if not path.exists():
        raise SggInputError("predictions not found", path=path)
    is_dota = (path.is_dir() and any(p.name.startswith("Task1_") for p in path.iterdir())) or path.name.startswith("Task1_")
    if is_dota:
        return read_dota_results(path, vocabulary=vocabulary, aliases=aliases)
    files = _graph_files(path)
    if not files:
        raise SggInputError("no Task1_<class>.txt results or scene graph files here", path=path)
    out = {}
    for f in files:
        sg = read(f)
        out[_image_id(sg, f)] = _remap(sg.detections, sg.vocabulary, vocabulary)
    return out


def _remap(det, src, dst):
    """Re-index labels from vocabulary ``src`` to ``dst`` by class name; classes dst lacks are dropped."""
    import torch

    if tuple(src.objects) == tuple(dst.objects) or len(det) == 0:
        return det
    table = torch.tensor([dst.objects.index(n) if n in dst.objects else -1 for n in src.objects])
    new = table[det.labels]
    keep = (new >= 0).nonzero().flatten()
    det = det[keep]
    det.labels = new[keep]
    return det


def _check_paths(args) -> None:
    """--pred/--gt exist, --json is a writable file, --aliases names a table: before anything is read."""
    from sgg.cli_support import input_path, output_file
    from sgg.errors import SggInputError

    input_path(args.pred, "--pred", kind="any")
    input_path(args.gt, "--gt", kind="any")
    if getattr(args, "aliases", None):
        from sgg.datasets.aliases import resolve_aliases

        try:
            resolve_aliases(args.aliases)
        except SggInputError as exc:
            raise SggInputError(str(exc), option="--aliases") from None
    if args.json:
        output_file(args.json, "--json", suffixes=(".json",), inputs=[args.pred, args.gt])


def _merge_pair(text: str) -> tuple[str, str]:
    """argparse type of ``--merge A=B``."""
    import argparse

    src, sep, dst = text.partition("=")
    if not sep or not src.strip() or not dst.strip():
        raise argparse.ArgumentTypeError(f"expected CLASS=CLASS, got {text!r}")
    return src.strip(), dst.strip()


def _merges(pairs, vocab) -> dict[str, str]:
    from sgg.errors import SggInputError

    for n in (n for pair in pairs for n in pair):
        if n not in vocab.objects:
            raise SggInputError(f"class {n!r} is not in the vocabulary ({', '.join(vocab.objects[:6])}, …)",
                                option="--merge")
    return dict(pairs)


def detection_main(argv: list[str]) -> int:
    p = ArgumentParser(prog="sgg eval detection", description="Rotated detection mAP (DOTA devkit rules: "
                       "difficult objects ignored, classes without ground truth left out of the mean).",
                       quiet_help="no warnings")
    p.add_argument("--pred", required=True, help="DOTA results dir (Task1_<class>.txt), or a scene graph file or "
                   "directory in any format sgg writes (.scene.json, .gpkg, .geojson, .parquet, .graphml, .json)")
    p.add_argument("--gt", required=True, help="native JSON annotations or DOTA label files (dir or file)")
    p.add_argument("--iou-threshold", type=float_range(0, 1, lo_open=True), default=0.5,
                   help="rotated IoU a detection needs to match")
    p.add_argument("--use-07", action="store_true", help="VOC07 11-point AP instead of the area under the curve")
    p.add_argument("--vocabulary", help="star (default), dota, or a JSON file with 'objects' and 'predicates'")
    p.add_argument("--aliases", help="class-name alias table for DOTA files, e.g. dota_to_star")
    p.add_argument("--box-type", choices=("obb", "hbb"), default="obb",
                   help="hbb: IoU of axis-aligned envelopes (predicted footprints vs horizontal labels)")
    p.add_argument("--class-agnostic", action="store_true", help="score every object as one class (localisation)")
    p.add_argument("--merge", action="append", default=[], type=_merge_pair, metavar="A=B",
                   help="score class A as class B (repeatable), e.g. boat=ship for labels that do not split them")
    p.add_argument("--json", metavar="OUT", help="also write the full result as JSON")
    args = p.parse_args(argv)
    _check_paths(args)

    from sgg.errors import SggInputError
    from sgg.evaluation.detection import format_table, rotated_map
    from sgg.structures import Detections

    vocab = _vocabulary(args.vocabulary) if args.vocabulary else None
    gts = load_ground_truth(args.gt, vocab, args.aliases)
    if not gts:
        raise SggInputError("no annotated images", path=args.gt)
    vocab = vocab or next(iter(gts.values())).vocabulary
    preds = load_predictions(args.pred, vocab, args.aliases)
    ids = sorted(gts)
    unknown = sorted(set(preds) - set(gts))
    if unknown and len(unknown) == len(preds):
        raise SggInputError(f"no prediction matches an annotated image (predictions for {unknown[:5]}, "
                            f"annotations for {ids[:5]})", path=args.pred)
    if unknown:
        warn(f"ignoring predictions for {len(unknown)} images without annotations: {unknown[:5]}")
    result = rotated_map([preds.get(i, Detections.empty()) for i in ids], [gts[i] for i in ids],
                         iou_threshold=args.iou_threshold, use_07_metric=args.use_07, class_names=vocab.objects,
                         box_type=args.box_type, class_agnostic=args.class_agnostic, merge=_merges(args.merge, vocab))
    result["images"] = len(ids)
    print(f"{len(ids)} images, {sum(len(preds.get(i, [])) for i in ids)} detections")
    print(format_table(result))
    if args.json:
        from sgg.io.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
    return 0


def sgg_main(argv: list[str]) -> int:
    """``sgg eval sgg``: Scene-Graph-Benchmark recall (R, mR, ng, zero-shot, HMR, A, F) of predicted graphs."""
    p = ArgumentParser(prog="sgg eval sgg", quiet_help="no warnings", description="Scene-graph recall@K with the Scene-Graph-"
                                "Benchmark protocol (sgg.evaluation.sgg). Predictions: scene graphs with predicate "
                                "scores (any 'sgg graph' format; graphs with hard predicates score 1).")
    p.add_argument("--pred", required=True, help="predicted scene graph file or directory (.json/.gpkg/…)")
    p.add_argument("--gt", required=True, help="native JSON annotations (directory or file)")
    p.add_argument("--mode", choices=("predcls", "sgcls", "sgdet"), default="sgdet")
    p.add_argument("--box-type", choices=("obb", "hbb"), default="obb")
    p.add_argument("--ks", type=int_range(1), nargs="+", default=[20, 50, 100], help="K values (STAR: 1000 1500 2000)")
    p.add_argument("--iou-threshold", type=float_range(0, 1, lo_open=True), default=0.5)
    p.add_argument("--train-counts", help="'star' or a JSON (C+1, C+1, P) triplet-count array, for zero-shot recall")
    p.add_argument("--json", metavar="OUT", help="also write the full result as JSON")
    args = p.parse_args(argv)
    _check_paths(args)

    import torch

    from sgg.errors import SggInputError
    from sgg.evaluation.sgg import SGGEvaluator, format_sgg_table
    from sgg.graph import read

    gts = load_ground_truth(args.gt)
    counts = None
    if args.train_counts:
        src = Path(args.train_counts)
        if args.train_counts == "star":
            from importlib import resources

            src = resources.files("sgg.data").joinpath("star_triplet_counts.json")
        try:
            counts = json.loads(src.read_text())
        except (OSError, ValueError) as exc:
            raise SggInputError(f"cannot read training counts ({exc})", path=args.train_counts) from None
    ev = SGGEvaluator(args.mode, ks=args.ks, iou_threshold=args.iou_threshold, box_type=args.box_type,
                      train_counts=counts)
    pred_path = Path(args.pred)  # checked by _check_paths
    seen = set()
    for f in _graph_files(pred_path):
        pr = read(f)
        key = _image_id(pr, f)
        if key not in gts:
            warn(f"no annotation for prediction {f.name} (image id {key!r}); ignored")
            continue
        if pr.predicate_scores is None:  # hard graph: one-hot scores
            lab = pr.predicate_labels if pr.predicate_labels is not None else torch.zeros(len(pr.pairs), dtype=torch.long)
            pr = pr.replace(predicate_scores=torch.nn.functional.one_hot(lab, pr.vocabulary.num_predicates).float())
        try:
            ev.add(gts[key], pr)
        except SggInputError as exc:
            raise SggInputError(str(exc), path=f) from None
        seen.add(key)
    if not seen:
        raise SggInputError(f"no prediction matches an annotated image (annotations for {sorted(gts)[:5]})",
                            path=pred_path)
    missing = sorted(set(gts) - seen)
    if missing:
        warn(f"{len(missing)} annotated images have no prediction and are left out: {missing[:5]}")
    result = ev.compute()
    print(f"{result['images']} images ({result['skipped']} without relations skipped), mode {args.mode}, "
          f"{args.box_type} IoU ≥ {args.iou_threshold}")
    print(format_sgg_table(result))
    if args.json:
        from sgg.io.atomic import atomic_write_text

        clean = json.loads(json.dumps(result).replace("NaN", "null"))
        atomic_write_text(args.json, json.dumps(clean, indent=1) + "\n")
    return 0


def load_proposer(spec: str, budget: int | None):
    """``star`` (STAR's released PPG), ``star-hbb``, ``nearest`` (no PPG: nearest relative to the prior's
    radius) or a PPG / proposer file."""
    from sgg.pairs import PPG, PairPrior, PairProposer

    if spec == "star":
        return PairProposer(PPG.from_star(), PairPrior.star(), budget=budget)
    if spec == "star-hbb":
        return PairProposer(PPG.from_star(kind="hbb"), PairPrior.star(), budget=budget)
    if spec == "nearest":
        return PairProposer(None, PairPrior.star(), budget=budget)
    return PairProposer.load(spec, budget=budget)


def pairs_main(argv: list[str]) -> int:
    """``sgg eval pairs``: pair recall of a pair proposer (``sgg.evaluation.pairs``)."""
    from sgg.evaluation.pairs import (
        DEFAULT_BUDGETS,
        DEFAULT_FRACTIONS,
        format_pair_table,
        mean_pair_recall,
        pair_recall,
    )
    from sgg.structures import Detections

    p = ArgumentParser(prog="sgg eval pairs", description="Pair recall of a pair proposer against "
                                "annotated relations (GT boxes, or detections matched at rotated IoU).")
    p.add_argument("--gt", required=True, help="native JSON annotations with relations (dir or file)")
    p.add_argument("--proposer", default="star", help="star (default), star-hbb, nearest, or a PPG/proposer file")
    p.add_argument("--pred", help="detections to propose pairs on (DOTA results dir or scene-graph JSON); "
                   "default: the ground-truth boxes")
    p.add_argument("--budget", type=int_range(1), nargs="*", default=list(DEFAULT_BUDGETS), help="absolute budgets")
    p.add_argument("--fraction", type=float_range(0, 1), nargs="*", default=list(DEFAULT_FRACTIONS),
                   help="budgets as shares of the N(N-1) ordered pairs")
    p.add_argument("--iou-threshold", type=float_range(0, 1), default=0.5)
    p.add_argument("--json", metavar="OUT", help="also write per-image and mean results as JSON")
    args = p.parse_args(argv)

    from sgg.errors import SggInputError

    gts = load_ground_truth(args.gt)
    if not gts:
        raise SggInputError("no annotated images", path=args.gt)
    vocab = next(iter(gts.values())).vocabulary
    preds = load_predictions(args.pred, vocab) if args.pred else None
    proposer = load_proposer(args.proposer, None)  # rank every candidate; budgets are applied here
    per_image = {}
    for image_id in sorted(gts):
        gt = gts[image_id]
        det = gt.detections if preds is None else preds.get(image_id, Detections.empty())
        ranked = proposer(det, vocabulary=vocab)
        per_image[image_id] = pair_recall(ranked, gt, None if preds is None else det, budgets=args.budget,
                                          fractions=args.fraction, iou_threshold=args.iou_threshold)
    mean = mean_pair_recall(list(per_image.values()))
    print(f"{mean.get('images', 0)} images with relations, {mean.get('gt_pairs', 0)} related pairs, "
          f"{mean.get('kept', 0)} candidates ranked ({'detections' if preds else 'ground-truth boxes'})")
    print(format_pair_table({args.proposer: mean}))
    if args.json:
        from sgg.io.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps({"mean": mean, "images": per_image}, indent=1) + "\n")
    return 0


SUBCOMMANDS = {"detection": (detection_main, "rotated detection mAP per class (VOC07 / area)"),
               "sgg": (sgg_main, "scene-graph recall R@K / mR@K / ng / zero-shot / HMR (Scene-Graph-Benchmark)"),
               "pairs": (pairs_main, "pair recall of a pair proposer (PPG) at budgets of kept pairs")}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    lines = "\n".join(f"  {k:<10} {h}" for k, (_, h) in SUBCOMMANDS.items())
    usage = f"usage: sgg eval WHAT [options]\n\nwhat:\n{lines}\n\nRun `sgg eval WHAT --help` for options."
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    if argv[0] not in SUBCOMMANDS:
        raise UsageError(f"unknown evaluation {argv[0]!r}; choose from {', '.join(SUBCOMMANDS)} (see `sgg eval --help`)")
    return int(SUBCOMMANDS[argv[0]][0](argv[1:]) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
