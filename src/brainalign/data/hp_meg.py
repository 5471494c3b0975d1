"""The Harry Potter MEG recordings, in the layout the seed paper's code reads: one ``.npz`` for everyone.

Arrays: ``stimuli`` (the words, fixation entries removed), ``blocks`` (the run of each word, 1-4, the
fMRI runs' division), ``subjects`` (participant ids) and ``data`` of shape (subjects, words, 306 sensors,
time bins): 20 bins of 25 ms per 0.5 s word in the release. The file holds no onsets: each run's words
are placed on that run's own clock, one every ``word_duration`` seconds, which is how they were shown.

Each participant becomes a :class:`Recording` of modality ``meg`` with one row per word and one channel
per sensor x time bin (sensor-major). Nothing is unpickled: a release whose string arrays were saved as
Python objects is refused with a message saying how to re-save it.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from brainalign.data.recording import Recording
from brainalign.data.sources import SOURCES, require_file
from brainalign.errors import InputError
from brainalign.files import atomic_path

N_SENSORS = 306
ARRAYS = ("stimuli", "blocks", "subjects", "data")
# Where each part of a recording is in the archive, for messages in its words (Recording.fields): a word's
# onset and a row's time are its place in its block, its duration the reader's word_duration.
NAMED = {"responses": "data", "times": "blocks (word positions)", "runs": "blocks", "word": "stimuli",
         "onset": "blocks (word positions)", "duration": "word_duration", "word_run": "blocks"}


def read_hp_meg(path: str | os.PathLike, word_duration: float = 0.5) -> list[Recording]:
    """Read every participant of a Harry Potter MEG ``.npz``.

    Parameters
    ----------
    path : path
        The ``.npz`` file.
    word_duration : float
        Seconds per word (0.5 in the release), for the words' onsets.

    Returns
    -------
    list of Recording
        One per participant, in the file's order.

    Raises
    ------
    InputError
        If the file is unreadable, an array is missing or malformed, or the sensors are not 306.
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(path, "file", "a readable .npz archive", f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputError(path, "file", f"an .npz archive with arrays {list(ARRAYS)}", "a single .npy array")
    with archive:
        missing = [a for a in ARRAYS if a not in archive.files]
        if missing:
            raise InputError(path, missing[0], "an array of that name", f"arrays {sorted(archive.files)}")
        arrays = {}
        for name in ARRAYS:
            try:
                arrays[name] = archive[name]
            except ValueError as exc:  # an object array: loading it would unpickle
                raise InputError(path, name, "a plain numpy array (strings as a 'U' or 'S' array)",
                                 "an object array, which would have to be unpickled; re-save it with "
                                 f"np.asarray({name}, dtype=str)") from exc
            except (OSError, zipfile.BadZipFile, EOFError) as exc:
                raise InputError(path, name, "a readable array", f"{type(exc).__name__}: {exc}") from exc
    data = arrays["data"]
    if data.ndim != 4 or not np.issubdtype(data.dtype, np.number):
        raise InputError(path, "data", "a numeric array (subjects, words, sensors, time bins)",
                         f"{data.dtype} array of shape {data.shape}")
    n_subjects, n_words, n_sensors, n_bins = data.shape
    if n_subjects == 0 or n_words == 0 or n_bins == 0:
        raise InputError(path, "data", "at least one participant, word and time bin", f"shape {data.shape}")
    if n_sensors != N_SENSORS:
        raise InputError(path, "data", f"{N_SENSORS} sensors on axis 2 (Elekta Neuromag: 102 x 3)",
                         f"{n_sensors} (shape {data.shape})")
    stimuli = _strings(path, "stimuli", arrays["stimuli"])
    subjects = _strings(path, "subjects", arrays["subjects"])
    blocks = np.asarray(arrays["blocks"]).reshape(-1)
    if len(stimuli) != n_words:
        raise InputError(path, "stimuli", f"{n_words} words (data's axis 1)", f"{len(stimuli)}")
    if blocks.shape[0] != n_words or not np.issubdtype(blocks.dtype, np.number):
        raise InputError(path, "blocks", f"{n_words} numeric run labels (data's axis 1)",
                         f"{blocks.dtype} array of {blocks.shape[0]}")
    if not np.all(np.isfinite(blocks)) or not np.all(blocks == np.rint(blocks)):
        raise InputError(path, "blocks", "whole run numbers", f"values {np.unique(blocks)[:10].tolist()}")
    if len(subjects) != n_subjects:
        raise InputError(path, "subjects", f"{n_subjects} ids (data's axis 0)", f"{len(subjects)}")
    blocks = blocks.astype(np.int64)
    onsets = np.zeros(n_words)
    for block in np.unique(blocks):
        rows = np.flatnonzero(blocks == block)
        onsets[rows] = np.arange(rows.size) * word_duration
    words = pd.DataFrame({"word": stimuli, "onset": onsets, "duration": word_duration, "run": blocks})
    names = [f"sensor{s:03d}@{b}" for s in range(n_sensors) for b in range(n_bins)]
    return [Recording(subject=subjects[i], modality="meg", responses=data[i].reshape(n_words, -1), times=onsets,
                      runs=blocks, words=words, channel_names=names, source=f"{path}[{subjects[i]}]",
                      extra={"n_sensors": n_sensors, "n_bins": n_bins}, fields=NAMED)
            for i in range(n_subjects)]


def _strings(path: Path, name: str, array: np.ndarray) -> list[str]:
    array = np.asarray(array).reshape(-1)
    if array.dtype.kind == "U":
        return [str(x) for x in array]
    if array.dtype.kind == "S":
        out = []
        for i, raw in enumerate(array):
            try:
                out.append(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise InputError(path, f"{name}[{i}]", "UTF-8 text", f"bytes {raw!r} ({exc.reason})") from exc
        return out
    if np.issubdtype(array.dtype, np.integer):
        return [str(x) for x in array]
    raise InputError(path, name, "an array of strings", f"{array.dtype} array")


def write_hp_meg(recordings: list[Recording], path: str | os.PathLike) -> None:
    """Write MEG recordings of the same words as one release-layout ``.npz``, atomically.

    Every recording must have the same words and runs and ``extra["n_bins"]`` time bins per sensor.
    """
    first = recordings[0]
    n_bins = int(first.extra["n_bins"])
    for rec in recordings[1:]:
        if not rec.words["word"].equals(first.words["word"]) or not np.array_equal(rec.runs, first.runs):
            raise InputError(rec.source, "words", f"the words and runs of participant {first.subject}", "others")
    data = np.stack([r.responses.reshape(len(r.words), -1, n_bins) for r in recordings]).astype(np.float32)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, stimuli=np.asarray(first.words["word"].tolist(), dtype=str),
                     blocks=first.runs.astype(np.int64), subjects=np.asarray([r.subject for r in recordings]),
                     data=data)


def bins_per_sensor(channel_names: list[str]) -> int:
    """Time bins per sensor, from the MEG loader's channel names (``sensorSSS@B``, sensor-major)."""
    return sum(1 for name in channel_names if name.startswith(channel_names[0].split("@")[0] + "@"))


@SOURCES.register("hp_meg")
def read_hp_meg_dataset(path: Path, participants: Sequence[str] | str | None = None) -> list[Recording]:
    """Every participant of a Harry Potter MEG ``.npz`` (one file holds them all)."""
    require_file(path, "a Harry Potter MEG .npz file")
    return read_hp_meg(path)
