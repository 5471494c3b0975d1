"""Committing a layer on the selection part and scoring it on the test part: whole groups, no leaks."""

from __future__ import annotations

import numpy as np
import pytest

from brainalign.benchmarks.metrics import ridge_pearsonr
from brainalign.benchmarks.scoring import benchmark_metric, score_layers, selection_mask
from brainalign.errors import ConfigError, InputError


def test_selection_takes_whole_groups_in_the_asked_share():
    groups = np.repeat(np.arange(30), 4)
    mask = selection_mask(groups, 1 / 3, seed=0)
    chosen = np.unique(groups[mask])
    assert chosen.size == 10  # round(30 / 3)
    for g in range(30):  # a group is all in or all out
        assert mask[groups == g].all() or not mask[groups == g].any()
    assert np.array_equal(mask, selection_mask(groups, 1 / 3, seed=0))
    assert not np.array_equal(mask, selection_mask(groups, 1 / 3, seed=1))


def test_selection_keeps_two_groups_on_each_side_and_refuses_bad_shares():
    groups = np.repeat(np.arange(5), 3)
    assert np.unique(groups[selection_mask(groups, 0.01, 0)]).size == 2
    assert np.unique(groups[~selection_mask(groups, 0.99, 0)]).size == 2
    with pytest.raises(ConfigError, match="selection_fraction"):
        selection_mask(groups, 1.0, 0)
    with pytest.raises(InputError, match="at least 4 groups"):
        selection_mask(np.repeat(np.arange(3), 3), 0.5, 0)


def _planted(rng, n_groups=40, per_group=6, n_layers=4, width=6, good=2, n_neuroids=20):
    n = n_groups * per_group
    groups = np.repeat(np.arange(n_groups), per_group)
    activations = rng.standard_normal((n_layers, n, width))
    responses = activations[good] @ rng.standard_normal((width, n_neuroids)) + 0.8 * rng.standard_normal((n, n_neuroids))
    return activations, responses, np.array([f"s{i}" for i in range(n)]), groups


def test_the_layer_that_carries_the_signal_is_committed(rng):
    activations, responses, ids, groups = _planted(rng)
    selection = selection_mask(groups, 1 / 3, seed=0)
    result = score_layers(activations, responses, ids, groups, ridge_pearsonr, selection, progress=False)
    assert result.committed_layer == 2
    assert result.score() > 0.6
    others = [result.score(layer) for layer in (0, 1, 3)]
    assert max(np.abs(others)) < 0.2
    # The test score is the metric on the test rows alone, computed here independently.
    direct = ridge_pearsonr(activations[2][~selection], responses[~selection], stimulus_ids=ids[~selection],
                            groups=groups[~selection])
    assert result.score() == pytest.approx(direct.score, abs=1e-12)
    np.testing.assert_allclose(result.per_neuroid[2], direct.per_neuroid, atol=1e-12)


def test_the_test_part_never_reaches_the_layer_choice_and_vice_versa(rng):
    """Planting a strong signal in layer 3 of the TEST rows only must not move the committed layer, and
    scrambling the selection rows must not move any test score."""
    activations, responses, ids, groups = _planted(rng)
    selection = selection_mask(groups, 1 / 3, seed=0)
    base = score_layers(activations, responses, ids, groups, ridge_pearsonr, selection, progress=False)
    leaky = activations.copy()
    leaky[3][~selection] = responses[~selection][:, :6]  # layer 3 IS the test rows' responses
    planted = score_layers(leaky, responses, ids, groups, ridge_pearsonr, selection, progress=False)
    assert planted.committed_layer == base.committed_layer == 2
    # The planted test-only signal shows on the test part, and the choice never saw it.
    assert planted.score(3) > 0.5 > abs(base.score(3))
    scrambled = responses.copy()
    scrambled[selection] = rng.permutation(scrambled[selection])
    moved = score_layers(activations, scrambled, ids, groups, ridge_pearsonr, selection, progress=False)
    test = moved.table["part"] == "test"
    np.testing.assert_allclose(moved.table.loc[test, "score"], base.table.loc[test, "score"], atol=1e-12)


def test_group_metric_uses_one_fold_per_group_when_groups_are_few(rng):
    activations, responses, ids, groups = _planted(rng, n_groups=5, per_group=20)
    metric = benchmark_metric("ridge_pearsonr")
    result = metric(activations[2], responses, stimulus_ids=ids, groups=groups)
    assert len(result.test_indices) == 5
    for test in result.test_indices:  # one whole story per fold
        assert np.unique(groups[test]).size == 1
    with pytest.raises(InputError):
        ridge_pearsonr(activations[2], responses, stimulus_ids=ids, groups=groups)  # Brain-Score's 10 folds
