"""Scene graphs as networkx graphs and GIS layers (DESIGN.md section 5.6).

``to_networkx(sg)`` / ``from_networkx(g)`` convert in memory; ``export(sg, path)`` writes GeoPackage 1.2,
GeoJSON, GeoParquet, GraphML or node-link JSON; ``read(path)`` gives the SceneGraph back;
``topological_relations(sg)`` names footprint relations (DE-9IM / RCC8). Heavy libraries load lazily.
"""

from __future__ import annotations

from importlib import import_module

_LAZY = {
    "to_networkx": "sgg.graph.networkx_io",
    "from_networkx": "sgg.graph.networkx_io",
    "export": "sgg.graph.formats",
    "read": "sgg.graph.formats",
    "FORMATS": "sgg.graph.formats",
    "topological_relations": "sgg.graph.topology",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sgg.graph' has no attribute {name!r}")
