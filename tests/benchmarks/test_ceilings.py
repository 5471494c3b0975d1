"""Brain-Score's extrapolation ceiling: a slow reference loop written as Brain-Score's per-neuroid code reads,
Pereira's sampled variant's draws, and simulated participants whose true ceiling is known."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import curve_fit
from threadpoolctl import threadpool_limits

from brainalign.benchmarks.ceilings import brainscore_ceiling
from brainalign.benchmarks.metrics import linear_pearsonr
from brainalign.errors import ConfigError, InputError


@pytest.fixture(autouse=True)
def one_blas_thread():
    # Small least-squares problems: BLAS threads only add overhead.
    with threadpool_limits(1):
        yield


def metric(source, target, **keys):
    return linear_pearsonr(source, target, **keys)


def participants(seed, n_participants=4, n_neuroids=3, n_rows=80, snr=(0.5, 1.0, 2.0)):
    """Each participant's neuroids: its own mix of a shared 4-d stimulus signal, scaled to an SNR, plus noise."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n_rows, 4))
    blocks, signals, subjects = [], [], []
    for p in range(n_participants):
        signal = latent @ rng.standard_normal((4, n_neuroids))
        signal = signal / signal.std(axis=0) * np.resize(snr, n_neuroids)
        signals.append(signal)
        blocks.append(signal + rng.standard_normal((n_rows, n_neuroids)))
        subjects += [p] * n_neuroids
    return np.hstack(blocks), np.hstack(signals), np.array(subjects), np.arange(n_rows)


def v(x, v0, tau0):
    return v0 * (1 - np.exp(-x / tau0))


def reference_ceiling(responses, subjects, ids, n_bootstraps):
    """Brain-Score's blank2014 ExtrapolationCeiling, one neuroid at a time, as its code reads."""
    names = sorted(set(subjects.tolist()))
    raw = {}  # (k, subset label, held-out) -> per-split r of the held-out's neuroids
    for k in range(2, len(names) + 1):
        for subset in itertools.combinations(names, k):
            for held in subset:
                pool = [j for j in range(subjects.size) if subjects[j] in subset and subjects[j] != held]
                target = [j for j in range(subjects.size) if subjects[j] == held]
                raw[k, str(subset), held] = (target, metric(responses[:, pool], responses[:, target],
                                                            stimulus_ids=ids).per_split)
    per_neuroid = []
    for j in range(subjects.size):
        rng = np.random.RandomState(0)
        v0s = []
        for _ in range(n_bootstraps):
            points = []
            for k in range(2, len(names) + 1):
                choices = []
                for label in sorted({key[1] for key in raw if key[0] == k}):
                    if (k, label, subjects[j]) in raw:
                        target, per_split = raw[k, label, subjects[j]]
                        choices.extend(per_split[:, target.index(j)])
                points.append(np.mean(rng.choice(np.array(choices), size=len(choices), replace=True)))
            try:
                v0s.append(curve_fit(v, np.arange(2, len(names) + 1), points, bounds=([0, -np.inf], [1, np.inf]))[0][0])
            except (RuntimeError, ValueError):
                v0s.append(np.nan)
        per_neuroid.append(np.median(v0s))
    return np.array(per_neuroid)


def test_equals_a_slow_per_neuroid_reference_loop():
    responses, _, subjects, ids = participants(0, n_participants=4, n_neuroids=2, n_rows=60)
    ours = brainscore_ceiling(responses, subjects, metric, stimulus_ids=ids, n_bootstraps=15, progress=False)
    expected = reference_ceiling(responses, subjects, ids, n_bootstraps=15)
    assert ours.per_neuroid == pytest.approx(expected, abs=1e-6, nan_ok=True)
    assert ours.value == pytest.approx(np.nanmedian(expected), abs=1e-6)
    # The subsets in Brain-Score's bootstrap order: all combinations, sorted by their str label.
    assert ours.subsets[2] == sorted(itertools.combinations(range(4), 2), key=str)


def test_pereira_draws_ordered_subsets_and_heldout_participants_as_brain_score():
    responses, _, subjects, ids = participants(1, n_participants=4, n_neuroids=2, n_rows=60)
    ours = brainscore_ceiling(responses, subjects, metric, stimulus_ids=ids, n_bootstraps=5, subsets_per_k=10,
                              heldout_participants=2, fit="global", progress=False)
    subset_rng, held_rng = np.random.RandomState(0), np.random.RandomState(0)
    for k in (2, 3, 4):
        drawn = set()
        while len(drawn) < 10:
            drawn.add(tuple(subset_rng.choice(np.arange(4), size=k, replace=False).tolist()))
        held = {s: tuple(dict.fromkeys(held_rng.choice(np.array(sorted(s)), size=2).tolist())) for s in drawn}
        assert ours.subsets[k] == sorted(drawn, key=str)
        assert ours.heldout[k] == [held[s] for s in ours.subsets[k]]
        for i, subset in enumerate(ours.subsets[k]):  # scores only for the held-out participants' neuroids
            held_out = np.isin(subjects, ours.heldout[k][i])
            assert np.isfinite(ours.scores[k][i][:, held_out]).all() and np.isnan(ours.scores[k][i][:, ~held_out]).all()
    with pytest.raises(ConfigError, match="ordered 2-subsets"):
        brainscore_ceiling(responses[:, :6], subjects[:6], metric, stimulus_ids=ids, subsets_per_k=10, progress=False)


def test_string_participant_labels_give_the_same_draws_under_every_hash_seed():
    """Truth: reproducibility. Brain-Score orders string participants and drawn subsets by iterating Python sets,
    whose order follows the per-process string hash seed; ours must give the same subsets, held-out draws and
    ceiling in processes started with different ``PYTHONHASHSEED`` values."""
    import json
    import os
    import subprocess
    import sys

    code = """
import json, sys
sys.path.insert(0, "tests/benchmarks")
import numpy as np
from test_ceilings import metric, participants
from brainalign.benchmarks.ceilings import brainscore_ceiling
responses, _, subjects, ids = participants(1, n_participants=5, n_neuroids=2, n_rows=60)
names = np.array([f"subject-{s}" for s in subjects])
out = brainscore_ceiling(responses, names, metric, stimulus_ids=ids, n_bootstraps=5, subsets_per_k=8,
                         heldout_participants=2, fit="global", progress=False)
print(json.dumps({"subsets": {str(k): v for k, v in out.subsets.items()},
                  "heldout": {str(k): v for k, v in out.heldout.items()}, "value": out.value}))
"""
    runs = []
    for hash_seed in ("1", "2", "3"):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1"})
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert runs[0] == runs[1] == runs[2]
    assert len(runs[0]["subsets"]["2"]) == 8


def test_ceiling_of_simulated_participants_is_near_the_true_one():
    """Shared signal + independent noise of known SNR: with infinitely many participants the pooled others reveal
    the signal, so each neuroid's ceiling is corr(signal, response) = snr / sqrt(1 + snr²)."""
    responses, signals, subjects, ids = participants(2, n_participants=6, n_neuroids=3, n_rows=300,
                                                     snr=(1.0, 1.5, 2.0))
    ours = brainscore_ceiling(responses, subjects, metric, stimulus_ids=ids, fit="global", progress=False)
    truth = np.array([np.corrcoef(signals[:, j], responses[:, j])[0, 1] for j in range(subjects.size)])
    assert ours.value == pytest.approx(np.median(truth), rel=0.15)
    assert np.corrcoef(ours.per_neuroid, truth)[0, 1] > 0.7


def test_bad_inputs():
    responses, _, subjects, ids = participants(3, n_participants=3, n_neuroids=2, n_rows=40)
    with pytest.raises(InputError, match="at least 3 participants"):
        brainscore_ceiling(responses[:, :4], subjects[:4], metric, stimulus_ids=ids, progress=False)
    with pytest.raises(InputError, match="subjects: length"):
        brainscore_ceiling(responses, subjects[:-1], metric, stimulus_ids=ids, progress=False)
    with pytest.raises(ConfigError, match="fit: expected one of global, curve_fit"):
        brainscore_ceiling(responses, subjects, metric, stimulus_ids=ids, fit="lm", progress=False)
