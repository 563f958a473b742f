"""The ``sgg`` command.

Sub-commands live in their stage's package (``sgg/<stage>/cli.py``) and are imported only when run, so
``sgg --help`` never imports torch. Each sub-command module exposes ``main(argv: list[str]) -> int``.
``sgg train <stage>`` hands the rest of the command line to Lightning's ``LightningCLI``.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

# name -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("sgg.io.cli", "describe a raster: size, bands, CRS, pyramid levels and tiles"),
    "synth": ("sgg.datasets.cli", "generate synthetic STAR-vocabulary scenes (GeoTIFF + annotations)"),
    "detect": ("sgg.detectors.cli", "run holistic oriented detection over a raster"),
    "eval": ("sgg.evaluation.cli", "evaluate predictions against ground truth (e.g. `sgg eval detection`)"),
    "export": ("sgg.graph.cli", "convert a scene graph to GeoPackage, GeoJSON, GeoParquet, GraphML or JSON"),
    "train": ("sgg.cli", "train a stage with LightningCLI: `sgg train detector --config FILE`"),
}

# stage -> (LightningModule path, LightningDataModule path)
TRAIN_STAGES: dict[str, tuple[str, str]] = {
    "detector": ("sgg.detectors.module:DetectorModule", "sgg.datasets.datamodules:DetectorDataModule"),
}


def _load(path: str):
    module, _, attr = path.partition(":")
    return getattr(import_module(module), attr)


def train_main(argv: list[str]) -> int:
    """``sgg train STAGE [LightningCLI arguments]``."""
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: sgg train STAGE [--config FILE] [fit|validate|test ...]\n\nstages: " + ", ".join(TRAIN_STAGES))
        return 0
    stage, rest = argv[0], argv[1:]
    if stage not in TRAIN_STAGES:
        print(f"sgg train: unknown stage {stage!r}; choose from {', '.join(TRAIN_STAGES)}", file=sys.stderr)
        return 2
    from pytorch_lightning.cli import LightningCLI

    model_cls, dm_cls = (_load(p) for p in TRAIN_STAGES[stage])
    if rest and not rest[0].startswith("-") and rest[0] in ("fit", "validate", "test", "predict"):
        args = rest
    else:  # default sub-command: fit
        args = ["fit", *rest]
    import inspect

    both_seeded = all("seed" in inspect.signature(c.__init__).parameters for c in (model_cls, dm_cls))

    class SggCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            # one seed for data and model: Lightning refuses hparams that disagree between the two
            if both_seeded:
                parser.link_arguments("data.seed", "model.seed")

    saved, sys.argv = sys.argv, [f"sgg train {stage}"]  # args= is the command line; LightningCLI warns on both
    try:
        SggCLI(model_cls, dm_cls, args=args, save_config_kwargs={"overwrite": True})
    finally:
        sys.argv = saved
    return 0


def main(argv: list[str] | None = None) -> int:
    from sgg import __version__

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="sgg",
        description="Scene graph generation for large very-high-resolution satellite imagery.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {n:<8} {h}" for n, (_, h) in COMMANDS.items())
        + "\n\nRun `sgg COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"sgg {__version__}")
    parser.add_argument("command", nargs="?", choices=list(COMMANDS), metavar="COMMAND")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv[:1]) if argv and not argv[0].startswith("-") else parser.parse_args(argv)
    if ns.command is None:
        parser.print_help()
        return 0
    rest = argv[1:]
    if ns.command == "train":
        return train_main(rest)
    from sgg.errors import SggInputError

    try:
        module = import_module(COMMANDS[ns.command][0])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("sgg"):
            print(f"sgg {ns.command}: not available in this build ({exc.name} missing)", file=sys.stderr)
            return 2
        raise
    try:
        return int(module.main(rest) or 0)
    except SggInputError as exc:
        print(f"sgg {ns.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
