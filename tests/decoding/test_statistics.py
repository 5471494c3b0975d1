"""Tests of the decoding statistics (``brainalign.decoding.statistics``) against hand computations and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from brainalign.decoding.statistics import benjamini_hochberg, compare_to_pretrained, mean_se
from brainalign.errors import ConfigError, InputError


def test_benjamini_hochberg_by_hand():
    # sorted: 0.01 (1), 0.03 (2), 0.04 (3), 0.20 (4) -> m p / i = 0.04, 0.06, 0.0533, 0.20;
    # running minimum from the largest: 0.20, 0.0533, 0.0533, 0.04
    np.testing.assert_allclose(benjamini_hochberg([0.01, 0.04, 0.03, 0.20]), [0.04, 0.16 / 3, 0.16 / 3, 0.20])
    np.testing.assert_allclose(benjamini_hochberg([0.9, 0.8]), [0.9, 0.9])        # min(2 * 0.8 / 1, 0.9)
    np.testing.assert_allclose(benjamini_hochberg([0.6, 0.7, 0.8]), [0.8, 0.8, 0.8])
    assert benjamini_hochberg([0.5]).tolist() == [0.5]


def test_wilcoxon_by_hand_and_as_scipy():
    pretrained = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    better = pretrained - np.array([1.0, 2.0, 3.0, 4.0, 5.0])      # every sentence decoded better
    mixed = pretrained + np.array([-1.0, 2.0, -3.0, 4.0, -5.5])
    table = compare_to_pretrained({"better": better, "mixed": mixed, "same": pretrained}, pretrained)
    assert table["task"].tolist() == ["better", "mixed", "same"]
    better_row = table.iloc[0]
    # all 5 differences one sign: W = 0, exact two-sided p = 2 / 2^5
    assert better_row["statistic"] == 0 and better_row["p"] == pytest.approx(2 / 32)
    assert better_row["mar_final"] == 27.0 and better_row["mar_pretrained"] == 30.0
    assert better_row["difference"] == -3.0
    reference = stats.wilcoxon(mixed, pretrained)
    # negative ranks 1 + 3 + 5 = 9, positive 2 + 4 = 6: W = min = 6
    assert table.iloc[1]["statistic"] == reference.statistic == 6
    assert table.iloc[1]["p"] == pytest.approx(reference.pvalue)
    assert table.iloc[2]["p"] == 1.0 and table.iloc[2]["statistic"] == 0
    np.testing.assert_allclose(table["p_bh"], benjamini_hochberg(table["p"]))
    assert table["significant"].tolist() == [False, False, False]   # 0.0625 * 3 / 1 > 0.05
    assert compare_to_pretrained({"better": better}, pretrained, q=0.1)["significant"].tolist() == [True]


def test_ttest_and_errors():
    rng = np.random.default_rng(0)
    pretrained, final = rng.random(30) * 100, rng.random(30) * 100
    row = compare_to_pretrained({"t": final}, pretrained, method="ttest").iloc[0]
    reference = stats.ttest_rel(final, pretrained)
    assert row["statistic"] == pytest.approx(reference.statistic) and row["p"] == pytest.approx(reference.pvalue)
    with pytest.raises(ConfigError, match="expected one of ttest, wilcoxon, found 'sign'"):
        compare_to_pretrained({"t": final}, pretrained, method="sign")
    with pytest.raises(InputError, match=r"ranks_final\[t\]: shape: expected \(30,\)"):
        compare_to_pretrained({"t": final[:29]}, pretrained)


def test_mean_se_by_hand():
    mean, se = mean_se(np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 10.0], [4.0, 10.0]]), axis=0)
    # sd of 1..4 (ddof 1) = sqrt(5 / 3); se = sd / 2
    np.testing.assert_allclose(mean, [2.5, 10.0])
    np.testing.assert_allclose(se, [np.sqrt(5 / 3) / 2, 0.0])
    with pytest.raises(InputError):
        mean_se(np.array([1.0]))
