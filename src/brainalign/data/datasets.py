"""Reading a dataset of params.yaml: its participants, through the loader its source names.

Importing this module imports every format module, so each has registered its loader in
:data:`brainalign.data.sources.SOURCES`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from brainalign.data import hp_fmri, hp_meg, own, simulated  # noqa: F401  (they register their loaders)
from brainalign.data.recording import Recording
from brainalign.data.sources import SOURCES
from brainalign.errors import ConfigError


def read_dataset(source: str, path: str | os.PathLike, participants: Sequence[str] | str | None = None
                 ) -> list[Recording]:
    """The participants of a dataset, read by the loader registered as ``source``.

    Parameters
    ----------
    source : str
        A registered source (``SOURCES.names()``): simulated, hp_fmri, hp_meg, own.
    path : path
        A directory (``hp_fmri``, ``own``, simulated fMRI) or an ``.npz`` file (``hp_meg``, simulated MEG).
    participants : list of str or "all", optional
        The participant ids to read, in this order; all of them by default.
    """
    loader = SOURCES.get(source)
    return select_participants(loader(Path(path), participants), participants, path)


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
