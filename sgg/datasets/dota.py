"""DOTA text formats: label files and the per-class results files of the DOTA devkit / mmrotate.

Label file (DOTA v1/v1.5/v2)::

    imagesource:GoogleEarth
    gsd:0.255589285596
    x1 y1 x2 y2 x3 y3 x4 y4 class difficult

Corners are pixel coordinates (clockwise in DOTA's files); each quadrilateral becomes the minimum-area
oriented box around it (``sgg.ops.corners_to_box``, le90). The difficulty column is optional (0 if absent).
``gsd`` (``null`` allowed) and ``imagesource`` go to ``SceneGraph.metadata``.

Results (what ``DOTA_devkit/ResultMerge`` and mmrotate's ``format_results`` write for Task 1): one file
``Task1_<class>.txt`` per class, one detection a line: ``<image_id> <score> x1 y1 x2 y2 x3 y3 x4 y4``.

Class names go through an alias mapping (``sgg.datasets.aliases``; ``aliases="dota_to_star"`` picks the
ready DOTA→STAR table). Malformed lines raise :class:`~sgg.errors.SggInputError` naming file and line.
As the DOTA devkit does, in label files any difficulty ≥ 1 (DOTA_devkit crops use ``2``) means difficult,
and a degenerate polygon (zero area) or one lying wholly outside its image is skipped with a warning
naming file and line; one reaching more than ``EDGE_TOLERANCE`` px past the image border is kept and
reported the same way (objects cut by the border are normally clipped to it: a file of such boxes
usually belongs to another image or another scale). ``metadata["box_type"]`` records per file whether
every box is axis-aligned (``"hbb"``: horizontal-box labels such as ships_ge's; trained through their
envelopes) or not (``"obb"``), so a folder mixing both kinds can be treated image by image; it stays in
the annotation when written as scene JSON (``metadata``).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from sgg.datasets.aliases import DOTA_CLASSES, map_names
from sgg.errors import SggInputError
from sgg.io.atomic import atomic_write_text
from sgg.ops import outside_image
from sgg.structures import Vocabulary

DOTA_VOCABULARY = Vocabulary(DOTA_CLASSES, ())  # DOTA v2.0's 18 classes under their own names, no predicates

MIN_POLYGON_AREA = 1e-6  # px²; a quadrilateral with less area is degenerate (a line or a point)
EDGE_TOLERANCE = 2.0  # px; a polygon reaching further past the image border is reported (and kept)
MAX_LINE_WARNINGS = 5  # per kind and file; the rest of the lines are named in one summary warning
_RESULT_NAME = re.compile(r"^Task1_(.+)\.txt$")


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise SggInputError(f"cannot read DOTA file: {exc.strerror or exc}", path=path) from None


_HEADER_KEYS = ("imagesource", "gsd")


def _header_entry(line: str) -> tuple[str, str] | None:
    """``(key, value)`` of a DOTA header line (``imagesource:…``, ``gsd:…``), else None (an object line)."""
    head, sep, value = line.strip().partition(":")
    key = head.strip().lower()
    return (key, value.strip()) if sep and key in _HEADER_KEYS else None


def parse_gsd(value: str) -> float | None:
    """A DOTA ``gsd:`` header value in metres per pixel: None for ``null``/``none``/``nan``/empty; a value
    that is not a number raises ValueError."""
    return None if value.lower() in ("", "null", "none", "nan") else float(value)


def read_dota_header(path: str | os.PathLike) -> dict[str, tuple[str, int]]:
    """The header of a DOTA label file, ``{key: (raw value, line number)}``: the ``imagesource``/``gsd``
    lines at its top; reading stops at the first object line."""
    header: dict[str, tuple[str, int]] = {}
    for lineno, line in enumerate(_read_lines(Path(path)), start=1):
        if not line.strip():
            continue
        entry = _header_entry(line)
        if entry is None:
            break
        header[entry[0]] = (entry[1], lineno)
    return header


def _parse_numbers(tokens: Sequence[str], path: Path, lineno: int) -> list[float]:
    out = []
    for t in tokens:
        try:
            v = float(t)
        except ValueError:
            raise SggInputError(f"non-numeric coordinate {t!r}", path=path, where=f"line {lineno}") from None
        if not np.isfinite(v):
            raise SggInputError(f"non-finite coordinate {t!r}", path=path, where=f"line {lineno}")
        out.append(v)
    return out


def corners_to_boxes(corners: np.ndarray, path: Path | None = None, where: Sequence[str] | None = None) -> torch.Tensor:
    """(N,4,2) corners → (N,5) le90 boxes via ``sgg.ops.corners_to_box`` (float64 in, float32 out).

    A quadrilateral whose minimum-area rectangle has (near) zero area — collinear or coincident corners —
    raises SggInputError naming ``where[i]``. Corner order does not matter (a "bow-tie" is fine).
    """
    from sgg.ops import corners_to_box

    if len(corners) == 0:
        return torch.zeros(0, 5)
    boxes = corners_to_box(torch.from_numpy(np.ascontiguousarray(corners, dtype=np.float64)))
    area = boxes[:, 2] * boxes[:, 3]
    bad = (~torch.isfinite(boxes).all(dim=1) | (area < MIN_POLYGON_AREA)).nonzero().reshape(-1)
    if len(bad):
        i = int(bad[0])
        raise SggInputError(
            f"degenerate polygon (zero area): {np.asarray(corners[i]).reshape(-1).tolist()}",
            path=path, where=None if where is None else where[i],
        )
    return boxes.float()


def axis_aligned(corners: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """(N,) bool: the quadrilateral's corners take only two x and two y values (an axis-aligned rectangle)."""
    c = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)
    if len(c) == 0:
        return np.zeros(0, dtype=bool)
    lo, hi = c.min(1, keepdims=True), c.max(1, keepdims=True)
    on_edge = (np.abs(c - lo) <= tol) | (np.abs(c - hi) <= tol)
    return on_edge.all(axis=(1, 2))


def _usable_polygons(corners: np.ndarray, path: Path, where: Sequence[str],
                     image_size: tuple[int, int] | None) -> np.ndarray:
    """(N,) bool; warns (file and line) about degenerate polygons and those wholly outside the image."""
    if len(corners) == 0:
        return np.zeros(0, dtype=bool)
    x, y = corners[..., 0], corners[..., 1]
    # the largest of the three quadrilaterals through the four corners: zero only when all are collinear, so a
    # "bow-tie" corner order (area 0 as written) is not taken for a degenerate box
    area = np.zeros(len(corners))
    for order in ((0, 1, 2, 3), (0, 1, 3, 2), (0, 2, 1, 3)):
        xo, yo = x[:, order], y[:, order]
        area = np.maximum(area, 0.5 * np.abs((xo * np.roll(yo, -1, 1) - np.roll(xo, -1, 1) * yo).sum(1)))
    ext = np.maximum(x.max(1) - x.min(1), y.max(1) - y.min(1))
    degenerate = ~(area >= MIN_POLYGON_AREA) | ~(area >= 1e-9 * ext ** 2)  # NaN-safe
    outside = past = np.zeros(len(corners), dtype=bool)
    if image_size is not None:
        w, h = image_size
        outside = outside_image(torch.from_numpy(corners), image_size).numpy()
        reach = np.maximum.reduce([-x.min(1), -y.min(1), x.max(1) - w, y.max(1) - h])
        past = ~outside & ~degenerate & (reach > EDGE_TOLERANCE)
    for kind, sel, why, fate in (
        ("degenerate", degenerate, lambda i: "degenerate polygon (zero area)", "skipped"),
        ("outside", outside & ~degenerate, lambda i: f"polygon outside the {w}×{h} image", "skipped"),
        ("past", past, lambda i: f"polygon reaches {reach[i]:.1f} px past the {w}×{h} image", "kept"),
    ):
        idx = np.flatnonzero(sel)
        for i in idx[:MAX_LINE_WARNINGS]:
            warnings.warn(f"{path}: {where[i]}: {why(i)}: {corners[i].reshape(-1).tolist()}; {fate}", stacklevel=3)
        if len(idx) > MAX_LINE_WARNINGS:  # a wrong image or a scaled label file: one summary, not a flood
            rest = idx[MAX_LINE_WARNINGS:]
            lines = ", ".join(where[i] for i in rest[:10]) + (", …" if len(rest) > 10 else "")
            warnings.warn(f"{path}: {len(rest)} more {kind} polygons ({lines}); {fate}", stacklevel=3)
    return ~(degenerate | outside)


IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


def find_dota_image(label_path: Path) -> Path | None:
    """The image of a label file: same stem beside it or in the DOTA layout's ``../images/``."""
    for folder in (label_path.parent, label_path.parent.parent / "images"):
        for suffix in IMAGE_SUFFIXES:
            cand = folder / f"{label_path.stem}{suffix}"
            if cand.is_file():
                return cand
    return None


def _image_size(image: Path) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(image) as im:  # reads the header only
            return int(im.width), int(im.height)
    except (OSError, ValueError, Image.DecompressionBombError):  # unreadable, exotic or huge: size unknown
        return None


def read_dota_labels(
    path: str | os.PathLike,
    vocabulary=None,
    aliases: Mapping[str, str | None] | str | None = None,
    image_size: tuple[int, int] | None = None,
):
    """Read a DOTA label file into a SceneGraph annotation (boxes, labels, ``difficult``, gsd metadata).

    ``vocabulary`` defaults to STAR's; use ``aliases="dota_to_star"`` to read DOTA names into it, or
    ``vocabulary=sgg.datasets.DOTA_VOCABULARY`` to keep DOTA's own classes. Objects whose class is aliased
    to ``None`` are dropped. ``image_path`` is the same-stem image beside the file or in ``../images/``
    when there is one; ``image_size`` (width, height) is taken as given, else from that image's header.
    """
    from sgg.structures import Detections, OrientedBoxes, SceneGraph, Vocabulary

    path = Path(path)
    vocabulary = vocabulary or Vocabulary.star()
    metadata: dict = {}
    coords, names, diffs, where = [], [], [], []
    for lineno, raw in enumerate(_read_lines(path), start=1):
        line = raw.strip()
        if not line:
            continue
        entry = _header_entry(line)
        if entry is not None:
            key, value = entry
            if key == "gsd":
                try:
                    metadata["gsd"] = parse_gsd(value)
                except ValueError:
                    raise SggInputError(f"gsd is not a number: {value!r}", path=path, where=f"line {lineno}") from None
            else:
                metadata["imagesource"] = value
            continue
        tokens = line.split()
        numeric = 0
        for t in tokens:  # count the leading numeric tokens to report "7 numbers" precisely
            try:
                float(t)
            except ValueError:
                break
            numeric += 1
        if numeric != 8 or len(tokens) not in (9, 10):
            if numeric < 8 and len(tokens) >= 10 and numeric < len(tokens) - 2:
                bad = tokens[numeric]
                raise SggInputError(f"non-numeric coordinate {bad!r}", path=path, where=f"line {lineno}")
            raise SggInputError(
                f"expected 8 coordinates, a class name and an optional difficulty flag; got {numeric} numbers "
                f"in {len(tokens)} fields: {line[:80]!r}",
                path=path,
                where=f"line {lineno}",
            )
        coords.append(_parse_numbers(tokens[:8], path, lineno))
        names.append(tokens[8])
        if len(tokens) == 10:
            if not tokens[9].isdigit():
                raise SggInputError(f"difficulty must be a non-negative integer (0 = easy), got {tokens[9]!r}",
                                    path=path, where=f"line {lineno}")
            diffs.append(int(tokens[9]) >= 1)
        else:
            diffs.append(False)
        where.append(f"line {lineno}")

    corners = np.asarray(coords, dtype=np.float64).reshape(-1, 4, 2)
    labels = map_names(names, vocabulary.objects, aliases, path=path, where=where)
    metadata["source_format"] = "dota"
    image = find_dota_image(path)
    if image_size is None and image is not None:
        image_size = _image_size(image)
    ok = _usable_polygons(corners, path, where, image_size)
    keep = (labels >= 0) & ok
    boxes = corners_to_boxes(corners[ok], path, [w for w, k in zip(where, ok) if k])[torch.from_numpy(keep[ok])]
    if keep.any():
        metadata["box_type"] = "hbb" if bool(axis_aligned(corners[keep]).all()) else "obb"
    return SceneGraph(
        detections=Detections(OrientedBoxes(boxes), torch.from_numpy(labels[keep])),
        vocabulary=vocabulary,
        metadata=metadata,
        image_size=image_size,
        image_path=None if image is None else str(image),
        difficult=torch.from_numpy(np.asarray(diffs, dtype=bool)[keep]),
        predicate_labels=torch.zeros(0, dtype=torch.long),
    )


def _format_corners(corners: np.ndarray, digits: int) -> list[str]:
    """(N,4,2) → list of "x1 y1 … y4" strings."""
    fmt = " ".join([f"{{:.{digits}f}}"] * 8)
    return [fmt.format(*row) for row in corners.reshape(-1, 8).tolist()]


def _class_names(vocabulary, class_names: Mapping[str, str] | str | None) -> list[str]:
    if class_names is None:
        return list(vocabulary.objects)
    if isinstance(class_names, str):
        if class_names.lower().replace("-", "_") not in ("star_to_dota", "dota"):
            raise SggInputError(f"unknown class-name table {class_names!r}; use a mapping or 'star_to_dota'")
        from sgg.datasets.aliases import STAR_TO_DOTA

        class_names = STAR_TO_DOTA
    return [class_names.get(n, n) for n in vocabulary.objects]


def write_dota_labels(
    sg,
    path: str | os.PathLike,
    gsd: float | None = None,
    imagesource: str | None = None,
    *,
    class_names: Mapping[str, str] | str | None = None,
    digits: int = 2,
) -> Path:
    """Write a SceneGraph's objects as a DOTA label file (box corners, class, difficulty), atomically.

    Header lines are written when ``gsd``/``imagesource`` are given or present in ``sg.metadata``.
    ``class_names`` renames classes on the way out (``"star_to_dota"`` inverts ``DOTA_TO_STAR``).
    """
    from sgg.ops import box_to_corners

    path = Path(path)
    gsd = gsd if gsd is not None else sg.metadata.get("gsd")
    imagesource = imagesource if imagesource is not None else sg.metadata.get("imagesource")
    det = sg.detections
    names = _class_names(sg.vocabulary, class_names)
    corners = box_to_corners(det.boxes.tensor.double()).cpu().numpy() if len(det) else np.zeros((0, 4, 2))
    diff = sg.difficult.cpu().numpy() if sg.difficult is not None else np.zeros(len(det), dtype=bool)
    lines = []
    if imagesource is not None:
        lines.append(f"imagesource:{imagesource}")
    if gsd is not None or "gsd" in sg.metadata:
        lines.append(f"gsd:{'null' if gsd is None else repr(float(gsd))}")
    labels = det.labels.cpu().numpy()
    for text, lab, d in zip(_format_corners(corners, digits), labels, diff):
        lines.append(f"{text} {names[int(lab)]} {int(bool(d))}")
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    return path


def _result_files(path_or_dir) -> list[Path]:
    if isinstance(path_or_dir, (str, os.PathLike)):
        p = Path(path_or_dir)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if _RESULT_NAME.match(f.name))
            if not files:
                raise SggInputError("no Task1_<class>.txt results files in this directory", path=p)
            return files
        return [p]
    return [Path(f) for f in path_or_dir]


def read_dota_results(
    path_or_dir: str | os.PathLike | Iterable[str | os.PathLike],
    vocabulary=None,
    aliases: Mapping[str, str | None] | str | None = None,
):
    """Read DOTA Task-1 results (``Task1_<class>.txt``: ``image score x1 y1 … y4``) → {image_id: Detections}.

    Accepts a directory, one file or a list of files; the class comes from each file's name. Detections of
    an image are sorted by descending score. Classes aliased to ``None`` are skipped.
    """
    from sgg.structures import Detections, OrientedBoxes, Vocabulary

    vocabulary = vocabulary or Vocabulary.star()
    files = _result_files(path_or_dir)
    per_image: dict[str, list] = {}
    for f in files:
        m = _RESULT_NAME.match(f.name)
        if not m:
            raise SggInputError("results file name must be Task1_<class>.txt", path=f)
        label = int(map_names([m.group(1)], vocabulary.objects, aliases, path=f, where=["file name"])[0])
        if label < 0:
            continue
        ids, rows, where = [], [], []
        for lineno, raw in enumerate(_read_lines(f), start=1):
            tokens = raw.split()
            if not tokens:
                continue
            if len(tokens) != 10:
                raise SggInputError(
                    f"expected '<image_id> <score> x1 y1 x2 y2 x3 y3 x4 y4' (10 fields), got {len(tokens)}",
                    path=f,
                    where=f"line {lineno}",
                )
            ids.append(tokens[0])
            rows.append(_parse_numbers(tokens[1:], f, lineno))
            where.append(f"line {lineno}")
        if not rows:
            continue
        arr = np.asarray(rows, dtype=np.float64)
        corners = arr[:, 1:].reshape(-1, 4, 2)
        boxes = corners_to_boxes(corners, f, where)
        scores = torch.from_numpy(arr[:, 0]).float()
        ids_arr = np.asarray(ids)
        for image_id in dict.fromkeys(ids):  # preserves first-seen order
            sel = torch.from_numpy(np.flatnonzero(ids_arr == image_id))
            per_image.setdefault(image_id, []).append((boxes[sel], scores[sel], label))
    out = {}
    for image_id, parts in per_image.items():
        boxes = torch.cat([p[0] for p in parts])
        scores = torch.cat([p[1] for p in parts])
        labels = torch.cat([torch.full((len(p[0]),), p[2], dtype=torch.long) for p in parts])
        order = torch.argsort(scores, descending=True, stable=True)
        out[image_id] = Detections(OrientedBoxes(boxes[order]), labels[order], scores[order])
    return out


def write_dota_results(
    results: Mapping[str, object],
    out_dir: str | os.PathLike,
    vocabulary=None,
    *,
    class_names: Mapping[str, str] | str | None = None,
    digits: int = 2,
) -> list[Path]:
    """Write {image_id: Detections} as DOTA Task-1 files, one ``Task1_<class>.txt`` per vocabulary class.

    Every class gets a file (empty if nothing was detected), as the DOTA devkit's evaluation expects.
    """
    from sgg.ops import box_to_corners
    from sgg.structures import Vocabulary

    vocabulary = vocabulary or Vocabulary.star()
    names = _class_names(vocabulary, class_names)
    out_dir = Path(out_dir)
    lines: list[list[str]] = [[] for _ in names]
    for image_id, det in results.items():
        if " " in str(image_id):
            raise SggInputError(f"image id {image_id!r} contains a space; DOTA results cannot hold it")
        if det is None or len(det) == 0:
            continue
        det = det.to("cpu")
        corners = box_to_corners(det.boxes.tensor.double()).numpy()
        texts = _format_corners(corners, digits)
        for text, lab, score in zip(texts, det.labels.tolist(), det.scores.tolist()):
            lines[lab].append(f"{image_id} {score:.6f} {text}")
    paths = []
    for name, rows in zip(names, lines):
        p = out_dir / f"Task1_{name}.txt"
        atomic_write_text(p, "\n".join(rows) + ("\n" if rows else ""))
        paths.append(p)
    return paths
