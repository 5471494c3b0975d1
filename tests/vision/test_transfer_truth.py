"""The transfer matrix against the twin's truth: the ideal matrix of its generative model, and GNet8r's sign.

:func:`brainalign.vision.transfer.ideal_transfer_matrix` reads the twin's hidden network, ``ROI_LAYERS`` and each
voxel's true pRF (truth.json) and fits ridge readouts; no GNet is involved, so it is a truth for the trained cores'
matrix computed another way. A twin of the pipeline's size with one participant and two ROIs (V1, hV4: the pair
the asymmetry is largest for), about 60 s on one thread.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign.vision.gnet import GNetSettings, Participant, train_gnet8r
from brainalign.vision.networks import load_network
from brainalign.vision.nsd import NsdLayout, load_recording, read_images
from brainalign.vision.simulate import VisionSimulation, simulate_nsd
from brainalign.vision.transfer import _ridge_loo, asymmetry_index, ideal_transfer_matrix, transfer_matrix

ROIS = ("V1", "hV4")


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("twin")
    simulate_nsd(root, VisionSimulation(subjects=1, shared_images=60, images_per_subject=200, repeats=3,
                                        trials_per_session=260))
    return root


@pytest.fixture(scope="module")
def ideal(twin):
    return ideal_transfer_matrix(twin, rois=ROIS)


def test_ridge_leave_one_out_matches_a_refitting_loop():
    """Truth: the definition, by brute force. For every penalty each image is left out, a ridge (intercept by
    centring, features z-scored with the remaining images) is refitted on the rest and predicts it; the penalty of
    least error and its predictions must be what the closed form chose. (The closed form z-scores once with all
    fitting images, so errors agree to the z-scoring's leverage only: the choice, not the last digit, is checked.)"""
    rng = np.random.default_rng(0)
    fit, held = rng.standard_normal((3, 30, 8)), rng.standard_normal((3, 10, 8))
    weights = rng.standard_normal((3, 8)) * np.array([[3.0], [0.3], [0.0]])
    y = np.einsum("vnp,vp->vn", fit, weights) + rng.standard_normal((3, 30))
    penalties = np.logspace(-2, 3, 11)
    predictions, chosen = _ridge_loo(fit, y, held, penalties)
    for v in range(3):
        errors = []
        for alpha in penalties:
            error = 0.0
            for i in range(30):
                keep = np.arange(30) != i
                mean, sd = fit[v, keep].mean(0), fit[v, keep].std(0)
                x, x_out = (fit[v, keep] - mean) / sd, (fit[v, i] - mean) / sd
                w = np.linalg.solve(x.T @ x + alpha * np.eye(8), x.T @ (y[v, keep] - y[v, keep].mean()))
                error += (y[v, i] - y[v, keep].mean() - x_out @ w) ** 2
            errors.append(error)
        assert abs(np.log10(chosen[v]) - np.log10(penalties[int(np.argmin(errors))])) <= 0.5 + 1e-9
        mean, sd = fit[v].mean(0), fit[v].std(0)
        x = (fit[v] - mean) / sd
        w = np.linalg.solve(x.T @ x + chosen[v] * np.eye(8), x.T @ (y[v] - y[v].mean()))
        np.testing.assert_allclose(predictions[v], (held[v] - mean) / sd @ w + y[v].mean(), rtol=1e-8, atol=1e-10)
    assert chosen[0] < chosen[2]  # strong signal: little shrinkage; none: much


def test_ideal_matrix_of_the_twin(twin, ideal):
    """Truth: the twin's generative model. Each ROI's own ideal core is its correctly specified model, so its
    validation r sits close to the true ceiling r (V1 reads conv1 only: 64 channels) and the diagonal is 0 by
    definition. V1's own model must beat hV4's core on V1 voxels, which holds V1's conv1 but with 1,088 other
    channels to weigh from 200 images: that is the matrix's sign at this size (alpha -1: transfer up costs
    less than transfer down, the opposite of the infinite-data limit, where a core holding every layer a target
    reads loses nothing)."""
    matrix, details = ideal
    assert isinstance(matrix, pd.DataFrame) and list(matrix.index) == list(ROIS) == list(matrix.columns)
    assert np.allclose(np.diag(matrix.to_numpy()), 0.0)
    assert details.n_features == {"V1": 64, "hV4": 64 + 192 + 384 + 256 + 256}
    recording = load_recording(twin, 1, rois=ROIS)
    snr = recording.ncsnr[recording.rois == "V1"]
    ceiling = np.median(np.sqrt(snr**2 / (snr**2 + 1)))
    assert np.median(details.r[("V1", "V1")]["subj01"]) > 0.9 * ceiling
    assert matrix.loc["hV4", "V1"] < -0.2
    assert asymmetry_index(matrix, ROIS) < 0


def test_trained_gnet8r_cores_reproduce_the_ideal_asymmetry_sign(twin, ideal):
    """Truth: the ideal matrix's asymmetry sign (no GNet in it). GNet8r cores (10 epochs, the fields' own step
    size) with new readouts trained as long on every frozen core must give the same sign. (They do for another
    reason too: a new readout's cost is largest for V1 targets whatever the core; see docs/vision.md.)"""
    ideal, _ = ideal
    recording = load_recording(twin, 1, rois=ROIS)
    ids = np.unique(recording.images)
    images = read_images(NsdLayout(twin), ids)
    rows = np.searchsorted(ids, recording.images)
    fit, shared = np.flatnonzero(~recording.shared), np.flatnonzero(recording.shared)
    training, validation = {}, {}
    for roi in ROIS:
        voxels = recording.rois == roi
        training[roi] = [Participant("subj01", rows[fit],
                                     np.ascontiguousarray(recording.responses[np.ix_(fit, voxels)]))]
        validation[roi] = [Participant("subj01", rows[shared],
                                       np.ascontiguousarray(recording.responses[np.ix_(shared, voxels)]))]
    settings = GNetSettings(epochs=10, field_learning_rate=0.1, device="cpu", progress=False)
    cores = train_gnet8r(images, training, settings, load_network("alexnet"))
    matrix, details = transfer_matrix(cores, images, training, validation, settings)
    own = {roi: np.median(details.own_r[roi]["subj01"]) for roi in ROIS}
    assert own["V1"] > 0.4 and own["hV4"] > 0.3, own  # the cores learned their ROI
    assert np.sign(asymmetry_index(matrix, ROIS)) == np.sign(asymmetry_index(ideal, ROIS)), (matrix, ideal)
