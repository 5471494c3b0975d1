"""Stimulus-aligned data: one response per presentation (a sentence, a word, a TR's words) and channel.

:class:`Presentations` is the presentation-level counterpart of :class:`~brainalign.data.recording.Recording`
(a time series per participant): the Brain-Score language datasets (Pereira 2018 fMRI, Fedorenko 2016 ECoG,
Blank 2014 fROI time courses, Futrell 2018 reading times) are all matrices of presentations x channels with
every participant's channels side by side. Loaders register under :data:`BENCHMARK_SOURCES`:
``(path: Path, **options) -> Presentations``; :func:`brainalign.data.benchmark_sources.read_benchmark_data` reads
through it with every loader registered.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from brainalign.errors import InputError
from brainalign.registry import Registry

KINDS = ("fmri", "ecog", "reading_times")
STIMULUS_COLUMNS = ("stimulus_id", "text", "sentence")
CHANNEL_COLUMNS = ("channel_id", "subject")

Loader = Callable[..., "Presentations"]
BENCHMARK_SOURCES: Registry[Loader] = Registry("benchmark data source", "benchmarks.<name>.source")


@dataclass
class Presentations:
    """Responses of many channels (of one or more participants) to a sequence of presentations.

    Parameters
    ----------
    stimuli : DataFrame
        One row per presentation, in presentation order: ``stimulus_id`` (str, unique), ``text`` (str, the
        sentence, word or words of a TR that were presented), ``sentence`` (int id) and, as the data has
        them, further grouping columns (``passage``, ``topic``, ``story``, ...).
    responses : ndarray of shape (n_presentations, n_channels)
        float32.
    channels : DataFrame
        One row per channel (voxel, electrode, fROI, reader): ``channel_id`` (str, unique), ``subject``
        (str) and optionally ``region`` (str) and more.
    group : str
        The column of ``stimuli`` that gives the cross-validation groups and the unit of context a model
        reads (``passage`` for Pereira, ``sentence`` for Fedorenko, ``story`` for Blank and Futrell).
    kind : {"fmri", "ecog", "reading_times"}
    source : str
        The file or directory read, for messages.
    allow_missing : bool
        Whether NaN responses are allowed (reading times: a reader did not read every story).
    extra : dict
        Source-specific details (experiment, atlases, the word table of Blank 2014).

    Raises
    ------
    InputError
        Naming ``source`` and the field, if shapes disagree, ids repeat, a text is empty, a response is not
        finite (unless ``allow_missing``; infinities never), a subject has no channel or ``group`` is not a
        column of ``stimuli``.
    """

    stimuli: pd.DataFrame
    responses: np.ndarray
    channels: pd.DataFrame
    group: str
    kind: str
    source: str = "<memory>"
    allow_missing: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.source = str(self.source)
        self.stimuli = pd.DataFrame(self.stimuli).reset_index(drop=True)
        self.channels = pd.DataFrame(self.channels).reset_index(drop=True)
        if self.kind not in KINDS:
            raise InputError(self.source, "kind", f"one of {list(KINDS)}", repr(self.kind))
        responses = np.asarray(self.responses)
        if responses.ndim != 2 or not (np.issubdtype(responses.dtype, np.number) or responses.dtype == bool):
            raise InputError(self.source, "responses", "a 2-D numeric array (presentations x channels)",
                             f"{responses.dtype} array of shape {responses.shape}")
        self.responses = responses.astype(np.float32, copy=False)
        for name, frame, columns in (("stimuli", self.stimuli, STIMULUS_COLUMNS),
                                     ("channels", self.channels, CHANNEL_COLUMNS)):
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                raise InputError(self.source, f"{name}.{missing[0]}", f"columns {list(columns)}",
                                 f"columns {list(frame.columns)}")
        if self.group not in self.stimuli.columns:
            raise InputError(self.source, "group", f"a column of the stimuli {list(self.stimuli.columns)}",
                             repr(self.group))
        n_presentations, n_channels = self.responses.shape
        if len(self.stimuli) != n_presentations:
            raise InputError(self.source, "stimuli", f"{n_presentations} rows (one per row of the responses)",
                             f"{len(self.stimuli)}")
        if len(self.channels) != n_channels:
            raise InputError(self.source, "channels", f"{n_channels} rows (one per column of the responses)",
                             f"{len(self.channels)}")
        if n_presentations == 0 or n_channels == 0:
            raise InputError(self.source, "responses", "at least one presentation and one channel",
                             f"shape {self.responses.shape}")
        self.stimuli["stimulus_id"] = self.stimuli["stimulus_id"].astype(str)
        self.channels["channel_id"] = self.channels["channel_id"].astype(str)
        self.channels["subject"] = self.channels["subject"].astype(str)
        for name, column in (("stimuli.stimulus_id", self.stimuli["stimulus_id"]),
                             ("channels.channel_id", self.channels["channel_id"])):
            repeated = column[column.duplicated()]
            if len(repeated):
                first = int(repeated.index[0])
                raise InputError(self.source, name, "unique ids",
                                 f"{repeated.iloc[0]!r} repeated (again at row {first + 1})")
        text = self.stimuli["text"]
        empty = ~text.map(lambda t: isinstance(t, str) and bool(t.strip()))
        if empty.any():
            row = int(np.flatnonzero(empty.to_numpy())[0])
            raise InputError(self.source, "stimuli.text", "a non-empty string per presentation",
                             f"{text.iloc[row]!r} at row {row + 1}")
        sentence = pd.to_numeric(self.stimuli["sentence"], errors="coerce")
        if sentence.isna().any() or not np.all(sentence == np.round(sentence)):
            row = int(np.flatnonzero((sentence.isna() | (sentence != np.round(sentence))).to_numpy())[0])
            raise InputError(self.source, "stimuli.sentence", "an integer sentence id per presentation",
                             f"{self.stimuli['sentence'].iloc[row]!r} at row {row + 1}")
        self.stimuli["sentence"] = sentence.astype(np.int64)
        if self.stimuli[self.group].isna().any():
            row = int(np.flatnonzero(self.stimuli[self.group].isna().to_numpy())[0])
            raise InputError(self.source, f"stimuli.{self.group}", "a group for every presentation",
                             f"a missing value at row {row + 1}")
        bad = np.isinf(self.responses) if self.allow_missing else ~np.isfinite(self.responses)
        if bad.any():
            row, column = (int(i) for i in np.argwhere(bad)[0])
            raise InputError(self.source, "responses",
                             "finite values or NaN" if self.allow_missing else "finite values",
                             f"{bad.any(axis=1).sum()} row(s) with {self.responses[row, column]} or similar, "
                             f"first at row {row + 1}, channel {column + 1} "
                             f"({self.channels['channel_id'].iloc[column]})")
        blank = self.channels["subject"].str.strip() == ""
        if blank.any():
            row = int(np.flatnonzero(blank.to_numpy())[0])
            raise InputError(self.source, "channels.subject", "a subject per channel",
                             f"an empty subject at channel {row + 1}")

    @property
    def n_presentations(self) -> int:
        return int(self.responses.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.responses.shape[1])

    @property
    def subjects(self) -> list[str]:
        """The participants, sorted."""
        return sorted(self.channels["subject"].unique())

    @property
    def groups(self) -> np.ndarray:
        """The cross-validation group (and context unit) of each presentation."""
        return self.stimuli[self.group].to_numpy()

    def subject_mask(self, subject: str) -> np.ndarray:
        """Which channels belong to ``subject`` (a boolean array over channels).

        Raises
        ------
        InputError
            If no channel belongs to ``subject``.
        """
        mask = (self.channels["subject"] == str(subject)).to_numpy()
        if not mask.any():
            raise InputError(self.source, "channels.subject", f"one of {self.subjects}", repr(subject))
        return mask

    def select_channels(self, mask: np.ndarray) -> "Presentations":
        """A copy with only the channels where ``mask`` (boolean, or integer positions) holds."""
        index = _positions(mask, self.n_channels, self.source, "channels")
        return replace(self, responses=self.responses[:, index],
                       channels=self.channels.iloc[index].reset_index(drop=True), extra=dict(self.extra))

    def select_presentations(self, mask: np.ndarray) -> "Presentations":
        """A copy with only the presentations where ``mask`` (boolean, or integer positions) holds."""
        index = _positions(mask, self.n_presentations, self.source, "stimuli")
        return replace(self, responses=self.responses[index],
                       stimuli=self.stimuli.iloc[index].reset_index(drop=True), extra=dict(self.extra))

    def for_subject(self, subject: str) -> "Presentations":
        """Only the channels of one participant."""
        return self.select_channels(self.subject_mask(subject))

    def mean_over(self, column: str = "subject") -> "Presentations":
        """One channel per value of a ``channels`` column: the mean of its channels (NaN ignored).

        ``mean_over("subject")`` gives one channel per participant; a reader's missing words stay NaN only
        where every channel of the value is missing.
        """
        if column not in self.channels.columns:
            raise InputError(self.source, "channels", f"a column {column!r}", f"columns {list(self.channels)}")
        values = self.channels[column].astype(str)
        names = list(dict.fromkeys(values))
        columns = []
        for name in names:
            block = self.responses[:, (values == name).to_numpy()].astype(np.float64)
            counts = np.isfinite(block).sum(axis=1)
            totals = np.where(np.isfinite(block), block, 0.0).sum(axis=1)
            columns.append(np.where(counts > 0, totals / np.maximum(counts, 1), np.nan))
        subjects = [self.channels.loc[values == name, "subject"].iloc[0] if column != "subject" else name
                    for name in names]
        channels = pd.DataFrame({"channel_id": names, "subject": subjects})
        return replace(self, responses=np.column_stack(columns).astype(np.float32), channels=channels,
                       extra=dict(self.extra))

    def group_indices(self) -> dict[object, np.ndarray]:
        """The presentations of each group, in order of first appearance (a model's context units)."""
        groups = self.groups
        order = list(dict.fromkeys(groups.tolist()))
        return {g: np.flatnonzero(groups == g) for g in order}


def _positions(mask: np.ndarray, size: int, source: str, what: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype == bool:
        if mask.shape != (size,):
            raise InputError(source, what, f"a boolean mask of length {size}", f"shape {mask.shape}")
        index = np.flatnonzero(mask)
    else:
        index = mask.astype(np.int64).reshape(-1)
    if index.size == 0:
        raise InputError(source, what, "at least one selected", "none")
    return index


def require_path(path: Path, what: str, directory: bool) -> None:
    """Fail with one InputError when ``path`` is not the directory (or file) a loader needs."""
    ok = path.is_dir() if directory else path.is_file()
    if not ok:
        found = "no such path" if not path.exists() else ("a file" if directory else "a directory")
        raise InputError(path, "path", what, found)
