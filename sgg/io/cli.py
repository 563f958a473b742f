"""``sgg info PATH``: describe a raster — size, bands, dtype, CRS, GSD, pyramid levels and tile counts."""

from __future__ import annotations

import json
import sys
import warnings


def describe(path: str, tile_size: int = 1024, overlap: int = 200, bands=None) -> dict:
    """A JSON-friendly summary of the raster at ``path`` (raises SggInputError for bad files)."""
    from sgg.io.raster import NoCRSWarning, RasterScene

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NoCRSWarning)
        scene = RasterScene.open(path, bands=bands)
    with scene:
        levels = []
        for level in scene.levels(tile_size):
            w, h = scene.level_shape(level)
            levels.append({"level": level, "scale": 2**level, "width": w, "height": h,
                           "tiles": len(scene.tile_windows(tile_size, overlap, level))})
        t = scene.transform
        return {
            "path": str(scene.path),
            "width": scene.width,
            "height": scene.height,
            "count": scene.count,
            "dtype": scene.dtype,
            "bands": list(scene.bands),
            "nodata": scene.nodata,
            "crs": scene.crs.to_string() if scene.crs else None,
            "georeferenced": scene.georeferenced,
            "transform": [t.a, t.b, t.c, t.d, t.e, t.f],
            "gsd_m": scene.gsd,
            "block_shape": list(scene.block_shape),
            "overviews": scene.overviews,
            "tile_size": tile_size,
            "overlap": overlap,
            "levels": levels,
            "warnings": [str(w.message) for w in caught],
        }


def _format(info: dict) -> str:
    gsd = f"{info['gsd_m']:.4g} m" if info["gsd_m"] else "n/a (not a projected CRS)"
    lines = [
        f"file        {info['path']}",
        f"size        {info['width']} x {info['height']} px, {info['count']} band(s) of {info['dtype']}"
        + (f", nodata {info['nodata']:g}" if info["nodata"] is not None else ""),
        f"bands used  {', '.join(map(str, info['bands']))}",
        f"crs         {info['crs'] or 'none (pixel coordinates)'}",
        f"gsd         {gsd}",
        f"blocks      {info['block_shape'][1]} x {info['block_shape'][0]}; overviews "
        + (", ".join(map(str, info["overviews"])) or "none"),
        f"tiles       {info['tile_size']} px, overlap {info['overlap']} px",
    ]
    for lv in info["levels"]:
        n = lv["tiles"]
        lines.append(f"  level {lv['level']} (1/{lv['scale']}): {lv['width']} x {lv['height']} px, "
                     f"{n} tile{'s' if n != 1 else ''}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from sgg.cli_support import ArgumentParser, UsageError, input_path, int_range

    parser = ArgumentParser(prog="sgg info", description=__doc__.split(":", 1)[1].strip(),
                            quiet_help="no warnings")
    parser.add_argument("path", help="raster file (GeoTIFF, PNG, JPEG, anything GDAL reads)")
    parser.add_argument("--tile-size", type=int_range(1), default=1024, help="tile size in px")
    parser.add_argument("--overlap", type=int_range(0), default=200, help="overlap between tiles in px")
    parser.add_argument("--bands", type=int_range(1), nargs="+", default=None, help="1-based bands to use")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    ns = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if ns.overlap >= ns.tile_size:
        raise UsageError(f"--overlap {ns.overlap} must be smaller than --tile-size {ns.tile_size}")
    input_path(ns.path, "PATH")
    info = describe(ns.path, ns.tile_size, ns.overlap, ns.bands)
    if ns.json:
        print(json.dumps(info, indent=2))
        return 0
    print(_format(info))
    for w in info["warnings"]:  # through the one warning channel (deduplicated, silenced by --quiet)
        warnings.warn(w, UserWarning, stacklevel=1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
