"""Statistics that compare two models voxel by voxel (reference section 4, paper Figures 2 and 3).

Everything works on plain arrays of per-voxel 20 vs 20 accuracies, already averaged over held-out runs,
one row per initialisation (seed). Differences are always ``b - a``: model B minus model A, so a positive
number means *model B is better*. In the seed paper A is the vanilla model and B a fine-tuned one.

``comparison_curves``
    Figure 2: per seed, voxels sorted by the better of the two accuracies; the running mean of ``b - a``.
``voxel_ttest``
    Figure 3: per voxel, a related-samples t-test across seeds, Benjamini-Hochberg FDR over voxels.
``benjamini_hochberg``
    The step-up FDR procedure on any array of p-values.
``participant_test``
    Across participants: is the mean difference different from zero?
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from brainalign.errors import ConfigError, InputError


def _seed_by_voxel(name: str, values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise InputError(name, "shape", "a 2-D array (n_seeds, n_voxels) with at least one of each",
                         f"shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(name, "values", "finite accuracies", f"{int(np.sum(~np.isfinite(array)))} NaN or inf")
    return array


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _seed_by_voxel("a", a), _seed_by_voxel("b", b)
    if a.shape != b.shape:
        raise InputError("b", "shape", f"the shape of a {a.shape}", f"shape {b.shape}")
    return a, b


def comparison_curves(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean accuracy difference ``b - a`` over the best ``x`` voxels, for every ``x``, per seed.

    For each seed, voxels are sorted by ``max(a, b)`` in descending order (ties keep voxel order), and
    ``curve[x - 1]`` is the mean of ``b - a`` over the first ``x`` voxels of that order. Positive values
    mean model B is better than model A on the voxels that at least one model predicts well.

    Parameters
    ----------
    a, b : ndarray of shape (n_seeds, n_voxels)
        One participant's per-voxel accuracies of model A and model B, one row per initialisation.
        Row ``s`` of ``a`` is paired with row ``s`` of ``b``.

    Returns
    -------
    ndarray of shape (n_seeds, n_voxels), float64
        ``curves[s, x - 1]``: mean of ``b[s] - a[s]`` over the ``x`` best voxels of seed ``s``.

    Examples
    --------
    >>> comparison_curves(np.array([[0.6, 0.9, 0.5]]), np.array([[0.8, 0.7, 0.5]]))
    array([[-0.2,  0. ,  0. ]])
    """
    a, b = _pair(a, b)
    order = np.argsort(-np.maximum(a, b), axis=1, kind="stable")
    sorted_difference = np.take_along_axis(b - a, order, axis=1)
    return np.cumsum(sorted_difference, axis=1) / np.arange(1, a.shape[1] + 1)


def benjamini_hochberg(p: np.ndarray, q: float) -> np.ndarray:
    """Benjamini-Hochberg step-up procedure: which hypotheses are rejected at false discovery rate ``q``.

    With the ``m`` non-NaN p-values sorted, ``p_(1) <= ... <= p_(m)``, find the largest ``k`` with
    ``p_(k) <= k q / m`` and reject the ``k`` smallest. NaN p-values are never significant and do not count
    in ``m`` (a voxel that was not tested is not a hypothesis).

    Parameters
    ----------
    p : array_like of float
        P-values in [0, 1], any shape; NaN allowed.
    q : float
        The false discovery rate, in (0, 1].

    Returns
    -------
    ndarray of bool, same shape as ``p``
        True where the hypothesis is rejected (significant).

    Examples
    --------
    Step-up: 0.03 is above its own threshold (2 x 0.05 / 4 = 0.025) but is rejected because a larger
    p-value, 0.035, is below its threshold (3 x 0.05 / 4 = 0.0375).

    >>> benjamini_hochberg([0.01, 0.035, 0.03, 0.5], q=0.05)
    array([ True,  True,  True, False])
    """
    if not (isinstance(q, (int, float, np.floating)) and 0.0 < float(q) <= 1.0):
        raise ConfigError(f"benjamini_hochberg q: expected a false discovery rate in (0, 1], found {q!r}")
    values = np.asarray(p, dtype=np.float64)
    tested = ~np.isnan(values)
    if np.any((values[tested] < 0) | (values[tested] > 1)):
        raise InputError("p", "values", "p-values in [0, 1] (or NaN)",
                         f"range [{values[tested].min()}, {values[tested].max()}]")
    significant = np.zeros(values.shape, dtype=bool)
    m = int(tested.sum())
    if m == 0:
        return significant
    flat = values[tested]
    order = np.argsort(flat, kind="stable")
    below = flat[order] <= float(q) * np.arange(1, m + 1) / m
    if below.any():
        k = int(np.flatnonzero(below)[-1]) + 1
        rejected = np.zeros(m, dtype=bool)
        rejected[order[:k]] = True
        significant[tested] = rejected
    return significant


def voxel_ttest(a: np.ndarray, b: np.ndarray, q: float = 0.01) -> pd.DataFrame:
    """Per voxel, a two-sided related-samples t-test of ``b`` against ``a`` across seeds, with BH FDR.

    Seeds pair the two models (seed ``s`` of A with seed ``s`` of B, as ``scipy.stats.ttest_rel``).
    A voxel whose difference ``b - a`` is the same for every seed has zero variance and no defined t
    statistic: it gets ``t = NaN`` and ``p = 1`` (no evidence), and still counts as a tested hypothesis
    in the Benjamini-Hochberg correction, which keeps the correction conservative.

    Parameters
    ----------
    a, b : ndarray of shape (n_seeds, n_voxels)
        One participant's per-voxel accuracies of models A and B; at least 2 seeds.
    q : float
        False discovery rate of the Benjamini-Hochberg correction over voxels (the paper: 0.01).

    Returns
    -------
    DataFrame with one row per voxel and columns
        ``voxel`` (int, column index), ``difference`` (mean over seeds of ``b - a``; positive: B better),
        ``t`` (positive: B better), ``p`` (two-sided), ``significant`` (bool, BH at ``q``).
    """
    a, b = _pair(a, b)
    if a.shape[0] < 2:
        raise InputError("a", "n_seeds", "at least 2 seeds (initialisations) for a t-test across seeds",
                         f"{a.shape[0]} seed")
    difference = b - a
    constant = np.all(difference == difference[:1], axis=0)
    t = np.full(a.shape[1], np.nan)
    p = np.ones(a.shape[1])
    if (~constant).any():
        result = stats.ttest_rel(b[:, ~constant], a[:, ~constant], axis=0)
        t[~constant], p[~constant] = result.statistic, result.pvalue
    return pd.DataFrame({"voxel": np.arange(a.shape[1]), "difference": difference.mean(axis=0), "t": t, "p": p,
                         "significant": benjamini_hochberg(p, q)})


def participant_test(differences: Mapping[str, float]) -> dict[str, float | int | None]:
    """Paired test across participants of the mean difference ``b - a`` against 0.

    A one-sample t-test of the per-participant mean differences against zero; this is the same test as a
    related-samples t-test between the two models' per-participant mean accuracies. With as few
    participants as fMRI studies have, the Wilcoxon signed-rank test (exact for small ``n``, no normality
    assumption) is given beside it.

    Parameters
    ----------
    differences : mapping of participant to float
        Each participant's difference, model B minus model A (e.g. the mean over seeds and voxels).

    Returns
    -------
    dict
        ``n`` (participants), ``mean``, ``sd`` (ddof = 1), ``t``, ``p`` (two-sided t-test), ``wilcoxon_p``
        (two-sided signed-rank test; 1.0 when every difference is 0). ``sd``, ``t``, ``p`` and
        ``wilcoxon_p`` are None when ``n < 2``; ``t`` and ``p`` are None when every participant has the
        same difference (zero variance).

    Examples
    --------
    >>> participant_test({"1": 0.01, "2": 0.03})["mean"]
    0.02
    """
    if not isinstance(differences, Mapping) or len(differences) == 0:
        raise InputError("differences", "participants", "a non-empty mapping of participant to difference",
                         repr(differences)[:80])
    values = np.asarray([float(v) for v in differences.values()], dtype=np.float64)
    if not np.all(np.isfinite(values)):
        bad = [k for k, v in differences.items() if not np.isfinite(float(v))]
        raise InputError("differences", "values", "a finite difference for each participant", f"NaN/inf for {bad}")
    n = len(values)
    result: dict[str, float | int | None] = {"n": n, "mean": float(values.mean()), "sd": None, "t": None,
                                             "p": None, "wilcoxon_p": None}
    if n < 2:
        return result
    result["sd"] = float(values.std(ddof=1))
    if np.any(values != values[0]):
        test = stats.ttest_1samp(values, 0.0)
        result["t"], result["p"] = float(test.statistic), float(test.pvalue)
    result["wilcoxon_p"] = 1.0 if np.all(values == 0) else float(stats.wilcoxon(values).pvalue)
    return result
