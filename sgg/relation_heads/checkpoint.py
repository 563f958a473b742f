"""Relation-head checkpoints: ``{"format", "version", "kind", "config", "vocabulary", "state_dict"}``.

Plain containers and tensors only, so ``torch.load(..., weights_only=True)`` reads them; parameters may be
stored in fp16 (``half=True``, what ``weights/`` ships) and are cast back to fp32 on load. Buffers (the
frequency prior's counts) stay fp32: counts exceed fp16's range.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from sgg.errors import SggInputError
from sgg.io.atomic import atomic_paths
from sgg.structures import Vocabulary

FORMAT = "sgg-relation-head"
VERSION = 1


def head_classes() -> dict[str, type]:
    from .frequency import FrequencyPrior
    from .models import HEADS

    return {**HEADS, "freq": FrequencyPrior}


def build_head(kind: str, vocabulary: Vocabulary | dict | None = None, **config: Any):
    """A fresh head of ``kind`` (``rpcm``, ``mlp`` or ``freq``)."""
    classes = head_classes()
    if kind not in classes:
        raise SggInputError(f"unknown relation head {kind!r}; choose from {', '.join(classes)}")
    return classes[kind](vocabulary, **config)


def head_to_dict(head, half: bool = False) -> dict[str, Any]:
    buffers = {name for name, _ in head.named_buffers()}
    state = {}
    for k, v in head.state_dict().items():
        v = v.detach().cpu()
        state[k] = v.half() if half and v.is_floating_point() and k not in buffers else v.clone()
    return {"format": FORMAT, "version": VERSION, "kind": head.kind, "config": dict(head.config),
            "vocabulary": head.vocabulary.to_dict(), "state_dict": state}


def save_relation_head(head, path: str | os.PathLike, half: bool = False) -> Path:
    """Write ``head`` atomically (:func:`sgg.io.atomic.atomic_paths`: temporary file beside it, then rename)."""
    path = Path(path)
    with atomic_paths(path) as (tmp,):
        torch.save(head_to_dict(head, half), tmp)
    return path


def head_from_dict(data: Any, path: Any = "<memory>"):
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SggInputError("not a relation-head checkpoint (format key missing)", path=path)
    if int(data.get("version", 0)) > VERSION:
        raise SggInputError(f"checkpoint version {data.get('version')} is newer than this sgg reads ({VERSION})", path=path)
    try:
        vocab = Vocabulary.from_dict(data["vocabulary"])
        config = dict(data["config"])
        head = build_head(data["kind"], vocab, **config)
        state = {k: v.float() if v.is_floating_point() else v for k, v in data["state_dict"].items()}
        state.setdefault("log_prior", head.log_prior)  # checkpoints written before the prior existed
        head.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise SggInputError(f"cannot rebuild the relation head ({exc})", path=path) from None
    return head.eval()


def set_ranking(path: str | os.PathLike, out: str | os.PathLike | None = None, **settings: Any) -> Path:
    """Store inference settings (``logit_adjust``, ``adjust_background``, ``count_norm``) in a checkpoint's
    config, every weight kept bit for bit; written to ``out`` (default: in place, atomically)."""
    allowed = {"logit_adjust": float, "adjust_background": bool, "count_norm": float}
    bad = sorted(set(settings) - set(allowed))
    if bad:
        raise SggInputError(f"set_ranking: unknown setting(s) {bad}; choose from {sorted(allowed)}", path=path)
    path = Path(path)
    data = _read(path)
    head_from_dict(data, path)  # refuses a non-checkpoint with a clear message
    data["config"] = {**data["config"], **{k: allowed[k](v) for k, v in settings.items()}}
    head_from_dict(data, path)  # the new settings must rebuild (e.g. count_norm >= 0)
    out = Path(out) if out is not None else path
    with atomic_paths(out) as (tmp,):
        torch.save(data, tmp)
    return out


def load_relation_head(path: str | os.PathLike):
    """The head stored at ``path`` (eval mode), with ``.vocabulary`` and ``.predict(graph)``."""
    path = Path(path)
    return head_from_dict(_read(path), path)


def _read(path: Path) -> Any:
    """The checkpoint dict at ``path`` (a Lightning file's ``relation_head`` entry), or a clear error."""
    if not path.is_file():
        raise SggInputError("relation-head checkpoint not found", path=path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises pickle, zip, EOF and Runtime errors alike
        raise SggInputError(f"cannot read checkpoint ({type(exc).__name__}: {exc})", path=path) from None
    if isinstance(data, dict) and "state_dict" in data and "format" not in data and "relation_head" in data:
        data = data["relation_head"]
    return data
