"""``export(sg, path)`` and ``read(path)`` for every graph format, with atomic writes.

=========  =====================  ===========================================================  ===========
format     suffix                 content                                                      default CRS
=========  =====================  ===========================================================  ===========
gpkg       .gpkg                  GeoPackage 1.2: objects, relations, run, layer_styles        native
geojson    .geojson               one RFC 7946 FeatureCollection, ``kind`` = object/relation/run  EPSG:4326
parquet    .parquet, .geoparquet  GeoParquet objects + ``<stem>.relations.parquet``            native
graphml    .graphml               networkx GraphML (lists/dicts as JSON strings)               pixel+map
json       .json                  networkx node-link JSON                                      pixel+map
scene      .scene.json            sgg native scene JSON (predictions: top-K scored triplets)   pixel+CRS
=========  =====================  ===========================================================  ===========

One suffix per format, the same for ``sgg detect --out``, ``sgg export``, ``sgg eval`` and :func:`read`.
Reading is lenient where it is safe: a plain ``.json`` holding a native scene (as ``sgg synth`` writes
annotations) or a GeoJSON FeatureCollection is recognised by its content; ``.txt`` is a DOTA label file.

GeoJSON (RFC 7946) has no CRS member: its coordinates are longitude/latitude. A scene without a CRS
(pixel coordinates) is therefore refused for GeoJSON, with a pointer to GeoPackage, GraphML or JSON,
which carry the pixel frame honestly.

Writes go to a temporary name in the target directory and are renamed into place (``os.replace``, see
:mod:`sgg.io.atomic`); a multi-file output renames its side files first and the main file last, so a file
that exists is complete, and parts left by a killed run are removed by the next write to the same name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sgg.errors import SggInputError
from sgg.io.atomic import atomic_paths

FORMATS = ("gpkg", "geojson", "parquet", "graphml", "json", "scene")
# suffix -> format; longest match first (".scene.json" before ".json")
SUFFIXES = {".scene.json": "scene", ".gpkg": "gpkg", ".geojson": "geojson", ".parquet": "parquet",
            ".geoparquet": "parquet", ".graphml": "graphml", ".json": "json"}
ALIASES = {"geoparquet": "parquet", "node-link": "json", "nodelink": "json", "native": "scene"}
EXTENSION = {"gpkg": ".gpkg", "geojson": ".geojson", "parquet": ".parquet", "graphml": ".graphml", "json": ".json",
             "scene": ".scene.json"}
GRAPH_SUFFIXES = tuple(SUFFIXES)


def suffix_format(path: Any) -> str | None:
    """The format a file name's suffix stands for (``.scene.json`` before ``.json``), else None."""
    name = Path(path).name.lower()
    return next((f for s, f in SUFFIXES.items() if name.endswith(s)), None)


def format_of(path: Any, fmt: str | None = None) -> str:
    """The format named by ``fmt`` (or an alias), else the one ``path``'s suffix stands for."""
    if fmt:
        f = ALIASES.get(fmt.lower(), fmt.lower())
        if f not in FORMATS:
            raise SggInputError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}", path=path)
        return f
    f = suffix_format(path)
    if f is None:
        suffix = "".join(Path(path).suffixes[-1:]) or "(none)"
        raise SggInputError(f"no scene graph format has the suffix {suffix!r}; graph files end in "
                            f"{', '.join(GRAPH_SUFFIXES)}", path=path)
    return f


def _as_scene(obj: Any):
    from sgg.structures import SceneGraph

    if isinstance(obj, SceneGraph):
        return obj
    if hasattr(obj, "graph") and hasattr(obj, "nodes"):
        from sgg.graph.networkx_io import from_networkx

        return from_networkx(obj)
    raise TypeError(f"export: expected a SceneGraph or a networkx graph, got {type(obj).__name__}")


GEOJSON_NO_CRS = ("GeoJSON coordinates are longitude/latitude (RFC 7946) but this scene has no CRS (pixel "
                  "coordinates); write GeoPackage (.gpkg, pixel frame that QGIS lays over the image), GraphML "
                  "(.graphml) or JSON (.json, .scene.json) instead, or georeference the raster")


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
    summary: dict | None = None,
    output_threshold: float | dict | str | None = None,
) -> Path:
    """Write a SceneGraph (or a graph from :func:`to_networkx`) to ``path``; returns the main file's path.

    ``crs``: ``"native"`` (the raster's CRS; default except GeoJSON), ``"EPSG:4326"`` (GeoJSON's default)
    or any CRS pyproj understands; ignored by graphml/json/scene, whose nodes carry pixel and map polygons.
    A scene without a CRS is written in pixel coordinates, except to GeoJSON, which refuses it (see the
    module docstring); asking for a CRS then is an error. ``topology`` adds footprint relations within
    ``distance`` pixels. ``top_k``/``per_pair``/``min_score`` choose which predicted triplets become
    relations (native scene JSON needs ``top_k`` for a prediction); ``full_scores`` stores each pair's score
    vector on its relations (exact prediction round trip). ``summary``, if given, receives the number of
    ``objects`` and ``relations`` rows written.
    ``output_threshold`` (in [0, 1], or per class ``{"default": 0.3, "airplane": 0.5}``) drops objects
    scoring below it and their relations (:mod:`sgg.graph.thresholds`); None keeps all. The run record
    holds ``evaluation_threshold`` and ``output_threshold``. ``style`` stores QGIS styles: ``layer_styles``
    in a GeoPackage, ``.qml`` files beside GeoJSON/GeoParquet.
    """
    from sgg.graph import gis
    from sgg.graph.tables import scene_crs, scene_tables
    from sgg.graph.thresholds import select_objects, threshold_record

    path = Path(path)
    f = format_of(path, fmt)
    sg = select_objects(_as_scene(sg), output_threshold)
    if f == "geojson" and scene_crs(sg) is None:
        raise SggInputError(GEOJSON_NO_CRS, path=path)
    if f == "scene":
        from sgg.datasets.native import write_scene_json

        if topology or full_scores:
            raise SggInputError("native scene JSON stores no footprint relations or score vectors; use "
                                ".gpkg, .geojson, .parquet, .graphml or .json for topology/full scores", path=path)
        write_scene_json(sg, path, top_k=top_k, per_pair=per_pair, min_score=min_score, summary=summary)
        return path
    nodes, edges, meta = scene_tables(sg, top_k=top_k, per_pair=per_pair, min_score=min_score,
                                      topology=topology, distance=distance, full_scores=full_scores)
    th = threshold_record(sg, None)
    meta.update(evaluation_threshold=th["evaluation"], output_threshold=th["output"])
    if summary is not None:
        summary.update(objects=len(nodes["id"]), relations=len(edges["key"]))
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
    else:
        side = gis.qml_sidecars(path, f, objects, relations, meta) if style else {}
        rel = [gis.relations_path(path)] if f == "parquet" else []
        with atomic_paths(*side, *rel, path) as tmps:
            gis.write_texts(tmps[:len(side)], side.values())
            if f == "geojson":
                gis.write_geojson(objects, relations, run, tmps[-1])
            else:
                gis.write_parquet(objects, relations, run, tmps[-1], tmps[-2])
    return path


def _read_json(path: Path):
    from sgg.graph import gis
    from sgg.graph.networkx_io import graph_tables, node_link_graph

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise SggInputError(f"not valid JSON ({exc})", path=path) from None
    except UnicodeDecodeError:
        raise SggInputError("not a JSON text file (binary content)", path=path) from None
    if isinstance(data, dict) and "nodes" in data and ("edges" in data or "links" in data):
        return graph_tables(node_link_graph(data), path)
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        return gis.read_geojson(path)
    return None


_MAGIC = {"gpkg": (b"SQLite format 3\x00", "a GeoPackage (SQLite database)"), "parquet": (b"PAR1", "a Parquet file")}
_FIRST = {"json": (b"{[", "a JSON file"), "scene": (b"{", "a JSON object"), "geojson": (b"{", "a GeoJSON object"),
          "graphml": (b"<", "a GraphML (XML) file")}


def _check_content(path: Path, f: str) -> None:
    """Refuse a file whose first bytes cannot be format ``f``, with a plain message (not a driver's)."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    if f in _MAGIC and not head.startswith(_MAGIC[f][0]):
        raise SggInputError(f"not {_MAGIC[f][1]}, although named {path.suffix}", path=path)
    if f in _FIRST:
        first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
        if first and first not in _FIRST[f][0]:
            raise SggInputError(f"not {_FIRST[f][1]}, although named {''.join(path.suffixes[-2:])}", path=path)


def _nx_error() -> type:
    from networkx import NetworkXError

    return NetworkXError


def read(path: Any, fmt: str | None = None):
    """The SceneGraph stored in ``path`` (any format of :func:`export`; ``.json`` may also be a GeoJSON
    FeatureCollection or a native scene annotation as ``sgg synth`` writes; ``.txt`` a DOTA label file)."""
    from sgg.graph import gis
    from sgg.graph.tables import scene_from_tables

    path = Path(path)
    if not path.exists():
        raise SggInputError("file not found", path=path)
    if path.is_dir():
        raise SggInputError("is a directory, expected a scene graph file", path=path)
    if path.stat().st_size == 0:
        raise SggInputError("is empty (0 bytes)", path=path)
    suffix = path.suffix.lower()
    if fmt is None and suffix == ".txt":
        from sgg.datasets.dota import DOTA_VOCABULARY, read_dota_labels

        return read_dota_labels(path, vocabulary=DOTA_VOCABULARY)  # keep DOTA's own class names
    f = format_of(path, fmt)
    _check_content(path, f)
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
        elif f == "scene":
            from sgg.datasets.native import read_scene_json

            return read_scene_json(path)
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
