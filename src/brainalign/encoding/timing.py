"""From words to TRs: word features summed (or Lanczos-interpolated) over each TR, and FIR delays.

A TR at time ``t`` (its start, on the words' clock) receives the words whose onset falls in
``[t - tr, t)``: the words shown during the interval the volume closes, as the prepared windows count
them (:mod:`brainalign.stimuli.windows`). Only words of the TR's own run count, so nothing crosses runs.
"""

from __future__ import annotations

import numpy as np

from brainalign.errors import ConfigError, InputError

METHODS = ("sum", "lanczos")


def _arrays(features, onsets, word_runs, tr_times, tr_runs) -> tuple[np.ndarray, ...]:
    """The inputs as arrays, checked: one onset and run per word row, one run per TR."""
    features = np.asarray(features, dtype=np.float64)
    onsets, word_runs = np.asarray(onsets, dtype=np.float64), np.asarray(word_runs)
    tr_times, tr_runs = np.asarray(tr_times, dtype=np.float64), np.asarray(tr_runs)
    if features.ndim != 2 or features.shape[0] != len(onsets) or len(word_runs) != len(onsets):
        raise InputError("word features", "rows", f"one row per word ({len(onsets)})", f"shape {features.shape}")
    if len(tr_times) != len(tr_runs):
        raise InputError("TRs", "runs", f"one run per TR ({len(tr_times)})", f"{len(tr_runs)}")
    return features, onsets, word_runs, tr_times, tr_runs


def sum_to_trs(features: np.ndarray, onsets: np.ndarray, word_runs: np.ndarray, tr_times: np.ndarray,
               tr_runs: np.ndarray, tr: float) -> np.ndarray:
    """Each TR's features: the sum over the words of its run with onset in ``[t - tr, t)``.

    Returns
    -------
    ndarray of shape (n_trs, n_features), float64; a TR without words is 0.
    """
    features, onsets, word_runs, tr_times, tr_runs = _arrays(features, onsets, word_runs, tr_times, tr_runs)
    out = np.zeros((len(tr_times), features.shape[1]))
    for run in np.unique(tr_runs):
        rows = np.flatnonzero(tr_runs == run)
        mine = np.flatnonzero(word_runs == run)
        if not mine.size:
            continue
        # The TR whose interval [t - tr, t) holds each onset: the first TR starting after it, if it is
        # less than one TR later.
        order = np.argsort(tr_times[rows], kind="stable")
        starts = tr_times[rows][order]
        slot = np.searchsorted(starts, onsets[mine], side="right")
        inside = slot < len(starts)
        inside[inside] &= starts[slot[inside]] - onsets[mine][inside] <= tr + 1e-9
        np.add.at(out, rows[order][slot[inside]], features[mine[inside]])
    return out


def lanczos_to_trs(features: np.ndarray, onsets: np.ndarray, word_runs: np.ndarray, tr_times: np.ndarray,
                   tr_runs: np.ndarray, tr: float, window: int = 3, cutoff: float = 1.0) -> np.ndarray:
    """Each TR's features: the words' features low-passed by a Lanczos kernel and sampled at ``t - tr / 2``.

    The voxelwise-modelling tutorials' resampling: word features are impulses at their onsets, weighted
    by ``L(d) = sinc(f d) sinc(f d / window)`` for ``|f d| < window`` (``f = cutoff / tr``, ``d`` the
    distance from the sampling time), so the result carries the frequencies a TR can represent. Sampling at
    the middle of ``[t - tr, t)`` keeps the same alignment as :func:`sum_to_trs`.
    """
    features, onsets, word_runs, tr_times, tr_runs = _arrays(features, onsets, word_runs, tr_times, tr_runs)
    if window < 1 or cutoff <= 0:
        raise ConfigError(f"lanczos: expected window >= 1 and cutoff > 0, found {window}, {cutoff}")
    frequency = cutoff / tr
    out = np.zeros((len(tr_times), features.shape[1]))
    for run in np.unique(tr_runs):
        rows = np.flatnonzero(tr_runs == run)
        mine = np.flatnonzero(word_runs == run)
        if not mine.size:
            continue
        distance = frequency * ((tr_times[rows] - tr / 2)[:, None] - onsets[mine][None, :])
        kernel = np.where(np.abs(distance) < window, np.sinc(distance) * np.sinc(distance / window), 0.0)
        out[rows] = kernel @ features[mine]
    return out


RESAMPLERS = {"sum": sum_to_trs, "lanczos": lanczos_to_trs}


def resample_to_trs(features: np.ndarray, onsets: np.ndarray, word_runs: np.ndarray, tr_times: np.ndarray,
                    tr_runs: np.ndarray, tr: float, method: str = "sum") -> np.ndarray:
    """Word features at the TRs, by ``method`` (:data:`METHODS`)."""
    if method not in RESAMPLERS:
        raise ConfigError(f"params.yaml: encoding.downsample: expected one of {METHODS}, found {method!r}")
    return RESAMPLERS[method](features, onsets, word_runs, tr_times, tr_runs, tr)


def low_level_features(words: list[str]) -> dict[str, np.ndarray]:
    """The low-level feature spaces of each word: ``word_rate`` (1 per word: summed, the words per TR) and
    ``word_length`` (letters and digits: summed, the letters read in the TR)."""
    letters = np.array([sum(c.isalnum() for c in w) for w in words], dtype=np.float64)
    return {"word_rate": np.ones((len(words), 1)), "word_length": letters[:, None]}


def delay(features: np.ndarray, runs: np.ndarray, delays: tuple[int, ...] | list[int] = (1, 2, 3, 4)) -> np.ndarray:
    """FIR delays: ``features`` shifted later by each delay (in rows), side by side, within runs.

    Row ``t`` of delay ``d`` is row ``t - d`` of the same run, and 0 for the first ``d`` rows of each run:
    a delayed copy never reaches back into the previous run.

    Returns
    -------
    ndarray of shape (n_rows, n_features * len(delays)), delay-major (all features of the first delay,
    then of the next).
    """
    features = np.asarray(features)
    runs = np.asarray(runs)
    if features.ndim != 2 or len(runs) != features.shape[0]:
        raise InputError("features", "rows", f"one run label per row ({features.shape[0]})", f"{len(runs)}")
    if not delays or any(not isinstance(d, (int, np.integer)) or d < 0 for d in delays):
        raise ConfigError(f"params.yaml: encoding.delays: expected whole numbers of TRs >= 0, found {delays!r}")
    out = np.zeros((features.shape[0], features.shape[1] * len(delays)), dtype=features.dtype)
    width = features.shape[1]
    for run in np.unique(runs):
        rows = np.flatnonzero(runs == run)
        block = features[rows]
        for j, d in enumerate(delays):
            if d < len(rows):
                out[rows[d:], j * width:(j + 1) * width] = block[: len(rows) - d]
    return out
