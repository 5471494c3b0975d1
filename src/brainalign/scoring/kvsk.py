"""The k vs k test (20 vs 20 in the seed paper), per voxel, on one held-out run (reference section 4).

A draw picks ``k`` target examples and ``k`` distractor examples of the run. For each voxel the draw is
correct when the *matched* distance is smaller than the *mismatched* one, and counts 0.5 on a tie; the
accuracy is the mean over draws. Distances are Euclidean over the ``k`` examples (compared squared).

Two forms, named by what the distances are anchored on:

``anchor="target"`` (default, the seed code's form)
    matched = |y[T] - p[T]|, mismatched = |y[T] - p[D]|: the true responses of the targets against the
    predictions for the targets and for the distractors.
``anchor="prediction"`` (the paper's prose)
    matched = |p[T] - y[T]|, mismatched = |p[T] - y[D]|.

Two ways to draw, named by ``draws``:

``"independent"`` (default, the seed code's ``np.random.choice(n, k)`` twice)
    targets and distractors drawn independently, with replacement; they can overlap.
``"disjoint"`` (the paper's prose, "a different set")
    ``2k`` distinct examples without replacement, the first ``k`` targets, the rest distractors.

Sums of squares are accumulated in float64, term by term in draw order, so the result does not depend on
chunk sizes and equals a plain loop over draws, voxels and terms exactly.
"""

from __future__ import annotations

import numpy as np

from brainalign.errors import ConfigError, InputError

ANCHORS = ("target", "prediction")
DRAWS = ("independent", "disjoint")


def draw_kvsk(n_examples: int, k: int = 20, n_draws: int = 1000, rng: np.random.Generator | int = 0,
              draws: str = "independent") -> tuple[np.ndarray, np.ndarray]:
    """Draw the targets and distractors of ``n_draws`` k vs k trials.

    Returns
    -------
    targets, distractors : ndarray of shape (n_draws, k), int64
    """
    rng = np.random.default_rng(rng)
    if draws == "independent":
        if n_examples < 1:
            raise InputError("kvsk", "n_examples", "at least 1 example", str(n_examples))
        return (rng.integers(0, n_examples, size=(n_draws, k)), rng.integers(0, n_examples, size=(n_draws, k)))
    if draws == "disjoint":
        if n_examples < 2 * k:
            raise InputError("kvsk", "n_examples", f"at least 2k = {2 * k} examples for disjoint draws",
                             str(n_examples))
        picks = np.stack([rng.permutation(n_examples)[: 2 * k] for _ in range(n_draws)])
        return picks[:, :k].astype(np.int64), picks[:, k:].astype(np.int64)
    raise ConfigError(f"kvsk draws: expected one of {DRAWS}, found {draws!r}")


def kvsk_accuracy(y_true: np.ndarray, y_pred: np.ndarray, targets: np.ndarray, distractors: np.ndarray,
                  anchor: str = "target", voxel_chunk: int = 4096, draw_chunk: int = 250) -> np.ndarray:
    """Per-voxel k vs k accuracy over the given draws.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_examples, n_voxels)
        True and predicted responses of one held-out run.
    targets, distractors : ndarray of shape (n_draws, k)
        Example indices of each draw (see :func:`draw_kvsk`).
    anchor : {"target", "prediction"}
        Which form of the distances (module docstring).
    voxel_chunk, draw_chunk : int
        Bound the memory of the temporaries; they do not change the result.

    Returns
    -------
    ndarray of shape (n_voxels,), float64
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim != 2 or y_true.shape != y_pred.shape:
        raise InputError("kvsk", "y_true/y_pred", "two 2-D arrays of the same shape",
                         f"shapes {y_true.shape} and {y_pred.shape}")
    if targets.shape != distractors.shape or targets.ndim != 2:
        raise InputError("kvsk", "targets/distractors", "two (n_draws, k) index arrays of the same shape",
                         f"shapes {targets.shape} and {distractors.shape}")
    if anchor not in ANCHORS:
        raise ConfigError(f"kvsk anchor: expected one of {ANCHORS}, found {anchor!r}")
    anchor_side, other_side = (y_true, y_pred) if anchor == "target" else (y_pred, y_true)
    n_draws, k = targets.shape
    score = np.zeros(y_true.shape[1], dtype=np.float64)
    for v0 in range(0, y_true.shape[1], voxel_chunk):
        a = anchor_side[:, v0:v0 + voxel_chunk].astype(np.float64)
        b = other_side[:, v0:v0 + voxel_chunk].astype(np.float64)
        matched_terms = (a - b) ** 2
        for d0 in range(0, n_draws, draw_chunk):
            t = targets[d0:d0 + draw_chunk]
            d = distractors[d0:d0 + draw_chunk]
            matched = matched_terms[t[:, 0]].copy()
            mismatched = (a[t[:, 0]] - b[d[:, 0]]) ** 2
            for i in range(1, k):
                matched += matched_terms[t[:, i]]
                mismatched += (a[t[:, i]] - b[d[:, i]]) ** 2
            score[v0:v0 + voxel_chunk] += (matched < mismatched).sum(0) + 0.5 * (matched == mismatched).sum(0)
    return score / n_draws
