"""Pereira et al. 2018 sentence fMRI (experiments 2 and 3), as the public release lays it out.

A directory of participant folders, each with ``examples_384sentences.mat`` (experiment 2) and/or
``examples_243sentences.mat`` (experiment 3), MATLAB v5 or v7.3. Variables:

``examples``
    sentences x voxels, one beta image per sentence.
``keySentences``
    cell of the sentences, in the order of the rows of ``examples``.
``labelsPassageForEachSentence``
    1-based passage of each sentence, into ``keyPassages`` (cell of passage names).
``labelsPassageCategory``
    1-based topic of each passage, into ``keyPassageCategory`` (cell of topic names).
``meta``
    struct: ``dimx``/``dimy``/``dimz``, ``colToCoord`` (voxels x 3, 1-based), ``coordToCol``, ``indicesIn3D``,
    and the atlas fields ``atlases`` (cell of names such as ``languageLH``, ``languageRH``, ``MD``, ``DMN``) and
    ``roiColumns`` (cell per atlas of a cell per ROI of 1-based column vectors into ``examples``).

Brain-Score's benchmark keeps the language-network voxels (``languageLH`` and ``languageRH``) of every
participant and feeds models passage by passage, so ``group`` is ``passage``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.io

from brainalign.data.matfile import load_mat, write_mat73
from brainalign.data.presentations import BENCHMARK_SOURCES, Presentations, require_path
from brainalign.errors import InputError
from brainalign.files import atomic_path

log = logging.getLogger(__name__)

EXPERIMENTS = ("384sentences", "243sentences")
VARIABLES = ("examples", "keySentences", "labelsPassageForEachSentence", "keyPassages",
             "labelsPassageCategory", "keyPassageCategory", "meta")
LANGUAGE_ATLASES = ("languageLH", "languageRH")


def cell_strings(value: object, path: Path, name: str) -> list[str]:
    """The strings of a MATLAB cell (or char matrix) as :func:`load_mat` returns it, in MATLAB order."""
    array = np.asarray(value)
    if array.dtype.kind in "US":
        return [str(s).rstrip() if array.ndim > 1 else str(s) for s in array.reshape(-1)]
    if array.dtype != object:
        raise InputError(path, name, "a cell of strings", f"a {array.dtype} array of shape {array.shape}")
    out = []
    # Column-major, as MATLAB counts the elements of a cell.
    for position, element in enumerate(array.reshape(-1, order="F")):
        element = np.asarray(element)
        if element.size == 0:
            out.append("")
        elif element.dtype.kind in "US":
            out.append("".join(str(s) for s in element.reshape(-1)))
        else:
            raise InputError(path, name, "a cell of strings",
                             f"a {element.dtype} element at position {position + 1}")
    return out


def _labels(value: object, path: Path, name: str, n: int, n_keys: int, keys: str) -> np.ndarray:
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.number):
        raise InputError(path, name, "numeric 1-based labels", f"a {array.dtype} array")
    labels = array.reshape(-1).astype(np.float64)
    if labels.size != n:
        raise InputError(path, name, f"{n} labels", f"{labels.size}")
    bad = ~np.isfinite(labels) | (labels != np.rint(labels)) | (labels < 1) | (labels > n_keys)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(path, name, f"1-based indices into {keys} (1..{n_keys})",
                         f"{labels[row]:g} at entry {row + 1}")
    return labels.astype(np.int64)


def _meta(path: Path, value: object) -> dict:
    meta = np.asarray(value).reshape(-1)
    if meta.dtype.names is None or meta.size != 1:
        raise InputError(path, "meta", "a 1 x 1 struct", f"a {meta.dtype} array of {meta.size} element(s)")
    return {name: meta[name][0] for name in meta.dtype.names}


def _atlas_columns(path: Path, meta: dict, atlases: Sequence[str], n_voxels: int) -> list[tuple[str, int, int]]:
    """(atlas, 1-based roi, 0-based column) of every selected voxel, first occurrence only."""
    if "atlases" not in meta or "roiColumns" not in meta:
        raise InputError(path, "meta.atlases", f"atlas fields atlases and roiColumns (to select {list(atlases)})",
                         f"meta fields {sorted(meta)}")
    names = cell_strings(meta["atlases"], path, "meta.atlases")
    unknown = [a for a in atlases if a not in names]
    if unknown:
        raise InputError(path, "meta.atlases", f"atlas names among {names}", f"{unknown}")
    per_atlas = np.asarray(meta["roiColumns"], dtype=object).reshape(-1, order="F")
    if per_atlas.size != len(names):
        raise InputError(path, "meta.roiColumns", f"one cell per atlas ({len(names)})", f"{per_atlas.size}")
    seen: set[int] = set()
    selected = []
    for atlas in atlases:
        rois = np.asarray(per_atlas[names.index(atlas)], dtype=object).reshape(-1, order="F")
        for roi, columns in enumerate(rois, start=1):
            columns = np.asarray(columns, dtype=np.float64).reshape(-1)
            bad = (columns != np.rint(columns)) | (columns < 1) | (columns > n_voxels)
            if bad.any():
                raise InputError(path, f"meta.roiColumns{{{atlas}}}{{{roi}}}",
                                 f"1-based columns of examples (1..{n_voxels})", f"{columns[bad][0]:g}")
            for column in columns.astype(np.int64) - 1:
                if column not in seen:
                    seen.add(int(column))
                    selected.append((atlas, roi, int(column)))
    if not selected:
        raise InputError(path, "meta.roiColumns", f"at least one voxel in atlases {list(atlases)}", "none")
    return selected


def read_pereira_file(path: str | os.PathLike, atlases: Sequence[str] | None = LANGUAGE_ATLASES
                      ) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """One participant's ``examples_*.mat``: its stimuli table, responses and channels.

    Parameters
    ----------
    path : path
        The file; its folder's name is the participant.
    atlases : sequence of str or None
        Atlases of ``meta.atlases`` whose voxels to keep; None keeps every voxel.

    Returns
    -------
    stimuli : DataFrame
        ``text``, ``sentence`` (0-based), ``passage`` (1-based, as the file), ``passage_label``, ``topic``.
    responses : ndarray of shape (n_sentences, n_selected_voxels), float32
    channels : DataFrame
        ``channel_id`` (``<participant>.<column>``), ``subject``, ``region`` (the atlas), ``roi``, ``column``
        (1-based in ``examples``) and ``x``/``y``/``z`` (0-based voxel indices) where ``meta.colToCoord`` is.
    """
    path = Path(path)
    participant = path.parent.name
    mat = load_mat(path)
    missing = [v for v in VARIABLES if v not in mat]
    if missing:
        raise InputError(path, missing[0], "a variable of that name",
                         f"variables {sorted(k for k in mat if not k.startswith('__'))}")
    examples = np.asarray(mat["examples"])
    if examples.ndim != 2 or not np.issubdtype(examples.dtype, np.number):
        raise InputError(path, "examples", "a sentences x voxels numeric matrix",
                         f"a {examples.dtype} array of shape {examples.shape}")
    n, n_voxels = examples.shape
    sentences = cell_strings(mat["keySentences"], path, "keySentences")
    if len(sentences) != n:
        raise InputError(path, "keySentences", f"{n} sentences (one per row of examples)", f"{len(sentences)}")
    passages = cell_strings(mat["keyPassages"], path, "keyPassages")
    topics = cell_strings(mat["keyPassageCategory"], path, "keyPassageCategory")
    passage = _labels(mat["labelsPassageForEachSentence"], path, "labelsPassageForEachSentence", n,
                      len(passages), "keyPassages")
    topic_of_passage = _labels(mat["labelsPassageCategory"], path, "labelsPassageCategory", len(passages),
                               len(topics), "keyPassageCategory")
    meta = _meta(path, mat["meta"])
    if atlases is None:
        selected = [("", 0, c) for c in range(n_voxels)]
    else:
        selected = _atlas_columns(path, meta, list(atlases), n_voxels)
    columns = np.array([c for _, _, c in selected], dtype=np.int64)
    responses = examples[:, columns].astype(np.float32)
    bad = ~np.isfinite(responses)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError(path, "examples", "finite values in every selected voxel",
                         f"{int(bad.any(axis=1).sum())} row(s) with NaN or infinity, first at row {row + 1}, "
                         f"column {columns[col] + 1}")
    stimuli = pd.DataFrame({
        "text": sentences,
        "sentence": np.arange(n, dtype=np.int64),
        "passage": passage,
        "passage_label": [passages[p - 1] for p in passage],
        "topic": [topics[topic_of_passage[p - 1] - 1] for p in passage],
    })
    channels = pd.DataFrame({
        "channel_id": [f"{participant}.{c + 1}" for c in columns],
        "subject": participant,
        "region": [a for a, _, _ in selected],
        "roi": np.array([r for _, r, _ in selected], dtype=np.int64),
        "column": columns + 1,
    })
    if "colToCoord" in meta:
        coords = np.asarray(meta["colToCoord"], dtype=np.float64)
        if coords.shape != (n_voxels, 3):
            raise InputError(path, "meta.colToCoord", f"shape ({n_voxels}, 3): one row per column of examples",
                             f"shape {coords.shape}")
        for axis, name in enumerate("xyz"):
            channels[name] = np.rint(coords[columns, axis]).astype(np.int64) - 1
    return stimuli, responses, channels


@BENCHMARK_SOURCES.register("pereira2018")
def read_pereira2018(path: Path, experiment: str = "384sentences",
                     atlases: Sequence[str] | None = LANGUAGE_ATLASES,
                     participants: Sequence[str] | None = None) -> Presentations:
    """Every participant's ``<participant>/examples_<experiment>.mat`` under ``path``, channels side by side.

    Parameters
    ----------
    path : path
        The directory of participant folders; folders without the experiment's file are skipped.
    experiment : {"384sentences", "243sentences"}
    atlases : sequence of str or None
        Atlases (``meta.atlases``) whose voxels are kept; None keeps every voxel.
    participants : sequence of str, optional
        Only these folders.

    Raises
    ------
    InputError
        A file is malformed, no participant has the experiment, or participants' sentences differ.
    """
    path = Path(path)
    if experiment not in EXPERIMENTS:
        raise InputError(path, "experiment", f"one of {list(EXPERIMENTS)}", repr(experiment))
    require_path(path, "a directory of Pereira 2018 participant folders", directory=True)
    name = f"examples_{experiment}.mat"
    files = sorted(p for p in path.glob(f"*/{name}") if p.is_file())
    if participants is not None:
        wanted = [str(p) for p in participants]
        unknown = [p for p in wanted if p not in {f.parent.name for f in files}]
        if unknown:
            raise InputError(path, "participants", f"folders with {name}: {[f.parent.name for f in files]}",
                             f"{unknown}")
        files = [f for f in files if f.parent.name in wanted]
    if not files:
        raise InputError(path, f"<participant>/{name}", "at least one participant folder with that file", "none")
    stimuli, blocks, channels = None, [], []
    for file in files:
        own, responses, chans = read_pereira_file(file, atlases)
        if stimuli is None:
            stimuli, first = own, file
        else:
            for column in ("text", "passage", "topic"):
                differ = np.flatnonzero(own[column].to_numpy() != stimuli[column].to_numpy()) \
                    if len(own) == len(stimuli) else np.array([min(len(own), len(stimuli))])
                if differ.size:
                    row = int(differ[0])
                    theirs = own[column].iloc[row] if row < len(own) else "<none>"
                    mine = stimuli[column].iloc[row] if row < len(stimuli) else "<none>"
                    raise InputError(file, {"text": "keySentences", "passage": "labelsPassageForEachSentence",
                                            "topic": "labelsPassageCategory"}[column],
                                     f"the same {len(stimuli)} sentences in the same order as {first} "
                                     f"(row {row + 1}: {mine!r})", f"{theirs!r} ({len(own)} sentences)")
        blocks.append(responses)
        channels.append(chans)
    stimuli = stimuli.copy()
    stimuli.insert(0, "stimulus_id", [f"{experiment}.{i}" for i in range(len(stimuli))])
    return Presentations(stimuli=stimuli, responses=np.concatenate(blocks, axis=1),
                         channels=pd.concat(channels, ignore_index=True), group="passage", kind="fmri",
                         source=str(path),
                         extra={"experiment": experiment, "atlases": None if atlases is None else list(atlases),
                                "participants": [f.parent.name for f in files]})


def write_pereira(directory: str | os.PathLike, participant: str, examples: np.ndarray, sentences: Sequence[str],
                  passage_labels: Sequence[int], passage_names: Sequence[str], topic_labels: Sequence[int],
                  topic_names: Sequence[str], atlas_columns: dict[str, list[np.ndarray]],
                  volume_shape: tuple[int, int, int], coords: np.ndarray, experiment: str = "384sentences",
                  v73: bool = False) -> Path:
    """Write ``<directory>/<participant>/examples_<experiment>.mat`` in the release layout, atomically.

    Parameters
    ----------
    examples : ndarray of shape (n_sentences, n_voxels)
    sentences : sequence of str
        ``keySentences``.
    passage_labels : sequence of int
        1-based passage of each sentence (``labelsPassageForEachSentence``).
    passage_names : sequence of str
        ``keyPassages``.
    topic_labels : sequence of int
        1-based topic of each passage (``labelsPassageCategory``).
    topic_names : sequence of str
        ``keyPassageCategory``.
    atlas_columns : dict of str to list of ndarray
        Per atlas (``meta.atlases``), per ROI, the 1-based columns of ``examples`` (``meta.roiColumns``).
    volume_shape : tuple of int
        ``dimx``, ``dimy``, ``dimz``.
    coords : ndarray of shape (n_voxels, 3)
        0-based voxel indices (written 1-based as ``colToCoord``).
    v73 : bool
        Write MATLAB v7.3 (HDF5) instead of v5.

    Returns
    -------
    Path
        The file written.
    """
    if experiment not in EXPERIMENTS:
        raise ValueError(f"experiment: expected one of {EXPERIMENTS}, found {experiment!r}")
    examples = np.asarray(examples, dtype=np.float32)
    coords = np.asarray(coords, dtype=np.int64)
    n_voxels = examples.shape[1]
    coord_to_col = np.zeros(volume_shape, dtype=np.float64)
    coord_to_col[tuple(coords.T)] = np.arange(1, n_voxels + 1)
    indices = np.ravel_multi_index(tuple(coords.T), volume_shape, order="F") + 1
    column = np.asarray(passage_labels, dtype=np.float64).reshape(-1, 1)
    topics = np.asarray(topic_labels, dtype=np.float64).reshape(-1, 1)
    meta = {"dimx": float(volume_shape[0]), "dimy": float(volume_shape[1]), "dimz": float(volume_shape[2]),
            "nvoxels": float(n_voxels), "colToCoord": (coords + 1).astype(np.float64), "coordToCol": coord_to_col,
            "indicesIn3D": indices.astype(np.float64).reshape(-1, 1)}
    path = Path(directory) / participant / f"examples_{experiment}.mat"
    if v73:
        meta["atlases"] = list(atlas_columns)
        meta["roiColumns"] = [[np.asarray(c, dtype=np.float64).reshape(-1, 1) for c in rois]
                              for rois in atlas_columns.values()]
        write_mat73(path, {"examples": examples, "keySentences": list(sentences),
                           "labelsPassageForEachSentence": column, "keyPassages": list(passage_names),
                           "labelsPassageCategory": topics, "keyPassageCategory": list(topic_names),
                           "meta": meta})
        return path
    meta["atlases"] = _cell(list(atlas_columns))
    meta["roiColumns"] = _cell([_cell([np.asarray(c, dtype=np.float64).reshape(-1, 1) for c in rois])
                                for rois in atlas_columns.values()])
    content = {"examples": examples, "keySentences": _cell(list(sentences), column=True),
               "labelsPassageForEachSentence": column, "keyPassages": _cell(list(passage_names)),
               "labelsPassageCategory": topics, "keyPassageCategory": _cell(list(topic_names)), "meta": meta}
    with atomic_path(path) as tmp:
        scipy.io.savemat(tmp, content, do_compression=False, oned_as="column")
    return path


def _cell(items: list, column: bool = False) -> np.ndarray:
    # Filled one by one: np.array would turn equal-shaped elements into one numeric array.
    cell = np.empty((len(items), 1) if column else (1, len(items)), dtype=object)
    for i, item in enumerate(items):
        cell.flat[i] = item
    return cell
