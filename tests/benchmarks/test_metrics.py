"""Brain-Score's metrics on plain arrays: hand-worked cases, a plain scikit-learn loop per neuroid and split,
the split construction, and the Futrell score and split-half ceiling by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, RidgeCV
from sklearn.model_selection import GroupKFold, ShuffleSplit

from brainalign.benchmarks.metrics import (METRICS, RIDGE_ALPHAS, brainscore_pearsonr, group_splits,
                                           linear_pearsonr, ridge_pearsonr, shuffle_splits, spearman_brown,
                                           split_half_ceiling, surprisal_score)
from brainalign.errors import ConfigError, InputError


def problem(seed=0, n_groups=20, per_group=5, n_features=6, n_neuroids=7):
    rng = np.random.default_rng(seed)
    n = n_groups * per_group
    x = rng.standard_normal((n, n_features))
    y = x @ rng.standard_normal((n_features, n_neuroids)) + 2.0 * rng.standard_normal((n, n_neuroids))
    return x, y, rng.permutation(n) + 100, np.repeat(np.arange(n_groups), per_group)


def test_registry_names_both_metrics():
    assert METRICS.names() == ["linear_pearsonr", "ridge_pearsonr"]
    with pytest.raises(ConfigError, match="linear_pearsonr, ridge_pearsonr"):
        METRICS.get("pearson")


def test_pearsonr_by_hand():
    # x = (1, 2, 3), y = (1, 3, 2): centred (−1, 0, 1), (−1, 1, 0); r = 1 / (√2 · √2) = 0.5.
    r = brainscore_pearsonr(np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]), np.array([[1.0, 5.0], [3.0, 5.0], [2.0, 5.0]]))
    assert r[0] == pytest.approx(1.0 / (np.sqrt(2) + 1e-8) ** 2, abs=1e-15)
    assert r[1] == 0.0  # a constant neuroid scores 0, not NaN (Brain-Score's 1e-8)


def test_perfectly_linear_neuroid_scores_one_and_a_reversed_one_minus_one():
    x, _, ids, _ = problem()
    y = np.column_stack([3.0 * x[:, 0] - x[:, 2] + 1.0, -(3.0 * x[:, 0] - x[:, 2]), x[:, 1]])
    result = linear_pearsonr(x, y, stimulus_ids=ids)
    assert np.allclose(result.per_split[:, 0], 1.0, atol=1e-7)
    assert np.allclose(result.per_split[:, 2], 1.0, atol=1e-7)
    # A fitted regression cannot reverse a neuroid; a reversed *prediction* scores −1.
    assert np.allclose(brainscore_pearsonr(-y[:, :1], y[:, :1]), -1.0, atol=1e-12)


def test_aggregation_by_hand_on_three_neuroids():
    x, y, ids, _ = problem(n_neuroids=3)
    result = linear_pearsonr(x, y, stimulus_ids=ids)
    medians = [sorted(row)[1] for row in result.per_split.tolist()]
    assert result.split_medians.tolist() == pytest.approx(medians, abs=0)
    assert result.score == pytest.approx(sum(medians) / len(medians), abs=1e-15)
    assert result.per_neuroid == pytest.approx([np.mean(result.per_split[:, j]) for j in range(3)], abs=1e-15)


def test_linear_equals_a_plain_sklearn_loop_per_neuroid():
    x, y, ids, _ = problem(seed=1)
    ours = linear_pearsonr(x, y, stimulus_ids=ids)
    splits = list(ShuffleSplit(10, train_size=0.9, random_state=1).split(x))
    for s, (train, test) in enumerate(splits):
        for j in range(y.shape[1]):
            prediction = LinearRegression().fit(x[train], y[train, j]).predict(x[test])
            assert ours.per_split[s, j] == pytest.approx(np.corrcoef(prediction, y[test, j])[0, 1], abs=1e-6)


def test_ridge_equals_sklearn_ridgecv_with_one_alpha_for_all_neuroids():
    x, y, _, groups = problem(seed=2, n_features=30)
    ours = ridge_pearsonr(x, y, groups=groups)
    splits = list(GroupKFold(10, shuffle=True, random_state=1234).split(x, groups=groups))
    for s, (train, test) in enumerate(splits):
        model = RidgeCV(alphas=RIDGE_ALPHAS).fit(x[train], y[train])  # efficient LOO, shared alpha
        assert ours.alphas[s] == model.alpha_
        for j in range(y.shape[1]):
            prediction = model.predict(x[test])[:, j]
            assert ours.per_split[s, j] == pytest.approx(np.corrcoef(prediction, y[test, j])[0, 1], abs=1e-6)


def test_ridge_more_features_than_samples_matches_sklearn():
    x, y, _, groups = problem(seed=3, n_features=150)
    ours = ridge_pearsonr(x, y, groups=groups)
    train, test = ours.train_indices[0], ours.test_indices[0]
    model = RidgeCV(alphas=RIDGE_ALPHAS).fit(x[train], y[train])
    expected = [np.corrcoef(model.predict(x[test])[:, j], y[test, j])[0, 1] for j in range(y.shape[1])]
    assert ours.per_split[0] == pytest.approx(expected, abs=1e-6)


def test_shuffle_splits_follow_the_row_order_and_cover_every_stimulus():
    ids = np.array([7, 3, 9, 1, 5, 2, 8, 4, 6, 0])
    splits = shuffle_splits(ids, n_splits=3, train_size=0.7, random_state=1)
    for (train, test), (ref_train, ref_test) in zip(splits, ShuffleSplit(3, train_size=0.7, random_state=1).split(ids)):
        assert sorted(train) == sorted(ref_train) and sorted(test) == sorted(ref_test)
        assert set(train).isdisjoint(test) and len(train) + len(test) == 10
    # A repeated stimulus id goes wherever any of its presentations was drawn.
    repeated = np.array([0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
    for train, test in shuffle_splits(repeated, n_splits=5, train_size=0.5, random_state=0):
        assert (0 in train) == (1 in train) and (0 in test) == (1 in test)


def test_group_splits_never_straddle_a_group():
    _, _, _, groups = problem()
    splits = group_splits(groups)
    assert len(splits) == 10
    tested = np.concatenate([test for _, test in splits])
    assert sorted(tested) == list(range(groups.size))  # every row is tested exactly once
    for train, test in splits:
        assert set(groups[train]).isdisjoint(groups[test])
    with pytest.raises(InputError, match="at least n_splits = 10 distinct groups"):
        group_splits(np.repeat(np.arange(5), 4))


def test_bad_inputs_name_the_field():
    x, y, ids, _ = problem()
    with pytest.raises(InputError, match="responses: n_presentations"):
        linear_pearsonr(x, y[:-1], stimulus_ids=ids)
    with pytest.raises(ConfigError, match="group splits need groups"):
        ridge_pearsonr(x, y, stimulus_ids=ids)
    with pytest.raises(InputError, match="stimulus_ids: length"):
        linear_pearsonr(x, y, stimulus_ids=ids[:-1])


def test_spearman_brown_by_hand():
    assert spearman_brown(0.5) == pytest.approx(2 * 0.5 / 1.5)
    assert spearman_brown(0.0) == 0.0 and spearman_brown(1.0) == 1.0
    assert spearman_brown(0.6, factor=3) == pytest.approx(1.8 / 2.2)


def test_split_half_ceiling_by_hand():
    rng = np.random.default_rng(0)
    rts = 300 + rng.gamma(2, 40, 50)[None, :] + rng.normal(0, 60, (6, 50))
    rts[0, 3] = np.nan
    value, per_split = split_half_ceiling(rts, n_splits=4, seed=0)
    draws = np.random.RandomState(0)
    expected = []
    for _ in range(4):
        first = draws.choice(6, size=3, replace=False)
        second = [i for i in range(6) if i not in first]
        a, b = np.nanmean(rts[first], axis=0), np.nanmean(rts[second], axis=0)
        r = abs(np.corrcoef(a, b)[0, 1])
        expected.append(2 * r / (1 + r))
    assert per_split == pytest.approx(expected, abs=1e-12)
    assert value == pytest.approx(np.median(expected), abs=1e-12)


def test_split_half_ceiling_of_noiseless_readers_is_one():
    rts = np.tile(np.linspace(200, 600, 30), (8, 1))
    value, _ = split_half_ceiling(rts)
    assert value == pytest.approx(1.0, abs=1e-12)


def test_surprisal_score_drops_first_words_and_nans_and_is_absolute():
    surprisal = np.array([50.0, 1.0, 2.0, 3.0, 40.0, 4.0, np.nan, 5.0])
    rt = np.array([0.0, 10.0, 8.0, 6.0, 0.0, 4.0, 1.0, 2.0])
    first = np.array([True, False, False, False, True, False, False, False])
    # Left: surprisal 1..5 against RT 10, 8, 6, 4, 2: a perfect negative line, |r| = 1.
    assert surprisal_score(surprisal, rt, first) == pytest.approx(1.0, abs=1e-12)
