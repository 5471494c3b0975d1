"""The one in-memory recording type every loader produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from brainalign.errors import InputError

FIXATION = "+"
WORD_COLUMNS = ("word", "onset", "duration")
MODALITIES = ("fmri", "meg")
# The parts of a recording that may each come from a file of their own (Recording.files).
FILE_PARTS = ("responses", "times", "words")
# What each part is called in the file it was read from (Recording.fields); these are the own format's.
FIELDS = {"responses": "responses", "times": "onset", "runs": "run", "word": "word", "onset": "onset",
          "duration": "duration", "word_run": "run"}


@dataclass
class Recording:
    """One participant's responses to a text, with its timing and spatial information.

    Parameters
    ----------
    subject : str
        Participant id.
    responses : ndarray of shape (n_times, n_channels)
        Responses per TR (fMRI) and voxel, region or sensor component, float32.
    times : ndarray of shape (n_times,)
        Start time of each TR, seconds, on the same clock as ``words.onset``.
    runs : ndarray of shape (n_times,)
        Run label of each TR (1-based).
    words : DataFrame
        Columns ``word``, ``onset`` and ``duration`` (seconds), in presentation order, and optionally
        ``run`` (sources whose runs each have their own clock say which run a word belongs to; otherwise a
        word belongs to the run of the last TR at or before its onset). Fixation entries (``"+"``) are
        kept as the release has them; :func:`story_words` drops them. Rows are the entries of the words'
        file, in its order, so that a message can name the row of the file a word came from.
    modality : {"fmri", "meg"}
        ``fmri``: one row per TR (voxels or regions). ``meg``: one row per word, its sensor x time-bin
        components; ``times`` are the words' onsets.
    coords : ndarray of shape (n_channels, 3), optional
        0-based voxel indices into a volume of ``volume_shape``.
    affine : ndarray of shape (4, 4), optional
        Maps 0-based voxel indices to MNI millimetres.
    volume_shape : tuple of int, optional
        Shape of the volume ``coords`` index into.
    channel_names : list of str, optional
        Region or sensor names, for data that are not voxels.
    source : str
        Where the recording was read from, for error messages.
    extra : dict
        Format-specific details (a release's metadata, MEG sensors and time bins).
    files : dict of str to str
        The file each part (``responses``; ``times``, with the runs; ``words``) was read from, for
        messages that name the user's file; a part not given was read from ``source``.
    fields : dict of str to str
        What the file calls each part, for messages in the user's words: ``responses``, ``times``, ``runs``
        (of the TRs), ``word``, ``onset``, ``duration`` and ``word_run`` (of the words); a part not given
        keeps its name in :data:`FIELDS` (the own format's column names).
    """

    subject: str
    modality: str
    responses: np.ndarray
    times: np.ndarray
    runs: np.ndarray
    words: pd.DataFrame
    coords: np.ndarray | None = None
    affine: np.ndarray | None = None
    volume_shape: tuple[int, int, int] | None = None
    channel_names: list[str] | None = None
    source: str = "<memory>"
    extra: dict = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, given, known in (("files", self.files, FILE_PARTS), ("fields", self.fields, FIELDS)):
            unknown = sorted(set(given) - set(known))
            if unknown:
                raise InputError(self.source, name, f"parts among {list(known)}", f"{unknown}")
        self.files = {part: str(self.files.get(part, self.source)) for part in FILE_PARTS}
        self.fields = {**FIELDS, **self.fields}
        self.responses = np.asarray(self.responses, dtype=np.float32)
        self.times = np.asarray(self.times, dtype=np.float64).reshape(-1)
        runs = np.asarray(self.runs, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(runs)) or not np.all(runs == np.rint(runs)):
            bad = runs[~(np.isfinite(runs) & (runs == np.rint(runs)))]
            raise InputError(self.source, "runs", "whole run numbers", f"values such as {bad[:5].tolist()}")
        self.runs = runs.astype(np.int64)
        if self.responses.ndim != 2:
            raise InputError(self.source, "responses", "a 2-D array (times x channels)",
                             f"shape {self.responses.shape}")
        n = self.responses.shape[0]
        for name in ("times", "runs"):
            if getattr(self, name).shape[0] != n:
                raise InputError(self.source, name, f"{n} entries (one per row of the responses)",
                                 f"{getattr(self, name).shape[0]}")
        if self.modality not in MODALITIES:
            raise InputError(self.source, "modality", f"one of {MODALITIES}", repr(self.modality))
        missing = [c for c in WORD_COLUMNS if c not in self.words.columns]
        if missing:
            raise InputError(self.source, "words", f"columns {list(WORD_COLUMNS)}",
                             f"columns {list(self.words.columns)}")
        if self.coords is not None:
            self.coords = np.asarray(self.coords, dtype=np.int64)
            if self.coords.shape != (self.responses.shape[1], 3):
                raise InputError(self.source, "coords", f"shape ({self.responses.shape[1]}, 3)",
                                 f"shape {self.coords.shape}")
            if self.volume_shape is not None and (
                (self.coords < 0).any() or (self.coords >= np.asarray(self.volume_shape)).any()
            ):
                bad = np.flatnonzero(((self.coords < 0) | (self.coords >= self.volume_shape)).any(1))
                raise InputError(self.source, "coords", f"voxel indices inside the volume {self.volume_shape}",
                                 f"{bad.size} voxel(s) outside, first column {bad[0]}")

    @property
    def n_channels(self) -> int:
        return int(self.responses.shape[1])

    def story_words(self) -> pd.DataFrame:
        """The words of the text, without fixation entries, with the run each falls in."""
        words = self.words[self.words["word"] != FIXATION].reset_index(drop=True)
        if "run" in words.columns:
            return words.assign(run=words["run"].to_numpy(dtype=np.int64))
        return words.assign(run=assign_runs(words["onset"].to_numpy(), self.times, self.runs))


def assign_runs(onsets: np.ndarray, times: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """The run of each onset: the run of the last TR that starts at or before it (0 if none)."""
    order = np.argsort(times, kind="stable")
    position = np.searchsorted(times[order], onsets, side="right") - 1
    found = np.where(position >= 0, runs[order][np.clip(position, 0, None)], 0)
    return found.astype(np.int64)


def channel_difference(names: Sequence[str] | None, others: Sequence[str] | None
                       ) -> tuple[int, str | None, str | None] | None:
    """Where two participants' channel names first differ: the 1-based position and each one's name there.

    A name is None past the end of its list, or when the participant has no names (voxels, an unnamed
    matrix) while the other has. None when the names agree (or neither participant has any).
    """
    if names is None and others is None:
        return None
    first, second = list(names or []), list(others or [])
    for position in range(max(len(first), len(second))):
        mine = first[position] if position < len(first) else None
        theirs = second[position] if position < len(second) else None
        if mine != theirs:
            return position + 1, mine, theirs
    return None
