"""Did fine-tuning change decoding? Paired tests of per-sentence ranks against the pretrained encoder.

Gauthier & Levy (2019) compared, per fine-tuning task, the decoding ranks at the final checkpoint with the
pretrained model's by Wilcoxon signed-rank tests. :func:`compare_to_pretrained` does that for every task at once:
the caller averages each sentence's rank over runs and participants first, so the test is paired over
sentences; the p values are corrected across tasks by Benjamini-Hochberg (:func:`benjamini_hochberg`, the
``fdr_bh`` of statsmodels' ``multipletests``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from scipy import stats

from brainalign.errors import ConfigError, InputError
from brainalign.registry import Registry

#: Paired two-sided tests: ``(final, pretrained) -> (statistic, p)``.
PAIRED_TESTS: Registry[Callable[[np.ndarray, np.ndarray], tuple[float, float]]] = Registry(
    "paired test", "decoding.statistics.method")


@PAIRED_TESTS.register("wilcoxon")
def wilcoxon(final: np.ndarray, pretrained: np.ndarray) -> tuple[float, float]:
    """scipy's two-sided Wilcoxon signed-rank test with its defaults (zero differences dropped, exact p for
    small samples without ties); no difference at all gives statistic 0 and p = 1."""
    if np.all(final == pretrained):
        return 0.0, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.wilcoxon(final, pretrained, alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


@PAIRED_TESTS.register("ttest")
def paired_ttest(final: np.ndarray, pretrained: np.ndarray) -> tuple[float, float]:
    """scipy's two-sided paired t test; no difference at all gives statistic 0 and p = 1."""
    if np.all(final == pretrained):
        return 0.0, 1.0
    result = stats.ttest_rel(final, pretrained, alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p values (scipy's ``false_discovery_control``, ``fdr_bh`` of statsmodels):
    with the ``m`` p values sorted ascending, ``p_(i)`` becomes ``min over j >= i of m p_(j) / j``, at most 1."""
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if p.size == 0:
        return p.copy()
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise InputError("p values", "values", "numbers in [0, 1]", str(p.tolist()))
    return stats.false_discovery_control(p, method="bh")


def compare_to_pretrained(ranks_final: Mapping[str, np.ndarray], ranks_pretrained: np.ndarray,
                          method: str = "wilcoxon", q: float = 0.05) -> pd.DataFrame:
    """Per task, a paired two-sided test of the final checkpoint's per-sentence ranks against the pretrained's.

    Parameters
    ----------
    ranks_final : mapping of task name to ndarray of shape (n_sentences,)
        Each sentence's rank at the task's final checkpoint, averaged over runs and participants.
    ranks_pretrained : ndarray of shape (n_sentences,)
        The pretrained encoder's per-sentence ranks, averaged the same way.
    method : str
        A :data:`PAIRED_TESTS` name: ``wilcoxon`` (the paper) or ``ttest``.
    q : float
        The false discovery rate of ``significant``.

    Returns
    -------
    DataFrame
        One row per task, in the mapping's order: ``task``, ``mar_final``, ``mar_pretrained``, ``difference``
        (final minus pretrained; negative = fine-tuning decoded better), ``statistic``, ``p``, ``p_bh``
        (Benjamini-Hochberg across the tasks) and ``significant`` (``p_bh < q``).
    """
    test = PAIRED_TESTS.get(method)
    if not 0 < q < 1:
        raise ConfigError(f"decoding.statistics.q: expected a false discovery rate in (0, 1), found {q!r}")
    pretrained = _ranks(ranks_pretrained, "ranks_pretrained")
    if not ranks_final:
        raise InputError("ranks_final", "length", "at least one task", "none")
    rows = []
    for task, values in ranks_final.items():
        final = _ranks(values, f"ranks_final[{task}]", pretrained.size)
        statistic, p = test(final, pretrained)
        rows.append({"task": str(task), "mar_final": float(final.mean()), "mar_pretrained": float(pretrained.mean()),
                     "difference": float(final.mean() - pretrained.mean()), "statistic": statistic, "p": p})
    table = pd.DataFrame(rows)
    table["p_bh"] = benjamini_hochberg(table["p"].to_numpy())
    table["significant"] = table["p_bh"] < q
    return table


def mean_se(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error ``sd / sqrt(n)`` (``ddof=1``) along ``axis``."""
    array = np.asarray(values, dtype=np.float64)
    n = array.shape[axis]
    if n < 2:
        raise InputError("values", f"length along axis {axis}", "at least 2 values for a standard error", str(n))
    return array.mean(axis=axis), array.std(axis=axis, ddof=1) / np.sqrt(n)


def _ranks(values: np.ndarray, source: str, n: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or (n is not None and array.size != n) or array.size < 2:
        expected = f"({n},), one rank per sentence" if n is not None else "a 1-D array of >= 2 sentences' ranks"
        raise InputError(source, "shape", expected, str(array.shape))
    if not np.isfinite(array).all():
        raise InputError(source, "values", "finite ranks", "NaN or infinite values")
    return array
