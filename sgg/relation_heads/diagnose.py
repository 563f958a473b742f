"""How much of a predicate can a pair-only head know? The pair-only Bayes ceiling of a scene set.

For every candidate pair of the heads' spatial rule (``neighbour_pairs``) the pair-only view is what the pair
MLP sees: the class pair and the relative geometry (``pair_geometry``, 16 numbers; the footprint raster is a
function of the same boxes). Two candidate pairs with the same class pair and (near-)identical geometry get
the same scores from *any* pair-only model, so when they carry different predicates, the difference can only
come from outside the pair (a third object: the lot a car is parked in, a neighbour alongside, the nearest
docked vessel) or from what the boxes lose (le90 boxes have no heading sign: approach vs away from).

Per predicate, over its instances among the candidates (queries subsampled to ``max_queries``):

* ``twin``: share of instances whose nearest other candidate of the same class pair lies within ``eps``
  (standardised geometry, L2) — how often a near-identical pair exists;
* ``conflict``: among those, the share whose twin does *not* carry the predicate;
* ``posterior``: mean over instances of the share of the ``k`` nearest same-class-pair candidates carrying
  the predicate — a k-NN estimate of P(predicate | pair-only view) at the true instances; 1 for a predicate
  fixed by the pair, low for one the pair leaves open.

    python -m sgg.relation_heads.diagnose --data /work/data/rel_synth --split train [--json out.json]

With ``--heads A.pt B.pt`` it reports, for trained PredCls heads on a split, the per-predicate *pair
accuracy* (:func:`pair_accuracy`: the annotated pairs whose best foreground predicate is right — does the
head know the predicate, ranking aside) and the *top-50 slots* (:func:`top_k_slots`: which predicates fill
each 512-px window's 50 best triplets, what recall@50 sees), with group means over the predicates a
pair-only view leaves open (``--ceiling`` JSON, posterior < 50 %) and those it decides:

    python -m sgg.relation_heads.diagnose --data /work/data/rel_synth_ho --split test \
        --ceiling ceiling_train.json --heads MLP.pt RPCM.pt
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from sgg.datasets.relation_pairs import neighbour_pairs, pair_targets

from .features import pair_geometry


def pair_table(graphs) -> dict[str, np.ndarray]:
    """Candidate pairs of every graph: class-pair key, geometry (M, 16), multi-hot targets (M, P), scene."""
    keys, geos, tgts, scene, missed = [], [], [], [], 0
    for k, g in enumerate(graphs):
        boxes, labels = g.detections.boxes.tensor.float(), g.detections.labels
        n, p = len(boxes), g.vocabulary.num_predicates
        cand = neighbour_pairs(boxes)
        lab = g.predicate_labels if g.predicate_labels is not None else torch.zeros(len(g.pairs), dtype=torch.long)
        pos, t = pair_targets(g.pairs.pairs, lab, n, p)
        ck, pk = cand[:, 0] * n + cand[:, 1], pos[:, 0] * n + pos[:, 1]
        at = torch.searchsorted(ck, pk).clamp_max(max(len(ck) - 1, 0))
        ok = ck[at] == pk
        missed += int((~ok).sum())
        tgt = torch.zeros(len(cand), p)
        tgt[at[ok]] = t[ok]
        tgt[:, 0] = (tgt[:, 1:].sum(1) == 0).float()
        keys.append((labels[cand[:, 0]] * 10_000 + labels[cand[:, 1]]).numpy())
        geos.append(pair_geometry(boxes, cand).numpy())
        tgts.append(tgt.bool().numpy())
        scene.append(np.full(len(cand), k))
    return {"key": np.concatenate(keys), "geo": np.concatenate(geos), "tgt": np.concatenate(tgts),
            "scene": np.concatenate(scene), "missed": np.array(missed)}


def pair_only_ceiling(table: dict, predicates, eps: float = 0.05, k: int = 10, max_queries: int = 2000,
                      seed: int = 0) -> list[dict]:
    """Per-predicate ``twin`` / ``conflict`` / ``posterior`` (module docstring), most frequent first."""
    geo = table["geo"]
    geo = (geo - geo.mean(0)) / geo.std(0).clip(1e-6)
    key, tgt = table["key"], table["tgt"]
    rng = np.random.default_rng(seed)
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1], True])
    groups = {int(key[order[a]]): order[a:b] for a, b in itertools.pairwise(bounds)}
    trees: dict[int, cKDTree] = {}
    rows = []
    for p in range(tgt.shape[1]):
        inst = np.flatnonzero(tgt[:, p])
        if not len(inst):
            continue
        q = rng.choice(inst, max_queries, replace=False) if len(inst) > max_queries else inst
        twin, conflict, post = [], [], []
        for kk in np.unique(key[q]):
            members = groups[int(kk)]
            qq = q[key[q] == kk]
            if len(members) < 2:
                post.append(np.zeros(len(qq)))
                continue
            tree = trees.get(int(kk)) or trees.setdefault(int(kk), cKDTree(geo[members]))
            kq = min(k + 1, len(members))
            d, j = tree.query(geo[qq], k=kq)
            d, j = d.reshape(len(qq), kq), members[j.reshape(len(qq), kq)]
            self_hit = j == qq[:, None]  # drop the query itself (first hit unless exact duplicates)
            keep = ~self_hit
            first = keep.argmax(1)
            dn, jn = d[np.arange(len(qq)), first], j[np.arange(len(qq)), first]
            near = dn <= eps
            twin.append(near)
            conflict.append(~tgt[jn[near], p])
            has = tgt[j, p] & keep
            post.append(has.sum(1) / keep.sum(1).clip(1))
        twin_a = np.concatenate(twin) if twin else np.zeros(0, bool)
        conf_a = np.concatenate(conflict) if conflict else np.zeros(0, bool)
        rows.append({"predicate": predicates[p], "n": int(len(inst)), "twin": float(twin_a.mean()) if len(twin_a) else float("nan"),
                     "conflict": float(conf_a.mean()) if len(conf_a) else float("nan"),
                     "posterior": float(np.concatenate(post).mean())})
    return sorted(rows, key=lambda r: -r["n"])


@torch.no_grad()
def pair_accuracy(head, graphs) -> tuple[torch.Tensor, torch.Tensor]:
    """Per predicate (P,): annotated instances among the head's candidates, and the share whose pair's best
    foreground predicate (after the head's τ) is that predicate — the classification of given pairs, free
    of the ranking across pairs that recall@K adds."""
    from .base import adjusted_scores

    p = head.num_predicates
    hit, n = torch.zeros(p), torch.zeros(p)
    for g in graphs:
        boxes, labels = g.detections.boxes.tensor.float(), g.detections.labels
        m = len(boxes)
        cand = neighbour_pairs(boxes, **head.pair_rule)
        pos, t = pair_targets(g.pairs.pairs, g.predicate_labels, m, p)
        ck, pk = cand[:, 0] * m + cand[:, 1], pos[:, 0] * m + pos[:, 1]
        at = torch.searchsorted(ck, pk).clamp_max(max(len(ck) - 1, 0))
        ok = ck[at] == pk
        out = head(boxes, labels, cand)["rel_logits"][at[ok]]
        scores = adjusted_scores(out, head.log_prior, head.logit_adjust, getattr(head, "adjust_background", True))
        guess = scores[:, 1:].argmax(1) + 1
        n += t[ok].sum(0)
        hit += (torch.nn.functional.one_hot(guess, p).float() * t[ok]).sum(0)
    return n, hit / n.clamp_min(1)


@torch.no_grad()
def top_k_slots(head, windows, k: int = 50) -> torch.Tensor:
    """(P,) how many of the top-``k`` triplets (graph constraint: each pair's best foreground predicate,
    ranked by its score, as SGG recall ranks them) of each window name each predicate, summed over windows."""
    slots = torch.zeros(head.num_predicates)
    for g in windows:
        from sgg.structures import PairSet

        pred = head.predict(g.replace(pairs=PairSet.empty(), predicate_labels=None))
        best, arg = pred.predicate_scores[:, 1:].max(1)
        slots += torch.bincount(arg[torch.argsort(best, descending=True)[:k]] + 1, minlength=len(slots)).float()
    return slots


def main(argv=None) -> int:
    from sgg.datasets.tiling import load_scenes, read_split

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--eps", type=float, default=0.05)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--max-queries", type=int, default=2000)
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--heads", nargs="+", metavar="CKPT",
                    help="instead: per-predicate pair accuracy of these PredCls heads on the split's whole scenes, and "
                         "their top-K slots per predicate on 512-px windows; groups from --ceiling")
    ap.add_argument("--ceiling", metavar="JSON", help="--json of a training-split run: predicates with posterior "
                    "< 50 %% form the 'context' group of --heads")
    args = ap.parse_args(argv)
    graphs = [sc.graph for sc in load_scenes(args.data, read_split(args.data)[args.split])]
    if args.heads:
        return _heads_report(args, graphs)
    table = pair_table(graphs)
    rows = pair_only_ceiling(table, graphs[0].vocabulary.predicates, args.eps, args.k, args.max_queries)
    print(f"{len(graphs)} {args.split} scenes, {len(table['key'])} candidate pairs, {int(table['missed'])} annotated "
          f"pairs outside the candidates", file=sys.stderr)
    print(f"| predicate | n | twin ≤ {args.eps:g} | conflict | {args.k}-NN posterior |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['predicate']} | {r['n']} | {100 * r['twin']:.1f} | {100 * r['conflict']:.1f} | {100 * r['posterior']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


def _heads_report(args, graphs) -> int:
    from sgg.evaluation.windows import crop_graphs

    from .checkpoint import load_relation_head

    crop = crop_graphs(graphs, 512, 0.7)
    names = graphs[0].vocabulary.predicates
    post = {r["predicate"]: r["posterior"] for r in json.loads(Path(args.ceiling).read_text())} if args.ceiling else {}
    cols, rows = [], {}
    for path in args.heads:
        head = load_relation_head(path)
        n, acc = pair_accuracy(head, graphs)
        slots = top_k_slots(head, crop)
        cols.append(Path(path).stem)
        rows[cols[-1]] = (n, acc, slots)
    n = next(iter(rows.values()))[0]
    present = [i for i in range(1, len(names)) if n[i] > 0]
    ctx = [i for i in present if post.get(names[i], 1.0) < 0.5 and n[i] >= 20]
    det = [i for i in present if post.get(names[i], 0.0) >= 0.5 and n[i] >= 20]
    print("| predicate | n | " + " | ".join(f"{c} acc / top-50 slots" for c in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for i in sorted(present, key=lambda i: -float(n[i])):
        print(f"| {names[i]} | {int(n[i])} | " + " | ".join(f"{100 * rows[c][1][i]:.1f} / {int(rows[c][2][i])}" for c in cols) + " |")
    for label, group in (("all present", present), ("context (posterior < 50 %, n ≥ 20)", ctx),
                         ("pair-determined (posterior ≥ 50 %, n ≥ 20)", det)):
        if group:
            print(f"| mean, {label} | {len(group)} | " + " | ".join(f"{100 * float(rows[c][1][group].mean()):.1f}" for c in cols) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({c: {"n": r[0].tolist(), "acc": r[1].tolist(), "slots": r[2].tolist()}
                                               for c, r in rows.items()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
