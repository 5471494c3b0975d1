"""The prepared dataset on disk: per participant, examples (word windows), responses and folds.

An example is a TR and the words of the 10 s before it (fMRI), or a content word and the words of the
10 s up to its end (MEG: the word is the window's last word). Layout under the prepared directory::

    dataset.json                  modality and participant ids, in order
    validation.json               the prepared-split suite's report
    <subject>/responses.npy       (n_examples, n_channels) float32, detrended and z-scored within run
    <subject>/examples.parquet    one row per example: row, time, run, n_words, text
    <subject>/folds.json          leave-one-run-out splits (row indices into the examples)
    <subject>/space.npz           coords, affine, volume_shape (voxel data) for maps
    <subject>/channels.json       channel names (regions, sensor components), when the data have them
    <subject>/words.parquet       the story's words: word, onset, duration, run (fixations dropped)
    <subject>/trs.parquet         every TR of the recording (fMRI): time, run; ``examples.row`` indexes it
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from brainalign.data.folds import Fold, detrend_zscore, leave_one_run_out, trim_mask
from brainalign.data.recording import Recording, channel_difference
from brainalign.errors import InputError
from brainalign.files import atomic_path
from brainalign.stimuli.lexicon import is_content_word
from brainalign.stimuli.windows import MIN_LEAD, SPAN, tr_windows


@dataclass
class PreparedSubject:
    """One participant's examples, ready for training and scoring; ``source`` is where its responses (and
    channel names) were read from, for messages."""

    subject: str
    examples: pd.DataFrame
    responses: np.ndarray
    folds: list[Fold]
    coords: np.ndarray | None = None
    affine: np.ndarray | None = None
    volume_shape: tuple[int, int, int] | None = None
    channel_names: list[str] | None = None
    modality: str = "fmri"
    source: str = "<memory>"
    words: pd.DataFrame | None = None
    trs: pd.DataFrame | None = None


def prepare_recording(recording: Recording, drop_start: int = 20, drop_end: int = 15,
                      span: float = SPAN, min_lead: float = MIN_LEAD) -> PreparedSubject:
    """Prepare one participant as reference section 2 does, by modality.

    fMRI: drop the first ``drop_start`` and last ``drop_end`` TRs of each run, detrend and z-score each
    channel within run, and keep the TRs with a full window of words (``span``, ``min_lead``). MEG: keep
    the content words, detrend and standardise each sensor x bin component within run over them, and
    give each the words of the ``span`` seconds up to its end.
    """
    if recording.modality == "meg":
        return _prepare_meg(recording, span)
    keep = trim_mask(recording.runs, drop_start, drop_end)
    _require_finite(recording, keep)
    if not keep.any():
        raise InputError(recording.source, "runs", f"runs longer than {drop_start + drop_end} TRs",
                         "nothing left after trimming")
    responses = detrend_zscore(recording.responses[keep], recording.runs[keep])
    windows = tr_windows(recording.times, recording.runs, recording.story_words(), span, min_lead)
    rows = np.flatnonzero(keep)
    usable = windows["valid"].to_numpy()[rows]
    if not usable.any():
        raise InputError(recording.source, "words", f"words in the {span} s before the kept TRs", "none")
    rows = rows[usable]
    examples = pd.DataFrame({
        "row": rows, "time": recording.times[rows], "run": recording.runs[rows],
        "n_words": windows["n_words"].to_numpy()[rows], "text": windows["text"].to_numpy()[rows],
    })
    return PreparedSubject(subject=recording.subject, examples=examples, responses=responses[usable],
                           folds=leave_one_run_out(examples["run"].to_numpy()), coords=recording.coords,
                           affine=recording.affine, volume_shape=recording.volume_shape,
                           channel_names=recording.channel_names, modality="fmri",
                           source=recording.files["responses"], words=_story(recording),
                           trs=pd.DataFrame({"time": recording.times, "run": recording.runs}))


def _story(recording: Recording) -> pd.DataFrame:
    words = recording.story_words()
    return pd.DataFrame({"word": words["word"].astype(str), "onset": words["onset"].astype(np.float64),
                         "duration": words["duration"].astype(np.float64), "run": words["run"].astype(np.int64)})


def _prepare_meg(recording: Recording, span: float) -> PreparedSubject:
    words = recording.story_words()
    if len(words) != recording.responses.shape[0]:
        raise InputError(recording.source, "words", f"{recording.responses.shape[0]} words (one per row)",
                         f"{len(words)}")
    content = np.array([is_content_word(w) for w in words["word"]])
    if not content.any():
        raise InputError(recording.source, "words", "content words", "none")
    runs = words["run"].to_numpy()
    ends = (words["onset"] + words["duration"]).to_numpy()
    # The window of a word: the words of its run that start in the span seconds before it ends.
    windows = tr_windows(ends, runs, words, span, min_lead=0.0)
    rows = np.flatnonzero(content)
    examples = pd.DataFrame({"row": rows, "time": words["onset"].to_numpy()[rows], "run": runs[rows],
                             "n_words": windows["n_words"].to_numpy()[rows],
                             "text": windows["text"].to_numpy()[rows], "word": words["word"].to_numpy()[rows]})
    keep = np.zeros(len(words), dtype=bool)
    keep[rows] = True
    _require_finite(recording, keep)
    responses = detrend_zscore(recording.responses[rows], runs[rows])
    return PreparedSubject(subject=recording.subject, examples=examples, responses=responses,
                           folds=leave_one_run_out(runs[rows]), channel_names=recording.channel_names,
                           modality="meg", source=recording.files["responses"], words=_story(recording))


def _require_finite(recording: Recording, rows: np.ndarray) -> None:
    """Detrending spreads a NaN over its whole run: refuse non-finite responses in the rows used."""
    bad = ~np.isfinite(recording.responses[rows])
    if bad.any():
        row, channel = np.argwhere(bad)[0]
        raise InputError(recording.source, "responses", "finite values in every row used",
                         f"{int(bad.sum())} non-finite value(s), first at row {int(np.flatnonzero(rows)[row])}, "
                         f"channel {int(channel)}")


def write_prepared(subjects: list[PreparedSubject], directory: str | os.PathLike, report: dict | None = None) -> None:
    """Write the prepared dataset (and its validation ``report``), replacing ``directory`` atomically.

    Raises
    ------
    InputError
        If the participants' channel names differ: the dataset pools them (the report labels every
        participant's channels with the first one's names).
    """
    _require_same_channels(subjects)
    with atomic_path(directory) as tmp:
        tmp.mkdir(parents=True)
        modalities = sorted({s.modality for s in subjects})
        if len(modalities) != 1:
            raise InputError(directory, "modality", "one modality per dataset", f"{modalities}")
        (tmp / "dataset.json").write_text(json.dumps({"modality": modalities[0],
                                                      "subjects": [s.subject for s in subjects]}, indent=2) + "\n")
        if report is not None:
            (tmp / "validation.json").write_text(json.dumps(report, indent=2) + "\n")
        for prepared in subjects:
            folder = tmp / prepared.subject
            folder.mkdir()
            np.save(folder / "responses.npy", prepared.responses.astype(np.float32))
            prepared.examples.to_parquet(folder / "examples.parquet", index=False)
            folds = [{"fold": f.index, "heldout_run": f.heldout_run, "train": f.train.tolist(),
                      "test": f.test.tolist()} for f in prepared.folds]
            (folder / "folds.json").write_text(json.dumps(folds) + "\n")
            if prepared.coords is not None:
                np.savez(folder / "space.npz", coords=prepared.coords, affine=prepared.affine,
                         volume_shape=np.asarray(prepared.volume_shape))
            if prepared.channel_names is not None:
                (folder / "channels.json").write_text(json.dumps(list(prepared.channel_names)) + "\n")
            for name in ("words", "trs"):
                if getattr(prepared, name) is not None:
                    getattr(prepared, name).to_parquet(folder / f"{name}.parquet", index=False)


def _require_same_channels(subjects: list[PreparedSubject]) -> None:
    for other in subjects[1:]:
        difference = channel_difference(other.channel_names, subjects[0].channel_names)
        if difference is not None:
            position, mine, theirs = difference
            raise InputError(other.source, "channel names",
                             f"the channel names of participant {subjects[0].subject} ({subjects[0].source})",
                             f"participant {other.subject}'s channel {position} is {_named(mine)} where "
                             f"participant {subjects[0].subject}'s is {_named(theirs)}")


def _named(name: str | None) -> str:
    return "missing" if name is None else repr(name)


def prepared_dataset(directory: str | os.PathLike) -> dict:
    """The prepared dataset's description: ``modality`` and ``subjects`` (ids, in order)."""
    path = Path(directory) / "dataset.json"
    if not path.exists():
        raise InputError(path, "dataset.json", "the description of a prepared dataset", "no such file")
    return json.loads(path.read_text())


def prepared_subjects(directory: str | os.PathLike) -> list[str]:
    """Participant ids of a prepared dataset, in order."""
    return [str(s) for s in prepared_dataset(directory)["subjects"]]


def read_prepared(directory: str | os.PathLike, subject: str) -> PreparedSubject:
    """Read one participant of a prepared dataset (no pickles: .npy and .npz without object arrays)."""
    folder = Path(directory) / subject
    responses = np.load(folder / "responses.npy", allow_pickle=False)
    examples = pd.read_parquet(folder / "examples.parquet")
    if len(examples) != responses.shape[0]:
        raise InputError(folder / "responses.npy", "rows", f"{len(examples)} (one per example)",
                         f"{responses.shape[0]}")
    folds = [Fold(index=f["fold"], heldout_run=f["heldout_run"], train=np.asarray(f["train"], dtype=np.int64),
                  test=np.asarray(f["test"], dtype=np.int64))
             for f in json.loads((folder / "folds.json").read_text())]
    coords = affine = shape = names = None
    if (folder / "space.npz").exists():
        with np.load(folder / "space.npz", allow_pickle=False) as space:
            coords, affine, shape = space["coords"], space["affine"], tuple(int(s) for s in space["volume_shape"])
    if (folder / "channels.json").exists():
        names = [str(n) for n in json.loads((folder / "channels.json").read_text())]
    tables = {name: pd.read_parquet(folder / f"{name}.parquet") if (folder / f"{name}.parquet").exists() else None
              for name in ("words", "trs")}
    return PreparedSubject(subject=subject, examples=examples, responses=responses, folds=folds,
                           coords=coords, affine=affine, volume_shape=shape, channel_names=names,
                           modality=prepared_dataset(directory)["modality"], source=str(folder), **tables)
