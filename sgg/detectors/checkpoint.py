"""Detector checkpoints that carry their vocabulary and architecture (DESIGN.md §5.2).

``save_detector`` writes ``{"format", "version", "vocabulary", "config", "state_dict"}`` atomically
(optionally as fp16 to halve the file). ``load_detector`` reads it — or a Lightning ``.ckpt`` written by
``DetectorModule`` — with ``torch.load(weights_only=True)``, and refuses a checkpoint made for another
vocabulary or architecture with a message that says which.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from sgg.errors import SggInputError
from sgg.io.atomic import atomic_paths
from sgg.structures import Vocabulary

from .hodnet import ARCHITECTURE_KEYS, HODNet, resolve_config

FORMAT = "sgg-detector"
VERSION = 1


def _vocab(v: Vocabulary | dict | list | tuple | None) -> Vocabulary | None:
    if v is None or isinstance(v, Vocabulary):
        return v
    if isinstance(v, dict):
        return Vocabulary.from_dict(v)
    return Vocabulary(tuple(v), ())


def save_detector(model: HODNet, path: str | os.PathLike, vocabulary: Vocabulary | list[str],
                  config: dict[str, Any] | None = None, half: bool = False,
                  inference: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights with its vocabulary and config; ``half=True`` stores floats as fp16.

    ``inference``: defaults for ``detect_scene`` such as ``{"tile_size": 512, "overlap": 128}`` (the
    training tile size); taken from ``model.inference`` when not given.
    """
    vocab = _vocab(vocabulary)
    cfg = dict(config if config is not None else model.config)
    cfg["pretrained"], cfg["weights_path"] = False, None  # the state dict holds the weights
    if vocab.num_classes != int(cfg["num_classes"]):
        raise SggInputError(f"vocabulary has {vocab.num_classes} classes but the model {cfg['num_classes']}", path=path)
    sd = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
          for k, v in model.state_dict().items()}
    hint = dict(inference if inference is not None else getattr(model, "inference", None) or {})
    payload = {"format": FORMAT, "version": VERSION, "vocabulary": vocab.to_dict(), "config": cfg, "state_dict": sd,
               "inference": hint}
    path = Path(path)
    with atomic_paths(path) as (tmp,):  # stale parts of a killed run are removed; a failure leaves nothing
        torch.save(payload, tmp)
    return path


_ZIP, _PICKLE = b"PK\x03\x04", (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def _load_file(path: Path, map_location: Any) -> Any:
    """``torch.load(weights_only=True)`` with messages that say what is wrong with the file."""
    if not path.exists():
        raise SggInputError("detector checkpoint not found", path=path)
    if not path.is_file():
        raise SggInputError("is a directory, expected a detector checkpoint file (.pt or .ckpt)", path=path)
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        raise SggInputError("checkpoint file is empty (0 bytes): an interrupted download or copy?", path=path)
    if not (head.startswith(_ZIP) or head[:2] in _PICKLE):
        kind = "a text file" if all(32 <= b < 127 or b in (9, 10, 13) for b in head) else "binary data"
        raise SggInputError(f"not a PyTorch checkpoint (starts like {kind}, not a torch.save zip archive)", path=path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except RuntimeError as exc:
        text = str(exc)
        if "device" in text.lower() or "cuda" in text.lower():
            raise SggInputError(f"cannot load onto device {map_location!r}: {text.splitlines()[0][:200]}",
                                path=path) from None
        if "zip" in text.lower() or "central directory" in text.lower():
            raise SggInputError("checkpoint file is truncated or corrupt (its zip archive is incomplete)",
                                path=path) from None
        raise SggInputError(f"cannot read detector checkpoint: {text.splitlines()[0][:200]}", path=path) from None
    except Exception as exc:  # noqa: BLE001 - unpickling refused or broken: a user-file problem
        what = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if "weights_only" in str(exc):
            what = "it holds Python objects that are not plain tensors/containers (refused for safety)"
        raise SggInputError(f"cannot read detector checkpoint: {what}", path=path) from None


def _read(path: str | os.PathLike, map_location: Any = "cpu") -> tuple[Vocabulary, dict, dict, dict]:
    """(vocabulary, config, state dict, inference hints) from a detector file or a DetectorModule ``.ckpt``."""
    path = Path(path)
    ck = _load_file(path, map_location)
    if not isinstance(ck, dict):
        raise SggInputError("not a detector checkpoint", path=path)
    if ck.get("format") == FORMAT:
        meta, sd = ck, ck["state_dict"]
    elif "sgg_detector" in ck and "state_dict" in ck:  # Lightning checkpoint of DetectorModule
        meta = ck["sgg_detector"]
        sd = {k[len("model."):]: v for k, v in ck["state_dict"].items() if k.startswith("model.")}
    else:
        raise SggInputError("not an sgg detector checkpoint (no vocabulary/config inside)", path=path)
    return Vocabulary.from_dict(meta["vocabulary"]), dict(meta["config"]), sd, dict(meta.get("inference") or {})


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> tuple[Vocabulary, dict, dict]:
    """(vocabulary, config, model state dict) from an sgg detector file or a DetectorModule ``.ckpt``."""
    return _read(path, map_location)[:3]


def load_detector(path: str | os.PathLike, vocabulary: Vocabulary | list[str] | None = None,
                  map_location: Any = "cpu", config: dict[str, Any] | None = None,
                  box_passes: int | None = None) -> HODNet:
    """Rebuild the detector of a checkpoint (in eval mode, float32, ``model.vocabulary`` set).

    ``vocabulary`` / ``config``: what the caller expects; a checkpoint that disagrees on the class names or
    on an architecture key (backbone, channels, anchors, classes) is refused, naming the difference.
    A checkpoint that does not record the ``gsd_range`` it was trained on is loaded with one warning
    naming it (``detect_scene`` can then neither match the raster's GSD to it nor warn about a mismatch).
    ``box_passes``: passes of the RoI box head at inference (``HODNet`` config), instead of the checkpoint's.
    """
    vocab, cfg, sd, hint = _read(path, map_location)
    if not (cfg.get("gsd_range") or hint.get("gsd_range")):
        import warnings

        warnings.warn(f"{path}: the detector checkpoint records no gsd_range (the metres per pixel it was trained "
                      "at): rasters of any GSD are detected at full resolution, unchecked; re-save it with "
                      "sgg.detectors.checkpoint.set_gsd_range(path, min, max)", stacklevel=2)
    want = _vocab(vocabulary)
    if want is not None and tuple(want.objects) != tuple(vocab.objects):
        missing = [c for c in want.objects if c not in vocab.objects][:5]
        extra = [c for c in vocab.objects if c not in want.objects][:5]
        why = f"missing {missing}, extra {extra}" if missing or extra else "same names in another order"
        raise SggInputError(
            f"checkpoint was trained for another vocabulary ({vocab.num_classes} classes vs {want.num_classes} "
            f"expected; {why})", path=path)
    if config:
        exp = resolve_config(config)
        for k in ARCHITECTURE_KEYS:
            if k in config and exp[k] != cfg.get(k):
                raise SggInputError(f"checkpoint architecture differs: {k} is {cfg.get(k)!r}, expected {exp[k]!r}",
                                    path=path)
    cfg["pretrained"], cfg["weights_path"] = False, None
    if box_passes is not None:
        cfg["box_passes"] = _passes(box_passes, path)
    try:
        model = HODNet(cfg, vocabulary=vocab, inference=hint)
    except SggInputError as exc:
        raise SggInputError(f"checkpoint config is invalid: {exc}", path=path) from None
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise SggInputError(f"weights do not fit the {cfg['backbone']} architecture: {str(exc)[:300]}", path=path) from None
    return model.eval()


def _update_config(path: Path, changes: dict[str, Any], out: str | os.PathLike | None) -> Path:
    """Write ``changes`` into a detector file's (or DetectorModule ``.ckpt``'s) config, everything else as read."""
    ck = _load_file(path, "cpu")
    meta = ck if isinstance(ck, dict) and ck.get("format") == FORMAT else (
        ck.get("sgg_detector") if isinstance(ck, dict) else None)
    if not isinstance(meta, dict) or "config" not in meta:
        raise SggInputError("not an sgg detector checkpoint (no vocabulary/config inside)", path=path)
    meta["config"] = {**meta["config"], **changes}
    target = Path(out) if out is not None else path
    with atomic_paths(target) as (tmp,):
        torch.save(ck, tmp)
    return target


def set_gsd_range(path: str | os.PathLike, lo: float, hi: float, out: str | os.PathLike | None = None) -> Path:
    """Record the training ``gsd_range`` [lo, hi] (m/px) in a detector file or DetectorModule ``.ckpt``.

    Everything else is written back as read (the weights bit for bit); ``out`` defaults to ``path``
    (replaced atomically). The file must load with ``weights_only=True``, as every sgg checkpoint does.
    """
    path = Path(path)
    lo, hi = float(lo), float(hi)
    if not 0 < lo <= hi:
        raise SggInputError(f"gsd_range must be 0 < min <= max metres per pixel, got [{lo}, {hi}]", path=path)
    return _update_config(path, {"gsd_range": [lo, hi]}, out)


def set_box_passes(path: str | os.PathLike, passes: int, out: str | os.PathLike | None = None) -> Path:
    """Record how many passes of the RoI box head (iterative box regression) the weights run at inference.

    As :func:`set_gsd_range`: the weights are kept bit for bit and ``out`` defaults to ``path``.
    """
    path = Path(path)
    return _update_config(path, {"box_passes": _passes(passes, path)}, out)


def _passes(value: Any, path: Any) -> int:
    """``value`` as a number of box passes (a whole number ≥ 1), else an error naming ``path``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < 1:
        raise SggInputError(f"box_passes must be a whole number of at least 1, got {value!r}", path=path)
    return int(value)


def average_detectors(paths: list[str | os.PathLike], out: str | os.PathLike, coefs: list[float] | None = None,
                      keep_mismatched: bool = False, half: bool = True) -> Path:
    """Write the weighted average of detector checkpoints' weights to ``out`` (a "model soup").

    Averaging the weights of runs fine-tuned from one start (Wortsman et al. 2022, model soups) removes much
    of their seed-to-seed spread; interpolating a fine-tuned model with the one it started from (WiSE-FT)
    trades between them. ``coefs`` (default uniform) must be non-negative and are normalised to sum to 1.
    Vocabularies must be identical. The first file is the base: its config, vocabulary and inference hints
    are written, and integer buffers (BatchNorm's batch counts) are taken from it. A tensor whose shape
    differs between files (an RPN with other anchor ratios) is refused, or with ``keep_mismatched`` taken
    from the base alone.
    """
    if len(paths) < 2:
        raise SggInputError("averaging needs at least two detector checkpoints", path=out)
    coefs = [1.0] * len(paths) if coefs is None else [float(c) for c in coefs]
    if len(coefs) != len(paths) or min(coefs) < 0 or sum(coefs) <= 0:
        raise SggInputError(f"need one non-negative weight per checkpoint ({len(paths)}), got {coefs}", path=out)
    total = sum(coefs)
    coefs = [c / total for c in coefs]
    reads = [_read(p) for p in paths]
    vocab, cfg, base, hint = reads[0]
    for p, (v, c, sd, _) in zip(paths[1:], reads[1:]):
        if tuple(v.objects) != tuple(vocab.objects):
            raise SggInputError(f"another vocabulary than {paths[0]} ({v.num_classes} vs {vocab.num_classes} "
                                "classes): weights of different class sets cannot be averaged", path=p)
        if set(sd) != set(base):
            diff = sorted(set(sd) ^ set(base))[:3]
            raise SggInputError(f"another architecture than {paths[0]} (parameters {diff} differ)", path=p)
        bad = [k for k in base if sd[k].shape != base[k].shape]
        if bad and not keep_mismatched:
            raise SggInputError(f"parameter shapes differ from {paths[0]} ({bad[:3]}; e.g. other anchor ratios): "
                                "pass keep_mismatched to take those from the first file", path=p)
    avg = {}
    for k, v in base.items():
        if not v.is_floating_point():
            avg[k] = v
            continue
        parts = [(c, sd[k]) for c, (_, _, sd, _) in zip(coefs, reads) if sd[k].shape == v.shape]
        norm = sum(c for c, _ in parts)
        avg[k] = sum(c / norm * t.float() for c, t in parts) if norm > 0 else v.float()
    cfg = {**cfg, "pretrained": False, "weights_path": None}
    model = HODNet(cfg, vocabulary=vocab, inference=hint)
    model.load_state_dict(avg, strict=True)
    return save_detector(model, out, vocab, cfg, half=half, inference=hint)
