"""Benchmark: our 20 vs 20 against the seed code's algorithm, on the same draws, in one process.

The seed code's algorithm loops over the draws and vectorises each over voxels in numpy, in the data's
dtype (float32). Ours is a numba kernel, parallel over voxel blocks. Checks, on the same draws, that ours
with ``dtype=float32`` equals the seed algorithm bit for bit and that ours with ``dtype=float64`` (the
library's default) equals the seed algorithm run on float64 copies of the data; prints the warm times
(best of ``--repeats``), the first-call times (compiling into an empty cache, and loading the cache, each
in a fresh process), the speed-ups and the peak memory of each (tracemalloc; the kernel's per-thread block
tables are allocated by numba, which tracemalloc does not see, so their size is printed beside it).

    python perf/kvsk.py [--examples 300] [--voxels 37913] [--draws 1000] [--k 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numba
import numpy as np

from brainalign.metrics import kvsk
from brainalign.metrics.kvsk import draw_kvsk, kvsk_accuracy

FIRST_CALL = """
import time, numpy as np
started = time.perf_counter()
from brainalign.metrics.kvsk import kvsk_accuracy
imported = time.perf_counter()
y = np.zeros((4, 3), dtype=np.float32)
for dtype in (np.float64, np.float32):
    kvsk_accuracy(y, y, np.zeros((1, 1), dtype=np.int64), np.zeros((1, 1), dtype=np.int64), dtype=dtype)
print(imported - started, time.perf_counter() - imported)
"""


def seed_algorithm(y_true: np.ndarray, y_pred: np.ndarray, targets: np.ndarray,
                   distractors: np.ndarray) -> np.ndarray:
    """The seed code's loop: per draw, gather, square, sum and compare over all voxels at once."""
    accuracy = np.zeros(y_true.shape[1], dtype=np.float64)
    for t, d in zip(targets, distractors):
        truth = y_true[t]
        matched = np.sum((truth - y_pred[t]) ** 2, axis=0)
        mismatched = np.sum((truth - y_pred[d]) ** 2, axis=0)
        accuracy += (matched < mismatched) + 0.5 * (matched == mismatched)
    return accuracy / len(targets)


def measure(repeats: int, function, *args, **kwargs) -> tuple[np.ndarray, float, float]:
    """Result, wall seconds (best of ``repeats``, untraced) and peak traced memory (one more, traced call)."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        seconds.append(time.perf_counter() - started)
    tracemalloc.start()  # traced separately: tracing every allocation slows allocation-heavy code
    function(*args, **kwargs)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, min(seconds), peak


def first_calls() -> tuple[float, float, float]:
    """Import seconds, first-call seconds with an empty numba cache (compiling both dtypes), and first-call
    seconds in a second fresh process that loads that cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        run = lambda: subprocess.run([sys.executable, "-c", FIRST_CALL], env=env, check=True,  # noqa: E731
                                     capture_output=True, text=True).stdout.split()
        imported, cold = map(float, run())
        _, cached = map(float, run())
    return imported, cold, cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--voxels", type=int, default=37913)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    y_true = rng.standard_normal((args.examples, args.voxels)).astype(np.float32)
    y_pred = (0.3 * y_true + rng.standard_normal(y_true.shape)).astype(np.float32)
    targets, distractors = draw_kvsk(args.examples, args.k, args.draws, rng)

    imported, cold, cached = first_calls()
    started = time.perf_counter()
    kvsk_accuracy(y_true[:, :1], y_pred[:, :1], targets[:1], distractors[:1])
    kvsk_accuracy(y_true[:, :1], y_pred[:, :1], targets[:1], distractors[:1], dtype=np.float32)
    here = time.perf_counter() - started

    seed32, t_seed32, m_seed32 = measure(args.repeats, seed_algorithm, y_true, y_pred, targets, distractors)
    ours32, t_ours32, m_ours32 = measure(args.repeats, kvsk_accuracy, y_true, y_pred, targets, distractors,
                                         dtype=np.float32)
    ours64, t_ours64, m_ours64 = measure(args.repeats, kvsk_accuracy, y_true, y_pred, targets, distractors)
    y_true64, y_pred64 = y_true.astype(np.float64), y_pred.astype(np.float64)
    started = time.perf_counter()
    seed64 = seed_algorithm(y_true64, y_pred64, targets, distractors)
    t_seed64 = time.perf_counter() - started

    threads = numba.get_num_threads()
    tables = threads * 3 * args.examples * kvsk.BLOCK_BYTES / 2**20  # per thread: a block's three tables
    print(f"20 vs 20, {args.examples} examples x {args.voxels} voxels, {args.draws} draws, k = {args.k}; "
          f"numba {numba.__version__}, {threads} threads ({numba.threading_layer()}), {os.cpu_count()} CPUs")
    print(f"  first call, both dtypes: {cold:6.2f} s compiling into an empty cache, {cached:5.2f} s loading "
          f"the cache (fresh processes; import {imported:.2f} s); {here:.2f} s in this process")
    print(f"  seed algorithm (float32):    {t_seed32:7.3f} s   peak {m_seed32:8.1f} MiB")
    print(f"  brainalign dtype=float32:    {t_ours32:7.3f} s   peak {m_ours32:8.1f} MiB "
          f"+ {tables:.1f} MiB numba block tables   speed-up {t_seed32 / t_ours32:6.1f}x")
    print(f"  brainalign dtype=float64:    {t_ours64:7.3f} s   peak {m_ours64:8.1f} MiB "
          f"+ {tables:.1f} MiB numba block tables   speed-up {t_seed32 / t_ours64:6.1f}x (default)")
    print(f"  seed algorithm on float64:   {t_seed64:7.3f} s   (one run, the reference for dtype=float64)")
    same32, same64 = np.array_equal(seed32, ours32), np.array_equal(seed64, ours64)
    print(f"  float32: identical to the seed algorithm: {same32} "
          f"({int((seed32 != ours32).sum())} of {args.voxels} voxels differ)")
    print(f"  float64: identical to the seed algorithm on float64 data: {same64} "
          f"({int((seed64 != ours64).sum())} of {args.voxels} voxels differ)")
    print(f"  float32 vs float64 scores: {int((ours32 != ours64).sum())} voxels differ "
          f"(largest difference {np.abs(ours32 - ours64).max():.4f})")
    if not (same32 and same64):
        raise SystemExit("kvsk: results differ from the seed algorithm")


if __name__ == "__main__":
    main()
