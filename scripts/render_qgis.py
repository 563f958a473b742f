#!/usr/bin/env python3
"""Render sgg outputs with real QGIS (PyQGIS, headless) and report what QGIS made of them.

Runs with the interpreter that has PyQGIS (Debian: ``apt-get install python3-qgis``, then the system
``/usr/bin/python3``), not with sgg's virtual environment; it imports nothing from sgg.

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 scripts/render_qgis.py --project scene.qgz --out scene.png
    QT_QPA_PLATFORM=offscreen /usr/bin/python3 scripts/render_qgis.py --layers scene.gpkg --raster scene.tif \
        --out scene.png --report scene.json

``--project``: open the project, list its layers (top first) and render them at the project's default
view. ``--layers``: load each GeoPackage's feature layers as QGIS' "add layer" does (the default style
comes from the ``layer_styles`` table) over ``--raster``. The JSON report lists per layer: validity,
CRS validity, feature count, renderer type, legend labels, labels enabled, styles stored in the database;
plus the project CRS and the rendered extent, so that a test can map pixels to coordinates.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _layer_report(layer, QgsMapLayerType) -> dict:
    rep = {"name": layer.name(), "valid": layer.isValid(), "crs_valid": layer.crs().isValid(),
           "crs": layer.crs().authid(), "source": layer.source()}
    if layer.type() == QgsMapLayerType.VectorLayer:
        r = layer.renderer()
        rep.update(type="vector", features=layer.featureCount(), renderer=r.type() if r else None,
                   legend=[item.label() for item in r.legendSymbolItems()] if r else [],
                   labels_enabled=bool(layer.labelsEnabled()), geometry=layer.geometryType())
        try:
            _, _, names, _, _ = layer.listStylesInDatabase()
            rep["db_styles"] = list(names)
        except Exception:  # noqa: BLE001 - providers without style storage
            rep["db_styles"] = []
    else:
        rep.update(type="raster", bands=layer.bandCount(), renderer=layer.renderer().type(),
                   width=layer.width(), height=layer.height())
    ext = layer.extent()
    rep["extent"] = [ext.xMinimum(), ext.yMinimum(), ext.xMaximum(), ext.yMaximum()]
    return rep


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--project", help=".qgz/.qgs project to open and render")
    src.add_argument("--layers", nargs="+", help="vector files (GeoPackages expand to their feature layers)")
    p.add_argument("--raster", help="with --layers: raster drawn below")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--width", type=int, default=800, help="PNG width; height follows the extent's aspect")
    p.add_argument("--extent", help="xmin,ymin,xmax,ymax (default: project view, else the raster/layers)")
    p.add_argument("--report", help="JSON report path (default: stdout)")
    args = p.parse_args(argv)

    from qgis.core import (
        QgsApplication,
        QgsCoordinateReferenceSystem,
        QgsMapLayerType,
        QgsMapRendererSequentialJob,
        QgsMapSettings,
        QgsProject,
        QgsRasterLayer,
        QgsRectangle,
        QgsVectorLayer,
    )
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    app = QgsApplication([], False)
    app.initQgis()
    report: dict = {"qgis": __import__("qgis.core", fromlist=["Qgis"]).Qgis.QGIS_VERSION}
    project = QgsProject.instance()
    if args.project:
        report["project_read"] = bool(project.read(args.project))
        layers = project.layerTreeRoot().layerOrder()  # top first
        crs = project.crs()
        view = project.viewSettings().defaultViewExtent()
        extent = QgsRectangle(view) if not view.isEmpty() else None
    else:
        layers = []
        for path in args.layers:
            if path.lower().endswith(".gpkg"):
                from osgeo import ogr

                ds = ogr.Open(path)
                names = [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())
                         if ds.GetLayer(i).GetGeomType() != ogr.wkbNone]
                names.sort(key=lambda n: {"relations": 0, "objects": 1}.get(n, 2))
                layers += [QgsVectorLayer(f"{path}|layername={n}", n, "ogr") for n in names]
            else:
                layers.append(QgsVectorLayer(path, os.path.basename(path), "ogr"))
        if args.raster:
            layers.append(QgsRasterLayer(args.raster, "raster", "gdal"))
        for lyr in layers:
            project.addMapLayer(lyr, False)
        crs = next((lyr.crs() for lyr in reversed(layers) if lyr.crs().isValid()), QgsCoordinateReferenceSystem())
        extent = None
    if args.extent:
        extent = QgsRectangle(*[float(v) for v in args.extent.split(",")])
    if extent is None:
        extent = QgsRectangle()
        for lyr in layers:
            extent.combineExtentWith(lyr.extent())
    report.update(project_crs_valid=crs.isValid(), project_crs=crs.authid(),
                  layers=[_layer_report(lyr, QgsMapLayerType) for lyr in layers],
                  extent=[extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()])

    ms = QgsMapSettings()
    ms.setLayers(layers)
    if crs.isValid():
        ms.setDestinationCrs(crs)
    height = max(1, round(args.width * extent.height() / extent.width()))
    ms.setOutputSize(QSize(args.width, height))
    ms.setExtent(extent)
    ms.setBackgroundColor(QColor(255, 255, 255))
    ms.setOutputDpi(96)
    job = QgsMapRendererSequentialJob(ms)
    job.start()
    job.waitForFinished()
    img = job.renderedImage()
    report["png"] = {"path": args.out, "width": img.width(), "height": img.height(), "saved": img.save(args.out, "PNG")}
    vis = ms.visibleExtent()
    report["rendered_extent"] = [vis.xMinimum(), vis.yMinimum(), vis.xMaximum(), vis.yMaximum()]
    report["errors"] = [f"{e.layerID}: {e.message}" for e in job.errors()]
    text = json.dumps(report, indent=1)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        print(text)
    return 0 if report["png"]["saved"] else 1


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    os._exit(rc)  # skip Qt/QGIS teardown: PyQGIS 3.22 may crash on exit after layers were made in Python
