"""Recordings: the :class:`Recording` type and one loader per source."""

from __future__ import annotations

import os

from brainalign.errors import ConfigError
from brainalign.recordings.base import FIXATION, Recording, assign_runs
from brainalign.recordings.hp_fmri import read_hp_fmri, subject_files, write_hp_fmri

SOURCES = ("simulated", "hp_fmri")


def read_dataset(source: str, path: str | os.PathLike) -> list[Recording]:
    """Every participant of a dataset, by source.

    ``simulated`` and ``hp_fmri`` are both directories of ``subject_N.mat`` files in the release format
    (the simulation writes exactly what the release holds).
    """
    if source in ("simulated", "hp_fmri"):
        return [read_hp_fmri(p) for p in subject_files(path)]
    raise ConfigError(f"dataset.source: expected one of {SOURCES}, found {source!r}")


__all__ = ["FIXATION", "SOURCES", "Recording", "assign_runs", "read_dataset", "read_hp_fmri", "subject_files",
           "write_hp_fmri"]
