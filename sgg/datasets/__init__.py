"""Scene data: the field's file formats, synthetic STAR-vocabulary scenes and Lightning DataModules.

- file formats: ``native`` (sgg scene JSON), ``dota`` (labels and Task-1 results), ``star`` (STAR / Visual-Genome
  HDF5), ``aliases`` (class-name maps between vocabularies);
- DataModules: ``datamodules`` (detector tiles) and ``relation_data`` (scene graphs), with ``tiling`` (scene
  folders, window reads) and ``transforms`` (tile targets, augmentation);
- ``synthetic/``: the synthetic-scene generator (``generate_scene``, ``generate_dataset``; ``sgg synth``).

Names are imported lazily (``sgg.datasets.read_dota_labels`` loads ``sgg.datasets.dota`` on first use), so
importing the package stays cheap.
"""

from __future__ import annotations

from importlib import import_module

# --- file formats and DataModules -----------------------------------------------------------------
_FORMATS = {
    "FORMAT_VERSION": "sgg.datasets.native",
    "read_scene_json": "sgg.datasets.native",
    "write_scene_json": "sgg.datasets.native",
    "scene_from_dict": "sgg.datasets.native",
    "scene_to_dict": "sgg.datasets.native",
    "load_schema": "sgg.datasets.native",
    "read_dota_labels": "sgg.datasets.dota",
    "write_dota_labels": "sgg.datasets.dota",
    "read_dota_results": "sgg.datasets.dota",
    "write_dota_results": "sgg.datasets.dota",
    "DOTA_VOCABULARY": "sgg.datasets.dota",
    "DOTA_CLASSES": "sgg.datasets.aliases",
    "DOTA_TO_STAR": "sgg.datasets.aliases",
    "STAR_TO_DOTA": "sgg.datasets.aliases",
    "read_star": "sgg.datasets.star",
    "write_star": "sgg.datasets.star",
    "DetectorDataModule": "sgg.datasets.datamodules",
    "RelationDataModule": "sgg.datasets.relation_data",
    "detection_collate": "sgg.datasets.datamodules",
    "TileSampler": "sgg.datasets.datamodules",
}

# --- synthetic scenes ------------------------------------------------------------------------------
_SYNTH: dict[str, str] = {
    "generate_scene": "sgg.datasets.synthetic",
    "generate_dataset": "sgg.datasets.synthetic",
}

_LAZY = {**_FORMATS, **_SYNTH}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sgg.datasets' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
