"""The prepared dataset on disk: per participant, examples (TR windows), responses and folds.

Layout under the prepared directory::

    subjects.json                 participant ids, in order
    <subject>/responses.npy       (n_examples, n_channels) float32, detrended and z-scored within run
    <subject>/examples.parquet    one row per example: tr, time, run, n_words, text
    <subject>/folds.json          leave-one-run-out splits (row indices into the examples)
    <subject>/space.npz           coords, affine, volume_shape (voxel data) for maps
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from brainalign.errors import InputError
from brainalign.files import atomic_path
from brainalign.folds import Fold, detrend_zscore, leave_one_run_out, trim_mask
from brainalign.recordings.base import Recording
from brainalign.windows import MIN_LEAD, SPAN, tr_windows


@dataclass
class PreparedSubject:
    """One participant's examples, ready for training and scoring."""

    subject: str
    examples: pd.DataFrame
    responses: np.ndarray
    folds: list[Fold]
    coords: np.ndarray | None = None
    affine: np.ndarray | None = None
    volume_shape: tuple[int, int, int] | None = None


def prepare_recording(recording: Recording, drop_start: int = 20, drop_end: int = 15,
                      span: float = SPAN, min_lead: float = MIN_LEAD) -> PreparedSubject:
    """Trim, detrend and z-score within run, attach word windows, and split into folds."""
    keep = trim_mask(recording.runs, drop_start, drop_end)
    if not keep.any():
        raise InputError(recording.source, "runs", f"runs longer than {drop_start + drop_end} TRs",
                         "nothing left after trimming")
    responses = detrend_zscore(recording.responses[keep], recording.runs[keep])
    windows = tr_windows(recording.times, recording.runs, recording.story_words(), span, min_lead)
    rows = np.flatnonzero(keep)
    usable = windows["valid"].to_numpy()[rows]
    if not usable.any():
        raise InputError(recording.source, "words", "words in the 10 s before the kept TRs", "none")
    rows = rows[usable]
    examples = pd.DataFrame({
        "tr": rows, "time": recording.times[rows], "run": recording.runs[rows],
        "n_words": windows["n_words"].to_numpy()[rows], "text": windows["text"].to_numpy()[rows],
    })
    return PreparedSubject(subject=recording.subject, examples=examples, responses=responses[usable],
                           folds=leave_one_run_out(examples["run"].to_numpy()), coords=recording.coords,
                           affine=recording.affine, volume_shape=recording.volume_shape)


def write_prepared(subjects: list[PreparedSubject], directory: str | os.PathLike) -> None:
    """Write the prepared dataset, replacing ``directory`` atomically."""
    with atomic_path(directory) as tmp:
        tmp.mkdir(parents=True)
        (tmp / "subjects.json").write_text(json.dumps([s.subject for s in subjects]) + "\n")
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


def prepared_subjects(directory: str | os.PathLike) -> list[str]:
    """Participant ids of a prepared dataset, in order."""
    path = Path(directory) / "subjects.json"
    if not path.exists():
        raise InputError(path, "subjects.json", "the list of prepared participants", "no such file")
    return [str(s) for s in json.loads(path.read_text())]


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
    coords = affine = shape = None
    if (folder / "space.npz").exists():
        with np.load(folder / "space.npz", allow_pickle=False) as space:
            coords, affine, shape = space["coords"], space["affine"], tuple(int(s) for s in space["volume_shape"])
    return PreparedSubject(subject=subject, examples=examples, responses=responses, folds=folds,
                           coords=coords, affine=affine, volume_shape=shape)
