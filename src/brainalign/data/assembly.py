"""Brain-Score's own packaged assemblies (netCDF).

Brain-Score (through brainio's ``write_netcdf``) stores a ``NeuroidAssembly`` / ``BehavioralAssembly`` as one
xarray DataArray in a netCDF-4 (HDF5) file: dims ``presentation`` x ``neuroid`` (``subject`` for behavioural
assemblies), sometimes with a trailing ``time_bin`` of length 1; the MultiIndex of each dim is reset before
writing, so its levels arrive as plain coordinates along the dim (``stimulus_id``, ``sentence``, ``word``,
``passage_index``, ``story``, ... along ``presentation``; ``subject``, ``neuroid_id``, ``roi``, ... along
``neuroid``). The file is read with xarray's ``h5netcdf`` engine; nothing is unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from brainalign.data.presentations import BENCHMARK_SOURCES, KINDS, Presentations, require_path
from brainalign.errors import InputError
from brainalign.files import atomic_path

PRESENTATION = "presentation"
TEXT_COORDS = ("stimulus", "sentence", "stimulus_sentence", "word")
SENTENCE_COORDS = ("sentence_id", "sentence_num", "sentence_number_in_story", "stimulus_num", "sentence")
SUBJECT_COORDS = ("subject", "subject_id", "subject_UID", "UID")
CHANNEL_COORDS = ("neuroid_id", "subject_id", "subject")


def _first(found: Sequence[str], wanted: str | None, candidates: Sequence[str], path: Path, field: str,
           numeric: bool | None = None, values: dict | None = None) -> str:
    if wanted is not None:
        if wanted not in found:
            raise InputError(path, field, f"a coordinate along its dim, among {sorted(found)}", repr(wanted))
        return wanted
    for name in candidates:
        if name in found and (numeric is None or np.issubdtype(values[name].dtype, np.number) == numeric):
            return name
    raise InputError(path, field, f"one of the coordinates {list(candidates)} (or name one with the option "
                     f"{field})", f"coordinates {sorted(found)}")


@BENCHMARK_SOURCES.register("brainscore_assembly")
def read_brainscore_assembly(path: Path, group: str, kind: str = "fmri", text: str | None = None,
                             sentence: str | None = None, subject: str | None = None,
                             channel_id: str | None = None, allow_missing: bool | None = None) -> Presentations:
    """A Brain-Score assembly (``.nc``) as :class:`Presentations`.

    Parameters
    ----------
    path : path
        The netCDF file.
    group : str
        The presentation coordinate giving cross-validation groups / context units (``passage_index``,
        ``story``, ``sentence_id``, ...).
    kind : {"fmri", "ecog", "reading_times"}
    text, sentence, subject, channel_id : str, optional
        The coordinates holding the presented text, the integer sentence id, the subject of each neuroid and
        the neuroid's id; by default the first present of :data:`TEXT_COORDS`, :data:`SENTENCE_COORDS`
        (numeric), :data:`SUBJECT_COORDS` and :data:`CHANNEL_COORDS`.
    allow_missing : bool, optional
        NaN allowed (default: for reading times only).

    Returns
    -------
    Presentations
        ``stimuli`` holds every presentation coordinate (besides ``stimulus_id``, ``text`` and ``sentence``),
        ``channels`` every neuroid coordinate.
    """
    path = Path(path)
    require_path(path, "a Brain-Score assembly netCDF file", directory=False)
    if kind not in KINDS:
        raise InputError(path, "kind", f"one of {list(KINDS)}", repr(kind))
    try:
        with xr.open_dataset(path, engine="h5netcdf") as dataset:
            dataset = dataset.load()
    except Exception as exc:  # h5netcdf / h5py raise several types for files that are not netCDF-4
        raise InputError(path, "file", "a netCDF-4 (HDF5) file written by xarray",
                         f"{type(exc).__name__}: {exc}") from exc
    variables = list(dataset.data_vars)
    if len(variables) != 1:
        raise InputError(path, "data variables", "exactly one (the assembly)", f"{variables}")
    array = dataset[variables[0]]
    extra_dims = [d for d in array.dims if d != PRESENTATION and array.sizes[d] == 1]
    array = array.squeeze(extra_dims, drop=False) if len(array.dims) > 2 else array
    if PRESENTATION not in array.dims or array.ndim != 2:
        raise InputError(path, variables[0], "dims (presentation, neuroid) plus length-1 dims such as time_bin",
                         f"dims {dict(array.sizes)}")
    array = array.transpose(PRESENTATION, ...)
    neuroid_dim = array.dims[1]
    coords = {name: np.asarray(c.values) for name, c in array.coords.items()}
    along = {dim: [n for n, c in array.coords.items() if c.dims == (dim,) and n != dim] for dim in array.dims}
    presentation_coords, neuroid_coords = along[PRESENTATION], along[neuroid_dim]
    if group not in presentation_coords:
        raise InputError(path, "group", f"a presentation coordinate, among {sorted(presentation_coords)}",
                         repr(group))
    text_name = _first(presentation_coords, text, TEXT_COORDS, path, "text")
    sentence_name = _first(presentation_coords, sentence, SENTENCE_COORDS, path, "sentence", numeric=True,
                           values=coords)
    subject_name = _first(neuroid_coords, subject, SUBJECT_COORDS, path, "subject")
    channel_name = _first(neuroid_coords, channel_id, CHANNEL_COORDS, path, "channel_id")
    n = array.sizes[PRESENTATION]
    stimulus_ids = coords["stimulus_id"] if "stimulus_id" in presentation_coords else np.arange(n)
    stimuli = pd.DataFrame({"stimulus_id": [str(s) for s in stimulus_ids],
                            "text": [str(t) for t in coords[text_name]], "sentence": coords[sentence_name]})
    for name in presentation_coords:
        if name not in stimuli.columns:
            stimuli[name] = coords[name]
    channels = pd.DataFrame({"channel_id": [str(c) for c in coords[channel_name]],
                             "subject": [str(s) for s in coords[subject_name]]})
    for name in neuroid_coords:
        if name not in channels.columns:
            channels[name] = coords[name]
    missing = kind == "reading_times" if allow_missing is None else allow_missing
    return Presentations(stimuli=stimuli, responses=np.asarray(array.values), channels=channels, group=group,
                         kind=kind, source=str(path), allow_missing=missing,
                         extra={"attrs": dict(array.attrs), "neuroid_dim": neuroid_dim, "name": variables[0]})


def write_brainscore_assembly(path: str | os.PathLike, responses: np.ndarray,
                              presentation_coords: dict[str, Sequence], neuroid_coords: dict[str, Sequence],
                              neuroid_dim: str = "neuroid", time_bin: bool = False,
                              name: str = "data") -> Path:
    """Write an assembly as brainio does: a DataArray whose dims' MultiIndexes are reset, to netCDF-4.

    Parameters
    ----------
    responses : ndarray of shape (n_presentations, n_neuroids)
    presentation_coords, neuroid_coords : dict of str to sequence
        The levels of each dim's MultiIndex.
    neuroid_dim : str
        ``neuroid`` (neural) or ``subject`` (behavioural).
    time_bin : bool
        Add a trailing ``time_bin`` dim of length 1 (``time_bin_start`` 0, ``time_bin_end`` 1).
    """
    data = np.asarray(responses)
    presentation = pd.MultiIndex.from_arrays([np.asarray(v) for v in presentation_coords.values()],
                                             names=list(presentation_coords))
    neuroid = pd.MultiIndex.from_arrays([np.asarray(v) for v in neuroid_coords.values()], names=list(neuroid_coords))
    coords = {**xr.Coordinates.from_pandas_multiindex(presentation, PRESENTATION),
              **xr.Coordinates.from_pandas_multiindex(neuroid, neuroid_dim)}
    dims = [PRESENTATION, neuroid_dim]
    if time_bin:
        data = data[..., None]
        dims.append("time_bin")
        time = pd.MultiIndex.from_arrays([[0], [1]], names=["time_bin_start", "time_bin_end"])
        coords.update(xr.Coordinates.from_pandas_multiindex(time, "time_bin"))
    array = xr.DataArray(data, coords=coords, dims=dims, name=name)
    # netCDF has no MultiIndex: brainio stores the levels as plain coordinates and rebuilds the index on load.
    array = array.reset_index(list(array.indexes))
    array = array.drop_vars([d for d in dims if d in array.coords])
    with atomic_path(path) as tmp:
        array.to_netcdf(tmp, engine="h5netcdf")
    return Path(path)
