"""Ridge probes: planted layers found, noise not, scores equal a scikit-learn reference, the null is within-run,
seeded and honest, and nothing is scored in-sample."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import Ridge

from brainalign.errors import ConfigError, InputError
from brainalign.probing.probes import COLUMNS, probe_scores, within_run_permutations

ALPHAS = np.logspace(-2, 6, 9)


def problem(n_layers=4, per_run=40, n_runs=4, width=10, seed=0):
    rng = np.random.default_rng(seed)
    runs = np.repeat(np.arange(1, n_runs + 1), per_run)
    representations = rng.standard_normal((n_layers, len(runs), width)) * rng.uniform(0.5, 3, width) + 1.0
    return rng, representations, runs


def test_linear_feature_peaks_at_its_layer_and_survives_correction():
    rng, reps, runs = problem()
    # Layer 2 (index 1) carries the feature; the other layers are independent of it.
    linear = reps[1] @ rng.standard_normal(10) + 2.0 * rng.standard_normal(len(runs))
    targets = np.column_stack([linear, rng.standard_normal(len(runs))])
    table = probe_scores(reps, targets, runs, ["planted", "noise"], alphas=ALPHAS, n_permutations=200, seed=1,
                         progress=False)
    assert list(table.columns) == list(COLUMNS) and len(table) == 8
    planted = table[table.feature == "planted"].set_index("layer")
    assert planted["r2"].idxmax() == 2 and planted.loc[2, "r2"] > 0.5 and planted.loc[2, "r"] > 0.7
    assert planted.loc[2, "p_value"] == pytest.approx(1 / 201) and planted.loc[2, "significant"]
    assert (planted.drop(index=2)["r2"] < 0.05).all() and not planted.drop(index=2)["significant"].any()
    assert not table[table.feature == "noise"]["significant"].any()
    assert (table["kind"] == "embedding").all() and (table["n_permutations"] == 200).all()


def test_noise_features_are_not_significant_and_their_p_values_are_uniform():
    rng, reps, runs = problem(n_layers=1, width=6)
    targets = rng.standard_normal((len(runs), 60))
    table = probe_scores(reps, targets, runs, [f"noise/{i}" for i in range(60)], alphas=ALPHAS,
                         n_permutations=99, seed=3, progress=False)
    assert not table["significant"].any()
    assert stats.kstest(table["p_value"], "uniform").pvalue > 0.01
    assert (table["p_value"] < 0.05).mean() < 0.15
    assert table["null_mean"].lt(0).all()  # held-out R^2 of nothing is below 0 (module docstring)


def reference_scores(x: np.ndarray, y: np.ndarray, runs: np.ndarray, alphas: np.ndarray):
    """One feature, one layer, the slow way: per outer run, z-score on the training runs (population std), centre
    the feature on them, choose the penalty by the lowest mean inner-fold squared error of scikit-learn's Ridge
    (no intercept), refit on all training runs, predict the held-out run; score the pooled predictions."""
    predictions = np.zeros_like(y)
    chosen = []
    for run in np.unique(runs):
        train, test = runs != run, runs == run
        mean, sd = x[train].mean(0), x[train].std(0)
        xs = (x - mean) / sd
        yc = y - y[train].mean()
        xt, yt, rt = xs[train], yc[train], runs[train]
        losses = []
        for alpha in alphas:
            errors = [np.mean((yt[rt == inner] - Ridge(alpha=alpha, fit_intercept=False)
                               .fit(xt[rt != inner], yt[rt != inner]).predict(xt[rt == inner])) ** 2)
                      for inner in np.unique(rt)]
            losses.append(np.mean(errors))
        best = alphas[int(np.argmin(losses))]
        chosen.append(best)
        predictions[test] = Ridge(alpha=best, fit_intercept=False).fit(xt, yt).predict(xs[test]) + y[train].mean()
    r2 = 1 - ((y - predictions) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    return r2, np.corrcoef(y, predictions)[0, 1], np.median(chosen), chosen


@pytest.mark.parametrize("width", [8, 150])  # himalaya's primal and kernel solvers (90 training rows)
def test_scores_equal_a_slow_scikit_learn_reference(width):
    rng, reps, runs = problem(n_layers=2, per_run=30, width=width, seed=width)
    weights = rng.standard_normal((width, 4)) * np.array([0.0, 0.05, 0.3, 2.0]) * np.sqrt(8 / width)
    targets = reps[0] @ weights + rng.standard_normal((len(runs), 4))  # from nothing to a lot of signal
    # A few permutations ride along: the real columns' scores must not depend on them.
    table = probe_scores(reps, targets, runs, list("abcd"), alphas=ALPHAS, n_permutations=3, dtype="float64",
                         progress=False)
    penalties = []
    for row in table.itertuples():
        r2, r, alpha, chosen = reference_scores(reps[row.layer - 1], targets[:, "abcd".index(row.feature)], runs,
                                                ALPHAS)
        penalties += chosen
        assert row.r2 == pytest.approx(r2, abs=1e-6) and row.r == pytest.approx(r, abs=1e-6)
        assert row.alpha_median == pytest.approx(alpha, rel=1e-12)
    assert len(set(penalties)) >= 3  # the features chose different penalties: one shared penalty would fail


def test_permutations_stay_within_runs_and_follow_the_seed():
    runs = np.array([3, 3, 1, 1, 1, 2, 2, 2, 2, 3, 1, 2])
    orders = within_run_permutations(runs, 50, seed=7)
    assert orders.shape == (50, 12)
    for order in orders:
        np.testing.assert_array_equal(runs[order], runs)
        for run in (1, 2, 3):  # each run's rows are a rearrangement of themselves
            rows = np.flatnonzero(runs == run)
            np.testing.assert_array_equal(np.sort(order[rows]), rows)
    assert (orders != np.arange(12)).any(axis=1).mean() > 0.9
    np.testing.assert_array_equal(orders, within_run_permutations(runs, 50, seed=7))
    assert not np.array_equal(orders, within_run_permutations(runs, 50, seed=8))


def test_null_is_the_permuted_targets_probed_alike_and_seeded():
    rng, reps, runs = problem(n_layers=2, per_run=20, width=5)
    targets = np.column_stack([reps[0] @ rng.standard_normal(5) * 0.3 + rng.standard_normal(len(runs)),
                               rng.standard_normal(len(runs)), rng.standard_normal(len(runs)) ** 2])
    names = ["x", "y", "z"]
    # columns_per_solve 7: two copies per solve, so the null is assembled from several solves.
    table = probe_scores(reps, targets, runs, names, alphas=ALPHAS, n_permutations=20, seed=5, dtype="float64",
                         columns_per_solve=7, progress=False)
    orders = within_run_permutations(runs, 20, seed=5)
    permuted = np.concatenate([targets[order] for order in orders], axis=1)  # copy by copy
    copies = probe_scores(reps, permuted, runs, [f"{k}/{f}" for k in range(20) for f in names], alphas=ALPHAS,
                          n_permutations=0, dtype="float64", progress=False)
    null = copies["r2"].to_numpy().reshape(2, 20, 3)
    expected_p = (1 + (null >= table["r2"].to_numpy().reshape(2, 1, 3)).sum(1)) / 21
    np.testing.assert_allclose(table["p_value"].to_numpy().reshape(2, 3), expected_p)
    np.testing.assert_allclose(table["null_mean"].to_numpy().reshape(2, 3), null.mean(1), atol=1e-9)
    np.testing.assert_allclose(table["null_q95"].to_numpy().reshape(2, 3), np.quantile(null, 0.95, axis=1),
                               atol=1e-9)
    again = probe_scores(reps, targets, runs, names, alphas=ALPHAS, n_permutations=20, seed=5, dtype="float64",
                         progress=False)
    np.testing.assert_array_equal(again["p_value"], table["p_value"])
    other = probe_scores(reps, targets, runs, names, alphas=ALPHAS, n_permutations=20, seed=6, dtype="float64",
                         progress=False)
    assert not np.array_equal(other["null_mean"], table["null_mean"])


def test_shuffled_targets_score_nothing_held_out_though_in_sample_they_do():
    rng, reps, runs = problem(n_layers=1, width=60)
    linear = reps[0] @ rng.standard_normal(60)
    shuffled = rng.permutation(linear)  # the pairing with the representation is gone
    table = probe_scores(reps, shuffled[:, None], runs, ["shuffled"], alphas=ALPHAS, n_permutations=0,
                         progress=False)
    assert table.loc[0, "r2"] < 0.02
    in_sample = Ridge(alpha=1.0).fit(reps[0], shuffled).score(reps[0], shuffled)
    assert in_sample > 0.25  # what scoring on the fitted rows would have reported
    unshuffled = probe_scores(reps, linear[:, None], runs, ["linear"], alphas=ALPHAS, n_permutations=0,
                              progress=False)
    assert unshuffled.loc[0, "r2"] > 0.95


def test_constant_features_are_scored_nan_with_a_warning_and_left_out_of_the_correction(caplog):
    rng, reps, runs = problem(n_layers=2, width=6)
    signal = reps[1] @ rng.standard_normal(6) + rng.standard_normal(len(runs))
    one_run = (runs == 2).astype(float)  # constant over the training runs of the fold that holds out run 2
    targets = np.column_stack([signal, one_run, np.full(len(runs), 3.0), rng.standard_normal(len(runs))])
    names = ["signal", "one_run", "constant", "noise"]
    with caplog.at_level(logging.WARNING, logger="brainalign.probing.probes"):
        table = probe_scores(reps, targets, runs, names, alphas=ALPHAS, n_permutations=50, progress=False)
    assert "2 feature(s) constant" in caplog.text and "one_run, constant" in caplog.text
    dropped = table[table.feature.isin(["one_run", "constant"])]
    assert dropped[["r2", "r", "p_value", "p_fdr", "null_mean"]].isna().all().all()
    assert not dropped["significant"].any()
    without = probe_scores(reps, targets[:, [0, 3]], runs, ["signal", "noise"], alphas=ALPHAS, n_permutations=50,
                           progress=False)
    kept = table[table.feature.isin(["signal", "noise"])].reset_index(drop=True)
    np.testing.assert_allclose(kept["r2"], without["r2"], atol=1e-6)
    np.testing.assert_array_equal(kept["p_value"], without["p_value"])
    np.testing.assert_allclose(kept["p_fdr"], without["p_fdr"])  # BH over the 4 tested pairs, not 8


def test_without_permutations_there_is_no_p_value():
    rng, reps, runs = problem(n_layers=1, width=4)
    table = probe_scores(reps, rng.standard_normal((len(runs), 2)), runs, ["a", "b"], alphas=ALPHAS,
                         n_permutations=0, kind="attention", progress=False)
    assert table[["p_value", "p_fdr", "null_mean"]].isna().all().all() and not table["significant"].any()
    assert np.isfinite(table["r2"]).all() and (table["kind"] == "attention").all()


@pytest.mark.parametrize("change, error, message", [
    (lambda a: {**a, "representations": a["representations"][0]}, InputError, "representations: expected an array"),
    (lambda a: {**a, "targets": a["targets"][:-1]}, InputError, "targets: expected an array"),
    (lambda a: {**a, "targets": np.where(np.arange(160)[:, None] == 5, np.nan, a["targets"])}, InputError,
     "targets: expected finite numbers, found 2 NaN"),
    (lambda a: {**a, "runs": np.repeat([1, 2], 80)}, InputError, "runs: expected at least 3 runs"),
    (lambda a: {**a, "runs": a["runs"][:-1]}, InputError, "runs: expected one run label per segment"),
    (lambda a: {**a, "names": ["a", "a"]}, InputError, "names: expected 2 distinct feature names"),
    (lambda a: {**a, "n_permutations": -1}, ConfigError, "n_permutations"),
    (lambda a: {**a, "alphas": [0.0, 1.0]}, ConfigError, "alphas"),
    (lambda a: {**a, "q": 1.5}, ConfigError, "q: expected"),
])
def test_bad_input_fails_with_one_message(change, error, message):
    rng, reps, runs = problem(n_layers=1, width=4)
    arguments = {"representations": reps, "targets": rng.standard_normal((len(runs), 2)), "runs": runs,
                 "names": ["a", "b"], "n_permutations": 0}
    with pytest.raises(error, match=message):
        probe_scores(**change(arguments), progress=False)
