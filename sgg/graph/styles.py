"""QGIS layer styles of the exported layers (QML, QGIS 3.22+, plus a plain SLD for other clients).

* ``objects``: categorized on ``class`` (one legend entry per class present, named by class). Low-score
  objects recede: the fill and outline opacity and the outline width grow with ``score`` (data-defined
  expressions), and small objects are drawn over large ones (order by area), so aircraft stay visible over
  the apron they stand on. Class names label the footprints at large scales; hovering shows class, score, id.
* ``relations``: rule-based — learned edges (``source`` model/annotation) as arrows subject → object
  coloured by predicate; topological edges (``source = 'geometry'``) as thin grey dashes without head.
  Predicate labels along the line at large scales; hovering shows the triplet.

A class or predicate missing from the vocabulary gets a neutral grey and a warning. Every symbol layer
carries both property encodings: ``<Option>`` maps (QGIS >= 3.26) and legacy ``<prop>`` (Debian's 3.22).
"""

from __future__ import annotations

import colorsys
import warnings
from collections.abc import Iterable

NEUTRAL = (128, 128, 128)
GEOMETRY_COLOUR = (150, 150, 150)
LABEL_SCALE = 1500  # labels show when zoomed in beyond 1:LABEL_SCALE
DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>"

# score → opacity (0..255) and outline width (mm); QGIS expressions and their Python twins agree
FILL_ALPHA = (10, 50)  # alpha = a + b * score
LINE_ALPHA = (80, 175)
LINE_WIDTH = (0.2, 0.5)


# (saturation, value) cycled by class index: neighbouring hues of the golden walk differ in tone too
_TONES = ((0.75, 0.95), (0.95, 0.7), (0.55, 0.85))


def class_colour(index: int) -> tuple[int, int, int]:
    """A stable colour per class index (golden-angle hue walk, three tones)."""
    h = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, *_TONES[index % 3])
    return int(r * 255), int(g * 255), int(b * 255)


def predicate_colour(index: int) -> tuple[int, int, int]:
    """A stable colour per predicate index (own hue walk, darker than the classes so arrows stand out)."""
    h = (0.09 + index * 0.381966011250105) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 0.85)
    return int(r * 255), int(g * 255), int(b * 255)


def colour_table(names: Iterable[str], vocabulary: list[str], colour, what: str) -> dict[str, tuple[int, int, int]]:
    """``{name: rgb}`` by vocabulary index; names outside the vocabulary get :data:`NEUTRAL` and a warning."""
    index = {n: i for i, n in enumerate(vocabulary)}
    out, unknown = {}, []
    for n in names:
        if n in index:
            out[n] = colour(index[n])
        else:
            out[n] = NEUTRAL
            unknown.append(n)
    if unknown:
        warnings.warn(f"style: {what} {sorted(unknown)} not in the vocabulary; drawn in neutral grey",
                      UserWarning, stacklevel=3)
    return out


def fill_alpha(score: float) -> int:
    return int(round(FILL_ALPHA[0] + FILL_ALPHA[1] * min(max(score, 0.0), 1.0)))


# --------------------------------------------------------------------------------------------------
# XML pieces
# --------------------------------------------------------------------------------------------------
def xml_escape(s: str) -> str:
    return str(s).replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def _rgba(rgb: tuple[int, int, int], a: int = 255) -> str:
    return f"{rgb[0]},{rgb[1]},{rgb[2]},{a}"


def _props(props: dict[str, str]) -> str:
    options = "".join(f'<Option name="{k}" type="QString" value="{xml_escape(v)}"/>' for k, v in props.items())
    legacy = "".join(f'<prop k="{k}" v="{xml_escape(v)}"/>' for k, v in props.items())
    return f'<Option type="Map">{options}</Option>{legacy}'


def _data_defined(exprs: dict[str, str]) -> str:
    """``<data_defined_properties>`` with one active expression per property name (fillColor, ...)."""
    items = "".join(
        f'<Option name="{k}" type="Map"><Option name="active" type="bool" value="true"/>'
        f'<Option name="expression" type="QString" value="{xml_escape(e)}"/>'
        f'<Option name="type" type="int" value="3"/></Option>'
        for k, e in exprs.items()
    )
    return ('<data_defined_properties><Option type="Map"><Option name="name" type="QString" value=""/>'
            f'<Option name="properties" type="Map">{items}</Option>'
            '<Option name="type" type="QString" value="collection"/></Option></data_defined_properties>')


def _layer(cls: str, props: dict[str, str], exprs: dict[str, str] | None = None, sub: str = "") -> str:
    dd = _data_defined(exprs or {})
    return f'<layer class="{cls}" enabled="1" locked="0" pass="0">{_props(props)}{dd}{sub}</layer>'


def _symbol(name: str, kind: str, layers: str) -> str:
    return (f'<symbol name="{name}" type="{kind}" alpha="1" clip_to_extent="1" force_rhr="0">'
            f'{_data_defined({})}{layers}</symbol>')


def _labeling(field: str, colour: tuple[int, int, int], placement: int, scale: int = LABEL_SCALE,
              expression: bool = False) -> str:
    """Simple labeling on ``field``, visible only when zoomed in beyond 1:``scale`` (QGIS stores that
    most-zoomed-out denominator as ``scaleMax``)."""
    return (
        '<labeling type="simple"><settings calloutType="simple">'
        f'<text-style fieldName="{xml_escape(field)}" isExpression="{int(expression)}" fontSize="8" fontSizeUnit="Point" '
        f'textColor="{_rgba(colour)}" textOpacity="1" fontWeight="75" fontFamily="Sans Serif" namedStyle="Bold" '
        'multilineHeight="1" allowHtml="0" capitalization="0" blendMode="0" previewBkgrdColor="255,255,255,255">'
        '<families/><text-buffer bufferDraw="1" bufferSize="0.8" bufferSizeUnits="MM" bufferColor="255,255,255,255" '
        'bufferOpacity="0.85" bufferJoinStyle="128" bufferNoFill="1" bufferBlendMode="0"/></text-style>'
        '<text-format wrapChar="" autoWrapLength="0" multilineAlign="3" plussign="0" reverseDirectionSymbol="0" '
        'leftDirectionSymbol="&lt;" rightDirectionSymbol="&gt;" placeDirectionSymbol="0" formatNumbers="0" '
        'decimals="3" addDirectionSymbol="0"/>'
        f'<placement placement="{placement}" placementFlags="10" dist="0" distUnits="MM" priority="5" '
        'centroidWhole="0" centroidInside="1" fitInPolygonOnly="0" overrunDistance="0" overrunDistanceUnit="MM" '
        'repeatDistance="0" offsetType="0" quadOffset="4" xOffset="0" yOffset="0" offsetUnits="MM" rotationAngle="0" '
        'preserveRotation="1" maxCurvedCharAngleIn="25" maxCurvedCharAngleOut="-25" layerType="UnknownGeometry" '
        'geometryGenerator="" geometryGeneratorEnabled="0" geometryGeneratorType="PointGeometry" '
        'lineAnchorPercent="0.5" lineAnchorType="0" lineAnchorClipping="0" polygonPlacementFlags="2" '
        'allowDegraded="0" overlapHandling="PreventOverlap"/>'
        f'<rendering scaleVisibility="1" scaleMax="{scale}" scaleMin="0" obstacle="1" obstacleType="1" '
        'obstacleFactor="1" displayAll="0" upsidedownLabels="0" labelPerPart="0" mergeLines="0" minFeatureSize="0" '
        'limitNumLabels="0" maxNumLabels="2000" drawLabels="1" fontMinPixelSize="3" fontMaxPixelSize="10000" '
        'fontLimitPixelSize="0" zIndex="0" unplacedVisibility="0"/>'
        '<dd_properties><Option type="Map"><Option name="name" type="QString" value=""/>'
        '<Option name="properties"/><Option name="type" type="QString" value="collection"/></Option></dd_properties>'
        "</settings></labeling>"
    )


def _qml(body: str, geometry_type: int, map_tip: str) -> str:
    return (
        f'{DOCTYPE}\n<qgis version="3.22.0" styleCategories="Symbology|Labeling|MapTips|Rendering" '
        f'labelsEnabled="1">\n{body}\n<blendMode>0</blendMode><featureBlendMode>0</featureBlendMode>'
        f"<layerOpacity>1</layerOpacity><mapTip>{xml_escape(map_tip)}</mapTip>"
        f"<layerGeometryType>{geometry_type}</layerGeometryType>\n</qgis>\n"
    )


# --------------------------------------------------------------------------------------------------
# Layer styles
# --------------------------------------------------------------------------------------------------
def objects_qml(classes: list[str], vocabulary: list[str]) -> str:
    """Categorized fill style on ``class`` (legend: ``classes`` in order), opacity and outline by score."""
    colours = colour_table(classes, vocabulary, class_colour, "classes")
    cats, syms = [], []
    for i, name in enumerate(classes):
        rgb = colours[name]
        props = {"color": _rgba(rgb, fill_alpha(1.0)), "outline_color": _rgba(rgb), "outline_style": "solid",
                 "outline_width": str(sum(LINE_WIDTH)), "outline_width_unit": "MM", "style": "solid",
                 "joinstyle": "miter"}
        score = 'min(max(coalesce("score", 1), 0), 1)'
        exprs = {
            "fillColor": f"color_rgba({rgb[0]},{rgb[1]},{rgb[2]},{FILL_ALPHA[0]}+{FILL_ALPHA[1]}*{score})",
            "strokeColor": f"color_rgba({rgb[0]},{rgb[1]},{rgb[2]},{LINE_ALPHA[0]}+{LINE_ALPHA[1]}*{score})",
            "strokeWidth": f"{LINE_WIDTH[0]}+{LINE_WIDTH[1]}*{score}",
        }
        cats.append(f'<category render="true" symbol="{i}" value="{xml_escape(name)}" label="{xml_escape(name)}" '
                    'type="string"/>')
        syms.append(_symbol(str(i), "fill", _layer("SimpleFill", props, exprs)))
    renderer = (
        '<renderer-v2 type="categorizedSymbol" attr="class" symbollevels="0" forceraster="0" enableorderby="1" '
        'referencescale="-1"><categories>' + "".join(cats) + "</categories><symbols>" + "".join(syms)
        + '</symbols><rotation/><sizescale/><orderby><orderByClause asc="0" nullsFirst="0">$area</orderByClause>'
        "</orderby></renderer-v2>"
    )
    tip = '[% "class" %] #[% "id" %], score [% round("score", 2) %]'
    return _qml(renderer + _labeling("class", (20, 20, 20), placement=1), 2, tip)


def _arrow_symbol(name: str, rgb: tuple[int, int, int]) -> str:
    line = _layer("SimpleLine", {"line_color": _rgba(rgb), "line_style": "solid", "line_width": "0.35",
                                 "line_width_unit": "MM", "capstyle": "round", "joinstyle": "round"},
                  {"strokeColor": f'color_rgba({rgb[0]},{rgb[1]},{rgb[2]},'
                                  f'{LINE_ALPHA[0]}+{LINE_ALPHA[1]}*min(max(coalesce("score", 1), 0), 1))'})
    head = _symbol(f"@{name}@1", "marker", _layer(
        "SimpleMarker", {"name": "filled_arrowhead", "color": _rgba(rgb), "outline_color": _rgba(rgb),
                         "outline_style": "no", "size": "2.2", "size_unit": "MM", "angle": "0",
                         "horizontal_anchor_point": "2", "vertical_anchor_point": "1", "scale_method": "diameter"}))
    marker = _layer("MarkerLine", {"placement": "lastvertex", "placements": "LastVertex", "rotate": "1",
                                   "interval": "3", "offset": "0", "offset_along_line": "0"}, sub=head)
    return _symbol(name, "line", line + marker)


def relations_qml(predicates: list[str], vocabulary: list[str], geometry: bool = True) -> str:
    """Rule-based line style: arrows coloured by predicate for learned edges, grey dashes for topology."""
    colours = colour_table(predicates, vocabulary, predicate_colour, "predicates")
    rules, syms = [], []
    for i, name in enumerate(predicates):
        flt = f"\"source\" <> 'geometry' AND \"predicate\" = '{name.replace(chr(39), chr(39) * 2)}'"
        rules.append(f'<rule key="{{p{i}}}" filter="{xml_escape(flt)}" label="{xml_escape(name)}" symbol="{i}"/>')
        syms.append(_arrow_symbol(str(i), colours[name]))
    if geometry:
        g = len(predicates)
        rules.append(f'<rule key="{{geometry}}" filter="{xml_escape(chr(34) + "source" + chr(34))} = \'geometry\'" '
                     f'label="topology (from geometry)" symbol="{g}"/>')
        syms.append(_symbol(str(g), "line", _layer(
            "SimpleLine", {"line_color": _rgba(GEOMETRY_COLOUR, 200), "line_style": "dash", "line_width": "0.25",
                           "line_width_unit": "MM", "capstyle": "flat", "joinstyle": "round"})))
    renderer = ('<renderer-v2 type="RuleRenderer" symbollevels="0" forceraster="0" enableorderby="0" '
                'referencescale="-1"><rules key="{root}">' + "".join(rules) + "</rules><symbols>"
                + "".join(syms) + "</symbols></renderer-v2>")
    tip = ('[% "subject_class" %] #[% "subject" %] [% "predicate" %] [% "object_class" %] #[% "object" %] '
           '([% "source" %], score [% round("score", 2) %])')
    label = "CASE WHEN \"source\" <> 'geometry' THEN \"predicate\" END"  # topology: hover only
    return _qml(renderer + _labeling(label, (40, 40, 40), placement=2, expression=True), 1, tip)


def _sld(layer: str, rules: list[str]) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><StyledLayerDescriptor version="1.1.0" '
        'xmlns="http://www.opengis.net/sld" xmlns:ogc="http://www.opengis.net/ogc" '
        f'xmlns:se="http://www.opengis.net/se"><NamedLayer><se:Name>{layer}</se:Name><UserStyle>'
        "<se:Name>sgg</se:Name><se:FeatureTypeStyle>" + "".join(rules)
        + "</se:FeatureTypeStyle></UserStyle></NamedLayer></StyledLayerDescriptor>"
    )


def _sld_rule(name: str, field: str, rgb: tuple[int, int, int], symbolizer: str) -> str:
    hexc = f"#{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}"
    stroke = f'<se:Stroke><se:SvgParameter name="stroke">{hexc}</se:SvgParameter></se:Stroke>'
    fill = (f'<se:Fill><se:SvgParameter name="fill">{hexc}</se:SvgParameter>'
            '<se:SvgParameter name="fill-opacity">0.3</se:SvgParameter></se:Fill>' if symbolizer == "Polygon" else "")
    return (f"<se:Rule><se:Name>{xml_escape(name)}</se:Name><ogc:Filter><ogc:PropertyIsEqualTo>"
            f"<ogc:PropertyName>{field}</ogc:PropertyName><ogc:Literal>{xml_escape(name)}</ogc:Literal>"
            f"</ogc:PropertyIsEqualTo></ogc:Filter><se:{symbolizer}Symbolizer>{fill}{stroke}"
            f"</se:{symbolizer}Symbolizer></se:Rule>")


def objects_sld(classes: list[str], vocabulary: list[str]) -> str:
    with warnings.catch_warnings():  # the QML already warned
        warnings.simplefilter("ignore")
        colours = colour_table(classes, vocabulary, class_colour, "classes")
    return _sld("objects", [_sld_rule(c, "class", colours[c], "Polygon") for c in classes])


def relations_sld(predicates: list[str], vocabulary: list[str]) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        colours = colour_table(predicates, vocabulary, predicate_colour, "predicates")
    return _sld("relations", [_sld_rule(p, "predicate", colours[p], "Line") for p in predicates])


def ordered_names(present: Iterable[str], vocabulary: list[str]) -> list[str]:
    """Names present in the data: vocabulary order first, then unknown names sorted."""
    present = {str(p) for p in present}
    return [c for c in vocabulary if c in present] + sorted(present - set(vocabulary))


def layer_qml(objects, relations, meta: dict) -> dict[str, str]:
    """``{"objects": qml, "relations": qml}`` for the frames of :func:`sgg.graph.gis.frames`."""
    classes, predicates = list(meta["vocabulary"]["objects"]), list(meta["vocabulary"]["predicates"])
    learned = relations.loc[relations["source"] != "geometry", "predicate"] if len(relations) else []
    return {
        "objects": objects_qml(ordered_names(objects["class"], classes), classes),
        "relations": relations_qml(ordered_names(learned, predicates), predicates),
    }
