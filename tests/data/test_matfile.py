"""load_mat reads a v7.3 file as scipy.io.loadmat reads the same content saved as v5.

The truth is scipy: each content is saved by ``scipy.io.savemat`` (v5) and read by ``scipy.io.loadmat``, and
separately written by ``write_mat73`` (or built by hand with h5py in MATLAB's layout) and read by ``load_mat``;
the two results must agree in type, shape, dtype, field names and every value, at every depth."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io

from brainalign.data.matfile import is_mat73, load_mat, write_mat73
from brainalign.errors import InputError


def assert_same(ours, truth, where: str = "") -> None:
    """Recursive equality of two values as scipy represents MATLAB data."""
    assert type(ours) is type(truth), f"{where}: {type(ours).__name__} != {type(truth).__name__}"
    if isinstance(truth, dict):
        assert sorted(ours) == sorted(truth), f"{where}: variables {sorted(ours)} != {sorted(truth)}"
        for name in truth:
            assert_same(ours[name], truth[name], f"{where}{name}")
        return
    if not isinstance(truth, np.ndarray):
        assert ours == truth, f"{where}: {ours!r} != {truth!r}"
        return
    assert ours.shape == truth.shape, f"{where}: shape {ours.shape} != {truth.shape}"
    assert ours.dtype == truth.dtype, f"{where}: dtype {ours.dtype} != {truth.dtype}"
    if truth.dtype.names:
        for index in np.ndindex(truth.shape):
            for name in truth.dtype.names:
                assert_same(ours[name][index], truth[name][index], f"{where}{list(index)}.{name}")
    elif truth.dtype == object:
        for index in np.ndindex(truth.shape):
            assert_same(ours[index], truth[index], f"{where}{{{list(index)}}}")
    else:
        np.testing.assert_array_equal(ours, truth, err_msg=where)


def records(shape, **fields) -> np.ndarray:
    """A struct array of ``shape`` whose field ``f`` holds ``fields[f][i]`` at flat (C-order) position i."""
    out = np.empty(shape, dtype=[(name, object) for name in fields])
    for name, items in fields.items():
        for i, item in enumerate(items):
            out[name].flat[i] = item
    return out


def cell(shape, *items) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    for i, item in enumerate(items):  # one by one: np.array would merge equal-shaped elements
        out.flat[i] = item
    return out


def both(tmp_path, content: dict) -> tuple[dict, dict]:
    """(load_mat of the v7.3 file, scipy.io.loadmat of the v5 file) for one content."""
    v5, v73 = tmp_path / "v5.mat", tmp_path / "v73.mat"
    scipy.io.savemat(v5, content, do_compression=False)
    write_mat73(v73, content)
    assert is_mat73(v73) and not is_mat73(v5)
    truth = scipy.io.loadmat(v5, squeeze_me=False, struct_as_record=True, chars_as_strings=True)
    return load_mat(v73), {k: v for k, v in truth.items() if not k.startswith("__")}


def test_struct_array_whose_elements_are_structs(tmp_path):
    """The Blank 2014 shape: a 1 x 3 struct array whose field holds a struct (one field per story) or NaN."""
    froi = records((1, 3), timeseries=[{"Boar": np.arange(6.0).reshape(2, 3), "Aqua": np.ones((2, 1))}, np.nan,
                                       {"Boar": np.full((1, 3), 7.0), "Aqua": np.zeros((1, 1))}])
    ours, truth = both(tmp_path, {"data": {"language": {"from90to100": froi}}})
    assert_same(ours, truth)
    # By hand, as scipy gives it: element 1's Boar is the 2 x 3 matrix, element 2's timeseries the 1 x 1 NaN.
    elements = ours["data"]["language"][0, 0]["from90to100"][0, 0]
    assert elements.shape == (1, 3)
    np.testing.assert_array_equal(elements["timeseries"][0, 0]["Boar"][0, 0], [[0, 1, 2], [3, 4, 5]])
    assert np.isnan(elements["timeseries"][0, 1]).all() and elements["timeseries"][0, 1].shape == (1, 1)


def test_deeply_nested_structs_cells_and_struct_arrays(tmp_path):
    inner = records((1, 2), name=["left", "right"], value=[np.int32([[1, 2, 3]]), cell((1, 2), "x", {"k": 2.5})])
    grid = records((2, 3), a=list(range(6)), b=["s0", "s1", "", "s3", {"deep": inner}, cell((0, 0))])
    content = {
        "nested": records((1, 3), child=[{"leaf": 1.0, "list": cell((2, 1), "a", np.eye(2))}, inner, grid],
                          label=["one", "two", "three"]),
        "cells": cell((2, 2), {"p": "q"}, inner, np.array([[1 + 2j, 3 - 4j]]), cell((1, 1), cell((1, 1), "z"))),
        "single": records((1, 1), only=[np.float32([[1.5], [2.5]])]),
        "empties": {"struct": np.empty((0, 0), dtype=[("a", object), ("b", object)]), "cell": cell((0, 0)),
                    "matrix": np.zeros((0, 3)), "text": ""},
        "numbers": {"u8": np.uint8([[1, 255]]), "i64": np.int64([[-5], [6]]), "u16": np.uint16([[65535]]),
                    "chars": np.array(["ab", "c"])},
    }
    ours, truth = both(tmp_path, content)
    assert sorted(ours) == sorted(truth)
    assert_same(ours, truth)
    # A few by hand, so that agreement is not agreement on something odd.
    assert ours["nested"]["child"][0, 2].shape == (2, 3)
    assert ours["nested"]["child"][0, 2]["b"][1, 1]["deep"][0, 0]["name"][0, 1].tolist() == ["right"]
    assert ours["cells"][1, 0].dtype == complex and ours["cells"][1, 0][0, 1] == 3 - 4j
    assert ours["numbers"]["chars"][0, 0].tolist() == ["ab", "c "]  # a char matrix pads its rows


def test_hand_built_matlab_layout_struct_array_of_structs(tmp_path):
    """A file laid out by hand as MATLAB writes ``s(1).t = struct('x', 1); s(2).t = 'hi'`` with -v7.3: group
    ``s`` holds a 2 x 1 dataset of references (no MATLAB_class) into ``#refs#``, where element 1 is a struct
    group and element 2 a UTF-16 char dataset."""
    path = tmp_path / "s.mat"
    with h5py.File(path, "w", userblock_size=512) as handle:
        refs = handle.create_group("#refs#")
        element = refs.create_group("a")
        element.attrs["MATLAB_class"] = np.bytes_("struct")
        element.create_dataset("x", data=np.array([[1.0]])).attrs["MATLAB_class"] = np.bytes_("double")
        text = refs.create_dataset("b", data=np.array([[104], [105]], dtype=np.uint16))
        text.attrs["MATLAB_class"] = np.bytes_("char")
        group = handle.create_group("s")
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        group.create_dataset("t", data=np.array([[element.ref], [text.ref]], dtype=h5py.ref_dtype))
    s = load_mat(path)["s"]
    truth = records((1, 2), t=[{"x": 1.0}, "hi"])
    scipy.io.savemat(tmp_path / "v5.mat", {"s": truth})
    assert_same(s, scipy.io.loadmat(tmp_path / "v5.mat", squeeze_me=False, struct_as_record=True)["s"])
    assert s["t"][0, 0]["x"][0, 0].tolist() == [[1.0]] and s["t"][0, 1].tolist() == ["hi"]


def test_logical_reads_as_bool_and_a_mixed_struct_array_is_refused(tmp_path):
    path = tmp_path / "b.mat"
    write_mat73(path, {"mask": np.array([[True, False, True]])})
    with h5py.File(path, "r") as handle:  # MATLAB stores logical as uint8 with its own class
        assert handle["mask"].dtype == np.uint8 and handle["mask"].attrs["MATLAB_class"] == b"logical"
    mask = load_mat(path)["mask"]
    assert mask.dtype == np.bool_ and mask.tolist() == [[True, False, True]]

    with h5py.File(path, "a") as handle:
        group = handle.create_group("bad")
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        group.create_dataset("refs", data=np.array([[handle["mask"].ref], [handle["mask"].ref]], dtype=h5py.ref_dtype))
        group.create_dataset("direct", data=np.array([[1.0]])).attrs["MATLAB_class"] = np.bytes_("double")
    with pytest.raises(InputError) as error:
        load_mat(path)
    assert error.value.field == "bad"
    assert error.value.found == "fields {'refs': (1, 2), 'direct': 'stored directly'}"
