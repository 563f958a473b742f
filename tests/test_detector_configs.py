"""Every shipped detector config parses through ``sgg train detector`` in the composition its header documents.

Most stage configs hold only what differs from a base (``--config base.yaml --config stage.yaml``); a key
renamed in the model or data module, or an override composed on the wrong base, fails here rather than an
hour into a training run.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import yaml

from sgg.cli import train_main

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "detector"

# composition (in order) -> a few resolved values it must give
COMPOSITIONS = {
    ("default",): {},
    ("demo",): {},
    ("mixed_ci",): {},
    ("synth_cpu",): {"trainer.max_steps": 3000, "model.pretrained": True},
    ("synth_cpu", "synth_cpu_large"): {"model.init_from": "runs/hodnet_effl0_synth_stage1.pt",
                                       "data.extra_train_dirs": ["data/synth_large"], "model.lr": 0.00015},
    ("synth_cpu", "synth_cpu_fine"): {"model.init_from": "runs/hodnet_effl0_synth_stage2.pt", "model.lr": 0.0001},
    ("synth_cpu", "synth_cpu_finetune"): {"data.rotate_any": 0.5, "trainer.max_steps": 1600},
    ("synth_cpu_detail",): {"model.init_from": "runs/hodnet_effl0_synth_fine.pt", "data.rotate_any": 0.5},
    ("synth_cpu_detail", "synth_cpu_any"): {"data.rotate_any": 0.0, "model.init_from":
                                            "runs/hodnet_effl0_synth_fine.pt"},
    ("synth_cpu_detail", "synth_cpu_turn_small"): {},
    ("synth_cpu_detail", "synth_cpu_any", "mixed_cpu_any"): {
        "model.init_from": "runs/hodnet_effl0_synth_any.pt", "data.hbb_pseudo_obb": True, "data.rotate_any": 0.0,
        "model.detector.merge_groups": [["ship", "boat"]], "data.extra_train_dirs": [
            "data/synth_large", "data/synth_fine125", "data/synth_fine25", "data/synth_any125", "data/synth_any25",
            "data/synth_any50"]},
    ("mixed_cpu",): {"data.hbb_fraction": 0.5},
    ("mixed_cpu", "mixed_cpu_stage2"): {"model.init_from": "runs/hodnet_effl0_mixed_stage1.pt"},
    ("mixed_cpu", "mixed_cpu_stage2", "mixed_cpu_stage3_pseudo"): {"model.detector.pseudo_weight": 0.3},
    ("mixed_cpu", "mixed_cpu_stage2", "mixed_cpu_stage3_rc"): {},
}


def _resolved(names: tuple[str, ...], data_dir: Path) -> dict:
    argv = ["detector"]
    for name in names:
        argv += ["--config", str(CONFIGS / f"{name}.yaml")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        train_main([*argv, "--data.data_dir", str(data_dir), "--print_config"])
    assert done.value.code in (0, None)
    return yaml.safe_load(out.getvalue())


def test_every_shipped_config_is_listed():
    listed = {name for comp in COMPOSITIONS for name in comp}
    assert listed == {p.stem for p in CONFIGS.glob("*.yaml")}


@pytest.mark.parametrize("names", list(COMPOSITIONS), ids=["+".join(c) for c in COMPOSITIONS])
def test_config_composition_parses(names, tmp_path):
    cfg = _resolved(names, tmp_path)
    for key, want in COMPOSITIONS[names].items():
        assert _get(cfg, key.split(".")) == want, key
    # the last file of a composition wins: every value it sets is the resolved value (no base overrides it back)
    # (data.data_dir is the command line's; jsonargparse fills in a class's unset init_args, hence _within)
    for key, want in _leaves(yaml.safe_load((CONFIGS / f"{names[-1]}.yaml").read_text()) or {}):
        if key == ("data", "data_dir"):
            continue
        assert _within(want, _get(cfg, key)), ".".join(key)


def _get(cfg: dict, key) -> object:
    """The value at a key path of a nested mapping."""
    for part in key:
        cfg = cfg[part]
    return cfg


def _leaves(tree: dict, prefix: tuple[str, ...] = ()):
    """(key path, value) of every non-dict value of a parsed YAML mapping."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def _within(want, got) -> bool:
    """``want`` equals ``got``, except that dicts in ``got`` may hold keys ``want`` does not give."""
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and _within(v, got[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(want) == len(got) and all(map(_within, want, got))
    return want == got
