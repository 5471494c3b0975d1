"""Brain-Score language 2.3.0's subject-extrapolation noise ceiling on plain arrays (reference section 7).

Brain-Score's ``ExtrapolationCeiling`` (``benchmarks/blank2014/ceiling.py``, used by the Blank, Fedorenko and
Pereira benchmarks; Pereira's stored ceiling comes from the variant in ``benchmarks/pereira2018/
ceiling_packaging.py``):

1. For every pool size k = 2 … N and every chosen subset of k participants, each (chosen) held-out participant's
   neuroids are predicted from the pooled neuroids of the subset's other participants, with the benchmark's own
   metric; per neuroid the raw per-split r of every split is kept.
2. Per neuroid, ``RandomState(0)`` (restarted for every neuroid); for bootstrap b, for k ascending:
   ``choice(values, len(values), replace=True)`` over that k's values, which are the neuroid's
   (subset, split) scores flattened subset-major, the subsets in the order of their string labels
   ``str(subset)`` (xarray's merge sorts that coordinate); the bootstrap's point at k is their mean.
3. v(k) = v0 · (1 − exp(−k / τ)) is fitted to each bootstrap's points (``curve_fit``, v0 in [0, 1]); the
   neuroid's ceiling is the median v0 over bootstraps (NaN if a fit failed), the benchmark's the median over
   neuroids where it is defined.

Pereira's variant differs in step 1 only: per k, ``subsets_per_k`` (10) *ordered* draws
``RandomState(0).choice(participants, k, replace=False)`` (one generator for all k; distinct tuples, so a
subset can recur in another order) over ``list(set(participants))``; per subset, a second generator
``RandomState(0)``, shared by all subsets, draws ``heldout_participants`` (5) held-out participants *with*
replacement from ``list(set(subset's participants))``. A neuroid then has values only for the subsets in
which its participant was drawn. Python orders a set of small non-negative integers by value, so with integer
participant labels Brain-Score's draws are reproducible, and ours are the same draws. With string labels its
order follows Python's per-process string hashing (``PYTHONHASHSEED``) and its ceiling changes from one run to
the next (0.4684 to 0.4696 on the simulated Pereira data); ours then sorts the participants and scores the
subsets in the order they were drawn, the same every run.

Step 3's fit: ``fit="curve_fit"`` (default) calls scipy's ``curve_fit`` exactly as Brain-Score does, failures
included (a neuroid with one failed bootstrap fit gets NaN and drops out of the median); measured against
Brain-Score itself (perf/brainscore_parity.py) its per-neuroid ceilings agree to 2e-8 and the value to 1e-8,
at about 2-4 ms per curve (100 per neuroid). ``fit="global"`` uses
:func:`brainalign.metrics.ceiling.fit_extrapolation`, vectorised over neuroids (milliseconds), which finds the
global least-squares optimum with τ > 0 and never fails: it differs from ``curve_fit`` where that stops early
(up to ~1e-2 in v0 on near-linear curves) or fails, and so moves the value by up to ~1e-2 on small problems.
"""

from __future__ import annotations

import itertools
import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit
from tqdm.auto import tqdm

from brainalign.errors import ConfigError, InputError
from brainalign.metrics.ceiling import fit_extrapolation

logger = logging.getLogger(__name__)

FITS = ("global", "curve_fit")


@dataclass
class BrainScoreCeiling:
    """The outcome of :func:`brainscore_ceiling`.

    Attributes
    ----------
    per_neuroid : ndarray of shape (n_neuroids,)
        Median over bootstraps of the fitted v0 (NaN where a bootstrap's fit failed or values were missing).
    value : float
        The median of ``per_neuroid`` over the neuroids where it is defined: the benchmark's ceiling.
    k : ndarray of shape (n_k,)
        The pool sizes 2 … N.
    bootstrap_v0 : ndarray of shape (n_bootstraps, n_neuroids)
        Every bootstrap's fitted v0.
    scores : dict of int to ndarray of shape (n_subsets_k, n_splits, n_neuroids)
        Per pool size the raw per-split r of every neuroid in every subset, NaN where the neuroid's participant
        was not held out in that subset; subsets in the order of ``subsets[k]`` (Brain-Score's bootstrap order).
    subsets : dict of int to list of tuple
        Per pool size the participant labels of each subset, as Brain-Score labels and orders them.
    heldout : dict of int to list of tuple
        Per pool size and subset the participants that were held out (all of the subset's without
        ``heldout_participants``).
    """

    per_neuroid: np.ndarray
    value: float
    k: np.ndarray
    bootstrap_v0: np.ndarray
    scores: dict[int, np.ndarray]
    subsets: dict[int, list[tuple]]
    heldout: dict[int, list[tuple]]


def brainscore_ceiling(responses: np.ndarray, subjects: Sequence, metric_fn: Callable, *,
                       stimulus_ids: Sequence | None = None, groups: Sequence | None = None,
                       n_bootstraps: int = 100, subsets_per_k: int | None = None,
                       heldout_participants: int | None = None, seed: int = 0, fit: str = "curve_fit",
                       progress: bool = True) -> BrainScoreCeiling:
    """Brain-Score's ``ExtrapolationCeiling`` with the benchmark's metric, per neuroid.

    Parameters
    ----------
    responses : ndarray of shape (n_presentations, n_neuroids)
        All participants' neuroids side by side, rows in the data's order (the metric's splits follow it).
    subjects : sequence of shape (n_neuroids,)
        The participant of each neuroid; at least 3 participants.
    metric_fn : callable
        ``metric_fn(source, target, stimulus_ids=..., groups=...)`` returning a
        :class:`~brainalign.benchmarks.metrics.MetricScore` (or anything with ``per_split`` of shape
        (n_splits, n_target_neuroids)), e.g. ``METRICS.get("linear_pearsonr")``.
    stimulus_ids, groups : sequences of shape (n_presentations,), optional
        Passed on to ``metric_fn``.
    n_bootstraps : int
        Bootstraps per neuroid (Brain-Score: 100).
    subsets_per_k : int, optional
        Pereira's variant: this many ordered random subsets per k. All combinations when None.
    heldout_participants : int, optional
        Pereira's variant: this many held-out participants drawn with replacement per subset. Every
        participant of the subset when None.
    seed : int
        Seed of the bootstrap generator and of Pereira's two draw generators (Brain-Score: 0).
    fit : {"global", "curve_fit"}
        How v(k) is fitted (see the module's docstring).
    progress : bool
        Show a progress bar over the metric calls.

    Returns
    -------
    BrainScoreCeiling
    """
    responses = np.asarray(responses, dtype=np.float64)
    if responses.ndim != 2 or 0 in responses.shape or not np.all(np.isfinite(responses)):
        raise InputError("responses", "values", "a non-empty finite 2-D array (n_presentations, n_neuroids)",
                         f"shape {responses.shape}")
    labels = np.asarray(subjects)
    if labels.shape != (responses.shape[1],):
        raise InputError("subjects", "length", f"one participant per neuroid ({responses.shape[1]})",
                         f"shape {labels.shape}")
    participants = sorted(set(labels.tolist()))
    if len(participants) < 3:
        raise InputError("subjects", "participants", "at least 3 participants (k = 2 … N)", str(len(participants)))
    if fit not in FITS:
        raise ConfigError(f"fit: expected one of {', '.join(FITS)}, found {fit!r}")
    if n_bootstraps < 1:
        raise ConfigError(f"n_bootstraps: expected at least 1, found {n_bootstraps}")
    for name, value in (("subsets_per_k", subsets_per_k), ("heldout_participants", heldout_participants)):
        if value is not None and value < 1:
            raise ConfigError(f"{name}: expected None or at least 1, found {value}")
    ks = np.arange(2, len(participants) + 1)
    subsets = _choose_subsets(labels, participants, ks, subsets_per_k, seed)
    heldout = _choose_heldout(labels, subsets, heldout_participants, seed)

    # Deterministic metric: a (subset, held-out) pair drawn again in another order is scored once.
    cache: dict[tuple[frozenset, object], np.ndarray] = {}
    columns = {p: np.flatnonzero(labels == p) for p in participants}
    scores: dict[int, np.ndarray] = {}
    n_calls = len({(frozenset(s), h) for k in subsets for s, hs in zip(subsets[k], heldout[k]) for h in hs})
    with tqdm(total=n_calls, desc="ceiling: held-out participants", disable=not progress) as bar:
        for k in subsets:
            per_subset = []
            for subset, held in zip(subsets[k], heldout[k]):
                row = None
                for participant in held:
                    key = (frozenset(subset), participant)
                    if key not in cache:
                        pool = np.concatenate([columns[p] for p in participants if p in subset and p != participant])
                        pool.sort()  # Brain-Score selects pooled neuroids in their original order
                        result = metric_fn(responses[:, pool], responses[:, columns[participant]],
                                           stimulus_ids=stimulus_ids, groups=groups)
                        per_split = np.asarray(getattr(result, "per_split", result), dtype=np.float64)
                        if per_split.ndim != 2 or per_split.shape[1] != columns[participant].size:
                            raise InputError("metric_fn", "per_split", "shape (n_splits, n_target_neuroids)",
                                             f"shape {per_split.shape}")
                        cache[key] = per_split
                        bar.update()
                    per_split = cache[key]
                    if row is None:
                        row = np.full((per_split.shape[0], labels.size), np.nan)
                    row[:, columns[participant]] = per_split
                per_subset.append(row)
            scores[int(k)] = np.stack(per_subset)

    bootstrap_v0 = np.full((n_bootstraps, labels.size), np.nan)
    # Neuroids of one participant have values in the same subsets, hence the same bootstrap draws.
    for participant in participants:
        cols = columns[participant]
        choices = [scores[int(k)][:, :, cols] for k in ks]
        choices = [c[~np.isnan(c[:, 0, 0])].reshape(-1, cols.size) for c in choices]
        means = _bootstrap_means(choices, n_bootstraps, seed)  # (n_bootstraps, n_k, n_cols)
        bootstrap_v0[:, cols] = _fit(ks, means, fit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_neuroid = np.median(bootstrap_v0, axis=0)
    value = float(np.nanmedian(per_neuroid)) if np.isfinite(per_neuroid).any() else float("nan")
    logger.info("extrapolation ceiling %.4f over %d neuroids (%d undefined)", value, labels.size,
                int(np.isnan(per_neuroid).sum()))
    return BrainScoreCeiling(per_neuroid=per_neuroid, value=value, k=ks, bootstrap_v0=bootstrap_v0, scores=scores,
                             subsets=subsets, heldout=heldout)


def extrapolation_curve(k: np.ndarray, v0: np.ndarray | float, tau: np.ndarray | float) -> np.ndarray:
    """v(k) = v0 · (1 − exp(−k / τ)), Brain-Score's ``v``."""
    return v0 * (1 - np.exp(-k / tau))


def _choose_subsets(labels: np.ndarray, participants: list, ks: np.ndarray, limit: int | None,
                    seed: int) -> dict[int, list[tuple]]:
    """Per k the subsets Brain-Score scores, in the order its bootstrap sees them (sorted ``str`` labels)."""
    subsets: dict[int, list[tuple]] = {}
    if limit is None:
        for k in ks:
            subsets[int(k)] = sorted(itertools.combinations(participants, int(k)), key=str)
        return subsets
    rng = np.random.RandomState(seed)
    integers = _integer_labels(labels)
    population = np.array(_set_order(labels.tolist()))
    for k in ks:
        available = math.perm(len(participants), int(k))
        if available < limit:
            # Brain-Score's loop would never end here.
            raise ConfigError(f"subsets_per_k: expected at most the {available} ordered {k}-subsets of "
                              f"{len(participants)} participants, found {limit}")
        drawn: set[tuple] = set()
        in_order: list[tuple] = []
        while len(drawn) < limit:
            subset = tuple(rng.choice(population, size=int(k), replace=False).tolist())
            if subset not in drawn:
                drawn.add(subset)
                in_order.append(subset)
        # The order of scoring decides the held-out draws (Brain-Score iterates the set: a fixed order for
        # integer labels only); str sorts the bootstrap.
        subsets[int(k)] = list(drawn) if integers else in_order
    return subsets


def _integer_labels(labels: np.ndarray) -> bool:
    return all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels.tolist())


def _set_order(values: list) -> list:
    """Brain-Score's ``list(set(values))``: the same (ascending) order for small integers; sorted by ``str``
    otherwise, where a set's order would change from one process to the next."""
    unique = set(values)
    return list(unique) if _integer_labels(np.array(values, dtype=object)) else sorted(unique, key=str)


def _choose_heldout(labels: np.ndarray, subsets: dict[int, list[tuple]], n_heldout: int | None,
                    seed: int) -> dict[int, list[tuple]]:
    """Per k and subset the held-out participants; subsets re-sorted by their ``str`` label afterwards."""
    heldout: dict[int, list[tuple]] = {}
    rng = np.random.RandomState(seed)
    for k, chosen in subsets.items():
        held = []
        for subset in chosen:
            if n_heldout is None:
                held.append(tuple(subset))
                continue
            # Brain-Score: list(set(values of the subset's neuroids)).
            members = _set_order([v for v in labels.tolist() if v in subset])
            draws = rng.choice(np.array(members), size=n_heldout).tolist()
            held.append(tuple(dict.fromkeys(draws)))  # a participant drawn twice is scored once
        order = sorted(range(len(chosen)), key=lambda i: str(chosen[i]))
        subsets[k] = [chosen[i] for i in order]
        heldout[k] = [held[i] for i in order]
    return heldout


def _bootstrap_means(choices: list[np.ndarray], n_bootstraps: int, seed: int) -> np.ndarray:
    """Per bootstrap, k and neuroid the mean of the resampled values, replaying Brain-Score's draws.

    ``choices[i]`` is (n_values_k, n_neuroids); all neuroids share the draws. NaN where a k has no values.
    """
    rng = np.random.RandomState(seed)
    counts = [np.zeros((n_bootstraps, c.shape[0])) for c in choices]
    for b in range(n_bootstraps):
        for i, c in enumerate(choices):
            if c.shape[0]:  # an empty choice draws nothing and leaves the generator untouched
                counts[i][b] = np.bincount(rng.choice(c.shape[0], size=c.shape[0], replace=True),
                                           minlength=c.shape[0])
    n_cols = choices[0].shape[1]
    means = np.full((n_bootstraps, len(choices), n_cols), np.nan)
    for i, c in enumerate(choices):
        if c.shape[0]:
            means[:, i] = counts[i] @ c / c.shape[0]
    return means


def _fit(ks: np.ndarray, means: np.ndarray, fit: str) -> np.ndarray:
    """v0 per (bootstrap, neuroid) from means (n_bootstraps, n_k, n_neuroids), over the k's with values."""
    valid = np.isfinite(means).all(axis=(0, 2))
    curves = np.moveaxis(means[:, valid], 1, -1)  # (n_bootstraps, n_neuroids, n_valid_k)
    if fit == "global":
        if valid.sum() < 2:
            return np.full(curves.shape[:2], np.nan)
        return fit_extrapolation(ks[valid].astype(np.float64), curves)[0]
    v0 = np.full(curves.shape[:2], np.nan)
    x = ks[valid]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for index in np.ndindex(*curves.shape[:2]):
            try:
                v0[index] = curve_fit(extrapolation_curve, x, curves[index], bounds=([0, -np.inf], [1, np.inf]))[0][0]
            except (RuntimeError, ValueError):
                pass
    return v0
