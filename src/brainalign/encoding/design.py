"""The design matrix of an encoding model: word features placed at the recording's rows.

fMRI: word features resampled to every TR of the recording (:mod:`brainalign.encoding.timing`), FIR-delayed
within runs, then the prepared examples' TRs taken (so the trimmed TRs at a run's start still feed the
delays of the first kept ones, and nothing crosses runs). MEG, whose rows are words: the example words'
own features, undelayed.
"""

from __future__ import annotations

import numpy as np

from brainalign.data.prepared import PreparedSubject
from brainalign.encoding.timing import delay, resample_to_trs
from brainalign.errors import InputError


def check_words(subject: PreparedSubject, n_words: int, source: str) -> None:
    """The features must be of the participant's story: one row per word."""
    if subject.words is None:
        raise InputError(subject.source, "words.parquet", "the story's words (re-run the prepare stage)", "none")
    if len(subject.words) != n_words:
        raise InputError(source, "words", f"{len(subject.words)} rows, one per word of participant "
                         f"{subject.subject}'s story ({subject.source})", f"{n_words}")


def design_matrix(word_features: np.ndarray, subject: PreparedSubject, tr: float | None = None,
                  delays: tuple[int, ...] | list[int] = (1, 2, 3, 4), downsample: str = "sum",
                  source: str = "features") -> np.ndarray:
    """The rows of ``subject``'s examples described by ``word_features`` (one row per story word).

    Parameters
    ----------
    word_features : ndarray of shape (n_words, n_features)
    subject : PreparedSubject
        Read with its ``words`` (and, fMRI, ``trs``).
    tr : float, optional
        Seconds per TR (fMRI); by default the median spacing of the recording's TRs within runs.
    delays : sequence of int
        FIR delays in TRs (fMRI only).
    downsample : {"sum", "lanczos"}
        How words become TRs (fMRI only).

    Returns
    -------
    ndarray of shape (n_examples, n_features * len(delays)) for fMRI, (n_examples, n_features) for MEG.
    """
    word_features = np.asarray(word_features)
    check_words(subject, word_features.shape[0], source)
    rows = subject.examples["row"].to_numpy()
    if subject.modality == "meg":
        return np.asarray(word_features[rows], dtype=np.float64)
    if subject.trs is None:
        raise InputError(subject.source, "trs.parquet", "the recording's TRs (re-run the prepare stage)", "none")
    times, runs = subject.trs["time"].to_numpy(), subject.trs["run"].to_numpy()
    if tr is None:
        steps = np.concatenate([np.diff(times[runs == r]) for r in np.unique(runs)])
        tr = float(np.median(steps))
    at_trs = resample_to_trs(word_features, subject.words["onset"].to_numpy(), subject.words["run"].to_numpy(),
                             times, runs, tr, downsample)
    return delay(at_trs, runs, tuple(delays))[rows]
