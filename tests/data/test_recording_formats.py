"""Release formats, own-data formats, word windows, lexicon, last-word features and simulation ground truth.

Every fixture file here is built by hand (h5py in MATLAB's v7.3 layout, numpy ``.npz``, pandas/nibabel for
the own format), never with brainalign's writers, and every expectation is written out by hand from the
format's conventions or from a simulated ground truth; brainalign's writers appear only in round trips.
"""

from __future__ import annotations

import math

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
from scipy.io.matlab import matfile_version
from scipy.signal import detrend

from brainalign.errors import ConfigError, InputError
from brainalign.data.datasets import read_dataset
from brainalign.data.recording import Recording
from brainalign.data.hp_fmri import read_hp_fmri, write_hp_fmri
from brainalign.data.hp_meg import bins_per_sensor, read_hp_meg, write_hp_meg
from brainalign.data.matfile import is_mat73, load_mat
from brainalign.data.own import participant_dirs, read_own, write_own

# =========================================================================================================
# 1. MATLAB v7.3, built by hand in MATLAB's own HDF5 layout
# =========================================================================================================

# A MATLAB 6 x 4 `data` (TRs x voxels): data(t, v) = 10 * t + v (0-based t, v), so the orientation shows.
DATA = np.array([[10.0 * t + v for v in range(4)] for t in range(6)])
TIME = np.array([[0.0, 1], [2.0, 1], [4.0, 1], [6.0, 2], [8.0, 2], [10.0, 2]])
WORDS = [("+", 0.0, 0.5), ("Harry", 0.5, 0.5), ("looked", 1.0, 0.5), ("up.", 1.5, 0.5),
         ("+", 6.0, 0.5), ("Nothing", 6.5, 0.5)]
DIMS = (3, 4, 5)
COL_TO_COORD = np.array([[1, 1, 1], [3, 4, 5], [2, 1, 3], [1, 4, 2]], dtype=np.float64)  # 1-based
# SPM matrix on 1-based indices; off-diagonal terms so a transposed read would show.
MATRIX = np.array([[-3.0, 0.0, 0.5, 90.0],
                   [0.0, 3.0, 0.0, -126.0],
                   [0.25, 0.0, 3.0, -72.0],
                   [0.0, 0.0, 0.0, 1.0]])
MAT73_HEADER = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
                .ljust(116, b" ") + b" " * 8 + b"\x00\x02" + b"IM")


def _h5_double(parent, name, matlab_matrix):
    """A MATLAB double matrix: HDF5 holds the transpose (column-major dimensions reversed)."""
    ds = parent.create_dataset(name, data=np.atleast_2d(np.asarray(matlab_matrix, dtype=np.float64)).T)
    ds.attrs["MATLAB_class"] = np.bytes_("double")
    return ds


def _h5_char(parent, name, text):
    """A MATLAB 1 x N char: uint16 code units of HDF5 shape (N, 1); '' is an empty (0 x 0) char."""
    if text == "":
        ds = parent.create_dataset(name, data=np.array([0, 0], dtype=np.uint64))
        ds.attrs["MATLAB_empty"] = np.uint8(1)
    else:
        ds = parent.create_dataset(name, data=np.array([[ord(c) for c in text]], dtype=np.uint16).T)
        ds.attrs["MATLAB_int_decode"] = np.int32(2)
    ds.attrs["MATLAB_class"] = np.bytes_("char")
    return ds


def _h5_fields(group, names):
    fields = np.empty(len(names), dtype=h5py.vlen_dtype(np.dtype("S1")))
    for i, n in enumerate(names):
        fields[i] = np.frombuffer(n.encode(), dtype="S1")
    group.attrs["MATLAB_fields"] = fields


def build_mat73(path, words=WORDS, subject="subj7"):
    """Write subject_N.mat as MATLAB -v7.3 would, by hand."""
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        canonical = refs.create_dataset("a", data=np.array([0, 0], dtype=np.uint64))  # MATLAB's canonical empty
        canonical.attrs["MATLAB_class"] = np.bytes_("canonical empty")
        canonical.attrs["MATLAB_empty"] = np.uint8(1)
        _h5_double(f, "data", DATA)
        _h5_double(f, "time", TIME)
        # words: a 1 x N struct array; each field an (N, 1) dataset of references into #refs#.
        g = f.create_group("words")
        g.attrs["MATLAB_class"] = np.bytes_("struct")
        _h5_fields(g, ["text", "start", "length"])
        counter = iter(range(1000))
        for field, column in (("text", 0), ("start", 1), ("length", 2)):
            elements = []
            for entry in words:
                name = f"b{next(counter)}"
                value = entry[column]
                elements.append(_h5_char(refs, name, value) if field == "text" else _h5_double(refs, name, value))
            g.create_dataset(field, data=np.array([[e.ref for e in elements]], dtype=h5py.ref_dtype).T)
        # meta: a 1 x 1 struct; fields are datasets directly in the group.
        m = f.create_group("meta")
        m.attrs["MATLAB_class"] = np.bytes_("struct")
        _h5_fields(m, ["subject", "nTRs", "nvoxels", "dimx", "dimy", "dimz", "colToCoord", "matrix"])
        _h5_char(m, "subject", subject)
        _h5_double(m, "nTRs", 6.0)
        _h5_double(m, "nvoxels", 4.0)
        for key, d in zip(("dimx", "dimy", "dimz"), DIMS):
            _h5_double(m, key, float(d))
        _h5_double(m, "colToCoord", COL_TO_COORD)
        _h5_double(m, "matrix", MATRIX)
    with open(path, "r+b") as raw:
        raw.write(MAT73_HEADER)


@pytest.fixture
def mat73_file(tmp_path):
    path = tmp_path / "subject_7.mat"
    build_mat73(path)
    return path


def test_hand_built_file_is_a_matlab_73_file(mat73_file):
    """A file with MATLAB's 7.3 header (version bytes 0x0200 'IM' at offset 124) is HDF5 and version (2, 0)."""
    assert matfile_version(str(mat73_file)) == (2, 0)
    assert mat73_file.read_bytes()[124:128] == b"\x00\x02IM"
    assert is_mat73(mat73_file)


def test_mat73_data_time_and_runs(mat73_file):
    """data(t, v) = 10t + v comes back as responses[t, v]; time column 1 is the TR start, column 2 the run."""
    rec = read_hp_fmri(mat73_file)
    assert rec.subject == "7" and rec.modality == "fmri"
    assert rec.responses.shape == (6, 4)
    assert rec.responses[2, 3] == 23.0 and rec.responses[5, 0] == 50.0 and rec.responses[0, 1] == 1.0
    np.testing.assert_array_equal(rec.responses, DATA.astype(np.float32))
    np.testing.assert_array_equal(rec.times, [0, 2, 4, 6, 8, 10])
    np.testing.assert_array_equal(rec.runs, [1, 1, 1, 2, 2, 2])


def test_mat73_words_with_fixation(mat73_file):
    """The words struct array's text/start/length come back in order, '+' fixations kept, story_words drops them."""
    rec = read_hp_fmri(mat73_file)
    assert rec.words["word"].tolist() == ["+", "Harry", "looked", "up.", "+", "Nothing"]
    np.testing.assert_array_equal(rec.words["onset"], [0.0, 0.5, 1.0, 1.5, 6.0, 6.5])
    np.testing.assert_array_equal(rec.words["duration"], [0.5] * 6)
    story = rec.story_words()
    assert story["word"].tolist() == ["Harry", "looked", "up.", "Nothing"]
    # Runs by the TR at or before each onset: 0.5, 1.0, 1.5 -> run 1 (TR at 0); 6.5 -> run 2 (TR at 6).
    assert story["run"].tolist() == [1, 1, 1, 2]


def test_mat73_coords_and_affine(mat73_file):
    """colToCoord is 1-based (minus 1 gives coords); affine @ [i,j,k,1] == matrix @ [i+1,j+1,k+1,1]."""
    rec = read_hp_fmri(mat73_file)
    np.testing.assert_array_equal(rec.coords, [[0, 0, 0], [2, 3, 4], [1, 0, 2], [0, 3, 1]])
    assert rec.volume_shape == DIMS
    # Hand-worked: voxel 0 is (0,0,0); MATRIX @ (1,1,1,1) = (-3 + 0.5 + 90, 3 - 126, 0.25 + 3 - 72).
    np.testing.assert_allclose(rec.affine @ [0, 0, 0, 1], [87.5, -123.0, -68.75, 1.0])
    for c in rec.coords:
        np.testing.assert_allclose(rec.affine @ np.r_[c, 1], MATRIX @ np.r_[c + 1, 1])
    assert str(np.asarray(rec.extra["meta"]["subject"]).reshape(-1)[0]) == "subj7"


def test_mat73_empty_char_word_reads_as_empty_string(tmp_path):
    """A word whose text is an empty char (a MATLAB_empty dataset holding its dims) reads as ''."""
    path = tmp_path / "subject_3.mat"
    build_mat73(path, words=[("+", 0.0, 0.5), ("", 0.5, 0.5), ("Harry", 1.0, 0.5)])
    rec = read_hp_fmri(path)
    assert rec.words["word"].tolist() == ["+", "", "Harry"]
    np.testing.assert_array_equal(rec.words["onset"], [0.0, 0.5, 1.0])


def test_mat73_empty_char_loads_as_scipy_loads_a_v5_empty_char(tmp_path):
    """load_mat promises scipy's v5 representation: an empty char is an empty string array, as in the v5 file."""
    path73 = tmp_path / "subject_3.mat"
    build_mat73(path73, subject="")
    path5 = tmp_path / "v5.mat"
    scipy.io.savemat(path5, {"meta": {"subject": ""}})
    v5 = load_mat(path5)["meta"]["subject"][0, 0]
    v73 = load_mat(path73)["meta"]["subject"][0, 0]
    assert v5.size == 0 and v5.dtype.kind == "U"  # what scipy gives for a v5 ''
    assert v73.size == 0
    assert v73.dtype.kind == "U", f"empty char loaded as {v73.dtype} array of shape {v73.shape}"


def test_write_v5_and_v73_read_back_identically(mat73_file, tmp_path):
    """The same recording written as v5 and as v7.3 reads back the same; only the 7.3 file is HDF5/(2, 0)."""
    rec = read_hp_fmri(mat73_file)
    p5, p73 = tmp_path / "v5" / "subject_7.mat", tmp_path / "v73" / "subject_7.mat"
    p5.parent.mkdir()
    p73.parent.mkdir()
    write_hp_fmri(rec, p5, version="5")
    write_hp_fmri(rec, p73, version="7.3")
    assert matfile_version(str(p5)) == (1, 0)
    assert matfile_version(str(p73)) == (2, 0)
    assert not is_mat73(p5) and is_mat73(p73)
    a, b = read_hp_fmri(p5), read_hp_fmri(p73)
    for back in (a, b):
        assert back.subject == "7"
        np.testing.assert_array_equal(back.responses, DATA.astype(np.float32))
        np.testing.assert_array_equal(back.times, TIME[:, 0])
        np.testing.assert_array_equal(back.runs, TIME[:, 1])
        assert back.words["word"].tolist() == [w for w, _, _ in WORDS]
        np.testing.assert_array_equal(back.words["onset"], [o for _, o, _ in WORDS])
        np.testing.assert_array_equal(back.words["duration"], [d for _, _, d in WORDS])
        np.testing.assert_array_equal(back.coords, COL_TO_COORD - 1)
        np.testing.assert_allclose(back.affine, rec.affine, atol=1e-12)
        assert back.volume_shape == DIMS
    pd.testing.assert_frame_equal(a.words, b.words)


def test_write_mat73_struct_whose_field_names_have_equal_lengths(tmp_path):
    """A 1 x 1 struct with fields dimx, dimy, dimz (all four letters) is written and read back: 3, 4, 5."""
    from brainalign.data.matfile import write_mat73

    path = tmp_path / "dims.mat"
    write_mat73(path, {"meta": {"dimx": 3.0, "dimy": 4.0, "dimz": 5.0}})
    meta = load_mat(path)["meta"]
    assert [float(np.asarray(meta[k][0, 0]).reshape(-1)[0]) for k in ("dimx", "dimy", "dimz")] == [3.0, 4.0, 5.0]


# =========================================================================================================
# 2. Harry Potter MEG .npz, built by hand
# =========================================================================================================

MEG_WORDS = ["Harry", "café", "looked", "up", "and", "saw", "Hagrid"]
MEG_BLOCKS = [1, 1, 1, 1, 2, 2, 2]


def meg_data():
    """Distinct values: data[s, w, sensor, bin] = s*100000 + w*10000 + sensor*10 + bin (exact in float32)."""
    s, w, n, b = np.meshgrid(np.arange(2), np.arange(7), np.arange(306), np.arange(3), indexing="ij")
    return (s * 100000 + w * 10000 + n * 10 + b).astype(np.float32)


@pytest.fixture
def meg_file(tmp_path):
    path = tmp_path / "hp_meg.npz"
    np.savez(path, stimuli=np.array([w.encode("utf-8") for w in MEG_WORDS], dtype="S"),
             blocks=np.array(MEG_BLOCKS), subjects=np.array([b"A", b"B"], dtype="S"), data=meg_data())
    return path


def test_meg_npz_per_subject_layout(meg_file):
    """Each subject: (7, 306*3) responses with data[s,w,sensor,bin] at column sensor*3+bin; bytes decode as UTF-8."""
    recs = read_hp_meg(meg_file)
    assert [r.subject for r in recs] == ["A", "B"]
    data = meg_data()
    for s, rec in enumerate(recs):
        assert rec.modality == "meg"
        assert rec.responses.shape == (7, 918)
        assert rec.responses[3, 5 * 3 + 2] == s * 100000 + 3 * 10000 + 5 * 10 + 2
        assert rec.responses[6, 305 * 3 + 0] == s * 100000 + 6 * 10000 + 3050
        for w, sensor, b in [(0, 0, 0), (1, 17, 1), (4, 200, 2), (6, 305, 2)]:
            assert rec.responses[w, sensor * 3 + b] == data[s, w, sensor, b]
        assert rec.words["word"].tolist() == MEG_WORDS  # "café" from UTF-8 bytes
        np.testing.assert_array_equal(rec.words["onset"], [0.0, 0.5, 1.0, 1.5, 0.0, 0.5, 1.0])
        np.testing.assert_array_equal(rec.times, [0.0, 0.5, 1.0, 1.5, 0.0, 0.5, 1.0])
        np.testing.assert_array_equal(rec.words["run"], MEG_BLOCKS)
        np.testing.assert_array_equal(rec.runs, MEG_BLOCKS)
        assert rec.story_words()["run"].tolist() == MEG_BLOCKS
        assert len(rec.channel_names) == 918
        assert rec.channel_names[:4] == ["sensor000@0", "sensor000@1", "sensor000@2", "sensor001@0"]
        assert rec.channel_names[-1] == "sensor305@2"
        assert bins_per_sensor(rec.channel_names) == 3


_UNPICKLED = []


def _tripwire():
    _UNPICKLED.append(True)
    return "boom"


class _Tripwire:
    def __reduce__(self):
        return (_tripwire, ())


def test_meg_object_stimuli_refused_without_unpickling(tmp_path):
    """An object-array `stimuli` is refused with InputError(field='stimuli'), and its pickle is never run."""
    path = tmp_path / "hp_meg.npz"
    stimuli = np.empty(7, dtype=object)
    stimuli[:] = [_Tripwire()] + MEG_WORDS[1:]
    np.savez(path, stimuli=stimuli, blocks=np.array(MEG_BLOCKS), subjects=np.array(["A", "B"]), data=meg_data())
    # Sanity: unpickling the archive would indeed run the tripwire.
    with np.load(path, allow_pickle=True) as archive:
        archive["stimuli"]
    assert _UNPICKLED == [True]
    _UNPICKLED.clear()
    with pytest.raises(InputError) as info:
        read_hp_meg(path)
    assert info.value.field == "stimuli"
    assert _UNPICKLED == []


def test_meg_write_read_round_trip(meg_file, tmp_path):
    """write_hp_meg then read_hp_meg gives back the same subjects, words, blocks, onsets and values."""
    recs = read_hp_meg(meg_file)
    out = tmp_path / "again.npz"
    write_hp_meg(recs, out)
    back = read_hp_meg(out)
    data = meg_data()
    assert [r.subject for r in back] == ["A", "B"]
    for s, rec in enumerate(back):
        np.testing.assert_array_equal(rec.responses, data[s].reshape(7, -1))
        assert rec.words["word"].tolist() == MEG_WORDS
        np.testing.assert_array_equal(rec.runs, MEG_BLOCKS)
        np.testing.assert_array_equal(rec.times, [0.0, 0.5, 1.0, 1.5, 0.0, 0.5, 1.0])
        assert rec.channel_names == recs[s].channel_names


# =========================================================================================================
# 3. Own format, built by hand
# =========================================================================================================

REGIONS = ["L_IFG", "L_PostTemp", "R AngG", "PCC"]
# Two runs, TR 1.5 s, each on its own clock starting at 0.
OWN_TIMES = [0.0, 1.5, 3.0, 4.5, 6.0, 7.5, 0.0, 1.5, 3.0, 4.5, 6.0]
OWN_RUNS = [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
OWN_WORDS = [("NA", 0.3, 0.21, 1), ("null", 1.12, 0.4, 1), ("nan", 2.9, 0.35, 1), ("the", 4.05, 0.1, 1),
             ("None", 0.0, 0.3, 2), ("cat", 0.8, 0.52, 2), ("N/A", 3.3, 0.2, 2)]


def region_values():
    return np.array([[t + 0.25 * r for r in range(4)] for t in range(11)])


def write_tsv(path, header, rows):
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(str(x) for x in row) + "\n" for row in rows),
                    encoding="utf-8")


def write_participant(directory, times, runs, words, form, values=None, image=None, mask=None, affine=None):
    directory.mkdir(parents=True)
    write_tsv(directory / "trs.tsv", ["onset", "run"], zip(times, runs))
    write_tsv(directory / "words.tsv", ["word", "onset", "duration", "run"], words)
    if form == "tsv":
        write_tsv(directory / "responses.tsv", REGIONS, values.tolist())
    elif form == "npy":
        np.save(directory / "responses.npy", values)
    else:
        import nibabel

        nibabel.save(nibabel.Nifti1Image(image, affine), directory / "responses.nii.gz")
        nibabel.save(nibabel.Nifti1Image(mask, affine), directory / "mask.nii.gz")


NII_AFFINE = np.array([[2.0, 0.0, 0.5, -10.0], [0.0, 2.0, 0.0, 20.0], [0.0, 0.0, 2.0, -30.0], [0.0, 0.0, 0.0, 1.0]])
# Mask voxels, listed in C order by hand (the order np.argwhere gives).
NII_VOXELS = [(0, 0, 0), (0, 1, 1), (1, 0, 1), (2, 3, 0)]


def nifti_arrays():
    image = np.random.default_rng(7).standard_normal((3, 4, 2, 5)).astype(np.float32)
    mask = np.zeros((3, 4, 2), dtype=np.uint8)
    for v in [(2, 3, 0), (0, 1, 1), (1, 0, 1), (0, 0, 0)]:
        mask[v] = 1
    return image, mask


NII_TIMES, NII_RUNS = [0.0, 2.0, 4.0, 0.0, 2.0], [1, 1, 1, 2, 2]
NII_WORDS = [("Harry", 0.5, 0.5, 1), ("ran", 1.0, 0.5, 1), ("home", 0.5, 0.5, 2)]
NPY_VALUES = np.random.default_rng(8).standard_normal((5, 3))


@pytest.fixture
def own_root(tmp_path):
    root = tmp_path / "own"
    write_participant(root / "sub2", OWN_TIMES, OWN_RUNS, OWN_WORDS, "tsv", values=region_values())
    image, mask = nifti_arrays()
    write_participant(root / "sub10", NII_TIMES, NII_RUNS, NII_WORDS, "nifti", image=image, mask=mask,
                      affine=NII_AFFINE)
    write_participant(root / "sub1", NII_TIMES, NII_RUNS, NII_WORDS, "npy", values=NPY_VALUES)
    (root / "notes").mkdir()  # no trs.tsv: not a participant
    (root / "README.txt").write_text("not a participant")
    return root


def test_own_region_participant(own_root):
    """A region table: names from the header, per-run clocks, irregular onsets, 'NA'/'null'/'nan' kept as words."""
    rec = read_own(own_root / "sub2")
    assert rec.subject == "sub2" and rec.modality == "fmri"
    assert rec.channel_names == REGIONS
    assert rec.coords is None and rec.affine is None
    np.testing.assert_array_equal(rec.responses, region_values().astype(np.float32))
    assert rec.responses[4, 2] == 4.5
    np.testing.assert_array_equal(rec.times, OWN_TIMES)
    np.testing.assert_array_equal(rec.runs, OWN_RUNS)
    assert rec.words["word"].tolist() == ["NA", "null", "nan", "the", "None", "cat", "N/A"]
    assert all(isinstance(w, str) for w in rec.words["word"])
    np.testing.assert_array_equal(rec.words["onset"], [0.3, 1.12, 2.9, 4.05, 0.0, 0.8, 3.3])
    np.testing.assert_array_equal(rec.words["duration"], [0.21, 0.4, 0.35, 0.1, 0.3, 0.52, 0.2])
    np.testing.assert_array_equal(rec.words["run"], [1, 1, 1, 1, 2, 2, 2])


def test_own_nifti_participant(own_root):
    """A 4-D image + mask: coords are the mask's voxels in C order, responses[:, v] = image[coords[v]]."""
    rec = read_own(own_root / "sub10")
    image, _ = nifti_arrays()
    np.testing.assert_array_equal(rec.coords, NII_VOXELS)
    assert rec.volume_shape == (3, 4, 2)
    assert rec.responses.shape == (5, 4)
    for v, (i, j, k) in enumerate(NII_VOXELS):
        np.testing.assert_array_equal(rec.responses[:, v], image[i, j, k, :])
    np.testing.assert_allclose(rec.affine, NII_AFFINE)
    np.testing.assert_array_equal(rec.times, NII_TIMES)
    np.testing.assert_array_equal(rec.runs, NII_RUNS)
    assert rec.words["word"].tolist() == ["Harry", "ran", "home"]


def test_own_npy_participant(own_root):
    """A .npy matrix is the responses as they are (float32), without names or coordinates."""
    rec = read_own(own_root / "sub1")
    np.testing.assert_array_equal(rec.responses, NPY_VALUES.astype(np.float32))
    assert rec.channel_names is None and rec.coords is None


@pytest.mark.parametrize("subject, responses", [("sub2", "responses.tsv"), ("sub10", "responses.nii.gz"),
                                                 ("sub1", "responses.npy")])
def test_own_participant_names_the_file_of_each_part(own_root, subject, responses):
    """Validation names the file a value came from: the reader records the file of each part."""
    directory = own_root / subject
    assert read_own(directory).files == {"responses": str(directory / responses),
                                         "times": str(directory / "trs.tsv"), "words": str(directory / "words.tsv")}


def test_recording_parts_come_from_the_source_by_default(meg_file):
    """A release holds every part in one file: each part's file is the recording's source."""
    rec = Recording(subject="1", modality="fmri", responses=np.ones((2, 3)), times=[0.0, 2.0], runs=[1, 1],
                    words=pd.DataFrame({"word": ["a"], "onset": [0.5], "duration": [0.5]}), source="subject_1.mat",
                    files={"words": "words.tsv"})
    assert rec.files == {"responses": "subject_1.mat", "times": "subject_1.mat", "words": "words.tsv"}
    assert read_hp_meg(meg_file)[1].files == dict.fromkeys(["responses", "times", "words"], f"{meg_file}[B]")
    with pytest.raises(InputError) as info:
        Recording(subject="1", modality="fmri", responses=np.ones((2, 3)), times=[0.0, 2.0], runs=[1, 1],
                  words=rec.words, source="subject_1.mat", files={"trs": "trs.tsv"})
    assert info.value.field == "files"


def test_own_participants_natural_order_and_selection(own_root):
    """Participants sort naturally (sub1, sub2, sub10); asking for ids returns exactly those, in the order asked."""
    assert [p.name for p in participant_dirs(own_root)] == ["sub1", "sub2", "sub10"]
    assert [r.subject for r in read_dataset("own", own_root)] == ["sub1", "sub2", "sub10"]
    only = read_dataset("own", own_root, participants=["sub10"])
    assert [r.subject for r in only] == ["sub10"]
    assert only[0].coords is not None
    assert [r.subject for r in read_dataset("own", own_root, participants=["sub10", "sub1"])] == ["sub10", "sub1"]


@pytest.mark.parametrize("participants", [["sub3"], ["sub1", "sub99"], "sub1"])
def test_own_unknown_participants_raise_config_error(own_root, participants):
    """Ids not in the dataset (or a bare string instead of a list) are a ConfigError."""
    with pytest.raises(ConfigError):
        read_dataset("own", own_root, participants=participants)


@pytest.mark.parametrize("form, subject", [("tsv", "sub2"), ("nifti", "sub10"), ("npy", "sub1")])
def test_own_write_read_round_trip(own_root, tmp_path, form, subject):
    """write_own -> read_own gives back the hand-built participant's responses, clock, words and space."""
    rec = read_own(own_root / subject)
    write_own(rec, tmp_path / "out" / subject, form=form)
    back = read_own(tmp_path / "out" / subject)
    assert back.subject == subject
    np.testing.assert_array_equal(back.responses, rec.responses)
    np.testing.assert_array_equal(back.times, rec.times)
    np.testing.assert_array_equal(back.runs, rec.runs)
    pd.testing.assert_frame_equal(back.words, rec.words)
    if form == "tsv":
        assert back.channel_names == REGIONS
    if form == "nifti":
        np.testing.assert_array_equal(back.coords, NII_VOXELS)
        np.testing.assert_allclose(back.affine, NII_AFFINE)
        assert back.volume_shape == (3, 4, 2)
    if form == "npy":
        assert back.channel_names is None


def test_own_nifti_round_trip_keeps_each_voxels_series_with_its_coordinate(tmp_path):
    """Written as NIfTI, a voxel's time series stays at its coordinate even if coords were not in C order."""
    coords = np.array([[2, 0, 1], [0, 1, 0], [1, 1, 1]])
    values = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    rec = Recording(subject="s", modality="fmri", responses=values, times=[0.0, 2.0], runs=[1, 1],
                    words=pd.DataFrame({"word": ["a"], "onset": [0.5], "duration": [0.5], "run": [1]}),
                    coords=coords, affine=np.eye(4), volume_shape=(3, 2, 2))
    write_own(rec, tmp_path / "s", form="nifti")
    back = read_own(tmp_path / "s")
    series = {tuple(c): back.responses[:, i].tolist() for i, c in enumerate(back.coords)}
    assert series == {(2, 0, 1): [1.0, 4.0], (0, 1, 0): [2.0, 5.0], (1, 1, 1): [3.0, 6.0]}


# =========================================================================================================
# 4. Windows for irregular onsets on per-run clocks
# =========================================================================================================

RUN1 = [0.2, 0.9, 2.35, 3.0, 4.4, 6.1, 7.0, 9.5, 10.25, 12.0]
RUN2 = [0.0, 0.7, 1.5, 3.3, 5.05, 8.8]


def test_windows_use_each_words_own_run(tmp_path):
    """Each TR at t gets exactly the words of its own run with t - 10.1 <= onset < t (counts worked by hand)."""
    from brainalign.stimuli.windows import tr_windows

    times = [1.5 * i for i in range(10)] + [1.5 * i for i in range(8)]
    runs = [1] * 10 + [2] * 8
    words = ([(f"a{i}", o, 0.3, 1) for i, o in enumerate(RUN1)]
             + [(f"b{i}", o, 0.3, 2) for i, o in enumerate(RUN2)])
    write_participant(tmp_path / "p", times, runs, words, "npy", values=np.zeros((18, 2)))
    rec = read_own(tmp_path / "p")
    story = rec.story_words()
    assert story["run"].tolist() == [1] * 10 + [2] * 6  # the file's run column, not a guess from the clock
    win = tr_windows(rec.times, rec.runs, story)
    # Run 1, TR at 0, 1.5, ..., 13.5; e.g. t = 10.5 -> [0.4, 10.5): 0.9 .. 10.25 = 8 words; t = 13.5 -> 4.4 .. 12.0.
    # Run 2, TR at 0, ..., 10.5; e.g. t = 1.5 -> 0.0, 0.7 (1.5 itself is not before t); t = 10.5 drops 0.0.
    expected = [0, 2, 3, 5, 5, 7, 7, 8, 7, 6] + [0, 2, 3, 4, 5, 5, 6, 5]
    assert win["n_words"].tolist() == expected
    assert win.loc[2, "text"] == "a0 a1 a2"
    assert win.loc[9, "text"] == "a4 a5 a6 a7 a8 a9"
    assert win.loc[11, "text"] == "b0 b1"
    assert win.loc[17, "text"] == "b1 b2 b3 b4 b5"
    assert story.loc[win.loc[17, "first_word"], "word"] == "b1"
    # t = 12.0 in run 1: earliest word 2.35 <= 12.0 - 9.6; t = 13.5: earliest 4.4 > 3.9.
    assert bool(win.loc[8, "valid"]) and not bool(win.loc[9, "valid"])


# =========================================================================================================
# 5. Lexicon
# =========================================================================================================


@pytest.mark.parametrize("word, content", [
    ("the", False), ("of", False), ("and", False), ("not", False), ("three", False), ("Harry's,", True),
    ("was", True), ("she", True), ("quickly", True), ("...", False), ("42", False), ("Hagrid.", True),
])
def test_is_content_word(word, content):
    """Closed classes, numerals, digits and punctuation are not content words; nouns, pronouns, 'was' are."""
    from brainalign.stimuli.lexicon import is_content_word

    assert is_content_word(word) is content


def test_word_properties_length_and_log_probability():
    """Length counts characters without surrounding punctuation; unknown words get -20; 'the' gets log(freq)."""
    from wordfreq import word_frequency

    from brainalign.stimuli.lexicon import word_properties

    props = word_properties(["quickly.", "...", "\"Hagrid", "the", "zqxjvbnmwq", "42"])
    assert props.shape == (6, 2) and props.dtype == np.float32
    np.testing.assert_array_equal(props[:, 0], [7.0, 0.0, 6.0, 3.0, 10.0, 2.0])
    assert props[1, 1] == -20.0 and props[4, 1] == -20.0
    assert props[3, 1] == pytest.approx(math.log(word_frequency("the", "en")), abs=1e-5)
    assert props[0, 1] == pytest.approx(math.log(word_frequency("quickly", "en")), abs=1e-5)


def test_word_length_excludes_inner_punctuation():
    """word_length is documented as letters and digits only: "Harry's," has 6, "well-known" 9."""
    from brainalign.stimuli.lexicon import word_length

    assert word_length("Harry's,") == 6.0
    assert word_length("well-known") == 9.0


# =========================================================================================================
# 6. Last-word features with the packaged MiniLM
# =========================================================================================================


@pytest.fixture(scope="module")
def minilm():
    from brainalign.features.encoders import load_encoder

    return load_encoder("minilm")


def _state_of(encoder, text, position):
    import torch

    with torch.inference_mode():
        tokens = encoder.tokenizer(text, return_tensors="pt")
        return encoder.model(**tokens).last_hidden_state[0, position].numpy(), tokens


def test_last_word_features_is_first_piece_state_plus_properties(minilm):
    """For 'the cat sat on the mat': state of the 'mat' token (before [SEP]) then word_properties(['mat'])."""
    from brainalign.features.encoders import last_word_features
    from brainalign.stimuli.lexicon import word_properties

    expected, tokens = _state_of(minilm, "the cat sat on the mat", -2)
    assert minilm.tokenizer.convert_ids_to_tokens(tokens["input_ids"][0])[-2:] == ["mat", "[SEP]"]
    out = last_word_features(minilm, ["the cat sat on the mat", "a dog"], progress=False)
    assert out.shape == (2, minilm.width + 2)
    np.testing.assert_allclose(out[0, :-2], expected, atol=1e-4)
    np.testing.assert_array_equal(out[0, -2:], word_properties(["mat"])[0])
    dog, _ = _state_of(minilm, "a dog", -2)  # the shorter text, padded in the same batch
    np.testing.assert_allclose(out[1, :-2], dog, atol=1e-4)


def test_last_word_features_of_a_too_long_text_keeps_the_last_word(minilm):
    """Over max_length=16 pieces, the state is that of the longest suffix fitting 14 pieces + [CLS] + [SEP]."""
    from brainalign.features.encoders import last_word_features

    text = ("Unbelievably the extraordinarily disheveled wizard walked slowly toward Hogwarts castle while the "
            "enormous thunderstorm raged outside mat")
    # Pieces from the end (hand count): mat, outside, raged, thunder ##storm, enormous, the, while, castle,
    # hog ##wart ##s, toward, slowly = 14; with "walked" 15 would not fit.
    suffix = "slowly toward Hogwarts castle while the enormous thunderstorm raged outside mat"
    assert len(minilm.tokenizer(suffix)["input_ids"]) == 16
    assert len(minilm.tokenizer("walked " + suffix)["input_ids"]) == 17
    expected, _ = _state_of(minilm, suffix, -2)
    out = last_word_features(minilm, [text], max_length=16, progress=False)
    np.testing.assert_allclose(out[0, :-2], expected, atol=1e-4)
    full, _ = _state_of(minilm, text, -2)
    assert not np.allclose(out[0, :-2], full, atol=1e-3)  # the truncated context really differs


# =========================================================================================================
# 7. Simulation ground truth
# =========================================================================================================


def test_paper_layout_matches_the_chapter():
    """The paper preset lays out 5176 entries (12 '+') and runs of 340, 352, 279, 380 TRs of 2 s."""
    from brainalign.data.simulated import SimulationConfig, experiment_layout, story_words

    words, times, runs = experiment_layout(SimulationConfig(preset="paper"), story_words())
    assert len(words) == 5176
    assert int((words["word"] == "+").sum()) == 12
    assert [int((runs == r).sum()) for r in (1, 2, 3, 4)] == [340, 352, 279, 380]
    np.testing.assert_allclose(np.diff(times), 2.0)
    np.testing.assert_allclose(words["duration"], 0.5)


SIM = dict(subjects=2, meg_subjects=1, words_per_run=60, resolution_mm=6, seed=0)


@pytest.fixture(scope="module")
def simulation(tmp_path_factory):
    from brainalign.data.simulated import SimulationConfig, simulate_experiment, write_simulation

    config = SimulationConfig(**SIM)
    fmri, meg, truth = simulate_experiment(config)
    root = tmp_path_factory.mktemp("sim")
    write_simulation(fmri, meg, truth, config, root / "raw", root / "truth")
    return {"config": config, "fmri": fmri, "meg": meg, "truth": truth, "raw": root / "raw",
            "truth_dir": root / "truth"}


def _detrend_per_run(x, runs):
    out = np.empty(x.shape, dtype=np.float64)
    for r in np.unique(runs):
        out[runs == r] = detrend(np.asarray(x[runs == r], dtype=np.float64), axis=0)
    return out


def test_simulated_files_carry_the_in_memory_recordings(simulation):
    """The release files on disk read back to exactly the in-memory recordings and truth."""
    from brainalign.data.simulated import read_truth

    fmri = read_dataset("simulated", simulation["raw"] / "fmri")
    assert [r.subject for r in fmri] == ["1", "2"]
    for disk, mem in zip(fmri, simulation["fmri"]):
        np.testing.assert_array_equal(disk.responses, mem.responses)
        np.testing.assert_array_equal(disk.times, mem.times)
        np.testing.assert_array_equal(disk.runs, mem.runs)
        np.testing.assert_array_equal(disk.coords, mem.coords)
        np.testing.assert_allclose(disk.affine, mem.affine)
        assert disk.words["word"].tolist() == mem.words["word"].tolist()
        truth = read_truth(simulation["truth_dir"], disk.subject)
        np.testing.assert_array_equal(truth["signal"], simulation["truth"].signal[disk.subject])
        np.testing.assert_array_equal(truth["responsive"], simulation["truth"].responsive)
    meg = read_dataset("simulated", simulation["raw"] / "meg" / "hp_meg.npz")
    assert [r.subject for r in meg] == ["M1"]
    np.testing.assert_array_equal(meg[0].responses, simulation["meg"][0].responses)
    np.testing.assert_array_equal(meg[0].runs, simulation["meg"][0].runs)
    assert meg[0].words["word"].tolist() == simulation["meg"][0].words["word"].tolist()


def test_simulated_fmri_signal_matches_snr(simulation):
    """On disk: recording - truth signal is noise+drift like non-responsive voxels; detrended var ratio ~ snr."""
    from brainalign.data.simulated import read_truth

    for rec in read_dataset("simulated", simulation["raw"] / "fmri"):
        truth = read_truth(simulation["truth_dir"], rec.subject)
        responsive = truth["responsive"].astype(bool)
        assert 0 < responsive.sum() < responsive.size
        np.testing.assert_array_equal(responsive, truth["region"] > 0)  # responsive = in a language region
        signal = truth["signal"].astype(np.float64)
        assert signal.shape == (len(rec.times), responsive.sum())
        residual = rec.responses[:, responsive] - signal
        d_signal = _detrend_per_run(signal, rec.runs)
        d_resid = _detrend_per_run(residual, rec.runs)
        d_other = _detrend_per_run(rec.responses[:, ~responsive], rec.runs)
        # Noise is AR(1) with unit variance everywhere, the drift is the same kind everywhere: what is left in
        # responsive voxels has the variance of the non-responsive ones (which carry no signal).
        assert d_resid.var(0).mean() == pytest.approx(d_other.var(0).mean(), rel=0.05)
        # If non-responsive voxels carried signal too, their variance would be about 1 + snr instead.
        assert d_other.var(0).mean() < 1.0
        # SNR = signal variance / AR(1) noise variance. Detrending (per run, linear) removes the linear drift
        # exactly and all but ~0.5% of its half-cosine part, and removes similar fractions of the smooth signal
        # and of the noise; with ~120 TRs per voxel the per-voxel ratios scatter, their mean over ~200 voxels
        # came within 6% of the snr across seeds. 15% leaves room for that and still catches any scale error.
        ratio = float(np.mean(d_signal.var(0) / d_resid.var(0)))
        assert ratio == pytest.approx(float(truth["snr"]), rel=0.15)


def test_simulated_meg_signal_matches_snr(simulation):
    """On disk: meg_signal(read_truth(..., 'meg')) is the signal part; var(signal)/var(rest) = the meg snr."""
    from brainalign.data.simulated import meg_signal, read_truth

    (rec,) = read_dataset("simulated", simulation["raw"] / "meg" / "hp_meg.npz")
    factors = read_truth(simulation["truth_dir"], rec.subject, "meg")
    signal = meg_signal(factors)
    n_bins = bins_per_sensor(rec.channel_names)
    assert n_bins == 20 and signal.shape == (len(rec.words), 306, 20)
    signal = signal.reshape(len(rec.words), -1)
    snr = float(factors["snr"])
    assert simulation["config"].meg_snr[0] <= snr <= simulation["config"].meg_snr[1]
    assert signal.var() == pytest.approx(snr, rel=1e-6)  # scaled to the snr exactly
    rest = rec.responses - signal
    # The rest is unit-variance AR(1) noise over ~1.5 million samples: its variance is 1 to well under 1%.
    assert rest.var() == pytest.approx(1.0, rel=0.05)
    assert signal.var() / rest.var() == pytest.approx(snr, rel=0.05)


def test_truth_is_kept_out_of_release_files(simulation):
    """Release .mat files hold only data/time/words/meta and the .npz only the release arrays; truth lives apart."""
    raw = simulation["raw"]
    files = sorted(str(p.relative_to(raw)) for p in raw.rglob("*") if p.is_file())
    assert files == ["fmri/subject_1.mat", "fmri/subject_2.mat", "meg/hp_meg.npz"]
    for mat in (raw / "fmri").glob("*.mat"):
        assert sorted(name for name, _, _ in scipy.io.whosmat(mat)) == ["data", "meta", "time", "words"]
    with np.load(raw / "meg" / "hp_meg.npz", allow_pickle=False) as archive:
        assert sorted(archive.files) == ["blocks", "data", "stimuli", "subjects"]
    truth_files = sorted(str(p.relative_to(simulation["truth_dir"]))
                         for p in simulation["truth_dir"].rglob("*") if p.is_file())
    assert truth_files == ["fmri/subject_1.npz", "fmri/subject_2.npz", "meg/subject_M1.npz", "truth.json"]


def test_release_region_labels_come_from_an_atlas_not_the_truth(simulation):
    """meta.colToROInum labels every voxel with its nearest Dosenbach (2010) region, as the release labels
    with an atlas; the labels do not single out the responsive voxels (no label set equals them)."""
    from nilearn.datasets import fetch_coords_dosenbach_2010

    from brainalign.data.simulated import read_truth

    rec = read_hp_fmri(simulation["raw"] / "fmri" / "subject_1.mat")
    meta = rec.extra["meta"]
    labels = np.asarray(meta["colToROInum"]).reshape(-1).astype(int)
    names = [str(np.asarray(n).reshape(-1)[0]) for n in np.asarray(meta["ROInumToName"]).reshape(-1)]
    atlas = fetch_coords_dosenbach_2010()
    assert names == [str(n) for n in atlas.labels]
    voxel = 0  # hand check of one voxel: its label is the atlas centre nearest to it in MNI space
    mni = rec.affine @ np.r_[rec.coords[voxel], 1.0]
    centres = np.asarray(atlas.rois[["x", "y", "z"]], dtype=float)
    assert labels[voxel] == 1 + np.argmin(((centres - mni[:3]) ** 2).sum(1))
    assert labels.min() >= 1
    responsive = read_truth(simulation["truth_dir"], "1", "fmri")["responsive"]
    for label in np.unique(labels[responsive]):
        assert not np.array_equal(labels == label, responsive)
    assert np.unique(labels[responsive]).size > 1
