"""Evaluate relation heads on held-out scenes of a scene directory (PredCls / SGCls / SGDet) with SGGEvaluator.

    python scripts/eval_relation.py --data /work/data/rel_synth --heads weights/rpcm_predcls_synth.pt \
        weights/relation_mlp_predcls_synth.pt freq-star [--sgdet weights/hodnet_effl0_synth.pt --scenes 3] \
        [--ks 20 50 100 1000 1500 2000] [--crop 512] [--taus 0 0.5 1] [--json out.json]

Each head is evaluated in its own mode (PredCls heads get ground-truth boxes and classes; SGCls heads only
boxes) on the split's scenes, with pairs proposed by the head (its spatial candidate rule) — a ground-truth
relation whose pair is not proposed cannot be recalled; ``cand.recall`` gives that ceiling. ``freq-star`` is
``FrequencyPrior.from_star()``. With ``--sgdet DETECTOR`` the PredCls heads also run on the detector's
objects for the first ``--scenes`` scenes (SGDet). Prints a Markdown table (percent) and timings.

``--crop S`` cuts each held-out scene into a grid of S × S px windows (the last row/column flush with the
image edge) and evaluates every window as an image of its own — objects kept when at least
``--min-inside`` (0.7) of their area lies in the window, relations kept when both ends are kept, windows
without a relation skipped — so that K = 20/50/100 mean what they mean on ordinary SGG images (a 2,048²
synthetic scene holds ~6,000 relations, capping R@K near K / 6,000). Whole-scene figures at K =
1000/1500/2000 are the run without ``--crop``. With ``--sgdet`` and ``--crop`` the same windows cut the
detections by the same rule, so SGDet is scored per window too.

``--taus 0 0.5 1`` scores the learned heads at several post-hoc logit adjustments τ from one set of
predictions (a row per τ) — pick τ on ``--split val``, then store it (``model.logit_adjust``) and report
the test split. ``--foreground-adjust`` applies τ among the foreground predicates only (the background
probability, which ranks the pairs, stays unadjusted; ``set_ranking(path, adjust_background=False)`` stores it).
``--count-norm B`` ranks each graph's triplets for mean recall (every head, the frequency prior too:
:func:`sgg.relation_heads.count_normalised`); ``--taus … --count-norms B …`` scores the grid of both
(pick them on ``--split val``; ``sgg.relation_heads.set_ranking`` or ``model.count_norm`` stores β).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from sgg.datasets.tiling import load_scenes, read_split
from sgg.evaluation.sgg import SGGEvaluator
from sgg.evaluation.windows import crop_graphs
from sgg.relation_heads import FrequencyPrior, load_relation_head
from sgg.relation_heads.base import adjusted_scores
from sgg.structures import PairSet


def _head(spec: str):
    return FrequencyPrior.from_star() if spec == "freq-star" else load_relation_head(spec)


def candidate_recall(gt, pred) -> float:
    n = len(gt.detections)
    keep = gt.predicate_labels > 0
    g = gt.pairs.pairs[keep]
    return float(torch.isin(g[:, 0] * n + g[:, 1], pred.pairs.pairs[:, 0] * n + pred.pairs.pairs[:, 1]).float().mean())


def evaluate(head, graphs, mode: str, ks, inputs=None, taus=None) -> dict:
    """SGGEvaluator results of ``head`` on ``graphs``; with ``taus`` a dict setting → results, the head's
    predictions made once and re-scored per setting: a setting is τ, or a pair (τ, β), applied as
    ``adjusted_scores(log p₀, log prior, τ, background, β)``, p₀ the unadjusted probabilities (the same as
    predicting with ``logit_adjust = τ`` and ``count_norm = β``, β the head's own for a plain τ; the head's
    ``adjust_background`` says whether the background column is adjusted too,
    :func:`sgg.relation_heads.base.adjusted_scores`)."""
    if taus is None:
        return evaluate(head, graphs, mode, ks, inputs, [None])[None]
    evs = {t: SGGEvaluator(mode, ks=ks) for t in taus}
    rec, t0, pairs = [], time.perf_counter(), 0
    own = head.logit_adjust, getattr(head, "count_norm", 0.0)
    lp = head.log_prior.float()
    bg = getattr(head, "adjust_background", True)
    for i, gt in enumerate(graphs):
        x = inputs[i] if inputs is not None else gt.replace(pairs=PairSet.empty(), predicate_labels=None)
        if taus != [None]:
            head.logit_adjust, head.count_norm = 0.0, 0.0
        try:
            pred = head.predict(x)
        finally:
            head.logit_adjust, head.count_norm = own
        pairs += len(pred.pairs)
        logp = torch.log(pred.predicate_scores.clamp_min(1e-30))
        for t, ev in evs.items():
            if t is not None:
                tau, beta = t if isinstance(t, tuple) else (t, own[1])
                pred = pred.replace(predicate_scores=adjusted_scores(logp, lp, tau, bg, beta))
            ev.add(gt, pred)
        if mode != "sgdet":
            rec.append(candidate_recall(gt, pred))
    out = {}
    for t, ev in evs.items():
        r = ev.compute()
        r["candidate_recall"] = sum(rec) / len(rec) if rec else float("nan")
        r["seconds"] = time.perf_counter() - t0
        r["pairs"] = pairs
        out[t] = r
    return out


def detect(detector_path: str, scenes, cache: str | None = None) -> list:
    """Detections per scene (``cache``: a directory of ``<scene>.json`` detections reused across runs)."""
    from sgg.datasets.native import read_scene_json, write_scene_json
    from sgg.detectors import detect_scene, load_detector

    det, graphs = None, []
    for sc in scenes:
        path = Path(cache) / f"{sc.scene_id}.json" if cache else None
        if path is not None and path.exists():
            graphs.append(read_scene_json(path))
            continue
        det = det or load_detector(detector_path)
        t = time.perf_counter()
        g = detect_scene(det, sc.image_path, progress=False)
        print(f"  detected {len(g.detections)} objects in {sc.scene_id} ({len(sc.graph.detections)} annotated) "
              f"in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        g = g.replace(pairs=PairSet.empty(), predicate_scores=None, predicate_labels=None)
        if path is not None:
            write_scene_json(g, path)
        graphs.append(g)
    return graphs


def row(name: str, mode: str, r: dict, ks) -> str:
    cells = [f"{100 * r[f'{m}@{k}']:.2f}" for m in ("R", "mR", "HMR") for k in ks]
    return f"| {name} | {mode} | " + " | ".join(cells) + f" | {100 * r['candidate_recall']:.1f} |"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--heads", nargs="+", required=True, help="relation-head checkpoints, or freq-star")
    p.add_argument("--split", default="test")
    p.add_argument("--ks", type=int, nargs="+", default=[20, 50, 100, 1000, 1500, 2000])
    p.add_argument("--sgdet", metavar="DETECTOR", help="also run SGDet with this detector checkpoint")
    p.add_argument("--scenes", type=int, default=3, help="scenes for SGDet (detection is slow on CPU)")
    p.add_argument("--sgdet-only", action="store_true", help="skip the PredCls/SGCls evaluation")
    p.add_argument("--det-cache", metavar="DIR", help="keep/reuse SGDet detections here (<scene>.json)")
    p.add_argument("--logit-adjust", type=float, help="τ of the post-hoc logit adjustment (default: the head's)")
    p.add_argument("--foreground-adjust", action="store_true",
                   help="τ re-splits the foreground only, the background probability kept (adjust_background=False)")
    p.add_argument("--taus", type=float, nargs="+", metavar="T",
                   help="evaluate the learned heads at each post-hoc τ (predicted once; one row per τ) to pick τ")
    p.add_argument("--count-norm", type=float, metavar="B",
                   help="β of the per-graph count normalisation for every head, the frequency prior too (default: the head's)")
    p.add_argument("--count-norms", type=float, nargs="+", metavar="B",
                   help="with --taus: also each β (one row per τ, β) to pick them together")
    p.add_argument("--neg-ratio", type=float, default=3.0, help="negatives per positive of training, for the prior")
    p.add_argument("--crop", type=int, metavar="S", help="evaluate S x S px windows of the scenes (docstring)")
    p.add_argument("--min-inside", type=float, default=0.7, help="--crop: least fraction of an object in its window")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    scenes = load_scenes(args.data, read_split(args.data)[args.split])
    whole = graphs = [sc.graph for sc in scenes]
    if args.crop:
        graphs = crop_graphs(graphs, args.crop, args.min_inside)
    rows = sum(int((g.predicate_labels > 0).sum()) for g in graphs)
    print(f"{len(graphs)} {args.split} {f'{args.crop}-px windows of ' if args.crop else ''}scenes, {sum(len(g.detections) for g in graphs)} objects, {rows} relations",
          file=sys.stderr)
    results, lines = {}, []
    head_of = {spec: _head(spec) for spec in args.heads}
    if args.logit_adjust is not None:  # override τ; heads trained before the prior was stored get it from --data
        from sgg.relation_heads.module import training_log_prior

        prior = None
        for head in head_of.values():
            if head.kind == "freq":
                continue
            head.logit_adjust = args.logit_adjust
            if not bool(head.log_prior.any()):
                if prior is None:
                    train = [sc.graph for sc in load_scenes(args.data, read_split(args.data)["train"])]
                    prior = training_log_prior(train, head.num_predicates, args.neg_ratio)
                head.log_prior.copy_(prior)
    for head in head_of.values():
        if args.foreground_adjust and head.kind != "freq":
            head.adjust_background = False
        if args.count_norm is not None:
            head.count_norm = args.count_norm
    if args.count_norms and not args.taus:
        p.error("--count-norms goes with --taus (one row per τ, β)")
    for spec, head in head_of.items():
        if args.sgdet_only:
            break
        name = Path(spec).stem if spec != "freq-star" else "freq (STAR counts)"
        if args.taus and head.kind != "freq":
            grid = [(t, b) for t in args.taus for b in args.count_norms] if args.count_norms else args.taus
            for t, r in evaluate(head, graphs, head.mode, args.ks, taus=grid).items():
                tag = f"τ={t[0]:g} β={t[1]:g}" if isinstance(t, tuple) else f"τ={t:g}"
                results[f"{name} {tag}/{head.mode}"] = r
                lines.append(row(f"{name} {tag}", head.mode, r, args.ks))
                print(lines[-1], f"({r['seconds']:.0f} s, {r['pairs']} pairs)", file=sys.stderr)
            continue
        r = evaluate(head, graphs, head.mode, args.ks)
        results[f"{name}/{head.mode}"] = r
        lines.append(row(name, head.mode, r, args.ks))
        print(lines[-1], f"({r['seconds']:.0f} s, {r['pairs']} pairs)", file=sys.stderr)
    if args.sgdet:
        dets, gts = detect(args.sgdet, scenes[: args.scenes], args.det_cache), whole[: args.scenes]
        if args.crop:  # the same windows cut ground truth and detections
            gts, dets = crop_graphs(gts, args.crop, args.min_inside, detections=dets)
        for spec, head in head_of.items():
            if head.mode != "predcls":
                continue
            name = Path(spec).stem if spec != "freq-star" else "freq (STAR counts)"
            r = evaluate(head, gts, "sgdet", args.ks, inputs=dets)
            results[f"{name}/sgdet"] = r
            lines.append(row(name, "sgdet", r, args.ks))
            print(lines[-1], f"({r['seconds']:.0f} s, {r['pairs']} pairs)", file=sys.stderr)
    head_row = "| head | mode | " + " | ".join(f"{m}@{k}" for m in ("R", "mR", "HMR") for k in args.ks) + " | cand. recall |"
    print(head_row)
    print("|" + "---|" * (3 * len(args.ks) + 3))
    print("\n".join(lines))
    if args.json:
        clean = {k: {m: v for m, v in r.items() if not m.startswith("per_predicate")} for k, r in results.items()}
        Path(args.json).write_text(json.dumps(clean, indent=1).replace("NaN", "null") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
