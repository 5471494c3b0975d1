"""Dataset sources: how ``datasets.<name>.source`` in params.yaml names a loader.

Each format module registers its loader with ``@SOURCES.register(name)``: a function ``(path,
participants) -> list[Recording]``; :func:`brainalign.data.datasets.read_dataset` reads a dataset
through it. Sources today:

``simulated``
    What the ``simulate`` stage wrote, in the real release formats: a directory of ``subject_N.mat``
    (fMRI) or a Harry Potter MEG ``.npz`` (:mod:`brainalign.data.simulated`).
``hp_fmri``
    The Harry Potter fMRI release: a directory of ``subject_N.mat`` (MATLAB v5 or v7.3).
``hp_meg``
    The Harry Potter MEG ``.npz`` (subjects x words x 306 sensors x time bins).
``own``
    Your own recordings: a directory per participant (see :mod:`brainalign.data.own`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from brainalign.data.recording import Recording
from brainalign.errors import InputError
from brainalign.registry import Registry

Loader = Callable[[Path, "Sequence[str] | str | None"], list[Recording]]
SOURCES: Registry[Loader] = Registry("dataset source", "datasets.<name>.source")


def require_directory(path: Path, what: str) -> None:
    if not path.is_dir():
        raise InputError(path, "path", what, "no such directory" if not path.exists() else "a file")


def require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise InputError(path, "path", what, "no such file" if not path.exists() else "a directory")


def wanted_files(files: list[Path], participants: Sequence[str] | str | None, subject_of: Callable[[Path], str]
                 ) -> list[Path]:
    """Only the participants asked for (a release's files are large); all when none match, so that
    :func:`brainalign.data.datasets.select_participants` names the unknown ids."""
    if participants in (None, "all") or isinstance(participants, str):
        return files
    wanted = {str(p) for p in participants}
    return [f for f in files if subject_of(f) in wanted] or files
