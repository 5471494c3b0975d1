"""Tests of RSA (``brainalign.decoding.rsa``) against hand cases and ``scipy.stats.spearmanr``."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

from brainalign.decoding.rsa import rdm, rsa_matrix, rsa_to_targets
from brainalign.errors import InputError


def test_rdm_by_hand_and_as_pdist(rng):
    points = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    # pairs (0,1), (0,2), (1,2): 5, 1, sqrt(9 + 9)
    np.testing.assert_allclose(rdm(points), [5.0, 1.0, np.sqrt(18.0)])
    np.testing.assert_allclose(rdm(points, "cityblock"), [7.0, 1.0, 6.0])
    x = rng.standard_normal((12, 5)).astype(np.float32)
    np.testing.assert_allclose(rdm(x), pdist(x.astype(np.float64)), rtol=1e-12)
    with pytest.raises(InputError, match="representations: values"):
        rdm(np.array([[0.0, np.nan], [1.0, 1.0]]))


def test_rsa_matrix_by_hand():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    table = rsa_matrix({"a": a, "monotone": a ** 3, "reversed": -a, "tied": np.array([1.0, 1.0, 2.0, 2.0])})
    assert list(table.index) == list(table.columns) == ["a", "monotone", "reversed", "tied"]
    assert table.loc["a", "monotone"] == pytest.approx(1.0)
    assert table.loc["a", "reversed"] == pytest.approx(-1.0)
    # ranks 1..4 against average ranks 1.5, 1.5, 3.5, 3.5: r = 4 / sqrt(5 * 4)
    assert table.loc["a", "tied"] == pytest.approx(4 / np.sqrt(20))
    assert (np.diag(table) == 1.0).all()
    assert rsa_matrix({"flat": np.ones(4), "a": a}).isna().loc["flat"].all()


def test_rsa_equals_scipy_spearman(rng):
    representations = {f"checkpoint {i}": rng.standard_normal((15, 4)) for i in range(5)}
    rdms = {name: rdm(x) for name, x in representations.items()}
    rdms["rounded"] = np.round(rdms["checkpoint 0"], 1)   # ties
    table = rsa_matrix(rdms)
    names = list(rdms)
    for i in names:
        for j in names:
            expected = 1.0 if i == j else spearmanr(rdms[i], rdms[j]).statistic
            assert table.loc[i, j] == pytest.approx(expected, abs=1e-12)
    assert np.array_equal(table.to_numpy(), table.to_numpy().T)

    participants = {f"P{i}": rdm(rng.standard_normal((15, 7))) for i in range(3)}
    rectangular = rsa_to_targets(rdms, participants)
    assert rectangular.shape == (6, 3)
    assert list(rectangular.columns) == ["P0", "P1", "P2"]
    for i in names:
        for j in participants:
            assert rectangular.loc[i, j] == pytest.approx(spearmanr(rdms[i], participants[j]).statistic, abs=1e-12)


def test_rdms_of_different_lengths_are_refused(rng):
    with pytest.raises(InputError, match=r"rdms\[b\]: shape: expected a condensed RDM of 10"):
        rsa_matrix({"a": rng.random(10), "b": rng.random(6)})
    with pytest.raises(InputError, match="targets: length"):
        rsa_to_targets({"a": rng.random(10)}, {"P1": rng.random(6)})
