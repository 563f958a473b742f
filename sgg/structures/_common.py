"""Construction helpers shared by the structures: tensor coercion with field names in errors, finite checks,
and building an instance from already-validated parts."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _as_tensor(data: Any, dtype: torch.dtype, name: str, device: torch.device | None = None) -> torch.Tensor:
    if isinstance(data, torch.Tensor):
        t = data
    else:
        try:
            t = torch.as_tensor(np.asarray(data))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: cannot be converted to a tensor ({exc})") from None
    if (t.is_floating_point() and dtype in (torch.long, torch.int64) and t.numel()
            and not torch.equal(t, t.round())):
        raise ValueError(f"{name}: expected integer values, got non-integer floats")
    t = t.to(dtype=dtype if not (t.is_floating_point() and dtype.is_floating_point) else t.dtype)
    if device is not None:
        t = t.to(device)
    return t


def _trusted(cls: type, **slots: Any) -> Any:
    """An instance built from already-validated parts (moving between devices must not re-read values:
    that would synchronise with an accelerator and fails on the ``meta`` device)."""
    obj = object.__new__(cls)
    for k, v in slots.items():
        object.__setattr__(obj, k, v)
    return obj


def _check_finite(t: torch.Tensor, name: str) -> None:
    if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
        bad = (~torch.isfinite(t)).nonzero()[0].tolist()
        raise ValueError(f"{name}: contains NaN or inf (first at index {bad})")
