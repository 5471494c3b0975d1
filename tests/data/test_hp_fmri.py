"""Reading and writing the Harry Potter fMRI release format (``subject_N.mat``).

The release files here are written by hand with ``scipy.io.savemat`` (never with brainalign's writer), and
every expectation is written out by hand from the MATLAB conventions of the release (1-based voxel
coordinates, an SPM ``matrix`` acting on 1-based coordinates).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd
import pytest
import scipy.io

from brainalign.errors import InputError
from brainalign.data.recording import Recording, assign_runs
from brainalign.data.hp_fmri import read_hp_fmri, subject_files, write_hp_fmri

# ---------------------------------------------------------------------------------------------------------
# A hand-made release file: 4 runs x 3 TRs, 5 voxels in a 4 x 5 x 6 volume.
# ---------------------------------------------------------------------------------------------------------

TIMES = [0.0, 2.0, 4.0, 20.0, 22.0, 24.0, 40.0, 42.0, 44.0, 60.0, 62.0, 64.0]
RUNS = [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
N_TRS, N_VOXELS = 12, 5
DIMS = (4, 5, 6)

# (text, start, length); two fixation entries among the words.
WORDS = [
    ("+", 0.0, 0.5),
    ("Harry", 0.5, 0.5),
    ("had", 3.9, 0.5),
    ("the", 19.0, 0.3),     # after the last TR of run 1, before run 2 starts -> run 1
    ("+", 20.0, 0.5),
    ("never", 21.0, 0.4),   # TR at 20.0 -> run 2
    ("believed", 40.0, 0.5),  # exactly on the first TR of run 3 (40.0) -> run 3
    ("he", 63.0, 0.5),      # TR at 62.0 -> run 4
]
# The run of each story word (fixation removed), worked out by hand from TIMES/RUNS.
STORY_RUNS = {"Harry": 1, "had": 1, "the": 1, "never": 2, "believed": 3, "he": 4}

COL_TO_COORD_1BASED = [[1, 1, 1], [4, 5, 6], [2, 3, 4], [3, 1, 2], [1, 5, 1]]
COORDS_0BASED = [[0, 0, 0], [3, 4, 5], [1, 2, 3], [2, 0, 1], [0, 4, 0]]
# SPM matrix acting on 1-based voxel coordinates; one off-diagonal term so a transposition would show.
MATRIX = [[-3.0, 0.0, 0.5, 90.0],
          [0.0, 3.0, 0.0, -126.0],
          [0.0, 0.0, 3.0, -72.0],
          [0.0, 0.0, 0.0, 1.0]]
WRONG_NVOXELS = 7.0


def data_matrix() -> np.ndarray:
    # Values exactly representable in float32: 0.25 * k + 1.
    return np.arange(N_TRS * N_VOXELS, dtype=np.float64).reshape(N_TRS, N_VOXELS) * 0.25 + 1.0


def words_struct(fields=("text", "start", "length"), entries=WORDS) -> np.ndarray:
    words = np.empty((1, len(entries)), dtype=[(f, "O") for f in fields])
    index = {"text": 0, "start": 1, "length": 2}
    for i, entry in enumerate(entries):
        words[0, i] = tuple(entry[index[f]] for f in fields)
    return words


def meta_dict(col_to_coord=COL_TO_COORD_1BASED, nvoxels=WRONG_NVOXELS) -> dict:
    col_to_coord = np.asarray(col_to_coord, dtype=np.float64)
    coord_to_col = np.zeros(DIMS)
    for col, (x, y, z) in enumerate(COL_TO_COORD_1BASED, start=1):
        coord_to_col[x - 1, y - 1, z - 1] = col
    return {
        "subject": 3.0,
        "nTRs": float(N_TRS),
        "nvoxels": nvoxels,
        "dimx": float(DIMS[0]),
        "dimy": float(DIMS[1]),
        "dimz": float(DIMS[2]),
        "colToCoord": col_to_coord,
        "coordToCol": coord_to_col,
        "colToROInum": np.array([[1.0], [2.0], [0.0], [1.0], [2.0]]),
        "coordToROInum": np.zeros(DIMS),
        "ROInumToName": np.array(["LeftTemporal", "RightTemporal"], dtype=object).reshape(1, -1),
        "voxel_size": 3.0,
        "matrix": np.array(MATRIX),
    }


def release_content() -> dict:
    return {
        "data": data_matrix(),
        "time": np.column_stack([np.array(TIMES), np.array(RUNS, dtype=np.float64)]),
        "words": words_struct(),
        "meta": meta_dict(),
    }


def save(path, content) -> str:
    scipy.io.savemat(str(path), content)
    return str(path)


@pytest.fixture
def release_file(tmp_path):
    return save(tmp_path / "subject_3.mat", release_content())


def expect_input_error(path, field):
    """Read ``path``; it must fail with an InputError naming the file and ``field``."""
    with pytest.raises(InputError) as info:
        read_hp_fmri(path)
    exc = info.value
    assert exc.field == field
    message = str(exc)
    assert str(path) in message
    assert message.startswith(str(path))
    assert f": {field}: " in message
    return exc


# ---------------------------------------------------------------------------------------------------------
# Reading a well-formed file
# ---------------------------------------------------------------------------------------------------------


def test_read_gives_subject_responses_times_runs(release_file):
    rec = read_hp_fmri(release_file)
    assert rec.subject == "3"
    assert rec.modality == "fmri"
    assert rec.source == release_file
    assert rec.responses.dtype == np.float32
    assert rec.responses.shape == (12, 5)
    assert rec.responses[0].tolist() == [1.0, 1.25, 1.5, 1.75, 2.0]
    assert rec.responses[11, 4] == 0.25 * 59 + 1.0
    np.testing.assert_array_equal(rec.responses, data_matrix().astype(np.float32))
    assert rec.times.tolist() == TIMES
    assert rec.runs.tolist() == RUNS
    assert rec.n_channels == 5


def test_read_keeps_words_with_fixation(release_file):
    rec = read_hp_fmri(release_file)
    assert list(rec.words.columns) == ["word", "onset", "duration"]
    assert rec.words["word"].tolist() == ["+", "Harry", "had", "the", "+", "never", "believed", "he"]
    assert rec.words["onset"].tolist() == [0.0, 0.5, 3.9, 19.0, 20.0, 21.0, 40.0, 63.0]
    assert rec.words["duration"].tolist() == [0.5, 0.5, 0.5, 0.3, 0.5, 0.4, 0.5, 0.5]


def test_read_converts_coords_to_zero_based(release_file):
    rec = read_hp_fmri(release_file)
    assert rec.coords.tolist() == COORDS_0BASED
    assert rec.volume_shape == DIMS


def test_read_affine_acts_on_zero_based_indices(release_file):
    rec = read_hp_fmri(release_file)
    affine = rec.affine
    assert affine.shape == (4, 4)
    # Worked by hand: 0-based (0,0,0) is 1-based (1,1,1): x = -3 + 0.5 + 90, y = 3 - 126, z = 3 - 72.
    np.testing.assert_allclose(affine @ [0, 0, 0, 1], [87.5, -123.0, -69.0, 1.0])
    # 0-based (3,4,5) is 1-based (4,5,6): x = -12 + 3 + 90, y = 15 - 126, z = 18 - 72.
    np.testing.assert_allclose(affine @ [3, 4, 5, 1], [81.0, -111.0, -54.0, 1.0])
    matrix = np.array(MATRIX)
    for i, j, k in COORDS_0BASED + [[2, 2, 2], [0, 4, 1]]:
        np.testing.assert_allclose(affine @ [i, j, k, 1], matrix @ [i + 1, j + 1, k + 1, 1])


def test_read_warns_when_nvoxels_disagrees_with_data(release_file, caplog):
    with caplog.at_level(logging.WARNING, logger="brainalign.data.hp_fmri"):
        rec = read_hp_fmri(release_file)
    assert rec.responses.shape[1] == 5  # the data win
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "nvoxels" in r.getMessage()]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert release_file in message
    assert "7" in message and "5 columns" in message


def test_read_does_not_warn_when_nvoxels_matches(tmp_path, caplog):
    content = release_content()
    content["meta"] = meta_dict(nvoxels=5.0)
    path = save(tmp_path / "subject_3.mat", content)
    with caplog.at_level(logging.WARNING, logger="brainalign.data.hp_fmri"):
        read_hp_fmri(path)
    assert not [r for r in caplog.records if "nvoxels" in r.getMessage()]


def test_subject_id_comes_from_file_name(tmp_path):
    path = save(tmp_path / "subject_12.mat", release_content())
    assert read_hp_fmri(path).subject == "12"


def test_story_words_drop_fixation_and_assign_runs(release_file):
    words = read_hp_fmri(release_file).story_words()
    assert "+" not in words["word"].tolist()
    assert words["word"].tolist() == ["Harry", "had", "the", "never", "believed", "he"]
    assert list(words.index) == list(range(6))
    assert dict(zip(words["word"], words["run"])) == STORY_RUNS
    assert words["onset"].tolist() == [0.5, 3.9, 19.0, 21.0, 40.0, 63.0]


def test_assign_runs_hand_cases():
    times = np.array([10.0, 0.0, 2.0, 12.0])  # unsorted on purpose
    runs = np.array([2, 1, 1, 2])
    onsets = np.array([-1.0, 0.0, 1.9, 2.0, 9.99, 10.0, 100.0])
    assert assign_runs(onsets, times, runs).tolist() == [0, 1, 1, 1, 1, 2, 2]


# ---------------------------------------------------------------------------------------------------------
# Round trip through brainalign's writer
# ---------------------------------------------------------------------------------------------------------


def test_round_trip_of_a_read_file(release_file, tmp_path):
    original = read_hp_fmri(release_file)
    out = tmp_path / "out" / "subject_3.mat"
    write_hp_fmri(original, out)
    back = read_hp_fmri(out)
    assert back.subject == "3"
    np.testing.assert_array_equal(back.responses, original.responses)
    assert back.responses.dtype == np.float32
    assert back.times.tolist() == TIMES
    assert back.runs.tolist() == RUNS
    pd.testing.assert_frame_equal(back.words, original.words)
    assert back.coords.tolist() == COORDS_0BASED
    assert back.volume_shape == DIMS
    np.testing.assert_allclose(back.affine, original.affine)


def test_round_trip_of_a_built_recording_and_file_layout(tmp_path):
    coords = [[0, 1, 2], [1, 0, 0], [1, 1, 1]]
    affine = np.array([[2.0, 0, 0, -10], [0, 2.0, 0, -20], [0, 0, 2.0, -30], [0, 0, 0, 1]])
    responses = np.array([[1.5, -2.0, 0.0], [3.25, 4.0, -1.0], [0.5, 0.5, 0.5], [9.0, 8.0, 7.0]])
    words = pd.DataFrame({"word": ["+", "Hello", "world"], "onset": [0.0, 1.0, 5.5],
                          "duration": [0.5, 0.25, 0.75]})
    rec = Recording(subject="7", modality="fmri", responses=responses, times=[0.0, 2.0, 10.0, 12.0],
                    runs=[1, 1, 2, 2], words=words, coords=coords, affine=affine, volume_shape=(2, 2, 3),
                    source="built")
    path = tmp_path / "subject_7.mat"
    write_hp_fmri(rec, path)

    back = read_hp_fmri(path)
    assert back.subject == "7"
    np.testing.assert_array_equal(back.responses, responses.astype(np.float32))
    assert back.times.tolist() == [0.0, 2.0, 10.0, 12.0]
    assert back.runs.tolist() == [1, 1, 2, 2]
    assert back.words["word"].tolist() == ["+", "Hello", "world"]
    assert back.words["onset"].tolist() == [0.0, 1.0, 5.5]
    assert back.words["duration"].tolist() == [0.5, 0.25, 0.75]
    assert back.coords.tolist() == coords
    assert back.volume_shape == (2, 2, 3)
    np.testing.assert_allclose(back.affine, affine)

    # The file itself follows the release conventions (checked with scipy, not with the reader).
    raw = scipy.io.loadmat(str(path), squeeze_me=True)
    meta = raw["meta"]
    assert np.asarray(meta["colToCoord"].item()).tolist() == [[1, 2, 3], [2, 1, 1], [2, 2, 2]]
    assert float(meta["nvoxels"].item()) == 3.0
    assert (float(meta["dimx"].item()), float(meta["dimy"].item()), float(meta["dimz"].item())) == (2, 2, 3)
    # 1-based matrix: 1-based (1,1,1) must land where 0-based (0,0,0) does: (-10, -20, -30).
    matrix = np.asarray(meta["matrix"].item())
    np.testing.assert_allclose(matrix @ [1, 1, 1, 1], [-10.0, -20.0, -30.0, 1.0])
    coord_to_col = np.asarray(meta["coordToCol"].item())
    assert coord_to_col[0, 1, 2] == 1 and coord_to_col[1, 0, 0] == 2 and coord_to_col[1, 1, 1] == 3
    assert np.count_nonzero(coord_to_col) == 3
    assert raw["time"].tolist() == [[0.0, 1.0], [2.0, 1.0], [10.0, 2.0], [12.0, 2.0]]


def test_round_trip_of_a_single_voxel_recording(tmp_path):
    rec = Recording(subject="1", modality="fmri", responses=[[1.0], [2.0], [3.0]], times=[0.0, 2.0, 4.0],
                    runs=[1, 1, 1], words=pd.DataFrame({"word": ["a", "b"], "onset": [0.5, 2.5],
                                                        "duration": [0.5, 0.5]}),
                    coords=[[0, 0, 0]], affine=np.eye(4), volume_shape=(1, 1, 1), source="built")
    path = tmp_path / "subject_1.mat"
    write_hp_fmri(rec, path)
    back = read_hp_fmri(path)
    assert back.responses.tolist() == [[1.0], [2.0], [3.0]]


def test_write_leaves_only_the_target_file(tmp_path, release_file):
    rec = read_hp_fmri(release_file)
    target_dir = tmp_path / "release"
    target_dir.mkdir()
    write_hp_fmri(rec, target_dir / "subject_3.mat")
    assert sorted(os.listdir(target_dir)) == ["subject_3.mat"]
    # Overwriting an existing file is atomic too and leaves nothing behind.
    write_hp_fmri(rec, target_dir / "subject_3.mat")
    assert sorted(os.listdir(target_dir)) == ["subject_3.mat"]


def test_failed_write_leaves_nothing_half_written(tmp_path, release_file, monkeypatch):
    rec = read_hp_fmri(release_file)
    target_dir = tmp_path / "release"
    target_dir.mkdir()
    target = target_dir / "subject_3.mat"
    target.write_bytes(b"previous content")

    def broken_savemat(file_name, *args, **kwargs):
        with open(file_name, "wb") as handle:
            handle.write(b"MATLAB 5.0 MAT-file, half")
        raise OSError("disk full")

    monkeypatch.setattr(scipy.io, "savemat", broken_savemat)
    with pytest.raises(OSError, match="disk full"):
        write_hp_fmri(rec, target)
    assert sorted(os.listdir(target_dir)) == ["subject_3.mat"]
    assert target.read_bytes() == b"previous content"


def test_write_requires_spatial_information(tmp_path):
    rec = Recording(subject="1", modality="fmri", responses=[[1.0, 2.0]], times=[0.0], runs=[1],
                    words=pd.DataFrame({"word": ["a"], "onset": [0.0], "duration": [0.5]}), source="nocoords")
    with pytest.raises(InputError) as info:
        write_hp_fmri(rec, tmp_path / "subject_1.mat")
    assert "nocoords" in str(info.value)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------------------
# Malformed files
# ---------------------------------------------------------------------------------------------------------


def test_truncated_file(release_file):
    data = open(release_file, "rb").read()
    with open(release_file, "wb") as handle:
        handle.write(data[: len(data) // 2])
    expect_input_error(release_file, "file")


def test_file_that_is_not_a_mat_file(tmp_path):
    path = tmp_path / "subject_3.mat"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    expect_input_error(path, "file")


def test_text_file_named_mat(tmp_path):
    path = tmp_path / "subject_3.mat"
    path.write_text("subject,data\n3,1.0\n" * 20)
    expect_input_error(path, "file")


@pytest.mark.parametrize("variable", ["words", "data", "time", "meta"])
def test_missing_variable(tmp_path, variable):
    content = release_content()
    del content[variable]
    path = save(tmp_path / "subject_3.mat", content)
    exc = expect_input_error(path, variable)
    # The message lists the variables that are there, which lack the missing one.
    assert repr(variable) not in exc.found
    for other in {"data", "time", "words", "meta"} - {variable}:
        assert repr(other) in exc.found


@pytest.mark.parametrize("time", [
    np.column_stack([TIMES, RUNS, np.zeros(12)]),          # TRs x 3
    np.column_stack([TIMES[:11], RUNS[:11]]),              # one row short
    np.column_stack([TIMES + [66.0], RUNS + [4]]),         # one row too many
], ids=["three-columns", "fewer-rows", "more-rows"])
def test_time_with_wrong_shape(tmp_path, time):
    content = release_content()
    content["time"] = np.asarray(time, dtype=np.float64)
    path = save(tmp_path / "subject_3.mat", content)
    exc = expect_input_error(path, "time")
    assert str(time.shape) in exc.found


def test_col_to_coord_with_wrong_number_of_rows(tmp_path):
    content = release_content()
    content["meta"] = meta_dict(col_to_coord=COL_TO_COORD_1BASED[:4])
    path = save(tmp_path / "subject_3.mat", content)
    exc = expect_input_error(path, "meta.colToCoord")
    assert "(4, 3)" in exc.found


def test_meta_without_col_to_coord(tmp_path):
    content = release_content()
    del content["meta"]["colToCoord"]
    path = save(tmp_path / "subject_3.mat", content)
    expect_input_error(path, "meta.colToCoord")


@pytest.mark.parametrize("bad", [[5, 1, 1], [1, 6, 1], [1, 1, 7], [0, 1, 1]],
                         ids=["x>dimx", "y>dimy", "z>dimz", "x=0"])
def test_coordinates_outside_the_volume(tmp_path, bad):
    coords = [list(c) for c in COL_TO_COORD_1BASED]
    coords[2] = bad
    content = release_content()
    content["meta"] = meta_dict(col_to_coord=coords)
    path = save(tmp_path / "subject_3.mat", content)
    exc = expect_input_error(path, "meta.colToCoord")
    assert "first at column 3" in exc.found  # 1-based column of the bad voxel


def test_coordinates_on_the_last_voxel_of_the_volume_are_inside(tmp_path):
    coords = [list(c) for c in COL_TO_COORD_1BASED]
    coords[0] = [4, 5, 6]  # 1-based (dimx, dimy, dimz): the far corner, still inside
    content = release_content()
    content["meta"] = meta_dict(col_to_coord=coords)
    rec = read_hp_fmri(save(tmp_path / "subject_3.mat", content))
    assert rec.coords[0].tolist() == [3, 4, 5]


def test_words_without_start_field(tmp_path):
    content = release_content()
    content["words"] = words_struct(fields=("text", "length"))
    path = save(tmp_path / "subject_3.mat", content)
    exc = expect_input_error(path, "words")
    assert "start" in exc.expected


def test_words_with_non_numeric_start(tmp_path):
    entries = [list(w) for w in WORDS]
    entries[2][1] = "three"
    content = release_content()
    content["words"] = words_struct(entries=[tuple(e) for e in entries])
    path = save(tmp_path / "subject_3.mat", content)
    expect_input_error(path, "words")


def test_data_one_dimensional(tmp_path):
    content = release_content()
    content["data"] = np.arange(12, dtype=np.float64)
    path = save(tmp_path / "subject_3.mat", content)
    expect_input_error(path, "data")


def test_data_not_numeric(tmp_path):
    content = release_content()
    content["data"] = np.array([["a", "b"], ["c", "d"]], dtype=object)
    path = save(tmp_path / "subject_3.mat", content)
    expect_input_error(path, "data")


# ---------------------------------------------------------------------------------------------------------
# Finding the participant files
# ---------------------------------------------------------------------------------------------------------


def test_subject_files_of_empty_directory(tmp_path):
    with pytest.raises(InputError) as info:
        subject_files(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert info.value.field == "subject_N.mat"


def test_subject_files_ignore_other_names(tmp_path):
    for name in ("subject_x.mat", "subject_3.mat.bak", "notes.txt", "subject_.mat"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(InputError):
        subject_files(tmp_path)


def test_subject_files_order_numerically(tmp_path):
    for name in ("subject_10.mat", "subject_2.mat", "subject_1.mat", "subject_x.mat", "readme.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in subject_files(tmp_path)] == ["subject_1.mat", "subject_2.mat", "subject_10.mat"]


# ---------------------------------------------------------------------------------------------------------
# Recording construction
# ---------------------------------------------------------------------------------------------------------


def small_recording(**overrides) -> Recording:
    kwargs = dict(subject="1", modality="fmri", responses=np.zeros((3, 2)), times=[0.0, 2.0, 4.0],
                  runs=[1, 1, 1], words=pd.DataFrame({"word": ["a"], "onset": [1.0], "duration": [0.5]}),
                  source="subject_1.mat")
    kwargs.update(overrides)
    return Recording(**kwargs)


def test_recording_converts_types():
    rec = small_recording(responses=[[1, 2], [3, 4], [5, 6]], runs=[1.0, 1.0, 2.0])
    assert rec.responses.dtype == np.float32
    assert rec.runs.dtype == np.int64 and rec.runs.tolist() == [1, 1, 2]
    assert rec.times.dtype == np.float64


@pytest.mark.parametrize("overrides, field", [
    ({"responses": np.zeros(3)}, "responses"),
    ({"responses": np.zeros((3, 2, 1))}, "responses"),
    ({"times": [0.0, 2.0]}, "times"),
    ({"times": [0.0, 2.0, 4.0, 6.0]}, "times"),
    ({"runs": [1, 1]}, "runs"),
    ({"words": pd.DataFrame({"word": ["a"], "onset": [1.0]})}, "words"),
    ({"coords": [[0, 0, 0]]}, "coords"),
    ({"coords": [[0, 0, 0], [0, 0, 2]], "volume_shape": (1, 1, 2)}, "coords"),
    ({"coords": [[0, 0, 0], [0, -1, 0]], "volume_shape": (1, 1, 2)}, "coords"),
    ({"files": {"onsets": "words.tsv"}}, "files"),
    ({"fields": {"onsets": "words.start"}}, "fields"),
], ids=["responses-1d", "responses-3d", "times-short", "times-long", "runs-short", "words-columns",
        "coords-rows", "coords-outside", "coords-negative", "files-unknown-part", "fields-unknown-part"])
def test_recording_construction_errors(overrides, field):
    with pytest.raises(InputError) as info:
        small_recording(**overrides)
    assert info.value.field == field
    assert str(info.value).startswith("subject_1.mat: ")
    assert f": {field}: " in str(info.value)


def test_writing_is_deterministic(tmp_path):
    """Truth: the same recording written twice (seconds apart) gives byte-identical files, readable again."""
    import time as _time

    content = release_content()
    source = save(tmp_path / "subject_3.mat", content)
    recording = read_hp_fmri(source)
    write_hp_fmri(recording, tmp_path / "a" / "subject_3.mat")
    _time.sleep(1.1)
    write_hp_fmri(recording, tmp_path / "b" / "subject_3.mat")
    first = (tmp_path / "a" / "subject_3.mat").read_bytes()
    assert first == (tmp_path / "b" / "subject_3.mat").read_bytes()
    assert first[:116].rstrip().endswith(b"written by brainalign")
    np.testing.assert_array_equal(read_hp_fmri(tmp_path / "a" / "subject_3.mat").responses, recording.responses)
