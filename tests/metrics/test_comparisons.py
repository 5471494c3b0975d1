"""Comparing two models: comparison curves, per-voxel t-tests with BH FDR, the participant test, figures."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from brainalign.errors import ConfigError, InputError
from brainalign.report.figures import comparison_curve_figure, voxel_map_figure
from brainalign.metrics.comparisons import (benjamini_hochberg, combined_predictable, comparison_curves,
                                            participant_test, predictable_voxels, run_correlation, voxel_ttest)
from brainalign.metrics.kvsk import draw_kvsk, kvsk_accuracy, kvsk_shift_null


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

def test_voxel_ttest_tests_only_the_given_voxels():
    """Untested voxels are no hypotheses: NaN p and t, never significant, and BH counts only the others."""
    rng = np.random.default_rng(3)
    a = rng.normal(0.6, 0.01, (4, 30))
    b = a + rng.normal(0.0, 0.01, (4, 30))
    b[:, :6] += 0.05  # six voxels clearly better in B
    tested = np.zeros(30, dtype=bool)
    tested[:12] = True
    result = voxel_ttest(a, b, q=0.05, tested=tested)
    assert result.loc[~tested, ["t", "p"]].isna().all().all()
    assert not result.loc[~tested, "significant"].any()
    reference = stats.ttest_rel(b[:, :12], a[:, :12], axis=0)
    np.testing.assert_allclose(result.loc[tested, "p"], reference.pvalue)
    np.testing.assert_array_equal(result.loc[tested, "significant"],
                                  stats.false_discovery_control(reference.pvalue) <= 0.05)
    with pytest.raises(InputError, match="tested"):
        voxel_ttest(a, b, tested=np.ones(29, dtype=bool))


def test_voxel_ttest_fixed_data_makes_unpredicted_voxels_significant():
    """Why a map needs a screen: with the held-out data fixed, two models that predict a noise voxel
    differently differ reproducibly across seeds, and the t-test finds them; the predictability screen
    removes them (noise voxels: responses and predictions unrelated)."""
    rng = np.random.default_rng(4)
    n, n_voxels, signal = 120, 400, 40
    y = rng.standard_normal((n, n_voxels))
    base = rng.standard_normal((n, n_voxels))            # what A predicts on noise voxels
    changed = base + 0.6 * rng.standard_normal((n, n_voxels))  # B, fine-tuned: its noise predictions moved
    base[:, :signal] = y[:, :signal] + 2.0 * rng.standard_normal((n, signal))
    changed[:, :signal] = y[:, :signal] + 1.2 * rng.standard_normal((n, signal))  # B better on signal voxels
    targets, distractors = draw_kvsk(n, 20, 300, np.random.default_rng(0))
    a, b = [], []
    for seed in range(4):  # seeds jitter the predictions a little, as initialisations do
        jitter = np.random.default_rng([5, seed])
        a.append(kvsk_accuracy(y, base + 0.1 * jitter.standard_normal(base.shape), targets, distractors))
        b.append(kvsk_accuracy(y, changed + 0.1 * jitter.standard_normal(base.shape), targets, distractors))
    a, b = np.array(a), np.array(b)
    responsive = np.arange(n_voxels) < signal
    plain = voxel_ttest(a, b, q=0.01)["significant"].to_numpy()
    assert (plain & ~responsive).sum() > (plain & responsive).sum()  # mostly noise voxels
    null = kvsk_shift_null(y, [base, changed], targets, distractors)
    screen = predictable_voxels(((a + b) / 2).mean(0, keepdims=True), [null], q=0.01)["predictable"].to_numpy()
    assert (screen & responsive).sum() >= 35 and (screen & ~responsive).sum() <= 2
    mapped = voxel_ttest(a, b, q=0.01, tested=screen)["significant"].to_numpy()
    assert mapped.sum() >= 20 and (mapped & ~responsive).sum() <= 0.05 * mapped.sum()


# --- the predictability screen ------------------------------------------------------------------------

def _ar1(rng: np.random.Generator, shape: tuple[int, int], rho: float) -> np.ndarray:
    x = rng.standard_normal(shape)
    for t in range(1, shape[0]):
        x[t] = rho * x[t - 1] + np.sqrt(1 - rho ** 2) * x[t]
    return x


def test_shift_null_rows_are_shifted_accuracies():
    """Row i: the mean over prediction sets of the accuracy with predictions rolled by min_shift + i."""
    rng = np.random.default_rng(6)
    y, p1, p2 = (rng.standard_normal((30, 5)) for _ in range(3))
    targets, distractors = draw_kvsk(30, 4, 50, np.random.default_rng(1))
    null = kvsk_shift_null(y, [p1, p2], targets, distractors, min_shift=3)
    assert null.shape == (30 - 2 * 3 + 1, 5)
    # by hand for shift 5: p rolled forward 5 examples, example t predicted by p[t - 5]
    rolled = [np.concatenate([p[-5:], p[:-5]]) for p in (p1, p2)]
    expected = (kvsk_accuracy(y, rolled[0], targets, distractors) + kvsk_accuracy(y, rolled[1], targets, distractors)) / 2
    np.testing.assert_array_equal(null[5 - 3], expected)
    with pytest.raises(ConfigError, match="min_shift"):
        kvsk_shift_null(y, [p1], targets, distractors, min_shift=15)
    with pytest.raises(InputError, match="predictions"):
        kvsk_shift_null(y, [], targets, distractors)


def test_shift_null_matches_fresh_unrelated_predictions():
    """The shifted accuracies spread as accuracies of independent unrelated predictions do (a slow
    reference: fresh autocorrelated predictions, no shifting), autocorrelation included."""
    rng = np.random.default_rng(7)
    n, n_voxels = 100, 300
    y, p = _ar1(rng, (n, n_voxels), 0.6), _ar1(rng, (n, n_voxels), 0.6)
    targets, distractors = draw_kvsk(n, 20, 200, np.random.default_rng(2))
    null = kvsk_shift_null(y, [p], targets, distractors)
    fresh = np.array([kvsk_accuracy(y, _ar1(np.random.default_rng([8, i]), (n, n_voxels), 0.6), targets, distractors)
                      for i in range(20)])
    assert abs(null.mean() - fresh.mean()) < 0.01
    assert 0.85 < null.std() / fresh.std() < 1.15


def test_predictable_voxels_calibrated_under_the_null_and_finds_signal():
    """Autocorrelated noise, three runs: p-values uniform where nothing is predicted (5 % below .05);
    planted signal voxels found, with few false discoveries."""
    rng = np.random.default_rng(9)
    n_voxels, signal = 1500, 60
    observed, nulls = [], []
    for run in range(3):
        y, p = _ar1(rng, (90, n_voxels), 0.5), _ar1(rng, (90, n_voxels), 0.5)
        p[:, :signal] = y[:, :signal] + 1.2 * p[:, :signal]
        targets, distractors = draw_kvsk(90, 20, 300, np.random.default_rng([10, run]))
        observed.append(kvsk_accuracy(y, p, targets, distractors))
        nulls.append(kvsk_shift_null(y, [p], targets, distractors))
    result = predictable_voxels(np.array(observed), nulls, q=0.05)
    noise_p = result["p"].to_numpy()[signal:]
    assert 0.03 < (noise_p < 0.05).mean() < 0.07
    found = result["predictable"].to_numpy()
    assert found[:signal].mean() > 0.8
    assert found[signal:].sum() <= 0.1 * found.sum()
    with pytest.raises(InputError, match="one null per held-out run"):
        predictable_voxels(np.array(observed), nulls[:2])


@pytest.mark.parametrize("seed", [0, 1])
def test_predictable_voxels_calibrated_on_cross_validated_predictions(seed):
    """Each run predicted by a least-squares head fitted on the other runs, as the models are: a noise
    voxel's chance deviations then correlate between runs (the truth: their correlation over the noise
    voxels). The test estimates that correlation and stays calibrated (5 % of noise p-values below .05),
    where treating the runs as independent puts twice that below .05."""
    rng = np.random.default_rng(seed)
    n_runs, n, n_features, n_voxels, signal = 4, 80, 10, 1500, 60
    features = [_ar1(rng, (n, n_features), 0.7) for _ in range(n_runs)]
    weights = rng.standard_normal((n_features, signal)) / np.sqrt(n_features)
    responses = []
    for x in features:
        y = _ar1(rng, (n, n_voxels), 0.5)
        y[:, :signal] += 0.8 * x @ weights
        responses.append(y)
    observed, nulls = [], []
    for run in range(n_runs):
        others = [r for r in range(n_runs) if r != run]
        head = np.linalg.lstsq(np.concatenate([features[r] for r in others]),
                               np.concatenate([responses[r] for r in others]), rcond=None)[0]
        prediction = features[run] @ head
        targets, distractors = draw_kvsk(n, 20, 300, np.random.default_rng([seed, run]))
        observed.append(kvsk_accuracy(responses[run], prediction, targets, distractors))
        nulls.append(kvsk_shift_null(responses[run], [prediction], targets, distractors, n_shifts=10))
    observed = np.array(observed)
    deviations = observed - np.array([null.mean() for null in nulls])[:, None]
    variances = np.array([null.var(ddof=1) for null in nulls])
    truth = np.corrcoef(deviations[:, signal:])[np.triu_indices(n_runs, 1)].mean()
    rho = run_correlation(deviations, variances)
    assert truth > 0.15 and abs(rho - truth) < 0.05, (rho, truth)
    result = predictable_voxels(observed, nulls, q=0.05)
    noise_p = result["p"].to_numpy()[signal:]
    assert 0.03 < (noise_p < 0.05).mean() < 0.07
    independent = stats.norm.sf(deviations.sum(axis=0) / np.sqrt(variances.sum()))[signal:]
    assert (independent < 0.05).mean() > 0.08
    found = result["predictable"].to_numpy()
    assert found[:signal].mean() > 0.6 and found[signal:].sum() <= 0.1 * found.sum()


def test_run_correlation_by_hand_and_degenerate():
    """Equal variances 1: var(d_1 - d_2) = 2 (1 - rho). One run or one voxel: 0; never below 0."""
    rng = np.random.default_rng(11)
    shared = rng.standard_normal(20000)
    deviations = np.array([np.sqrt(0.3) * shared + np.sqrt(0.7) * rng.standard_normal(20000) for _ in range(3)])
    assert run_correlation(deviations, np.ones(3)) == pytest.approx(0.3, abs=0.02)
    assert run_correlation(deviations[:1], np.ones(1)) == 0.0
    assert run_correlation(deviations[:, :1], np.ones(3)) == 0.0
    opposite = np.array([shared, -shared])
    assert run_correlation(opposite, np.ones(2)) == 0.0


def test_combined_predictable_is_stouffer_with_bh():
    """Participants' z summed over sqrt(n): one-sided p, BH; calibrated when each participant's z is
    standard normal, and it finds voxels no single participant shows."""
    z = np.array([[2.0, 1.0, -1.0, 0.0], [2.0, 2.0, 1.0, 0.0]])
    result = combined_predictable(z, q=0.05)
    np.testing.assert_allclose(result["z"], z.sum(axis=0) / np.sqrt(2))
    np.testing.assert_allclose(result["p"], stats.norm.sf(z.sum(axis=0) / np.sqrt(2)))
    np.testing.assert_array_equal(result["predictable"], benjamini_hochberg(result["p"].to_numpy(), 0.05))
    rng = np.random.default_rng(12)
    null = combined_predictable(rng.standard_normal((3, 20000)), q=0.05)
    assert 0.045 < (null["p"] < 0.05).mean() < 0.055 and null["predictable"].sum() <= 5
    weak = rng.standard_normal((4, 2000))
    weak[:, :100] += 2.0  # z of 2 in every participant: rarely one participant's discovery at q = .05
    alone = max(benjamini_hochberg(stats.norm.sf(z_s), 0.05)[:100].mean() for z_s in weak)
    together = combined_predictable(weak, q=0.05)["predictable"].to_numpy()
    assert together[:100].mean() > 0.7 and alone < 0.3, (together[:100].mean(), alone)
    assert together[100:].sum() <= 0.1 * together.sum()
    with pytest.raises(InputError):
        combined_predictable(np.zeros(3))
    with pytest.raises(InputError):
        combined_predictable(np.array([[np.nan, 1.0]]))


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
