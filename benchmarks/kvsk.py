"""Benchmark: our 20 vs 20 against the seed code's algorithm, on the same draws, in one process.

The seed code's algorithm loops over the draws and vectorises each over voxels in numpy, in the data's
dtype (float32). Ours accumulates in float64 in chunks. Prints both times, the speed-up, the peak memory
of each (tracemalloc) and whether the accuracies agree.

    python benchmarks/kvsk.py [--examples 300] [--voxels 37913] [--draws 1000] [--k 20]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from brainalign.scoring.kvsk import draw_kvsk, kvsk_accuracy


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


def measure(function, *args) -> tuple[np.ndarray, float, float]:
    """Result, wall seconds (best of two, untraced) and peak traced memory (a third, traced call)."""
    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        result = function(*args)
        seconds.append(time.perf_counter() - started)
    tracemalloc.start()  # traced separately: tracing every allocation slows allocation-heavy code
    function(*args)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, min(seconds), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--voxels", type=int, default=37913)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--k", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    y_true = rng.standard_normal((args.examples, args.voxels)).astype(np.float32)
    y_pred = (0.3 * y_true + rng.standard_normal(y_true.shape)).astype(np.float32)
    targets, distractors = draw_kvsk(args.examples, args.k, args.draws, rng)
    reference, t_ref, m_ref = measure(seed_algorithm, y_true, y_pred, targets, distractors)
    ours, t_ours, m_ours = measure(kvsk_accuracy, y_true, y_pred, targets, distractors)
    differing = int((reference != ours).sum())
    print(f"20 vs 20, {args.examples} examples x {args.voxels} voxels, {args.draws} draws, k = {args.k}")
    print(f"  seed algorithm (float32): {t_ref:7.2f} s   peak {m_ref:8.1f} MiB")
    print(f"  brainalign     (float64): {t_ours:7.2f} s   peak {m_ours:8.1f} MiB")
    print(f"  speed-up: {t_ref / t_ours:.2f}x")
    print(f"  voxels whose accuracy differs: {differing} of {args.voxels} "
          f"(largest difference {np.abs(reference - ours).max():.4f}; the seed algorithm sums in float32)")


if __name__ == "__main__":
    main()
