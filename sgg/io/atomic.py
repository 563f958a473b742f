"""Atomic file output: write to a hidden temporary name beside the target, rename into place on success.

The temporary name carries the writer's process id (``.NAME.<pid>.<random>.part<suffix>``), so a later run
can tell an abandoned part (its process is gone, e.g. after ``kill -9``) from one being written right now,
and removes it together with SQLite's ``-journal``/``-wal``/``-shm`` side files. A file that exists under
its final name is therefore always complete, and interrupted runs leave nothing behind for long.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

_PART = re.compile(r"^\.(?P<stem>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.part(?P<suffix>\.[^.]*)?$")
_SIDE = ("-wal", "-shm", "-journal")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists but not ours, or cannot tell: keep it
        return True
    return True


def _remove(part: Path) -> None:
    for p in (part, *(part.with_name(part.name + s) for s in _SIDE)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def clean_stale_parts(final: str | os.PathLike) -> list[Path]:
    """Remove temporary parts of ``final`` left by writers that no longer run; returns what was removed."""
    final = Path(final)
    removed: list[Path] = []
    try:
        entries = list(final.parent.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _PART.match(p.name)
        if m and m["stem"] == final.stem and (m["suffix"] or "") == final.suffix and not _alive(int(m["pid"])):
            _remove(p)
            removed.append(p)
    return removed


def part_path(final: str | os.PathLike) -> Path:
    """A fresh temporary name beside ``final`` (same directory, hence same filesystem, same suffix)."""
    final = Path(final)
    return final.with_name(f".{final.stem}.{os.getpid()}.{secrets.token_hex(4)}.part{final.suffix}")


@contextlib.contextmanager
def atomic_paths(*finals: str | os.PathLike) -> Iterator[list[Path]]:
    """Temporary paths beside ``finals`` (same suffix); renamed onto them in order on success, removed on
    failure or interruption. Put the main file last. Stale parts of earlier, killed runs are removed first."""
    finals = tuple(Path(f) for f in finals)
    tmps: list[Path] = []
    try:
        for f in finals:
            f.parent.mkdir(parents=True, exist_ok=True)
            clean_stale_parts(f)
            tmps.append(part_path(f))
        yield tmps
        for t, f in zip(tmps, finals):
            os.replace(t, f)
    finally:
        for t in tmps:
            _remove(t)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_paths(Path(path)) as (tmp,), open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
