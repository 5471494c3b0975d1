"""Statistics that compare two models voxel by voxel (reference section 4, paper Figures 2 and 3).

Everything works on plain arrays of per-voxel 20 vs 20 accuracies, already averaged over held-out runs,
one row per initialisation (seed). Differences are always ``b - a``: model B minus model A, so a positive
number means *model B is better*. In the seed paper A is the vanilla model and B a fine-tuned one.

``comparison_curves``
    Figure 2: per seed, voxels sorted by the better of the two accuracies; the running mean of ``b - a``.
``voxel_ttest``
    Figure 3: per voxel, a related-samples t-test across seeds, Benjamini-Hochberg FDR over voxels.
``predictable_voxels``
    Which voxels the models predict above chance (a circular-shift null): the voxels a map should test.
``combined_predictable``
    The same over participants (Stouffer's z): the voxels a participant-mean map shows.
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


def voxel_ttest(a: np.ndarray, b: np.ndarray, q: float = 0.01, tested: np.ndarray | None = None) -> pd.DataFrame:
    """Per voxel, a two-sided related-samples t-test of ``b`` against ``a`` across seeds, with BH FDR.

    Seeds pair the two models (seed ``s`` of A with seed ``s`` of B, as ``scipy.stats.ttest_rel``).
    A voxel whose difference ``b - a`` is the same for every seed has zero variance and no defined t
    statistic: it gets ``t = NaN`` and ``p = 1`` (no evidence), and still counts as a tested hypothesis
    in the Benjamini-Hochberg correction, which keeps the correction conservative.

    What the test asks: whether the difference on *this* held-out data is reproducible across
    initialisations. The held-out responses are the same for every seed, so a voxel that neither model
    predicts (pure noise) still shows a difference that every seed reproduces whenever the two models'
    predictions differ, and with enough seeds it is significant. Measured on the simulation: 1,837 of
    3,666 voxels significant at q = .01 with five seeds, 98 % of them noise voxels. Pass ``tested``
    (from :func:`predictable_voxels`) to test only the voxels the models predict above chance; the
    others are then not hypotheses (``p`` and ``t`` NaN, never significant).

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
    tested : ndarray of bool, shape (n_voxels,), optional
        The voxels to test (default: all).
    """
    a, b = _pair(a, b)
    if a.shape[0] < 2:
        raise InputError("a", "n_seeds", "at least 2 seeds (initialisations) for a t-test across seeds",
                         f"{a.shape[0]} seed")
    if tested is None:
        tested = np.ones(a.shape[1], dtype=bool)
    tested = np.asarray(tested)
    if tested.dtype != bool or tested.shape != (a.shape[1],):
        raise InputError("tested", "shape", f"a boolean mask of {a.shape[1]} voxels",
                         f"dtype {tested.dtype}, shape {tested.shape}")
    difference = b - a
    constant = np.all(difference == difference[:1], axis=0)
    t = np.full(a.shape[1], np.nan)
    p = np.where(tested, 1.0, np.nan)
    varying = ~constant & tested
    if varying.any():
        result = stats.ttest_rel(b[:, varying], a[:, varying], axis=0)
        t[varying], p[varying] = result.statistic, result.pvalue
    return pd.DataFrame({"voxel": np.arange(a.shape[1]), "difference": difference.mean(axis=0), "t": t, "p": p,
                         "significant": benjamini_hochberg(p, q)})


def predictable_voxels(observed: np.ndarray, nulls: list[np.ndarray], q: float = 0.01) -> pd.DataFrame:
    """Which voxels the models predict above chance, pooled over held-out runs, with BH FDR.

    Per held-out run ``r``, ``observed[r]`` is a voxel's accuracy (the mean over the models and seeds of a
    comparison) and ``nulls[r]`` the same mean with the predictions circularly shifted in time
    (:func:`brainalign.metrics.kvsk.kvsk_shift_null`). Under the null (predictions unrelated to the
    responses) every voxel of a run shares one chance distribution, so its mean ``mu_r`` and variance
    ``var_r`` are pooled over voxels and shifts, which keeps them stable with few shifts. Then

        z = sum_r (observed[r] - mu_r) / sqrt(sum_r var_r + rho * sum_{r != s} sqrt(var_r var_s)),

    one-sided (above chance), normal p-values, Benjamini-Hochberg at ``q`` over voxels.

    ``rho`` is the correlation of a voxel's chance deviations between held-out runs. The runs' data are
    independent, but their predictions are not: each run's model trained on the other runs, so a voxel nobody
    predicts owes each run's score partly to the chance agreement between that run's noise and the other
    runs', through the models fitted on them, and the same agreement enters both runs' scores: the voxel is
    above (or below) chance in every run together. A shift null sees one run at a time and cannot show it.
    Measured on the simulation (four held-out runs): about 0.2 on the noise voxels, which with ``rho = 0``
    spreads their z to a standard deviation of 1.2 to 1.25 and puts 2 to 6 % noise voxels among the
    discoveries at q = .01 (docs/science.md). It is estimated from the run-to-run differences over all voxels,
    ``rho = 1 - mean_{r < s} var_voxels(d_r - d_s) / (var_r + var_s)`` (``d_r = observed[r] - mu_r``; a
    difference is blind to a voxel's signal, which is the same in both runs; :func:`run_correlation`), and
    floored at 0: never more liberal than independent runs. Voxels predicted well in every run differ less
    between runs than chance does, which raises the estimate: the test then errs conservative.

    Why a map needs it: a t-test across seeds (:func:`voxel_ttest`) holds the held-out data fixed, so it
    also finds the reproducible differences of voxels neither model predicts. Testing only predictable
    voxels is the usual practice of encoding studies and keeps the map's discoveries among the voxels that
    carry signal (tested against the simulation's ground truth).

    Parameters
    ----------
    observed : ndarray of shape (n_runs, n_voxels)
        Per held-out run, the mean accuracy of the comparison's models and seeds.
    nulls : list of n_runs ndarrays of shape (n_shifts_r, n_voxels)
        Per held-out run, the same mean under circular shifts.
    q : float
        False discovery rate over voxels.

    Returns
    -------
    DataFrame with one row per voxel: ``voxel``, ``z``, ``p`` and ``predictable`` (bool).
    """
    observed = np.asarray(observed, dtype=np.float64)
    if observed.ndim != 2 or observed.shape[0] < 1 or observed.shape[1] < 1:
        raise InputError("observed", "shape", "a 2-D array (n_runs, n_voxels)", f"shape {np.shape(observed)}")
    if len(nulls) != observed.shape[0]:
        raise InputError("nulls", "length", f"one null per held-out run ({observed.shape[0]})",
                         f"{len(nulls)} nulls")
    deviations, variances = np.empty_like(observed), np.empty(len(nulls))
    for run, null in enumerate(nulls):
        null = np.asarray(null, dtype=np.float64)
        if null.ndim != 2 or null.shape[1] != observed.shape[1] or null.shape[0] < 2:
            raise InputError("nulls", f"run {run}", f"an array (n_shifts >= 2, {observed.shape[1]} voxels)",
                             f"shape {null.shape}")
        deviations[run] = observed[run] - null.mean()
        variances[run] = null.var(ddof=1)
    rho = run_correlation(deviations, variances)
    variance = variances.sum() + rho * (np.sqrt(variances).sum() ** 2 - variances.sum())
    z = deviations.sum(axis=0) / np.sqrt(variance) if variance > 0 else np.zeros(observed.shape[1])
    return _above_zero(z, q)


def run_correlation(deviations: np.ndarray, variances: np.ndarray) -> float:
    """The correlation of chance deviations between held-out runs (:func:`predictable_voxels`), at least 0.

    ``deviations[r]``: per voxel, run ``r``'s accuracy minus its chance level; ``variances[r]``: the chance
    variance of run ``r``. Under an exchangeable correlation ``rho``, ``var(d_r - d_s) = (var_r + var_s)
    (1 - rho)`` for equal variances; the estimate averages that over pairs of runs, over all voxels. 0 for
    one run or one voxel.
    """
    deviations = np.asarray(deviations, dtype=np.float64)
    n_runs, n_voxels = deviations.shape
    if n_runs < 2 or n_voxels < 2:
        return 0.0
    ratios = [np.var(deviations[r] - deviations[s], ddof=1) / (variances[r] + variances[s])
              for r in range(n_runs) for s in range(r + 1, n_runs) if variances[r] + variances[s] > 0]
    return max(0.0, 1.0 - float(np.mean(ratios))) if ratios else 0.0


def combined_predictable(z: np.ndarray, q: float = 0.01) -> pd.DataFrame:
    """Which voxels are predicted above chance on average over participants: Stouffer's z, with BH FDR.

    ``z[s]`` is participant ``s``'s z-statistic per voxel (:func:`predictable_voxels`), standard normal
    under the null; participants are independent data, so ``sum_s z[s] / sqrt(n)`` is too. One-sided
    (above chance), normal p-values, Benjamini-Hochberg at ``q`` over voxels. A voxel passes when the
    participants together show it above chance, which one participant's strong evidence can carry.

    Parameters
    ----------
    z : ndarray of shape (n_participants, n_voxels)
        Each participant's z per voxel, the voxels in one space (the same mask).
    q : float
        False discovery rate over voxels.

    Returns
    -------
    DataFrame with one row per voxel: ``voxel``, ``z`` (combined), ``p`` and ``predictable`` (bool).

    Examples
    --------
    >>> combined_predictable(np.array([[3.0, 0.0], [3.0, 0.0]]), q=0.05)["predictable"].tolist()
    [True, False]
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 1 or z.shape[1] < 1:
        raise InputError("z", "shape", "a 2-D array (n_participants, n_voxels)", f"shape {np.shape(z)}")
    if not np.all(np.isfinite(z)):
        raise InputError("z", "values", "finite z-statistics", f"{int(np.sum(~np.isfinite(z)))} NaN or inf")
    return _above_zero(z.sum(axis=0) / np.sqrt(z.shape[0]), q)


def _above_zero(z: np.ndarray, q: float) -> pd.DataFrame:
    """One-sided normal p-values of ``z`` and Benjamini-Hochberg at ``q``: the table of a chance test."""
    p = stats.norm.sf(z)
    return pd.DataFrame({"voxel": np.arange(len(z)), "z": z, "p": p, "predictable": benjamini_hochberg(p, q)})


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
