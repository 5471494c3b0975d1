"""The NSD loader reads a hand-built fixture in the release layout, and refuses malformed files with one message.

The fixture is written here with h5py, nibabel and scipy directly (not with the module's writers), in the
release's conventions: ``nsd_expdesign.mat`` 1-based doubles (``masterordering`` 1 x n, ``subjectim``
n_subjects x n_images, ``sharedix`` 1 x n), betas int16 = percent signal change x 300, the NIfTI
(x, y, z, trials) and its HDF5 twin's ``betas`` (trials, z, y, x). Expected values are worked out by hand
(trial -> image mapping, ROI voxels and their order) or read straight off the arrays written.
"""

from __future__ import annotations

import h5py
import nibabel as nib
import numpy as np
import pytest
import scipy.io
import scipy.stats

from brainalign.errors import ConfigError, InputError
from brainalign.vision import nsd
from brainalign.vision.nsd import (AFFINE, ExpDesign, NsdLayout, load_recording, read_betas, read_expdesign,
                                   read_images, trial_images, write_betas, write_expdesign, write_stimuli,
                                   write_volume)

N_IMAGES = 12
GRID = (4, 3, 2)
TRIALS = 6  # per session; two sessions
# 1-based columns of subjectim shown at the 12 trials (the same for every participant, as in NSD).
MASTERORDERING = [3, 1, 8, 3, 5, 2, 7, 4, 1, 6, 8, 2]
# 1-based NSD ids of each participant's 8 images.
SUBJECTIM = [[2, 5, 9, 1, 3, 6, 7, 8],
             [2, 5, 9, 11, 1, 4, 7, 12],
             [2, 5, 9, 10, 12, 3, 4, 6]]
SHAREDIX = [2, 5, 9]
# Participant 2's trials by hand: column 3 -> id 9 -> 0-based 8; column 1 -> 2 -> 1; column 8 -> 12 -> 11; ...
SUBJECT2_IMAGES = [8, 1, 11, 8, 0, 4, 6, 10, 1, 3, 11, 4]
SUBJECT2_SHARED = [True, True, False, True, False, True, False, False, True, False, False, True]
# prf-visualrois, (x, y, z): x = 0 outside the brain; labels 1..7 scattered, some 0.
LABELS = np.array([
    [[-1, -1], [-1, -1], [-1, -1]],
    [[1, 2], [0, 3], [4, 5]],
    [[6, 7], [1, 0], [-1, 3]],
    [[0, 0], [0, 7], [0, 0]],
], dtype=np.int16)
# The ROI voxels in the volume's C order (x slowest) and their ROIs, by reading LABELS above.
ROI_VOXELS = [(1, 0, 0), (1, 0, 1), (1, 1, 1), (1, 2, 0), (1, 2, 1), (2, 0, 0), (2, 0, 1), (2, 1, 0), (2, 2, 1),
              (3, 1, 1)]
ROI_NAMES = ["V1", "V1", "V2", "V2", "V3", "V3", "hV4", "V1", "V2", "hV4"]


def betas_volume(session: int) -> np.ndarray:
    values = np.random.default_rng(session).integers(-900, 900, GRID + (TRIALS,)).astype(np.int16)
    if session == 1:
        values[1, 0, 1, 2] = 450  # voxel (1, 0, 1), trial 2: 1.5 % signal change
    return values


def save_mat(path, **variables) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, variables, do_compression=False)


def save_betas_hdf5(path, volume: np.ndarray, name: str = "betas") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset(name, data=volume.transpose(3, 2, 1, 0))


def save_nifti(path, volume: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(volume, AFFINE)
    image.header.set_data_dtype(volume.dtype)
    nib.save(image, path)


@pytest.fixture
def root(tmp_path):
    layout = NsdLayout(tmp_path)
    layout.stimuli.parent.mkdir(parents=True)
    with h5py.File(layout.stimuli, "w") as handle:
        # Image i has every pixel equal to 10 * i: which row was read shows in the values.
        handle.create_dataset("imgBrick", data=np.repeat(np.arange(N_IMAGES, dtype=np.uint8) * 10, 5 * 5 * 3)
                              .reshape(N_IMAGES, 5, 5, 3))
    save_mat(layout.expdesign, masterordering=np.array([MASTERORDERING], dtype=float),
             subjectim=np.array(SUBJECTIM, dtype=float), sharedix=np.array([SHAREDIX], dtype=float),
             basiccnt=np.zeros((3, 2)))
    for subject in (1, 2, 3):
        save_nifti(layout.roi(subject), LABELS)
        save_nifti(layout.roi(subject, "nsdgeneral"), np.where(LABELS >= 0, 1, -1).astype(np.int16))
        save_nifti(layout.ncsnr(subject), (np.arange(24, dtype=np.float32) / 10).reshape(GRID))
        for session in (1, 2):
            save_betas_hdf5(layout.betas(subject, session, "hdf5"), betas_volume(session))
            save_nifti(layout.betas(subject, session, "nifti"), betas_volume(session))
    return tmp_path


def expected_values(voxels=ROI_VOXELS) -> np.ndarray:
    """Betas / 300 of ``voxels`` over both sessions, read straight off the written arrays."""
    return np.concatenate([np.stack([betas_volume(s)[v] for v in voxels], axis=1) for s in (1, 2)]) / 300.0


# --------------------------------------------------------------------------------------------- reading the fixture
def test_layout_paths_are_the_release_names(tmp_path):
    layout = NsdLayout(tmp_path)
    assert layout.stimuli == tmp_path / "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"
    assert layout.expdesign == tmp_path / "nsddata/experiments/nsd/nsd_expdesign.mat"
    assert layout.betas(3, 7, "hdf5") == tmp_path / (
        "nsddata_betas/ppdata/subj03/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session07.hdf5")
    assert layout.betas(3, 12, "nifti").name == "betas_session12.nii.gz"
    assert layout.ncsnr(1) == layout.betas_dir(1) / "ncsnr.nii.gz"
    assert layout.betas_dir(1) == tmp_path / "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR"
    assert layout.roi(8) == tmp_path / "nsddata/ppdata/subj08/func1pt8mm/roi/prf-visualrois.nii.gz"
    assert layout.roi(8, "nsdgeneral").name == "nsdgeneral.nii.gz"


def test_trial_to_image_mapping_by_hand(root):
    design = read_expdesign(NsdLayout(root).expdesign)
    assert design.masterordering.tolist() == [m - 1 for m in MASTERORDERING]
    assert trial_images(design, 2, 12).tolist() == SUBJECT2_IMAGES
    # Participant 1, first three trials: columns 3, 1, 8 -> ids 9, 2, 8 -> 0-based 8, 1, 7.
    assert trial_images(design, 1, 3).tolist() == [8, 1, 7]
    recording = load_recording(root, 2)
    assert recording.images.tolist() == SUBJECT2_IMAGES
    assert recording.shared.tolist() == SUBJECT2_SHARED
    assert recording.sessions.tolist() == [1] * 6 + [2] * 6
    assert [tuple(v) for v in recording.voxels.tolist()] == ROI_VOXELS
    assert recording.rois.tolist() == ROI_NAMES
    # ncsnr volume holds (flat C index) / 10.
    flat = [np.ravel_multi_index(v, GRID) for v in ROI_VOXELS]
    np.testing.assert_allclose(recording.ncsnr, np.array(flat) / 10, rtol=1e-6)
    assert recording.responses.dtype == np.float32 and recording.images.dtype == np.int64


def test_scaling_undone_and_hdf5_equals_nifti(root):
    raw = {fmt: load_recording(root, 1, fmt=fmt, zscore=False) for fmt in ("hdf5", "nifti")}
    np.testing.assert_array_equal(raw["hdf5"].responses, raw["nifti"].responses)
    np.testing.assert_allclose(raw["hdf5"].responses, expected_values(), rtol=1e-6)
    assert raw["hdf5"].responses[2, ROI_VOXELS.index((1, 0, 1))] == pytest.approx(1.5)
    scored = {fmt: load_recording(root, 1, fmt=fmt) for fmt in ("hdf5", "nifti")}
    np.testing.assert_array_equal(scored["hdf5"].responses, scored["nifti"].responses)


def test_zscored_within_each_session(root):
    recording = load_recording(root, 3, rois=("V1", "hV4"))
    assert recording.rois.tolist() == ["V1", "V1", "hV4", "V1", "hV4"]
    voxels = [v for v, name in zip(ROI_VOXELS, ROI_NAMES) if name in ("V1", "hV4")]
    values = expected_values(voxels)
    truth = np.concatenate([scipy.stats.zscore(values[:6], axis=0), scipy.stats.zscore(values[6:], axis=0)])
    np.testing.assert_allclose(recording.responses, truth, rtol=1e-5, atol=1e-6)
    for session in (1, 2):
        block = recording.responses[recording.sessions == session].astype(np.float64)
        np.testing.assert_allclose(block.mean(axis=0), 0, atol=1e-6)
        np.testing.assert_allclose(block.std(axis=0), 1, atol=1e-5)


def test_only_the_asked_sessions_trials_and_voxels_are_read(root, monkeypatch):
    layout = NsdLayout(root)
    # Session 1 gone: asking for session 2 alone never touches it.
    for fmt in ("hdf5", "nifti"):
        layout.betas(1, 1, fmt).unlink()
    second = load_recording(root, 1, sessions=[2], zscore=False)
    np.testing.assert_allclose(second.responses, expected_values()[6:], rtol=1e-6)
    assert second.images.tolist() == trial_images(read_expdesign(layout.expdesign), 1, 12)[6:].tolist()

    read = []
    original_h5 = h5py.Dataset.__getitem__
    original_proxy = nib.arrayproxy.ArrayProxy.__getitem__

    def spy_h5(self, selection):
        out = original_h5(self, selection)
        read.append(np.asarray(out).size)
        return out

    def spy_proxy(self, selection):
        out = original_proxy(self, selection)
        read.append(np.asarray(out).size)
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy_h5)
    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "__getitem__", spy_proxy)
    voxels = np.array([(1, 1, 1), (1, 0, 1)])  # bounding box: 1 x 2 x 1 voxels
    for fmt in ("hdf5", "nifti"):
        read.clear()
        values = read_betas(layout.betas(1, 2, fmt), voxels, trials=[4, 1, 4])
        assert sum(read) == 2 * 2  # two distinct trials x the 2-voxel box, not 6 trials x 24 voxels
        volume = betas_volume(2)
        np.testing.assert_array_equal(values, [[volume[1, 1, 1, t], volume[1, 0, 1, t]] for t in (4, 1, 4)])

    read.clear()
    images = read_images(layout, [5, 2, 5])
    assert images[:, 0, 0, 0].tolist() == [50, 20, 50]
    assert sum(read) == 2 * 5 * 5 * 3  # rows 2 and 5 only


# ---------------------------------------------------------------------------------------------- malformed files
def rewrite_expdesign(root, **changes) -> None:
    content = {"masterordering": np.array([MASTERORDERING], dtype=float), "subjectim": np.array(SUBJECTIM, float),
               "sharedix": np.array([SHAREDIX], dtype=float)}
    content.update(changes)
    save_mat(NsdLayout(root).expdesign, **{k: v for k, v in content.items() if v is not None})


def expect_error(call, path, field: str) -> InputError:
    with pytest.raises(InputError) as caught:
        call()
    assert caught.value.field == field
    assert str(path) in str(caught.value)
    assert str(caught.value).count("\n") == 0
    return caught.value


def test_masterordering_out_of_range(root):
    rewrite_expdesign(root, masterordering=np.array([MASTERORDERING[:-1] + [9]], dtype=float))
    error = expect_error(lambda: load_recording(root, 1), NsdLayout(root).expdesign, "masterordering")
    assert "1..8" in str(error) and "9 at trial 12" in str(error)
    rewrite_expdesign(root, masterordering=np.array([[0] + MASTERORDERING[1:]], dtype=float))
    expect_error(lambda: read_expdesign(NsdLayout(root).expdesign), NsdLayout(root).expdesign, "masterordering")


def test_subjectim_wrong_shape_and_ids_beyond_the_brick(root):
    rewrite_expdesign(root, subjectim=np.array(SUBJECTIM, dtype=float)[:, :, None].repeat(2, axis=2))
    expect_error(lambda: load_recording(root, 1), NsdLayout(root).expdesign, "subjectim")
    beyond = np.array(SUBJECTIM, dtype=float)
    beyond[2, 7] = N_IMAGES + 1
    rewrite_expdesign(root, subjectim=beyond)
    error = expect_error(lambda: load_recording(root, 1), NsdLayout(root).expdesign, "subjectim")
    assert "imgBrick" in str(error)


def test_missing_expdesign_variable(root):
    rewrite_expdesign(root, sharedix=None)
    error = expect_error(lambda: load_recording(root, 1), NsdLayout(root).expdesign, "sharedix")
    assert "masterordering" in str(error)  # the variables found are listed


def test_missing_betas_dataset(root):
    layout = NsdLayout(root)
    save_betas_hdf5(layout.betas(1, 2, "hdf5"), betas_volume(2), name="data")
    expect_error(lambda: load_recording(root, 1), layout.betas(1, 2, "hdf5"), "betas")


@pytest.mark.parametrize("fmt", ["hdf5", "nifti"])
def test_betas_grid_must_match_the_roi_volume(root, fmt):
    layout = NsdLayout(root)
    wrong = np.zeros((4, 3, 3, TRIALS), dtype=np.int16)
    if fmt == "hdf5":
        save_betas_hdf5(layout.betas(2, 1, fmt), wrong)
    else:
        save_nifti(layout.betas(2, 1, fmt), wrong)
    error = expect_error(lambda: load_recording(root, 2, fmt=fmt), layout.betas(2, 1, fmt), "betas")
    assert "(4, 3, 2)" in str(error) and "(4, 3, 3)" in str(error)


def test_betas_must_be_int16(root):
    layout = NsdLayout(root)
    save_betas_hdf5(layout.betas(1, 1, "hdf5"), betas_volume(1).astype(np.float32))
    expect_error(lambda: load_recording(root, 1), layout.betas(1, 1, "hdf5"), "betas")


@pytest.mark.parametrize("images", [np.zeros((N_IMAGES, 5, 5, 3), dtype=np.float32),
                                    np.zeros((N_IMAGES, 5, 5), dtype=np.uint8)], ids=["dtype", "ndim"])
def test_image_brick_dtype_and_ndim(root, images):
    layout = NsdLayout(root)
    with h5py.File(layout.stimuli, "w") as handle:
        handle.create_dataset("imgBrick", data=images)
    expect_error(lambda: read_images(layout, [0]), layout.stimuli, "imgBrick")
    expect_error(lambda: load_recording(root, 1), layout.stimuli, "imgBrick")


def test_missing_session_file_and_subject(root):
    layout = NsdLayout(root)
    expect_error(lambda: load_recording(root, 1, sessions=[1, 3]), layout.betas(1, 3, "hdf5"), "file")
    expect_error(lambda: load_recording(root, 4), layout.expdesign, "subjectim")
    layout.roi(2).unlink()
    expect_error(lambda: load_recording(root, 2), layout.roi(2), "file")


def test_unequal_sessions_and_short_masterordering(root):
    layout = NsdLayout(root)
    save_betas_hdf5(layout.betas(1, 2, "hdf5"), betas_volume(2)[..., :5])
    expect_error(lambda: load_recording(root, 1), layout.betas(1, 2, "hdf5"), "betas")
    rewrite_expdesign(root, masterordering=np.array([MASTERORDERING[:10]], dtype=float))
    error = expect_error(lambda: load_recording(root, 2), layout.expdesign, "masterordering")
    assert "12" in str(error) and "10" in str(error)


def test_bad_settings_are_config_errors(root):
    with pytest.raises(ConfigError, match="V5"):
        load_recording(root, 1, rois=("V1", "V5"))
    with pytest.raises(ConfigError, match="nifti"):
        load_recording(root, 1, fmt="mgh")


# ------------------------------------------------------------------------------------------------- round trip
def test_writers_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    layout = NsdLayout(tmp_path)
    grid, per_session = (5, 4, 3), 8
    images = rng.integers(0, 256, (20, 6, 6, 3), dtype=np.uint8)
    write_stimuli(layout.stimuli, images)
    order = rng.integers(0, 10, 2 * per_session)
    design = ExpDesign(order, np.stack([rng.permutation(20)[:10] for _ in range(2)]), np.array([3, 7]))
    write_expdesign(layout.expdesign, design, per_session)
    raw = scipy.io.loadmat(layout.expdesign)
    assert raw["masterordering"].shape == (1, 16) and raw["masterordering"].dtype == np.float64
    assert raw["subjectim"].shape == (2, 10) and raw["sharedix"].tolist() == [[4.0, 8.0]]
    assert raw["basiccnt"].shape == (3, 2)
    back = read_expdesign(layout.expdesign)
    np.testing.assert_array_equal(back.masterordering, order)
    np.testing.assert_array_equal(back.subjectim, design.subjectim)
    np.testing.assert_array_equal(read_images(layout, [4, 0, 19]), images[[4, 0, 19]])

    labels = rng.integers(-1, 8, grid).astype(np.int16)
    ncsnr = rng.random(grid).astype(np.float32)
    write_volume(layout.roi(2), labels)
    write_volume(layout.ncsnr(2), ncsnr)
    volumes = [rng.integers(-3000, 3000, grid + (per_session,)).astype(np.int16) for _ in range(2)]
    for session, volume in enumerate(volumes, start=1):
        write_betas(layout, 2, session, volume)
    # The two files hold the same array in the two layouts, read here without the module.
    with h5py.File(layout.betas(2, 1, "hdf5"), "r") as handle:
        np.testing.assert_array_equal(handle["betas"][()], volumes[0].transpose(3, 2, 1, 0))
    np.testing.assert_array_equal(np.asarray(nib.load(layout.betas(2, 1, "nifti")).dataobj), volumes[0])
    np.testing.assert_array_equal(nib.load(layout.roi(2)).affine, nib.load(layout.betas(2, 1, "nifti")).affine)

    voxels = np.argwhere(labels > 0)
    written = np.concatenate([v[voxels[:, 0], voxels[:, 1], voxels[:, 2]].T for v in volumes]) / 300.0
    truth = np.concatenate([scipy.stats.zscore(written[:8], axis=0), scipy.stats.zscore(written[8:], axis=0)])
    for fmt in ("hdf5", "nifti"):
        recording = load_recording(tmp_path, 2, fmt=fmt)
        np.testing.assert_array_equal(recording.voxels, voxels)
        np.testing.assert_allclose(recording.responses, truth, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(recording.ncsnr, ncsnr[labels > 0])
        np.testing.assert_array_equal(recording.images, design.subjectim[1, order])
        assert recording.shared.tolist() == np.isin(design.subjectim[1, order], [3, 7]).tolist()
    np.testing.assert_allclose(load_recording(tmp_path, 2, zscore=False).responses, written, rtol=1e-6)

    # Same content, same bytes (the MAT header's date and the gzip stamp are fixed).
    files = (layout.expdesign, layout.stimuli, layout.roi(2), layout.betas(2, 1, "nifti"), layout.betas(2, 1, "hdf5"))
    before = {p: p.read_bytes() for p in files}
    write_stimuli(layout.stimuli, images)
    write_expdesign(layout.expdesign, design, per_session)
    write_volume(layout.roi(2), labels)
    write_betas(layout, 2, 1, volumes[0])
    assert all(p.read_bytes() == content for p, content in before.items())
    assert nsd.session_counts(design, per_session).sum(axis=0).tolist() == [
        len(np.unique(order[:8])), len(np.unique(order[8:]))]
