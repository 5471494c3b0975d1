"""Recordings: the :class:`Recording` type and one loader per source.

Sources (``datasets.<name>.source`` in params.yaml):

``simulated``
    What the ``simulate`` stage wrote, in the real release formats: a directory of ``subject_N.mat``
    (fMRI) or a Harry Potter MEG ``.npz``.
``hp_fmri``
    The Harry Potter fMRI release: a directory of ``subject_N.mat`` (MATLAB v5 or v7.3).
``hp_meg``
    The Harry Potter MEG ``.npz`` (subjects x words x 306 sensors x time bins).
``own``
    Your own recordings: a directory per participant (see :mod:`brainalign.data.own`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from brainalign.errors import ConfigError, InputError
from brainalign.data.recording import FIXATION, Recording, assign_runs
from brainalign.data.hp_fmri import read_hp_fmri, subject_files, write_hp_fmri
from brainalign.data.hp_meg import read_hp_meg, write_hp_meg
from brainalign.data.own import participant_dirs, read_own, write_own

SOURCES = ("simulated", "hp_fmri", "hp_meg", "own")


def read_dataset(source: str, path: str | os.PathLike, participants: Sequence[str] | str | None = None
                 ) -> list[Recording]:
    """The participants of a dataset, by source.

    Parameters
    ----------
    source : {"simulated", "hp_fmri", "hp_meg", "own"}
    path : path
        A directory (``hp_fmri``, ``own``, simulated fMRI) or an ``.npz`` file (``hp_meg``, simulated MEG).
    participants : list of str or "all", optional
        The participant ids to read, in this order; all of them by default.
    """
    path = Path(path)
    if source not in SOURCES:
        raise ConfigError(f"dataset source: expected one of {SOURCES}, found {source!r}")
    if source == "simulated":
        source = "hp_meg" if path.suffix == ".npz" else "hp_fmri"
    if source in ("hp_fmri", "own") and not path.is_dir():
        raise InputError(path, "path", f"a directory of {source} recordings", "no such directory"
                         if not path.exists() else "a file")
    if source == "hp_meg" and not path.is_file():
        raise InputError(path, "path", "a Harry Potter MEG .npz file", "no such file" if not path.exists()
                         else "a directory")
    if source == "hp_meg":
        recordings = read_hp_meg(path)
    else:
        files = subject_files(path) if source == "hp_fmri" else participant_dirs(path)
        if participants not in (None, "all"):
            # Read only the participants asked for: a release's files are large.
            wanted = {str(p) for p in participants}
            files = [f for f in files if _subject_of(f, source) in wanted] or files
        reader = read_hp_fmri if source == "hp_fmri" else read_own
        recordings = [reader(f) for f in files]
    return select_participants(recordings, participants, path)


def _subject_of(file: Path, source: str) -> str:
    return file.stem.split("_", 1)[1] if source == "hp_fmri" else file.name


def select_participants(recordings: list[Recording], participants: Sequence[str] | str | None,
                        path: str | os.PathLike) -> list[Recording]:
    """``recordings`` restricted to ``participants`` (in that order); every id asked for must exist."""
    if participants in (None, "all"):
        return recordings
    if isinstance(participants, str):
        raise ConfigError(f"participants of {path}: expected 'all' or a list of ids, found {participants!r}")
    by_id = {r.subject: r for r in recordings}
    unknown = [str(p) for p in participants if str(p) not in by_id]
    if unknown:
        raise ConfigError(f"participants of {path}: expected ids among {sorted(by_id)}, found unknown {unknown}")
    return [by_id[str(p)] for p in participants]


__all__ = ["FIXATION", "SOURCES", "Recording", "assign_runs", "participant_dirs", "read_dataset", "read_hp_fmri",
           "read_hp_meg", "read_own", "select_participants", "subject_files", "write_hp_fmri", "write_hp_meg",
           "write_own"]
