"""SkySenseGPT / FIT-RS style text from scene graphs, and back (DESIGN.md section 5.7).

- :mod:`.codec` — ``encode_boxes`` / ``parse_boxes``: oriented boxes <-> ``{<cx><cy><w><h>|<θ>}``;
- :mod:`.tasks` — FIT-RSFG task answers from a graph (detection, relation detection and reasoning,
  region- and image-level scene graphs) per 512-px crop;
- :mod:`.realiser` — :func:`caption`: a deterministic English description of a scene graph, or one written
  by any OpenAI-compatible chat server (:mod:`.llm`);
- :mod:`.export` — LLaVA-style instruction records for 512-px crops;
- :mod:`.scorers` — FIT-RSFG scoring (``faithful`` to the official script, or ``clean``);
- :mod:`.rsrc` — FIT-RSRC multiple-choice questions and CircularEval;
- :mod:`.faithfulness` — which objects, counts and relations a text asserts that the graph supports.
"""

from __future__ import annotations

from importlib import import_module

from .codec import (
    FitTextWarning,
    encode_boxes,
    format_rbox,
    parse_boxes,
    parse_boxes_detail,
    parse_detection,
    parse_relation_detection,
)

_LAZY = {
    "caption": "sgg.captioning.realiser",
    "describe": "sgg.captioning.realiser",
    "crop_graph": "sgg.captioning.tasks",
    "crop_windows": "sgg.captioning.tasks",
    "detection_answer": "sgg.captioning.tasks",
    "relation_detection_answer": "sgg.captioning.tasks",
    "relation_reasoning_answer": "sgg.captioning.tasks",
    "region_sgg_answer": "sgg.captioning.tasks",
    "image_sgg_answer": "sgg.captioning.tasks",
    "task_items": "sgg.captioning.tasks",
    "OpenAIChatBackend": "sgg.captioning.llm",
    "LLMError": "sgg.captioning.llm",
    "export_instructions": "sgg.captioning.export",
    "score_answers": "sgg.captioning.scorers",
    "rsrc_questions": "sgg.captioning.rsrc",
    "circular_variants": "sgg.captioning.rsrc",
    "score_rsrc": "sgg.captioning.rsrc",
    "check_faithfulness": "sgg.captioning.faithfulness",
}

__all__ = ["encode_boxes", "parse_boxes", "parse_boxes_detail", "parse_detection", "parse_relation_detection",
           "format_rbox", "FitTextWarning", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sgg.captioning' has no attribute {name!r}")
