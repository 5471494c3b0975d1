"""Noise ceilings: the extrapolation fit against curve_fit, the extrapolation ceiling against a slow
Brain-Score-style loop and against a simulation's true ceiling, pooled prediction, explainable variance."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import curve_fit
from threadpoolctl import threadpool_limits

from brainalign.errors import InputError
from brainalign.metrics.ceiling import (explainable_variance, extrapolation_ceiling, fit_extrapolation,
                                        normalise, pooled_prediction_scores, true_ceiling)


@pytest.fixture(autouse=True)
def one_blas_thread():
    # The ridge fits here are on matrices of a few hundred rows: BLAS threads only add overhead, and on a
    # busy machine their spin-waiting slows the file down several-fold.
    with threadpool_limits(1):
        yield


def saturating(k, v0, tau):
    return v0 * (1 - np.exp(-k / tau))


def curve_fit_v0_tau(k, y):
    """The slow reference: one bounded scipy fit per curve, as Brain-Score fits each neuroid.

    The tolerances are tighter than scipy's defaults: with those, on the flat valleys of three-point
    curves that rise almost linearly, curve_fit stops up to 3e-3 short of the optimum in v0 (at a larger
    sum of squares than the library's fit).
    """
    params, _ = curve_fit(saturating, k, y, p0=[1, 1], bounds=([0, 1e-6], [1, np.inf]),
                          ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=10000)
    return params


def simulated_participants(seed, n_participants, n_runs, n_per_run, n_channels, n_responsive):
    """Shared stimulus features seen through each participant's own weights, with a per-channel SNR."""
    rng = np.random.default_rng(seed)
    n_samples = n_runs * n_per_run
    features = rng.standard_normal((n_samples, 5))
    snr = np.r_[np.linspace(0.5, 2.0, n_responsive), np.zeros(n_channels - n_responsive)]
    signals, responses = [], []
    for _ in range(n_participants):
        signal = features @ rng.standard_normal((5, n_channels))
        signal = signal / signal.std(axis=0) * snr
        signals.append(signal)
        responses.append(signal + rng.standard_normal((n_samples, n_channels)))
    return signals, responses, np.repeat(np.arange(n_runs), n_per_run)


# --- the extrapolation fit ---------------------------------------------------------------------------

def test_fit_extrapolation_recovers_noise_free_curves():
    k = np.arange(2, 11, dtype=float)
    v0 = np.array([0.3, 0.55, 0.9, 0.12])
    tau = np.array([0.7, 2.0, 6.0, 15.0])
    fitted_v0, fitted_tau = fit_extrapolation(k, saturating(k[None, :], v0[:, None], tau[:, None]))
    np.testing.assert_allclose(fitted_v0, v0, rtol=1e-7)
    np.testing.assert_allclose(fitted_tau, tau, rtol=1e-6)


def test_fit_extrapolation_matches_curve_fit_on_noisy_curves():
    rng = np.random.default_rng(7)
    k = np.arange(2, 11, dtype=float)
    v0 = rng.uniform(0.2, 0.8, 50)
    tau = rng.uniform(0.5, 5.0, 50)
    y = saturating(k[None, :], v0[:, None], tau[:, None]) + rng.normal(0, 0.01, (50, k.size))
    reference = np.array([curve_fit_v0_tau(k, row) for row in y])
    fitted_v0, fitted_tau = fit_extrapolation(k, y)
    np.testing.assert_allclose(fitted_v0, reference[:, 0], atol=1e-4)
    np.testing.assert_allclose(fitted_tau, reference[:, 1], rtol=1e-3)


def test_fit_extrapolation_keeps_leading_axes_and_isolates_bad_curves():
    k = np.array([2.0, 3.0, 4.0])
    y = np.broadcast_to(saturating(k, 0.4, 1.5), (2, 3, 3)).copy()
    y[1, 2, 0] = np.nan
    v0, tau = fit_extrapolation(k, y)
    assert v0.shape == tau.shape == (2, 3)
    assert np.isnan(v0[1, 2]) and np.isnan(tau[1, 2])
    np.testing.assert_allclose(np.delete(v0.ravel(), 5), 0.4, rtol=1e-7)


def test_fit_extrapolation_clips_v0():
    k = np.arange(2, 7, dtype=float)
    v0, _ = fit_extrapolation(k, np.stack([-0.1 * np.ones(5), 2.0 * np.ones(5)]))
    np.testing.assert_allclose(v0, [0.0, 1.0])


# --- the extrapolation ceiling ---------------------------------------------------------------------

def test_extrapolation_ceiling_matches_slow_brainscore_loop():
    _, responses, groups = simulated_participants(1, n_participants=4, n_runs=3, n_per_run=40, n_channels=6,
                                                  n_responsive=4)
    result = extrapolation_ceiling(responses, groups, n_bootstraps=40, seed=3, progress=False)
    assert list(result.k) == [2, 3, 4]
    assert {k: s.shape for k, s in result.scores.items()} == {2: (12, 6), 3: (12, 6), 4: (4, 6)}

    # Brain-Score's extrapolate_neuroid: per neuroid a fresh RandomState, per bootstrap per k a choice of
    # the scores with replacement, their mean, a curve_fit, and the median v0.
    reference = np.empty((40, 6))
    worse = np.zeros((40, 6), dtype=bool)  # where the reference's fit stopped at a larger sum of squares
    # Where a fit's tau lies far beyond the k observed, the curve is a straight line over them and v0, its
    # extrapolation, is not determined to 1e-4 by scores known to float32 rounding: both fits reach the
    # same sum of squares (the loop asserts it) at v0 that can differ by more.
    flat = np.zeros((40, 6), dtype=bool)
    k = result.k.astype(float)
    for channel in range(6):
        rng = np.random.RandomState(3)
        for b in range(40):
            means = np.array([np.mean(rng.choice(result.scores[n][:, channel], size=len(result.scores[n]),
                                                 replace=True)) for n in result.k])
            v0, tau = curve_fit_v0_tau(k, means)
            reference[b, channel] = v0
            ours_v0 = result.bootstrap_v0[b, channel]
            ours_tau = fit_extrapolation(k, means[None])[1][0]
            sse = lambda a, t: float(((means - saturating(k, a, t)) ** 2).sum())  # noqa: E731
            assert sse(ours_v0, ours_tau) <= sse(v0, tau) + 1e-12
            worse[b, channel] = sse(ours_v0, ours_tau) < sse(v0, tau) - 1e-9
            flat[b, channel] = min(tau, ours_tau) > 10 * k.max()
            if flat[b, channel] and not worse[b, channel]:  # what the data do determine: the curve over k
                np.testing.assert_allclose(saturating(k, ours_v0, ours_tau), saturating(k, v0, tau), atol=1e-6)
    # The same draws, the same optimum: equal wherever curve_fit found the optimum too (it can stall in the
    # flat valley of a three-point curve; the library's fit is then strictly better, checked above).
    assert worse.mean() <= 0.02
    np.testing.assert_allclose(result.bootstrap_v0[~(worse | flat)], reference[~(worse | flat)], atol=1e-4)
    assert result.value == pytest.approx(np.median(result.per_channel))


def test_extrapolation_ceiling_recovers_true_ceiling_of_a_simulation():
    signals, responses, groups = simulated_participants(0, n_participants=6, n_runs=3, n_per_run=60,
                                                        n_channels=30, n_responsive=20)
    result = extrapolation_ceiling(responses, groups, subsets_per_k=3, progress=False)
    assert [len(result.subsets[k]) for k in result.k] == [3, 3, 3, 3, 1]
    truth = np.mean([true_ceiling(s[:, :20], r[:, :20]) for s, r in zip(signals, responses)], axis=0)
    estimate = result.median_over(np.arange(20))
    assert abs(estimate / np.median(truth) - 1) < 0.15
    assert result.median_over(np.arange(20, 30)) < 0.1


def test_true_ceiling_is_columnwise_pearson_r():
    rng = np.random.default_rng(2)
    signal = rng.standard_normal((200, 3))
    responses = signal + rng.standard_normal((200, 3)) * [0.0, 1.0, 3.0]
    expected = [np.corrcoef(signal[:, c], responses[:, c])[0, 1] for c in range(3)]
    np.testing.assert_allclose(true_ceiling(signal, responses), expected, rtol=1e-12)
    assert true_ceiling(signal, responses)[0] == pytest.approx(1.0)


# --- pooled prediction -------------------------------------------------------------------------------

def test_pooled_prediction_of_a_linear_target_is_near_perfect():
    rng = np.random.default_rng(4)
    source = rng.standard_normal((120, 20))
    target = source @ rng.standard_normal((20, 5)) + 0.05 * rng.standard_normal((120, 5))
    r = pooled_prediction_scores(source, target, np.repeat([0, 1, 2], 40))
    assert r.shape == (5,)
    assert np.all(r > 0.98)


def test_pooled_prediction_of_noise_is_near_zero():
    rng = np.random.default_rng(5)
    r = pooled_prediction_scores(rng.standard_normal((120, 20)), rng.standard_normal((120, 30)),
                                 np.repeat([0, 1, 2], 40))
    assert abs(r.mean()) < 0.1
    assert np.all(np.abs(r) < 0.4)


def test_pooled_prediction_does_not_leak_held_out_rows():
    # With far more source channels than samples any target is an exact linear function of the source on
    # the rows it sees, so a held-out row that leaked into a fit (or into the penalty choice) would be
    # predicted well. Shuffled rows break the link between a sample's source and target.
    rng = np.random.default_rng(6)
    source = rng.standard_normal((120, 500))
    shuffled = (source @ rng.standard_normal((500, 20)))[rng.permutation(120)]
    in_sample = source @ np.linalg.lstsq(source, shuffled, rcond=None)[0]
    np.testing.assert_allclose(in_sample, shuffled, atol=1e-8)
    r = pooled_prediction_scores(source, shuffled, np.repeat([0, 1, 2], 40))
    assert abs(r.mean()) < 0.1
    assert np.all(np.abs(r) < 0.4)


# --- explainable variance and normalisation ----------------------------------------------------------

def test_explainable_variance_by_hand():
    identical = np.tile(np.array([[1.0, 5.0], [2.0, 3.0], [4.0, 4.5]]), (3, 1, 1))
    np.testing.assert_allclose(explainable_variance(identical), 1.0)
    # Two repeats [1, 2, 3, 4] and [2, 1, 4, 3]: r = 3 / 5 = 0.6; ev = (1 + r) / 2 = 0.8, corrected r.
    two = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 3.0]])[:, :, None]
    np.testing.assert_allclose(explainable_variance(two, bias_correction=False), [0.8])
    np.testing.assert_allclose(explainable_variance(two), [0.6])
    np.testing.assert_allclose(explainable_variance(np.stack([two[0], -two[0]])), [-1.0])


def test_explainable_variance_of_independent_noise_is_about_zero():
    noise = np.random.default_rng(8).standard_normal((4, 20000, 5))
    assert np.all(np.abs(explainable_variance(noise)) < 0.05)
    np.testing.assert_allclose(explainable_variance(noise, bias_correction=False), 0.25, atol=0.05)


def test_normalise_by_hand():
    assert normalise(0.3, 0.6) == pytest.approx(0.5)
    assert normalise(0.9, 0.6) == 1.0
    assert normalise(-0.1, 0.5) == 0.0
    assert np.isnan(normalise(0.2, 0.0)) and np.isnan(normalise(0.2, -0.1))
    np.testing.assert_allclose(normalise(np.array([0.1, 0.4, 0.2]), np.array([0.2, 0.2, np.nan])),
                               [0.5, 1.0, np.nan])


# --- bad input ----------------------------------------------------------------------------------------

def test_bad_input_names_the_field():
    rng = np.random.default_rng(9)
    groups = np.repeat([0, 1, 2], 10)
    three = [rng.standard_normal((30, 4)) for _ in range(3)]
    with pytest.raises(InputError, match="at least 3 participants") as error:
        extrapolation_ceiling(three[:2], groups, progress=False)
    assert error.value.field == "participants"
    with pytest.raises(InputError) as error:
        extrapolation_ceiling([three[0], three[1], rng.standard_normal((30, 5))], groups, progress=False)
    assert (error.value.source, error.value.field) == ("responses[2]", "shape")
    with pytest.raises(InputError) as error:
        extrapolation_ceiling(three, groups[:-1], progress=False)
    assert (error.value.source, error.value.field) == ("groups", "length")
    with pytest.raises(InputError) as error:
        pooled_prediction_scores(three[0], three[1][:-1], groups)
    assert error.value.field == "n_samples"
    with pytest.raises(InputError) as error:
        pooled_prediction_scores(three[0], three[1], np.repeat([0, 1], 15))
    assert error.value.field == "n_groups"
    with pytest.raises(InputError) as error:
        explainable_variance(rng.standard_normal((1, 30, 4)))
    assert error.value.field == "n_repeats"
    with pytest.raises(InputError) as error:
        fit_extrapolation(np.arange(2, 5), np.zeros((3, 4)))
    assert error.value.field == "y"
