"""The package's layout holds: every module of ``sgg`` imports on its own in a fresh interpreter (no import
cycle that only works in one order), imports between modules never form a cycle, and no lower layer imports
a higher one (structures never reach for graph, the detector never for captioning, ...).

Modules are found on disk (``pkgutil`` over the package directories, nothing imported), and imports are read
with ``ast`` — function-level (lazy) imports count too — so new modules and packages are covered as they appear.
"""

from __future__ import annotations

import ast
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "sgg"

# Layers, lowest first; a module may import its own layer and those below. ``ops`` (pure tensor geometry, no
# sgg import) sits below ``structures``, whose box helpers call it. Top-level command modules (``cli``,
# ``cli_support``, ``demo``, ``*_cli``) form the last layer.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "ops", "data", "devices"),
    ("structures",),
    ("io",),
    ("datasets",),
    ("evaluation",),  # metrics on structures and ops only: training modules and scorers call them
    ("detectors",),
    ("pairs",),
    ("relation_heads",),
    ("graph", "preview"),
    ("captioning",),
    ("pipeline",),
    ("cli", "cli_support", "demo"),
]
# Known upward imports, each to be removed by the change that fixes it (listed ones must still exist).
ALLOWED_UPWARD = {
}
ALLOWED_CYCLES = {
}


# ------------------------------------------------------------------------------------------ discovery
def find_modules(root: Path = ROOT, prefix: str = "sgg") -> dict[str, tuple[Path, bool]]:
    """Every module and package under ``root``: dotted name -> (source file, is_package). Imports nothing."""
    out = {prefix: (root / "__init__.py", True)}
    for info in pkgutil.iter_modules([str(root)]):
        name = f"{prefix}.{info.name}"
        if info.ispkg:
            out.update(find_modules(root / info.name, name))
        else:
            out[name] = (root / f"{info.name}.py", False)
    return out


def imports_of(name: str, path: Path, is_package: bool, modules) -> set[str]:
    """The sgg modules that ``name`` imports anywhere in its source (module level or inside functions).

    ``from sgg.a import b`` is an import of ``sgg.a.b`` when that is a module, else of ``sgg.a``; relative
    imports are resolved against the module's package."""
    package = name if is_package else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "sgg")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "sgg":
                continue
            for a in node.names:
                out.add(f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod)
    out.discard(name)
    return out


MODULES = find_modules()
GRAPH = {name: imports_of(name, path, pkg, MODULES) for name, (path, pkg) in MODULES.items()}


def layer_of(name: str) -> int | None:
    """Layer index of a module (by its top-level part under sgg); None for the root package ``sgg``."""
    parts = name.split(".")
    if len(parts) == 1:
        return None
    if _is_command(parts[1]):
        return len(LAYERS) - 1
    for i, group in enumerate(LAYERS):
        if parts[1] in group:
            return i
    raise AssertionError(f"{name}: top-level part {parts[1]!r} is in no layer of tests/test_layout.py LAYERS")


def _is_command(part: str) -> bool:
    return part in LAYERS[-1] or part.endswith("_cli")


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(importer, imported) pairs where a module imports a higher layer; command modules (``*.cli``,
    ``*_cli``) and the root package are entry points and may import anything."""
    bad = set()
    for src, targets in graph.items():
        if src == "sgg" or _is_command(src.rpartition(".")[2]):
            continue
        for dst in targets:
            lo, hi = layer_of(src), layer_of(dst)
            if hi is not None and hi > lo:
                bad.add((src, dst))
    return bad


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(frozenset(comp))
    return out


# ------------------------------------------------------------------------------------------ the rules
def test_helpers_on_a_hand_made_graph():
    g = {"sgg.structures": {"sgg.graph.tables"}, "sgg.graph.tables": {"sgg.graph.topology", "sgg.structures"},
         "sgg.graph.topology": {"sgg.graph.tables"}, "sgg.graph.cli": {"sgg.cli_support"}, "sgg.ops.iou": {"sgg.errors"},
         "sgg.io.raster": {"sgg.io.tiles"}, "sgg.io.tiles": {"sgg.io.raster"}, "sgg.infer_cli": {"sgg.pipeline"},
         "sgg.pipeline": {"sgg.infer_cli"}}
    assert upward_imports(g) == {("sgg.structures", "sgg.graph.tables"), ("sgg.pipeline", "sgg.infer_cli")}
    assert sorted(map(sorted, cycles(g))) == [["sgg.graph.tables", "sgg.graph.topology", "sgg.structures"],
                                            ["sgg.infer_cli", "sgg.pipeline"], ["sgg.io.raster", "sgg.io.tiles"]]
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("sgg.nowhere.x")


def test_modules_are_found_and_every_directory_is_a_package():
    assert {"sgg.structures", "sgg.ops.conversions", "sgg.datasets.synthetic.generator", "sgg.cli"} <= set(MODULES)
    for d in ROOT.rglob("*"):
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")):
            assert (d / "__init__.py").exists(), f"{d}: Python files but no __init__.py (not installed as a package)"


def test_every_import_resolves_to_a_module():
    missing = {(src, dst) for src, ts in GRAPH.items() for dst in ts if dst not in MODULES}
    assert not missing, f"imports of sgg modules that do not exist: {sorted(missing)}"


def test_no_lower_layer_imports_a_higher_one():
    for name in MODULES:
        layer_of(name)  # every module sits in a declared layer
    bad = upward_imports(GRAPH)
    new = sorted(bad - set(ALLOWED_UPWARD))
    assert not new, "lower layer imports a higher one (importer -> imported): " + ", ".join(f"{a} -> {b}" for a, b in new)
    fixed = sorted(set(ALLOWED_UPWARD) - bad)
    assert not fixed, f"fixed, remove from ALLOWED_UPWARD: {fixed}"


def test_no_import_cycles():
    found = set(cycles(GRAPH))
    new = [sorted(c) for c in found - set(ALLOWED_CYCLES)]
    assert not new, f"import cycles: {new}"
    fixed = [sorted(c) for c in set(ALLOWED_CYCLES) - found]
    assert not fixed, f"fixed, remove from ALLOWED_CYCLES: {fixed}"


# One interpreter imports the third-party libraries sgg imports at module level (no sgg module), then forks
# one child per sgg module: each child imports its module first, as a fresh interpreter would.
_FORK_IMPORTS = textwrap.dedent("""
    import importlib, os, sys, traceback
    for lib in sys.argv[1].split(","):
        try:
            importlib.import_module(lib)
        except Exception:
            pass
    assert not [m for m in sys.modules if m == "sgg" or m.startswith("sgg.")]
    failed = []
    for name in sys.argv[2:]:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                importlib.import_module(name)
                code = 0
            except BaseException:
                os.write(w, traceback.format_exc(limit=-3).encode())
                code = 1
            os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            err = f.read().decode()
        _, status = os.waitpid(pid, 0)
        if status:
            failed.append(name + ": " + (err.strip().splitlines() or ["exit status %d" % status])[-1])
    print("\\n".join(failed))
    sys.exit(1 if failed else 0)
""")


def _third_party_module_imports() -> list[str]:
    libs = set()
    for path, _ in MODULES.values():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                libs.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                libs.add(node.module)
    return sorted(m for m in libs if m.split(".")[0] not in ("sgg", "__future__"))


def test_every_module_imports_on_its_own():
    names = sorted(MODULES)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if hasattr(os, "fork"):
        cmd = [sys.executable, "-c", _FORK_IMPORTS, ",".join(_third_party_module_imports()), *names]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)
        assert proc.returncode == 0, f"modules that fail to import on their own:\n{proc.stdout}{proc.stderr[-2000:]}"
    else:  # no fork (Windows): one interpreter per module
        failed = [n for n in names if subprocess.run([sys.executable, "-c", f"import {n}"], env=env, check=False).returncode]
        assert not failed, failed
