"""The simulated NSD twin: the release layout, the design it promises, and noise that matches its planted ncsnr.

The noise check uses a truth computed differently from the generation: the correlation between two repeats of
the same image, measured on the loaded (z-scored) betas, against ``ncsnr**2 / (ncsnr**2 + 1)`` from the true
ncsnr in ``ncsnr.nii.gz``. Files are read with h5py, scipy and nibabel directly where the layout is checked.
"""

from __future__ import annotations

import hashlib
from itertools import combinations

import h5py
import nibabel as nib
import numpy as np
import pytest
import scipy.io

from brainalign.errors import ConfigError
from brainalign.vision.images import make_images
from brainalign.vision.nsd import NsdLayout, load_recording, read_betas
from brainalign.vision.simulate import (SIGMA_RANGES, VisionSimulation, read_truth, simulate_nsd, voxel_truth)

SETTINGS = VisionSimulation(subjects=3, shared_images=24, images_per_subject=96, repeats=3, trials_per_session=120,
                            image_size=48, grid=(6, 8, 4), seed=5)


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("twin") / "nsd"
    truth = simulate_nsd(root, SETTINGS)
    return root, truth


def test_files_in_the_release_layout(twin):
    root, truth = twin
    layout = NsdLayout(root)
    n_images = 24 + 3 * 96
    with h5py.File(layout.stimuli, "r") as handle:
        assert handle["imgBrick"].shape == (n_images, 48, 48, 3) and handle["imgBrick"].dtype == np.uint8
    design = scipy.io.loadmat(layout.expdesign)
    assert design["masterordering"].shape == (1, 360) and design["masterordering"].dtype == np.float64
    assert design["subjectim"].shape == (3, 120) and design["sharedix"].shape == (1, 24)
    assert design["masterordering"].min() == 1 and design["masterordering"].max() == 120
    assert design["subjectim"].min() >= 1 and design["subjectim"].max() <= n_images
    for subject in (1, 2, 3):
        assert layout.sessions(subject, "hdf5") == [1, 2, 3] == layout.sessions(subject, "nifti")
        with h5py.File(layout.betas(subject, 3, "hdf5"), "r") as handle:
            assert handle["betas"].shape == (120, 4, 8, 6) and handle["betas"].dtype == np.int16
        image = nib.load(layout.betas(subject, 3, "nifti"))
        assert image.shape == (6, 8, 4, 120) and image.get_data_dtype() == np.int16
        np.testing.assert_allclose(np.diag(image.affine)[:3], 1.8)
        for name in ("prf-visualrois", "nsdgeneral"):
            assert nib.load(layout.roi(subject, name)).shape == (6, 8, 4)
        assert nib.load(layout.ncsnr(subject)).shape == (6, 8, 4)
    assert read_truth(root) == truth


def test_design_repeats_and_shared_images(twin):
    root, truth = twin
    design = scipy.io.loadmat(NsdLayout(root).expdesign)
    shared = set((design["sharedix"][0] - 1).astype(int).tolist())
    assert shared == set(truth["images"]["shared_ids"])
    own = []
    for subject in (1, 2, 3):
        recording = load_recording(root, subject)
        ids, counts = np.unique(recording.images, return_counts=True)
        assert (counts == 3).all() and len(ids) == 120
        assert set(ids.tolist()) == set((design["subjectim"][subject - 1] - 1).astype(int).tolist())
        assert set(recording.images[recording.shared].tolist()) == shared  # every shared image, seen by all
        own.append(set(ids.tolist()) - shared)
        assert (recording.sessions == np.repeat([1, 2, 3], 120)).all()
    assert all(len(own[a] & own[b]) == 0 for a, b in combinations(range(3), 2))
    assert sum(len(o) for o in own) == 3 * 96


def test_true_ncsnr_orders_the_ceilings(twin):
    root, truth = twin
    layout = NsdLayout(root)
    assert truth["ceiling_order"] == ["V1", "V2", "V3", "hV4"]
    for subject in (1, 2, 3):
        labels = np.asarray(nib.load(layout.roi(subject)).dataobj)
        ncsnr = np.asarray(nib.load(layout.ncsnr(subject)).dataobj)
        medians = [np.median(ncsnr[np.isin(labels, group)]) for group in ((1, 2), (3, 4), (5, 6), (7,))]
        assert medians == sorted(medians, reverse=True), medians
        assert (ncsnr[labels <= 0] == 0).all() and (ncsnr[labels > 0] > 0).all()


def repeat_correlation(responses: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Per voxel, the mean over pairs of repeats of the correlation across images between the two repeats."""
    ids = np.unique(images)
    trials = np.stack([np.flatnonzero(images == i) for i in ids])  # (n_images, repeats)
    out = []
    for a, b in combinations(range(trials.shape[1]), 2):
        x, y = responses[trials[:, a]], responses[trials[:, b]]
        x, y = x - x.mean(axis=0), y - y.mean(axis=0)
        out.append((x * y).sum(axis=0) / np.sqrt((x**2).sum(axis=0) * (y**2).sum(axis=0)))
    return np.mean(out, axis=0)


def test_repeat_correlation_matches_the_true_ncsnr(twin):
    root, _ = twin
    layout = NsdLayout(root)
    observed, expected, rois = [], [], []
    for subject in (1, 2, 3):
        recording = load_recording(root, subject)
        observed.append(repeat_correlation(recording.responses, recording.images))
        expected.append(recording.ncsnr.astype(np.float64) ** 2 / (recording.ncsnr.astype(np.float64) ** 2 + 1))
        rois.append(recording.rois)
        # Unlabelled voxels inside nsdgeneral carry noise only.
        labels = np.asarray(nib.load(layout.roi(subject)).dataobj)
        quiet = np.argwhere(labels == 0)
        values = np.concatenate([read_betas(layout.betas(subject, s), quiet) for s in (1, 2, 3)])
        values = np.concatenate([(v - v.mean(0)) / v.std(0) for v in np.split(values, 3)])
        assert abs(repeat_correlation(values, recording.images).mean()) < 0.03
    observed, expected, rois = map(np.concatenate, (observed, expected, rois))
    for roi in ("V1", "V2", "V3", "hV4"):
        chosen = rois == roi
        assert abs(observed[chosen].mean() - expected[chosen].mean()) < 0.04, roi
    assert abs(np.median(observed - expected)) < 0.02
    assert np.corrcoef(observed, expected)[0, 1] > 0.5


def test_truth_is_aligned_with_the_loaded_voxels(twin):
    root, truth = twin
    assert set(truth["subjects"]) == {"1", "2", "3"}
    for subject in (1, 3):
        recording = load_recording(root, subject)
        voxel = voxel_truth(truth, subject, recording.voxels)
        assert voxel["responsive"].all()
        assert voxel["roi"].tolist() == recording.rois.tolist()
        np.testing.assert_allclose(voxel["ncsnr"], recording.ncsnr, rtol=1e-6)
        part = truth["subjects"][str(subject)]
        responsive = np.array(part["responsive"])
        assert np.array(part["coords"])[responsive].tolist() == recording.voxels.tolist()
        for roi, (low, high) in SIGMA_RANGES.items():
            sigma = voxel["prf_sigma"][voxel["roi"] == roi]
            assert len(sigma) and sigma.min() >= low and sigma.max() <= high
        assert ((voxel["prf_x"] >= 0.2) & (voxel["prf_x"] <= 0.8)).all()
        shares = [part["layer_shares"][i] for i in np.flatnonzero(responsive)]
        for share, roi in zip(shares, recording.rois):
            assert sum(share.values()) == pytest.approx(1.0)
            top = {"V1": "conv1", "V2": "conv2", "V3": "conv3", "hV4": "conv5"}[roi]
            assert max(share, key=share.get) == top and len(share) == {"V1": 1, "V2": 2, "V3": 3, "hV4": 5}[roi]
        assert all(part["prf_x"][i] is None for i in np.flatnonzero(~responsive))
    assert truth["network"]["name"] == "alexnet" and truth["network"]["seed"] == SETTINGS.hidden_seed
    assert set(truth["convention"]) >= {"prf_x", "prf_y", "prf_sigma", "feature_map_cells"}


def file_hashes(root) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_settings_same_bytes(tmp_path):
    tiny = VisionSimulation(subjects=1, shared_images=4, images_per_subject=8, repeats=2, trials_per_session=8,
                            image_size=32, grid=(3, 4, 2))
    simulate_nsd(tmp_path / "a", tiny)
    simulate_nsd(tmp_path / "b", tiny)
    first, second = file_hashes(tmp_path / "a"), file_hashes(tmp_path / "b")
    assert len(first) == 12 and first == second  # stimuli, design, truth, 2 ROIs, ncsnr, 3 sessions x 2
    simulate_nsd(tmp_path / "a", VisionSimulation(**{**vars(tiny), "seed": 1}))  # replaces the twin
    changed = file_hashes(tmp_path / "a")
    assert changed.keys() == first.keys()
    assert changed["nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session01.hdf5"] != \
        first["nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session01.hdf5"]


def test_refuses_settings_and_roots_it_cannot_honour(tmp_path):
    with pytest.raises(ConfigError, match="divide"):
        VisionSimulation(trials_per_session=7)
    with pytest.raises(ConfigError, match="image_size"):
        VisionSimulation(image_size=24)
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "nsddata").mkdir()
    with pytest.raises(ConfigError, match="not a simulated twin"):
        simulate_nsd(tmp_path / "real", VisionSimulation())
    assert (tmp_path / "real" / "nsddata").is_dir()


def test_images_are_distinct_and_seeded():
    first = make_images(40, 32, seed=3)
    assert first.shape == (40, 32, 32, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, make_images(40, 32, seed=3))
    assert len({image.tobytes() for image in first}) == 40
    assert not np.array_equal(first, make_images(40, 32, seed=4))
    # Structure at several scales: energy both in coarse (<= 2 cycles) and fine (>= 8 cycles per image) bands.
    spectrum = np.abs(np.fft.fft2(first.mean(axis=3) - first.mean(axis=(1, 2, 3))[:, None, None])) ** 2
    frequency = np.hypot(*np.meshgrid(np.fft.fftfreq(32) * 32, np.fft.fftfreq(32) * 32))
    coarse = spectrum[:, (frequency > 0) & (frequency <= 2)].sum(axis=1)
    fine = spectrum[:, frequency >= 8].sum(axis=1)
    assert (coarse > 0).all() and (fine / spectrum.sum(axis=(1, 2)) > 0.005).mean() > 0.8


def test_simulated_prfs_follow_the_fwrf_convention_on_non_square_maps():
    """The twin's pooling and the fwRF's candidate pooling are one convention (distances in image widths), checked
    cell by cell on a 4 x 7 map, where measuring y in image heights would differ."""
    import math

    from brainalign.vision.fwrf import prf_weights
    from brainalign.vision.simulate import gaussian_weights

    prf = np.array([[0.3, 0.6, 0.15], [0.8, 0.2, 0.05]])
    twin = gaussian_weights(prf[:, 0], prf[:, 1], prf[:, 2], 4, 7).reshape(2, 4, 7)
    np.testing.assert_allclose(twin, prf_weights(prf, 4, 7), rtol=1e-12)
    x, y, sigma = prf[0]
    by_hand = np.array([[math.exp(-(((j + 0.5) / 7 - x) ** 2 + (((i + 0.5) / 4 - y) * 4 / 7) ** 2) / (2 * sigma**2))
                         for j in range(7)] for i in range(4)])
    np.testing.assert_allclose(twin[0], by_hand / by_hand.sum(), rtol=1e-12)
