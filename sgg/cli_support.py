"""What every ``sgg`` sub-command shares: one error path, one warning channel, up-front option checks.

- :func:`run_command` calls a sub-command's ``main(argv)`` and turns whatever escapes into one stderr line
  ``sgg CMD: error: <file or option>: <problem>``: exit status 2 for bad input (``SggInputError``, a bad
  option, ``OSError``, pyproj/rasterio/pyogrio/GDAL errors, undecodable or invalid files), 130 for Ctrl-C
  (143 for SIGTERM, unwound the same way so no temporary part is left), 1 for an internal error (a bug: the line says so). ``--debug`` shows the traceback instead.
- Warnings (Python ``warnings`` from any library) print as ``warning: <message>`` lines on stderr, each
  message once; ``--quiet`` silences them.
- :class:`ArgumentParser` reports usage errors the same way (one line, status 2) and option types
  (:func:`int_range`, :func:`float_range`) and path checks (:func:`input_path`, :func:`output_file`,
  :func:`output_dir`) reject bad options before any work starts, in command-line terms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from sgg.errors import SggInputError

GLOBAL = {"debug": False, "quiet": False}  # flags given before the command name (set by run_command)
_INPUT_LIBS = {"pyproj", "rasterio", "pyogrio", "fiona", "shapely", "sqlite3", "pyarrow", "networkx", "yaml",
               "jsonargparse", "zipfile", "PIL"}


class UsageError(SggInputError):
    """A bad command line (unknown option, missing value, number out of range)."""


# ----------------------------------------------------------------------------------------- parsing
class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` (one line via :func:`run_command`) instead of printing
    usage and exiting, shows defaults in ``--help``, and knows the global ``--debug``/``--quiet`` flags."""

    def __init__(self, *args, quiet_help: str = "no warnings, progress or summary", **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument("--quiet", "-q", action="store_true", help=quiet_help)
        self.add_argument("--debug", action="store_true", help="show the Python traceback of an error")

    def error(self, message: str):
        raise UsageError(f"{message} (see `{self.prog} --help`)")

    def parse_args(self, args=None, namespace=None):
        ns = super().parse_args(args, namespace)
        ns.quiet = ns.quiet or GLOBAL["quiet"]  # `sgg --quiet CMD …` as well as `sgg CMD … --quiet`
        ns.debug = ns.debug or GLOBAL["debug"]
        return ns


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's line breaks and appends ``(default: …)`` to options that have one."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS) or "%(default)" in (action.help or "") \
                or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """argparse type: an integer in ``[lo, hi]``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        _check_range(value, lo, hi)
        return value
    parse.__name__ = "integer"
    return parse


def float_range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> Callable[[str], float]:
    """argparse type: a finite number in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if lo_open and lo is not None and value <= lo:
            raise argparse.ArgumentTypeError(f"must be > {lo:g}, got {text}")
        _check_range(value, lo, hi)
        return value
    parse.__name__ = "number"
    return parse


def _check_range(value, lo, hi) -> None:
    if lo is not None and value < lo or hi is not None and value > hi:
        span = (f"between {lo:g} and {hi:g}" if lo is not None and hi is not None
                else f">= {lo:g}" if lo is not None else f"<= {hi:g}")
        raise argparse.ArgumentTypeError(f"must be {span}, got {value:g}")


# ------------------------------------------------------------------------------------------ device
# ------------------------------------------------------------------------------------------- paths
def input_path(path: str | os.PathLike, option: str, *, kind: str = "file") -> Path:
    """An existing input: ``kind`` is ``"file"`` (non-empty regular file), ``"dir"`` or ``"any"``."""
    p = Path(path)
    if not p.exists():
        raise SggInputError("not found", path=p, option=option)
    if kind == "file" and p.is_dir():
        raise SggInputError("is a directory, expected a file", path=p, option=option)
    if kind == "dir" and not p.is_dir():
        raise SggInputError("is a file, expected a directory", path=p, option=option)
    if p.is_file():
        if not os.access(p, os.R_OK):
            raise SggInputError("not readable (permission denied)", path=p, option=option)
        if p.stat().st_size == 0:
            raise SggInputError("is empty (0 bytes)", path=p, option=option)
    return p


def _writable_parent(p: Path, option: str) -> None:
    parent = p.absolute().parent
    while not parent.exists():  # created on write: the first existing ancestor must be a writable directory
        parent = parent.parent
    if not parent.is_dir():
        raise SggInputError(f"cannot create it: {parent} is a file", path=p, option=option)
    _probe(parent, p, option)


def _probe(parent: Path, p: Path, option: str) -> None:
    try:  # a real probe: access() says yes to root even on read-only or virtual filesystems
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise SggInputError(f"directory {parent} is not writable ({exc.strerror or exc})", path=p,
                            option=option) from None


def output_file(path: str | os.PathLike, option: str, *, suffixes: Sequence[str] | None = None,
                inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """An output file that can be written: not a directory, not one of ``inputs``, its directory writable
    (or creatable), its suffix among ``suffixes`` (compared case-insensitively, multi-part like
    ``.scene.json`` allowed). An existing file is replaced atomically when the command succeeds."""
    p = Path(path)
    if p.is_dir():
        raise SggInputError("is a directory; give a file name", path=p, option=option)
    if suffixes is not None and not any(p.name.lower().endswith(s) for s in suffixes):
        raise SggInputError(f"unknown output suffix {''.join(p.suffixes[-1:]) or '(none)'!r}; use one of "
                            f"{', '.join(suffixes)}", path=p, option=option)
    for src in inputs:
        if Path(src).exists() and p.exists() and os.path.samefile(src, p):
            raise SggInputError("is the input file; choose another output name", path=p, option=option)
    if p.exists() and not os.access(p, os.W_OK):
        raise SggInputError("exists and is not writable", path=p, option=option)
    _writable_parent(p, option)
    return p


def output_dir(path: str | os.PathLike, option: str, *, empty: bool = False, overwrite: bool = False,
               overwrite_flag: str = "--overwrite") -> Path:
    """An output directory: not a file, writable; with ``empty`` an existing non-empty directory is refused
    unless ``overwrite``."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise SggInputError("is a file, expected a directory", path=p, option=option)
    if p.is_dir():
        _probe(p, p, option)
        if empty and not overwrite and any(p.iterdir()):
            raise SggInputError(f"directory is not empty; pass {overwrite_flag} to write into it anyway",
                                path=p, option=option)
    else:
        _writable_parent(p, option)
    return p


# ------------------------------------------------------------------------------------------ errors
def _is_input_error(exc: BaseException) -> bool:
    if isinstance(exc, (SggInputError, OSError, UnicodeDecodeError, json.JSONDecodeError)):
        return True
    return any(c.__module__.split(".")[0] in _INPUT_LIBS for c in type(exc).__mro__[:-2])


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def describe_error(exc: BaseException) -> str:
    """The one-line message of an error: file and problem, no Python class names for known input errors."""
    if isinstance(exc, SggInputError):
        return _one_line(exc)
    if isinstance(exc, OSError):
        what = exc.strerror or str(exc) or type(exc).__name__
        names = [n for n in (exc.filename, getattr(exc, "filename2", None)) if n]
        return _one_line(f"{names[0]}: {what}" if names else what)
    if isinstance(exc, UnicodeDecodeError):
        return _one_line(f"not a text file (byte {exc.start} cannot be decoded as {exc.encoding})")
    if _is_input_error(exc):
        return _one_line(str(exc) or type(exc).__name__)
    return _one_line(f"internal error ({type(exc).__name__}: {exc}); please report it with the output of --debug")


def run_command(name: str, main: Callable[[list[str]], int | None], argv: list[str], *,
                debug: bool = False, quiet: bool = False) -> int:
    """Run ``main(argv)`` behind the shared error path and warning channel (see module docstring).
    ``debug``/``quiet``: the global flags given before the command; the command's own count too."""
    debug = debug or "--debug" in argv
    quiet = quiet or "--quiet" in argv or "-q" in argv
    GLOBAL.update(debug=debug, quiet=quiet)
    with warning_channel(quiet=quiet), _argparse_raises(), _sigterm_interrupts(), _reset_global():
        try:
            return int(main(argv) or 0)
        except KeyboardInterrupt as exc:
            if debug:
                raise
            how = "terminated" if isinstance(exc, Terminated) else "interrupted"
            print(f"sgg {name}: {how}; no half-written file is left", file=sys.stderr)
            return 143 if isinstance(exc, Terminated) else 130
        except SystemExit as exc:  # argparse --help / --version, or a library that exits
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        except Exception as exc:
            if debug:
                raise
            print(f"sgg {name}: error: {describe_error(exc)}", file=sys.stderr)
            return 2 if _is_input_error(exc) else 1


@contextlib.contextmanager
def _reset_global() -> Iterator[None]:
    try:
        yield
    finally:
        GLOBAL.update(debug=False, quiet=False)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler, ``kill``): unwinds like Ctrl-C, so temporary parts are removed."""


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def _argparse_raises() -> Iterator[None]:
    """Any plain ``argparse`` parser of a sub-command reports usage errors through the one error path
    too (instead of printing its usage block and exiting)."""
    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")

    saved = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = error
    try:
        yield
    finally:
        argparse.ArgumentParser.error = saved


# ---------------------------------------------------------------------------------------- progress
class LineProgress:
    """Progress for logs (stderr not a terminal): ``fn(level, done, total)`` printing one line
    ``sgg CMD: level L: done/total tiles (P%), T s`` at most every ``interval`` seconds and when a level
    ends, instead of a bar that a log file cannot redraw."""

    def __init__(self, command: str, interval: float = 10.0, unit: str = "tiles", stream=None):
        import time

        self.command, self.interval, self.unit = command, float(interval), unit
        self.stream = stream if stream is not None else sys.stderr
        self._clock = time.monotonic
        self._start = self._last = self._clock()

    def __call__(self, level: int, done: int, total: int) -> None:
        now = self._clock()
        if done < total and now - self._last < self.interval:
            return
        self._last = now
        pct = 100.0 * done / total if total else 100.0
        print(f"sgg {self.command}: level {level}: {done}/{total} {self.unit} ({pct:.0f}%), "
              f"{now - self._start:.0f} s", file=self.stream, flush=True)


def progress_for(command: str, quiet: bool):
    """``True`` (a bar) on a terminal, a :class:`LineProgress` in logs, ``False`` when quiet."""
    if quiet:
        return False
    return True if sys.stderr.isatty() else LineProgress(command)


# ---------------------------------------------------------------------------------------- warnings
_seen: set[str] = set()


@contextlib.contextmanager
def warning_channel(quiet: bool = False) -> Iterator[None]:
    """Route Python warnings to ``warning: <message>`` lines on stderr, each message once (none if quiet)."""
    def show(message, category, filename, lineno, file=None, line=None):
        text = _one_line(message)
        if quiet or text in _seen:
            return
        _seen.add(text)
        print(f"warning: {text}", file=sys.stderr)

    _seen.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)  # each message once, by our own dedup below
        warnings.showwarning = show
        yield


def warn(message: str) -> None:
    """Emit a user-facing warning through the channel (a plain ``UserWarning``)."""
    warnings.warn(message, UserWarning, stacklevel=2)
