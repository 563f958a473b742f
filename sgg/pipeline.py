"""The end-to-end pipeline (DESIGN.md §2): raster → objects → pairs → predicates → SceneGraph.

``Pipeline.from_config("configs/pipeline/default.yaml")`` (or ``Pipeline.from_checkpoints(detector=...)``)
then ``pipeline.run("scene.tif")`` chains RasterScene → HOD-Net holistic detection → merge → pair proposal
(PPG) → relation head (RPCM, frequency prior, or any object with ``predict(graph) -> graph``). Each stage can
be fed from files instead: DOTA Task-1 results as detections (``detector.from_dota``), or ground-truth
objects from a scene annotation for PredCls (``detector.from_annotation``). The graph's ``metadata`` records
per-stage wall times (``timing_s``) and model identifiers (file name + sha256 prefix, ``models``), which
every export keeps (the GeoPackage's ``run`` table).

A stage that is asked for but not installed in this build raises :class:`SggInputError` saying which;
nothing is faked. Set a stage to ``null`` in the config to skip it. :class:`TileLedger` makes tiled
detection resumable.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import inspect
import os
import pickle
import time
from collections.abc import Callable, MutableMapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from sgg.devices import check_device
from sgg.errors import SggInputError
from sgg.io.atomic import atomic_paths

DEFAULTS: dict[str, Any] = {
    "device": "cpu",
    "detector": {
        "weights": "bundled",  # a checkpoint path, or "bundled" (the shipped HOD-Net weights)
        "from_dota": None,  # DOTA Task-1 results directory/file instead of a model
        "from_annotation": None,  # scene annotation (sgg JSON / DOTA labels) file or directory: PredCls
        "aliases": None,  # class-name alias table for foreign files, e.g. dota_to_star
        "tile_size": None,
        "overlap": None,
        "levels": "auto",
        "zoom": "guided",
        "batch_size": 2,
        "prefetch": 2,
        "score_threshold": 0.05,
        "iou_threshold": 0.4,
        "gsd": None,  # metres per pixel when the raster does not say (else its CRS, else a DOTA label's gsd:)
        "size_filter": True,  # drop objects impossibly large in metres for their class (needs a known GSD)
        "join_linear": True,  # join collinear pieces of runways, docks, ... (true, false or class names;
        # from_dota results are joined only when classes are named)
        "tta": None,  # test-time views (sgg.detectors.tta): null, flips, d2, all, d2r, auto or a list; costs ~that many times
        "box_passes": None,  # passes of the RoI box head (iterative box regression); null = the weights file's own
    },
    # proposer: default | a weights path | null; budget: "auto" (max(10,000, 32·N), sgg.pairs.auto_budget) | int | null
    "pairs": {"proposer": "default", "budget": "auto"},
    # head: frequency | a checkpoint path | "pkg.mod:factory" | null; count_norm: β of the per-graph ranking for
    # mean recall (sgg.relation_heads.count_normalised), null = the head's own (frequency: 0.75), 0 = probabilities
    "relations": {"head": "frequency", "weights": None, "count_norm": None},
    "caption": True,
    "output": {"top_k": 100},  # relations kept in exports, captions and previews
}
BUNDLED_DETECTOR = "hodnet_effl0_synth.pt"
FREQUENCY_COUNT_NORM = 0.75  # the frequency prior's β, chosen on synthetic validation crops (README "Relations")
_STAGE_ISSUES = {"sgg.pairs": "pair proposal, issue #13", "sgg.relation_heads": "relation heads, issue #14",
                 "sgg.captioning": "captioning, issue #15"}


# ------------------------------------------------------------------------------------------ helpers
def _stage_module(name: str):
    """Import a stage package, or say clearly that this build does not have it yet."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == name or name.startswith(exc.name + ".") or exc.name.startswith(name)):
            raise SggInputError(f"{name} ({_STAGE_ISSUES.get(name, 'a pipeline stage')}) is not available in this "
                                f"build; set that stage to null in the config (or its CLI option to none)") from None
        raise


def _merge(base: dict, over: dict, where: str, path: Any) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if key not in base:
            raise SggInputError(f"unknown config key {where + key!r}; known keys: {', '.join(base)}", path=path)
        if isinstance(base[key], dict) and value is not None:
            if not isinstance(value, dict):
                raise SggInputError(f"config key {where + key!r} must be a mapping, got {value!r}", path=path)
            out[key] = _merge(base[key], value, f"{where}{key}.", path)
        else:
            out[key] = value
    return out


def resolve_config(config: dict | None = None, path: Any = None, **overrides: Any) -> dict[str, Any]:
    """Defaults updated by ``config`` then by dotted ``overrides`` (``{"detector.tile_size": 512}``);
    an unknown key raises :class:`SggInputError` naming it. ``None`` for a stage section skips the stage."""
    cfg = _merge(DEFAULTS, dict(config or {}), "", path)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = cfg
        for p in parents:
            if not isinstance(node.get(p), dict):
                node[p] = copy.deepcopy(DEFAULTS.get(p, {}))
            node = node[p]
        if leaf not in (DEFAULTS.get(parents[0], {}) if parents else DEFAULTS):
            raise SggInputError(f"unknown config key {dotted!r}", path=path)
        node[leaf] = value
    return cfg


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a pipeline YAML config (validated against :data:`DEFAULTS`)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise SggInputError("pipeline config not found", path=path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SggInputError(f"not valid YAML ({str(exc).splitlines()[0]})", path=path) from None
    if not isinstance(data, dict):
        raise SggInputError("a pipeline config must be a mapping of stage sections", path=path)
    return resolve_config(data, path=path)


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime: float) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_id(path: str | os.PathLike) -> str:
    """``name@sha256-prefix`` of a weights file: what the ``models`` metadata and the tile ledger key on."""
    p = Path(path)
    st = p.stat()
    return f"{p.name}@{_sha256(str(p.resolve()), st.st_size, st.st_mtime)[:12]}"


def bundled_weights(name: str = BUNDLED_DETECTOR) -> Path:
    """The shipped weights file ``name``: in the installed package (``sgg/data/weights``) or the source tree's
    ``weights/`` (editable installs)."""
    here = Path(__file__).resolve().parent
    for cand in (here / "data" / "weights" / name, here.parent / "weights" / name):
        if cand.is_file():
            return cand
    raise SggInputError(f"bundled weights {name!r} not found (looked in sgg/data/weights and the source tree's "
                        f"weights/); pass a checkpoint path instead")


def _weights_path(spec: str, base_dir: Path | None) -> Path:
    """A weights file from a config value: ``bundled:NAME`` (a file shipped in ``weights/``) or a path."""
    if spec.startswith("bundled:"):
        return bundled_weights(spec.partition(":")[2])
    return _resolve_path(spec, base_dir)


def _default_ppg_id() -> str:
    """File id of the PPG weights ``PairProposer.default()`` loads (STAR's release, shipped in sgg.data)."""
    from importlib import resources

    try:
        from sgg.pairs.ppg import STAR_WEIGHTS

        with resources.as_file(resources.files("sgg.data").joinpath("ppg", STAR_WEIGHTS["obb"])) as p:
            return file_id(p)
    except (ImportError, KeyError, OSError):
        return "PairProposer.default"


def pair_limit(budget: Any, num_objects: int) -> int | None:
    """Pairs kept for a scene of ``num_objects``: ``"auto"`` scales with the scene (``sgg.pairs.auto_budget``:
    max(10,000, 32·N), since a fixed 10,000 caps recall on scenes of thousands of objects), an integer is a
    fixed cap, ``None`` keeps what the proposer returns. Validated by ``sgg.pairs.check_budget``, the one
    rule :class:`sgg.pairs.PairProposer` also applies."""
    return _stage_module("sgg.pairs").resolve_budget(budget, num_objects, "pairs.budget")


def _resolve_path(value: Any, base: Path | None) -> Path:
    p = Path(os.path.expanduser(str(value)))
    if not p.is_absolute() and base is not None and not p.exists() and (base / p).exists():
        return base / p
    return p


# ------------------------------------------------------------------------------------------ the pipeline
class Pipeline:
    """Raster → SceneGraph with each stage swappable (see module docstring).

    Stage objects may be passed directly (``detector=`` an ``nn.Module`` as ``detect_scene`` wants,
    ``pair_proposer=`` a callable ``Detections -> PairSet``, ``relation_head=`` an object with
    ``predict(graph) -> graph``, ``captioner=`` a callable ``graph -> str``); otherwise they load lazily
    from ``config`` on first use. ``base_dir``: where relative paths in the config are looked for first.
    """

    def __init__(self, config: dict | None = None, *, detector: Any = None, pair_proposer: Any = None,
                 relation_head: Any = None, captioner: Callable | None = None, base_dir: Any = None):
        self.config = resolve_config(config)
        self.base_dir = None if base_dir is None else Path(base_dir)
        self._detector, self._proposer, self._head, self._captioner = detector, pair_proposer, relation_head, captioner
        self.models: dict[str, str] = {}
        for name, obj in (("detector", detector), ("pairs", pair_proposer), ("relations", relation_head)):
            if obj is not None:
                self.models[name] = getattr(obj, "model_id", None) or type(obj).__name__

    # construction ----------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: str | os.PathLike | dict, **overrides: Any) -> Pipeline:
        """From a YAML file or a mapping; ``overrides`` are dotted keys (``detector__tile_size`` also works)."""
        overrides = {k.replace("__", "."): v for k, v in overrides.items()}
        if isinstance(config, dict):
            return cls(resolve_config(config, **overrides))
        cfg = load_config(config)
        return cls(resolve_config(cfg, path=config, **overrides), base_dir=Path(config).resolve().parent)

    @classmethod
    def from_checkpoints(cls, detector: Any = "bundled", relations: Any = "frequency", pairs: Any = "default",
                         **overrides: Any) -> Pipeline:
        """From weights files (``None`` skips a stage): detector, relation head, pair proposer."""
        overrides = {k.replace("__", "."): v for k, v in overrides.items()}
        cfg = resolve_config({"detector": {"weights": detector}, "pairs": None if pairs is None else {"proposer": pairs},
                              "relations": None if relations is None else {"head": relations}}, **overrides)
        return cls(cfg)

    # stage loading -----------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        d = self.config["detector"] or {}
        return "predcls" if d.get("from_annotation") else "dota" if d.get("from_dota") else "sgdet"

    @property
    def detector(self):
        if self._detector is None:
            d = self.config["detector"] or {}
            w = d.get("weights")
            if not w:
                raise SggInputError("no detector: set detector.weights, detector.from_dota or detector.from_annotation")
            path = bundled_weights() if w == "bundled" else _resolve_path(w, self.base_dir)
            if not path.is_file():
                raise SggInputError("detector weights not found", path=path)
            from sgg.detectors import load_detector

            self._detector = load_detector(path, map_location=self.config["device"],
                                           box_passes=d.get("box_passes")).to(self.config["device"])
            self.models["detector"] = file_id(path)
        return self._detector

    @property
    def pair_proposer(self):
        if self._proposer is None and self.config["pairs"] and self.config["pairs"].get("proposer"):
            spec = self.config["pairs"]["proposer"]
            mod = _stage_module("sgg.pairs")
            if spec == "default":
                self._proposer = mod.PairProposer.default()
                self.models["pairs"] = _default_ppg_id()
            else:
                path = _weights_path(spec, self.base_dir)
                if not path.is_file():
                    raise SggInputError("pair proposer weights not found", path=path)
                self._proposer = mod.PairProposer.load(path)
                self.models["pairs"] = file_id(path)
        return self._proposer

    @property
    def relation_head(self):
        r = self.config["relations"]
        if self._head is None and r and r.get("head"):
            spec = str(r["head"])
            if ":" in spec and not spec.startswith("bundled:") and not Path(spec).exists():  # "module:factory" plug-in
                mod_name, _, attr = spec.partition(":")
                try:
                    factory = getattr(importlib.import_module(mod_name), attr)
                except (ImportError, AttributeError) as exc:
                    raise SggInputError(f"relation head {spec!r} cannot be imported ({exc})") from None
                weights = r.get("weights")
                self._head = factory(_resolve_path(weights, self.base_dir)) if weights else factory()
                self.models["relations"] = file_id(_resolve_path(weights, self.base_dir)) if weights else spec
            elif spec == "frequency":
                self._head = _stage_module("sgg.relation_heads").FrequencyPrior.from_star(count_norm=FREQUENCY_COUNT_NORM)
                self.models["relations"] = "FrequencyPrior.from_star"
            else:
                path = _weights_path(spec, self.base_dir)
                if not path.is_file():
                    raise SggInputError("relation head weights not found", path=path)
                self._head = _stage_module("sgg.relation_heads").load_relation_head(path)
                self.models["relations"] = file_id(path)
            beta = r.get("count_norm")
            if beta is not None:
                if not hasattr(self._head, "count_norm"):
                    raise SggInputError(f"relations.count_norm: the relation head {spec!r} has no count_norm setting")
                try:
                    self._head.count_norm = beta
                except SggInputError as exc:
                    raise SggInputError(f"relations.count_norm (or null): {exc}") from None
        return self._head

    @property
    def captioner(self) -> Callable | None:
        if self._captioner is None and self.config.get("caption"):
            self._captioner = _stage_module("sgg.captioning").caption
        return self._captioner

    def check(self) -> Pipeline:
        """Load every stage the config asks for now, so a missing stage or weights file fails before any work."""
        check_device(str(self.config.get("device") or "cpu"), option="device")
        if self.mode == "sgdet":
            self.detector  # noqa: B018 - loads
        self.pair_proposer  # noqa: B018
        self.relation_head  # noqa: B018
        self.captioner  # noqa: B018
        return self

    # stages ------------------------------------------------------------------------------------
    def detect(self, scene: Any, *, ledger: Any = None, progress: bool = False):
        """Objects of ``scene`` (a raster path or RasterScene) as a SceneGraph without pairs."""
        d = self.config["detector"] or {}
        if d.get("from_annotation"):
            return self._from_annotation(scene, d)
        if d.get("from_dota"):
            from sgg.detectors.inference import scenes_from_dota

            src = _resolve_path(d["from_dota"], self.base_dir)
            if not src.exists():
                raise SggInputError("DOTA results not found", path=src)
            from sgg.detectors.merge import named_classes

            return next(iter(scenes_from_dota(src, aliases=d.get("aliases"), raster=scene,
                                              score_threshold=float(d.get("score_threshold") or 0.0),
                                              join_linear=named_classes(d.get("join_linear", False))).values()))
        from sgg.detectors import detect_scene

        model = self.detector
        if d.get("tta"):
            from sgg.detectors.tta import TTADetector

            model = TTADetector(model, d["tta"]).eval()
        head = self.relation_head
        kwargs = {k: d[k] for k in ("tile_size", "overlap", "levels", "zoom", "batch_size", "prefetch",
                                    "score_threshold", "iou_threshold", "gsd", "size_filter", "join_linear")}
        params = inspect.signature(detect_scene).parameters
        if "with_features" in params:
            # heads with visual inputs (RPCM's visual_dim > 0) need the detector's per-object features
            kwargs["with_features"] = bool(getattr(head, "needs_features", False) or getattr(head, "visual_dim", 0))
        tta = list(model.views) if d.get("tta") else None  # part of the ledger's key
        if ledger is None:
            return detect_scene(model, scene, progress=progress, **kwargs)
        options = {"raster": _raster_id(scene), "device": self.config["device"], "tta": tta,
                   "box_passes": d.get("box_passes"),
                   **{k: kwargs.get(k) for k in ("tile_size", "overlap", "score_threshold", "with_features")}}
        cache = ledger.cache(self.models.get("detector", type(model).__name__), options)
        sg = detect_scene(model, scene, progress=progress, cache=cache, **kwargs)
        meta = dict(sg.metadata, ledger={"tiles_reused": cache.hits, "tiles_run": cache.stored})
        return sg.replace(metadata=meta)

    def _from_annotation(self, scene: Any, d: dict):
        src = _resolve_path(d["from_annotation"], self.base_dir)
        stem = Path(str(getattr(scene, "path", scene))).stem
        if src.is_dir():
            cands = [src / f"{stem}.json", src / f"{stem}.txt"]
            src = next((c for c in cands if c.is_file()), cands[0])
        if not src.is_file():
            raise SggInputError("annotation not found", path=src)
        if src.suffix.lower() == ".txt":
            from sgg.datasets import read_dota_labels

            gt = read_dota_labels(src, aliases=d.get("aliases"))
        else:
            from sgg.datasets import read_scene_json

            gt = read_scene_json(src)
        from sgg.detectors.inference import _open_scene
        from sgg.structures import PairSet, SceneGraph

        rs = _open_scene(scene)
        try:
            sp = getattr(rs, "path", None)
            return SceneGraph(gt.detections, PairSet.empty(), vocabulary=gt.vocabulary, georef=rs.georef,
                              metadata={"source": "annotation", "annotation": str(src)},
                              image_path=None if sp is None else str(sp), image_size=(int(rs.width), int(rs.height)))
        finally:
            if rs is not scene:
                rs.close()

    def propose_pairs(self, sg: Any):
        """Candidate (subject, object) pairs, cut to ``pairs.budget`` by score (higher = keep)."""
        proposer = self.pair_proposer
        if proposer is None:
            return sg
        if len(sg.detections) < 2:
            from sgg.structures import PairSet

            return sg.replace(pairs=PairSet.empty(), predicate_scores=None, predicate_labels=None)
        budget = (self.config["pairs"] or {}).get("budget")
        limit = pair_limit(budget, len(sg.detections))
        if budget is not None and hasattr(proposer, "budget"):
            proposer.budget = "auto" if budget == "auto" else limit
        takes_vocab = len(inspect.signature(proposer).parameters) >= 2  # else a plain Detections -> PairSet callable
        pairs = proposer(sg.detections, sg.vocabulary) if takes_vocab else proposer(sg.detections)
        if limit is not None and len(pairs) > limit:  # a proposer without a budget of its own: cut here
            pairs = pairs[:limit] if pairs.scores is None else \
                _stage_module("sgg.pairs").select_pairs(pairs, pairs.scores, limit)
        meta = dict(sg.metadata, pair_budget=limit)
        s = pairs.scores
        if s is not None and len(s) and (float(s.min()) < 0 or float(s.max()) > 1):
            # SceneGraph.triplets ranks by predicate score × pair score, so pair scores must be in (0, 1]
            # (sgg.pairs.PairProposer's are); another proposer's ranking key, e.g. a negated distance, is
            # mapped by exp(s - max), which keeps its order and puts the best at 1.
            pairs = type(pairs)(pairs.pairs, torch.exp(s - s.max()))
            meta = dict(meta, pair_scores="exp(s - max s) of the proposer's scores (higher = keep)")
        return sg.replace(pairs=pairs, predicate_scores=None, predicate_labels=None, metadata=meta)

    def predict_relations(self, sg: Any):
        head = self.relation_head
        if head is None or len(sg.pairs) == 0:
            return sg
        return head.predict(sg)

    def caption(self, sg: Any) -> str | None:
        fn = self.captioner
        return None if fn is None else str(fn(sg))

    # the whole chain ---------------------------------------------------------------------------
    def run(self, scene: Any, *, detections: Any = None, ledger: Any = None, progress: bool = False):
        """Run every configured stage on ``scene``; ``detections`` (a SceneGraph) skips detection.

        ``ledger``: a :class:`TileLedger` making the detection resumable.
        Returns the SceneGraph with ``metadata["timing_s"]`` and ``metadata["models"]``.
        """
        t_all = time.perf_counter()
        timing: dict[str, float] = {}
        t0 = time.perf_counter()
        sg = detections if detections is not None else self.detect(scene, ledger=ledger, progress=progress)
        timing["detect"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sg = self.propose_pairs(sg)
        timing["pairs"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sg = self.predict_relations(sg)
        timing["relations"] = time.perf_counter() - t0
        timing["total"] = time.perf_counter() - t_all
        meta = dict(sg.metadata)
        meta.update(timing_s={k: round(v, 4) for k, v in timing.items()}, models=dict(self.models), mode=self.mode)
        head = self._head
        if head is not None and sg.predicate_scores is not None:  # what predicate_scores are (β > 0: ranks)
            meta["relation_ranking"] = {k: float(getattr(head, k, 0.0)) for k in ("logit_adjust", "count_norm")}
        return sg.replace(metadata=meta)

    def __repr__(self) -> str:
        stages = [self.mode, "pairs" if self.config["pairs"] else None, "relations" if self.config["relations"] else None]
        return f"Pipeline({' → '.join(s for s in stages if s)})"


# ------------------------------------------------------------------------------------------ tile ledger
class TileLedger:
    """Finished tiles on disk, so that a run killed mid-way and started again skips them (they are neither
    read nor run) and merges exactly the same per-tile results, so writes the same layers.

    ``ledger.cache(model_id, options)`` is the ``cache`` mapping ``detect_scene``/``run_tiles`` fill as tiles
    finish: one file per tile, ``root/<run key>/<tile key hash>.pt``. The run key hashes the model identifier
    (the weights file's sha256 prefix), the raster (resolved path, size, mtime) and every setting that changes
    a tile's result (tile size, overlap, score threshold, features, device); the tile key is the tile's
    level and level-0 window. Entries are written atomically and read with ``torch.load(weights_only=True)``;
    an unreadable entry counts as missing. Merging, NMS, pairs and relations always run again.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def run_dir(self, model_id: str, options: dict[str, Any]) -> Path:
        import json

        key = hashlib.sha256(json.dumps({"model": model_id, **options}, sort_keys=True, default=str).encode())
        return self.root / key.hexdigest()[:16]

    def cache(self, model_id: str, options: dict[str, Any]) -> TileCache:
        return TileCache(self.run_dir(model_id, options))

    def clear(self) -> None:
        import shutil

        shutil.rmtree(self.root, ignore_errors=True)


class TileCache(MutableMapping):
    """``{tile key: TileResult}`` stored one file per tile in ``directory``; counts reads (``hits``) and
    writes (``stored``) for the run's metadata."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.hits = 0
        self.stored = 0

    def _path(self, key: str) -> Path:
        return self.dir / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.pt"

    def __getitem__(self, key: str) -> Any:
        from sgg.detectors.inference import TileResult
        from sgg.structures import Detections, OrientedBoxes

        path = self._path(key)
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
            if d["key"] != key:
                raise KeyError(key)
            det = Detections(OrientedBoxes(d["boxes"], validate=False), d["labels"], d["scores"], d.get("features"),
                             d.get("levels"), d.get("class_scores"))
            result = TileResult(int(d["level"]), tuple(float(v) for v in d["window"]), float(d["scale"]), det)
        except Exception:  # noqa: BLE001 - missing or damaged: the tile is run again
            raise KeyError(key) from None
        self.hits += 1
        return result

    def __setitem__(self, key: str, result: Any) -> None:
        det = result.detections
        payload = {"key": key, "level": int(result.level), "window": [float(v) for v in result.window],
                   "scale": float(result.scale), "boxes": det.boxes.tensor.detach().cpu()}
        for name in ("labels", "scores", "features", "levels", "class_scores"):
            value = getattr(det, name, None)
            if value is not None:
                payload[name] = value.detach().cpu()
        with atomic_paths(self._path(key)) as (tmp,):
            torch.save(payload, tmp)
        self.stored += 1

    def __delitem__(self, key: str) -> None:
        path = self._path(key)
        if not path.is_file():
            raise KeyError(key)
        path.unlink()

    def _files(self) -> list[Path]:  # stored tiles, not atomic_paths' hidden in-flight parts
        return sorted(p for p in self.dir.glob("*.pt") if not p.name.startswith("."))

    def __iter__(self):  # keys are hashed on disk; iterate the stored ones by reading them
        for p in self._files():
            try:
                yield torch.load(p, map_location="cpu", weights_only=True)["key"]
            except (OSError, RuntimeError, EOFError, KeyError, pickle.UnpicklingError):  # damaged: not a key
                continue

    def __len__(self) -> int:
        return len(self._files()) if self.dir.is_dir() else 0

    def get(self, key: str, default: Any = None) -> Any:
        if not self._path(key).is_file():
            return default
        try:
            return self[key]
        except KeyError:
            return default


def _raster_id(scene: Any) -> str:
    """Resolved path, size and mtime of a raster (a path or an open RasterScene)."""
    path = Path(str(getattr(scene, "path", scene)))
    try:
        st = path.stat()
        return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        return str(path)

__all__ = ["Pipeline", "TileLedger", "TileCache", "DEFAULTS", "load_config", "resolve_config", "bundled_weights", "file_id",
           "pair_limit"]
