"""How the vision models are scored: voxelwise Pearson r on held-out trials, medians per ROI, NSD's noise ceiling.

NSD's validation set is the shared images' single trials (reference section 10): a model's prediction for an
image is compared with every single-trial response to it. The ceiling for the mean of ``n`` trials is
``NC = 100 * ncsnr**2 / (ncsnr**2 + 1 / n)`` percent of the variance; a voxel's share of it explained is
``100 * r**2 / NC``.
"""

from __future__ import annotations

import numpy as np

from brainalign.errors import InputError


def voxel_correlation(responses: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Pearson r between each column of ``responses`` and ``predictions`` (n, v); 0 for a constant column."""
    responses = np.asarray(responses, dtype=np.float64)
    predictions = np.asarray(predictions, dtype=np.float64)
    if responses.shape != predictions.shape or responses.ndim != 2:
        raise InputError("predictions", "shape", f"{responses.shape} (the responses' shape)", str(predictions.shape))
    a = responses - responses.mean(axis=0)
    b = predictions - predictions.mean(axis=0)
    denominator = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=0) / denominator
    return np.where(denominator > 0, r, 0.0)


def noise_ceiling(ncsnr: np.ndarray, n_trials: int = 1) -> np.ndarray:
    """NSD's noise ceiling, in percent of the variance, for responses averaged over ``n_trials`` trials."""
    if n_trials < 1:
        raise InputError("noise ceiling", "n_trials", "at least 1", str(n_trials))
    snr2 = np.asarray(ncsnr, dtype=np.float64) ** 2
    return 100.0 * snr2 / (snr2 + 1.0 / n_trials)


def explained_fraction(r: np.ndarray, ncsnr: np.ndarray, n_trials: int = 1) -> np.ndarray:
    """The share of the noise ceiling a voxel's prediction explains: ``100 r**2 / NC`` (NaN where NC is 0)."""
    ceiling = noise_ceiling(ncsnr, n_trials)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ceiling > 0, 100.0 * np.asarray(r, dtype=np.float64) ** 2 / ceiling, np.nan)
