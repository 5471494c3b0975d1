"""Comparing two models: comparison curves, per-voxel t-tests with BH FDR, the participant test, figures."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from brainalign.errors import ConfigError, InputError
from brainalign.figures import comparison_curve_figure, voxel_map_figure
from brainalign.scoring.comparisons import benjamini_hochberg, comparison_curves, participant_test, voxel_ttest


# --- comparison curves -------------------------------------------------------------------------------

def test_comparison_curves_by_hand():
    a = np.array([[0.60, 0.90, 0.50, 0.70],
                  [0.80, 0.50, 0.55, 0.60]])
    b = np.array([[0.80, 0.70, 0.50, 0.75],
                  [0.60, 0.70, 0.50, 0.65]])
    # seed 0: max = [.80, .90, .50, .75] -> order 1, 0, 3, 2; b - a = -.20, +.20, +.05, 0
    # seed 1: max = [.80, .70, .55, .65] -> order 0, 1, 3, 2; b - a = -.20, +.20, +.05, -.05
    expected = np.array([[-0.20, 0.00 / 2, 0.05 / 3, 0.05 / 4],
                         [-0.20, 0.00 / 2, 0.05 / 3, 0.00 / 4]])
    np.testing.assert_allclose(comparison_curves(a, b), expected, atol=1e-12)


def test_comparison_curves_sign_and_last_point():
    rng = np.random.default_rng(3)
    a = rng.uniform(0.4, 0.8, (3, 50))
    b = a + 0.01
    curves = comparison_curves(a, b)
    np.testing.assert_allclose(curves, 0.01)  # B better everywhere: positive
    np.testing.assert_allclose(comparison_curves(b, a), -0.01)
    c = rng.uniform(0.4, 0.8, (3, 50))
    np.testing.assert_allclose(comparison_curves(a, c)[:, -1], (c - a).mean(axis=1))


@pytest.mark.parametrize("a, b", [
    (np.zeros(5), np.zeros(5)),                        # 1-D
    (np.zeros((2, 5)), np.zeros((3, 5))),               # shapes differ
    (np.full((2, 5), np.nan), np.zeros((2, 5))),         # NaN
])
def test_comparison_curves_rejects_bad_input(a, b):
    with pytest.raises(InputError):
        comparison_curves(a, b)


# --- Benjamini-Hochberg ------------------------------------------------------------------------------

def test_benjamini_hochberg_by_hand():
    # m = 5, q = 0.05: thresholds k q / m = .01 .02 .03 .04 .05
    # sorted p: .005 (<= .01), .025 (> .02), .03 (<= .03), .041 (> .04), .9 -> largest k with p_(k) <= kq/m is 3
    p = np.array([0.9, 0.03, 0.005, 0.041, 0.025])
    np.testing.assert_array_equal(benjamini_hochberg(p, 0.05), [False, True, True, False, True])
    np.testing.assert_array_equal(benjamini_hochberg(p, 0.001), [False] * 5)
    np.testing.assert_array_equal(benjamini_hochberg(p, 1.0), [True] * 5)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("q", [0.01, 0.05, 0.2])
def test_benjamini_hochberg_matches_scipy(seed, q):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(size=900), rng.uniform(0, 1e-3, size=100)])
    rng.shuffle(p)
    np.testing.assert_array_equal(benjamini_hochberg(p, q), stats.false_discovery_control(p) <= q)


def test_benjamini_hochberg_nan_never_significant_and_not_counted():
    p = np.array([0.001, np.nan, 0.02, np.nan])
    # m = 2 tested: thresholds .025 and .05 -> both rejected; the NaNs never are
    np.testing.assert_array_equal(benjamini_hochberg(p, 0.05), [True, False, True, False])
    np.testing.assert_array_equal(benjamini_hochberg(np.full(3, np.nan), 0.05), [False] * 3)
    grid = np.array([[0.001, np.nan], [0.5, 0.002]])
    assert benjamini_hochberg(grid, 0.05).shape == (2, 2)


def test_benjamini_hochberg_rejects_bad_input():
    with pytest.raises(ConfigError):
        benjamini_hochberg([0.1], 0.0)
    with pytest.raises(ConfigError):
        benjamini_hochberg([0.1], 1.5)
    with pytest.raises(InputError):
        benjamini_hochberg([0.1, 1.2], 0.05)


# --- per-voxel t-test --------------------------------------------------------------------------------

def test_voxel_ttest_matches_scipy():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.45, 0.75, (6, 40))
    b = a + rng.normal(0.02, 0.03, (6, 40))
    table = voxel_ttest(a, b, q=0.05)
    direct = stats.ttest_rel(b, a, axis=0)
    assert list(table.columns) == ["voxel", "difference", "t", "p", "significant"]
    np.testing.assert_array_equal(table["voxel"], np.arange(40))
    np.testing.assert_allclose(table["difference"], (b - a).mean(axis=0))
    np.testing.assert_allclose(table["t"], direct.statistic)
    np.testing.assert_allclose(table["p"], direct.pvalue)
    np.testing.assert_array_equal(table["significant"], stats.false_discovery_control(direct.pvalue) <= 0.05)


def test_voxel_ttest_zero_variance_gets_p_one():
    rng = np.random.default_rng(1)
    a = rng.uniform(0.45, 0.75, (4, 3))
    b = a + rng.normal(0.0, 0.03, (4, 3))
    b[:, 0] = a[:, 0]            # identical models on voxel 0
    b[:, 1] = a[:, 1] + 0.25     # a constant shift on voxel 1: still no variance to test against
    table = voxel_ttest(a, b)
    assert np.isnan(table["t"][:2]).all() and (table["p"][:2] == 1.0).all()
    assert not table["significant"][:2].any()
    assert np.isfinite(table["t"][2])


def test_voxel_ttest_needs_two_seeds():
    with pytest.raises(InputError, match="at least 2 seeds"):
        voxel_ttest(np.zeros((1, 5)), np.ones((1, 5)))


def _simulated_seeds(rng: np.random.Generator, effect: np.ndarray, n_seeds: int = 10, noise: float = 0.02):
    """Accuracies of two models over seeds: same per-voxel base, B shifted by ``effect``, independent seed noise."""
    base = rng.uniform(0.5, 0.7, effect.size)
    a = base + rng.normal(0.0, noise, (n_seeds, effect.size))
    b = base + effect + rng.normal(0.0, noise, (n_seeds, effect.size))
    return a, b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_voxel_ttest_recovers_known_improvement(seed):
    rng = np.random.default_rng(seed)
    truth = np.zeros(2000, dtype=bool)
    truth[rng.choice(2000, 200, replace=False)] = True
    a, b = _simulated_seeds(rng, 0.05 * truth)
    found = voxel_ttest(a, b, q=0.01)["significant"].to_numpy()
    false_discoveries = np.sum(found & ~truth)
    assert false_discoveries / max(found.sum(), 1) <= 0.05
    # 10 seeds, noise sd 0.02 on each model: t is about 5.6 on true voxels, so BH at q = .01 finds about
    # two thirds of them (131 to 149 of 200 over seeds 0 to 11)
    assert np.sum(found & truth) > 0.5 * truth.sum()


@pytest.mark.parametrize("seed", [10, 11, 12, 13])
def test_voxel_ttest_null_declares_few(seed):
    rng = np.random.default_rng(seed)
    a, b = _simulated_seeds(rng, np.zeros(2000))
    assert voxel_ttest(a, b, q=0.01)["significant"].mean() <= 0.02


# --- across participants -----------------------------------------------------------------------------

def test_participant_test_by_hand():
    differences = {"1": 0.01, "2": 0.03, "3": 0.02, "4": 0.04}
    result = participant_test(differences)
    values = np.array([0.01, 0.03, 0.02, 0.04])
    mean = 0.025
    sd = np.sqrt(((values - mean) ** 2).sum() / 3)
    t = mean / (sd / 2)
    assert result["n"] == 4
    assert result["mean"] == pytest.approx(mean)
    assert result["sd"] == pytest.approx(sd)
    assert result["t"] == pytest.approx(t)
    assert result["p"] == pytest.approx(2 * stats.t.sf(t, df=3))
    # all four differences positive: exact two-sided signed-rank p = 2 / 2**4
    assert result["wilcoxon_p"] == pytest.approx(2 / 16)


def test_participant_test_equals_related_samples_test_of_means():
    rng = np.random.default_rng(5)
    mean_a, mean_b = rng.uniform(0.5, 0.6, 8), rng.uniform(0.5, 0.6, 8)
    result = participant_test({str(i): b - a for i, (a, b) in enumerate(zip(mean_a, mean_b))})
    direct = stats.ttest_rel(mean_b, mean_a)
    assert result["t"] == pytest.approx(direct.statistic)
    assert result["p"] == pytest.approx(direct.pvalue)


def test_participant_test_small_and_degenerate():
    single = participant_test({"1": 0.02})
    assert single == {"n": 1, "mean": 0.02, "sd": None, "t": None, "p": None, "wilcoxon_p": None}
    same = participant_test({"1": 0.02, "2": 0.02})
    assert same["sd"] == 0.0 and same["t"] is None and same["p"] is None and same["wilcoxon_p"] == 0.5
    assert participant_test({"1": 0.0, "2": 0.0})["wilcoxon_p"] == 1.0
    with pytest.raises(InputError):
        participant_test({})
    with pytest.raises(InputError):
        participant_test({"1": float("nan"), "2": 0.1})


# --- figures ----------------------------------------------------------------------------------------

def _drawn(path) -> int:
    pixels = matplotlib.image.imread(path)
    return len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0))


def test_comparison_curve_figure(tmp_path):
    rng = np.random.default_rng(0)
    curves = {}
    for subject, n_voxels in (("1", 300), ("2", 250)):
        a = rng.uniform(0.4, 0.8, (4, n_voxels))
        curves[subject] = comparison_curves(a, a + rng.normal(0.01, 0.02, a.shape))
    table = comparison_curve_figure(curves, tmp_path / "curves.png", "fine-tuned vs vanilla", "vanilla", "fine-tuned")
    assert (tmp_path / "curves.png").exists() and _drawn(tmp_path / "curves.png") > 50
    saved = pd.read_csv(tmp_path / "curves.csv", dtype={"subject": str})
    pd.testing.assert_frame_equal(saved, table.astype({"subject": str}), check_dtype=False)
    for subject, curve in curves.items():
        rows = saved[saved["subject"] == subject]
        np.testing.assert_array_equal(rows["n_voxels"], np.arange(1, curve.shape[1] + 1))
        np.testing.assert_allclose(rows["mean"], curve.mean(axis=0))
        np.testing.assert_allclose(rows["sd"], curve.std(axis=0, ddof=1))
    grand = saved[saved["subject"] == "mean"]
    assert len(grand) == 250
    np.testing.assert_allclose(grand["mean"], (curves["1"].mean(0)[:250] + curves["2"].mean(0)) / 2)


def test_comparison_curve_figure_rejects_bad_input(tmp_path):
    with pytest.raises(InputError):
        comparison_curve_figure({}, tmp_path / "x.png", "t", "a", "b")
    with pytest.raises(InputError):
        comparison_curve_figure({"1": np.zeros(5)}, tmp_path / "x.png", "t", "a", "b")


@pytest.fixture(scope="module")
def brain():
    """Voxels of nilearn's 4 mm MNI brain mask (ships with nilearn), a left temporal 'language region'."""
    from nilearn.datasets import load_mni152_brain_mask

    mask = load_mni152_brain_mask(resolution=4)
    coords = np.argwhere(np.asarray(mask.get_fdata()) > 0)
    mni = coords @ mask.affine[:3, :3].T + mask.affine[:3, 3]
    region = np.linalg.norm(mni - np.array([-52.0, -40.0, 8.0]), axis=1) <= 14
    return coords, np.asarray(mask.affine), tuple(mask.shape), region


def test_voxel_map_figure(tmp_path, brain):
    coords, affine, shape, region = brain
    rng = np.random.default_rng(0)
    difference = rng.normal(0.0, 0.01, len(coords)) + 0.04 * region
    significant = region | (rng.uniform(size=len(coords)) < 0.01)
    table = voxel_map_figure(difference, significant, coords, affine, shape, tmp_path / "map.png",
                             "fine-tuned vs vanilla, participant 1", regions=region)
    assert _drawn(tmp_path / "map.png") > 200
    saved = pd.read_csv(tmp_path / "map.csv")
    pd.testing.assert_frame_equal(saved, table, check_dtype=False)
    np.testing.assert_array_equal(saved["voxel"], np.arange(len(coords)))
    np.testing.assert_array_equal(saved[["i", "j", "k"]].to_numpy(), coords)
    np.testing.assert_allclose(saved["difference"], difference)
    np.testing.assert_array_equal(saved["significant"], significant)
    np.testing.assert_array_equal(saved["region"], region)


@pytest.mark.filterwarnings("ignore:empty mask")
def test_voxel_map_figure_nothing_significant(tmp_path, brain):
    coords, affine, shape, _ = brain
    difference = np.random.default_rng(1).normal(0.0, 0.01, len(coords))
    table = voxel_map_figure(difference, np.zeros(len(coords), dtype=bool), coords, affine, shape,
                             tmp_path / "empty.png", "no differences")
    assert (tmp_path / "empty.png").exists() and not table["significant"].any() and "region" not in table


def test_voxel_map_figure_rejects_bad_input(tmp_path, brain):
    coords, affine, shape, _ = brain
    n = len(coords)
    with pytest.raises(InputError):
        voxel_map_figure(np.zeros(n), np.zeros(n), coords, affine, shape, tmp_path / "x.png", "t")  # not bool
    with pytest.raises(InputError):
        voxel_map_figure(np.zeros(n), np.zeros(n, bool), coords + np.array(shape), affine, shape,
                         tmp_path / "x.png", "t")
    with pytest.raises(InputError):
        voxel_map_figure(np.zeros(n), np.zeros(n, bool), coords, affine, shape, tmp_path / "x.png", "t",
                         regions=np.zeros(n - 1, bool))
