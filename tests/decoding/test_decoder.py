"""Tests of the brain -> model decoder (``brainalign.decoding.decoder``) against independent truths: hand-worked
ranks, plain Python loops, the straightforward scikit-learn pipeline, planted signals and planted leaks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from experiments import shared_data
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold
from threadpoolctl import threadpool_limits

from brainalign.decoding.decoder import (ALPHAS, chance_mar, decode, outer_folds, pairwise_accuracy,
                                         rank_scores)
from brainalign.errors import ConfigError, InputError


@pytest.fixture(autouse=True)
def one_blas_thread():
    """These matrices are small: BLAS threads gain nothing, and on a busy 2-core machine OpenBLAS's spinning
    threads made an SVD 100 times slower (this file: 10 s on one thread, 45 s on two)."""
    with threadpool_limits(1):
        yield


# --- references ---------------------------------------------------------------------------------------------


def reference_space(fit_rows: np.ndarray, all_rows: np.ndarray, n_components: int) -> np.ndarray:
    """scikit-learn's exact PCA fitted on ``fit_rows``, then the fit rows' column means subtracted, then unit rows."""
    pca = PCA(n_components=n_components, svd_solver="full").fit(fit_rows)
    z = pca.transform(all_rows) - pca.transform(fit_rows).mean(axis=0)
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def reference_decoding(images, encodings, splits, n_components, leaky):
    """The straightforward pipeline, one outer fold at a time: PCAs, GridSearchCV(Ridge), predict, cosine."""
    n = images.shape[0]
    similarities, alphas = np.zeros((n, n)), []
    for train, test in splits:
        fit = np.arange(n) if leaky else train
        k = lambda columns: min(n_components, fit.size - 1, columns)  # noqa: E731
        x = reference_space(images[fit], images, k(images.shape[1]))
        y = reference_space(encodings[fit], encodings, k(encodings.shape[1]))
        search = GridSearchCV(Ridge(fit_intercept=False), {"alpha": list(ALPHAS)}, cv=KFold(5))
        search.fit(x[train], y[train])
        alphas.append(search.best_params_["alpha"])
        predictions = search.predict(x[test])
        for row, i in enumerate(test):
            for j in range(n):
                p, c = predictions[row], y[j]
                similarities[i, j] = p @ c / (np.linalg.norm(p) * np.linalg.norm(c))
    return similarities, np.array(alphas)


def loop_ranks(similarities):
    return [1 + sum(1 for v in row if v > row[i]) for i, row in enumerate(similarities.tolist())]


def loop_pairwise(similarities):
    s = similarities.tolist()
    score, pairs = 0.0, 0
    for i in range(len(s)):
        for j in range(i + 1, len(s)):
            matched, mismatched = s[i][i] + s[j][j], s[i][j] + s[j][i]
            score += 1.0 if matched > mismatched else 0.5 if matched == mismatched else 0.0
            pairs += 1
    return score / pairs


def linear_data(rng, n, voxels, dims, noise):
    """Encodings, and images that are a noisy linear map of the first encoding."""
    encodings = [rng.standard_normal((n, d)) for d in dims]
    images = encodings[0] @ rng.standard_normal((dims[0], voxels)) + noise * rng.standard_normal((n, voxels))
    return images.astype(np.float32), encodings


# --- scores ---------------------------------------------------------------------------------------------------


def test_three_sentences_by_hand():
    s = np.array([[0.9, 0.5, 0.1],
                  [0.8, 0.3, 0.3],     # one candidate beats the truth; the tie with it does not count
                  [0.2, 0.2, 0.2]])    # all tied: rank 1
    assert rank_scores(s, np.arange(3)).tolist() == [1, 2, 1]
    # pairs: (0,1) 1.2 < 1.3 wrong; (0,2) 1.1 > 0.3 right; (1,2) 0.5 = 0.5 half
    assert pairwise_accuracy(s) == pytest.approx(1.5 / 3)
    assert chance_mar(384) == 192.5 and chance_mar(384) - 1 == 191.5  # the original's 0-based chance


def test_scores_equal_plain_loops(rng):
    for n in (5, 17, 40):
        s = np.round(rng.standard_normal((n, n)), 1)   # rounding makes ties
        assert rank_scores(s, np.arange(n)).tolist() == loop_ranks(s)
        assert pairwise_accuracy(s) == pytest.approx(loop_pairwise(s), abs=1e-12)
    shuffled = rng.permutation(7)
    s = rng.standard_normal((7, 9))
    assert rank_scores(s, shuffled).tolist() == [1 + int((row > row[t]).sum()) for row, t in zip(s, shuffled)]


# --- against scikit-learn -------------------------------------------------------------------------------------


@pytest.mark.parametrize("leaky", [False, True])
def test_identical_to_the_sklearn_pipeline(leaky):
    rng = np.random.default_rng(3)
    images, encodings = linear_data(rng, 64, 90, (24, 70), noise=8.0)
    # 70 > 55 (the training fold's rank) clips the second checkpoint's PCA, as it clips the images'
    ours = decode(images, encodings, n_components=40, leaky_pca=leaky, seed=5, return_similarities=True)
    splits = list(KFold(8, shuffle=True, random_state=5).split(images))
    for checkpoint, y in zip(ours, encodings):
        similarities, alphas = reference_decoding(images.astype(np.float64), y, splits, 40, leaky)
        assert checkpoint.leaky is leaky and checkpoint.n_candidates == 64
        assert np.array_equal(checkpoint.alphas, alphas)
        assert checkpoint.ranks.tolist() == loop_ranks(similarities)
        assert checkpoint.mar == pytest.approx(np.mean(loop_ranks(similarities)))
        assert checkpoint.pairwise_accuracy == pytest.approx(loop_pairwise(similarities))
        np.testing.assert_allclose(checkpoint.similarities, similarities, rtol=0, atol=1e-9)
        for fold, (_, test) in enumerate(splits):
            assert (checkpoint.folds[test] == fold).all()
    # the data exercise the search: more than one penalty chosen, ranks neither perfect nor chance
    assert len({a for c in ours for a in c.alphas}) > 1
    assert 1.5 < ours[0].mar < 20 and ours[1].mar > 20


def test_grouped_decoding_matches_group_kfold():
    rng = np.random.default_rng(4)
    images, encodings = linear_data(rng, 48, 60, (20,), noise=4.0)
    passages = np.repeat(np.arange(12), 4)
    ours = decode(images, encodings, n_folds=4, groups=passages, n_components=30, seed=2,
                  return_similarities=True)[0]
    splits = list(GroupKFold(4, shuffle=True, random_state=2).split(images, groups=passages))
    similarities, alphas = reference_decoding(images.astype(np.float64), encodings[0], splits, 30, False)
    assert np.array_equal(ours.alphas, alphas)
    assert ours.ranks.tolist() == loop_ranks(similarities)
    for passage in range(12):
        assert np.unique(ours.folds[passages == passage]).size == 1


def test_real_passages_are_never_split():
    table = pd.read_csv(shared_data("pereira2018/Pereira2018_stimulus_set_20220209.csv"), index_col=0)
    passages = table.loc[table["experiment"] == "384sentences", "passage_index"].to_numpy()
    assert passages.size == 384
    for seed in (0, 1):
        folds = outer_folds(384, 8, groups=passages, seed=seed)
        assert sorted(np.bincount(folds)) == [48] * 8   # 96 passages of 4 sentences: 12 passages per fold
        for passage in np.unique(passages):
            assert np.unique(folds[passages == passage]).size == 1
    # without groups, passages are split (the paper's KFold over sentences)
    folds = outer_folds(384, 8, seed=0)
    assert any(np.unique(folds[passages == p]).size > 1 for p in np.unique(passages))


# --- signal and chance ------------------------------------------------------------------------------------------


def test_signal_decodes_far_below_chance_and_shuffled_pairs_at_chance():
    rng = np.random.default_rng(7)
    n = 80
    images, encodings = linear_data(rng, n, 120, (30,), noise=3.0)
    signal = decode(images, encodings, n_components=50)[0]
    assert signal.mar < 0.2 * chance_mar(n) and signal.pairwise_accuracy > 0.9
    permuted = [rng.permutation(n) for _ in range(12)]
    nulls = decode(images, [encodings[0][p] for p in permuted], n_components=50, seed=1)
    mars = np.array([d.mar for d in nulls])
    # under the null each rank is uniform on 1..n: sd sqrt((n^2 - 1) / 12) per sentence
    se = max(mars.std(ddof=1), np.sqrt((n * n - 1) / 12 / n)) / np.sqrt(mars.size)
    assert abs(mars.mean() - chance_mar(n)) < 4 * se
    assert abs(np.mean([d.pairwise_accuracy for d in nulls]) - 0.5) < 0.05


# --- leakage ------------------------------------------------------------------------------------------------------


def planted(images, encodings, sentence, kind, huge=1e4):
    """Copies with a value only a leak could use, at one held-out sentence.

    ``outside``: one extra voxel and one extra encoding column, zero everywhere except at ``sentence``.
    ``inside``: ``sentence``'s image and encoding moved far along a direction the training rows span (the
    difference of two training rows), which moves every all-row mean, but no training-fold statistic.
    """
    x, y = images.astype(np.float64), encodings.copy()
    if kind == "outside":
        x, y = np.column_stack([x, np.zeros(len(x))]), np.column_stack([y, np.zeros(len(y))])
        x[sentence, -1] = y[sentence, -1] = huge
    else:
        a, b = [i for i in range(len(x)) if i != sentence][:2]
        x[sentence] += huge * (x[a] - x[b])
        y[sentence] += huge * (y[a] - y[b])
    return x, y


@pytest.mark.parametrize("kind", ["outside", "inside"])
def test_held_out_values_cannot_leak_into_the_training_fold(kind):
    rng = np.random.default_rng(11)
    images, (encodings,) = linear_data(rng, 48, 70, (25,), noise=3.0)
    folds = outer_folds(48, 8, seed=0)
    fold = folds[0]
    held_out = np.flatnonzero(folds == fold)
    sentence = held_out[0]
    others = held_out[1:]   # their own image and encoding are untouched
    x, y = planted(images, encodings, sentence, kind)
    # the planted sentence's own prediction may change (its own image changed); nothing else in its fold may
    rows = held_out if kind == "outside" else others
    columns = np.arange(48) if kind == "outside" else np.delete(np.arange(48), sentence)
    for leaky in (False, True):
        before, after = (decode(a, [b], n_components=30, leaky_pca=leaky, return_similarities=True)[0]
                         for a, b in ((images, encodings), (x, y)))
        change = np.abs(before.similarities[np.ix_(rows, columns)] - after.similarities[np.ix_(rows, columns)])
        if leaky:
            assert change.max() > 1e-2
        else:
            assert change.max() < 1e-9
            assert before.alphas[fold] == after.alphas[fold]
            if kind == "outside":
                assert np.array_equal(before.ranks[held_out], after.ranks[held_out])


# --- validation ---------------------------------------------------------------------------------------------------


def test_inputs_are_checked_at_the_boundary():
    rng = np.random.default_rng(0)
    images, y = rng.standard_normal((20, 8)), rng.standard_normal((20, 5))
    with pytest.raises(InputError, match=r"encodings\[1\]: rows: expected 20 rows, one per image, found 19"):
        decode(images, [y, y[:19]])
    bad = images.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="images: values: expected finite numbers, found 1 NaN .*row 3, column 2"):
        decode(bad, [y])
    with pytest.raises(InputError, match="encodings: length"):
        decode(images, [])
    with pytest.raises(ConfigError, match="n_folds: expected 2 <= n_folds <= n_sentences = 20, found 21"):
        decode(images, [y], n_folds=21)
    with pytest.raises(ConfigError, match="inner_folds"):
        decode(images, [y], n_folds=2, inner_folds=11)
    with pytest.raises(ConfigError, match="alphas"):
        decode(images, [y], alphas=[1.0, 0.0])
    with pytest.raises(ConfigError, match="n_components"):
        decode(images, [y], n_components=0)
    with pytest.raises(ConfigError, match="number of groups = 3"):
        decode(images, [y], n_folds=4, groups=np.arange(20) % 3)
    with pytest.raises(InputError, match="groups: shape"):
        decode(images, [y], groups=np.arange(19))
