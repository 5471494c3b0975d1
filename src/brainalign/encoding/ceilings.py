"""Noise ceilings of a prepared dataset: the subject-extrapolation estimate and, on a simulation, the truth.

The extrapolation ceiling (:func:`brainalign.metrics.ceiling.extrapolation_ceiling`) predicts each
participant from the others, so it needs participants on a shared stimulus (the same examples, in the
same order) and a shared channel space (the same voxels, or the same named regions or sensors).
:func:`shared_space` says why a dataset is not, in words the report prints.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from brainalign.data.prepared import PreparedSubject
from brainalign.metrics.ceiling import extrapolation_ceiling, true_ceiling

MIN_PARTICIPANTS = 3


def shared_space(subjects: list[PreparedSubject]) -> str | None:
    """None when the participants share stimuli and channels; otherwise why not."""
    if len(subjects) < MIN_PARTICIPANTS:
        return (f"the extrapolation ceiling needs at least {MIN_PARTICIPANTS} participants on a shared stimulus "
                f"and channel space; this dataset has {len(subjects)}")
    first = subjects[0]
    for other in subjects[1:]:
        if other.responses.shape[1] != first.responses.shape[1]:
            return (f"participants {first.subject} and {other.subject} have different channels "
                    f"({first.responses.shape[1]} and {other.responses.shape[1]}): not one channel space "
                    "(MNI voxels of one mask, or named regions)")
        if first.coords is not None and (other.coords is None or not np.array_equal(first.coords, other.coords)):
            return (f"participants {first.subject} and {other.subject} have different voxels: not one channel "
                    "space (resample both to one MNI mask)")
        if first.channel_names != other.channel_names:
            return f"participants {first.subject} and {other.subject} have differently named channels"
        a, b = first.examples, other.examples
        if len(a) != len(b) or not (a["run"].to_numpy() == b["run"].to_numpy()).all() or \
                not (a["text"].to_numpy() == b["text"].to_numpy()).all():
            return (f"participants {first.subject} and {other.subject} saw different examples: not one shared "
                    "stimulus")
    return None


def dataset_ceiling(subjects: list[PreparedSubject], channels: np.ndarray | None = None, n_bootstraps: int = 100,
                    seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Per channel of ``channels`` (default: all), the extrapolation ceiling of held-out Pearson r: columns
    ``voxel``, ``ceiling``.

    The participants are pooled over ``channels`` only, as a benchmark's neuroids are its channels (Brain-Score
    pools Pereira's language-network voxels, not the whole brain). Call :func:`shared_space` first: this one
    assumes the participants share stimulus and channels.
    """
    channels = np.arange(subjects[0].responses.shape[1]) if channels is None else np.asarray(channels)
    groups = subjects[0].examples["run"].to_numpy()
    result = extrapolation_ceiling([s.responses[:, channels] for s in subjects], groups, n_bootstraps=n_bootstraps,
                                   seed=seed, progress=progress)
    return pd.DataFrame({"voxel": channels, "ceiling": result.per_channel})


def simulated_true_ceiling(subject: PreparedSubject, truth_dir: str | os.PathLike) -> np.ndarray:
    """The true ceiling of a simulated participant per channel (0 for channels without signal).

    The noise-free signal the simulation added (``data/truth``), at the examples' TRs, against the prepared
    responses; like the held-out scores, per held-out run and then averaged over runs.
    """
    from brainalign.data.simulated import read_truth

    truth = read_truth(Path(truth_dir), subject.subject, subject.modality)
    responsive = np.flatnonzero(truth["responsive"])
    signal = truth["signal"][subject.examples["row"].to_numpy()]
    out = np.zeros(subject.responses.shape[1])
    per_run = [true_ceiling(signal[fold.test], subject.responses[fold.test][:, responsive]) for fold in subject.folds]
    out[responsive] = np.nanmean(per_run, axis=0)
    return out
