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

Exactness
---------
With ``a`` the anchored side and ``b`` the other (``a, b = y, p`` for ``anchor="target"``, ``p, y`` for
``"prediction"``), a draw's two sums of squares are, per voxel,

    matched    = (a[t_0] - b[t_0])**2 + (a[t_1] - b[t_1])**2 + ... + (a[t_k-1] - b[t_k-1])**2
    mismatched = (a[t_0] - b[d_0])**2 + (a[t_1] - b[d_1])**2 + ... + (a[t_k-1] - b[d_k-1])**2

evaluated from left to right: the first term, then each next term added in draw order, every subtraction,
square and addition rounded to the compute ``dtype`` (IEEE, no fused multiply-add, no reassociation).
The result therefore does not depend on the chunk sizes or on the number of threads, and equals exactly:

``dtype=np.float64`` (default, the library's scores)
    a plain Python loop over draws, voxels and terms in Python floats, after converting the inputs to
    float64 (and so the seed code's algorithm run on float64 copies of the data);
``dtype=np.float32``
    the seed code's algorithm on float32 data: per draw, ``np.sum((y[T] - p[T]) ** 2, axis=0)`` against
    the same for ``p[D]``, vectorised over voxels in float32 (numpy reduces axis 0 of a C-ordered array
    row by row, which is the order above).

The work runs in a numba kernel, parallel over blocks of voxels with numba's thread count
(``NUMBA_NUM_THREADS`` or :func:`numba.set_num_threads`). Its first call in a fresh environment compiles it
(a few seconds); the machine code is cached beside this module and later processes load it.
"""

from __future__ import annotations

import threading

import numba
import numpy as np

from brainalign.errors import ConfigError, InputError

ANCHORS = ("target", "prediction")
DRAWS = ("independent", "disjoint")
DTYPES = (np.float32, np.float64)
#: Bytes of one row of a voxel block: a block's three (n_examples, width) tables stay in a core's cache.
BLOCK_BYTES = 1024

# numba's default threading layer (workqueue) aborts the process when two Python threads launch parallel
# kernels at once; scoring calls from threads take turns instead.
_KERNEL_LOCK = threading.Lock()


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


@numba.njit(parallel=True, cache=True)
def _count_outcomes(a_chunk, b_chunk, targets, distractors, width, wins, ties):  # pragma: no cover - compiled
    """Per voxel of a chunk, the number of draws won and tied (written into ``wins`` and ``ties``).

    ``a_chunk``/``b_chunk`` are (n_examples, n_voxels) arrays in the compute dtype. Each thread copies one
    block of ``width`` voxels into contiguous (n_examples, width) tables, so that the loops over the block's
    voxels run over contiguous memory and vectorise; sums go term by term in draw order (module docstring).
    """
    n_examples, n_voxels = a_chunk.shape
    n_draws, k = targets.shape
    n_blocks = (n_voxels + width - 1) // width
    for block in numba.prange(n_blocks):
        v0 = block * width
        w = min(width, n_voxels - v0)
        a = np.empty((n_examples, w), dtype=a_chunk.dtype)
        b = np.empty((n_examples, w), dtype=a_chunk.dtype)
        matched_terms = np.empty((n_examples, w), dtype=a_chunk.dtype)
        for e in range(n_examples):
            for j in range(w):
                a[e, j] = a_chunk[e, v0 + j]
                b[e, j] = b_chunk[e, v0 + j]
                diff = a[e, j] - b[e, j]
                matched_terms[e, j] = diff * diff
        matched = np.empty(w, dtype=a_chunk.dtype)
        mismatched = np.empty(w, dtype=a_chunk.dtype)
        won = np.zeros(w, dtype=np.int64)
        tied = np.zeros(w, dtype=np.int64)
        for draw in range(n_draws):
            m_row = matched_terms[targets[draw, 0]]
            a_row = a[targets[draw, 0]]
            b_row = b[distractors[draw, 0]]
            for j in range(w):
                matched[j] = m_row[j]
                diff = a_row[j] - b_row[j]
                mismatched[j] = diff * diff
            for i in range(1, k):
                m_row = matched_terms[targets[draw, i]]
                a_row = a[targets[draw, i]]
                b_row = b[distractors[draw, i]]
                for j in range(w):
                    diff = a_row[j] - b_row[j]
                    matched[j] += m_row[j]
                    mismatched[j] += diff * diff
            for j in range(w):
                won[j] += matched[j] < mismatched[j]
                tied[j] += matched[j] == mismatched[j]
        wins[v0:v0 + w] = won
        ties[v0:v0 + w] = tied


def kvsk_accuracy(y_true: np.ndarray, y_pred: np.ndarray, targets: np.ndarray, distractors: np.ndarray,
                  anchor: str = "target", voxel_chunk: int = 4096, dtype: type = np.float64) -> np.ndarray:
    """Per-voxel k vs k accuracy over the given draws.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_examples, n_voxels)
        True and predicted responses of one held-out run.
    targets, distractors : ndarray of shape (n_draws, k), integers in [0, n_examples)
        Example indices of each draw (see :func:`draw_kvsk`).
    anchor : {"target", "prediction"}
        Which form of the distances (module docstring).
    voxel_chunk : int
        Voxels converted to ``dtype`` at a time, which bounds the memory: the temporaries are two
        ``(n_examples, voxel_chunk)`` arrays of ``dtype`` plus, per thread, three tables of
        ``n_examples x BLOCK_BYTES`` bytes. It does not change the result.
    dtype : {np.float64, np.float32}
        Arithmetic of the sums of squares (module docstring, "Exactness"): float64 for the library's
        scores, float32 to reproduce the seed code's algorithm bit for bit.

    Returns
    -------
    ndarray of shape (n_voxels,), float64
        Draws won plus half the draws tied, over ``n_draws``.

    Examples
    --------
    >>> y = np.arange(12.0).reshape(6, 2)
    >>> kvsk_accuracy(y, y, np.array([[0, 1]]), np.array([[2, 3]])).tolist()
    [1.0, 1.0]
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    targets = np.asarray(targets)
    distractors = np.asarray(distractors)
    if y_true.ndim != 2 or y_true.shape != y_pred.shape:
        raise InputError("kvsk", "y_true/y_pred", "two 2-D arrays of the same shape",
                         f"shapes {y_true.shape} and {y_pred.shape}")
    if targets.shape != distractors.shape or targets.ndim != 2:
        raise InputError("kvsk", "targets/distractors", "two (n_draws, k) index arrays of the same shape",
                         f"shapes {targets.shape} and {distractors.shape}")
    if targets.shape[0] < 1 or targets.shape[1] < 1:
        raise InputError("kvsk", "targets/distractors", "at least one draw of at least one example",
                         f"shape {targets.shape}")
    if not (np.issubdtype(targets.dtype, np.integer) and np.issubdtype(distractors.dtype, np.integer)):
        raise InputError("kvsk", "targets/distractors", "integer example indices",
                         f"dtypes {targets.dtype} and {distractors.dtype}")
    n_examples, n_voxels = y_true.shape
    for name, indices in (("targets", targets), ("distractors", distractors)):
        if indices.min() < 0 or indices.max() >= n_examples:
            raise InputError("kvsk", name, f"indices in [0, {n_examples})",
                             f"indices from {indices.min()} to {indices.max()}")
    if anchor not in ANCHORS:
        raise ConfigError(f"kvsk anchor: expected one of {ANCHORS}, found {anchor!r}")
    dtype = np.dtype(dtype)
    if dtype not in [np.dtype(d) for d in DTYPES]:
        raise ConfigError(f"kvsk dtype: expected float32 or float64, found {dtype}")
    if voxel_chunk < 1:
        raise ConfigError(f"kvsk voxel_chunk: expected a positive number of voxels, found {voxel_chunk}")
    anchor_side, other_side = (y_true, y_pred) if anchor == "target" else (y_pred, y_true)
    targets = np.ascontiguousarray(targets, dtype=np.int64)
    distractors = np.ascontiguousarray(distractors, dtype=np.int64)
    width = max(1, BLOCK_BYTES // dtype.itemsize)
    wins = np.zeros(n_voxels, dtype=np.int64)
    ties = np.zeros(n_voxels, dtype=np.int64)
    for v0 in range(0, n_voxels, voxel_chunk):
        a = np.ascontiguousarray(anchor_side[:, v0:v0 + voxel_chunk], dtype=dtype)
        b = np.ascontiguousarray(other_side[:, v0:v0 + voxel_chunk], dtype=dtype)
        with _KERNEL_LOCK:
            _count_outcomes(a, b, targets, distractors, width, wins[v0:v0 + voxel_chunk],
                            ties[v0:v0 + voxel_chunk])
        del a, b  # before the next chunk is converted: at most one chunk's copies at a time
    return (wins + 0.5 * ties) / targets.shape[0]


def kvsk_shift_null(y_true: np.ndarray, predictions: list[np.ndarray], targets: np.ndarray,
                    distractors: np.ndarray, min_shift: int = 10, n_shifts: int | None = None,
                    anchor: str = "target") -> np.ndarray:
    """Per-voxel k vs k accuracies when the predictions are circularly shifted in time: the chance level.

    Shifting a held-out run's predictions by ``s`` examples (``np.roll`` along time) breaks their relation
    to the responses while keeping the autocorrelation of both series (haemodynamic smoothing, AR noise),
    which a shuffle of examples would destroy. Shifts run from ``min_shift`` to ``n_examples - min_shift``;
    ``min_shift`` should exceed the lag at which the responses' autocorrelation has died out (10 TRs = 20 s
    covers the haemodynamic response). ``n_shifts`` evenly spaced shifts of that range cost less than all
    of them; pooled over voxels (:func:`brainalign.metrics.comparisons.predictable_voxels`) ten are plenty.

    Several prediction sets (two models, several seeds) give the null of their *mean* accuracy: each
    shift moves all of them together, as the observed mean compares them all with the same responses.

    Parameters
    ----------
    y_true : ndarray of shape (n_examples, n_voxels)
        True responses of one held-out run.
    predictions : list of ndarray of shape (n_examples, n_voxels)
        The prediction sets whose mean accuracy is tested.
    targets, distractors : ndarray of shape (n_draws, k)
        The draws of the observed accuracies (see :func:`draw_kvsk`).
    min_shift : int
        The smallest shift, in examples; at least 1 and less than ``n_examples / 2``.
    n_shifts : int, optional
        How many shifts, evenly spaced from ``min_shift`` to ``n_examples - min_shift`` (default: all).
    anchor : {"target", "prediction"}
        Which form of the distances (module docstring).

    Returns
    -------
    ndarray of shape (n_shifts, n_voxels), float64
        One row per shift (``min_shift + i`` for all shifts): the mean over prediction sets of the
        accuracy with the predictions shifted.
    """
    y_true = np.asarray(y_true)
    if not predictions:
        raise InputError("kvsk shift null", "predictions", "at least one prediction set", "none")
    n_examples = y_true.shape[0] if y_true.ndim == 2 else 0
    if not (isinstance(min_shift, (int, np.integer)) and 1 <= min_shift and 2 * min_shift < n_examples):
        raise ConfigError(f"kvsk shift null min_shift: expected an integer in [1, n_examples / 2) "
                          f"(n_examples {n_examples}), found {min_shift!r}")
    shifts = np.arange(min_shift, n_examples - min_shift + 1)
    if n_shifts is not None:
        if not (isinstance(n_shifts, (int, np.integer)) and n_shifts >= 2):
            raise ConfigError(f"kvsk shift null n_shifts: expected an integer of at least 2, found {n_shifts!r}")
        shifts = np.unique(np.linspace(shifts[0], shifts[-1], min(n_shifts, len(shifts))).round().astype(int))
    null = np.zeros((len(shifts), y_true.shape[1]))
    for i, shift in enumerate(shifts):
        for prediction in predictions:
            null[i] += kvsk_accuracy(y_true, np.roll(np.asarray(prediction), int(shift), axis=0), targets, distractors,
                                     anchor=anchor)
    return null / len(predictions)
