"""sgg.io.memory: freed heap pages go back to the OS, and tile sweeps trim as they go (issue 16's
memory target: RSS must not grow with the number of tiles read)."""

from __future__ import annotations

import numpy as np
import pytest

from sgg.io import RasterScene, memory, raster, write_geotiff


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(memory._malloc_trim() is None, reason="glibc malloc_trim only")
def test_release_memory_returns_freed_heap_pages():
    # freeing one 4 MB mmapped block raises glibc's mmap threshold, so the 1 MB blocks below come from the heap;
    # keeping the last one pins the heap top, so ordinary trimming at the top cannot give the rest back
    big = bytearray(4 << 20)
    del big
    blocks = [bytearray(b"\x01" * (1 << 20)) for _ in range(160)]
    last = blocks[-1]
    before = _rss_mb()
    del blocks
    held = _rss_mb()
    assert held > before - 40  # freed, but still resident: this is the growth the reader saw
    assert memory.release_memory() is True
    assert _rss_mb() < held - 100
    assert last[0] == 1


def test_heap_trimmer_counts_ticks(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "release_memory", lambda: calls.append(1) or True)
    t = memory.HeapTrimmer(every=3)
    for _ in range(7):
        t.tick()
    assert len(calls) == 2 and t.trims == 2 and t.count == 1
    t.tick(5)
    assert len(calls) == 3


@pytest.mark.parametrize("prefetch", [0, 2])
def test_tile_sweep_trims_every_n_tiles_and_at_the_end(tmp_path, monkeypatch, prefetch):
    img = np.random.default_rng(0).integers(0, 255, (600, 500, 3), dtype=np.uint8)
    path = tmp_path / "s.tif"
    write_geotiff(path, img, "EPSG:32618", (0.5, 0, 500000, 0, -0.5, 4200000), blocksize=128, overviews=False)
    calls = []
    monkeypatch.setattr(memory, "release_memory", lambda: calls.append("tick") or True)
    monkeypatch.setattr(raster, "release_memory", lambda: calls.append("end") or True)
    monkeypatch.setattr(raster, "TRIM_EVERY", 2)
    with RasterScene.open(path) as scene:
        tiles = list(scene.tiles(tile_size=256, overlap=0, prefetch=prefetch))
    assert len(tiles) == 3 * 2
    assert calls.count("tick") == len(tiles) // 2 and calls[-1] == "end"


@pytest.mark.parametrize("level,resampling,tol", [(1, "nearest", 0), (2, "average", 1), (3, "average", 1)])
def test_large_decimated_reads_are_split_without_changing_pixels(tmp_path, monkeypatch, level, resampling, tol):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:1001, 0:777]
    img = np.clip((np.sin(xx / 17.0) + np.cos(yy / 23.0) + 2)[..., None] * 50 + rng.normal(0, 20, (1001, 777, 3)),
                  0, 255).astype(np.uint8)
    path = tmp_path / "odd.tif"  # sizes that do not divide by 2**level: fractional source windows
    write_geotiff(path, img, "EPSG:32618", (0.5, 0, 500000, 0, -0.5, 4200000), blocksize=128, overviews=False)
    with RasterScene.open(path, resampling=resampling) as scene:
        whole = scene.read(level=level)
        tile = next(iter(scene.tiles(tile_size=256, overlap=32, level=level)))
        split_calls = []
        orig = scene._read_split
        monkeypatch.setattr(scene, "_read_split", lambda *a: split_calls.append(a[1]) or orig(*a))
        monkeypatch.setattr(raster, "SUB_READ", 100)  # 100 source px per sub-read
        split = scene.read(level=level)
        split_tile = next(iter(scene.tiles(tile_size=256, overlap=32, level=level)))
    assert len(split_calls) == 2
    for a, b in ((whole, split), (tile, split_tile)):
        assert a.array.shape == b.array.shape and b.valid.all() and a.factor == b.factor
        diff = np.abs(a.array.astype(int) - b.array.astype(int))
        assert diff.max() <= tol and diff.mean() < 0.05


_REUSE_PROBE = """
import json, resource, sys
import torch
from sgg.io import memory

torch.set_num_threads(1)  # fill on this thread; count this thread's faults


def refault_k(n, rounds=3, keep=3):  # minor faults (thousands) of re-allocating and filling a buffer
    counts = []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        torch.ones(n)
        counts.append((resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before) / 1e3)
    return min(counts[-keep:])  # the least of the last keep rounds


trims = []
release = memory.release_memory
memory.release_memory = lambda: trims.append(1) or release()
n = 16 << 20  # 64 MB of float32: above glibc's largest mmap threshold, so a fresh mapping by default
out = {"default": refault_k(n)}
with memory.reuse_freed_memory():
    with memory.reuse_freed_memory():  # nested: one setting, restored by the outermost block only
        out["nested"] = refault_k(n, rounds=14, keep=4)  # the heap settles within ~7 re-allocations
    out["outer"] = refault_k(n)
    out["trims_inside"] = len(trims)
out["trims_after"] = len(trims)
# mmap is back: a block larger than any free heap chunk is a fresh mapping again, every time
out["after"] = refault_k(4 * n)
print(json.dumps(out))
"""


@pytest.mark.skipif(memory._mallopt() is None, reason="glibc mallopt only")
def test_reuse_freed_memory_keeps_large_buffers_paged_in_and_restores_the_defaults():
    # in a fresh interpreter: what earlier tests loaded into this process can change glibc's behaviour
    import json
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", _REUSE_PROBE], check=False, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    r = json.loads(run.stdout.strip().splitlines()[-1])
    pages = (16 << 20) * 4 / 4096 / 1e3  # 16.4 k pages
    assert r["default"] > 0.9 * pages  # default: every re-allocation is zero-filled page by page
    assert r["nested"] < 0.05 * pages and r["outer"] < 0.05 * pages and r["trims_inside"] == 0
    assert r["trims_after"] == 1  # the last block out trims the heap
    assert r["after"] > 0.9 * 4 * pages  # defaults are back


def test_detect_scene_runs_its_tiles_inside_reuse_freed_memory(monkeypatch):
    from sgg.detectors import inference

    entered = []

    class _Spy:
        def __enter__(self):
            entered.append("in")

        def __exit__(self, *exc):
            entered.append("out")

    monkeypatch.setattr(inference, "reuse_freed_memory", _Spy)
    plan = inference.DetectionPlan.__new__(inference.DetectionPlan)
    object.__setattr__(plan, "levels", [])
    list(inference.run_tiles(object(), None, plan))
    assert entered == ["in", "out"]
