"""Export speed: `sgg.graph.export` vs a plain geopandas write of the same prepared frames.

    /work/venv/bin/python benchmarks/bench_export.py [--objects 50000] [--relations 200000] [--repeat 3]

A synthetic UTM scene (random oriented boxes, random labelled relations) is exported to GeoPackage and
GeoParquet by sgg (tables → frames → layers, run table, QGIS style, atomic rename) and, as the reference, the
objects/relations GeoDataFrames that sgg builds are written directly with ``GeoDataFrame.to_file`` (pyogrio)
and ``to_parquet``. Prints best-of-N seconds and the ratio sgg / reference (1.0 = no overhead).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch


def make_scene(n: int, m: int, seed: int = 0):
    from sgg.structures import Detections, GeoReference, PairSet, SceneGraph, Vocabulary

    g = torch.Generator().manual_seed(seed)
    voc = Vocabulary.star()
    side = math.sqrt(n) * 60
    boxes = torch.cat([torch.rand(n, 2, generator=g) * side, torch.rand(n, 2, generator=g) * 30 + 4,
                       (torch.rand(n, 1, generator=g) - 0.5) * math.pi], 1)
    det = Detections(boxes, torch.randint(0, voc.num_classes, (n,), generator=g), torch.rand(n, generator=g))
    s = torch.randint(0, n, (m,), generator=g)
    o = (s + torch.randint(1, n, (m,), generator=g)) % n
    labels = torch.randint(1, voc.num_predicates, (m,), generator=g)
    geo = GeoReference("EPSG:32618", (0.3, 0.0, 440000.0, 0.0, -0.3, 4400000.0))
    return SceneGraph(det, PairSet(torch.stack([s, o], 1)), predicate_labels=labels, vocabulary=voc, georef=geo,
                      image_size=(int(side), int(side)), metadata={"bench": True})


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=50_000)
    ap.add_argument("--relations", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)

    from sgg.graph import export, gis, to_networkx
    from sgg.graph.tables import scene_tables

    sg = make_scene(args.objects, args.relations)
    nodes, edges, meta = scene_tables(sg)
    objects, relations, _ = gis.frames(nodes, edges, meta)
    print(f"scene: {sg.num_objects} objects, {len(sg.pairs)} relations; best of {args.repeat}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)

        def sgg_gpkg():
            export(sg, d / "sgg.gpkg")

        def ref_gpkg():
            p = d / "ref.gpkg"
            p.unlink(missing_ok=True)
            objects.to_file(p, layer="objects", driver="GPKG", engine="pyogrio")
            relations.to_file(p, layer="relations", driver="GPKG", engine="pyogrio")

        def sgg_parquet():
            export(sg, d / "sgg.parquet")

        def ref_parquet():
            objects.to_parquet(d / "ref.parquet")
            relations.to_parquet(d / "ref.relations.parquet")

        rows = [("gpkg", sgg_gpkg, ref_gpkg), ("parquet", sgg_parquet, ref_parquet)]
        print(f"{'format':<9}{'sgg export s':>14}{'geopandas s':>13}{'ratio':>8}")
        for name, a, b in rows:
            ta, tb = best(a, args.repeat), best(b, args.repeat)
            print(f"{name:<9}{ta:>14.2f}{tb:>13.2f}{ta / tb:>8.2f}")
        t_prep = best(lambda: gis.frames(*scene_tables(sg)), args.repeat)
        print(f"of which sgg builds tables + frames (geometry from boxes): {t_prep:.2f} s")
        t_nx = best(lambda: to_networkx(sg), 1)
        print(f"to_networkx: {t_nx:.2f} s")
        t_topo = best(lambda: scene_tables(sg, topology=True, distance=5.0), 1)
        print(f"tables + topology (distance 5 px): {t_topo:.2f} s")


if __name__ == "__main__":
    main()
