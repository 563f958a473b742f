"""FIT-RS text codec: oriented boxes <-> ``{<cx><cy><w><h>|<θ>}`` and the tagged answer grammar.

FIT-RS (SkySenseGPT) writes a box of a 512-px crop as ``{<cx><cy><w><h>|<θ>}``: centre and size on a 0-100
grid of the crop with 2 decimals, and an integer angle in degrees in OpenCV's "oc" convention (0 < θ ≤ 90,
``w`` along ``(cos θ, sin θ)``). Lists are ``<rbox>({…}, {…})</rbox>``, categories ``<ref>…</ref>``,
predicates ``<rel>…</rel>``. sgg boxes are le90 radians in crop pixels; the conversion goes through
:func:`sgg.ops.le90_to_oc` / :func:`sgg.ops.oc_to_le90`.

Differences from FIT-RS's own generator (``Tools/process_data_RS_Object_Detection.py``): it truncates the
angle with ``%d`` (θ = 0.9° is written 0); sgg rounds to the nearest degree (half the angle error) and
writes a box that rounds to 0° as 90° with w and h swapped, so every angle written stays in (0, 90]. The
parser accepts any number (0° included), the polygon form ``{<x1,y1><x2,y2><x3,y3><x4,y4>}`` (or as 8
separate numbers) that the official script converts, and reports boxes it cannot read instead of turning them into zeros (the
official ``extract_rbox_from_str`` returns ``(0, 0, 0, 0, 0)`` for them).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from sgg.errors import SggInputError
from sgg.ops import le90_to_oc, oc_to_le90
from sgg.structures import OrientedBoxes, as_boxes

GRID = 100.0  # FIT-RS's RBOX_NORM: coordinates on a 0-100 grid of the crop
MAX_LISTED = 20  # FIT-RS's OBJ_NUM_THR: at most 20 boxes listed per answer
RBOX_START, RBOX_END = "<rbox>", "</rbox>"
REF_START, REF_END = "<ref>", "</ref>"
REL_START, REL_END = "<rel>", "</rel>"

BOX_RE = re.compile(r"\{\s*(<[^{}]*?>)\s*\}")
RBOX_RE = re.compile(r"<rbox>\s*\(?(.*?)\)?\s*</rbox>", re.DOTALL)
REF_RE = re.compile(r"<ref>\s*(.*?)\s*</ref>", re.DOTALL)
REL_RE = re.compile(r"<rel>\s*(.*?)\s*</rel>", re.DOTALL)
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_FIVE_RE = re.compile(rf"^<({_NUM})><({_NUM})><({_NUM})><({_NUM})>\s*\|\s*<({_NUM})>$")
_POLY_RE = re.compile("^" + rf"<({_NUM}),\s*({_NUM})>" * 4 + "$")
_POLY8_RE = re.compile("^" + rf"<({_NUM})>" * 8 + "$")


class FitTextWarning(UserWarning):
    """Text that the FIT-RS parser could not fully read (an unreadable box)."""


def _fmt(v: float) -> str:
    return f"{v:.2f}"


def encode_boxes(boxes: OrientedBoxes | Any, crop_size: int = 512) -> list[str]:
    """One ``{<cx><cy><w><h>|<θ>}`` string per box (level-0 px of a ``crop_size`` crop in, FIT-RS text out)."""
    b = as_boxes(boxes).tensor.detach().cpu()
    if len(b) == 0:
        return []
    oc = le90_to_oc(b.double(), degrees=True)
    deg = torch.round(oc[:, 4])
    zero = deg <= 0  # rounds to 0°: the same box is 90° with w and h swapped
    w = torch.where(zero, oc[:, 3], oc[:, 2])
    h = torch.where(zero, oc[:, 2], oc[:, 3])
    deg = torch.where(zero, torch.full_like(deg, 90.0), deg)
    s = GRID / float(crop_size)
    rows = torch.stack([oc[:, 0] * s, oc[:, 1] * s, w * s, h * s], dim=1).tolist()
    return [
        "{" + "".join(f"<{_fmt(v)}>" for v in r) + f"|<{int(d)}>" + "}" for r, d in zip(rows, deg.long().tolist())
    ]


def format_rbox(boxes: OrientedBoxes | Any, crop_size: int = 512) -> str:
    """``<rbox>({…}, {…})</rbox>`` for a list of boxes."""
    return RBOX_START + "(" + ", ".join(encode_boxes(boxes, crop_size)) + ")" + RBOX_END


@dataclass
class ParsedBoxes:
    """Boxes read from text (le90, crop px), the FIT-grid numbers as written (oc degrees) and the failures."""

    boxes: OrientedBoxes
    fit: torch.Tensor  # (N, 5) cx, cy, w, h on the 0-100 grid, θ in degrees, as written
    errors: list[str] = field(default_factory=list)


def _read_box(inner: str) -> tuple[list[float] | None, str | None]:
    """``<cx><cy><w><h>|<θ>`` or the 4-point polygon form → oc numbers (grid units, degrees)."""
    s = re.sub(r"\s+", "", inner)
    m = _FIVE_RE.match(s)
    if m:
        vals = [float(v) for v in m.groups()]
        if not all(math.isfinite(v) for v in vals):
            return None, "non-finite number"
        if vals[2] <= 0 or vals[3] <= 0:
            return None, "zero or negative width/height"
        return vals, None
    m = _POLY_RE.match(s) or _POLY8_RE.match(s)
    if m:
        from sgg.ops import corners_to_box

        pts = torch.tensor([float(v) for v in m.groups()], dtype=torch.float64).reshape(1, 4, 2)
        box = corners_to_box(pts)
        if float(box[0, 2]) <= 0 or float(box[0, 3]) <= 0:
            return None, "degenerate polygon"
        oc = le90_to_oc(box, degrees=True)[0].tolist()
        return oc, None
    return None, "not <cx><cy><w><h>|<θ> nor a 4-point polygon"


def parse_boxes_detail(text: str, crop_size: int = 512) -> ParsedBoxes:
    """Every ``{…}`` box in ``text``; unreadable ones are listed in ``errors`` (never turned into zeros)."""
    rows, errors = [], []
    for m in BOX_RE.finditer(text or ""):
        vals, why = _read_box(m.group(1))
        if vals is None:
            errors.append(f"unreadable box {m.group(0)!r} at character {m.start()}: {why}")
        else:
            rows.append(vals)
    fit = torch.tensor(rows, dtype=torch.float64).reshape(-1, 5)
    s = float(crop_size) / GRID
    px = fit.clone()
    px[:, :4] *= s
    boxes = OrientedBoxes(oc_to_le90(px, degrees=True).float()) if len(px) else OrientedBoxes.empty()
    return ParsedBoxes(boxes, fit, errors)


def parse_boxes(text: str, crop_size: int = 512, errors: str = "warn") -> OrientedBoxes:
    """Every box found in ``text`` as le90 radians in crop pixels.

    ``errors``: what to do with a box that cannot be read (``{<a><b>…}``, a zero size): ``"warn"`` (skip it
    with a :class:`FitTextWarning` naming it), ``"raise"`` (:class:`SggInputError`) or ``"ignore"``.
    """
    if errors not in ("warn", "raise", "ignore"):
        raise ValueError(f"parse_boxes: errors must be 'warn', 'raise' or 'ignore', got {errors!r}")
    out = parse_boxes_detail(text, crop_size)
    if out.errors and errors == "raise":
        raise SggInputError("; ".join(out.errors), where="FIT-RS text")
    if out.errors and errors == "warn":
        warnings.warn("; ".join(out.errors), FitTextWarning, stacklevel=2)
    return out.boxes


# --------------------------------------------------------------------------------------------------
# names: FIT-RS plurals ("ships", "car_parkings") and the tolerant reverse mapping
# --------------------------------------------------------------------------------------------------
def fit_plural(name: str, count: int) -> str:
    """FIT-RS's naming: the class name, plus ``s`` when the count is not 1 (its generator does exactly this)."""
    return name if count == 1 else name + "s"


def singular_candidates(word: str) -> list[str]:
    """Spellings a class name may have been written in: as is, without ``s``/``es``, ``-ies`` → ``y``,
    spaces or hyphens for underscores."""
    w = word.strip().lower()
    forms = [w]
    if w.endswith("ies"):
        forms.append(w[:-3] + "y")
    if w.endswith("es"):
        forms.append(w[:-2])
    if w.endswith("s"):
        forms.append(w[:-1])
    forms += [f.replace(" ", "_").replace("-", "_") for f in list(forms)]
    return list(dict.fromkeys(forms))


def resolve_class(word: str, classes: Sequence[str]) -> str | None:
    """The vocabulary class that ``word`` names (plural, spaced or hyphenated forms accepted), or None."""
    lut = {c.lower(): c for c in classes}
    for f in singular_candidates(word):
        if f in lut:
            return lut[f]
    return None


@dataclass
class Sentence:
    """One sentence of a FIT answer: its text and its tags in order."""

    text: str
    refs: list[str]
    rels: list[str]
    rboxes: list[str]  # the inside of each <rbox>…</rbox>


def split_sentences(text: str) -> list[Sentence]:
    """Sentences split as the official script does (``'. '`` after joining lines), with their tags."""
    out = []
    for s in (text or "").replace("\n", " ").split(". "):
        if not s.strip():
            continue
        out.append(Sentence(s, REF_RE.findall(s), REL_RE.findall(s), RBOX_RE.findall(s)))
    return out


_REL_DET_HEAD = re.compile(r"There (?:is|are) (\d+) relationships? between (.+?) and (.+?):", re.IGNORECASE)
_REL_DET_ITEM = re.compile(r"([A-Za-z_][\w-]*)\s*<(?!/?(?:rbox|ref|rel)>)([^<>]+)>\s*([A-Za-z_][\w-]*)")


def parse_relation_detection(text: str) -> dict[str, Any]:
    """A task-2 answer (``There are 2 relationships between tank and tank: tank <not co-storage with> tank,
    tank <co-storage with> tank``): the stated count and classes, and the (subject, predicate, object) list."""
    head = _REL_DET_HEAD.search(text or "")
    rels = [(s, " ".join(p.split()), o) for s, p, o in _REL_DET_ITEM.findall(text or "")]
    rels += [("", " ".join(p.split()), "") for p in REL_RE.findall(text or "")]
    return {"count": int(head.group(1)) if head else None, "subject": head.group(2) if head else None,
            "object": head.group(3) if head else None, "relations": rels}


_DET_HEAD = re.compile(r"There (?:is|are) (\d+) (.+?) in the image", re.IGNORECASE)


def parse_detection(text: str, crop_size: int = 512, classes: Sequence[str] | None = None) -> dict[str, Any]:
    """A detection answer: ``class`` (resolved against ``classes``, STAR by default: "ships", "car_parkings",
    "There is 1 ship" all work), stated ``count``, ``boxes`` (le90 crop px), ``truncated`` (FIT-RS's
    context-length sentence), ``negative`` (FIT-RS's refusal) and ``errors`` (unreadable boxes)."""
    from sgg.structures import Vocabulary

    head = _DET_HEAD.search(text or "")
    word = head.group(2) if head else None
    cls = resolve_class(re.sub(r"</?ref>", "", word), classes or Vocabulary.star().objects) if word else None
    det = parse_boxes_detail(text, crop_size)
    return {"class": cls, "written_class": word, "count": int(head.group(1)) if head else None,
            "boxes": det.boxes, "errors": det.errors, "truncated": "due to the context length" in (text or ""),
            "negative": head is None and "sorry" in (text or "").lower()}
