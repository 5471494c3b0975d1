"""Noise ceilings: how well any model of the stimulus could predict a recording (reference sections 5, 7).

Three estimates, for three kinds of data:

:func:`extrapolation_ceiling`
    Brain-Score's subject-extrapolation ceiling (``ExtrapolationCeiling``) for recordings of several
    participants on the same stimuli and channel space: each participant is predicted from the pooled
    channels of the others (:func:`pooled_prediction_scores`) for every pool size k = 2 … N, and
    v(k) = v0 · (1 − exp(−k / τ)) is fitted per channel (:func:`fit_extrapolation`); v0 is the score
    extrapolated to infinitely many participants.
:func:`explainable_variance`
    the Gallant-lab voxelwise tutorials' explainable variance, for repeated presentations of the stimuli.
:func:`true_ceiling`
    for simulations, where the noise-free signal is known: what the estimates above estimate.

:func:`normalise` divides a raw score by a ceiling as Brain-Score's ``ceiling_normalize`` does.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from brainalign.errors import InputError
from brainalign.metrics.variance import pearson_r
from brainalign.ridge import ALPHAS, backend, cv_predictions

#: Default ridge penalties, two per decade. The features are z-scored, so a linear kernel's largest
#: eigenvalue is about n_samples × n_features (10^7–10^8 for a few hundred stimuli and tens of thousands
#: of pooled voxels): the grid reaches well past it (full shrinkage) and well below the smallest useful one.

# τ is searched on a log grid from where g = 1 − exp(−k/τ) is 1 at every k in float64 (τ = k_min / 50)
# to where g is linear in k far beyond any sensible slope (τ = 1e12 · k_max): a near-linear rise then
# still reaches the v0 = 1 bound as curve_fit's unbounded τ does.
_TAU_LOW_FACTOR = 1.0 / 50.0
_TAU_HIGH_FACTOR = 1e12
_GRID_STEP = 0.25  # in log τ: the profile's features are about one unit of log τ wide
_LOG_TAU_TOLERANCE = 1e-8
_INVERSE_PHI = (math.sqrt(5.0) - 1.0) / 2.0
# Rows fitted at once (the grid step holds rows × grid points floats) and channels bootstrapped at once
# (n_bootstraps × channels × pool sizes floats): a few tens of MB each.
_FIT_ROWS = 16384
_CHANNEL_BLOCK = 2048


@dataclass
class CeilingResult:
    """The outcome of :func:`extrapolation_ceiling`.

    Attributes
    ----------
    per_channel : ndarray of shape (n_channels,)
        Per channel the median over bootstraps of the fitted v0 (NaN where a score was undefined).
    value : float
        The median of ``per_channel`` over the channels where it is defined.
    k : ndarray of shape (n_k,)
        The pool sizes 2 … N.
    scores : dict of int to ndarray of shape (n_draws_k, n_channels)
        Per pool size the raw held-out Pearson r of every (subset, held-out participant) pair: subsets in
        the order of ``subsets[k]``, within a subset one row per held-out participant in subset order.
    subsets : dict of int to list of tuple of int
        Per pool size the participant indices (into ``responses``) of each subset scored.
    bootstrap_v0 : ndarray of shape (n_bootstraps, n_channels)
        The fitted v0 of every bootstrap.
    """

    per_channel: np.ndarray
    value: float
    k: np.ndarray
    scores: dict[int, np.ndarray]
    subsets: dict[int, list[tuple[int, ...]]]
    bootstrap_v0: np.ndarray

    def median_over(self, channels: np.ndarray) -> float:
        """The median ceiling over ``channels`` (indices or a boolean mask), ignoring undefined channels."""
        return float(np.nanmedian(self.per_channel[channels]))


def pooled_prediction_scores(source: np.ndarray, target: np.ndarray, groups: np.ndarray,
                             alphas: np.ndarray | None = None) -> np.ndarray:
    """Predict every target channel from the source channels by cross-validated ridge.

    The encoding models' ridge (:func:`brainalign.ridge.cv_predictions`): outer leave-one-group-out, the
    source z-scored with training statistics only, one penalty per target channel chosen by inner
    leave-one-group-out over the training groups.

    Parameters
    ----------
    source : ndarray of shape (n_samples, n_source_channels)
        Predictors, e.g. the pooled channels of other participants.
    target : ndarray of shape (n_samples, n_target_channels)
        The channels to predict.
    groups : ndarray of shape (n_samples,)
        Group (run) label of each sample; at least 3 distinct labels, so that every inner split has a
        training group.
    alphas : ndarray of shape (n_alphas,), optional
        Positive ridge penalties to choose from; :data:`ALPHAS` by default.

    Returns
    -------
    ndarray of shape (n_target_channels,)
        Per target channel the mean over held-out groups of the Pearson r between prediction and target
        within that group (NaN where the target is constant in a held-out group).
    """
    source = _check_matrix(source, "source")
    target = _check_matrix(target, "target")
    if target.shape[0] != source.shape[0]:
        raise InputError("target", "n_samples", f"the source's {source.shape[0]} samples (rows)",
                         f"{target.shape[0]} rows")
    groups = _check_groups(groups, source.shape[0])
    alphas = ALPHAS if alphas is None else _check_alphas(alphas)
    with backend("cpu"):
        predictions = cv_predictions(source, target, groups, alphas).predictions
    return np.mean([pearson_r(target[groups == g], predictions[groups == g]) for g in np.unique(groups)], axis=0)


def extrapolation_ceiling(responses: Sequence[np.ndarray], groups: np.ndarray, *, n_bootstraps: int = 100,
                          subsets_per_k: int | None = None, seed: int = 0,
                          score: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] = pooled_prediction_scores,
                          progress: bool = True) -> CeilingResult:
    """Brain-Score's subject-extrapolation noise ceiling, per channel.

    For every pool size k = 2 … N and every subset of k participants, each participant of the subset is
    predicted from the other k − 1 participants' channels, concatenated (``score(source, target,
    groups)``), giving a per-channel r. Per channel, each bootstrap resamples each k's r values with
    replacement and takes their mean; v(k) = v0 · (1 − exp(−k / τ)) is fitted to those means
    (:func:`fit_extrapolation`), and the channel's ceiling is the median v0 over bootstraps.

    Parameters
    ----------
    responses : sequence of N ndarrays of shape (n_samples, n_channels)
        One array per participant, all on the same stimuli (rows) and channel space (columns); N >= 3.
    groups : ndarray of shape (n_samples,)
        Group (run) label of each stimulus, for the cross-validation inside ``score``.
    n_bootstraps : int
        Bootstraps per channel.
    subsets_per_k : int, optional
        Score at most this many subsets per pool size, drawn at random without repetition (seeded by
        ``seed``) where there are more combinations; all combinations when None.
    seed : int
        Seed of the bootstrap draws and of the subset draws.
    score : callable
        ``score(source, target, groups) -> ndarray (n_channels,)``; :func:`pooled_prediction_scores` by
        default (wrap it to change its ``alphas``).
    progress : bool
        Show a progress bar over the (subset, held-out participant) pairs.

    Returns
    -------
    CeilingResult

    Notes
    -----
    Draw order (Brain-Score's ``extrapolate_neuroid``, which restarts ``RandomState(seed)`` for every
    neuroid, so all channels share the same draws): one ``np.random.RandomState(seed)``; for bootstrap
    b = 0 … n_bootstraps − 1, for k ascending, ``rng.choice(n_draws_k, size=n_draws_k, replace=True)``
    picks the rows of ``scores[k]`` to average. The subsets, when sampled, come from a separate
    ``np.random.default_rng(seed)`` (k ascending) and do not disturb that sequence.

    A channel whose r is NaN in any row of ``scores`` (a constant channel) gets a NaN ceiling.
    """
    responses, groups = _check_responses(responses, groups)
    if n_bootstraps < 1:
        raise InputError("extrapolation_ceiling", "n_bootstraps", "at least 1", str(n_bootstraps))
    if subsets_per_k is not None and subsets_per_k < 1:
        raise InputError("extrapolation_ceiling", "subsets_per_k", "None or at least 1", str(subsets_per_k))
    n_participants = len(responses)
    n_channels = responses[0].shape[1]
    ks = np.arange(2, n_participants + 1)
    subset_rng = np.random.default_rng(seed)
    subsets = {int(k): _subsets(n_participants, int(k), subsets_per_k, subset_rng) for k in ks}

    scores = {}
    with tqdm(total=sum(len(s) * k for k, s in subsets.items()), desc="ceiling: held-out participants",
              disable=not progress) as bar:
        for k, chosen in subsets.items():
            rows = []
            for subset in chosen:
                for held_out in subset:
                    source = np.hstack([responses[p] for p in subset if p != held_out])
                    row = np.asarray(score(source, responses[held_out], groups), dtype=np.float64)
                    if row.shape != (n_channels,):
                        raise InputError("score", "output shape", f"one r per channel ({n_channels},)",
                                         f"shape {row.shape}")
                    rows.append(row)
                    bar.update()
            scores[k] = np.stack(rows)

    # Resampling counts per (bootstrap, row): a bootstrap mean is then counts @ scores / n_draws.
    rng = np.random.RandomState(seed)
    counts = {k: np.zeros((n_bootstraps, len(s)), dtype=np.float64) for k, s in scores.items()}
    for b in range(n_bootstraps):
        for k, s in scores.items():
            counts[k][b] = np.bincount(rng.choice(len(s), size=len(s), replace=True), minlength=len(s))

    bootstrap_v0 = np.empty((n_bootstraps, n_channels))
    for start in range(0, n_channels, _CHANNEL_BLOCK):
        block = slice(start, start + _CHANNEL_BLOCK)
        means = np.stack([_bootstrap_means(counts[k], s[:, block]) for k, s in scores.items()], axis=-1)
        bootstrap_v0[:, block] = fit_extrapolation(ks, means)[0]
    per_channel = np.median(bootstrap_v0, axis=0)
    value = float(np.nanmedian(per_channel)) if np.isfinite(per_channel).any() else float("nan")
    return CeilingResult(per_channel=per_channel, value=value, k=ks, scores=scores, subsets=subsets,
                         bootstrap_v0=bootstrap_v0)


def fit_extrapolation(k: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares fit of y(k) = v0 · (1 − exp(−k / τ)), v0 in [0, 1], τ > 0, for many curves at once.

    For a fixed τ the best v0 is closed form: with g = 1 − exp(−k / τ), v0 = clip(Σ y·g / Σ g², 0, 1)
    (the sum of squares is a convex quadratic in v0, so clipping gives the bounded optimum). The profile
    sum of squares is then minimised over log τ: a grid with step 0.25 over
    [log(k_min / 50), log(1e12 · k_max)], then golden-section search between the best grid point's
    neighbours to 1e-8 in log τ, all vectorised over curves.

    Parameters
    ----------
    k : ndarray of shape (n_k,)
        Positive abscissae (pool sizes), at least 2.
    y : ndarray of shape (..., n_k)
        The curves.

    Returns
    -------
    v0, tau : ndarrays of shape y.shape[:-1]
        NaN for curves with a non-finite value. Where the best v0 is 0, or the curve is flat (best τ below
        the k scale), τ does not change the fit and is whatever the search stopped at.

    Notes
    -----
    This is a global search over τ, so it can do better than a local ``scipy.optimize.curve_fit`` (Brain-Score's
    fit): with its default tolerances, on the flat valley of a curve that rises almost linearly, curve_fit
    stops at a larger sum of squares, up to a few 1e-3 short in v0. With tight tolerances the two agree.
    """
    k = np.asarray(k, dtype=np.float64)
    if k.ndim != 1 or k.size < 2 or not np.all(np.isfinite(k)) or np.any(k <= 0):
        raise InputError("fit_extrapolation", "k", "a 1-D array of at least 2 positive finite values",
                         f"shape {k.shape}, values {k}")
    y = np.asarray(y, dtype=np.float64)
    if y.ndim < 1 or y.shape[-1] != k.size:
        raise InputError("fit_extrapolation", "y", f"an array whose last axis has the {k.size} values of k",
                         f"shape {y.shape}")
    rows = y.reshape(-1, k.size)
    bad = ~np.all(np.isfinite(rows), axis=1)
    # Zeros stand in for the bad curves so that the search stays finite; their results are replaced by NaN.
    rows = np.where(bad[:, None], 0.0, rows)
    v0 = np.empty(rows.shape[0])
    tau = np.empty(rows.shape[0])
    grid = np.arange(np.log(k.min() * _TAU_LOW_FACTOR), np.log(k.max() * _TAU_HIGH_FACTOR) + _GRID_STEP,
                     _GRID_STEP)
    for start in range(0, rows.shape[0], _FIT_ROWS):
        chunk = slice(start, start + _FIT_ROWS)
        v0[chunk], tau[chunk] = _fit_rows(k, rows[chunk], grid)
    v0[bad] = np.nan
    tau[bad] = np.nan
    return v0.reshape(y.shape[:-1]), tau.reshape(y.shape[:-1])


def normalise(raw: np.ndarray | float, ceiling: np.ndarray | float) -> np.ndarray | float:
    """Ceiling-normalised score: raw / ceiling clipped to [0, 1], as Brain-Score's ``ceiling_normalize``.

    Works element-wise with broadcasting. NaN where the ceiling is not positive (a ratio to a non-positive
    ceiling means nothing) or either input is NaN. Scalars in, scalar out.
    """
    raw = np.asarray(raw, dtype=np.float64)
    ceiling = np.asarray(ceiling, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.clip(raw / ceiling, 0.0, 1.0)
    return np.where(ceiling > 0, ratio, np.nan)[()]


def explainable_variance(repeats: np.ndarray, bias_correction: bool = True) -> np.ndarray:
    """Explainable variance per channel from repeated presentations (Gallant-lab voxelwise tutorials).

    Each repeat is z-scored over samples; ev = var(mean over repeats) / mean over repeats of var, which for
    z-scored repeats equals 1 − mean over repeats of var(repeat − mean) / mean var. The mean of R repeats
    keeps 1/R of pure noise's variance, so ev is biased upwards; the correction ev − (1 − ev) / (R − 1)
    removes that (for two repeats it gives exactly the correlation between them).

    Parameters
    ----------
    repeats : ndarray of shape (n_repeats, n_samples, n_channels)
        n_repeats >= 2 presentations of the same n_samples >= 2 stimuli.
    bias_correction : bool
        Apply the correction above.

    Returns
    -------
    ndarray of shape (n_channels,)
        NaN for a channel constant in some repeat.
    """
    repeats = np.asarray(repeats, dtype=np.float64)
    if repeats.ndim != 3:
        raise InputError("repeats", "shape", "a 3-D array (n_repeats, n_samples, n_channels)",
                         f"shape {repeats.shape}")
    n_repeats, n_samples, _ = repeats.shape
    if n_repeats < 2:
        raise InputError("repeats", "n_repeats", "at least 2 repeated presentations", str(n_repeats))
    if n_samples < 2:
        raise InputError("repeats", "n_samples", "at least 2 samples per repeat", str(n_samples))
    centred = repeats - repeats.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = centred / centred.std(axis=1, keepdims=True)
        ev = z.mean(axis=0).var(axis=0) / z.var(axis=1).mean(axis=0)
    if bias_correction:
        ev = ev - (1.0 - ev) / (n_repeats - 1)
    return ev


def true_ceiling(signal: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """Per channel the Pearson r between a simulation's noise-free signal and the observed responses.

    A model of the stimulus can at best predict the stimulus-driven signal, so this is the score a perfect
    model reaches. It is what :func:`extrapolation_ceiling` estimates: with infinitely many participants
    the pooled others' noise averages out and they reveal the shared stimulus-driven signal exactly, so the
    held-out prediction tends to the signal and v0 to corr(signal, response).

    Parameters
    ----------
    signal, responses : ndarrays of shape (n_samples, n_channels)

    Returns
    -------
    ndarray of shape (n_channels,)
    """
    signal = _check_matrix(signal, "signal")
    responses = _check_matrix(responses, "responses")
    if signal.shape != responses.shape:
        raise InputError("responses", "shape", f"the signal's shape {signal.shape}", f"shape {responses.shape}")
    return pearson_r(signal, responses)


def _fit_rows(k: np.ndarray, y: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit (v0, τ) to the finite curves ``y`` (rows × n_k): grid over log τ, then golden section."""
    g_grid = -np.expm1(-k[None, :] / np.exp(grid)[:, None])  # (n_grid, n_k); expm1 keeps huge-τ g exact
    sum_yg = y @ g_grid.T
    sum_gg = (g_grid**2).sum(axis=1)
    v0_grid = np.clip(sum_yg / sum_gg, 0.0, 1.0)
    # The expanded sum of squares, accurate enough to rank grid points.
    sse_grid = (y**2).sum(axis=1)[:, None] - 2.0 * v0_grid * sum_yg + v0_grid**2 * sum_gg
    best = np.argmin(sse_grid, axis=1)
    low = grid[np.maximum(best - 1, 0)]
    high = grid[np.minimum(best + 1, grid.size - 1)]

    def profile(log_tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        g = -np.expm1(-k[None, :] / np.exp(log_tau)[:, None])
        v0 = np.clip((y * g).sum(axis=1) / (g**2).sum(axis=1), 0.0, 1.0)
        # Residuals summed directly: the expanded form cancels catastrophically near a perfect fit.
        return ((y - v0[:, None] * g) ** 2).sum(axis=1), v0

    inner_low = high - _INVERSE_PHI * (high - low)
    inner_high = low + _INVERSE_PHI * (high - low)
    f_low, _ = profile(inner_low)
    f_high, _ = profile(inner_high)
    n_steps = math.ceil(math.log(_LOG_TAU_TOLERANCE / (2.0 * _GRID_STEP)) / math.log(_INVERSE_PHI))
    for _ in range(n_steps):
        left = f_low < f_high  # the minimum lies in [low, inner_high]
        high = np.where(left, inner_high, high)
        low = np.where(left, low, inner_low)
        new = np.where(left, high - _INVERSE_PHI * (high - low), low + _INVERSE_PHI * (high - low))
        f_new, _ = profile(new)
        inner_high, f_high, inner_low, f_low = (np.where(left, inner_low, new), np.where(left, f_low, f_new),
                                                np.where(left, new, inner_high), np.where(left, f_new, f_high))
    log_tau = np.where(f_low < f_high, inner_low, inner_high)
    sse, v0 = profile(log_tau)
    # Golden section finds a local minimum of the bracket; keep the grid point should that be worse.
    grid_v0 = v0_grid[np.arange(y.shape[0]), best]
    grid_sse = ((y - grid_v0[:, None] * g_grid[best]) ** 2).sum(axis=1)
    grid_wins = grid_sse < sse
    return np.where(grid_wins, grid_v0, v0), np.exp(np.where(grid_wins, grid[best], log_tau))


def _bootstrap_means(counts: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per bootstrap and channel the mean of the resampled rows, NaN where a resampled row is NaN."""
    undefined = np.isnan(scores)
    means = counts @ np.where(undefined, 0.0, scores) / scores.shape[0]
    return np.where(counts @ undefined > 0, np.nan, means)


def _subsets(n_participants: int, k: int, limit: int | None, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """All k-subsets of the participants, or ``limit`` distinct random ones (sorted) where there are more."""
    if limit is None or math.comb(n_participants, k) <= limit:
        return list(itertools.combinations(range(n_participants), k))
    # Rejection sampling: listing every combination is out of reach for many participants.
    chosen: dict[tuple[int, ...], None] = {}
    while len(chosen) < limit:
        chosen[tuple(sorted(int(p) for p in rng.choice(n_participants, size=k, replace=False)))] = None
    return list(chosen)


def _check_matrix(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or 0 in array.shape:
        raise InputError(name, "shape", "a non-empty 2-D array (n_samples, n_channels)", f"shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(name, "values", "finite numbers", f"{int(np.sum(~np.isfinite(array)))} NaN or inf")
    return array


def _check_groups(groups: np.ndarray, n_samples: int) -> np.ndarray:
    groups = np.asarray(groups)
    if groups.shape != (n_samples,):
        raise InputError("groups", "length", f"a 1-D array of one label per sample ({n_samples})",
                         f"shape {groups.shape}")
    n_groups = np.unique(groups).size
    if n_groups < 3:
        raise InputError("groups", "n_groups", "at least 3 groups (runs) for nested leave-one-group-out",
                         f"{n_groups}")
    return groups


def _check_alphas(alphas: np.ndarray) -> np.ndarray:
    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
        raise InputError("alphas", "values", "a non-empty 1-D array of positive finite penalties",
                         f"shape {alphas.shape}, values {alphas}")
    return alphas


def _check_responses(responses: Sequence[np.ndarray], groups: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    if len(responses) < 3:
        raise InputError("responses", "participants",
                         "at least 3 participants on a shared stimulus and channel space (with 2 only k = 2 "
                         "exists and there is nothing to extrapolate from)", f"{len(responses)}")
    arrays = [_check_matrix(r, f"responses[{i}]") for i, r in enumerate(responses)]
    for i, array in enumerate(arrays[1:], start=1):
        if array.shape != arrays[0].shape:
            raise InputError(f"responses[{i}]", "shape",
                             f"the shape of responses[0] {arrays[0].shape} (same stimuli and channels)",
                             f"shape {array.shape}")
    return arrays, _check_groups(groups, arrays[0].shape[0])
