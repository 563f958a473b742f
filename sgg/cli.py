"""The ``sgg`` command.

Sub-commands live in their stage's package (``sgg/<stage>/cli.py``) and are imported only when run, so
``sgg --help`` never imports torch. Each sub-command module exposes ``main(argv: list[str]) -> int`` and
runs behind :func:`sgg.cli_support.run_command`: one error line, exit 2 for bad input, 1 for a bug,
``--debug`` for the traceback, ``--quiet`` for no warnings. ``sgg train <stage>`` hands the rest of the
command line to Lightning's ``LightningCLI``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from importlib import import_module, util
from pathlib import Path
from typing import Any

# name -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("sgg.demo", "run the whole pipeline offline on a bundled sample scene, into ./sgg-demo/"),
    "infer": ("sgg.infer_cli", "scene graphs for rasters: GeoPackage, GraphML, caption, preview, summary"),
    "info": ("sgg.io.cli", "describe a raster: size, bands, CRS, pyramid levels and tiles"),
    "synth": ("sgg.datasets.cli", "generate synthetic STAR-vocabulary scenes (GeoTIFF + annotations)"),
    "detect": ("sgg.detectors.cli", "run holistic oriented detection over a raster"),
    "eval": ("sgg.evaluation.cli", "evaluate predictions against ground truth (e.g. `sgg eval detection`)"),
    "export": ("sgg.graph.cli", "convert a scene graph to GeoPackage, GeoJSON, GeoParquet, GraphML or JSON"),
    "train": ("sgg.cli", "train a stage with LightningCLI: `sgg train detector --config FILE`"),
    "fitrs": ("sgg.captioning.cli", "FIT-RS/SkySenseGPT text: `sgg fitrs export|score|caption|check`"),
}

# stage -> (LightningModule path, LightningDataModule path)
TRAIN_STAGES: dict[str, tuple[str, str]] = {
    "detector": ("sgg.detectors.module:DetectorModule", "sgg.datasets.datamodules:DetectorDataModule"),
    "ppg": ("sgg.pairs.module:PPGModule", "sgg.pairs.module:PPGDataModule"),
    "relation": ("sgg.relation_heads.module:RelationModule", "sgg.datasets.relation_data:RelationDataModule"),
}

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _load(path: str):
    module, _, attr = path.partition(":")
    return getattr(import_module(module), attr)


def _init_options(path: str) -> list[tuple[str, str]]:
    """(name, default) of a class's ``__init__`` parameters, read from its source without importing it
    (importing Lightning takes seconds; ``--help`` should not)."""
    module, _, cls = path.partition(":")
    spec = util.find_spec(module)
    if spec is None or not spec.origin:
        return []
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for fn in node.body:
                if isinstance(fn, ast.FunctionDef) and fn.name == "__init__":
                    args = fn.args.args[1:] + fn.args.kwonlyargs
                    defaults = [None] * (len(fn.args.args) - 1 - len(fn.args.defaults)) + list(fn.args.defaults)
                    defaults += list(fn.args.kw_defaults)
                    return [(a.arg, "required" if d is None else ast.unparse(d)) for a, d in zip(args, defaults)]
    return []


def train_help(stage: str | None = None) -> str:
    """Short help of ``sgg train [STAGE]``: the model and data options with their defaults."""
    lines = ["usage: sgg train STAGE [fit|validate|test|predict] [--config FILE] [--KEY VALUE ...]", "",
             "Train a stage with LightningCLI. Options override the YAML config, e.g. --trainer.max_steps 100.",
             "Run `sgg train STAGE --help-full` for every Lightning option.",
             "One seed per run: --seed_everything N, --model.seed N or --data.seed N (default 0) seeds Python,",
             "NumPy and torch and is the model's and the data module's seed.", "",
             "stages: " + ", ".join(TRAIN_STAGES)]
    if stage in TRAIN_STAGES:
        for prefix, path in zip(("model", "data"), TRAIN_STAGES[stage]):
            lines += ["", f"{prefix} options ({path.rsplit(':', 1)[1]}):"]
            lines += [f"  {'--' + prefix + '.' + name:<32} {default}" for name, default in _init_options(path)]
        lines += ["", "trainer options: any pytorch_lightning.Trainer argument as --trainer.NAME"]
    return "\n".join(lines)


def _option_values(argv: list[str], name: str) -> list[str]:
    """Values of ``--name V`` / ``--name=V`` in a command line, in order."""
    out = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == name]
    return out + [a.split("=", 1)[1] for a in argv if a.startswith(name + "=")]


def _check_train_paths(argv: list[str]) -> None:
    """Config files and the data directory exist before Lightning and the model load (that takes seconds)."""
    import yaml

    from sgg.cli_support import input_path
    from sgg.errors import SggInputError

    data_dir = None
    for cfg in _option_values(argv, "--config"):
        input_path(cfg, "--config")
        try:
            doc = yaml.safe_load(Path(cfg).read_text(encoding="utf-8")) or {}
        except (ValueError, yaml.YAMLError) as exc:
            raise SggInputError(f"not a valid YAML config ({' '.join(str(exc).split())})", path=cfg,
                                option="--config") from None
        data = doc.get("data") if isinstance(doc, dict) else None
        if isinstance(data, dict):
            data = data.get("init_args", data)
            data_dir = data.get("data_dir", data_dir)
    given = _option_values(argv, "--data.data_dir")
    if given:
        data_dir = given[-1]
    if isinstance(data_dir, str):
        input_path(data_dir, "--data.data_dir", kind="dir")


SEED_OPTIONS = ("--seed_everything", "--model.seed", "--data.seed")


def _seed_value(text: Any, where: str) -> int | bool:
    from sgg.cli_support import UsageError

    if isinstance(text, bool) or str(text).lower() == "true":
        if text is False:
            raise UsageError(f"{where}: sgg train always seeds its runs; give an integer")
        return True
    try:
        return int(str(text))
    except ValueError:
        raise UsageError(f"{where}: a seed is an integer, got {text!r}") from None


def run_seed(argv: list[str]) -> tuple[list[str], int | bool]:
    """One seed per ``sgg train`` run: ``--seed_everything N``, ``--model.seed N`` and ``--data.seed N`` (on
    the command line or as ``seed_everything:``/``model.seed``/``data.seed`` in a config) all name it. It seeds
    Python, NumPy and torch (Lightning's ``seed_everything``) and is handed to the model and the data module,
    whose hparams must agree. The command line wins over the configs; within the configs a model or data seed
    wins over ``seed_everything``; two different values at the same level are an error; none at all: 0.
    ``true`` draws a fresh seed from the OS (Lightning's own ``seed_everything()`` falls back to 0), printed
    to stderr and saved in the run's ``config.yaml`` like any other, so the run can be repeated.
    Returns the command line with its seed options replaced by one ``--seed_everything`` and the seed."""
    import yaml

    from sgg.cli_support import UsageError

    given, rest, i = [], [], 0
    while i < len(argv):
        name, eq, value = argv[i].partition("=")
        if name in SEED_OPTIONS:
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"{name} needs a value")
                i, value = i + 1, argv[i + 1]
            given.append((name, _seed_value(value, name)))
        else:
            rest.append(argv[i])
        i += 1
    if not given:  # the configs' seeds (later files override earlier ones, as in LightningCLI)
        found: dict[str, Any] = {}
        for cfg in _option_values(argv, "--config"):
            doc = yaml.safe_load(Path(cfg).read_text(encoding="utf-8")) or {}
            if not isinstance(doc, dict):
                continue
            if "seed_everything" in doc:
                found["seed_everything"] = doc["seed_everything"]
            for part in ("model", "data"):
                sec = doc.get(part)
                sec = sec.get("init_args", sec) if isinstance(sec, dict) else None
                if isinstance(sec, dict) and "seed" in sec:
                    found[f"{part}.seed"] = sec["seed"]
        specific = [(k, _seed_value(v, f"{k} in --config")) for k, v in found.items() if k != "seed_everything"]
        given = specific or [("seed_everything", _seed_value(found.get("seed_everything", 0), "seed_everything"))]
    if len({v for _, v in given}) > 1:
        raise UsageError("a run has one seed, got " + ", ".join(f"{k} {v}" for k, v in given))
    seed = given[0][1]
    if seed is True:
        import secrets

        seed = secrets.randbelow(2**31)
        print(f"sgg train: seed_everything true: drew seed {seed}", file=sys.stderr)
    return [*rest, f"--seed_everything={seed}"], seed


def train_main(argv: list[str]) -> int:
    """``sgg train STAGE [LightningCLI arguments]``."""
    from sgg.cli_support import GLOBAL, UsageError

    if GLOBAL["quiet"] or "--quiet" in argv or "-q" in argv:  # Lightning's info lines (seed, devices, tips) too
        import logging

        for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
    argv = [a for a in argv if a not in ("--debug", "--quiet", "-q")]
    if not argv or argv[0] in ("-h", "--help"):
        print(train_help())
        return 0
    stage, rest = argv[0], argv[1:]
    if stage not in TRAIN_STAGES:
        raise UsageError(f"unknown stage {stage!r}; choose from {', '.join(TRAIN_STAGES)}")
    if any(a in ("-h", "--help") for a in rest):
        print(train_help(stage))
        return 0
    rest = ["--help" if a == "--help-full" else a for a in rest]
    _check_train_paths(rest)
    from pytorch_lightning.cli import LightningCLI

    model_cls, dm_cls = (_load(p) for p in TRAIN_STAGES[stage])
    args = rest if rest and rest[0] in LIGHTNING_SUBCOMMANDS else ["fit", *rest]
    import inspect

    seeded = [part for part, c in (("model", model_cls), ("data", dm_cls))
              if "seed" in inspect.signature(c.__init__).parameters]
    if seeded:
        args, _ = run_seed(args)

    class SggCLI(LightningCLI):
        def before_instantiate_classes(self) -> None:
            # the run's one seed (run_seed), drawn by Lightning when it is `true`, goes to the model and the
            # data module: Lightning refuses hparams that disagree between the two
            cfg = self.config[self.subcommand] if self.subcommand else self.config
            for part in seeded:
                cfg[f"{part}.seed"] = int(cfg["seed_everything"])

    saved, sys.argv = sys.argv, [f"sgg train {stage}"]  # args= is the command line; LightningCLI warns on both
    try:
        SggCLI(model_cls, dm_cls, args=args, save_config_kwargs={"overwrite": True},
               parser_kwargs={"exit_on_error": "--help" in args})
    except argparse.ArgumentError as exc:
        raise UsageError(f"{exc} (see `sgg train {stage} --help`)") from None
    finally:
        sys.argv = saved
    return 0


def _parser() -> argparse.ArgumentParser:
    from sgg import __version__

    width = max(map(len, COMMANDS)) + 2
    parser = argparse.ArgumentParser(
        prog="sgg",
        usage="sgg [--version] [--debug] [--quiet] COMMAND [options]",
        description="Scene graph generation for large very-high-resolution satellite imagery.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {n:<{width}}{h}" for n, (_, h) in COMMANDS.items())
        + "\n\nRun `sgg COMMAND --help` for a command's options. Exit status: 0 done, 1 internal error, "
        "2 bad input or options, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"sgg {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    parser.add_argument("--quiet", "-q", action="store_true", help="no warnings, progress or summary")
    return parser


def main(argv: list[str] | None = None) -> int:
    from sgg.cli_support import run_command

    argv = list(sys.argv[1:] if argv is None else argv)
    flags = []
    while argv and argv[0] in ("--debug", "--quiet", "-q"):  # global flags go on to the sub-command
        flags.append(argv.pop(0))
    if not argv or argv[0] in ("-h", "--help", "--version"):
        parser = _parser()
        try:
            parser.parse_args(argv[:1])
        except SystemExit as exc:
            return int(exc.code or 0)
        parser.print_help()
        return 0
    command, rest = argv[0], argv[1:]
    debug, quiet = "--debug" in flags, bool({"--quiet", "-q"} & set(flags))
    if command not in COMMANDS:
        close = [c for c in COMMANDS if c.startswith(command[:2])]
        print(f"sgg: error: unknown command {command!r}"
              + (f" (did you mean {', '.join(close)}?)" if close else f"; choose from {', '.join(COMMANDS)}"),
              file=sys.stderr)
        return 2
    if command == "train":
        return run_command(command, train_main, rest, debug=debug, quiet=quiet)
    return run_command(command, lambda a: import_module(COMMANDS[command][0]).main(a), rest, debug=debug,
                       quiet=quiet)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
