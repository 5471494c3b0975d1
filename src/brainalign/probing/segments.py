"""Segments: the words shown during each TR, their features, and the images they are decoded from.

A segment is the story words (fixation entries left out) whose onset falls in ``[t, t + TR)`` of one TR
starting at ``t``: four words of 0.5 s in the Harry Potter experiment, the "groups of 4 words" of the seed.
Its feature values are the mean of its words' values.

The brain images paired with a segment are those ``delays`` TRs after it, within its run: one delay is the
seed's hemodynamic shift (2 TRs, 4 s), several are FIR delays (each delay's image enters the decoder as
voxels of its own). A segment is kept only where every paired image survives the seed's trimming (the first
``drop_start`` and last ``drop_end`` TRs of each run, reference section 2); responses are detrended and
z-scored within run over the kept TRs (:func:`brainalign.data.folds.detrend_zscore`), so that whole-run folds
leak nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from brainalign.data.folds import detrend_zscore, trim_mask
from brainalign.data.recording import FIXATION, Recording, assign_runs
from brainalign.errors import ConfigError, InputError


@dataclass
class Segments:
    """The segments of a recording and their features.

    Attributes
    ----------
    text : list of str
        Each segment's words joined by spaces.
    run : ndarray of shape (n_segments,)
        The run of each segment.
    tr : ndarray of shape (n_segments,)
        The row of the recording's TR each segment was shown in.
    images : ndarray of shape (n_segments, n_delays)
        The rows of the TRs whose images each segment is decoded from (``tr + delay``).
    values : ndarray of shape (n_segments, n_features)
        The mean of the segment's words' feature values.
    names : list of str
        Feature names (``group/name``).
    """

    text: list[str]
    run: np.ndarray
    tr: np.ndarray
    images: np.ndarray
    values: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return len(self.text)

    def kinds(self) -> list[str]:
        """``binary`` for a feature whose segment values are all 0 or 1, else ``continuous``."""
        return ["binary" if np.isin(column, (0.0, 1.0)).all() else "continuous" for column in self.values.T]


def check_delays(delays: Sequence[int]) -> list[int]:
    """The delays in TRs, sorted; at least one, none negative, no repeats."""
    values = [int(d) for d in delays]
    if not values or min(values) < 0 or len(set(values)) != len(values) or any(
            float(d) != int(d) for d in delays):
        raise ConfigError(f"params.yaml: probing.delays: expected distinct whole numbers of TRs >= 0 (one: a "
                          f"shift; several: FIR delays), found {list(delays)}")
    return sorted(values)


def entry_segments(recording: Recording) -> np.ndarray:
    """For each entry of ``recording.words``, the row of the TR whose segment holds it; -1 for fixations and
    words outside every TR."""
    words = recording.words
    onsets = words["onset"].to_numpy(dtype=np.float64)
    word_runs = (words["run"].to_numpy(dtype=np.int64) if "run" in words.columns
                 else assign_runs(onsets, recording.times, recording.runs))
    rows = np.full(len(words), -1, dtype=np.int64)
    for run in np.unique(recording.runs):
        trs = np.flatnonzero(recording.runs == run)
        trs = trs[np.argsort(recording.times[trs], kind="stable")]
        starts = recording.times[trs]
        length = np.median(np.diff(starts)) if len(starts) > 1 else np.inf
        mine = np.flatnonzero(word_runs == run)
        position = np.searchsorted(starts, onsets[mine], side="right") - 1
        inside = (position >= 0) & (onsets[mine] < starts[np.clip(position, 0, None)] + length)
        rows[mine[inside]] = trs[position[inside]]
    rows[words["word"].astype(str).to_numpy() == FIXATION] = -1
    return rows


def make_segments(recording: Recording, values: np.ndarray, names: Sequence[str], delays: Sequence[int] = (2,),
                  drop_start: int = 20, drop_end: int = 15) -> Segments:
    """The segments of ``recording`` with the mean of ``values`` (one row per word entry) over each.

    Parameters
    ----------
    recording : Recording
        An fMRI recording: its TRs, runs and word entries.
    values : ndarray of shape (n_entries, n_features)
        Feature values of every entry of ``recording.words`` (fixation rows are ignored).
    names : sequence of str
        The features' names.
    delays : sequence of int
        TRs from a segment to the images it is decoded from (module docstring).
    drop_start, drop_end : int
        TRs trimmed at the start and end of each run, as ``prepare`` does.
    """
    delays = check_delays(delays)
    values = np.asarray(values, dtype=np.float64)
    if recording.modality != "fmri":
        raise InputError(recording.source, "modality", "an fMRI recording (segments are the words of a TR)",
                         recording.modality)
    if values.ndim != 2 or values.shape != (len(recording.words), len(names)):
        raise InputError(recording.files["words"], "features",
                         f"one row per word entry ({len(recording.words)}) and one column per name ({len(names)})",
                         f"shape {values.shape}")
    of_entry = entry_segments(recording)
    kept = trim_mask(recording.runs, drop_start, drop_end)
    n_trs = len(recording.times)
    rows = np.unique(of_entry[of_entry >= 0])
    images = rows[:, None] + np.asarray(delays)[None, :]
    inside = (images < n_trs).all(1)
    rows, images = rows[inside], images[inside]
    usable = kept[images].all(1) & (recording.runs[images] == recording.runs[rows][:, None]).all(1)
    rows, images = rows[usable], images[usable]
    if not len(rows):
        raise InputError(recording.source, "words",
                         f"words in TRs whose images {delays} TR(s) later survive trimming", "none")
    words = recording.words["word"].astype(str).to_numpy()
    position = {row: i for i, row in enumerate(rows)}
    sums = np.zeros((len(rows), values.shape[1]))
    counts = np.zeros(len(rows))
    text: list[list[str]] = [[] for _ in rows]
    for entry, row in enumerate(of_entry):
        i = position.get(int(row))
        if i is not None:
            sums[i] += values[entry]
            counts[i] += 1
            text[i].append(words[entry])
    return Segments(text=[" ".join(t) for t in text], run=recording.runs[rows].astype(np.int64),
                    tr=rows.astype(np.int64), images=images.astype(np.int64), values=sums / counts[:, None],
                    names=list(names))


def segment_images(recording: Recording, segments: Segments, drop_start: int = 20, drop_end: int = 15,
                   channels: np.ndarray | None = None) -> np.ndarray:
    """The images each segment is decoded from: (n_segments, n_channels, n_delays), float32.

    Responses are detrended and z-scored within run over the TRs trimming keeps; ``channels`` (indices)
    limits the voxels (a region), which costs no more memory than the region.
    """
    kept = trim_mask(recording.runs, drop_start, drop_end)
    responses = recording.responses if channels is None else recording.responses[:, channels]
    clean = np.zeros(responses.shape, dtype=np.float32)
    clean[kept] = detrend_zscore(responses[kept], recording.runs[kept])
    return np.ascontiguousarray(np.transpose(clean[segments.images], (0, 2, 1)))
