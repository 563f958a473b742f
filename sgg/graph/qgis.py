"""QGIS project files (``.qgz``): the raster and sgg's layers, styled, in order, in the right frame.

``write_qgis_project(path, raster, layers, crs_wkt, extent)`` writes a zip holding one ``.qgs`` XML in the
QGIS 3.22+ project format; no QGIS is needed to write it. The project

* draws the raster at the bottom and the vector layers above it, first listed on top; an sgg GeoPackage
  (or GeoJSON/GeoParquet export) expands to its ``relations`` layer over its ``objects`` layer;
* embeds each layer's style (a GeoPackage's default ``layer_styles`` row, else a ``.qml`` sidecar), so the
  project looks the same wherever it is opened;
* uses ``crs_wkt`` as project CRS; ``None`` gives the pixel frame of an un-georeferenced raster (x = column,
  y = -row, no CRS), the frame sgg writes such scenes in;
* opens zoomed to ``extent`` (default: the raster's extent);
* stores paths relative to the project file (absolute when on another drive), so the folder can move.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import sqlite3
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from sgg.errors import SggInputError

QGIS_VERSION = "3.22.0-Białowieża"
Extent = Sequence[float]


# --------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------
def _layer_id(name: str, source: str) -> str:
    return f"{name}_{hashlib.sha1(source.encode()).hexdigest()[:12]}"


def _style_root(qml: str | None) -> ET.Element | None:
    if not qml:
        return None
    text = "\n".join(line for line in qml.splitlines() if not line.lstrip().startswith("<!DOCTYPE"))
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise SggInputError(f"layer style is not valid QML XML ({exc})") from None


_WKB_NAMES = {n.upper(): n for n in ("Point", "LineString", "Polygon", "MultiPoint", "MultiLineString",
                                      "MultiPolygon", "GeometryCollection")}


def _gpkg_layers(path: Path) -> list[dict[str, Any]]:
    """Feature tables of a GeoPackage with geometry type, CRS WKT and default QGIS style (sqlite3 only)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT g.table_name, g.geometry_type_name, s.definition, s.srs_id FROM gpkg_geometry_columns g "
                "LEFT JOIN gpkg_spatial_ref_sys s ON s.srs_id = g.srs_id").fetchall()
            styles: dict[str, str] = {}
            if db.execute("SELECT 1 FROM sqlite_master WHERE name='layer_styles'").fetchone():
                for table, qml in db.execute("SELECT f_table_name, styleQML FROM layer_styles "
                                             "ORDER BY useAsDefault ASC, update_time ASC"):
                    styles[table] = qml  # the default (last) wins
    except sqlite3.DatabaseError as exc:
        raise SggInputError(f"not a GeoPackage ({exc})", path=path) from None
    order = {"relations": 0, "objects": 1}
    rows.sort(key=lambda r: (order.get(r[0], 2), r[0]))
    return [{"name": t, "uri": f"{path}|layername={t}", "geometry": _WKB_NAMES.get(g.upper(), "Unknown"),
             "crs_wkt": d if srs and srs > 0 and d and d != "undefined" else None, "qml": styles.get(t)}
            for t, g, d, srs in rows]


def _sidecar(path: Path) -> str | None:
    qml = path.with_suffix(".qml")
    return qml.read_text(encoding="utf-8") if qml.is_file() else None


def _vector_crs(path: Path) -> str | None:
    try:
        import pyogrio

        crs = pyogrio.read_info(str(path)).get("crs")
    except Exception:  # noqa: BLE001 - unknown to GDAL here (e.g. GeoParquet): read the geo metadata
        crs = None
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            import json

            import pyarrow.parquet as pq

            md = pq.read_schema(str(path)).metadata or {}
            geo = json.loads(md.get(b"geo", b"{}"))
            col = geo.get("columns", {}).get(geo.get("primary_column", "geometry"), {})
            crs = col.get("crs")
            if isinstance(crs, dict):
                import pyproj

                return pyproj.CRS.from_json_dict(crs).to_wkt()
    if crs is None:
        return None
    import pyproj

    return pyproj.CRS.from_user_input(crs).to_wkt()


def expand_layers(layers: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """Layer records (name, OGR uri, geometry, CRS, style) for files or ``file|layername=x`` sources."""
    from sgg.graph.gis import relations_path

    out: list[dict[str, Any]] = []
    for item in layers:
        text = str(item)
        base, sep, rest = text.partition("|")
        path = Path(base)
        if not path.exists():
            raise SggInputError("layer file not found", path=path)
        suffix = path.suffix.lower()
        if suffix == ".gpkg":
            found = _gpkg_layers(path)
            if sep:
                want = dict(kv.split("=", 1) for kv in rest.split("|") if "=" in kv).get("layername")
                found = [r for r in found if r["name"] == want]
                if not found:
                    raise SggInputError(f"no feature layer {want!r} in the GeoPackage", path=path)
            out += found
        elif suffix == ".geojson":
            crs = _vector_crs(path)
            rel_qml = path.with_name(path.stem + ".relations.qml")
            out.append({"name": f"{path.stem} relations", "uri": f"{path}|geometrytype=LineString",
                        "geometry": "LineString", "crs_wkt": crs,
                        "qml": rel_qml.read_text(encoding="utf-8") if rel_qml.is_file() else None})
            out.append({"name": f"{path.stem} objects", "uri": f"{path}|geometrytype=Polygon",
                        "geometry": "Polygon", "crs_wkt": crs, "qml": _sidecar(path)})
        elif suffix in (".parquet", ".geoparquet") and not path.name.endswith(".relations.parquet"):
            rel = relations_path(path)
            if rel.is_file():
                out.append({"name": "relations", "uri": str(rel), "geometry": "LineString",
                            "crs_wkt": _vector_crs(rel), "qml": _sidecar(rel)})
            out.append({"name": "objects", "uri": str(path), "geometry": "Polygon", "crs_wkt": _vector_crs(path),
                        "qml": _sidecar(path)})
        else:
            root = _style_root(_sidecar(path))
            gtype = {"0": "Point", "1": "LineString", "2": "Polygon"}.get(
                root.findtext("layerGeometryType", "") if root is not None else "", "Unknown")
            out.append({"name": path.stem, "uri": text, "geometry": gtype, "crs_wkt": _vector_crs(path),
                        "qml": _sidecar(path)})
    return out


# --------------------------------------------------------------------------------------------------
# XML
# --------------------------------------------------------------------------------------------------
def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: str(v) for k, v in attrib.items()})
    if text is not None:
        el.text = str(text)
    return el


def _srs(parent: ET.Element, crs_wkt: str | None) -> ET.Element:
    """``<spatialrefsys>`` from WKT (srsid 0: QGIS reads the WKT); empty for no CRS (pixel frame)."""
    s = _sub(parent, "spatialrefsys", nativeFormat="Wkt")
    authid, desc, geographic = "", "", "false"
    if crs_wkt:
        import pyproj

        crs = pyproj.CRS.from_user_input(crs_wkt)
        crs_wkt = crs.to_wkt()
        auth = crs.to_authority(min_confidence=90)
        authid = f"{auth[0]}:{auth[1]}" if auth else ""
        desc, geographic = crs.name, "true" if crs.is_geographic else "false"
    _sub(s, "wkt", crs_wkt or "")
    _sub(s, "proj4", "")
    _sub(s, "srsid", "0")
    _sub(s, "srid", "0")
    _sub(s, "authid", authid)
    _sub(s, "description", desc)
    _sub(s, "projectionacronym", "")
    _sub(s, "ellipsoidacronym", "")
    _sub(s, "geographicflag", geographic)
    return s


def _relative(target: str, project_dir: Path) -> str:
    base, sep, rest = target.partition("|")
    try:
        rel = os.path.relpath(Path(base).resolve(), project_dir.resolve())
    except ValueError:  # another drive (Windows)
        return target
    return ("./" + rel.replace(os.sep, "/") if not rel.startswith("..") else rel.replace(os.sep, "/")) + sep + rest


def _extent_el(parent: ET.Element, tag: str, extent: Extent) -> None:
    el = _sub(parent, tag)
    for k, v in zip(("xmin", "ymin", "xmax", "ymax"), extent):
        _sub(el, k, repr(float(v)))


def _vector_layer(parent: ET.Element, rec: dict[str, Any], lid: str, source: str) -> None:
    style = _style_root(rec.get("qml"))
    geometry = {"Point": "Point", "Line": "Line", "Polygon": "Polygon"}.get(
        rec["geometry"].replace("Multi", "").replace("String", ""), "Unknown")
    ml = _sub(parent, "maplayer", type="vector", geometry=geometry,
              wkbType=rec["geometry"], autoRefreshEnabled="0", autoRefreshTime="0", refreshOnNotifyEnabled="0",
              refreshOnNotifyMessage="", hasScaleBasedVisibilityFlag="0", maxScale="0", minScale="100000000",
              readOnly="0", simplifyAlgorithm="0", simplifyDrawingHints="1", simplifyDrawingTol="1",
              simplifyLocal="1", simplifyMaxScale="1", styleCategories="AllStyleCategories",
              labelsEnabled=style.get("labelsEnabled", "0") if style is not None else "0")
    _sub(ml, "id", lid)
    _sub(ml, "datasource", source)
    _sub(ml, "layername", rec["name"])
    _srs(_sub(ml, "srs"), rec["crs_wkt"])
    _sub(ml, "provider", "ogr", encoding="UTF-8")
    if style is not None:
        for child in style:
            ml.append(child)


def _raster_info(raster: Path) -> dict[str, Any]:
    """Bands, data type, size, CRS and a display range of ``raster`` (rasterio, one decimated read)."""
    import warnings

    import numpy as np
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    from sgg.io.raster import open_dataset

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with open_dataset(raster) as src:  # never leaves a .aux.xml beside the user's raster
                info = {"count": src.count, "dtype": src.dtypes[0], "width": src.width, "height": src.height,
                        "crs_wkt": src.crs.to_wkt() if src.crs else None, "bounds": tuple(src.bounds),
                        "range": (0.0, 255.0)}
                if info["dtype"] != "uint8":
                    step = max(1, max(src.width, src.height) // 512)
                    data = src.read(out_shape=(src.count, max(1, src.height // step), max(1, src.width // step)),
                                    masked=True)
                    vals = data.compressed() if hasattr(data, "compressed") else np.asarray(data).ravel()
                    if vals.size:
                        lo, hi = np.percentile(vals, [2, 98])
                        info["range"] = (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
    except rasterio.errors.RasterioIOError as exc:
        raise SggInputError(f"cannot open the raster ({exc})", path=raster) from None
    return info


def _raster_layer(parent: ET.Element, info: dict[str, Any], name: str, lid: str, source: str) -> None:
    ml = _sub(parent, "maplayer", type="raster", autoRefreshEnabled="0", autoRefreshTime="0",
              refreshOnNotifyEnabled="0", refreshOnNotifyMessage="", hasScaleBasedVisibilityFlag="0",
              maxScale="0", minScale="1e+08", styleCategories="AllStyleCategories")
    _sub(ml, "id", lid)
    _sub(ml, "datasource", source)
    _sub(ml, "layername", name)
    _srs(_sub(ml, "srs"), info["crs_wkt"])
    _sub(ml, "provider", "gdal")
    pipe = _sub(ml, "pipe")
    lo, hi = info["range"]
    enhance = "NoEnhancement" if info["dtype"] == "uint8" else "StretchToMinimumMaximum"
    common = {"opacity": "1", "alphaBand": "-1", "nodataColor": ""}
    if info["count"] >= 3:
        rr = _sub(pipe, "rasterrenderer", type="multibandcolor", redBand="1", greenBand="2", blueBand="3", **common)
        names = ("redContrastEnhancement", "greenContrastEnhancement", "blueContrastEnhancement")
    else:
        rr = _sub(pipe, "rasterrenderer", type="singlebandgray", grayBand="1", gradient="BlackToWhite", **common)
        names = ("contrastEnhancement",)
    _sub(rr, "rasterTransparency")
    mm = _sub(rr, "minMaxOrigin")
    for k, v in (("limits", "None"), ("extent", "WholeRaster"), ("statAccuracy", "Estimated"),
                 ("cumulativeCutLower", "0.02"), ("cumulativeCutUpper", "0.98"), ("stdDevFactor", "2")):
        _sub(mm, k, v)
    for n in names:
        ce = _sub(rr, n)
        _sub(ce, "minValue", repr(lo))
        _sub(ce, "maxValue", repr(hi))
        _sub(ce, "algorithm", enhance)
    _sub(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    _sub(pipe, "huesaturation", saturation="0", grayscaleMode="0", colorizeOn="0", colorizeRed="255",
         colorizeGreen="128", colorizeBlue="128", colorizeStrength="100")
    _sub(pipe, "rasterresampler", maxOversampling="2")
    _sub(ml, "blendMode", "0")


def pixel_extent(width: int, height: int) -> tuple[float, float, float, float]:
    """Extent of an un-georeferenced ``width`` × ``height`` raster in QGIS' pixel frame (x = col, y = -row)."""
    return (0.0, -float(height), float(width), 0.0)


def project_xml(path: Path, raster: Path | None, layers: list[dict[str, Any]], crs_wkt: str | None,
                extent: Extent | None, title: str) -> bytes:
    """The ``.qgs`` document (see the module docstring)."""
    project_dir = Path(path).resolve().parent
    root = ET.Element("qgis", projectname=title, version=QGIS_VERSION, saveUser="sgg", saveUserFull="sgg",
                      saveDateTime=datetime.datetime.now().replace(microsecond=0).isoformat())
    _sub(root, "homePath", path="")
    _sub(root, "title", title)
    _sub(root, "transaction", mode="Disabled")
    _sub(root, "projectFlags", set="")
    _srs(_sub(root, "projectCrs"), crs_wkt)

    entries = []  # (id, name, source, provider, kind, record) top first
    for rec in layers:
        src = _relative(rec["uri"], project_dir)
        entries.append((_layer_id(rec["name"].replace(" ", "_"), rec["uri"]), rec["name"], src, "ogr", "vector", rec))
    info = None
    if raster is not None:
        info = _raster_info(Path(raster))
        rsrc = _relative(str(raster), project_dir)
        entries.append((_layer_id("raster", str(raster)), Path(raster).stem, rsrc, "gdal", "raster", None))
        if extent is None:
            extent = (pixel_extent(info["width"], info["height"]) if info["crs_wkt"] is None and crs_wkt is None
                      else info["bounds"])
    if extent is None:
        raise SggInputError("write_qgis_project: give an extent or a raster to take it from", path=path)
    if not (float(extent[2]) > float(extent[0]) and float(extent[3]) > float(extent[1])):
        raise SggInputError(f"write_qgis_project: empty extent {tuple(extent)}", path=path)

    tree = _sub(root, "layer-tree-group")
    _sub(tree, "customproperties")
    for lid, name, src, prov, _, _ in entries:
        node = _sub(tree, "layer-tree-layer", id=lid, name=name, source=src, providerKey=prov, expanded="1",
                    checked="Qt::Checked", legend_exp="")
        _sub(node, "customproperties")
    order = _sub(tree, "custom-order", enabled="0")
    for lid, *_ in entries:
        _sub(order, "item", lid)

    canvas = _sub(root, "mapcanvas", name="theMapCanvas", annotationsVisible="1")
    _sub(canvas, "units", "meters" if crs_wkt else "unknown")
    _extent_el(canvas, "extent", extent)
    _sub(canvas, "rotation", "0")
    _srs(_sub(canvas, "destinationsrs"), crs_wkt)
    _sub(canvas, "rendermaptile", "0")

    pl = _sub(root, "projectlayers")
    for lid, name, src, _, kind, rec in entries:
        if kind == "vector":
            _vector_layer(pl, rec, lid, src)
        else:
            _raster_layer(pl, info, name, lid, src)
    lo = _sub(root, "layerorder")
    for lid, *_ in entries:
        _sub(lo, "layer", id=lid)

    props = _sub(root, "properties")
    paths = _sub(props, "Paths")
    _sub(paths, "Absolute", "false", type="bool")
    srs = _sub(props, "SpatialRefSys")  # QGIS reads <projectCrs> only with ProjectionsEnabled set
    _sub(srs, "ProjectionsEnabled", "1" if crs_wkt else "0", type="int")
    view = _sub(root, "ProjectViewSettings", UseProjectScales="0", rotation="0")
    _sub(view, "Scales")
    dve = _sub(view, "DefaultViewExtent", xmin=repr(float(extent[0])), ymin=repr(float(extent[1])),
               xmax=repr(float(extent[2])), ymax=repr(float(extent[3])))
    _srs(dve, crs_wkt)
    ET.indent(root, space=" ")
    return (b"<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            + ET.tostring(root, encoding="utf-8", xml_declaration=False))


def write_qgis_project(
    path: str | os.PathLike,
    raster_path: str | os.PathLike | None,
    layers: Sequence[str | os.PathLike],
    crs_wkt: str | None = None,
    extent: Extent | None = None,
    *,
    title: str | None = None,
) -> Path:
    """Write a QGIS project (``.qgz``, or plain ``.qgs``) showing ``raster_path`` under ``layers``.

    ``layers``: sgg outputs (``.gpkg``, ``.geojson``, ``.parquet``), other vector files or OGR sources
    ``file|layername=x``; first listed on top. ``crs_wkt``: the project CRS (None: pixel frame of an
    un-georeferenced raster). ``extent`` ``(xmin, ymin, xmax, ymax)`` in that frame: the initial view
    (default: the raster's extent). Written atomically; returns ``path``.
    """
    from sgg.io.atomic import atomic_paths

    path = Path(path)
    if path.suffix.lower() not in (".qgz", ".qgs"):
        raise SggInputError("a QGIS project file ends in .qgz (or .qgs)", path=path)
    if raster_path is not None and not Path(raster_path).is_file():
        raise SggInputError("raster not found", path=raster_path)
    records = expand_layers(layers)
    xml = project_xml(path, None if raster_path is None else Path(raster_path), records, crs_wkt, extent,
                      title or path.stem)
    with atomic_paths(path) as (tmp,):
        if path.suffix.lower() == ".qgs":
            tmp.write_bytes(xml)
        else:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(path.stem + ".qgs", xml)
    return path


def write_scene_project(path: str | os.PathLike, graph_file: str | os.PathLike, sg: Any,
                        raster_path: str | os.PathLike | None = None) -> Path:
    """Project for one exported scene: its raster (``sg.image_path`` unless given) under ``graph_file``'s
    layers, in the scene's CRS (pixel frame without one), zoomed to the raster (or the objects)."""
    raster = raster_path or sg.image_path
    if raster is not None and not Path(raster).is_file():
        import warnings

        warnings.warn(f"QGIS project: raster {raster} not found; the project holds the layers only",
                      UserWarning, stacklevel=2)
        raster = None
    from sgg.graph.tables import scene_crs

    crs = scene_crs(sg)
    extent = None
    if raster is None:
        if sg.image_size is not None and crs is None:
            extent = pixel_extent(*sg.image_size)
        elif len(sg.detections):
            from sgg.graph.tables import PIXEL_FRAME, box_corners

            c = box_corners(sg.detections.boxes.tensor.detach().cpu().double().numpy())
            c = sg.georef.pixel_to_map(c) if crs else c * PIXEL_FRAME
            extent = (c[..., 0].min(), c[..., 1].min(), c[..., 0].max(), c[..., 1].max())
        else:
            extent = (0.0, -1.0, 1.0, 0.0)
    return write_qgis_project(path, raster, [graph_file], crs, extent)
