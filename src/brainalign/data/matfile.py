"""MATLAB files, both kinds a release may hold: v5 (scipy) and v7.3 (HDF5, read with h5py).

:func:`load_mat` returns what ``scipy.io.loadmat(squeeze_me=False, struct_as_record=True)`` returns for a v5
file, whichever kind it reads: numeric matrices as 2-D arrays, char arrays as 1-element string arrays,
structs as structured arrays of object fields, cells as object arrays. The rest of a loader is then the
same for both kinds.

In a v7.3 file each variable is an HDF5 dataset or group with a ``MATLAB_class`` attribute; dimensions
are stored in reverse (column-major) order; char arrays are UTF-16 code units; an empty array stores its
dimensions instead of data (``MATLAB_empty``); a 1 x 1 struct is a group holding its fields, a struct
array a group whose every field is a dataset of object references (one per element) into the ``#refs#``
group, and a cell a dataset of such references; an element may itself be a struct, a struct array or a
cell, to any depth. :func:`write_mat73` writes the same layout from what :func:`scipy.io.savemat` takes,
for fixtures and for users who want the v7.3 form.
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
        dims = dims if len(dims) >= 2 else (0, 0)
        if kind == "cell":
            return np.empty(dims, dtype=object)
        if kind == "struct":  # an empty struct array keeps its field names, as scipy's v5 reading does
            return np.empty(dims, dtype=[(n, object) for n in _field_names(node)])
        return np.zeros(dims, dtype=_NUMERIC.get(kind, np.float64))
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
        return _numeric(data, kind)
    raise InputError(handle.filename, where, "a struct, cell, char or numeric variable", f"MATLAB class {kind!r}")


def _numeric(data, kind: str) -> np.ndarray:
    array = np.asarray(data)
    if array.dtype.names and {"real", "imag"} <= set(array.dtype.names):
        array = array["real"] + 1j * array["imag"]
    elif kind == "logical":  # stored as uint8; scipy gives bool for a v5 logical
        array = array.astype(np.bool_)
    return np.atleast_2d(array.T)


def _field_names(node) -> list[str]:
    ordered = node.attrs.get("MATLAB_fields")
    if ordered is None:
        return []
    return ["".join(c.decode() if isinstance(c, bytes) else str(c) for c in np.asarray(f).reshape(-1))
            for f in ordered]


def _struct(handle, group, where: str) -> np.ndarray:
    """A struct: 1 x 1 (fields stored directly: datasets or groups) or a struct array (every field a dataset of
    references, one per element, no ``MATLAB_class``; an element may be anything, a struct included)."""
    import h5py

    names = [n for n in group if not n.startswith("#")]
    declared = _field_names(group)
    if declared:
        names = [n for n in declared if n in group] + [n for n in names if n not in declared]
    direct, arrays = [], {}
    for name in names:
        member = group[name]
        if isinstance(member, h5py.Dataset) and member.dtype == h5py.ref_dtype and _matlab_class(member) != "cell":
            arrays[name] = np.asarray(member[()]).T
        else:
            direct.append(name)
    shapes = {refs.shape for refs in arrays.values()}
    if len(shapes) > 1 or (arrays and direct):
        found = {n: refs.shape for n, refs in arrays.items()} | {n: "stored directly" for n in direct}
        raise InputError(handle.filename, where, "a struct array whose fields all hold one reference per element",
                         f"fields {found}")
    shape = shapes.pop() if arrays else (1, 1)
    out = np.empty(shape, dtype=[(n, object) for n in names])
    for name, refs in arrays.items():
        out[name] = _elements(handle, refs, f"{where}.{name}")
    for name in direct:
        # Through the field's view: assigning into out[0, 0] would go through a copy for some numpy versions.
        out[name][0, 0] = _convert(handle, group[name], f"{where}.{name}")
    return out


def _elements(handle, refs: np.ndarray, where: str) -> np.ndarray:
    """The elements of a struct-array field, converted.

    A field's elements nearly always share one MATLAB class (the text of every word is char): the class
    of the first dataset element with the same dtype is reused, and attributes (slow to read one by one: a
    chapter has 5,176 words x 3 fields) are read again only for an element that differs or may be empty.
    Groups (struct elements) and cells always take the full path.
    """
    import h5py
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
            continue
        node = handle[refs[index]]
        values[index] = _convert(handle, node, f"{where}({', '.join(str(i + 1) for i in index)})")
        if isinstance(node, h5py.Dataset) and node.dtype != h5py.ref_dtype and not node.attrs.get("MATLAB_empty", 0):
            known.setdefault(node.dtype, _matlab_class(node))
    return values


def _decode(data: np.ndarray, kind: str, handle, where: str) -> object:
    if kind == "char":
        codes = np.atleast_2d(np.asarray(data, dtype=np.uint16).T)
        rows = ["".join(chr(c) for c in row) for row in codes]
        return np.array(rows if len(rows) > 1 else rows[:1] or [""])
    if kind in _NUMERIC:
        return _numeric(data, kind)
    raise InputError(handle.filename, where, "a struct, cell, char or numeric variable", f"MATLAB class {kind!r}")


def write_mat73(path: str | os.PathLike, variables: dict[str, object]) -> None:
    """Write ``variables`` as a MATLAB v7.3 file, atomically, in the layout MATLAB uses.

    Values are what :func:`scipy.io.savemat` takes, so that one content can be written as v5 and v7.3 and
    read back identically by :func:`load_mat`:

    - numeric and bool arrays (matrices, at least 2-D; bool is MATLAB ``logical``; complex is supported);
    - strings (char arrays) and 1-D string arrays (char matrices, rows padded with spaces);
    - dicts (1 x 1 structs);
    - structured arrays with object (or any) fields (struct arrays of their shape; elements may be anything
      here, structs and struct arrays included);
    - object arrays (cells of their shape).

    Two conveniences scipy does not share: a list is a 1 x N cell, and a dict with ``"__struct_array__":
    True`` whose other values are equal-length lists is a 1 x N struct array.
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


def _field_attribute(fields: list[str]) -> np.ndarray:
    import h5py

    names = np.empty(len(fields), dtype=h5py.vlen_dtype(np.dtype("S1")))
    for i, f in enumerate(fields):  # element by element: equal-length names would make a 2-D array
        names[i] = np.frombuffer(f.encode(), dtype="S1")
    return names


def _matrix_shape(array: np.ndarray) -> np.ndarray:
    """At least 2-D, as MATLAB (and scipy's ``oned_as="row"``) has it."""
    return array.reshape(1, -1) if array.ndim == 1 else array.reshape(1, 1) if array.ndim == 0 else array


def _write_empty(parent, name: str, shape: tuple[int, ...], kind: str):
    dataset = parent.create_dataset(name, data=np.array(shape, dtype=np.uint64))
    dataset.attrs["MATLAB_class"] = np.bytes_(kind)
    dataset.attrs["MATLAB_empty"] = np.uint8(1)
    return dataset


def _write_struct(parent, refs, counter, name: str, records: np.ndarray):
    import h5py

    records = _matrix_shape(records)
    fields = list(records.dtype.names)
    if records.size == 0:
        node = _write_empty(parent, name, records.shape, "struct")
    else:
        node = parent.create_group(name)
        node.attrs["MATLAB_class"] = np.bytes_("struct")
        if records.shape == (1, 1):  # MATLAB stores a 1 x 1 struct's fields directly, a struct array's by reference
            for field in fields:
                _write(node, refs, counter, field, records[field][0, 0])
        else:
            for field in fields:
                pointers = np.empty(records.shape, dtype=h5py.ref_dtype)
                for index in np.ndindex(records.shape):
                    pointers[index] = _write(refs, refs, counter, f"r{next(counter)}", records[field][index]).ref
                node.create_dataset(field, data=pointers.T)
    node.attrs["MATLAB_fields"] = _field_attribute(fields)
    return node


def _write(parent, refs, counter, name: str, value: object):
    import h5py

    if isinstance(value, dict):
        fields = [k for k in value if k != "__struct_array__"]
        if value.get("__struct_array__"):
            lengths = {len(value[f]) for f in fields}
            if len(lengths) > 1:
                raise ValueError(f"{name}: a struct array's fields must have equal lengths, found {lengths}")
            records = np.empty((1, lengths.pop() if lengths else 0), dtype=[(f, object) for f in fields])
        else:
            records = np.empty((1, 1), dtype=[(f, object) for f in fields])
        for field in fields:
            items = value[field] if value.get("__struct_array__") else [value[field]]
            for i, item in enumerate(items):
                records[field][0, i] = item
        return _write_struct(parent, refs, counter, name, records)
    if isinstance(value, np.ndarray) and value.dtype.names:
        return _write_struct(parent, refs, counter, name, value)
    if isinstance(value, np.ndarray) and value.dtype.kind == "U" and value.size == 1:
        value = str(value.reshape(-1)[0])
    if isinstance(value, str):
        if not value:
            return _write_empty(parent, name, (1, 0), "char")
        dataset = parent.create_dataset(name, data=np.array([[ord(c) for c in value]], dtype=np.uint16).T)
        dataset.attrs["MATLAB_class"] = np.bytes_("char")
        return dataset
    if isinstance(value, np.ndarray) and value.dtype.kind == "U":
        if value.ndim != 1:
            raise TypeError(f"{name}: cannot write a {value.ndim}-D string array as a MATLAB char matrix")
        width = max(len(s) for s in value)
        codes = np.array([[ord(c) for c in str(s).ljust(width)] for s in value], dtype=np.uint16)
        dataset = parent.create_dataset(name, data=codes.T)
        dataset.attrs["MATLAB_class"] = np.bytes_("char")
        return dataset
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype == object):
        cell = np.empty((1, len(value)), dtype=object) if isinstance(value, (list, tuple)) else _matrix_shape(value)
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):  # one by one: np.array would merge equal-shaped elements
                cell[0, i] = item
        if cell.size == 0:
            return _write_empty(parent, name, cell.shape, "cell")
        pointers = np.empty(cell.shape, dtype=h5py.ref_dtype)
        for index in np.ndindex(cell.shape):
            pointers[index] = _write(refs, refs, counter, f"r{next(counter)}", cell[index]).ref
        dataset = parent.create_dataset(name, data=pointers.T)
        dataset.attrs["MATLAB_class"] = np.bytes_("cell")
        return dataset
    array = _matrix_shape(np.asarray(value))
    if array.dtype == np.bool_:
        kind, array = "logical", array.astype(np.uint8)  # as MATLAB stores logical
    elif np.iscomplexobj(array):
        part = np.float32 if array.dtype == np.complex64 else np.float64
        kind = "single" if part == np.float32 else "double"
        pair = np.empty(array.shape, dtype=[("real", part), ("imag", part)])
        pair["real"], pair["imag"] = array.real, array.imag
        array = pair
    else:
        kind = {np.dtype(v): k for k, v in _NUMERIC.items() if k != "logical"}.get(array.dtype)
    if kind is None:
        raise TypeError(f"{name}: cannot write {array.dtype} arrays as MATLAB data")
    if array.size == 0:
        return _write_empty(parent, name, array.shape, kind)
    dataset = parent.create_dataset(name, data=array.T)
    dataset.attrs["MATLAB_class"] = np.bytes_(kind)
    return dataset
