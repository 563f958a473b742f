"""Which boxes lie outside an image: the one rule behind every "object outside the image" check.

Detections keep an object when its **centre** is in the image (``by="centre"``, edges included): coarse
pyramid levels and foreign results can place a box past the edge, and a box centred outside belongs to no
pixel of the image. Label readers report an object whose **extent** (axis-aligned envelope) does not
overlap the image's interior (``by="extent"``; touching an edge from outside counts as outside): a wrong
image size or labels of another image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .conversions import box_to_envelope

__all__ = ["outside_image"]


def outside_image(boxes: Any, image_size: tuple[int, int], *, by: str = "extent") -> torch.Tensor:
    """(N,) bool: which of ``boxes`` lie outside the ``(width, height)`` image.

    ``boxes``: (N, 5) oriented boxes ``(cx, cy, w, h, angle)`` or (N, K, 2) polygon corners (the centre of
    a polygon is the mean of its corners). ``by``: ``"centre"`` or ``"extent"`` (see the module docstring).
    A box with a NaN centre or extent is outside by centre and not outside by extent (readers report it as
    degenerate instead)."""
    if by not in ("centre", "extent"):
        raise ValueError(f"by must be 'centre' or 'extent', got {by!r}")
    t = boxes if isinstance(boxes, torch.Tensor) else torch.as_tensor(np.asarray(boxes))
    if t.ndim == 3:  # polygons
        centre, env = t.mean(1), torch.cat([t.amin(1), t.amax(1)], dim=1)
    else:
        t = t.reshape(-1, 5)
        centre = t[:, :2]
        env = box_to_envelope(t) if by == "extent" else None
    w, h = image_size
    if by == "centre":
        x, y = centre.unbind(-1)
        return ~((x >= 0) & (x <= w) & (y >= 0) & (y <= h))
    return (env[:, 2] <= 0) | (env[:, 3] <= 0) | (env[:, 0] >= w) | (env[:, 1] >= h)
