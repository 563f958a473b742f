"""The one device check of sgg: a device name from a flag or a config key, refused with a clear message when
this machine does not have it (the CLI and the pipeline call it before any work). torch is imported on call, so
importing this module (and the CLI) stays cheap."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sgg.errors import SggInputError

if TYPE_CHECKING:
    import torch


def check_device(name: str, option: str | None = "--device") -> torch.device:
    """The torch device ``name`` when this machine has it, else an input error naming ``option`` (the
    command-line flag, or a config key such as ``"device"``). The one device check of sgg."""
    import torch

    use = f"use {option or 'device'} cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise SggInputError("not a torch device; use cpu, cuda, cuda:N or mps", path=name, option=option) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SggInputError(f"CUDA is not available on this machine (no GPU, or torch built without CUDA); {use}",
                                path=name, option=option)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SggInputError(f"this machine has {torch.cuda.device_count()} CUDA device(s)", path=name,
                                option=option)
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SggInputError(f"Apple MPS is not available on this machine; {use}", path=name, option=option)
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise SggInputError("unsupported device type; use cpu, cuda or mps", path=name, option=option)
    return dev
