"""Metric-size sanity filter: drop detections whose size in metres is impossible for their class.

A detector sees pixels, not metres: run on a raster whose ground sampling distance (GSD) is far from its
training scale it still draws objects of the sizes it learned *in pixels*, which are absurd in metres
(a "car" 1.7 km long on a 300 m Landsat scene). When the scene's GSD is known, :func:`filter_sizes` drops
every detection whose long side or short side exceeds its class's bound, and counts what it dropped.

Bounds (``MAX_LENGTH_M`` / ``MAX_WIDTH_M``: long / short side in metres, STAR's 48 classes) are **twice the
largest instance of the class**, the larger of two sources (``SIZES``):

* the synthetic generator's largest instance (``sgg.datasets.synthetic``; ``layouts.compose`` over 8 seeds ×
  9 layouts × 512/768/1024 m canvases, the sizes of ``sgg synth``'s scenes at 0.5 m: e.g. car 4.9 × 1.9 m,
  truck 13 m, ship 198 m, airplane 70 m), and
* the largest real object of the class (public figures, rounded up: An-225 88 m wingspan, the longest ship
  ever built 458 m × 69 m, road trains 53 m, runways 5.5 km × 80 m; "car" allows vans and buses, 15 × 3 m).

The factor 2 leaves room for loose boxes and a GSD off by less than 2×: the filter catches scale errors,
not shape. Classes the table does not name are never dropped. There is no lower bound: small boxes are
left to the score threshold (a part-visible object is small).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from sgg.structures import Detections, Vocabulary

# class: (synthetic largest long side, synthetic largest short side, real largest long side, real largest
# short side), metres
SIZES: dict[str, tuple[float, float, float, float]] = {
    "airplane": (69.9, 67.9, 88, 88),
    "apron": (454.9, 258.3, 3000, 1500),
    "arch_dam": (265.9, 53.3, 1500, 150),
    "baseball_diamond": (110, 110, 150, 150),
    "basketball_court": (32, 19, 35, 20),
    "boarding_bridge": (36.4, 4, 60, 8),
    "boat": (25, 8.4, 100, 25),
    "breakwater": (669, 13.9, 10000, 100),
    "bridge": (203.5, 21.7, 10000, 100),
    "car": (4.9, 1.9, 15, 3),
    "car_parking": (973.8, 288.2, 1000, 500),
    "cement_concrete_pavement": (116.8, 59.3, 2000, 1000),
    "chimney": (9, 9, 40, 40),
    "coal_yard": (90.6, 53.8, 1500, 500),
    "containment_vessel": (50, 50, 80, 80),
    "cooling_tower": (93.3, 93.3, 150, 150),
    "crane": (37.9, 11, 150, 50),
    "dock": (938.6, 27.9, 2000, 150),
    "engineering_vehicle": (9, 3.2, 60, 20),
    "flood_dam": (259.2, 29.1, 10000, 150),
    "foundation_pit": (110, 89.3, 1000, 500),
    "gas_station": (30, 18, 150, 100),
    "genset": (62.7, 47.9, 200, 100),
    "goods_yard": (271.5, 147.2, 3000, 600),
    "gravity_dam": (267.3, 28.9, 2500, 200),
    "ground_track_field": (176, 95, 200, 120),
    "intersection": (24, 24, 200, 200),
    "lattice_tower": (11, 11, 30, 30),
    "roundabout": (54.3, 54.3, 400, 400),
    "runway": (970, 45, 5500, 100),
    "ship": (197.6, 32, 458, 70),
    "ship_lock": (217.8, 34, 500, 80),
    "smoke": (131, 42.9, 2000, 300),
    "soccer_ball_field": (100, 64, 130, 90),
    "stadium": (240, 180, 400, 350),
    "storehouse": (237.7, 119.8, 1000, 400),
    "substation": (129.8, 88.8, 1000, 500),
    "tank": (44.8, 44.8, 120, 120),
    "taxiway": (970, 23, 5500, 60),
    "tennis_court": (36, 18, 40, 20),
    "terminal": (338.8, 44.9, 2000, 400),
    "toll_gate": (26, 14, 300, 100),
    "tower_crane": (65, 3, 90, 10),
    "truck": (13, 2.6, 55, 4),
    "truck_parking": (109, 78, 1000, 500),
    "unfinished_building": (69.7, 44.1, 600, 300),
    "vapor": (221, 75.8, 2000, 300),
    "wind_mill": (100, 4.5, 250, 30),
}
MARGIN = 2.0
MAX_LENGTH_M: dict[str, float] = {c: MARGIN * max(s[0], s[2]) for c, s in SIZES.items()}
MAX_WIDTH_M: dict[str, float] = {c: MARGIN * max(s[1], s[3]) for c, s in SIZES.items()}


def class_bounds(vocabulary: Vocabulary, lengths: Mapping[str, float] | None = None,
                 widths: Mapping[str, float] | None = None) -> torch.Tensor:
    """(C, 2) float64 largest long and short side in metres per class of ``vocabulary`` (``inf`` if unlisted)."""
    lengths = MAX_LENGTH_M if lengths is None else lengths
    widths = MAX_WIDTH_M if widths is None else widths
    inf = float("inf")
    return torch.tensor([[float(lengths.get(c, inf)), float(widths.get(c, inf))] for c in vocabulary.objects],
                        dtype=torch.float64).reshape(-1, 2)


def implausible(det: Detections, vocabulary: Vocabulary, gsd: float, lengths: Mapping[str, float] | None = None,
                widths: Mapping[str, float] | None = None) -> torch.Tensor:
    """(N,) bool: detections whose long or short side × ``gsd`` (m/px) exceeds their class's bound."""
    if len(det) == 0:
        return torch.zeros(0, dtype=torch.bool)
    wh = det.boxes.tensor[:, 2:4].detach().cpu().double() * float(gsd)
    size = torch.stack([wh.max(dim=1).values, wh.min(dim=1).values], dim=1)
    limit = class_bounds(vocabulary, lengths, widths)[det.labels.detach().cpu().long()]
    return (size > limit).any(dim=1)


def filter_sizes(det: Detections, vocabulary: Vocabulary, gsd: float, lengths: Mapping[str, float] | None = None,
                 widths: Mapping[str, float] | None = None) -> tuple[Detections, dict[str, int]]:
    """Drop detections too large in metres for their class; returns the kept ones and ``{class: dropped}``."""
    bad = implausible(det, vocabulary, gsd, lengths, widths)
    if not bool(bad.any()):
        return det, {}
    counts = torch.bincount(det.labels.detach().cpu()[bad].long(), minlength=vocabulary.num_classes)
    dropped = {vocabulary.objects[i]: int(n) for i, n in enumerate(counts.tolist()) if n}
    return det[(~bad).nonzero().flatten().to(det.labels.device)], dropped


__all__ = ["SIZES", "MARGIN", "MAX_LENGTH_M", "MAX_WIDTH_M", "class_bounds", "implausible", "filter_sizes"]
