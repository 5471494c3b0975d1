"""The encoding ridge against a closed-form per-channel reference, and its leakage guarantees."""

import numpy as np
import pytest

from brainalign.ridge import backend, banded_predictions, cv_predictions
from brainalign.errors import InputError

ALPHAS = np.logspace(-1, 4, 6)


def reference_predictions(x, y, runs, alphas):
    """Plain numpy: per outer run, z-score on training runs, per channel the alpha with the lowest mean
    inner-fold MSE, refit, predict (the ridge solved as (X'X + aI)^-1 X'y, column by column)."""
    out = np.zeros_like(y)
    chosen = []
    for run in np.unique(runs):
        train, test = runs != run, runs == run
        mean, sd = x[train].mean(0), x[train].std(0)
        xs = (x - mean) / sd
        ytr_mean = y[train].mean(0)
        yc = y - ytr_mean
        xt, yt, rt = xs[train], yc[train], runs[train]
        best = []
        for v in range(y.shape[1]):
            losses = []
            for a in alphas:
                fold_losses = []
                for inner in np.unique(rt):
                    fit, val = rt != inner, rt == inner
                    w = np.linalg.solve(xt[fit].T @ xt[fit] + a * np.eye(x.shape[1]), xt[fit].T @ yt[fit, v])
                    fold_losses.append(np.mean((yt[val, v] - xt[val] @ w) ** 2))
                losses.append(np.mean(fold_losses))
            best.append(alphas[int(np.argmin(losses))])
            w = np.linalg.solve(xt.T @ xt + best[-1] * np.eye(x.shape[1]), xt.T @ yt[:, v])
            out[test, v] = xs[test] @ w + ytr_mean[v]
        chosen.append(best)
    return out, np.array(chosen)


def make_case(n_per_run=30, n_runs=4, p=8, v=6, seed=0):
    rng = np.random.default_rng(seed)
    runs = np.repeat(np.arange(1, n_runs + 1), n_per_run)
    x = rng.standard_normal((len(runs), p)) * rng.uniform(0.5, 3, p) + rng.uniform(-2, 2, p)
    w = rng.standard_normal((p, v)) * np.linspace(0.05, 2, v)  # channels of very different SNR
    y = x @ w + rng.standard_normal((len(runs), v)) * 2.0
    return x, y, runs


@pytest.mark.parametrize("p", [8, 200])  # primal (n > p) and kernel (n < p) solvers
def test_predictions_equal_closed_form_reference(p):
    x, y, runs = make_case(p=p)
    with backend("cpu"):
        result = cv_predictions(x, y, runs, alphas=ALPHAS, dtype="float64")
    expected, chosen = reference_predictions(x, y, runs, ALPHAS)
    np.testing.assert_allclose(result.alphas, chosen)
    np.testing.assert_allclose(result.predictions, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("p", [8, 200])
def test_float32_refit_uses_each_channels_own_penalty(p):
    # The refit solves every channel at once with its own penalty (one decomposition, ridge.py): in float32
    # it must still match the float64 closed form channel by channel, and the case must make the channels
    # choose different penalties, or a refit that used one penalty for all would pass too.
    x, y, runs = make_case(p=p)
    with backend("cpu"):
        result = cv_predictions(x, y, runs, alphas=ALPHAS, dtype="float32", return_weights=True)
    expected, chosen = reference_predictions(x, y, runs, ALPHAS)
    assert all(len(np.unique(fold)) > 1 for fold in chosen)
    np.testing.assert_allclose(result.alphas, chosen, rtol=1e-6)
    np.testing.assert_allclose(result.predictions, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # The primal weights it returns (from the dual ones, p = 200) give the same held-out predictions.
    for fold, run in enumerate(result.runs):
        held = runs == run
        through_weights = ((x[held] - result.means[fold]) / result.scales[fold]) @ result.weights[fold]
        np.testing.assert_allclose(through_weights + y[~held].mean(0), expected[held], rtol=1e-4,
                                   atol=1e-4 * np.abs(expected).max())


def test_zscoring_statistics_come_from_training_runs_only():
    # Rescaling and shifting the held-out run's features changes nothing that was fitted on the others:
    # a pipeline that standardised over all runs would choose other weights.
    x, y, runs = make_case(p=10)
    changed = x.copy()
    changed[runs == 4] = changed[runs == 4] * 1000 + 50
    with backend("cpu"):
        a = cv_predictions(x, y, runs, alphas=ALPHAS, return_weights=True, dtype="float64")
        b = cv_predictions(changed, y, runs, alphas=ALPHAS, return_weights=True, dtype="float64")
    fold = list(a.runs).index(4)
    np.testing.assert_array_equal(a.alphas[fold], b.alphas[fold])
    np.testing.assert_allclose(a.weights[fold], b.weights[fold], rtol=1e-10)
    np.testing.assert_allclose(a.means[fold], b.means[fold])
    # ... and the held-out predictions follow the held-out features through the training statistics.
    expected = (changed[runs == 4] - a.means[fold]) / a.scales[fold] @ a.weights[fold] + y[runs != 4].mean(0)
    np.testing.assert_allclose(b.predictions[runs == 4], expected, rtol=1e-4, atol=1e-3)


def test_banded_ridge_splits_predictions_by_space():
    rng = np.random.default_rng(1)
    runs = np.repeat(np.arange(1, 5), 40)
    useful, useless = rng.standard_normal((160, 5)), rng.standard_normal((160, 30))
    y = useful @ rng.standard_normal((5, 4)) + 0.5 * rng.standard_normal((160, 4))
    with backend("cpu"):
        result = banded_predictions([useful, useless], y, runs, alphas=np.logspace(-2, 4, 7), n_iter=10)
    from himalaya.scoring import r2_score_split

    # The split R² of each held-out run (responses centred within it, as r2_score_split requires).
    parts = np.mean([np.asarray(r2_score_split(y[runs == r] - y[runs == r].mean(0), result.split[:, runs == r]))
                     for r in np.unique(runs)], axis=0)
    assert (parts[0] > 0.6).all() and (np.abs(parts[1]) < 0.1).all()


def test_too_few_runs_is_a_clear_error():
    x, y, runs = make_case(n_runs=2)
    with pytest.raises(InputError, match="at least 3 runs"):
        cv_predictions(x, y, runs)


def test_backend_is_restored_and_cuda_without_a_gpu_is_a_clear_error():
    import torch
    from himalaya.backend import get_backend, set_backend

    from brainalign.errors import ConfigError

    set_backend("numpy")
    with backend("cpu") as name:
        assert name == "numpy"
    assert get_backend().name == "numpy"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            with backend("cuda"):
                pass
    with pytest.raises(ConfigError, match="encoding.device"):
        with backend("tpu"):
            pass
