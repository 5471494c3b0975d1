"""Trimming, detrending and z-scoring within runs, and leave-one-run-out folds (reference section 2).

Every statistic is computed within one run, so a fold that holds out whole runs leaks nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fold:
    """One leave-one-run-out split: row indices of training and held-out examples."""

    index: int
    heldout_run: int
    train: np.ndarray
    test: np.ndarray


def trim_mask(runs: np.ndarray, drop_start: int = 20, drop_end: int = 15) -> np.ndarray:
    """True for the TRs kept after dropping the first ``drop_start`` and last ``drop_end`` of each run."""
    keep = np.zeros(len(runs), dtype=bool)
    for run in np.unique(runs):
        rows = np.flatnonzero(runs == run)
        keep[rows[drop_start: len(rows) - drop_end]] = True
    return keep


def detrend_zscore(responses: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Remove each channel's linear trend within each run, then scale it to mean 0 and variance 1 there.

    Channels that are constant within a run (after detrending) become 0 in that run, with a warning.
    """
    # scipy.signal costs about 1 s to import; only the prepare stage detrends, and the train, score and
    # report stages import this module (through data.prepared) for the folds alone.
    from scipy.signal import detrend

    out = np.empty(responses.shape, dtype=np.float32)
    precision = np.finfo(responses.dtype if np.issubdtype(responses.dtype, np.floating) else np.float64).eps
    for run in np.unique(runs):
        rows = runs == run
        block = detrend(responses[rows].astype(np.float64), axis=0, type="linear")
        block -= block.mean(0)
        sd = block.std(0)
        # What is left of a linear channel after detrending is rounding error of the input's precision.
        scale = np.abs(responses[rows]).max(0)
        flat = sd <= 16 * precision * np.maximum(scale, np.finfo(np.float64).tiny)
        if flat.any():
            log.warning("run %s: %d channel(s) constant after detrending; set to 0", run, int(flat.sum()))
        out[rows] = np.where(flat, 0.0, block / np.where(flat, 1.0, sd))
    return out


def leave_one_run_out(runs: np.ndarray) -> list[Fold]:
    """One fold per run, holding that run out, in run order."""
    return [Fold(index=i, heldout_run=int(run), train=np.flatnonzero(runs != run), test=np.flatnonzero(runs == run))
            for i, run in enumerate(np.unique(runs))]
