"""``sgg fitrs export|score|caption|check``: FIT-RS text from scene graphs, and scores for model answers.

* ``sgg fitrs export GRAPH… --out DIR [--questions] [--rsrc]``: 512-px crops and LLaVA instruction records
  (``instructions.json``), optionally the evaluation questions (``questions.jsonl``) and the FIT-RSRC
  CircularEval questions (``rsrc_questions.jsonl``);
* ``sgg fitrs score ANSWERS.jsonl [--mode faithful|clean|both]``: FIT-RSFG metrics (or CircularEval accuracy
  for RSRC records);
* ``sgg fitrs caption GRAPH [--backend template|openai] [--check]``: a caption (and its faithfulness report);
* ``sgg fitrs check GRAPH --text FILE``: which objects, counts and relations a text asserts that the graph
  does or does not support.

GRAPH is any file ``sgg.graph.read`` opens; DOTA ``.txt`` labels are mapped to STAR names (``--aliases``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read_graph(path: str, aliases: str = "dota_to_star"):
    """A SceneGraph from any sgg graph file; DOTA label files through the alias table."""
    p = Path(path)
    if p.suffix.lower() == ".txt":
        from sgg.datasets import read_dota_labels

        return read_dota_labels(p, aliases=None if aliases == "none" else aliases)
    from sgg.graph import read

    return read(p)


def build_parser() -> argparse.ArgumentParser:
    from sgg.cli_support import ArgumentParser, float_range, int_range

    p = ArgumentParser(prog="sgg fitrs", description="SkySenseGPT / FIT-RS text from scene graphs, and scores.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=ArgumentParser)
    pos, count = int_range(1), int_range(0)

    e = sub.add_parser("export", help="512-px crops and LLaVA-style instruction records")
    e.add_argument("graphs", nargs="+", metavar="GRAPH")
    e.add_argument("--out", "-o", required=True, help="output directory")
    e.add_argument("--image", action="append", help="image of each GRAPH, in order (default: the graph's image path)")
    e.add_argument("--crop", type=int_range(16), default=512)
    e.add_argument("--gap", type=count, default=100, help="overlap between crops in px")
    e.add_argument("--seed", type=count, default=0)
    e.add_argument("--top-k", type=pos, default=None, help="predictions: keep the K best triplets")
    e.add_argument("--min-score", type=float_range(0.0), default=None, help="predictions: drop triplets scoring below")
    e.add_argument("--no-images", action="store_true", help="write the records only, not the crops")
    e.add_argument("--questions", action="store_true", help="also write questions.jsonl (FIT-RSFG evaluation set)")
    e.add_argument("--rsrc", action="store_true", help="also write rsrc_questions.jsonl (FIT-RSRC, CircularEval)")
    e.add_argument("--aliases", default="dota_to_star", help="class aliases for DOTA .txt labels ('none' to keep)")

    s = sub.add_parser("score", help="score model answers (FIT-RSFG tasks or FIT-RSRC CircularEval)")
    s.add_argument("answers", metavar="ANSWERS", help="JSONL with category, ground_truth and answer")
    s.add_argument("--mode", choices=("faithful", "clean", "both"), default="both")
    s.add_argument("--json", dest="json_out", help="also write the full result as JSON here")
    s.add_argument("--match-option-text", action="store_true", help="RSRC: also accept the right option's text")

    c = sub.add_parser("caption", help="describe a scene graph in English")
    c.add_argument("graph", metavar="GRAPH")
    c.add_argument("--backend", choices=("template", "openai"), default="template")
    c.add_argument("--url", help="OpenAI-compatible base URL (default: $SGG_LLM_URL)")
    c.add_argument("--model", help="model name (default: $SGG_LLM_MODEL)")
    c.add_argument("--timeout", type=float_range(0.0, lo_open=True), default=60.0)
    c.add_argument("--top-k", type=pos, default=100, help="predictions: relations considered")
    c.add_argument("--check", action="store_true", help="also print the caption's faithfulness report")
    c.add_argument("--aliases", default="dota_to_star")

    k = sub.add_parser("check", help="faithfulness of a text to a scene graph")
    k.add_argument("graph", metavar="GRAPH")
    k.add_argument("--text", required=True, help="file with the text ('-' for standard input)")
    k.add_argument("--top-k", type=pos, default=None)
    k.add_argument("--json", dest="json_out", action="store_true", help="print the full report as JSON")
    k.add_argument("--aliases", default="dota_to_star")
    return p


def _export(args) -> int:
    from sgg.cli_support import UsageError, input_path, output_dir

    from .export import export_instructions

    images = args.image or []
    if images and len(images) != len(args.graphs):
        raise UsageError(f"--image: {len(images)} given for {len(args.graphs)} graphs")
    if args.gap >= args.crop:
        raise UsageError(f"--gap {args.gap} must be smaller than --crop {args.crop}")
    for g in args.graphs:
        input_path(g, "GRAPH")
    for im in images:
        input_path(im, "--image")
    output_dir(args.out, "--out")
    scenes = [(read_graph(g, args.aliases), images[i] if images else None) for i, g in enumerate(args.graphs)]
    res = export_instructions(scenes, args.out, crop=args.crop, gap=args.gap, seed=args.seed, top_k=args.top_k,
                              min_score=args.min_score, write_images=not args.no_images, questions=args.questions)
    if args.rsrc:
        from .export import export_rsrc

        res["rsrc_questions"] = export_rsrc(scenes, args.out, crop=args.crop, gap=args.gap, seed=args.seed,
                                            top_k=args.top_k, min_score=args.min_score)
    print(json.dumps(res))
    return 0


def _score(args) -> int:
    from sgg.cli_support import input_path, output_file

    from .export import read_jsonl

    input_path(args.answers, "ANSWERS")
    if args.json_out:
        output_file(args.json_out, "--json", suffixes=(".json",), inputs=[args.answers])
    from .rsrc import CATEGORIES, score_rsrc
    from .scorers import format_scores, score_answers

    recs = read_jsonl(args.answers)
    rsrc = [r for r in recs if str(r.get("category", "")).lower() in CATEGORIES]
    fit = [r for r in recs if str(r.get("category", "")).lower() not in CATEGORIES]
    out = {}
    if rsrc:
        out["rsrc"] = score_rsrc(rsrc, match_option_text=args.match_option_text)
        r = out["rsrc"]
        print(f"FIT-RSRC CircularEval accuracy {r['accuracy']:.4f} ({r['correct']}/{r['total']}); " + ", ".join(
            f"{c} {v['accuracy']:.4f}" for c, v in r["per_category"].items() if v["total"]))
    if fit:
        for mode in (("faithful", "clean") if args.mode == "both" else (args.mode,)):
            out[mode] = score_answers(fit, mode)
            print(format_scores(out[mode]))
    if args.json_out:
        from sgg.io.atomic import atomic_write_text

        atomic_write_text(args.json_out, json.dumps(out, indent=1, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.cmd == "export":
        return _export(args)
    if args.cmd == "score":
        return _score(args)
    from sgg.cli_support import input_path

    from .faithfulness import check_faithfulness, format_report

    input_path(args.graph, "GRAPH")
    if args.cmd == "check" and args.text != "-":
        input_path(args.text, "--text")
    graph = read_graph(args.graph, args.aliases)
    if args.cmd == "caption":
        from .realiser import caption

        kw = {"top_k": args.top_k}
        if args.backend == "openai":
            kw.update(url=args.url, model=args.model, timeout=args.timeout)
        text = caption(graph, args.backend, **kw)
        print(text)
        if args.check:
            print(format_report(check_faithfulness(text, graph, top_k=args.top_k)))
        return 0
    text = sys.stdin.read() if args.text == "-" else Path(args.text).read_text(encoding="utf-8")
    rep = check_faithfulness(text, graph, top_k=args.top_k)
    print(json.dumps(rep, indent=1) if args.json_out else format_report(rep))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
