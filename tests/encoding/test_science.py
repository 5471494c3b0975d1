"""Encoding models on the simulation, against its ground truth (the acceptance of the encoding issue).

The simulated brain reads a fixed nonlinear transform of the packaged MiniLM's word states at
``encoder_layer`` (here with ``cls_share = 0``, so the whole signal is word-level) through each participant's
weights; ``data/truth`` keeps the noise-free signal and which voxels carry it.
"""

from __future__ import annotations

import numpy as np
import pytest

from brainalign.data.atlas import language_region_labels
from brainalign.data.prepared import prepare_recording
from brainalign.data.simulated import SimulationConfig, simulate_experiment
from brainalign.encoding.ceilings import dataset_ceiling, shared_space
from brainalign.encoding.experiment import EncodingSettings, encode_layers
from brainalign.ridge import backend
from brainalign.features.layers import extract_features, load_feature_model
from brainalign.metrics.ceiling import true_ceiling

LAYER = 3


@pytest.fixture(scope="module")
def world():
    config = SimulationConfig(subjects=4, meg_subjects=0, resolution_mm=12, cls_share=0.0, words_per_run=600,
                              snr=[1.0, 2.0], encoder_layer=LAYER, seed=3)
    fmri, _, truth = simulate_experiment(config)
    subjects = [prepare_recording(r) for r in fmri]
    words = subjects[0].words["word"].tolist()
    features = {name: extract_features(load_feature_model(name), words, context=20, progress=False)
                for name in ("minilm", "minilm-untrained", "random-384")}
    settings = EncodingSettings(n_draws=100, measures=("pearson_r",))
    return {"config": config, "truth": truth, "subjects": subjects, "features": features, "settings": settings,
            "fmri": fmri}


def layer_r(world, model, subject=0, features=None):
    """Held-out r per layer and voxel (mean over held-out runs): (n_layers, n_voxels)."""
    with backend("cpu"):
        scores, significance = encode_layers(world["subjects"][subject], features if features is not None
                                             else world["features"][model], model, world["settings"], progress=False)
    r = scores.groupby(["layer", "voxel"])["value"].mean().unstack().to_numpy()
    return r, significance


@pytest.fixture(scope="module")
def minilm(world):
    return [layer_r(world, "minilm", s) for s in (0, 1)]


def test_layer_curve_peaks_at_the_simulated_layer_and_noise_voxels_score_zero(world, minilm):
    responsive = world["truth"].responsive
    curve = np.mean([r[:, responsive].mean(1) for r, _ in minilm], axis=0)
    assert abs(int(np.argmax(curve)) - LAYER) <= 1, curve
    noise = np.concatenate([r[:, ~responsive].ravel() for r, _ in minilm])
    assert abs(noise.mean()) < 0.01
    best = np.concatenate([r[int(np.argmax(curve)), responsive] for r, _ in minilm])
    # Responsive voxels clearly above: their mean is many standard errors of the noise voxels' mean away.
    assert best.mean() > 0.15 and best.mean() > 20 * noise.std() / np.sqrt(noise.size)


def test_significance_maps_find_responsive_voxels_and_few_others(world, minilm):
    responsive = world["truth"].responsive
    for r, significance in minilm:
        layer = significance[significance["layer"] == int(np.argmax(r[:, responsive].mean(1)))]
        found = layer["significant"].to_numpy()
        assert found[responsive].mean() > 0.5
        assert found[~responsive].mean() <= 0.05


def test_untrained_and_random_controls_score_below_the_pretrained_model(world, minilm):
    responsive = world["truth"].responsive
    pretrained = minilm[0][0][:, responsive].mean(1).max()
    for control in ("minilm-untrained", "random-384"):
        r, _ = layer_r(world, control)
        assert r[:, responsive].mean(1).max() < pretrained - 0.03, control


def test_features_shifted_in_time_score_at_chance(world):
    responsive = world["truth"].responsive
    words = world["features"]["minilm"][LAYER:LAYER + 1]
    shifted = np.roll(np.asarray(words), words.shape[1] // 2, axis=1)  # half the story later: no alignment
    r, _ = layer_r(world, "minilm", features=shifted)
    assert abs(r[0, responsive].mean()) < 0.03
    assert abs(r[0].mean()) < 0.01


def test_extrapolation_ceiling_is_within_15_percent_of_the_true_ceiling(world):
    subjects, truth = world["subjects"], world["truth"]
    assert shared_space(subjects) is None
    # The benchmark's channels, as the stage pools them: the language-network spheres (data/atlas.py).
    language = np.flatnonzero(language_region_labels(subjects[0].coords, subjects[0].affine) > 0)
    ceiling = dataset_ceiling(subjects, language, n_bootstraps=50, progress=False)
    responsive = np.flatnonzero(truth.responsive)
    estimated = ceiling.set_index("voxel")["ceiling"].reindex(np.arange(truth.responsive.size)).to_numpy()
    true = []
    for recording, subject in zip(world["fmri"], subjects):
        signal = truth.signal[recording.subject][subject.examples["row"].to_numpy()]
        true.append(np.mean([true_ceiling(signal[f.test], subject.responses[f.test][:, responsive])
                             for f in subject.folds], axis=0))
    true_median = float(np.median(np.mean(true, axis=0)))
    estimate = float(np.nanmedian(estimated[responsive]))
    assert abs(estimate - true_median) <= 0.15 * true_median, (estimate, true_median)
    others = np.setdiff1d(language, responsive)
    assert not others.size or np.median(estimated[others]) < 0.1


def test_ceiling_needs_three_participants_on_one_space(world):
    assert "at least 3 participants" in shared_space(world["subjects"][:2])
