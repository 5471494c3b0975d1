"""MATLAB files, both kinds a release may hold: v5 (scipy) and v7.3 (HDF5, read with h5py).

:func:`load_mat` returns what ``scipy.io.loadmat(squeeze_me=False, struct_as_record=True)`` returns for a v5
file, whichever kind it reads: numeric matrices as 2-D arrays, char arrays as 1-element string arrays,
structs as structured arrays of object fields, cells as object arrays. The rest of a loader is then the
same for both kinds.

In a v7.3 file each variable is an HDF5 dataset or group with a ``MATLAB_class`` attribute; dimensions
are stored in reverse (column-major) order; char arrays are UTF-16 code units; an empty array stores its
dimensions instead of data (``MATLAB_empty``); the elements of struct arrays and cells are object
references into the ``#refs#`` group. :func:`write_mat73` writes the same layout, for fixtures and for
users who want the v7.3 form.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io

from brainalign.errors import InputError
from brainalign.files import atomic_path

# The 128-byte header MATLAB writes in the HDF5 user block: text, subsystem offset, version 0x0200, "IM".
_HEADER_73 = (b"MATLAB 7.3 MAT-file, Platform: posix, written by brainalign HDF5 schema 1.00 .".ljust(116, b" ")
              + b"\x00" * 8 + b"\x00\x02" + b"IM")
_NUMERIC = {"double": np.float64, "single": np.float32, "int8": np.int8, "uint8": np.uint8, "int16": np.int16,
            "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64,
            "logical": np.bool_}


def is_mat73(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 (MATLAB v7.3) file."""
    import h5py

    try:
        return bool(h5py.is_hdf5(str(path)))
    except OSError:
        return False


def load_mat(path: str | os.PathLike) -> dict[str, object]:
    """The variables of a MATLAB file, v5 or v7.3, in scipy's v5 representation.

    Raises
    ------
    InputError
        If the file cannot be read as either kind.
    """
    path = Path(path)
    if is_mat73(path):
        return _load_73(path)
    try:
        # No squeeze_me: it would turn a one-voxel or one-TR matrix 1-D.
        return scipy.io.loadmat(path, squeeze_me=False, struct_as_record=True, chars_as_strings=True)
    except Exception as exc:  # scipy raises several types for truncated or corrupt files
        raise InputError(path, "file", "a readable MATLAB .mat file (v5 or v7.3)",
                         f"{type(exc).__name__}: {exc}") from exc


def _load_73(path: Path) -> dict[str, object]:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return {name: _convert(handle, handle[name], f"{name}") for name in handle
                    if not name.startswith("#")}
    except InputError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, ValueError for damaged files
        raise InputError(path, "file", "a readable MATLAB v7.3 (HDF5) file", f"{type(exc).__name__}: {exc}") from exc


def _matlab_class(node) -> str:
    value = node.attrs.get("MATLAB_class", b"")
    return value.decode() if isinstance(value, bytes) else str(value)


def _convert(handle, node, where: str) -> object:
    import h5py

    kind = _matlab_class(node)
    if isinstance(node, h5py.Group):
        if kind not in ("struct", ""):
            raise InputError(handle.filename, where, "a struct, cell, char or numeric variable",
                             f"MATLAB class {kind!r} (objects, tables and strings are not supported)")
        return _struct(handle, node, where)
    if node.attrs.get("MATLAB_empty", 0):
        if kind == "char":
            return np.array([], dtype="<U1")  # as scipy loads an empty v5 char array
        dims = tuple(int(d) for d in np.asarray(node[()]).reshape(-1))
        return np.zeros(dims if len(dims) >= 2 else (0, 0), dtype=_NUMERIC.get(kind, np.float64))
    data = node[()]
    if kind == "char":
        return _decode(data, kind, handle, where)
    if kind == "cell":
        refs = np.asarray(data).T
        out = np.empty(refs.shape, dtype=object)
        for index in np.ndindex(refs.shape):
            out[index] = _convert(handle, handle[refs[index]], f"{where}{{{index}}}")
        return out
    if kind in _NUMERIC or np.issubdtype(np.asarray(data).dtype, np.number):
        array = np.asarray(data)
        if array.dtype.names and {"real", "imag"} <= set(array.dtype.names):
            array = array["real"] + 1j * array["imag"]
        return np.atleast_2d(array.T)
    raise InputError(handle.filename, where, "a struct, cell, char or numeric variable", f"MATLAB class {kind!r}")


def _struct(handle, group, where: str) -> np.ndarray:
    """A struct (1 x 1: fields stored directly) or struct array (fields are arrays of references)."""
    import h5py

    names = [n for n in group if not n.startswith("#")]
    ordered = group.attrs.get("MATLAB_fields")
    if ordered is not None:
        decoded = ["".join(c.decode() if isinstance(c, bytes) else str(c) for c in np.asarray(f).reshape(-1))
                   for f in ordered]
        names = [n for n in decoded if n in group] + [n for n in names if n not in decoded]
    fields = {}
    shape = (1, 1)
    for name in names:
        member = group[name]
        if isinstance(member, h5py.Dataset) and member.dtype == h5py.ref_dtype and _matlab_class(member) != "cell":
            refs = np.asarray(member[()]).T
            shape = refs.shape
            fields[name] = _elements(handle, refs, f"{where}.{name}")
        else:
            fields[name] = _convert(handle, member, f"{where}.{name}")
    out = np.empty(shape, dtype=[(n, object) for n in names])
    for name, value in fields.items():
        if isinstance(value, np.ndarray) and value.dtype == object and value.shape == shape and shape != (1, 1):
            out[name] = value
        else:
            for index in np.ndindex(shape):
                out[index][name] = value if shape == (1, 1) else value[index]
    return out


def _elements(handle, refs: np.ndarray, where: str) -> np.ndarray:
    """The elements of a struct-array field, converted.

    A field's elements nearly always share one MATLAB class (the text of every word is char): the class
    of the first element with the same dtype is reused, and attributes (slow to read one by one: a
    chapter has 5,176 words x 3 fields) are read again only for an element that differs or may be empty.
    """
    from h5py import h5d, h5r, h5s

    values = np.empty(refs.shape, dtype=object)
    known: dict[np.dtype, str] = {}
    for index in np.ndindex(refs.shape):
        # The low-level API: h5py's high-level objects cost more than the read itself for tiny datasets.
        oid = h5r.dereference(refs[index], handle.id)
        fast = isinstance(oid, h5d.DatasetID) and oid.dtype in known
        # MATLAB marks an empty array with an attribute and stores its dimensions (uint64) as the data.
        if fast and not (oid.dtype == np.uint64 and oid.shape == (2,)):
            data = np.empty(oid.shape, dtype=oid.dtype)
            oid.read(h5s.ALL, h5s.ALL, data)
            values[index] = _decode(data, known[oid.dtype], handle, where)
        else:
            node = handle[refs[index]]
            values[index] = _convert(handle, node, where)
            if not isinstance(values[index], np.ndarray) or values[index].dtype != object:
                known.setdefault(node.dtype, _matlab_class(node))
    return values


def _decode(data: np.ndarray, kind: str, handle, where: str) -> object:
    if kind == "char":
        codes = np.atleast_2d(np.asarray(data, dtype=np.uint16).T)
        rows = ["".join(chr(c) for c in row) for row in codes]
        return np.array(rows if len(rows) > 1 else rows[:1] or [""])
    if kind in _NUMERIC:
        return np.atleast_2d(np.asarray(data).T)
    raise InputError(handle.filename, where, "a struct, cell, char or numeric variable", f"MATLAB class {kind!r}")


def write_mat73(path: str | os.PathLike, variables: dict[str, object]) -> None:
    """Write ``variables`` as a MATLAB v7.3 file, atomically.

    Values: numeric arrays (written as MATLAB matrices, at least 2-D), strings (char arrays), lists of
    strings (cells), dicts (1 x 1 structs) and dicts of equal-length lists (1 x N struct arrays: the value
    of key ``"__struct_array__"`` must be True).
    """
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=512) as handle:
            refs = handle.create_group("#refs#")
            counter = iter(range(10**9))
            for name, value in variables.items():
                _write(handle, refs, counter, name, value)
        with open(tmp, "r+b") as raw:
            raw.write(_HEADER_73)


def _write(parent, refs, counter, name: str, value: object):
    import h5py

    if isinstance(value, dict):
        group = parent.create_group(name)
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        fields = [k for k in value if k != "__struct_array__"]
        names = np.empty(len(fields), dtype=h5py.vlen_dtype(np.dtype("S1")))
        for i, f in enumerate(fields):  # element by element: equal-length names would make a 2-D array
            names[i] = np.frombuffer(f.encode(), dtype="S1")
        group.attrs["MATLAB_fields"] = names
        if value.get("__struct_array__"):
            for field in fields:
                elements = [_write(refs, refs, counter, f"r{next(counter)}", item) for item in value[field]]
                group.create_dataset(field, data=np.array([[e.ref for e in elements]], dtype=h5py.ref_dtype).T)
        else:
            for field in fields:
                _write(group, refs, counter, field, value[field])
        return group
    if isinstance(value, str):
        codes = np.array([[ord(c) for c in value]], dtype=np.uint16) if value else np.zeros((1, 0), np.uint16)
        if not value:
            dataset = parent.create_dataset(name, data=np.array([1, 0], dtype=np.uint64))
            dataset.attrs["MATLAB_empty"] = np.uint8(1)
        else:
            dataset = parent.create_dataset(name, data=codes.T)
        dataset.attrs["MATLAB_class"] = np.bytes_("char")
        return dataset
    if isinstance(value, list):
        elements = [_write(refs, refs, counter, f"r{next(counter)}", item) for item in value]
        dataset = parent.create_dataset(name, data=np.array([[e.ref for e in elements]], dtype=h5py.ref_dtype).T)
        dataset.attrs["MATLAB_class"] = np.bytes_("cell")
        return dataset
    array = np.asarray(value)
    if array.ndim < 2:
        array = array.reshape(1, -1) if array.ndim == 1 else array.reshape(1, 1)
    kind = {np.dtype(v): k for k, v in _NUMERIC.items()}.get(array.dtype)
    if kind is None:
        raise TypeError(f"{name}: cannot write {array.dtype} arrays as MATLAB data")
    if array.size == 0:
        dataset = parent.create_dataset(name, data=np.array(array.shape, dtype=np.uint64))
        dataset.attrs["MATLAB_empty"] = np.uint8(1)
    else:
        dataset = parent.create_dataset(name, data=array.T)
    dataset.attrs["MATLAB_class"] = np.bytes_(kind)
    return dataset
