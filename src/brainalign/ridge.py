"""Voxelwise ridge with himalaya: per-channel regularisation by inner cross-validation, outer leave-one-run-out.

For every held-out run: features are z-scored with the training runs' statistics only, responses centred
on the training mean; himalaya chooses each channel's penalty from ``alphas`` by an inner
leave-one-run-out over the training runs (mean squared error averaged over the inner folds, himalaya's
default); the model refitted on all training runs with each channel's penalty predicts the held-out run.
The kernel (dual) solver is used when there are fewer than 1.5 training samples per feature, the primal one
otherwise: the same solution, the cheaper way.

The refit is ours, from one decomposition of the training data: ``(K + a_c I)^-1 y_c = V diag(1 / (l + a_c))
V' y_c`` for every channel ``c`` at once (``K = V diag(l) V'``; with the primal solver, the SVD of the
features). himalaya's own refit builds the full ``n x n`` resolution matrix of every penalty that some
channel chose and multiplies each by all channels' responses, keeping one product per channel: with
many channels and a dozen penalties in use, that refit cost more than the whole inner cross-validation
(measured on the MEG case, 630 rows x 6,120 channels: a layer's fit 3.1 -> 1.8 CPU-s). The penalties chosen
are himalaya's, bit for bit; the refit is the same solution rounded differently: in float32 the held-out
predictions agree with himalaya's to ~1e-6, except where a tiny penalty meets a nearly singular kernel, and
there ours is the closer to the float64 solution (fMRI case: 3e-5 from it, himalaya's refit 1e-2).
``tests/encoding/test_ridge.py`` checks both solvers against a closed-form reference.

:func:`banded_predictions` fits one penalty per feature space (banded ridge) and splits each held-out
prediction into the spaces' contributions (himalaya's ``r2_score_split``).

The backend is himalaya's: ``numpy`` on a CPU, ``torch_cuda`` on a GPU, float32 by default; :func:`backend` sets it
for a block and restores the previous one.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from brainalign.errors import ConfigError, InputError

ALPHAS = np.logspace(-2, 10, 13)
BACKENDS = {"cpu": "numpy", "cuda": "torch_cuda"}


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cpu`` and ``cuda`` are checked and returned."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in BACKENDS:
        raise ConfigError(f"params.yaml: encoding.device: expected auto, cpu or cuda, found {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("params.yaml: encoding.device: cuda, but torch sees no CUDA device here (use auto or cpu)")
    return device


@contextmanager
def backend(device: str = "cpu") -> Iterator[str]:
    """himalaya's backend for ``device`` (``cpu``, ``cuda`` or ``auto``) inside the block."""
    from himalaya.backend import get_backend, set_backend

    device = resolve_device(device)
    previous = get_backend()
    set_backend(BACKENDS[device], on_error="raise")
    try:
        yield BACKENDS[device]
    finally:
        set_backend(previous)


@dataclass
class CVPredictions:
    """Held-out predictions of every row, with what each outer fold chose.

    Attributes
    ----------
    predictions : ndarray of shape (n_samples, n_channels), float32
        Row ``i`` predicted by the model fitted without ``i``'s run.
    runs : ndarray of shape (n_folds,)
        The held-out run of each fold, in order.
    alphas : ndarray of shape (n_folds, n_channels)
        The penalty each fold chose for each channel.
    weights : list of ndarray of shape (n_features, n_channels), optional
        Per fold, the primal weights on the z-scored features (``return_weights``).
    means, scales : list of ndarray of shape (n_features,)
        Per fold, the training runs' feature statistics used to z-score.
    """

    predictions: np.ndarray
    runs: np.ndarray
    alphas: np.ndarray
    weights: list[np.ndarray] = field(default_factory=list)
    means: list[np.ndarray] = field(default_factory=list)
    scales: list[np.ndarray] = field(default_factory=list)


def _check(features: np.ndarray, responses: np.ndarray, runs: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    if features.ndim != 2 or responses.ndim != 2 or features.shape[0] != responses.shape[0]:
        raise InputError("encoding", "features", f"one row per response row ({responses.shape[0]})",
                         f"shapes {features.shape} and {responses.shape}")
    runs = np.asarray(runs)
    if runs.shape != (responses.shape[0],):
        raise InputError("encoding", "runs", f"one run label per row ({responses.shape[0]})", f"shape {runs.shape}")
    if len(np.unique(runs)) < 3:
        raise InputError("encoding", "runs", "at least 3 runs (outer and inner leave-one-run-out)",
                         f"{len(np.unique(runs))}")
    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 1 or not alphas.size or (alphas <= 0).any():
        raise ConfigError(f"params.yaml: encoding.alphas: expected positive penalties, found {alphas.tolist()}")
    if not np.isfinite(features).all() or not np.isfinite(responses).all():
        raise InputError("encoding", "features", "finite features and responses", "NaN or infinite values")
    return runs


def zscore_train(features: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale of each feature over the ``train`` rows only (scale 1 where constant)."""
    mean = features[train].mean(0)
    scale = features[train].std(0)
    return mean, np.where(scale > 0, scale, 1.0)


def inner_splits(runs: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leave-one-run-out splits over ``runs`` (positions into it)."""
    return [(np.flatnonzero(runs != run), np.flatnonzero(runs == run)) for run in np.unique(runs)]


def cv_predictions(features: np.ndarray, responses: np.ndarray, runs: np.ndarray,
                   alphas: Sequence[float] = ALPHAS, return_weights: bool = False,
                   targets_batch: int = 4096, dtype: str = "float32") -> CVPredictions:
    """Leave-one-run-out held-out predictions of every channel (module docstring).

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
        Delayed features (:func:`brainalign.encoding.timing.delay`), not yet standardised.
    responses : ndarray of shape (n_samples, n_channels)
    runs : ndarray of shape (n_samples,)
        Run label of each row: the outer folds hold out one run each, the inner ones one training run each.
    alphas : sequence of float
        The penalties to choose from, per channel.
    return_weights : bool
        Keep each fold's primal weights (memory: n_features x n_channels per fold).
    targets_batch : int
        Channels solved at once (bounds memory on large recordings).
    dtype : {"float32", "float64"}
        Precision of the solve: float32 halves the time and memory (held-out r agrees to ~1e-6);
        float64 for comparisons with a closed-form reference.
    """
    from himalaya.backend import get_backend

    features = np.asarray(features, dtype=np.float64)
    responses = np.asarray(responses)
    runs = _check(features, responses, runs, alphas)
    be = get_backend()
    if dtype not in ("float32", "float64"):
        raise ConfigError(f"ridge dtype: expected float32 or float64, found {dtype!r}")
    predictions = np.zeros(responses.shape, dtype=np.float32)
    held = np.unique(runs)
    chosen = np.zeros((len(held), responses.shape[1]))
    result = CVPredictions(predictions=predictions, runs=held, alphas=chosen)
    for f, run in enumerate(held):
        train, test = np.flatnonzero(runs != run), np.flatnonzero(runs == run)
        mean, scale = zscore_train(features, train)
        x_train = be.asarray(((features[train] - mean) / scale).astype(dtype))
        x_test = be.asarray(((features[test] - mean) / scale).astype(dtype))
        y_mean = responses[train].mean(0)
        y_train = be.asarray((responses[train] - y_mean).astype(dtype))
        # The dual (kernel) solve costs ~n^2 p + n^3 against the primal's ~n p^2: measured faster up to n ~ 1.5 p.
        kernel = len(train) < 1.5 * features.shape[1]
        best = _inner_cv_alphas(x_train, y_train, inner_splits(runs[train]), np.asarray(alphas), kernel,
                                targets_batch, dtype)
        predicted, coef = _refit_predict(x_train, y_train, x_test, best, kernel, targets_batch, return_weights)
        predictions[test] = (predicted + y_mean).astype(np.float32)
        chosen[f] = best
        result.means.append(mean)
        result.scales.append(scale)
        if return_weights:
            result.weights.append(coef)
    return result


def _inner_cv_alphas(x_train, y_train, cv: list, alphas: np.ndarray, kernel: bool, targets_batch: int,
                     dtype: str) -> np.ndarray:
    """Each channel's penalty, chosen by himalaya's inner cross-validation (its solvers without their refit).

    Its own solvers, not a re-derivation: with few features, many penalties give held-out errors equal to
    float32 rounding, and another computation of the same errors picks other penalties among those ties.
    """
    from himalaya.backend import get_backend
    from himalaya.kernel_ridge._random_search import solve_multiple_kernel_ridge_random_search
    from himalaya.ridge._random_search import solve_group_ridge_random_search

    be = get_backend()
    # One candidate kernel weighting (gamma = 1): plain ridge, as KernelRidgeCV and RidgeCV call these solvers.
    common = {"n_iter": be.ones_like(x_train, shape=(1, 1)), "concentration": None,
              "alphas": be.asarray(alphas.astype(dtype)), "cv": cv, "progress_bar": False, "jitter_alphas": False,
              "random_state": None, "n_targets_batch": targets_batch, "n_alphas_batch": len(alphas)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)  # himalaya's "alpha at the grid's edge"
        if kernel:
            *_, best = solve_multiple_kernel_ridge_random_search(be.matmul(x_train, x_train.T)[None], y_train,
                                                                 return_weights=None, return_alphas=True, **common)
            return be.to_numpy(best).astype(np.float64)
        deltas = solve_group_ridge_random_search([x_train], y_train, return_weights=False, warn=False, **common)[0]
    # deltas = log(gamma / alpha) with gamma = 1: back to the grid's own values, not exp(-log(alpha)) rounded.
    log_alpha = -be.to_numpy(deltas[0]).astype(np.float64)
    return alphas[np.abs(np.log(alphas)[:, None] - log_alpha[None, :]).argmin(0)].astype(np.float64)


def _refit_predict(x_train, y_train, x_test, best: np.ndarray, kernel: bool, targets_batch: int,
                   return_weights: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Held-out predictions of the ridge refitted on all training rows with each channel's penalty ``best``
    (and the primal weights with ``return_weights``), from one decomposition of the training data."""
    from himalaya.backend import get_backend

    be = get_backend()
    if kernel:
        # K = V diag(l) V'; the dual weights of channel c are V diag(1 / (l + a_c)) V' y_c.
        values, basis = be.eigh(be.matmul(x_train, x_train.T))
        values[values < 0] = 0  # float32 rounding makes the smallest eigenvalues slightly negative (as himalaya)
        test_side = be.matmul(be.matmul(x_test, x_train.T), basis)
    else:
        # X = U diag(s) W'; the weights of channel c are W diag(s / (s^2 + a_c)) U' y_c.
        left, values, right = be.svd(x_train, full_matrices=False)
        basis, test_side = left, be.matmul(x_test, right.T)
    penalties = be.asarray_like(np.asarray(best), ref=values)
    precision = be.to_numpy(values[:1]).dtype  # the solve's: float64 results stay float64 until the caller rounds
    predictions = np.zeros((x_test.shape[0], y_train.shape[1]), dtype=precision)
    coef = np.zeros((x_train.shape[1], y_train.shape[1]), dtype=precision) if return_weights else None
    for start in range(0, y_train.shape[1], targets_batch):
        batch = slice(start, start + targets_batch)
        projected = be.matmul(basis.T, y_train[:, batch])
        if kernel:
            projected = projected / (values[:, None] + penalties[None, batch])
        else:
            projected = projected * (values[:, None] / (values[:, None] ** 2 + penalties[None, batch]))
        predictions[:, batch] = be.to_numpy(be.matmul(test_side, projected))
        if return_weights:
            weights = (be.matmul(x_train.T, be.matmul(basis, projected)) if kernel
                       else be.matmul(right.T, projected))
            coef[:, batch] = be.to_numpy(weights)
    return predictions, coef


@dataclass
class BandedPredictions:
    """Held-out predictions of a banded ridge, in total and split by feature space.

    Attributes
    ----------
    predictions : ndarray of shape (n_samples, n_channels)
    split : ndarray of shape (n_spaces, n_samples, n_channels)
        Each space's contribution (they sum to ``predictions``).
    runs : ndarray of shape (n_folds,)
    """

    predictions: np.ndarray
    split: np.ndarray
    runs: np.ndarray


def banded_predictions(spaces: Sequence[np.ndarray], responses: np.ndarray, runs: np.ndarray,
                       alphas: Sequence[float] = ALPHAS, n_iter: int = 20, seed: int = 0,
                       dtype: str = "float32") -> BandedPredictions:
    """Leave-one-run-out banded ridge: one penalty per feature space and channel (himalaya's
    ``MultipleKernelRidgeCV``, random search over the spaces' weights with ``n_iter`` draws, seeded).

    Each space is z-scored on the training runs, as in :func:`cv_predictions`.
    """
    from himalaya.backend import get_backend
    from himalaya.kernel_ridge import MultipleKernelRidgeCV

    if len(spaces) < 2:
        raise ConfigError(f"banded ridge: expected at least 2 feature spaces, found {len(spaces)}")
    spaces = [np.asarray(s, dtype=np.float64) for s in spaces]
    for s in spaces:
        runs = _check(s, np.asarray(responses), runs, alphas)
    be = get_backend()
    held = np.unique(runs)
    total = np.zeros(responses.shape, dtype=np.float32)
    split = np.zeros((len(spaces), *responses.shape), dtype=np.float32)
    for run in held:
        train, test = np.flatnonzero(runs != run), np.flatnonzero(runs == run)
        k_train, k_test = [], []
        for s in spaces:
            mean, scale = zscore_train(s, train)
            a, b = (s[train] - mean) / scale, (s[test] - mean) / scale
            k_train.append(a @ a.T)
            k_test.append(b @ a.T)
        y_mean = responses[train].mean(0)
        model = MultipleKernelRidgeCV(
            kernels="precomputed", solver="random_search", cv=inner_splits(runs[train]),
            random_state=seed, solver_params={"alphas": np.asarray(alphas), "n_iter": n_iter, "progress_bar": False})
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)
            model.fit(be.asarray(np.stack(k_train).astype(dtype)), be.asarray((responses[train] - y_mean).astype(dtype)))
        parts = be.to_numpy(model.predict(be.asarray(np.stack(k_test).astype(dtype)), split=True))
        split[:, test] = parts
        total[test] = parts.sum(0) + y_mean
    return BandedPredictions(predictions=total, split=split, runs=held)
