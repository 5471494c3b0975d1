"""fwRF: the pRF grid, Gaussian pooling, the ridge per candidate against scikit-learn, the choice per voxel against
a brute-force loop, and planted pRFs recovered from random feature maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from brainalign.errors import ConfigError, InputError
from brainalign.vision.fwrf import FwRF, pool, prf_grid


def slow_gaussian(x: float, y: float, sigma: float, height: int, width: int) -> np.ndarray:
    """The convention, cell by cell: centres ((j + 0.5) / w, (i + 0.5) / h), distances in image widths."""
    out = np.zeros((height, width))
    for i in range(height):
        for j in range(width):
            dx = (j + 0.5) / width - x
            dy = ((i + 0.5) / height - y) * height / width
            out[i, j] = math.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma))
    return out / out.sum()


def slow_design(maps: dict[str, np.ndarray], prf: np.ndarray, channels: dict[str, np.ndarray]) -> np.ndarray:
    """Design (n_images, features) of one pRF: every layer's kept channels, summed under the Gaussian."""
    columns = []
    for layer, values in maps.items():
        g = slow_gaussian(*prf, *values.shape[2:])
        columns.append(np.einsum("kchw,hw->kc", values[:, channels[layer]].astype(np.float64), g))
    return np.concatenate(columns, axis=1)


def zscore(design: np.ndarray, rows: np.ndarray) -> np.ndarray:
    mean, std = design[rows].mean(0), design[rows].std(0)
    return (design - mean) / np.where(std > 0, std, 1.0)


def random_maps(rng: np.random.Generator, n_images: int, layers: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    """Rectified noise maps, channels of unequal variance (so the top-variance choice is not arbitrary)."""
    return {name: (np.maximum(rng.standard_normal((n_images, c, s, s)), 0)
                   * rng.uniform(0.5, 2.0, (1, c, 1, 1))).astype(np.float32)
            for name, (c, s) in layers.items()}


def planted_responses(rng: np.random.Generator, maps: dict[str, np.ndarray], prfs: np.ndarray,
                      noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Each voxel a random weighting of the channels pooled under its pRF (unit variance), plus noise."""
    signal = np.zeros((len(next(iter(maps.values()))), len(prfs)))
    for v, prf in enumerate(prfs):
        design = slow_design(maps, prf, {k: np.arange(m.shape[1]) for k, m in maps.items()})
        design = (design - design.mean(0)) / design.std(0)
        s = design @ rng.standard_normal(design.shape[1])
        signal[:, v] = (s - s.mean()) / s.std()
    return signal + noise * rng.standard_normal(signal.shape), signal


def test_prf_grid_counts_sizes_and_centres():
    sizes = np.geomspace(0.03, 0.4, 8)
    grid = prf_grid()
    # per side ceil(1 / (0.91 sigma)): 1 / (0.91 * 0.03) = 36.6 -> 37, ..., 1 / (0.91 * 0.4) = 2.75 -> 3
    assert len(grid) == 37**2 + 26**2 + 18**2 + 13**2 + 9**2 + 6**2 + 4**2 + 3**2 == 2680
    assert np.allclose(np.unique(grid[:, 2]), sizes)
    assert np.allclose(np.diff(np.log(np.unique(grid[:, 2]))), np.log(0.4 / 0.03) / 7)
    assert ((grid[:, :2] > 0) & (grid[:, :2] < 1)).all()
    # by hand: sigma 0.25 -> 4 per side at 1/8, 3/8, 5/8, 7/8 (an exact 1 / (1 * 0.25) = 4, not 5); 0.5 -> 2
    small = prf_grid(2, 0.25, 0.5, spacing=1.0)
    assert len(small) == 16 + 4
    assert np.allclose(np.unique(small[:16, 0]), [0.125, 0.375, 0.625, 0.875])
    assert np.allclose(small[16:], [[0.25, 0.25, 0.5], [0.75, 0.25, 0.5], [0.25, 0.75, 0.5], [0.75, 0.75, 0.5]])
    assert len(prf_grid(spacing=0.91 * 2)) < len(grid) / 3
    with pytest.raises(ConfigError):
        prf_grid(min_size=0.5, max_size=0.1)
    with pytest.raises(ConfigError):
        prf_grid(n_sizes=0)


def test_pooling_by_hand_and_against_a_double_loop(rng):
    # a 2 x 4 map (the image twice as wide as tall); pRF on cell (0, 1) with sigma 0.25 image widths. In image
    # widths the cell centres are x 0.125 .. 0.875 and y 0.125, 0.375: squared distances
    # row 0: .0625 0 .0625 .25, row 1: .125 .0625 .125 .3125 -> weights exp(-d2 / 0.125)
    values = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    d2 = np.array([[0.0625, 0.0, 0.0625, 0.25], [0.125, 0.0625, 0.125, 0.3125]])
    weights = np.exp(-d2 / 0.125)
    expected = (weights * values).sum() / weights.sum()
    pooled = pool(values[None, None], np.array([[0.375, 0.25, 0.25]]))
    assert pooled.shape == (1, 1, 1)
    assert pooled[0, 0, 0] == pytest.approx(expected, rel=1e-12)
    # a pRF far smaller than a cell reads its cell; a very wide one averages the map
    tiny_wide = pool(values[None, None], np.array([[0.875, 0.75, 1e-4], [0.5, 0.5, 1e4]]))
    assert tiny_wide[0, 0] == pytest.approx([8.0, values.mean()], rel=1e-8)

    maps = rng.standard_normal((3, 2, 5, 7))
    grid = np.array([[0.1, 0.9, 0.05], [0.5, 0.3, 0.2], [0.8, 0.6, 0.4], [0.0, 0.0, 0.1]])
    slow = np.zeros((3, 2, 4))
    for g, prf in enumerate(grid):
        w = slow_gaussian(*prf, 5, 7)
        for k in range(3):
            for c in range(2):
                slow[k, c, g] = sum(maps[k, c, i, j] * w[i, j] for i in range(5) for j in range(7))
    assert np.allclose(pool(maps, grid), slow, rtol=1e-10, atol=1e-12)


def small_problem(rng: np.random.Generator):
    """50 images (45 shown, some 2-3 times), 2 layers, 6 voxels from planted pRFs of a 19-candidate grid."""
    maps = random_maps(rng, 50, {"early": (5, 6), "late": (3, 3)})
    grid = prf_grid(2, 0.1, 0.3, spacing=1.4)[::4]
    responses, _ = planted_responses(rng, maps, grid[rng.choice(len(grid), 6)], noise=0.8)
    image_index = np.concatenate([np.arange(45), rng.choice(45, 40)])
    rng.shuffle(image_index)
    return maps, grid, responses[image_index], image_index


def test_ridge_path_equals_sklearn_ridge(rng):
    maps, grid, responses, image_index = small_problem(rng)
    alphas = np.array([0.1, 3.0, 100.0])
    model = FwRF(grid=grid, alphas=alphas, holdout=0.2, n_features=8, dtype="float64", progress=False)
    n_rows = len(responses)
    fit, hold = np.arange(n_rows - 17), np.arange(n_rows - 17, n_rows)   # ceil(0.2 * 85) = 17
    for candidate in (0, 7, 18):
        weights, losses = model.ridge_path(maps, responses, candidate, image_index)
        design = slow_design(maps, grid[candidate], {"early": np.arange(5), "late": np.arange(3)})[image_index]
        z = zscore(design, fit)
        for i, alpha in enumerate(alphas):
            reference = Ridge(alpha=alpha, fit_intercept=True).fit(z[fit], responses[fit])
            assert np.allclose(weights[i], reference.coef_.T, rtol=1e-5, atol=1e-8)
            loss = ((responses[hold] - reference.predict(z[hold])) ** 2).mean(0)
            assert np.allclose(losses[i], loss, rtol=1e-5)


def test_choice_per_voxel_equals_brute_force_sklearn_loop(rng):
    maps, grid, responses, image_index = small_problem(rng)
    alphas = np.array([0.3, 10.0, 300.0])
    model = FwRF(grid=grid, alphas=alphas, holdout=0.2, n_features=2, candidate_batch=6, dtype="float64",
                 progress=False).fit(maps, responses, image_index)
    # channels: the 2 of largest variance over the shown images and the cells, per layer
    shown = np.unique(image_index)
    channels = {k: np.sort(np.argsort(-m[shown].astype(np.float64).var(axis=(0, 2, 3)))[:2]) for k, m in maps.items()}
    assert {k: v.tolist() for k, v in model.channels_.items()} == {k: v.tolist() for k, v in channels.items()}

    n_rows = len(responses)
    fit, hold = np.arange(n_rows - 17), np.arange(n_rows - 17, n_rows)
    best = np.full(responses.shape[1], np.inf)
    choice = np.zeros((responses.shape[1], 2), dtype=int)
    r_hold = np.zeros(responses.shape[1])
    for candidate, prf in enumerate(grid):
        z = zscore(slow_design(maps, prf, channels)[image_index], fit)
        for i, alpha in enumerate(alphas):
            predictions = Ridge(alpha=alpha).fit(z[fit], responses[fit]).predict(z[hold])
            loss = ((responses[hold] - predictions) ** 2).mean(0)
            better = loss < best
            best[better], choice[better] = loss[better], (candidate, i)
            r_hold[better] = [np.corrcoef(responses[hold, v], predictions[:, v])[0, 1] for v in np.flatnonzero(better)]
    assert np.array_equal(model.candidate_, choice[:, 0])
    assert np.array_equal(model.alpha_, alphas[choice[:, 1]])
    assert np.array_equal(model.prf_, grid[choice[:, 0]])
    assert np.allclose(model.holdout_loss_, best, rtol=1e-8)
    assert np.allclose(model.holdout_r_, r_hold, atol=1e-8)
    # the refit: the chosen pRF and penalty on every training row, features z-scored over all of them
    rows = np.arange(n_rows)
    for v in range(responses.shape[1]):
        z = zscore(slow_design(maps, grid[choice[v, 0]], channels)[image_index], rows)
        reference = Ridge(alpha=alphas[choice[v, 1]]).fit(z, responses[:, v])
        assert np.allclose(model.coef_[v], reference.coef_, rtol=1e-4, atol=1e-6)
        new = slow_design(maps, grid[choice[v, 0]], channels)
        mean, std = new[image_index].mean(0), new[image_index].std(0)
        expected = reference.predict((new - mean) / std)
        assert np.allclose(model.predict(maps)[:, v], expected, rtol=1e-4, atol=1e-5)
    # without the refit (the seed's way): the model that won on the holdout, fitted without it
    seed_way = FwRF(grid=grid, alphas=alphas, holdout=0.2, n_features=2, refit=False, candidate_batch=6,
                    dtype="float64", progress=False).fit(maps, responses, image_index)
    assert np.array_equal(seed_way.candidate_, model.candidate_) and np.array_equal(seed_way.alpha_, model.alpha_)
    for v in range(responses.shape[1]):
        new = slow_design(maps, grid[choice[v, 0]], channels)
        mean, std = new[image_index][fit].mean(0), new[image_index][fit].std(0)
        reference = Ridge(alpha=alphas[choice[v, 1]]).fit(((new - mean) / std)[image_index][fit], responses[fit, v])
        assert np.allclose(seed_way.coef_[v], reference.coef_, rtol=1e-4, atol=1e-6)
        assert np.allclose(seed_way.predict(maps)[:, v], reference.predict((new - mean) / std), rtol=1e-4,
                           atol=1e-5)


def test_planted_prfs_are_recovered_and_predict_new_images(rng):
    n_train, n_test = 400, 100
    maps = random_maps(rng, n_train + n_test, {"fine": (16, 12), "coarse": (16, 6)})
    sizes = np.repeat([0.05, 0.1, 0.2], 10)
    truth = np.column_stack([rng.uniform(0.2, 0.8, 30), rng.uniform(0.2, 0.8, 30), sizes])
    responses, signal = planted_responses(rng, maps, truth, noise=0.5)
    train = {k: m[:n_train] for k, m in maps.items()}
    test = {k: m[n_train:] for k, m in maps.items()}
    model = FwRF(grid=prf_grid(6, 0.04, 0.3, spacing=1.0), alphas=np.logspace(-1, 3, 5), progress=False)
    model.fit(train, responses[:n_train])

    assert np.corrcoef(model.prf_[:, 0], truth[:, 0])[0, 1] > 0.8
    assert np.corrcoef(model.prf_[:, 1], truth[:, 1])[0, 1] > 0.8
    by_size = [np.median(model.prf_[sizes == s, 2]) for s in (0.05, 0.1, 0.2)]
    assert by_size[0] < by_size[1] < by_size[2]
    # held out: images the model never saw, scored against their noisy responses (ceiling about 0.89 here)
    r = model.score(test, responses[n_train:])
    assert np.median(r) > 0.7
    assert np.median(model.holdout_r_) > 0.6


def test_same_inputs_give_bitwise_same_model(rng):
    maps, grid, responses, image_index = small_problem(rng)
    fits = [FwRF(grid=grid, alphas=[1.0, 10.0], progress=False).fit(maps, responses, image_index) for _ in range(2)]
    for name in ("candidate_", "alpha_", "holdout_loss_", "coef_", "feature_mean_", "feature_scale_"):
        assert np.array_equal(getattr(fits[0], name), getattr(fits[1], name))
    assert np.array_equal(fits[0].predict(maps), fits[1].predict(maps))


def test_a_constant_channel_changes_nothing(rng):
    # a channel constant up to float32 rounding (a few images 1-2 ulp off, as a GEMM may leave them) has a
    # spread of ~1e-7 of its value: z-scored it would be a +-1 noise feature that the ridge can fit
    maps, grid, responses, image_index = small_problem(rng)
    constant = np.full((50, 1, 3, 3), 3.3, np.float32)
    constant[rng.choice(50, 20, replace=False)] *= np.float32(1 + 3e-7)
    padded = dict(maps, late=np.concatenate([maps["late"], constant], axis=1))
    plain = FwRF(grid=grid, alphas=[0.01, 1.0], progress=False).fit(maps, responses, image_index)
    extra = FwRF(grid=grid, alphas=[0.01, 1.0], progress=False).fit(padded, responses, image_index)
    assert np.array_equal(plain.candidate_, extra.candidate_) and np.array_equal(plain.alpha_, extra.alpha_)
    assert np.allclose(plain.predict(maps), extra.predict(padded), atol=1e-4)


def test_bad_inputs_fail_with_one_message(rng):
    maps, grid, responses, image_index = small_problem(rng)
    model = FwRF(grid=grid, alphas=[1.0], progress=False)
    mismatched = {"early": maps["early"], "late": maps["late"][:-1]}
    with pytest.raises(InputError, match="same number of images"):
        model.fit(mismatched, responses, image_index)
    bad = responses.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="responses: expected finite values"):
        model.fit(maps, bad, image_index)
    out_of_range = image_index.copy()
    out_of_range[0] = 50
    with pytest.raises(InputError, match="image_index: expected rows of the maps, 0 to 49"):
        model.fit(maps, responses, out_of_range)
    with pytest.raises(InputError, match="image_index"):
        model.fit(maps, responses, image_index[:-1])
    nan_maps = {"early": maps["early"].copy(), "late": maps["late"]}
    nan_maps["early"][1, 0, 0, 0] = np.inf
    with pytest.raises(InputError, match=r"maps\['early'\]: expected finite values"):
        model.fit(nan_maps, responses, image_index)
    fitted = model.fit(maps, responses, image_index)
    with pytest.raises(InputError, match="as at fit"):
        fitted.predict({"early": maps["early"][:, :4], "late": maps["late"]})
    with pytest.raises(ConfigError, match="alphas"):
        FwRF(grid=grid, alphas=[0.0, 1.0]).fit(maps, responses, image_index)
    with pytest.raises(ConfigError, match="dtype"):
        FwRF(grid=grid, dtype="float16").fit(maps, responses, image_index)
