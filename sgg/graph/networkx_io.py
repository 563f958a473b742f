"""SceneGraph ⇄ ``networkx.MultiDiGraph``, GraphML and node-link JSON.

Nodes are object indices ``0..N-1`` with ``class, class_index, score, box [cx,cy,w,h,angle], polygon``
(four pixel corners), ``map_polygon`` (the same corners in the raster's CRS, only when it has one),
``level`` (pyramid level, -1 = unknown) and ``difficult`` (annotations with the flag). Edges run subject →
object, keyed by an integer unique in the graph (the annotation row, or the triplet's rank − 1), with
``predicate, predicate_index, score, rank, source``. Graph attributes hold the run record of
:func:`sgg.graph.tables.scene_meta` (``crs`` is the raster's WKT or None).

Node-link JSON names edge ends ``subject``/``object`` (not networkx's default ``source``/``target``, which
would clash with the edge attribute ``source``); pass ``source="subject", target="object"`` to
``networkx.node_link_graph``. GraphML only stores scalars: lists and dicts are written as JSON strings and
None values are left out;
:func:`from_networkx` decodes them, so GraphML graphs invert like in-memory ones.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from sgg.graph.tables import EDGE_COLUMNS, SCORE_COLUMNS, scene_from_tables, scene_tables

# graph attribute ← run-record key (crs is the name users expect on a graph)
_GRAPH_KEYS = {"crs": "crs_wkt"}
_JSON_GRAPH = ("transform", "vocabulary", "image_size", "metadata", "options")
_JSON_NODE = ("box", "polygon", "map_polygon")


def to_networkx(
    sg: Any,
    top_k: int | None = None,
    per_pair: int = 1,
    min_score: float | None = None,
    topology: bool = False,
    distance: float = 0.0,
    full_scores: bool = False,
):
    """The scene graph as a ``networkx.MultiDiGraph`` (a pair may carry several predicates).

    Predictions give one edge per triplet kept by ``sg.triplets(top_k, per_pair)`` with score ≥
    ``min_score``; annotations one edge per labelled row. ``topology=True`` adds footprint relations
    (:func:`sgg.graph.topology.topological_relations`, ``distance`` in pixels) with ``source='geometry'``.
    ``full_scores=True`` (predictions) puts ``pair``, ``pair_score`` and the pair's whole
    ``predicate_scores`` vector on each model edge, so :func:`from_networkx` rebuilds them exactly.
    """
    nodes, edges, meta = scene_tables(sg, top_k=top_k, per_pair=per_pair, min_score=min_score,
                                      topology=topology, distance=distance, full_scores=full_scores)
    return graph_from_tables(nodes, edges, meta)


def graph_from_tables(nodes: dict[str, np.ndarray], edges: dict[str, np.ndarray], meta: dict[str, Any]):
    import networkx as nx

    g = nx.MultiDiGraph()
    g.graph.update({k: v for k, v in meta.items() if k != "crs_wkt"})
    g.graph["crs"] = meta["crs_wkt"]
    n = len(nodes["id"])
    cols = {
        "class": nodes["class"].tolist(),
        "class_index": nodes["class_index"].tolist(),
        "score": nodes["score"].tolist(),
        "box": np.stack([nodes[c] for c in ("cx", "cy", "w", "h", "angle")], axis=1).reshape(n, 5).tolist(),
        "polygon": nodes["corners"].tolist(),
        "level": nodes["level"].tolist(),
    }
    if meta["coordinates"] == "map":
        cols["map_polygon"] = nodes["map_corners"].tolist()
    if meta["has_difficult"]:
        cols["difficult"] = nodes["difficult"].tolist()
    names = list(cols)
    g.add_nodes_from(zip(nodes["id"].tolist(), (dict(zip(names, row)) for row in zip(*cols.values()))))
    ecols = {c: edges[c].tolist() for c in EDGE_COLUMNS if c not in ("subject", "object", "key")}
    extra = [c for c in SCORE_COLUMNS if c in edges]
    for c in extra:  # absent values (geometry edges, no pair scores) are left out, not stored as NaN/None
        vals = edges[c]
        bad = (vals < 0) if c == "pair" else np.isnan(vals) if c == "pair_score" else vals == None
        ecols[c] = [None if b else v for b, v in zip(bad.tolist(), vals.tolist())]
    enames = list(ecols)
    if extra:
        attrs = ({k: v for k, v in zip(enames, row) if v is not None} for row in zip(*ecols.values()))
    else:
        attrs = (dict(zip(enames, row)) for row in zip(*ecols.values()))
    g.add_edges_from(zip(edges["subject"].tolist(), edges["object"].tolist(), edges["key"].tolist(), attrs))
    return g


def _decode(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str) else v


def graph_tables(g: Any, path: Any = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Node/edge columns and run record of a graph made by :func:`to_networkx` (possibly via GraphML)."""
    from sgg.errors import SggInputError

    ga = dict(g.graph)
    meta = {_GRAPH_KEYS.get(k, k): (_decode(v) if k in _JSON_GRAPH else v) for k, v in ga.items()}
    meta.setdefault("crs_wkt", None)
    meta.setdefault("has_georef", "transform" in ga)
    data = list(g.nodes(data=True))
    try:
        box = np.asarray([_decode(d["box"]) for _, d in data], dtype=np.float64).reshape(-1, 5)
        nodes = {
            "id": np.asarray([int(u) for u, _ in data], dtype=np.int64),
            "class": np.asarray([d["class"] for _, d in data], dtype=object),
            "score": np.asarray([d.get("score", 1.0) for _, d in data], dtype=np.float64),
            "level": np.asarray([d.get("level", -1) for _, d in data], dtype=np.int64),
            "difficult": np.asarray([bool(d.get("difficult", False)) for _, d in data], dtype=bool),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise SggInputError(f"graph nodes need 'class' and a 5-number 'box' ({exc})", path=path) from None
    nodes.update({c: box[:, i] for i, c in enumerate(("cx", "cy", "w", "h", "angle"))})
    ed = list(g.edges(keys=True, data=True))
    try:
        edges = {
            "subject": np.asarray([int(u) for u, _, _, _ in ed], dtype=np.int64),
            "object": np.asarray([int(v) for _, v, _, _ in ed], dtype=np.int64),
            "key": np.asarray([int(k) if str(k).lstrip("-").isdigit() else i for i, (_, _, k, _) in enumerate(ed)],
                              dtype=np.int64),
            "predicate": np.asarray([d["predicate"] for *_, d in ed], dtype=object),
            "score": np.asarray([d.get("score", 1.0) for *_, d in ed], dtype=np.float64),
            "source": np.asarray([d.get("source", "model") for *_, d in ed], dtype=object),
        }
    except KeyError as exc:
        raise SggInputError(f"graph edges need a {exc.args[0]!r} attribute", path=path) from None
    if any("predicate_scores" in d for *_, d in ed):
        edges["pair"] = np.asarray([d.get("pair", -1) for *_, d in ed], dtype=np.int64)
        edges["pair_score"] = np.asarray([d.get("pair_score", np.nan) for *_, d in ed], dtype=np.float64)
        edges["predicate_scores"] = np.asarray([d.get("predicate_scores") for *_, d in ed] + [None], dtype=object)[:-1]
    return nodes, edges, meta


def from_networkx(g: Any, path: Any = None):
    """Invert :func:`to_networkx`: the SceneGraph back (geometry edges are skipped, see module docs)."""
    return scene_from_tables(*graph_tables(g, path), path=path)


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------
def _scalar_graph(g: Any):
    """A copy with JSON strings for list/dict attributes and no None values (GraphML needs scalars)."""
    h = g.copy()

    def enc(d: dict) -> None:
        for k in list(d):
            v = d[k]
            if v is None:
                del d[k]
            elif isinstance(v, (list, tuple, dict)):
                d[k] = json.dumps(v, default=str)

    enc(h.graph)
    for _, d in h.nodes(data=True):
        enc(d)
    for *_, d in h.edges(keys=True, data=True):
        enc(d)
    return h


def write_graphml(g: Any, path: Any) -> None:
    import networkx as nx

    nx.write_graphml(_scalar_graph(g), str(path), encoding="utf-8", prettyprint=False)


def read_graphml(path: Any):
    import networkx as nx

    g = nx.read_graphml(str(path), node_type=int, edge_key_type=int, force_multigraph=True)
    if not g.is_directed():
        g = nx.MultiDiGraph(g)
    return g


def write_node_link(g: Any, path: Any) -> None:
    import networkx as nx

    data = nx.node_link_data(g, edges="edges", source="subject", target="object")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, allow_nan=False, default=str)


def node_link_graph(data: dict):
    import networkx as nx

    edges = "edges" if "edges" in data else "links"
    first = (data.get(edges) or [{}])[0]
    ends = ("subject", "object") if "subject" in first and "object" in first else ("source", "target")
    return nx.node_link_graph(data, directed=True, multigraph=True, edges=edges, source=ends[0], target=ends[1])
