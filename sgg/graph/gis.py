"""GIS layers of a scene graph: GeoPackage 1.2, GeoJSON (RFC 7946) and GeoParquet, via pyogrio/geopandas.

Layers (same columns in every format):

* ``objects``: oriented footprints as polygons (pixel corners → map through the raster's transform);
  ``id, class, score, cx, cy, w, h, angle, level, difficult`` (box numbers in level-0 pixels, radians);
* ``relations``: lines from the subject's to the object's centre; ``key, subject, object, subject_class,
  object_class, predicate, score, rank, source`` (+ ``pair, pair_score, predicate_scores`` (JSON text) when
  exported with ``full_scores``);
* ``run``: ``key, value, encoding`` rows (``encoding`` is ``text`` or ``json``) with the run record:
  vocabulary, CRS WKT, transform, image, model metadata, sgg version, ``coordinates`` (``map``/``pixel``),
  ``evaluation_threshold`` and ``output_threshold`` (:mod:`sgg.graph.thresholds`);
* QGIS styles (:mod:`sgg.graph.styles`): a default row per feature layer in the GeoPackage's ``layer_styles``
  table, ``<stem>.qml`` / ``<stem>.relations.qml`` files beside GeoJSON and GeoParquet outputs.

A raster without a CRS is exported in pixel units with no CRS set (GeoPackage srs_id −1, "Undefined Cartesian
SRS") and ``coordinates = pixel`` in the run record; geometry is ``(column, -row)`` — y negated, the frame in
which QGIS shows an un-georeferenced image — so the footprints overlay the image in QGIS. The attributes
``cx, cy`` keep the plain pixel row.
Reading never uses the geometry: boxes come back from the pixel attributes, the georeference from ``run``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from sgg.errors import SggInputError
from sgg.graph.styles import class_colour, objects_qml, objects_sld  # noqa: F401  (re-exported)

OBJECT_FIELDS = ("id", "class", "score", "cx", "cy", "w", "h", "angle", "level", "difficult")
RELATION_FIELDS = ("key", "subject", "object", "subject_class", "object_class", "predicate", "score", "rank", "source")
_INT = ("id", "level", "key", "subject", "object", "rank", "pair")


# --------------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------------
def resolve_crs(meta: dict[str, Any], crs: str | None, default: str) -> tuple[Any, bool]:
    """(target CRS or None for pixel coordinates, reproject?) for the ``crs`` option."""
    want = default if crs is None else str(crs)
    native = meta["crs_wkt"] if meta["coordinates"] == "map" else None
    if want.lower() == "native":
        return native, False
    if native is None:
        if crs is None:
            warnings.warn(
                f"the scene has no CRS: writing pixel coordinates instead of {want} (coordinates = pixel)",
                UserWarning, stacklevel=3,
            )
            return None, False
        raise SggInputError(f"cannot reproject to {want}: the scene has no CRS (use crs='native' for pixels)")
    return want, True


def frames(nodes: dict[str, np.ndarray], edges: dict[str, np.ndarray], meta: dict[str, Any],
           crs: str | None = None, default: str = "native"):
    """``(objects, relations, run)``: two GeoDataFrames in the target CRS and the run DataFrame."""
    import geopandas as gpd
    import shapely

    target, reproject = resolve_crs(meta, crs, default)
    native = meta["crs_wkt"] if meta["coordinates"] == "map" else None
    corners = nodes["map_corners"]
    ring = np.concatenate([corners, corners[:, :1]], axis=1)
    polys = shapely.polygons(ring) if len(ring) else np.zeros(0, dtype=object)
    obj = {c: nodes[c] for c in OBJECT_FIELDS}
    obj["class"] = nodes["class"].astype(str)
    objects = gpd.GeoDataFrame(obj, geometry=gpd.GeoSeries(polys, crs=native))

    centre = corners.mean(axis=1) if len(corners) else np.zeros((0, 2))
    s, o = edges["subject"], edges["object"]
    lines = shapely.linestrings(np.stack([centre[s], centre[o]], axis=1)) if len(s) else np.zeros(0, dtype=object)
    rel = {
        "key": edges["key"], "subject": s, "object": o,
        "subject_class": nodes["class"][s].astype(str), "object_class": nodes["class"][o].astype(str),
        "predicate": edges["predicate"].astype(str), "score": edges["score"], "rank": edges["rank"],
        "source": edges["source"].astype(str),
    }
    if "predicate_scores" in edges:  # full_scores: pair row, pair score, score vector as JSON text
        rel["pair"], rel["pair_score"] = edges["pair"], edges["pair_score"]
        rel["predicate_scores"] = np.asarray([None if v is None else json.dumps(v) for v in edges["predicate_scores"]],
                                             dtype=object)
    relations = gpd.GeoDataFrame(rel, geometry=gpd.GeoSeries(lines, crs=native))
    if reproject:
        objects, relations = objects.to_crs(target), relations.to_crs(target)
    out_meta = dict(meta, export_crs=None if objects.crs is None else objects.crs.to_wkt())
    return objects, relations, run_frame(out_meta)


def run_frame(meta: dict[str, Any]):
    import pandas as pd

    keys = sorted(meta)
    enc = ["text" if isinstance(meta[k], str) else "json" for k in keys]
    vals = [meta[k] if e == "text" else json.dumps(meta[k], sort_keys=True, default=str) for k, e in zip(keys, enc)]
    return pd.DataFrame({"key": keys, "value": vals, "encoding": enc})


def run_meta(df) -> dict[str, Any]:
    return {
        str(k): (json.loads(v) if e == "json" else v)
        for k, v, e in zip(df["key"], df["value"], df["encoding"])
    }


def tables_from_frames(objects, relations, meta: dict[str, Any]):
    """Node/edge columns from object/relation attribute tables (geometry is ignored: boxes are attributes)."""
    nodes = {c: objects[c].to_numpy() for c in OBJECT_FIELDS if c in objects}
    nodes["class"] = nodes["class"].astype(object)
    edges = {c: relations[c].to_numpy() for c in ("key", "subject", "object", "predicate", "score", "source",
                                                  "pair", "pair_score", "predicate_scores") if c in relations}
    for c in ("key", "subject", "object", "pair"):
        if c in edges:
            edges[c] = np.asarray(edges[c], dtype=np.float64).astype(np.int64)  # nullable ints come back as float
    return nodes, edges, meta


# --------------------------------------------------------------------------------------------------
# QGIS styles (QGIS "layer_styles" convention in the GeoPackage, .qml sidecars beside other files)
# --------------------------------------------------------------------------------------------------
def style_frame(objects, relations, meta: dict[str, Any]):
    """``layer_styles`` rows (one default style per feature layer), as QGIS writes and reads them."""
    import datetime

    import pandas as pd

    from sgg.graph import styles

    qml = styles.layer_qml(objects, relations, meta)
    voc = meta["vocabulary"]
    learned = relations.loc[relations["source"] != "geometry", "predicate"] if len(relations) else []
    sld = {
        "objects": styles.objects_sld(styles.ordered_names(objects["class"], list(voc["objects"])),
                                      list(voc["objects"])),
        "relations": styles.relations_sld(styles.ordered_names(learned, list(voc["predicates"])),
                                          list(voc["predicates"])),
    }
    desc = {"objects": "objects coloured by class, opacity by score (sgg)",
            "relations": "relations as arrows coloured by predicate; topology grey dashes (sgg)"}
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    names = ["objects", "relations"]
    return pd.DataFrame({
        "f_table_catalog": [""] * 2, "f_table_schema": [""] * 2, "f_table_name": names,
        "f_geometry_column": ["geom"] * 2, "styleName": [f"sgg {n}" for n in names],
        "styleQML": [qml[n] for n in names], "styleSLD": [sld[n] for n in names],
        "useAsDefault": [True] * 2, "description": [desc[n] for n in names], "owner": [""] * 2,
        "ui": [""] * 2, "update_time": [now] * 2,
    })


def qml_sidecars(path: Path, fmt: str, objects, relations, meta: dict[str, Any]) -> dict[Path, str]:
    """``.qml`` files QGIS loads as default style beside GeoJSON/GeoParquet outputs: ``scene.qml`` for the
    objects (QGIS' default-style name for ``scene.geojson``/``scene.parquet``) and ``scene.relations.qml``
    (the default style of ``scene.relations.parquet``; in GeoJSON, load it on the line sublayer)."""
    from sgg.graph import styles

    if fmt not in ("geojson", "parquet"):
        return {}
    qml = styles.layer_qml(objects, relations, meta)
    path = Path(path)
    return {path.with_suffix(".qml"): qml["objects"], path.with_name(path.stem + ".relations.qml"): qml["relations"]}


def write_texts(paths, texts) -> None:
    for p, t in zip(paths, texts):
        Path(p).write_text(t, encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# Writers (into a temporary path chosen by the caller)
# --------------------------------------------------------------------------------------------------
def _write(df, path: Path, layer: str, driver: str, crs_none_ok: bool = True, **kw: Any) -> None:
    import pyogrio

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*'crs' was not provided.*")
        pyogrio.write_dataframe(df, str(path), layer=layer, driver=driver, use_arrow=True, **kw)


def write_gpkg(objects, relations, run, meta: dict[str, Any], path: Path, style: bool = True) -> None:
    """GeoPackage 1.2 with layers objects, relations, run (+ layer_styles for QGIS)."""
    srid = {} if objects.crs is not None else {"SRID": "-1"}
    _write(objects, path, "objects", "GPKG", geometry_type="Polygon",
           dataset_options={"VERSION": "1.2"}, layer_options={**srid, "DESCRIPTION": "sgg object footprints"})
    _write(relations, path, "relations", "GPKG", geometry_type="LineString",
           layer_options={**srid, "DESCRIPTION": "sgg relations: subject centre to object centre"})
    _write(run, path, "run", "GPKG", layer_options={"DESCRIPTION": "sgg run metadata"})
    if style:
        _write(style_frame(objects, relations, meta), path, "layer_styles", "GPKG", layer_options={"FID": "id"})


def geojson_frame(objects, relations, run):
    """One FeatureCollection: objects, relations (``kind`` property) and a geometry-less ``run`` feature."""
    import geopandas as gpd
    import pandas as pd

    def nullable(df):
        df = df.copy()
        for c in _INT:
            if c in df:
                df[c] = df[c].astype("Int64")
        return df

    meta = run_meta(run)
    run_row = gpd.GeoDataFrame({"kind": ["run"], "run": [json.dumps(meta, sort_keys=True, default=str)]},
                               geometry=gpd.GeoSeries([None], crs=objects.crs))
    parts = [nullable(objects).assign(kind="object"), nullable(relations).assign(kind="relation"), run_row]
    parts = [p for p in parts if len(p)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # concat of all-NA columns
        out = pd.concat(parts, ignore_index=True)
    cols = ["kind"] + [c for c in out.columns if c not in ("kind", "geometry")] + ["geometry"]
    return gpd.GeoDataFrame(out[cols], geometry="geometry", crs=objects.crs)


def write_geojson(objects, relations, run, path: Path) -> None:
    fc = geojson_frame(objects, relations, run)
    wgs84 = fc.crs is not None and fc.crs.to_epsg() == 4326
    opts = {"RFC7946": "YES"} if wgs84 else {}
    _write(fc, path, "scene_graph", "GeoJSON", geometry_type="Unknown", layer_options=opts)


def relations_path(path: Path) -> Path:
    """GeoParquet relations file beside ``scene.parquet``: ``scene.relations.parquet``."""
    path = Path(path)
    return path.with_name(path.stem + ".relations" + (path.suffix or ".parquet"))


def _write_parquet(gdf, path: Path, meta_json: str) -> None:
    import pyarrow.parquet as pq

    try:
        from geopandas.io.arrow import _geopandas_to_arrow
    except ImportError:  # pragma: no cover - older/newer geopandas: write, then add the metadata
        gdf.to_parquet(path, index=False)
        table = pq.read_table(path)
    else:
        table = _geopandas_to_arrow(gdf, index=False)
    md = dict(table.schema.metadata or {})
    md[b"sgg"] = meta_json.encode()
    pq.write_table(table.replace_schema_metadata(md), str(path), compression="snappy")


def write_parquet(objects, relations, run, path: Path, rel_path: Path) -> None:
    meta_json = json.dumps(run_meta(run), sort_keys=True, default=str)
    _write_parquet(relations, rel_path, meta_json)
    _write_parquet(objects, path, meta_json)


# --------------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------------
def read_gpkg(path: Path):
    import pyogrio

    layers = {str(n) for n in pyogrio.list_layers(str(path))[:, 0]}
    missing = {"objects", "relations", "run"} - layers
    if missing:
        raise SggInputError(f"not an sgg GeoPackage: layers {sorted(missing)} missing", path=path)
    objects = pyogrio.read_dataframe(str(path), layer="objects", read_geometry=False, use_arrow=True)
    relations = pyogrio.read_dataframe(str(path), layer="relations", read_geometry=False, use_arrow=True)
    run = pyogrio.read_dataframe(str(path), layer="run", use_arrow=True)
    return tables_from_frames(objects, relations, run_meta(run))


def read_geojson(path: Path):
    import pyogrio

    fc = pyogrio.read_dataframe(str(path), read_geometry=False)
    if "kind" not in fc:
        raise SggInputError("not an sgg GeoJSON: features lack the 'kind' property", path=path)
    runs = fc.loc[fc["kind"] == "run", "run"] if "run" in fc else []
    if len(runs) != 1:
        raise SggInputError("not an sgg GeoJSON: expected one feature of kind 'run'", path=path)
    run = runs.iloc[0]  # GDAL writes the JSON text as a nested object and may give it back parsed
    meta = run if isinstance(run, dict) else json.loads(run)
    objects = fc[fc["kind"] == "object"]
    relations = fc[fc["kind"] == "relation"]
    if not len(objects):
        objects = objects.reindex(columns=list(OBJECT_FIELDS))
    if not len(relations):
        relations = relations.reindex(columns=list(RELATION_FIELDS))
    return tables_from_frames(objects, relations, meta)


def read_parquet(path: Path):
    import geopandas as gpd
    import pyarrow.parquet as pq

    if path.name.endswith(".relations.parquet"):  # given the side file: read the scene it belongs to
        path = path.with_name(path.name[: -len(".relations.parquet")] + ".parquet")
    md = pq.read_schema(str(path)).metadata or {}
    if b"sgg" not in md:
        raise SggInputError("not an sgg GeoParquet file (no 'sgg' metadata)", path=path)
    meta = json.loads(md[b"sgg"])
    objects = gpd.read_parquet(str(path))
    rp = relations_path(path)
    if not rp.exists():
        raise SggInputError(f"relations file {rp.name} missing beside the objects file", path=path)
    relations = gpd.read_parquet(str(rp))
    return tables_from_frames(objects, relations, meta)
