"""Ridge probes: how well each layer's representation predicts each linguistic feature, on held-out runs.

For every layer and feature, :func:`probe_scores` scores a ridge probe only on data it was not fitted on:
:func:`brainalign.ridge.cv_predictions` holds out one run at a time (outer folds), z-scores the
representation with the training runs' statistics, centres the feature on the training runs' mean and
chooses the feature's penalty by an inner leave-one-run-out over the training runs; every row is predicted
once, by the fold that held out its run. The held-out predictions of all folds are pooled and scored:

* ``r2``: ``1 - SSE / SS``, SSE the squared error of the pooled held-out predictions and SS the squares about
  the mean of all the feature's values (scikit-learn's ``r2_score`` of the pooled predictions). Each fold
  predicts from its own training mean, not this one, so a probe that knows nothing scores slightly below 0.
* ``r``: Pearson's correlation of the pooled held-out predictions with the values.

**Permutation null.** Each of ``n_permutations`` seeded permutations reorders the target rows *within each run*
(run means and run lengths stay, the pairing of segments with values goes), the same permutations for every
layer and feature; the permuted copies are probed exactly as the real targets (penalties chosen again by the
inner cross-validation). ``p_value = (1 + #(null r2 >= observed r2)) / (1 + n_permutations)``. All permuted
copies ride as extra target columns of the same ridge, so one solve per layer serves every feature and every
permutation. Segments are treated as exchangeable within a run: autocorrelation between neighbouring TRs is not
kept by the null, which is therefore somewhat liberal for slowly varying features.

**Multiple comparisons.** Benjamini-Hochberg across every layer x feature of one call; ``significant`` is
``p_fdr <= q``.

**Constant features.** A feature that is constant over the training runs of some outer fold (it varies in at most
one run, or not at all) gives that fold nothing to learn and makes the pooled score a property of the fold
layout. It is not probed: its rows carry NaN scores and p values and ``significant`` False, it takes no part in
the correction, and a warning names it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from brainalign.decoding.statistics import benjamini_hochberg
from brainalign.errors import ConfigError, InputError
from brainalign.metrics.variance import pearson_r, r2_score
from brainalign.ridge import ALPHAS, backend, cv_predictions

log = logging.getLogger(__name__)

COLUMNS = ("kind", "layer", "feature", "r2", "r", "alpha_median", "null_mean", "null_q95", "p_value", "p_fdr",
           "significant", "n_permutations")
SOURCE = "<probes>"


def within_run_permutations(runs: np.ndarray, n_permutations: int, seed: int = 0) -> np.ndarray:
    """Row orders that shuffle rows within each run: (n_permutations, n_rows) of int64.

    Row ``i`` of a permuted copy is ``values[order[i]]``, and ``runs[order] == runs`` for every order. Drawn from
    ``numpy.random.default_rng(seed)``: the same seed gives the same orders.
    """
    runs = np.asarray(runs)
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(runs == run) for run in np.unique(runs)]
    orders = np.tile(np.arange(len(runs), dtype=np.int64), (n_permutations, 1))
    for k in range(n_permutations):
        for rows in members:
            orders[k, rows] = rows[rng.permutation(len(rows))]
    return orders


def _check(representations, targets, runs, names, alphas, n_permutations, q, kind) -> tuple:
    representations = np.asarray(representations)
    targets = np.asarray(targets)
    if representations.ndim != 3 or 0 in representations.shape:
        raise InputError(SOURCE, "representations", "an array (n_layers, n_segments, width)",
                         f"shape {representations.shape}")
    n = representations.shape[1]
    if targets.ndim != 2 or targets.shape[0] != n or targets.shape[1] == 0:
        raise InputError(SOURCE, "targets", f"an array (n_segments = {n}, n_features >= 1)", f"shape {targets.shape}")
    runs = np.asarray(runs)
    if runs.shape != (n,):
        raise InputError(SOURCE, "runs", f"one run label per segment ({n})", f"shape {runs.shape}")
    if len(np.unique(runs)) < 3:
        raise InputError(SOURCE, "runs", "at least 3 runs (outer and inner leave-one-run-out)",
                         f"{len(np.unique(runs))}")
    names = [str(name) for name in names]
    if len(names) != targets.shape[1] or len(set(names)) != len(names):
        raise InputError(SOURCE, "names", f"{targets.shape[1]} distinct feature names",
                         f"{len(names)} names, {len(set(names))} distinct")
    for field, values in (("representations", representations), ("targets", targets)):
        if not np.issubdtype(values.dtype, np.number) or not np.isfinite(values).all():
            raise InputError(SOURCE, field, "finite numbers",
                             "non-numeric values" if not np.issubdtype(values.dtype, np.number)
                             else f"{int((~np.isfinite(values)).sum())} NaN or infinite values")
    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 1 or not alphas.size or not np.isfinite(alphas).all() or (alphas <= 0).any():
        raise ConfigError(f"probes: alphas: expected positive finite penalties, found {alphas.tolist()}")
    if int(n_permutations) != n_permutations or n_permutations < 0:
        raise ConfigError(f"probes: n_permutations: expected a whole number >= 0, found {n_permutations!r}")
    if not 0 < q < 1:
        raise ConfigError(f"probes: q: expected a false discovery rate in (0, 1), found {q!r}")
    if not isinstance(kind, str) or not kind:
        raise ConfigError(f"probes: kind: expected a label such as 'embedding' or 'attention', found {kind!r}")
    return representations, targets.astype(np.float64), runs, names, alphas


def learnable_features(targets: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Whether each feature varies over the training runs of every outer fold (module docstring): (n_features,)."""
    targets = np.asarray(targets, dtype=np.float64)
    keep = np.ones(targets.shape[1], dtype=bool)
    for run in np.unique(runs):
        train = targets[runs != run]
        keep &= (train.max(0) - train.min(0)) > 0
    return keep


def probe_scores(representations: np.ndarray, targets: np.ndarray, runs: np.ndarray, names: Sequence[str],
                 alphas: Sequence[float] = ALPHAS, n_permutations: int = 200, seed: int = 0,
                 kind: str = "embedding", q: float = 0.05, dtype: str = "float32", device: str | None = None,
                 columns_per_solve: int = 16384, progress: bool = True) -> pd.DataFrame:
    """Held-out score of a ridge probe from every layer to every feature, with a within-run permutation null.

    Parameters
    ----------
    representations : ndarray of shape (n_layers, n_segments, width)
        Per layer, one row per segment (:func:`~brainalign.probing.representations.segment_representations`).
    targets : ndarray of shape (n_segments, n_features)
        The features to probe, one row per segment.
    runs : ndarray of shape (n_segments,)
        Run of each segment: the outer and inner folds hold out one run each (at least 3 runs).
    names : sequence of str
        Feature names, one per column of ``targets``.
    alphas : sequence of float
        Ridge penalties to choose from, per feature, fold and permutation.
    n_permutations : int
        Permuted copies for the null (0: no null; ``p_value`` and ``p_fdr`` are NaN, ``significant`` False).
    seed : int
        Seed of the permutations (:func:`within_run_permutations`).
    kind : str
        What the representation is (``"embedding"``, ``"attention"``): copied to the ``kind`` column.
    q : float
        False discovery rate of ``significant``.
    dtype : {"float32", "float64"}
        Precision of the ridge solve (float64 to compare with a float64 reference).
    device : {"cpu", "cuda", "auto"}, optional
        himalaya's backend for the solve; None keeps the one in force (:func:`brainalign.ridge.backend`).
    columns_per_solve : int
        Target columns (features x copies) per ridge solve: bounds memory; with the default, one solve per layer
        unless features x (1 + n_permutations) exceeds it.
    progress : bool
        A tqdm bar over layers.

    Returns
    -------
    DataFrame
        One row per (layer, feature), layers counted from 1, in layer then feature order: ``kind``, ``layer``,
        ``feature``, ``r2`` and ``r`` (pooled held-out, module docstring), ``alpha_median`` (median over outer
        folds of the penalty chosen), ``null_mean`` and ``null_q95`` (mean and 95th percentile of the null's r2),
        ``p_value``, ``p_fdr`` (Benjamini-Hochberg over the call), ``significant`` and ``n_permutations``.
        Constant features (module docstring) have NaN scores.
    """
    representations, targets, runs, names, alphas = _check(representations, targets, runs, names, alphas,
                                                             n_permutations, q, kind)
    n_permutations = int(n_permutations)
    n_layers, n, _ = representations.shape
    keep = learnable_features(targets, runs)
    if not keep.all():
        dropped = [name for name, k in zip(names, keep) if not k]
        log.warning("probes: %d feature(s) constant over the training runs of some fold, not probed (NaN): %s",
                    len(dropped), ", ".join(dropped[:10]) + (" ..." if len(dropped) > 10 else ""))
    live = targets[:, keep]
    n_live = live.shape[1]
    orders = within_run_permutations(runs, n_permutations, seed)
    # Copy 0 is the real pairing, copies 1..K the permutations; a solve takes whole copies.
    copies = np.concatenate([np.arange(n)[None], orders]) if n_live else np.zeros((0, n), dtype=np.int64)
    per_solve = max(1, columns_per_solve // max(n_live, 1))

    r2 = np.full((n_layers, len(names)), np.nan)
    r = np.full((n_layers, len(names)), np.nan)
    alpha_median = np.full((n_layers, len(names)), np.nan)
    null = np.full((n_layers, n_permutations, len(names)), np.nan)
    context = backend(device) if device is not None else contextlib.nullcontext()
    with context:
        for layer in tqdm(range(n_layers), desc=f"probes ({kind})", disable=not progress or n_layers < 2):
            x = representations[layer]
            for start in range(0, len(copies), per_solve):
                block = copies[start:start + per_solve]
                y = live[block].transpose(1, 0, 2).reshape(n, -1)  # (n, copies x features), copy-major
                result = cv_predictions(x, y, runs, alphas=alphas, dtype=dtype)
                scores = r2_score(y, result.predictions).reshape(len(block), n_live)
                first = 0
                if start == 0:
                    r2[layer, keep] = scores[0]
                    r[layer, keep] = pearson_r(y[:, :n_live], result.predictions[:, :n_live])
                    alpha_median[layer, keep] = np.median(result.alphas[:, :n_live], axis=0)
                    first = 1
                null[layer, start + first - 1:start + len(block) - 1][:, keep] = scores[first:]
    return _table(kind, names, keep, r2, r, alpha_median, null, q)


def _table(kind: str, names: list[str], keep: np.ndarray, r2: np.ndarray, r: np.ndarray, alpha_median: np.ndarray,
           null: np.ndarray, q: float) -> pd.DataFrame:
    n_layers, n_permutations = null.shape[:2]
    p_value = np.full(r2.shape, np.nan)
    null_mean = np.full(r2.shape, np.nan)
    null_q95 = np.full(r2.shape, np.nan)
    if n_permutations:
        live = null[:, :, keep]
        p_value[:, keep] = (1 + (live >= r2[:, None, keep]).sum(1)) / (1 + n_permutations)
        null_mean[:, keep] = live.mean(1)
        null_q95[:, keep] = np.quantile(live, 0.95, axis=1)
    p_fdr = np.full(r2.shape, np.nan)
    tested = ~np.isnan(p_value)
    p_fdr[tested] = benjamini_hochberg(p_value[tested])
    table = pd.DataFrame({
        "kind": kind,
        "layer": np.repeat(np.arange(1, n_layers + 1), len(names)),
        "feature": np.tile(np.asarray(names, dtype=object), n_layers),
        "r2": r2.ravel(), "r": r.ravel(), "alpha_median": alpha_median.ravel(),
        "null_mean": null_mean.ravel(), "null_q95": null_q95.ravel(),
        "p_value": p_value.ravel(), "p_fdr": p_fdr.ravel(),
        "significant": np.nan_to_num(p_fdr.ravel(), nan=1.0) <= q,
        "n_permutations": n_permutations,
    })
    return table[list(COLUMNS)]
