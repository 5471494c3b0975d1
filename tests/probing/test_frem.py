"""FReM decoding held out by run, on small simulated regions whose truth is planted (and a few cases by hand)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.ndimage
from nilearn.decoding import FREMRegressor
from nilearn.regions import ReNA
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score, roc_auc_score

from brainalign.data.hp_fmri import read_hp_fmri, write_hp_fmri
from brainalign.data.recording import Recording
from brainalign.errors import ConfigError, InputError
from brainalign.probing.frem import (FremSettings, _quiet, _scaled_rena, decode_feature, delayed_volume,
                                     isolated_voxels, recording_atlas, region_masks, shift_null)

SHAPE = (10, 10, 10)
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])
RUNS = np.repeat([1, 2, 3, 4], 60)


def ball(radius: float, centre: float = 4.5) -> np.ndarray:
    """The voxels of SHAPE within ``radius`` of ``centre`` (57 voxels at 2.4, 160 at 3.5), 0-based."""
    grid = np.indices(SHAPE).reshape(3, -1).T
    return grid[np.linalg.norm(grid - centre, axis=1) <= radius]


def ar1(rng: np.random.Generator, n: int, phi: float = 0.5, width: int = 1) -> np.ndarray:
    noise = rng.standard_normal((n, width))
    out = np.zeros_like(noise)
    for t in range(n):
        out[t] = (phi * out[t - 1] if t else 0) + noise[t]
    return out


def planted(rng: np.random.Generator, coords: np.ndarray, loading: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """A feature (AR(1) within each run) in every voxel with a random pattern, plus AR(1) noise: (images, target)."""
    target = np.concatenate([ar1(rng, 60)[:, 0] for _ in range(4)])
    pattern = rng.standard_normal(len(coords))
    noise = np.concatenate([ar1(rng, 60, width=len(coords)) for _ in range(4)])
    images = (np.outer(target, pattern) * loading + noise).astype(np.float32)
    return images[:, :, None], target


def test_a_planted_continuous_feature_is_decoded_held_out():
    rng = np.random.default_rng(0)
    coords = ball(2.4)
    images, target = planted(rng, coords)
    result = decode_feature(images, target, RUNS, coords, SHAPE, AFFINE)
    assert result.kind == "continuous" and result.metric == "r2"
    # Truth: the feature explains 0.3² x 57 / (0.3² x 57 + 1.33) of the pattern's variance; held out it is
    # decoded well, far above the dummy (the training mean, slightly below 0 held out), and significantly.
    assert result.score > 0.3
    assert result.dummy_score < 0 and result.gain > 0.3
    assert result.p_value < 0.05
    assert result.score == pytest.approx(r2_score(target, result.predictions))
    assert result.dummy_score == pytest.approx(r2_score(target, result.dummy_predictions))
    # Every sample is predicted by the fold that held its run out, and each fold's score is within its run.
    for k, run in enumerate(result.runs):
        held = RUNS == run
        assert result.fold_scores[k] == pytest.approx(r2_score(target[held], result.predictions[held]))
        assert np.ptp(result.dummy_predictions[held]) < 1e-9  # a constant: that fold's training mean
    assert result.fold_reasons == [""] * 4


def test_f_the_same_call_twice_gives_identical_predictions():
    rng = np.random.default_rng(1)
    coords = ball(2.4)
    images, target = planted(rng, coords, loading=0.1)
    first = decode_feature(images, target, RUNS, coords, SHAPE, AFFINE)
    second = decode_feature(images, target, RUNS, coords, SHAPE, AFFINE)
    np.testing.assert_array_equal(first.predictions, second.predictions)
    np.testing.assert_array_equal(first.null, second.null)
    assert first.p_value == second.p_value


def test_b_shuffled_feature_is_at_chance_held_out_but_not_in_sample():
    """The acceptance test: the seed scored FReM on the images it was fitted on.

    The feature is shuffled by reversing each run's values in time: it keeps its autocorrelation (as a real
    feature's, the thing that makes in-sample scores look good) and loses its alignment with the images.
    """
    rng = np.random.default_rng(2)
    coords = ball(3.5)
    images, target = planted(rng, coords)
    shuffled = np.concatenate([target[RUNS == run][::-1] for run in (1, 2, 3, 4)])
    held_out = decode_feature(images, shuffled, RUNS, coords, SHAPE, AFFINE)
    assert held_out.score <= 0.02
    assert held_out.p_value > 0.05
    # In sample, as the seed did it: nilearn's FREMRegressor with its settings, fitted on every sample and
    # scored on the same samples.
    mask_img, place = delayed_volume(coords, SHAPE, AFFINE, 1)
    seed = FREMRegressor("ridge", mask=mask_img, cv=5, clustering_percentile=30, screening_percentile=4, scoring="r2")
    with _quiet():
        seed.fit(place(images), shuffled)
        in_sample = r2_score(shuffled, seed.predict(place(images)))
    assert in_sample > 0.1


def test_c_a_planted_binary_feature_is_decoded_by_the_classifier():
    rng = np.random.default_rng(3)
    coords = ball(2.4)
    images, target = planted(rng, coords)
    on = (target > 0.5).astype(np.float64)
    result = decode_feature(images, on, RUNS, coords, SHAPE, AFFINE)
    assert result.kind == "binary" and result.metric == "roc_auc"
    assert result.score > 0.75 and result.p_value < 0.05
    # The dummy gives every held-out sample its training prior: AUC one half in every run.
    np.testing.assert_array_equal(result.dummy_fold_scores, 0.5)
    assert result.dummy_score == 0.5
    for k, run in enumerate(result.runs):
        held = RUNS == run
        assert result.fold_scores[k] == pytest.approx(roc_auc_score(on[held], result.predictions[held]))
        prior = on[~held].mean()
        assert np.allclose(result.dummy_predictions[held], prior, atol=0.03)  # averaged over inner folds
    assert result.score == pytest.approx(np.mean(result.fold_scores))


def test_a_fold_without_both_classes_is_nan_with_a_reason():
    rng = np.random.default_rng(4)
    coords = ball(2.4)
    images, _ = planted(rng, coords)
    on = np.zeros(len(RUNS))
    on[:60:7] = 1  # the feature occurs in run 1 only
    result = decode_feature(images, on, RUNS, coords, SHAPE, AFFINE)
    assert "only class 0" in result.fold_reasons[0]  # run 1 held out: nothing to learn from
    assert all("only class 0" in r for r in result.fold_reasons[1:])  # held-out runs without the feature
    assert np.isnan(result.score) and np.isnan(result.p_value) and result.reason
    constant = decode_feature(images, np.where(RUNS == 1, np.arange(240.0), 0.0), RUNS, coords, SHAPE, AFFINE)
    assert "constant" in constant.fold_reasons[0]
    assert not np.isfinite(constant.fold_scores[0])
    assert np.isnan(constant.predictions[RUNS == 1]).all()


def delayed_experiment(rng: np.random.Generator, coords: np.ndarray, delay: int, delays: list[int]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """A white-noise feature per TR shows in the voxels ``delay`` TRs later; each run's 60 samples read their
    images ``delays`` TRs after them (runs of 64 TRs, so every image is inside its run)."""
    images, targets = [], []
    pattern = rng.standard_normal(len(coords))
    for _ in range(4):
        earlier = rng.standard_normal(64 + delay)  # the feature from `delay` TRs before the run's first TR
        feature = earlier[delay:]
        response = np.outer(earlier[:64], pattern) * 0.3 + ar1(rng, 64, width=len(coords))  # TR t: feature[t - delay]
        images.append(np.stack([response[np.arange(60) + d] for d in delays], axis=2))
        targets.append(feature[:60])
    return np.concatenate(images).astype(np.float32), np.concatenate(targets)


def test_d_a_feature_planted_at_delay_3_is_found_at_3_and_not_at_0():
    coords = ball(2.4)
    scores = {}
    for delays in ([3], [1, 2, 3, 4], [0]):
        images, target = delayed_experiment(np.random.default_rng(5), coords, 3, delays)
        scores[str(delays)] = decode_feature(images, target, RUNS, coords, SHAPE, AFFINE)
    assert scores["[3]"].score > 0.3 and scores["[3]"].p_value < 0.05
    assert scores["[1, 2, 3, 4]"].score > 0.3 and scores["[1, 2, 3, 4]"].p_value < 0.05
    assert scores["[0]"].score < 0.02 and scores["[0]"].p_value > 0.05


def test_d_the_delayed_volume_keeps_delays_apart():
    coords = ball(2.4)
    mask_img, place = delayed_volume(coords, SHAPE, AFFINE, 3)
    mask = np.asarray(mask_img.dataobj)
    low = coords.min(0)
    pitch = np.ptp(coords[:, 2]) + 2  # the region's depth and one empty slice
    assert mask.shape == (*(np.ptp(coords, 0)[:2] + 1), 3 * pitch - 1)
    assert mask.sum() == 3 * len(coords)
    for d in (1, 2):
        assert not mask[:, :, d * pitch - 1].any()
    # By hand: voxel v's value at delay d sits at its place in the box, d slabs up.
    data = np.random.default_rng(6).standard_normal((4, len(coords), 3)).astype(np.float32)
    volume = place.array(data)
    for v in (0, 17, len(coords) - 1):
        for d in range(3):
            x, y, z = coords[v] - low + (0, 0, d * pitch)
            np.testing.assert_array_equal(volume[x, y, z, :], data[:, v, d])
    np.testing.assert_array_equal(place(data).affine[:3, 3], AFFINE[:3, :3] @ low)
    # Face-connected components never span two slabs ...
    components, n = scipy.ndimage.label(mask)
    slab_of = np.argwhere(mask)[:, 2] // pitch
    for c in range(1, n + 1):
        assert len(np.unique(slab_of[components[mask.astype(bool)] == c])) == 1
    # ... and ReNA keeps them apart even when every delay carries the same signal, the strongest pull to merge.
    same = np.repeat(data[:, :, :1], 3, axis=2)
    masked = place.array(same)[mask.astype(bool)].T
    with np.errstate(divide="ignore"):  # a slab merged into one cluster has no edges left
        labels = ReNA(mask_img, n_clusters=2, n_iter=20, scaling=True).fit(masked).labels_
    assert len(np.unique(labels)) >= 3
    for label in np.unique(labels):
        assert len(np.unique(slab_of[labels == label])) == 1


def test_frem_predicts_with_the_cluster_model_it_fitted():
    """By hand, one inner fold: ReNA's size-scaled clusters, then RidgeCV; FReM's prediction must equal it.

    nilearn's own FReM (unscaled ReNA) predicts with cluster coefficients copied to every voxel of the cluster:
    its predictions are inflated about 1 / clustering fraction. If this canary starts failing, nilearn changed
    how it maps coefficients back and ``_scaled_rena`` must be revisited.
    """
    from sklearn.model_selection import PredefinedSplit

    rng = np.random.default_rng(7)
    coords = ball(2.4)
    images, target = planted(rng, coords)
    mask_img, place = delayed_volume(coords, SHAPE, AFFINE, 1)
    train, test = np.arange(180), np.arange(180, 240)
    inner = np.where(np.arange(180) >= 144, 0, -1)  # one inner fold: the last 36 training samples
    fits = {}
    for scaled in (True, False):
        model = FREMRegressor("ridge", mask=mask_img, cv=PredefinedSplit(inner), clustering_percentile=30,
                              screening_percentile=100, standardize=False)
        with _quiet():
            if scaled:
                with _scaled_rena():
                    model.fit(place(images[train]), target[train])
            else:
                model.fit(place(images[train]), target[train])
            fits[scaled] = model.predict(place(images[test]))
    x = images[:, :, 0].astype(np.float64)
    rena = ReNA(mask_img, n_clusters=int(len(coords) * 0.3), n_iter=20, threshold=1e-7, scaling=True)
    rena.fit(x[:144])
    ridge = RidgeCV(alphas=np.geomspace(1e-3, 1e4, 8)).fit(rena.transform(x[:144]), target[:144])
    by_hand = ridge.predict(rena.transform(x[test]))
    np.testing.assert_allclose(fits[True], by_hand, rtol=1e-6, atol=1e-8)
    inflation = np.std(fits[False]) / np.std(by_hand)
    assert 2 < inflation < 5  # about 1 / 0.3


def test_shift_null_by_hand():
    y = np.arange(24.0)
    p = np.arange(24.0) ** 2
    runs = np.repeat([1, 2], [10, 14])
    null = shift_null(y, p, runs, n_shifts=3, score=lambda a, b: float(a @ b), min_shift=10)
    # low = min(10, n // 4): 2 for run 1 (10), 3 for run 2 (14); fractions 0, 0.5, 1.
    expected = []
    for s1, s2 in ((2, 3), (5, 7), (8, 11)):
        q = np.concatenate([np.roll(p[:10], s1), np.roll(p[10:], s2)])
        expected.append(float(y @ q))
    np.testing.assert_array_equal(null, expected)


def test_e_region_masks_by_hand_and_unknown_names():
    numbers = np.array([0, 1, 2, 1, 0, 2, 2])
    masks = region_masks(numbers, ["Angular_L", "Temporal_Sup_L"])
    np.testing.assert_array_equal(masks["Angular_L"], [0, 1, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(masks["Temporal_Sup_L"], [0, 0, 1, 0, 0, 1, 1])
    assert list(region_masks(numbers, ["Angular_L", "Temporal_Sup_L"], wanted=["Temporal_Sup_L"])) == \
        ["Temporal_Sup_L"]
    with pytest.raises(ConfigError, match=r"Frontal_Inf_Tri_L.*Angular_L.*Temporal_Sup_L"):
        region_masks(numbers, ["Angular_L", "Temporal_Sup_L"], wanted=["Frontal_Inf_Tri_L"])
    with pytest.raises(InputError, match="colToROInum.*0 \\(none\\) to 1.*at voxel 3"):
        region_masks(numbers, ["Angular_L"])


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_e_region_masks_from_a_release_file(tmp_path, version):
    coords = np.array([[1, 2, 3], [2, 2, 3], [3, 3, 3], [0, 0, 0]])
    recording = Recording(subject="1", modality="fmri", responses=np.zeros((20, 4), dtype=np.float32),
                          times=np.arange(20) * 2.0, runs=np.repeat([1, 2], 10),
                          words=pd.DataFrame({"word": ["a", "+"], "onset": [0.0, 0.5], "duration": [0.5, 0.5]}),
                          coords=coords, affine=AFFINE, volume_shape=(5, 5, 5))
    path = tmp_path / "subject_1.mat"
    write_hp_fmri(recording, path, region_of_voxel=np.array([2, 2, 1, 0]), region_names=["Angular_L", "Angular_R"],
                  version=version)
    numbers, names = recording_atlas(read_hp_fmri(path).extra["meta"], source=str(path))
    assert names == ["Angular_L", "Angular_R"]
    masks = region_masks(numbers, names, source=str(path))
    np.testing.assert_array_equal(masks["Angular_R"], [1, 1, 0, 0])
    np.testing.assert_array_equal(masks["Angular_L"], [0, 0, 1, 0])


def test_isolated_voxels_by_hand():
    coords = np.array([[1, 1, 1], [1, 1, 2], [3, 3, 3], [2, 2, 2], [5, 5, 5], [5, 6, 5]])
    # (2, 2, 2) touches (1, 1, 1) only at a corner, (3, 3, 3) only at an edge: neither is a face neighbour.
    np.testing.assert_array_equal(isolated_voxels(coords), [0, 0, 1, 1, 0, 0])


def test_isolated_voxels_are_left_out_of_clustering():
    # Why: nilearn's ReNA wires the graph wrongly past an isolated voxel. Here the lone voxel (0, 0, 0) comes first
    # in the mask's order and a 2 x 2 x 2 cube follows; a spatial clustering can never join the two, nilearn's does.
    # (If this canary fails, nilearn has fixed it and the workaround can go.)
    lone = np.zeros((5, 5, 5), dtype=np.uint8)
    lone[0, 0, 0] = 1
    lone[3:5, 3:5, 3:5] = 1
    x = np.random.default_rng(9).standard_normal((10, 9))
    with np.errstate(divide="ignore"):
        labels = ReNA(nib.Nifti1Image(lone, np.eye(4)), n_clusters=3).fit(x).labels_
    assert labels[0] in labels[1:]

    rng = np.random.default_rng(8)
    coords = np.vstack([ball(2.4), [[0, 0, 0], [9, 9, 9]]])
    images, target = planted(rng, coords)
    result = decode_feature(images, target, RUNS, coords, SHAPE, AFFINE)
    assert result.n_isolated == 2 and result.n_voxels == len(coords) - 2
    assert result.score > 0.3


def test_settings_and_inputs_are_checked():
    with pytest.raises(ConfigError, match="estimator.*ridge.*found 'lasso'"):
        FremSettings(estimator="lasso")
    with pytest.raises(ConfigError, match="cv"):
        FremSettings(cv=1)
    with pytest.raises(ConfigError, match="clustering_percentile"):
        FremSettings(clustering_percentile=0)
    with pytest.raises(ConfigError, match="binary"):
        FremSettings(binary="yes")
    coords = ball(2.4)
    images = np.zeros((240, len(coords), 1), dtype=np.float32)
    target = np.zeros(240)
    target[5] = np.nan
    with pytest.raises(InputError, match="target: expected finite values"):
        decode_feature(images, target, RUNS, coords, SHAPE, AFFINE)
    with pytest.raises(InputError, match="runs: expected one run per sample"):
        decode_feature(images, np.zeros(240), RUNS[:10], coords, SHAPE, AFFINE)
    with pytest.raises(InputError, match="target: expected values 0 and 1"):
        decode_feature(images, np.arange(240.0), RUNS, coords, SHAPE, AFFINE, FremSettings(binary=True))
