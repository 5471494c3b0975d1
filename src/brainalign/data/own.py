"""Your own recordings: a plain format any pipeline can write (documented in docs/data-formats.md).

One directory per participant under the dataset's path; the directory's name is the participant id::

    <path>/<participant>/
        responses.npy                      time points x channels, float (no pickles)
     or responses.tsv                      time points x regions, a header row naming the regions
     or responses.nii.gz + mask.nii.gz     a 4-D image (x, y, z, time) and a 3-D mask on the same grid
        trs.tsv                            columns onset (seconds), run: one row per time point
        words.tsv                          columns word, onset (seconds), duration (seconds), run

Onsets are on one clock per run: a run's TR and word onsets must be comparable with each other, and
runs may share one clock or each start at 0. Words need not come at a fixed rate (listening
experiments), the TR is whatever the rows of ``trs.tsv`` say, and the data may be a handful of named
regions instead of voxels. Files are read as UTF-8.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from brainalign.data.recording import Recording
from brainalign.data.sources import SOURCES, require_directory, wanted_files
from brainalign.errors import InputError
from brainalign.files import atomic_path

RESPONSE_FORMS = ("responses.npy", "responses.tsv", "responses.nii.gz", "responses.nii")
TR_COLUMNS = ("onset", "run")
WORD_COLUMNS = ("word", "onset", "duration", "run")


def participant_dirs(path: str | os.PathLike) -> list[Path]:
    """The participant directories of a dataset (those holding a ``trs.tsv``), in natural order."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "directory", "a directory with one sub-directory per participant", "no such directory")
    found = [p for p in path.iterdir() if p.is_dir() and (p / "trs.tsv").exists()]
    if not found:
        raise InputError(path, "participants", "sub-directories holding trs.tsv, words.tsv and responses",
                         f"entries {sorted(p.name for p in path.iterdir())[:10]}")
    return sorted(found, key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])


def read_own(directory: str | os.PathLike) -> Recording:
    """Read one participant directory of the own-data format (see the module docstring)."""
    directory = Path(directory)
    trs = read_table(directory / "trs.tsv", TR_COLUMNS, numeric=("onset", "run"))
    words = read_table(directory / "words.tsv", WORD_COLUMNS, numeric=("onset", "duration", "run"))
    _whole(directory / "trs.tsv", trs, "run")
    _whole(directory / "words.tsv", words, "run")
    responses, space = _read_responses(directory)
    if responses.shape[0] != len(trs):
        raise InputError(space["file"], "rows", f"{len(trs)} time points (one per row of trs.tsv)",
                         f"{responses.shape[0]}")
    return Recording(subject=directory.name, modality="fmri", responses=responses, times=trs["onset"].to_numpy(),
                     runs=trs["run"].to_numpy(), words=words[list(WORD_COLUMNS)].astype({"run": np.int64}),
                     coords=space.get("coords"), affine=space.get("affine"), volume_shape=space.get("shape"),
                     channel_names=space.get("names"), source=str(directory),
                     files={"responses": str(space["file"]), "times": str(directory / "trs.tsv"),
                            "words": str(directory / "words.tsv")})


def read_table(path: Path, columns: tuple[str, ...], numeric: tuple[str, ...] = ()) -> pd.DataFrame:
    """A UTF-8 tab-separated table with at least ``columns``; ``numeric`` ones must parse as numbers."""
    if not path.exists():
        raise InputError(path, "file", f"a tab-separated table with columns {list(columns)}", "no such file")
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(path, "encoding", "UTF-8 text", f"byte {raw[exc.start:exc.start + 1]!r} on line {line}") from exc
    if not raw.strip():
        raise InputError(path, "rows", f"a header with columns {list(columns)} and at least one row", "an empty file")
    # keep_default_na=False: "NA", "null" and "nan" are words, not missing values; QUOTE_NONE: a quote
    # mark is a character of a word, not the start of a quoted field.
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, encoding="utf-8",
                            quoting=csv.QUOTE_NONE)
    except pd.errors.ParserError as exc:
        raise InputError(path, "rows", "a tab-separated table with the same number of fields on every line",
                         str(exc).strip()) from exc
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(path, missing[0], f"columns {list(columns)}", f"columns {list(table.columns)}")
    if table.empty:
        raise InputError(path, "rows", "at least one row after the header", "none")
    for column in numeric:
        values = pd.to_numeric(table[column].str.strip(), errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy())
        if bad.size:
            raise InputError(path, column, "numbers", f"{table[column].iloc[bad[0]]!r} on line {bad[0] + 2}")
        table[column] = values.astype(np.float64)
    return table


def _whole(path: Path, table: pd.DataFrame, column: str) -> None:
    values = table[column].to_numpy()
    bad = np.flatnonzero(values != np.rint(values))
    if bad.size:
        raise InputError(path, column, "whole run numbers", f"{values[bad[0]]} on line {bad[0] + 2}")
    table[column] = values.astype(np.int64)


def _read_responses(directory: Path) -> tuple[np.ndarray, dict]:
    present = [name for name in RESPONSE_FORMS if (directory / name).exists()]
    if len(present) != 1:
        raise InputError(directory, "responses", f"exactly one of {list(RESPONSE_FORMS)}", f"{present or 'none'}")
    path = directory / present[0]
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise InputError(path, "responses", "a numeric .npy array (no pickled objects)",
                                 "an object array, which would have to be unpickled") from exc
            raise InputError(path, "file", "a readable .npy file", f"{type(exc).__name__}: {exc}") from exc
        except (OSError, EOFError) as exc:
            raise InputError(path, "file", "a readable .npy file", f"{type(exc).__name__}: {exc}") from exc
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
            raise InputError(path, "responses", "a 2-D numeric array (time points x channels)",
                             f"{array.dtype} array of shape {array.shape}")
        return array, {"file": path}
    if path.suffix == ".tsv":
        table = read_table(path, ())
        values = table.apply(lambda c: pd.to_numeric(c.str.strip(), errors="coerce"))
        # A literal "nan" is a missing value the validation reports; anything else unparsable is an error.
        literal = table.apply(lambda c: c.str.strip().str.lower() == "nan").to_numpy()
        bad = np.argwhere(values.isna().to_numpy() & ~literal)
        if bad.size:
            row, col = bad[0]
            raise InputError(path, str(table.columns[col]), "numbers", f"{table.iloc[row, col]!r} on line {row + 2}")
        return values.to_numpy(np.float64), {"file": path, "names": [str(c) for c in table.columns]}
    return _read_nifti(path, directory)


def _read_nifti(path: Path, directory: Path) -> tuple[np.ndarray, dict]:
    import nibabel

    mask_path = next((directory / n for n in ("mask.nii.gz", "mask.nii") if (directory / n).exists()), None)
    if mask_path is None:
        raise InputError(directory, "mask.nii.gz", "a 3-D mask beside the 4-D responses image", "no such file")
    try:
        image, mask = nibabel.load(path), nibabel.load(mask_path)
        # nibabel reads lazily: read everything here, where a damaged file can be reported.
        inside = np.asarray(mask.get_fdata()) > 0
        data = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises many types for damaged files
        raise InputError(path, "file", "readable NIfTI images", f"{type(exc).__name__}: {exc}") from exc
    if len(image.shape) != 4:
        raise InputError(path, "shape", "a 4-D image (x, y, z, time)", f"shape {image.shape}")
    if tuple(mask.shape[:3]) != tuple(image.shape[:3]) or len(mask.shape) != 3:
        raise InputError(mask_path, "shape", f"a 3-D mask of shape {image.shape[:3]}", f"shape {mask.shape}")
    if not np.allclose(mask.affine, image.affine, atol=1e-4):
        raise InputError(mask_path, "affine", f"the responses' affine {image.affine.tolist()}",
                         f"{mask.affine.tolist()}")
    if not inside.any():
        raise InputError(mask_path, "voxels", "at least one voxel inside the mask", "none")
    coords = np.argwhere(inside)
    return data[inside].T, {"file": path, "coords": coords, "affine": np.asarray(image.affine, dtype=np.float64),
                            "shape": tuple(int(s) for s in image.shape[:3])}


def write_own(recording: Recording, directory: str | os.PathLike, form: str = "auto") -> None:
    """Write a recording in the own-data format, atomically (for fixtures, examples and conversions).

    Parameters
    ----------
    form : {"auto", "npy", "tsv", "nifti"}
        ``auto``: NIfTI when the recording has voxel coordinates, a region table when it has channel
        names, ``.npy`` otherwise.
    """
    if form == "auto":
        form = "nifti" if recording.coords is not None else "tsv" if recording.channel_names else "npy"
    with atomic_path(directory) as tmp:
        tmp.mkdir(parents=True)
        # No quoting, as read_table reads: a quote mark is a character of a word.
        table = {"sep": "\t", "index": False, "quoting": csv.QUOTE_NONE}
        pd.DataFrame({"onset": recording.times, "run": recording.runs}).to_csv(tmp / "trs.tsv", **table)
        words = recording.story_words() if "run" not in recording.words else recording.words
        bad = words["word"].astype(str).str.contains(r"[\t\n\r]")
        if bad.any():
            raise InputError(recording.source, "words", "words without tabs or line breaks",
                             f"{words['word'].iloc[int(np.flatnonzero(bad)[0])]!r}")
        words[list(WORD_COLUMNS)].to_csv(tmp / "words.tsv", **table)
        if form == "npy":
            np.save(tmp / "responses.npy", recording.responses)
        elif form == "tsv":
            names = recording.channel_names or [f"channel{i}" for i in range(recording.n_channels)]
            pd.DataFrame(recording.responses, columns=names).to_csv(tmp / "responses.tsv", **table)
        elif form == "nifti":
            import nibabel

            volume = np.zeros((*recording.volume_shape, recording.responses.shape[0]), dtype=np.float32)
            volume[tuple(recording.coords.T)] = recording.responses.T
            mask = np.zeros(recording.volume_shape, dtype=np.uint8)
            mask[tuple(recording.coords.T)] = 1
            nibabel.save(nibabel.Nifti1Image(volume, recording.affine), tmp / "responses.nii.gz")
            nibabel.save(nibabel.Nifti1Image(mask, recording.affine), tmp / "mask.nii.gz")
        else:
            raise ValueError(f"form: expected auto, npy, tsv or nifti, found {form!r}")


@SOURCES.register("own")
def read_own_dataset(path: Path, participants: Sequence[str] | str | None = None) -> list[Recording]:
    """One participant per directory of ``path`` (only the participants asked for)."""
    require_directory(path, "a directory of own recordings")
    return [read_own(d) for d in wanted_files(participant_dirs(path), participants, lambda d: d.name)]
