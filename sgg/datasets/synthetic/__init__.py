"""Synthetic STAR-vocabulary scenes: georeferenced GeoTIFFs with oriented boxes and rule-made relations.

Modules, lowest first (each imports only those before it): ``render`` (shapes and drawing), ``builder``
(object builder, local frames, roads and traffic), ``sites`` (harbour, airport, parking) and ``facilities``
(industrial, energy, sports, dam, construction), ``layouts`` (regions, road network, power lines; composes
a scene from the sites), ``relations`` (predicate rules on the generated geometry) and ``generator``
(``generate_scene`` / ``generate_dataset``: draw, annotate, write).
"""

from __future__ import annotations

from sgg.datasets.synthetic.generator import UTM_EPSG, generate_dataset, generate_scene, georeference, write_image
from sgg.datasets.synthetic.layouts import KINDS, LAYOUTS

__all__ = ["generate_scene", "generate_dataset", "georeference", "write_image", "LAYOUTS", "KINDS", "UTM_EPSG"]
