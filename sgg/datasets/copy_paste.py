"""Copy-paste of real objects into synthetic training tiles: dense rows, and real looks for synthetic objects.

Real horizontal-label data rarely shows boats packed along a pontoon (9 of ships_ge's 400 training images), and
a detector that has not seen such rows boxes a whole row as one long ship (DOTA's P0706). :class:`RowPaster`
cuts the real objects out along their oriented pseudo-boxes (:mod:`sgg.datasets.pseudo_obb`), upright and
resampled to one patch size, and pastes a row of them into a tile: ``n`` objects side by side, each across
the row (as boats moor), spaced a little more than their width apart, at a random place, direction and size.
The pasted boxes join the tile's targets; targets the row covers are dropped. One ``grid_sample`` renders the
whole row: every tile pixel finds its slot in the row and reads that object's patch.

:class:`AppearanceSwap` keeps the synthetic scene's layout and exact oriented labels (boats moored along a
pier, a breakwater, open water) and swaps the look: each synthetic object of the class, with a probability,
is painted over by a real object of similar aspect, resampled onto its oriented box (bow either way).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from sgg.ops import normalize_le90, rotated_iof, rotated_roi_align

__all__ = ["RowPaster", "AppearanceSwap", "cut_image", "cut_objects", "stack_objects"]


def cut_image(sc, image: torch.Tensor, min_conf: float = 0.5, min_length: float = 8.0,
              patch: tuple[int, int] = (16, 48)) -> tuple[torch.Tensor, torch.Tensor]:
    """The objects of one SceneRecord cut out of its whole level-0 ``image`` upright along their (pseudo-)boxes:
    ``(patches (n, 3, ph, pw) with the long side along the width, aspects (n,) long / short side clamped to
    [1.5, 8])``. Boxes with ``angle_weight`` below ``min_conf`` or a long side under ``min_length`` px are left
    out (n may be 0)."""
    b = normalize_le90(sc.boxes[_cuttable(sc, min_conf, min_length)])
    patches = rotated_roi_align(image[None], b, torch.zeros(len(b), dtype=torch.long), patch)
    return patches, (b[:, 2] / b[:, 3].clamp(min=1.0)).clamp(1.5, 8.0)


def stack_objects(parts) -> tuple[torch.Tensor, torch.Tensor]:
    """One bank ``(patches, aspects)`` from :func:`cut_image` results; an empty bank is refused."""
    parts = [p for p in parts if len(p[0])]
    if not parts:
        raise ValueError("no object passes min_conf / min_length")
    return torch.cat([p for p, _ in parts]), torch.cat([a for _, a in parts])


def cut_objects(records, min_conf: float = 0.5, min_length: float = 8.0, patch: tuple[int, int] = (16, 48),
                readers=None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`cut_image` over SceneRecords, each image with something to cut read once, whole."""
    from sgg.datasets.tiling import ReaderCache, read_whole

    readers = readers or ReaderCache()
    return stack_objects(cut_image(sc, read_whole(readers.get(sc.image_path), sc.width, sc.height), min_conf,
                                   min_length, patch)
                         for sc in records if _cuttable(sc, min_conf, min_length).any())


def _cuttable(sc, min_conf: float, min_length: float) -> torch.Tensor:
    ok = sc.boxes[:, 2] >= min_length
    return ok & (sc.angle_weight >= min_conf) if sc.angle_weight is not None else ok


class RowPaster:
    """Paste rows of real objects into ``(3, T, T)`` tiles.

    Args:
        patches: (N, 3, ph, pw) upright object images (long side along the width).
        aspects: (N,) long / short side of each object.
        label: class index given to the pasted objects.
        count: (min, max) objects per row.
        length: (min, max) long side of the pasted objects, tile pixels.
        gap: (min, max) spacing between neighbours as a multiple of their mean short side.
    """

    def __init__(self, patches: torch.Tensor, aspects: torch.Tensor, label: int, count=(5, 16), length=(14.0, 48.0),
                 gap=(1.05, 1.4)):
        if patches.shape[0] == 0:
            raise ValueError("RowPaster: no objects to paste")
        self.patches, self.aspects, self.label = patches.float(), aspects.float(), int(label)
        self.count, self.length, self.gap = tuple(count), tuple(length), tuple(gap)

    @classmethod
    def from_records(cls, records, label: int, min_conf: float = 0.5, min_length: float = 8.0,
                     patch: tuple[int, int] = (16, 48), readers=None, **kw) -> RowPaster:
        """Objects of SceneRecords whose boxes are oriented pseudo-boxes (``angle_weight`` ≥ ``min_conf``, long
        side ≥ ``min_length`` px), cut out of their images (:func:`cut_objects`)."""
        return cls(*cut_objects(records, min_conf, min_length, patch, readers), label, **kw)

    def __len__(self) -> int:
        return self.patches.shape[0]

    def row(self, rng: np.random.Generator, tile: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """A random row: object indices (n,), boxes (n, 5) in tile pixels, the row's own box, its pitch."""
        n = int(rng.integers(self.count[0], self.count[1] + 1))
        idx = torch.from_numpy(rng.integers(0, len(self), n))
        length = float(rng.uniform(*self.length))
        short = length / self.aspects[idx]
        pitch = float(short.mean()) * float(rng.uniform(*self.gap))
        phi = float(rng.uniform(-math.pi, math.pi))
        cx, cy = (float(v) for v in rng.uniform(0.15 * tile, 0.85 * tile, 2))
        u = (torch.arange(n, dtype=torch.float32) - (n - 1) / 2) * pitch
        c, s = math.cos(phi), math.sin(phi)
        boxes = torch.stack([cx + u * c, cy + u * s, torch.full((n,), length), short,
                             torch.full((n,), phi + math.pi / 2)], 1)
        row_box = torch.tensor([[cx, cy, n * pitch, length, phi]])
        return idx, normalize_le90(boxes), row_box, pitch

    def __call__(self, image: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, difficult: torch.Tensor,
                 rng: np.random.Generator, cover: float = 0.5):
        """The tile with a row pasted in; targets covered by more than ``cover`` of their area are dropped."""
        t = image.shape[-1]
        idx, new, row_box, pitch = self.row(rng, t)
        n = len(idx)
        cx, cy, _, length, phi = row_box[0].tolist()
        c, s = math.cos(phi), math.sin(phi)
        ys, xs = torch.meshgrid(torch.arange(t, dtype=torch.float32) + 0.5,
                                torch.arange(t, dtype=torch.float32) + 0.5, indexing="ij")
        dx, dy = xs - cx, ys - cy
        u, v = dx * c + dy * s, -dx * s + dy * c  # along the row; along each object (across the row)
        k = torch.round(u / pitch + (n - 1) / 2).long()
        valid = (k >= 0) & (k < n)
        kc = k.clamp(0, n - 1)
        across = u - (kc.float() - (n - 1) / 2) * pitch
        half_short = new[:, 3][kc] / 2
        inside = valid & (v.abs() < length / 2) & (across.abs() < half_short)
        # texture: the row's patches stacked vertically; x along the object, y across it
        tex = self.patches[idx].permute(1, 0, 2, 3).reshape(3, n * self.patches.shape[2], self.patches.shape[3])
        gx = v / (length / 2)
        gy = ((kc.float() + (across / half_short + 1) / 2) / n) * 2 - 1
        grid = torch.stack([gx, gy], -1)[None]
        pasted = F.grid_sample(tex[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
        image = torch.where(inside[None], pasted.to(image.dtype), image)
        keep = (rotated_iof(boxes, row_box)[:, 0] <= cover) if len(boxes) else torch.zeros(0, dtype=torch.bool)
        inb = (new[:, 0] >= 0) & (new[:, 0] < t) & (new[:, 1] >= 0) & (new[:, 1] < t)
        new = new[inb]
        boxes = torch.cat([boxes[keep], new.to(boxes)])
        labels = torch.cat([labels[keep], torch.full((len(new),), self.label, dtype=labels.dtype)])
        difficult = torch.cat([difficult[keep], torch.zeros(len(new), dtype=difficult.dtype)])
        return image, boxes, labels, difficult


class AppearanceSwap:
    """Paint real objects over a tile's synthetic objects of one class, keeping their oriented boxes.

    Args:
        patches, aspects: the real objects (:func:`cut_objects`).
        label: class index whose targets are swapped.
        prob: probability that each such target is swapped.
        spread: a target gets a random one of the ``spread`` bank objects nearest its aspect.
    """

    def __init__(self, patches: torch.Tensor, aspects: torch.Tensor, label: int, prob: float = 0.5,
                 spread: int = 40):
        if patches.shape[0] == 0:
            raise ValueError("AppearanceSwap: no objects to paste")
        order = torch.argsort(aspects.float())
        self.patches, self.aspects = patches.float()[order], aspects.float()[order]
        self.label, self.prob, self.spread = int(label), float(prob), max(1, int(spread))

    def choose(self, aspect: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Bank indices for targets of these aspects: random among the ``spread`` nearest in aspect."""
        n = len(self.aspects)
        centre = torch.searchsorted(self.aspects, aspect.float()).clamp(0, n - 1)
        lo = (centre - self.spread // 2).clamp(0, max(0, n - self.spread))
        off = torch.from_numpy(rng.integers(0, min(self.spread, n), len(aspect)))
        return (lo + off).clamp(max=n - 1)

    def __call__(self, image: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor,
                 rng: np.random.Generator) -> torch.Tensor:
        """The tile with a share ``prob`` of its ``label`` targets painted over by real objects."""
        sel = (labels == self.label) & torch.from_numpy(rng.random(len(labels)) < self.prob)
        b = normalize_le90(boxes.reshape(-1, 5)[sel].float())
        b = b[b[:, 3] >= 2.0]  # too thin to carry any look
        k = len(b)
        if k == 0:
            return image
        _, hgt, wid = image.shape
        long_w = b[:, 2] >= b[:, 3]
        length, short = torch.maximum(b[:, 2], b[:, 3]), torch.minimum(b[:, 2], b[:, 3])
        phi = torch.where(long_w, b[:, 4], b[:, 4] + math.pi / 2)  # direction of the long side
        idx = self.choose(length / short, rng)
        size = int(math.ceil(float(torch.hypot(length, short).max()))) + 2
        # each target's square of tile pixels around its centre, in the target's own frame
        j = torch.arange(size, dtype=torch.float32)
        x0, y0 = torch.floor(b[:, 0] - size / 2), torch.floor(b[:, 1] - size / 2)
        xs = (x0[:, None, None] + j[None, None, :]).expand(k, size, size)
        ys = (y0[:, None, None] + j[None, :, None]).expand(k, size, size)
        dx, dy = xs + 0.5 - b[:, 0, None, None], ys + 0.5 - b[:, 1, None, None]
        c, s = torch.cos(phi)[:, None, None], torch.sin(phi)[:, None, None]
        u, v = dx * c + dy * s, -dx * s + dy * c
        flip = torch.from_numpy(rng.choice([-1.0, 1.0], (k, 2))).float()  # bow either way, either side up
        gx = u / (length[:, None, None] / 2) * flip[:, 0, None, None]
        gy = v / (short[:, None, None] / 2) * flip[:, 1, None, None]
        inside = (gx.abs() < 1) & (gy.abs() < 1) & (xs >= 0) & (xs < wid) & (ys >= 0) & (ys < hgt)
        look = F.grid_sample(self.patches[idx], torch.stack([gx, gy], -1), mode="bilinear",
                             padding_mode="border", align_corners=False)  # (k, 3, size, size)
        yi, xi = ys[inside].long(), xs[inside].long()
        out = image.clone()
        out[:, yi, xi] = look.permute(1, 0, 2, 3)[:, inside].to(image.dtype)
        return out
