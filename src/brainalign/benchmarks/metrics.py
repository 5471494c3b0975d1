"""Brain-Score language 2.3.0's metrics on plain arrays, with its numbers (reference section 7).

``linear_pearsonr`` and ``ridge_pearsonr`` are Brain-Score's ``CrossRegressedCorrelation``: per cross-validation
split a regression from features to every neuroid, fitted on the training presentations; the held-out
predictions are correlated with the held-out responses per neuroid (:func:`brainscore_pearsonr`, with
Brain-Score's 1e-8 on the norms); the median over neuroids of each split, then the mean over splits, is the
score. Brain-Score fits one regression for all neuroids at once (scikit-learn's multi-output ``LinearRegression``
and its ``RidgeGCVTorch``), and so do we: one least-squares solve, or one SVD, per split.

How Brain-Score builds the splits (``brainscore_language.utils.transformations``): ``Split.build_splits`` takes
the target's ``split_coord`` values *in the target's presentation order* (``unique_split_values`` is False in
every benchmark, so they are neither sorted nor de-duplicated) and hands their count to

- ``ShuffleSplit(10, train_size=0.9, random_state=1)`` (``kfold=False``, the ``-linear-shuffle`` benchmarks); a
  presentation is then in the training (test) set when its stimulus id is among the ids the split drew
  (:func:`shuffle_splits`);
- ``GroupKFold(10, shuffle=True, random_state=1234)`` with the ``split_coord`` values (story, passage or
  sentence) as groups (``kfold="group"``, the ``-ridge`` benchmarks) (:func:`group_splits`).

Rows here are presentations in the data's order (the target's): pass features and responses aligned row by row.

The Futrell 2018 reading-time benchmark has no fitting: :func:`surprisal_score` is ``|pearsonr|`` between a
model's surprisal and the mean reading time, :func:`split_half_ceiling` Brain-Score's
``SplitHalvesConsistency``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy.stats import pearsonr
from sklearn.model_selection import GroupKFold, ShuffleSplit

from brainalign.errors import ConfigError, InputError
from brainalign.registry import Registry

#: ``ridge_pearsonr``'s penalties: one is chosen for all neuroids by efficient leave-one-out.
RIDGE_ALPHAS = np.logspace(-3, 3, 7)
#: scikit-learn 1.9's ``LinearRegression(tol=1e-6)``, passed to ``scipy.linalg.lstsq`` as ``cond``: singular
#: values below 1e-6 of the largest count as zero, which decides the minimum-norm solution when the pooled
#: neuroids of a ceiling outnumber the training presentations.
LSTSQ_COND = 1e-6
#: Brain-Score's ``pearsonr`` adds this to both norms, so a constant neuroid scores 0 instead of NaN.
PEARSON_EPSILON = 1e-8
#: The splits of the benchmarks: ``-linear-shuffle`` ones draw with 1, ``-ridge`` ones with 1234.
SHUFFLE_SEED = 1
GROUP_SEED = 1234

METRICS: Registry[Callable[..., "MetricScore"]] = Registry("benchmark metric", "benchmarks.<name>.metric")

Splits = list[tuple[np.ndarray, np.ndarray]]


@dataclass
class MetricScore:
    """A cross-validated correlation, with what Brain-Score keeps in ``score.raw``.

    Attributes
    ----------
    per_split : ndarray of shape (n_splits, n_neuroids), float64
        Held-out Pearson r of every neuroid in every split.
    split_medians : ndarray of shape (n_splits,)
        The median over neuroids of each split.
    score : float
        The mean over splits of ``split_medians``: Brain-Score's raw score.
    per_neuroid : ndarray of shape (n_neuroids,)
        The mean over splits of each neuroid's r.
    train_indices, test_indices : list of ndarray of int
        Per split, the rows (presentations) fitted on and scored.
    alphas : ndarray of shape (n_splits,), optional
        Per split the ridge penalty chosen (``ridge_pearsonr`` only).
    """

    per_split: np.ndarray
    split_medians: np.ndarray
    score: float
    per_neuroid: np.ndarray
    train_indices: list[np.ndarray]
    test_indices: list[np.ndarray]
    alphas: np.ndarray | None = None


def brainscore_pearsonr(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per column Pearson r as Brain-Score computes it: each side centred, divided by its norm + 1e-8.

    Parameters
    ----------
    prediction, target : ndarrays of shape (n_samples, n_columns)

    Returns
    -------
    ndarray of shape (n_columns,), float64
        0 for a constant column (where plain Pearson r is undefined).
    """
    x = np.asarray(prediction, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    y = y - y.mean(axis=0, keepdims=True)
    x = x / (np.linalg.norm(x, axis=0, keepdims=True) + PEARSON_EPSILON)
    y = y / (np.linalg.norm(y, axis=0, keepdims=True) + PEARSON_EPSILON)
    return (x * y).sum(axis=0)


def shuffle_splits(stimulus_ids: Sequence, n_splits: int = 10, train_size: float = 0.9,
                   random_state: int = SHUFFLE_SEED) -> Splits:
    """Brain-Score's ``ShuffleSplit`` cross-validation over presentations.

    ``ShuffleSplit(n_splits, train_size, random_state)`` draws positions among the presentations in their
    given order; a presentation is trained (tested) on when its stimulus id is one of the drawn positions'
    ids. With unique ids that is exactly the drawn positions.

    Parameters
    ----------
    stimulus_ids : sequence of shape (n_presentations,)
        The stimulus id of each row, in the data's order.
    n_splits, train_size, random_state
        As scikit-learn's ``ShuffleSplit`` (Brain-Score: 10, 0.9, 1).

    Returns
    -------
    list of (train_rows, test_rows)
    """
    ids = _ids(stimulus_ids, "stimulus_ids")
    splitter = ShuffleSplit(n_splits=n_splits, train_size=train_size, test_size=None, random_state=random_state)
    return [(np.flatnonzero(np.isin(ids, ids[train])), np.flatnonzero(np.isin(ids, ids[test])))
            for train, test in splitter.split(np.zeros(ids.size))]


def group_splits(groups: Sequence, n_splits: int = 10, random_state: int = GROUP_SEED) -> Splits:
    """Brain-Score's ``GroupKFold(n_splits, shuffle=True, random_state)`` over presentations.

    Parameters
    ----------
    groups : sequence of shape (n_presentations,)
        The group (story, passage or sentence) of each row, in the data's order; a group is never split
        between training and test.
    n_splits, random_state
        Brain-Score: 10 and 1234.

    Returns
    -------
    list of (train_rows, test_rows)
    """
    labels = _ids(groups, "groups")
    n_groups = np.unique(labels).size
    if n_groups < n_splits:
        raise InputError("groups", "n_groups", f"at least n_splits = {n_splits} distinct groups", str(n_groups))
    splitter = GroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    return [(np.asarray(train), np.asarray(test))
            for train, test in splitter.split(np.zeros(labels.size), groups=labels)]


def linear_predictions(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    """Ordinary least squares with an intercept (scikit-learn's ``LinearRegression``), all targets at once.

    The minimum-norm solution of the centred problem, singular values below ``LSTSQ_COND`` of the largest
    discarded, as scikit-learn 1.9 solves it.
    """
    x_mean, y_mean = train_x.mean(axis=0), train_y.mean(axis=0)
    coef = scipy.linalg.lstsq(train_x - x_mean, train_y - y_mean, cond=LSTSQ_COND)[0]
    return (test_x - x_mean) @ coef + y_mean


def thin_svd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x = u @ diag(s) @ vt`` with only the directions of non-zero singular values (relative 1e-10).

    From the eigendecomposition of the smaller Gram matrix (xᵀx or xxᵀ): several times faster than an SVD
    for the few-hundred-row problems of the benchmarks, and exact to rounding for every direction whose
    singular value is not negligible (those carry all of ridge's fit and leverage).
    """
    n, p = x.shape
    gram = x.T @ x if p <= n else x @ x.T
    values, vectors = np.linalg.eigh(gram)
    keep = values > values.max(initial=0.0) * 1e-20 if values.size else np.zeros(0, bool)
    values, vectors = values[keep][::-1], vectors[:, keep][:, ::-1]
    s = np.sqrt(values)
    if p <= n:
        return (x @ vectors) / s, s, vectors.T
    return vectors, s, (vectors.T @ x) / s[:, None]


def ridge_gcv_predictions(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                          alphas: np.ndarray = RIDGE_ALPHAS) -> tuple[np.ndarray, float]:
    """Brain-Score's ``RidgeGCVTorch``: one penalty for all targets by exact leave-one-out, then a refit.

    With the training features centred (X = U S Vᵀ) and an unpenalised intercept, the hat matrix is
    11ᵀ/n + U diag(s² / (s² + α)) Uᵀ, and the leave-one-out residual of row i is (y_i − ŷ_i) / (1 − h_ii).
    The penalty with the smallest mean squared leave-one-out error over all rows and targets wins (the first
    on ties, as Brain-Score's strict ``>``); its coefficients V diag(s / (s² + α)) Uᵀ y predict the test rows.

    Returns
    -------
    predictions : ndarray of shape (n_test, n_targets)
    alpha : float
        The chosen penalty.
    """
    n = train_x.shape[0]
    x_mean, y_mean = train_x.mean(axis=0), train_y.mean(axis=0)
    u, s, vt = thin_svd(train_x - x_mean)
    y = train_y - y_mean
    uty = u.T @ y
    u2 = u**2
    best_alpha, best_error = float(alphas[0]), np.inf
    for alpha in alphas:
        shrink = s**2 / (s**2 + alpha)
        fitted = u @ (shrink[:, None] * uty)
        leverage = 1.0 / n + u2 @ shrink
        error = np.mean(((y - fitted) / (1.0 - leverage)[:, None]) ** 2)
        if error < best_error:
            best_alpha, best_error = float(alpha), error
    weights = (s / (s**2 + best_alpha))[:, None] * uty
    return ((test_x - x_mean) @ vt.T) @ weights + y_mean, best_alpha


def cross_regressed_correlation(features: np.ndarray, responses: np.ndarray, splits: Splits,
                                regression: str = "linear", alphas: np.ndarray = RIDGE_ALPHAS) -> MetricScore:
    """Brain-Score's ``CrossRegressedCorrelation`` on given splits.

    Parameters
    ----------
    features : ndarray of shape (n_presentations, n_features)
    responses : ndarray of shape (n_presentations, n_neuroids)
    splits : list of (train_rows, test_rows)
    regression : {"linear", "ridge"}
    alphas : ndarray
        The ridge penalties (``regression="ridge"``).

    Returns
    -------
    MetricScore
    """
    features, responses = _check_pair(features, responses)
    if regression not in ("linear", "ridge"):
        raise ConfigError(f"regression: expected one of linear, ridge, found {regression!r}")
    per_split, chosen = [], []
    for train, test in splits:
        if regression == "linear":
            prediction = linear_predictions(features[train], responses[train], features[test])
        else:
            prediction, alpha = ridge_gcv_predictions(features[train], responses[train], features[test], alphas)
            chosen.append(alpha)
        per_split.append(brainscore_pearsonr(prediction, responses[test]))
    per_split = np.stack(per_split)
    split_medians = np.median(per_split, axis=1)
    return MetricScore(per_split=per_split, split_medians=split_medians, score=float(split_medians.mean()),
                       per_neuroid=per_split.mean(axis=0), train_indices=[s[0] for s in splits],
                       test_indices=[s[1] for s in splits], alphas=np.asarray(chosen) if chosen else None)


@METRICS.register("linear_pearsonr")
def linear_pearsonr(features: np.ndarray, responses: np.ndarray, *, stimulus_ids: Sequence | None = None,
                    groups: Sequence | None = None, cv: str = "shuffle", n_splits: int = 10,
                    train_size: float = 0.9, random_state: int | None = None) -> MetricScore:
    """Brain-Score's ``linear_pearsonr``: cross-validated ordinary least squares, per-neuroid Pearson r.

    Parameters
    ----------
    features : ndarray of shape (n_presentations, n_features)
    responses : ndarray of shape (n_presentations, n_neuroids)
    stimulus_ids : sequence of shape (n_presentations,)
        Needed for ``cv="shuffle"``.
    groups : sequence of shape (n_presentations,)
        Needed for ``cv="group"``.
    cv : {"shuffle", "group"}
        :func:`shuffle_splits` (the ``-linear-shuffle`` benchmarks) or :func:`group_splits`.
    n_splits, train_size
        Of the splits.
    random_state : int, optional
        1 for ``shuffle``, 1234 for ``group`` by default, as the benchmarks.

    Returns
    -------
    MetricScore
    """
    splits = _splits(cv, np.asarray(features).shape[0], stimulus_ids, groups, n_splits, train_size, random_state)
    return cross_regressed_correlation(features, responses, splits, "linear")


@METRICS.register("ridge_pearsonr")
def ridge_pearsonr(features: np.ndarray, responses: np.ndarray, *, stimulus_ids: Sequence | None = None,
                   groups: Sequence | None = None, cv: str = "group", n_splits: int = 10,
                   train_size: float = 0.9, random_state: int | None = None,
                   alphas: np.ndarray = RIDGE_ALPHAS) -> MetricScore:
    """Brain-Score's ``ridge_pearsonr``: cross-validated ridge (one penalty for all neuroids), Pearson r.

    Parameters as :func:`linear_pearsonr`, but ``cv="group"`` by default (the ``-ridge`` benchmarks);
    ``alphas`` the penalties to choose from (Brain-Score: 10⁻³ … 10³).
    """
    splits = _splits(cv, np.asarray(features).shape[0], stimulus_ids, groups, n_splits, train_size, random_state)
    return cross_regressed_correlation(features, responses, splits, "ridge", np.asarray(alphas, dtype=np.float64))


def surprisal_score(surprisal_bits: np.ndarray, mean_rt: np.ndarray, sentence_first: np.ndarray) -> float:
    """Futrell 2018's score: |Pearson r| between per-word surprisal and mean reading time.

    Brain-Score drops the words whose ``word_within_sentence_id`` is 1 and correlates the rest with
    ``scipy.stats.pearsonr``. Words where either value is NaN are dropped here too (Brain-Score would return
    NaN); on finite inputs the two agree.

    Parameters
    ----------
    surprisal_bits, mean_rt : ndarrays of shape (n_words,)
    sentence_first : ndarray of bool, shape (n_words,)
        True for the first word of each sentence.

    Returns
    -------
    float
    """
    surprisal = np.asarray(surprisal_bits, dtype=np.float64)
    rt = np.asarray(mean_rt, dtype=np.float64)
    first = np.asarray(sentence_first, dtype=bool)
    if surprisal.ndim != 1 or rt.shape != surprisal.shape or first.shape != surprisal.shape:
        raise InputError("surprisal_score", "shape", "three 1-D arrays of one value per word",
                         f"shapes {surprisal.shape}, {rt.shape}, {first.shape}")
    keep = ~first & np.isfinite(surprisal) & np.isfinite(rt)
    if keep.sum() < 3:
        raise InputError("surprisal_score", "words", "at least 3 finite non-sentence-first words",
                         str(int(keep.sum())))
    return float(abs(pearsonr(surprisal[keep], rt[keep])[0]))


def split_half_ceiling(rts: np.ndarray, n_splits: int = 10, seed: int = 0) -> tuple[float, np.ndarray]:
    """Brain-Score's ``SplitHalvesConsistency`` of per-reader reading times (Futrell 2018's ceiling).

    One ``RandomState(seed)``; per split ``choice(n_readers, n_readers // 2, replace=False)`` picks the
    first half, the rest is the second; each half's mean over its readers ignores NaN (xarray's
    ``mean``); |Pearson r| between the two halves' means, Spearman–Brown corrected 2r / (1 + r); the
    median over splits. A split where some word has no reader in a half has r = NaN, as in Brain-Score,
    and the median skips it.

    Parameters
    ----------
    rts : ndarray of shape (n_readers, n_words)
        Reading times, NaN where a reader did not read (or was excluded on) a word.
    n_splits, seed
        Brain-Score: 10 and 0.

    Returns
    -------
    value : float
        The median corrected consistency.
    per_split : ndarray of shape (n_splits,)
        The corrected consistency of every split.
    """
    rts = np.asarray(rts, dtype=np.float64)
    if rts.ndim != 2 or rts.shape[0] < 2 or rts.shape[1] < 3:
        raise InputError("rts", "shape", "(n_readers >= 2, n_words >= 3)", f"shape {rts.shape}")
    rng = np.random.RandomState(seed)
    n_readers = rts.shape[0]
    per_split = np.empty(n_splits)
    for split in range(n_splits):
        first = np.zeros(n_readers, dtype=bool)
        first[rng.choice(n_readers, size=n_readers // 2, replace=False)] = True
        halves = [_nanmean_rows(rts[first]), _nanmean_rows(rts[~first])]
        if not all(np.all(np.isfinite(h)) for h in halves):
            per_split[split] = np.nan
            continue
        r = abs(pearsonr(halves[0], halves[1])[0])
        per_split[split] = spearman_brown(r)
    value = float(np.nanmedian(per_split)) if np.isfinite(per_split).any() else float("nan")
    return value, per_split


def spearman_brown(r: float | np.ndarray, factor: float = 2.0) -> float | np.ndarray:
    """The Spearman–Brown prophecy: the reliability of ``factor`` times the data, factor·r / (1 + (factor − 1)·r)."""
    return factor * r / (1.0 + (factor - 1.0) * r)


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    counts = np.isfinite(values).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.nansum(values, axis=0) / counts, np.nan)


def _splits(cv: str, n_rows: int, stimulus_ids, groups, n_splits: int, train_size: float,
            random_state: int | None) -> Splits:
    if cv == "shuffle":
        if stimulus_ids is None:
            raise ConfigError("cv: shuffle splits need stimulus_ids (one per presentation), found None")
        _check_length(stimulus_ids, "stimulus_ids", n_rows)
        return shuffle_splits(stimulus_ids, n_splits, train_size, SHUFFLE_SEED if random_state is None else random_state)
    if cv == "group":
        if groups is None:
            raise ConfigError("cv: group splits need groups (one per presentation), found None")
        _check_length(groups, "groups", n_rows)
        return group_splits(groups, n_splits, GROUP_SEED if random_state is None else random_state)
    raise ConfigError(f"cv: expected one of group, shuffle, found {cv!r}")


def _ids(values: Sequence, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise InputError(name, "shape", "a non-empty 1-D array, one label per presentation", f"shape {array.shape}")
    return array


def _check_length(values: Sequence, name: str, n_rows: int) -> None:
    if np.asarray(values).shape != (n_rows,):
        raise InputError(name, "length", f"one label per presentation ({n_rows})",
                         f"shape {np.asarray(values).shape}")


def _check_pair(features: np.ndarray, responses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    responses = np.asarray(responses, dtype=np.float64)
    for name, array in (("features", features), ("responses", responses)):
        if array.ndim != 2 or 0 in array.shape:
            raise InputError(name, "shape", "a non-empty 2-D array (n_presentations, n_columns)",
                             f"shape {array.shape}")
        if not np.all(np.isfinite(array)):
            raise InputError(name, "values", "finite numbers", f"{int(np.sum(~np.isfinite(array)))} NaN or inf")
    if features.shape[0] != responses.shape[0]:
        raise InputError("responses", "n_presentations", f"the features' {features.shape[0]} rows",
                         f"{responses.shape[0]} rows")
    return features, responses
