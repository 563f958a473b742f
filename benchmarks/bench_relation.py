"""RPCM forward memory and time: sparse relation–relation messaging (ours) against a dense variant.

The dense variant replaces :func:`sgg.relation_heads.shared_object_mean` with STAR's formulation: an
(M, M) relation–relation adjacency (relations sharing the subject / the object) multiplied with the
messages — same numbers (checked here on a small graph), O(M²) memory. Each measurement runs in its own
subprocess so that its peak RSS (``ru_maxrss``) is its own; printed is the peak RSS growth during the
forward pass (inputs and model already built), for inference (``no_grad``) and for a training step
(forward + backward).

    /work/venv/bin/python benchmarks/bench_relation.py [--objects 2000] [--pairs 10000] [--hidden 128]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch


def dense_shared_object_mean(m: torch.Tensor, pairs: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """STAR-style dense relation–relation aggregation: (M, M) adjacency matrices."""
    s, o = pairs[:, 0], pairs[:, 1]
    inc = torch.zeros(len(pairs), n, dtype=m.dtype)
    idx = torch.arange(len(pairs))
    inc[idx, s] = 1
    inc[idx, o] = 1  # (M, N): which objects each relation touches
    out = []
    for end in (s, o):
        adj = inc[:, end].t().contiguous()  # (M, M): relation q touches the subject (object) of relation r
        adj.fill_diagonal_(0)
        out.append(adj @ m / adj.sum(1, keepdim=True).clamp_min(1))
        del adj
    return out[0], out[1]


def scene(n: int, m: int, seed: int = 0):
    from sgg.relation_heads import neighbour_pairs

    g = torch.Generator().manual_seed(seed)
    side = 40.0 * n ** 0.5  # about one object per 40 × 40 px
    boxes = torch.cat([torch.rand(n, 2, generator=g) * side, 8 + torch.rand(n, 2, generator=g) * 24,
                       torch.rand(n, 1, generator=g) * 3 - 1.5], 1)
    pairs = neighbour_pairs(boxes, k=12)
    pairs = pairs[torch.randperm(len(pairs), generator=g)[:m]]
    if len(pairs) < m:
        extra = torch.randint(0, n, (m - len(pairs), 2), generator=g)
        extra[:, 1] = (extra[:, 0] + 1 + extra[:, 1] % (n - 1)) % n
        pairs = torch.cat([pairs, extra])
    return boxes, torch.randint(0, 48, (n,), generator=g), pairs


def child(args) -> dict:
    from sgg.relation_heads import RPCM, models

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    boxes, labels, pairs = scene(args.objects, args.pairs)
    if args.variant == "dense":
        models._Step.context = staticmethod(dense_shared_object_mean)
    head = RPCM(hidden=args.hidden, steps=args.steps)
    with torch.no_grad():  # warm-up on a small graph: allocator and kernels
        head(boxes[:50], labels[:50], pairs[(pairs < 50).all(1)])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    if args.train:
        out = head(boxes, labels, pairs)
        out["rel_logits"].logsumexp(1).mean().backward()
    else:
        with torch.no_grad():
            out = head(boxes, labels, pairs)
    dt = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"variant": args.variant, "train": args.train, "mb": (peak - base) / 1024, "seconds": dt,
            "logit_sum": float(out["rel_logits"].double().sum())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", type=int, default=2000)
    p.add_argument("--pairs", type=int, default=10000)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variants", nargs="+", default=["sparse", "dense"])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="sparse", help=argparse.SUPPRESS)
    p.add_argument("--train", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return 0
    # same numbers from both aggregations on a small graph
    from sgg.relation_heads import shared_object_mean

    _, _, pr = scene(60, 300, seed=1)
    msg = torch.randn(len(pr), 8)
    for x, y in zip(shared_object_mean(msg, pr, 60), dense_shared_object_mean(msg, pr, 60)):
        assert torch.allclose(x, y, atol=1e-5), "dense and sparse aggregation disagree"
    print(f"RPCM forward, {args.objects} objects, {args.pairs} pairs, hidden {args.hidden}, {args.steps} steps, "
          f"{args.threads} thread(s); peak RSS growth during the pass")
    print(f"{'variant':<8} {'pass':<10} {'MB':>9} {'seconds':>9}")
    sums = {}
    for train in (False, True):
        for v in args.variants:
            cmd = [sys.executable, __file__, "--child", "--variant", v, "--objects", str(args.objects), "--pairs",
                   str(args.pairs), "--hidden", str(args.hidden), "--steps", str(args.steps), "--threads", str(args.threads)]
            r = subprocess.run(cmd + (["--train"] if train else []), capture_output=True, text=True, check=False)
            if r.returncode:
                print(f"{v:<8} {'train' if train else 'inference':<10} failed: {r.stderr.strip().splitlines()[-1:]}")
                continue
            res = json.loads(r.stdout.strip().splitlines()[-1])
            sums.setdefault(train, []).append(res["logit_sum"])
            print(f"{v:<8} {'train' if train else 'inference':<10} {res['mb']:>9.1f} {res['seconds']:>9.2f}")
    for train, vals in sums.items():
        if len(vals) > 1 and abs(vals[0] - vals[1]) > 1e-3 * max(1.0, abs(vals[0])):
            print(f"warning: variants' outputs differ ({vals})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
