"""The Harry Potter fMRI release (Wehbe et al. 2014): one MATLAB ``subject_N.mat`` per participant.

Variables: ``data`` (TRs x voxels), ``time`` (TRs x 2: start time in seconds, run 1-4), ``words``
(1 x N struct array: ``text``, ``start``, ``length``) and ``meta`` (``subject``, ``nTRs``, ``nvoxels``,
``dimx``/``dimy``/``dimz``, ``colToCoord`` (1-based), ``coordToCol``, ``colToROInum``,
``coordToROInum``, ``ROInumToName``, ``voxel_size``, ``matrix``). ``matrix`` follows the SPM convention and
maps 1-based voxel coordinates to MNI millimetres; :class:`Recording` holds 0-based indices and the matching
affine. Fixation entries (``+``) stay in ``words``; ``meta.nvoxels`` may disagree with the columns of
``data`` (the data win, with a warning). Both MATLAB v5 and v7.3 (HDF5) files are read (see :mod:`.matfile`).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.io

from brainalign.data.matfile import load_mat, write_mat73
from brainalign.data.recording import Recording
from brainalign.data.sources import SOURCES, require_directory, wanted_files
from brainalign.errors import InputError
from brainalign.files import atomic_path

log = logging.getLogger(__name__)

VARIABLES = ("data", "time", "words", "meta")
HEADER_TEXT = b"MATLAB 5.0 MAT-file, Platform: posix, written by brainalign".ljust(116, b" ")
WORD_FIELDS = ("text", "start", "length")
# Where each part of a recording is in the file, for messages in the release's words (Recording.fields).
NAMED = {"responses": "data", "times": "time[:, 0]", "runs": "time[:, 1]", "word": "words.text",
         "onset": "words.start", "duration": "words.length"}
# SPM affines act on 1-based indices; shifting by one voxel converts to the 0-based convention.
_ONE_BASED = np.array([[1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 1, 1], [0, 0, 0, 1]], dtype=np.float64)


def subject_files(directory: str | os.PathLike) -> list[Path]:
    """The ``subject_N.mat`` files of a release directory, ordered by N."""
    directory = Path(directory)
    files = [p for p in directory.glob("subject_*.mat") if re.fullmatch(r"subject_\d+\.mat", p.name)]
    if not files:
        raise InputError(directory, "subject_N.mat", "at least one participant file", "none")
    return sorted(files, key=lambda p: int(p.stem.split("_")[1]))


def read_hp_fmri(path: str | os.PathLike) -> Recording:
    """Read one participant of the Harry Potter fMRI release.

    Parameters
    ----------
    path : path
        A ``subject_N.mat`` file.

    Returns
    -------
    Recording

    Raises
    ------
    InputError
        If the file is unreadable or a variable is missing or malformed.
    """
    path = Path(path)
    mat = load_mat(path)
    missing = [v for v in VARIABLES if v not in mat]
    if missing:
        present = sorted(k for k in mat if not k.startswith("__"))
        raise InputError(path, missing[0], "a variable of that name", f"variables {present}")

    data = _float_matrix(path, "data", mat["data"])
    if data.shape[0] < 2:
        # MATLAB has no 1-D arrays: a vector arrives as one row, and one TR is no experiment.
        raise InputError(path, "data", "a TRs x voxels matrix", f"a single row of shape {data.shape}")
    time = _float_matrix(path, "time", mat["time"])
    if time.shape != (data.shape[0], 2):
        raise InputError(path, "time", f"shape ({data.shape[0]}, 2): one row per TR of data",
                         f"shape {time.shape}")
    words = _read_words(path, mat["words"])
    meta = _read_meta(path, mat["meta"], n_columns=data.shape[1])
    stem = path.stem
    return Recording(
        subject=stem.split("_", 1)[1] if "_" in stem else stem,
        modality="fmri",
        responses=data,
        times=time[:, 0],
        runs=np.rint(time[:, 1]),
        words=words,
        coords=meta["coords"],
        affine=meta["affine"],
        volume_shape=meta["volume_shape"],
        channel_names=None,
        source=str(path),
        extra={"meta": meta["raw"]},
        fields=NAMED,
    )


def _float_matrix(path: Path, name: str, value: object) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise InputError(path, name, "a 2-D numeric matrix", f"{array.dtype} array of shape {array.shape}")
    return array


def _scalar(value: object) -> float:
    """A MATLAB scalar as scipy loads it (a 1 x 1 array) as a Python float."""
    return float(np.asarray(value).reshape(-1)[0])


def _read_words(path: Path, words: np.ndarray) -> pd.DataFrame:
    words = np.asarray(words).reshape(-1)
    names = words.dtype.names or ()
    missing = [f for f in WORD_FIELDS if f not in names]
    if missing:
        raise InputError(path, "words", f"a struct array with fields {list(WORD_FIELDS)}",
                         f"fields {list(names)}")
    try:
        text = [_as_text(t) for t in words["text"]]
        start = np.array([_scalar(s) for s in words["start"]])
        length = np.array([_scalar(s) for s in words["length"]])
    except (TypeError, ValueError, IndexError) as exc:
        raise InputError(path, "words", "text strings and numeric start/length per entry",
                         f"{type(exc).__name__}: {exc}") from exc
    return pd.DataFrame({"word": text, "onset": start, "duration": length})


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    array = np.asarray(value)
    if array.size == 0:
        return ""
    if array.dtype.kind in "US":
        return "".join(str(x) for x in array.reshape(-1))
    raise TypeError(f"word text of type {array.dtype}")


def _read_meta(path: Path, meta: np.ndarray, n_columns: int) -> dict:
    meta = np.asarray(meta).reshape(-1)
    names = meta.dtype.names or ()
    if "colToCoord" not in names:
        raise InputError(path, "meta.colToCoord", "a voxels x 3 matrix of 1-based coordinates",
                         f"meta fields {list(names)}")
    if meta.size != 1:
        raise InputError(path, "meta", "a 1 x 1 struct", f"{meta.size} elements")
    raw = {name: meta[name][0] for name in names}
    coords = np.asarray(raw["colToCoord"], dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 3 or coords.shape[0] != n_columns:
        raise InputError(path, "meta.colToCoord", f"shape ({n_columns}, 3): one row per column of data",
                         f"shape {coords.shape}")
    if "nvoxels" in raw and int(_scalar(raw["nvoxels"])) != n_columns:
        log.warning("%s: meta.nvoxels is %s but data has %d columns; using the data's columns",
                    path, raw["nvoxels"], n_columns)
    dims = tuple(int(_scalar(raw[k])) for k in ("dimx", "dimy", "dimz")) if all(
        k in raw for k in ("dimx", "dimy", "dimz")) else None
    coords = np.rint(coords).astype(np.int64) - 1
    if dims is not None and ((coords < 0).any() or (coords >= np.asarray(dims)).any()):
        bad = np.flatnonzero(((coords < 0) | (coords >= np.asarray(dims))).any(1))
        raise InputError(path, "meta.colToCoord", f"1-based coordinates inside the volume {dims}",
                         f"{bad.size} voxel(s) outside, first at column {bad[0] + 1}")
    affine = None
    if "matrix" in raw:
        matrix = np.asarray(raw["matrix"], dtype=np.float64)
        if matrix.shape != (4, 4):
            raise InputError(path, "meta.matrix", "a 4 x 4 affine", f"shape {matrix.shape}")
        affine = matrix @ _ONE_BASED
    return {"coords": coords, "affine": affine, "volume_shape": dims, "raw": raw}


def write_hp_fmri(recording: Recording, path: str | os.PathLike, region_of_voxel: np.ndarray | None = None,
                  region_names: list[str] | None = None, voxel_size: float | None = None,
                  version: str = "5") -> None:
    """Write ``recording`` as a ``subject_N.mat`` file of the release, atomically.

    Parameters
    ----------
    recording : Recording
        Must carry ``coords``, ``affine`` and ``volume_shape``.
    path : path
        Destination ``subject_N.mat``.
    region_of_voxel : ndarray of int, optional
        1-based region number of each voxel (0 = none), for ``colToROInum``.
    region_names : list of str, optional
        Names of the regions, for ``ROInumToName``.
    voxel_size : float, optional
        Voxel edge in millimetres, for ``voxel_size``.
    version : {"5", "7.3"}
        MATLAB file version: v5 (what the release holds) or v7.3 (HDF5).
    """
    if version not in ("5", "7.3"):
        raise ValueError(f"version: expected '5' or '7.3', found {version!r}")
    if recording.coords is None or recording.affine is None or recording.volume_shape is None:
        raise InputError(recording.source, "coords/affine/volume_shape", "spatial information", "none")
    n_voxels = recording.n_channels
    coords1 = recording.coords + 1
    coord_to_col = np.zeros(recording.volume_shape, dtype=np.float64)
    coord_to_col[tuple(recording.coords.T)] = np.arange(1, n_voxels + 1)
    regions = np.zeros(n_voxels) if region_of_voxel is None else np.asarray(region_of_voxel, dtype=np.float64)
    coord_to_roi = np.zeros(recording.volume_shape, dtype=np.float64)
    coord_to_roi[tuple(recording.coords.T)] = regions
    words = np.empty((1, len(recording.words)), dtype=[(f, object) for f in WORD_FIELDS])
    for i, row in enumerate(recording.words.itertuples(index=False)):
        words[0, i] = (str(row.word), float(row.onset), float(row.duration))
    meta = {
        "subject": recording.subject,
        "nTRs": float(recording.responses.shape[0]),
        "nvoxels": float(n_voxels),
        "dimx": float(recording.volume_shape[0]),
        "dimy": float(recording.volume_shape[1]),
        "dimz": float(recording.volume_shape[2]),
        "colToCoord": coords1.astype(np.float64),
        "coordToCol": coord_to_col,
        "colToROInum": regions.reshape(-1, 1),
        "coordToROInum": coord_to_roi,
        "ROInumToName": np.array(list(region_names or []), dtype=object).reshape(1, -1),
        "voxel_size": float(voxel_size) if voxel_size is not None else float(abs(recording.affine[0, 0])),
        "matrix": recording.affine @ np.linalg.inv(_ONE_BASED),
    }
    content = {
        "data": recording.responses.astype(np.float32),
        "time": np.column_stack([recording.times, recording.runs.astype(np.float64)]),
        "words": words,
        "meta": meta,
    }
    if version == "7.3":
        content["words"] = {"__struct_array__": True, "text": [str(w) for w in recording.words["word"]],
                            "start": [float(x) for x in recording.words["onset"]],
                            "length": [float(x) for x in recording.words["duration"]]}
        content["meta"] = {**meta, "ROInumToName": [str(n) for n in region_names or []],
                           "subject": str(recording.subject)}
        write_mat73(path, content)
        return
    with atomic_path(path) as tmp:
        scipy.io.savemat(tmp, content, do_compression=False, oned_as="column")
        # scipy stamps the creation time into the 116-byte header text; a fixed text keeps the file's bytes
        # (and so DVC's hash) a function of its content alone.
        with open(tmp, "r+b") as handle:
            handle.write(HEADER_TEXT)


@SOURCES.register("hp_fmri")
def read_hp_fmri_dataset(path: Path, participants: Sequence[str] | str | None = None) -> list[Recording]:
    """The ``subject_N.mat`` files of a release directory (only the participants asked for)."""
    require_directory(path, "a directory of hp_fmri recordings")
    files = wanted_files(subject_files(path), participants, lambda f: f.stem.split("_", 1)[1])
    return [read_hp_fmri(f) for f in files]
