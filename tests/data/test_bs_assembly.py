"""Brain-Score assemblies in netCDF: the flattened MultiIndex layout brainio writes, read back as Presentations."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from brainalign.data.assembly import read_brainscore_assembly, write_brainscore_assembly
from brainalign.data.benchmark_sources import read_benchmark_data
from brainalign.errors import InputError


def pereira_like(path, time_bin=True):
    data = np.arange(24, dtype=np.float64).reshape(6, 4)
    write_brainscore_assembly(
        path, data,
        {"stimulus_id": [f"384sentences.{i}" for i in range(6)], "sentence": ["An owl.", "It hoots.", "Bees.",
                                                                               "They buzz.", "Ice.", "It melts."],
         "stimulus_num": np.arange(6), "passage_index": [1, 1, 2, 2, 3, 3],
         "passage_category": ["bird"] * 2 + ["insect"] * 4},
        {"subject": ["018", "018", "199", "199"], "neuroid_id": ["018.1", "018.7", "199.2", "199.3"],
         "atlas": ["language"] * 4, "voxel_num": [1, 7, 2, 3]}, time_bin=time_bin)
    return data


def test_a_pereira_like_assembly_with_a_time_bin(tmp_path):
    data = pereira_like(tmp_path / "assembly_Pereira2018.nc")
    # The file has no MultiIndex (netCDF cannot hold one): levels are plain coordinates along each dim.
    with xr.open_dataset(tmp_path / "assembly_Pereira2018.nc", engine="h5netcdf") as raw:
        assert raw.sizes == {"presentation": 6, "neuroid": 4, "time_bin": 1} and not raw.indexes
    read = read_benchmark_data("brainscore_assembly", tmp_path / "assembly_Pereira2018.nc", group="passage_index")
    np.testing.assert_array_equal(read.responses, data.astype(np.float32))
    assert read.stimuli["text"].tolist()[:2] == ["An owl.", "It hoots."]
    assert read.stimuli["sentence"].tolist() == list(range(6))  # the numeric stimulus_num, not the text
    assert read.groups.tolist() == [1, 1, 2, 2, 3, 3] and read.stimuli["passage_category"].iloc[2] == "insect"
    assert read.channels["channel_id"].tolist() == ["018.1", "018.7", "199.2", "199.3"]
    assert read.subjects == ["018", "199"] and read.channels["voxel_num"].tolist() == [1, 7, 2, 3]


def test_a_behavioural_assembly_written_by_xarray_itself(tmp_path):
    """A Futrell-like assembly made the way brainio makes one (set_index, reset_index, to_netcdf), with
    readers as the second dim and NaN where a reader skipped a word."""
    rts = np.array([[300.0, np.nan], [310.0, 420.0], [np.nan, 250.0]])
    array = xr.DataArray(rts, dims=("presentation", "subject"), coords={
        "word": ("presentation", ["If", "you", "were"]), "story_id": ("presentation", [1, 1, 1]),
        "sentence_id": ("presentation", [1, 1, 1]), "stimulus_id": ("presentation", [1, 2, 3]),
        "subject_id": ("subject", ["A1", "B2"]), "correct": ("subject", [6, 5])})
    array = array.set_index(presentation=["word", "story_id", "sentence_id", "stimulus_id"],
                            subject=["subject_id", "correct"]).reset_index(["presentation", "subject"])
    array.drop_vars([d for d in ("presentation", "subject") if d in array.coords]).to_netcdf(
        tmp_path / "futrell.nc", engine="h5netcdf")
    read = read_brainscore_assembly(tmp_path / "futrell.nc", group="story_id", kind="reading_times")
    assert read.allow_missing and np.isnan(read.responses[0, 1]) and read.responses[1, 1] == 420
    assert read.stimuli["text"].tolist() == ["If", "you", "were"]
    assert read.stimuli["stimulus_id"].tolist() == ["1", "2", "3"]
    assert read.channels["channel_id"].tolist() == ["A1", "B2"] and read.channels["correct"].tolist() == [6, 5]


def test_malformed_assemblies_fail_once_and_clearly(tmp_path):
    pereira_like(tmp_path / "a.nc", time_bin=False)
    with pytest.raises(InputError) as error:
        read_brainscore_assembly(tmp_path / "a.nc", group="story")
    assert (error.value.source, error.value.field, error.value.found) == (str(tmp_path / "a.nc"), "group", "'story'")
    assert "passage_index" in error.value.expected
    with xr.open_dataset(tmp_path / "a.nc", engine="h5netcdf") as raw:
        raw = raw.load()
    raw.assign(other=raw["data"] * 2).to_netcdf(tmp_path / "b.nc", engine="h5netcdf")
    with pytest.raises(InputError, match=r"b.nc: data variables: expected exactly one \(the assembly\), "
                                         r"found \['data', 'other'\]"):
        read_brainscore_assembly(tmp_path / "b.nc", group="passage_index")
    (tmp_path / "c.nc").write_bytes(b"CDF\x01 not really")
    with pytest.raises(InputError, match=r"c.nc: file: expected a netCDF-4 \(HDF5\) file"):
        read_brainscore_assembly(tmp_path / "c.nc", group="passage_index")
    with pytest.raises(InputError, match=r"a.nc: subject: expected a coordinate along its dim"):
        read_brainscore_assembly(tmp_path / "a.nc", group="passage_index", subject="participant")
