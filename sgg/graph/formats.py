"""``export(sg, path)`` and ``read(path)`` for every graph format, with atomic writes.

=========  =====================  ===========================================================  ===========
format     suffix                 content                                                      default CRS
=========  =====================  ===========================================================  ===========
gpkg       .gpkg                  GeoPackage 1.2: objects, relations, run, layer_styles        native
geojson    .geojson               one RFC 7946 FeatureCollection, ``kind`` = object/relation/run  EPSG:4326
parquet    .parquet, .geoparquet  GeoParquet objects + ``<stem>.relations.parquet``            native
graphml    .graphml               networkx GraphML (lists/dicts as JSON strings)               pixel+map
json       .json                  networkx node-link JSON                                      pixel+map
=========  =====================  ===========================================================  ===========

Writes go to a temporary name in the target directory and are renamed into place (``os.replace``); a
multi-file output renames its side files first and the main file last, so a file that exists is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from sgg.errors import SggInputError

FORMATS = ("gpkg", "geojson", "parquet", "graphml", "json")
SUFFIXES = {".gpkg": "gpkg", ".geojson": "geojson", ".parquet": "parquet", ".geoparquet": "parquet",
            ".graphml": "graphml", ".json": "json"}
ALIASES = {"geoparquet": "parquet", "node-link": "json", "nodelink": "json"}
EXTENSION = {"gpkg": ".gpkg", "geojson": ".geojson", "parquet": ".parquet", "graphml": ".graphml", "json": ".json"}


def format_of(path: Any, fmt: str | None = None) -> str:
    if fmt:
        f = ALIASES.get(fmt.lower(), fmt.lower())
        if f not in FORMATS:
            raise SggInputError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}", path=path)
        return f
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise SggInputError(f"cannot tell the format from suffix {suffix!r}; pass fmt= one of {', '.join(FORMATS)}",
                            path=path)
    return SUFFIXES[suffix]


def _cleanup(tmp: Path) -> None:
    for p in (tmp, *(tmp.with_name(tmp.name + s) for s in ("-wal", "-shm", "-journal"))):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


@contextlib.contextmanager
def atomic_paths(*finals: Path) -> Iterator[list[Path]]:
    """Temporary paths beside ``finals`` (same suffix); renamed onto them in order on success, removed on
    failure. Put the main file last."""
    tmps = []
    try:
        for f in finals:
            f.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{f.stem}.", suffix=".part" + f.suffix, dir=f.parent)
            os.close(fd)
            os.unlink(name)  # writers (GDAL) want to create the file themselves
            tmps.append(Path(name))
        yield tmps
        for t, f in zip(tmps, finals):
            os.replace(t, f)
    finally:
        for t in tmps:
            _cleanup(t)


def _as_scene(obj: Any):
    from sgg.structures import SceneGraph

    if isinstance(obj, SceneGraph):
        return obj
    if hasattr(obj, "graph") and hasattr(obj, "nodes"):
        from sgg.graph.networkx_io import from_networkx

        return from_networkx(obj)
    raise TypeError(f"export: expected a SceneGraph or a networkx graph, got {type(obj).__name__}")


def export(
    sg: Any,
    path: Any,
    fmt: str | None = None,
    *,
    crs: str | None = None,
    topology: bool = False,
    distance: float = 0.0,
    top_k: int | None = None,
    per_pair: int = 1,
    min_score: float | None = None,
    full_scores: bool = False,
    style: bool = True,
) -> Path:
    """Write a SceneGraph (or a graph from :func:`to_networkx`) to ``path``; returns the main file's path.

    ``crs``: ``"native"`` (the raster's CRS; default except GeoJSON), ``"EPSG:4326"`` (GeoJSON's default)
    or any CRS pyproj understands; ignored by graphml/json, whose nodes carry pixel and map polygons.
    A scene without a CRS is written in pixel coordinates (GeoJSON's default warns; asking for a CRS
    explicitly is an error). ``topology`` adds footprint relations within ``distance`` pixels.
    ``top_k``/``per_pair``/``min_score`` choose which predicted triplets become relations;
    ``full_scores`` stores each pair's score vector on its relations (exact prediction round trip).
    """
    from sgg.graph import gis
    from sgg.graph.tables import scene_tables

    path = Path(path)
    f = format_of(path, fmt)
    sg = _as_scene(sg)
    nodes, edges, meta = scene_tables(sg, top_k=top_k, per_pair=per_pair, min_score=min_score,
                                      topology=topology, distance=distance, full_scores=full_scores)
    if f in ("graphml", "json"):
        from sgg.graph import networkx_io as nxio

        g = nxio.graph_from_tables(nodes, edges, meta)
        with atomic_paths(path) as (tmp,):
            (nxio.write_graphml if f == "graphml" else nxio.write_node_link)(g, tmp)
        return path
    objects, relations, run = gis.frames(nodes, edges, meta, crs=crs,
                                         default="EPSG:4326" if f == "geojson" else "native")
    if f == "gpkg":
        with atomic_paths(path) as (tmp,):
            gis.write_gpkg(objects, relations, run, meta, tmp, style=style)
    elif f == "geojson":
        with atomic_paths(path) as (tmp,):
            gis.write_geojson(objects, relations, run, tmp)
    else:
        rel = gis.relations_path(path)
        with atomic_paths(rel, path) as (tmp_rel, tmp):
            gis.write_parquet(objects, relations, run, tmp, tmp_rel)
    return path


def _read_json(path: Path):
    from sgg.graph import gis
    from sgg.graph.networkx_io import graph_tables, node_link_graph

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise SggInputError(f"not valid JSON ({exc})", path=path) from None
    if isinstance(data, dict) and "nodes" in data and ("edges" in data or "links" in data):
        return graph_tables(node_link_graph(data), path)
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        return gis.read_geojson(path)
    return None


def _nx_error() -> type:
    from networkx import NetworkXError

    return NetworkXError


def read(path: Any, fmt: str | None = None):
    """The SceneGraph stored in ``path`` (any format of :func:`export`; ``.json`` may also be a node-link
    graph, a GeoJSON FeatureCollection or a native scene annotation; ``.txt`` a DOTA label file)."""
    from sgg.graph import gis
    from sgg.graph.tables import scene_from_tables

    path = Path(path)
    if not path.exists():
        raise SggInputError("file not found", path=path)
    suffix = path.suffix.lower()
    if fmt is None and suffix == ".txt":
        from sgg.datasets.dota import DOTA_VOCABULARY, read_dota_labels

        return read_dota_labels(path, vocabulary=DOTA_VOCABULARY)  # keep DOTA's own class names
    f = format_of(path, fmt)
    try:
        if f == "gpkg":
            tables = gis.read_gpkg(path)
        elif f == "geojson":
            tables = gis.read_geojson(path)
        elif f == "parquet":
            tables = gis.read_parquet(path)
        elif f == "graphml":
            from sgg.graph.networkx_io import graph_tables, read_graphml

            tables = graph_tables(read_graphml(path), path)
        else:
            tables = _read_json(path)
            if tables is None:
                from sgg.datasets.native import read_scene_json

                return read_scene_json(path)
    except SggInputError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, SyntaxError, LookupError, _nx_error()) as exc:
        raise SggInputError(f"cannot read as {f}: {exc}", path=path) from None
    return scene_from_tables(*tables, path=path)
