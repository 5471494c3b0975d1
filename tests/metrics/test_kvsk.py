"""Tests of the k vs k accuracy (``brainalign.metrics.kvsk``) against independent truths."""

from __future__ import annotations

import numpy as np
import pytest

from brainalign.errors import ConfigError, InputError
from brainalign.metrics import kvsk
from brainalign.metrics.kvsk import draw_kvsk, kvsk_accuracy


def reference_kvsk(y_true, y_pred, targets, distractors, anchor="target"):
    """Slow reference: Python loops and Python floats, terms summed in order i = 0..k-1."""
    n_draws, k = targets.shape
    n_voxels = y_true.shape[1]
    out = np.zeros(n_voxels, dtype=np.float64)
    for v in range(n_voxels):
        yt = [float(x) for x in y_true[:, v]]
        yp = [float(x) for x in y_pred[:, v]]
        total = 0.0
        for d in range(n_draws):
            matched = 0.0
            mismatched = 0.0
            for i in range(k):
                t = int(targets[d, i])
                s = int(distractors[d, i])
                if anchor == "target":
                    m = yt[t] - yp[t]
                    mm = yt[t] - yp[s]
                else:
                    m = yp[t] - yt[t]
                    mm = yp[t] - yt[s]
                matched += m * m
                mismatched += mm * mm
            if matched < mismatched:
                total += 1.0
            elif matched == mismatched:
                total += 0.5
        out[v] = total / n_draws
    return out


@pytest.fixture(scope="module")
def random_case():
    rng = np.random.default_rng(1234)
    y_true = rng.standard_normal((60, 37)).astype(np.float32)
    # Partly informative predictions so that accuracies are spread, not all 0.5.
    y_pred = (0.5 * y_true + rng.standard_normal((60, 37))).astype(np.float32)
    return y_true, y_pred


@pytest.mark.parametrize("draws", ["independent", "disjoint"])
@pytest.mark.parametrize("anchor", ["target", "prediction"])
def test_matches_slow_reference_exactly(random_case, anchor, draws):
    """Truth: plain-loop float64 reference written here; equality must be exact."""
    y_true, y_pred = random_case
    targets, distractors = draw_kvsk(60, k=20, n_draws=200, rng=np.random.default_rng(7), draws=draws)
    expected = reference_kvsk(y_true, y_pred, targets, distractors, anchor=anchor)
    # Guard that the case is not degenerate (some voxels away from 0.5 and not all equal).
    assert np.ptp(expected) > 0.1
    for voxel_chunk in (1, 7, 13, 250, 4096):
        got = kvsk_accuracy(y_true, y_pred, targets, distractors, anchor=anchor, voxel_chunk=voxel_chunk)
        assert got.dtype == np.float64
        assert got.shape == (37,)
        np.testing.assert_array_equal(got, expected)


def test_anchors_differ_on_random_data(random_case):
    """Truth: the two anchors are different formulas, so on generic data (per the reference) they disagree."""
    y_true, y_pred = random_case
    targets, distractors = draw_kvsk(60, k=20, n_draws=200, rng=3)
    ref_t = reference_kvsk(y_true, y_pred, targets, distractors, "target")
    ref_p = reference_kvsk(y_true, y_pred, targets, distractors, "prediction")
    assert not np.array_equal(ref_t, ref_p)
    np.testing.assert_array_equal(kvsk_accuracy(y_true, y_pred, targets, distractors, "target"), ref_t)
    np.testing.assert_array_equal(kvsk_accuracy(y_true, y_pred, targets, distractors, "prediction"), ref_p)


def test_hand_worked_tiny_case():
    """Truth: distances worked out by hand for 3 examples, 2 voxels, k = 1, including a tie (0.5)."""
    y_true = np.array([[0.0, 1.0],
                       [2.0, 1.0],
                       [5.0, 1.0]])
    y_pred = np.array([[1.0, 1.0],
                       [2.0, 3.0],
                       [3.0, 0.0]])
    targets = np.array([[0], [1], [2]])
    distractors = np.array([[1], [2], [0]])
    # anchor="target": matched = (y[T]-p[T])^2, mismatched = (y[T]-p[D])^2
    # voxel 0:
    #   draw 0: T=0, D=1: matched (0-1)^2 = 1, mismatched (0-2)^2 = 4 -> 1
    #   draw 1: T=1, D=2: matched (2-2)^2 = 0, mismatched (2-3)^2 = 1 -> 1
    #   draw 2: T=2, D=0: matched (5-3)^2 = 4, mismatched (5-1)^2 = 16 -> 1
    #   accuracy 3/3 = 1
    # voxel 1:
    #   draw 0: T=0, D=1: matched (1-1)^2 = 0, mismatched (1-3)^2 = 4 -> 1
    #   draw 1: T=1, D=2: matched (1-3)^2 = 4, mismatched (1-0)^2 = 1 -> 0
    #   draw 2: T=2, D=0: matched (1-0)^2 = 1, mismatched (1-1)^2 = 0 -> 0
    #   accuracy 1/3
    got = kvsk_accuracy(y_true, y_pred, targets, distractors, anchor="target")
    np.testing.assert_allclose(got, [1.0, 1.0 / 3.0], rtol=0, atol=1e-15)

    # anchor="prediction": matched = (p[T]-y[T])^2, mismatched = (p[T]-y[D])^2
    # voxel 0:
    #   draw 0: T=0, D=1: matched (1-0)^2 = 1, mismatched (1-2)^2 = 1 -> tie 0.5
    #   draw 1: T=1, D=2: matched (2-2)^2 = 0, mismatched (2-5)^2 = 9 -> 1
    #   draw 2: T=2, D=0: matched (3-5)^2 = 4, mismatched (3-0)^2 = 9 -> 1
    #   accuracy 2.5/3
    # voxel 1 (y constant 1): matched == mismatched on every draw -> 0.5
    got = kvsk_accuracy(y_true, y_pred, targets, distractors, anchor="prediction")
    np.testing.assert_allclose(got, [2.5 / 3.0, 0.5], rtol=0, atol=1e-15)


def test_hand_worked_k2_sums_terms():
    """Truth: k = 2 by hand; a draw is decided by the sum over its terms, not term by term."""
    y_true = np.array([[0.0], [0.0], [10.0], [0.0]])
    y_pred = np.array([[3.0], [0.0], [10.0], [1.0]])
    targets = np.array([[0, 1]])
    distractors = np.array([[2, 3]])
    # target anchor: matched = (0-3)^2 + (0-0)^2 = 9; mismatched = (0-10)^2 + (0-1)^2 = 101 -> correct.
    np.testing.assert_array_equal(kvsk_accuracy(y_true, y_pred, targets, distractors, "target"), [1.0])
    # prediction anchor: matched = (3-0)^2 + (0-0)^2 = 9; mismatched = (3-10)^2 + (0-0)^2 = 49 -> correct.
    np.testing.assert_array_equal(kvsk_accuracy(y_true, y_pred, targets, distractors, "prediction"), [1.0])
    # Swap targets and distractors: target anchor matched = (10-10)^2 + (0-1)^2 = 1,
    # mismatched = (10-3)^2 + (0-0)^2 = 49 -> correct; prediction anchor matched = 0 + 1 = 1,
    # mismatched = (10-0)^2 + (1-0)^2 = 101 -> correct.
    np.testing.assert_array_equal(kvsk_accuracy(y_true, y_pred, distractors, targets, "target"), [1.0])
    # A draw that must fail: y = [0, 0, 0, 0] truth with predictions far off on targets only.
    y_true2 = np.zeros((4, 1))
    y_pred2 = np.array([[5.0], [5.0], [0.0], [0.0]])
    # target anchor: matched = 25 + 25 = 50, mismatched = 0 + 0 = 0 -> 0.
    np.testing.assert_array_equal(kvsk_accuracy(y_true2, y_pred2, targets, distractors, "target"), [0.0])


@pytest.mark.parametrize("anchor", ["target", "prediction"])
def test_perfect_predictions_and_constant_voxel(anchor):
    """Truth: y_pred == y_true with distinct values and disjoint draws -> matched 0 < mismatched -> 1;
    a constant voxel makes matched == mismatched -> exactly 0.5."""
    rng = np.random.default_rng(5)
    n = 50
    distinct = rng.permutation(n).astype(np.float64)[:, None] + np.arange(3)[None, :] * 100.0
    constant = np.full((n, 1), 2.5)
    y = np.hstack([distinct, constant])
    targets, distractors = draw_kvsk(n, k=5, n_draws=300, rng=11, draws="disjoint")
    got = kvsk_accuracy(y, y.copy(), targets, distractors, anchor=anchor)
    np.testing.assert_array_equal(got, [1.0, 1.0, 1.0, 0.5])


def test_constant_prediction_ties_target_anchor():
    """Truth: with anchor="target", constant predictions give matched == mismatched -> 0.5 exactly."""
    rng = np.random.default_rng(9)
    y_true = rng.standard_normal((40, 3))
    y_pred = np.full((40, 3), -1.25)
    targets, distractors = draw_kvsk(40, k=10, n_draws=100, rng=2)
    np.testing.assert_array_equal(kvsk_accuracy(y_true, y_pred, targets, distractors, "target"), [0.5] * 3)


def test_draws_reproducible_and_seed_dependent():
    """Truth: seeding the Generator fixes the draws; a different seed gives different draws."""
    for mode in ("independent", "disjoint"):
        a = draw_kvsk(100, k=20, n_draws=50, rng=42, draws=mode)
        b = draw_kvsk(100, k=20, n_draws=50, rng=np.random.default_rng(42), draws=mode)
        c = draw_kvsk(100, k=20, n_draws=50, rng=43, draws=mode)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert not np.array_equal(a[0], c[0])


def test_disjoint_draws_have_2k_distinct_indices():
    """Truth: a disjoint draw is 2k distinct examples in range (checked with set sizes)."""
    n, k = 45, 20
    targets, distractors = draw_kvsk(n, k=k, n_draws=300, rng=0, draws="disjoint")
    assert targets.shape == distractors.shape == (300, k)
    assert targets.dtype == np.int64 and distractors.dtype == np.int64
    for t, d in zip(targets, distractors):
        both = set(t.tolist()) | set(d.tolist())
        assert len(both) == 2 * k
        assert min(both) >= 0 and max(both) < n
    # Exactly 2k = n is allowed (every example used once).
    t, d = draw_kvsk(40, k=20, n_draws=5, rng=0, draws="disjoint")
    for row_t, row_d in zip(t, d):
        assert sorted(row_t.tolist() + row_d.tolist()) == list(range(40))


def test_independent_draws_in_range_and_overlap():
    """Truth: with replacement from 30 examples, k = 20 targets and distractors overlap (by pigeonhole
    20 + 20 > 30, every draw shares an index) and repeat within a row sometimes."""
    n, k = 30, 20
    targets, distractors = draw_kvsk(n, k=k, n_draws=200, rng=1, draws="independent")
    assert targets.shape == distractors.shape == (200, k)
    assert targets.min() >= 0 and distractors.min() >= 0
    assert targets.max() < n and distractors.max() < n
    overlaps = [len(set(t.tolist()) & set(d.tolist())) > 0 for t, d in zip(targets, distractors)]
    assert all(overlaps)
    repeats = [len(set(t.tolist())) < k for t in targets]
    assert any(repeats)
    # Every example appears somewhere (uniform over 30 with 8000 picks).
    assert set(np.concatenate([targets.ravel(), distractors.ravel()]).tolist()) == set(range(n))


def test_errors():
    """Truth: the documented contracts (too few examples, bad names, bad shapes) raise the stated errors."""
    with pytest.raises(InputError):
        draw_kvsk(39, k=20, n_draws=3, draws="disjoint")
    with pytest.raises(InputError):
        draw_kvsk(0, k=1, n_draws=3, draws="independent")
    with pytest.raises(ConfigError):
        draw_kvsk(100, k=20, n_draws=3, draws="overlapping")
    y = np.zeros((10, 2))
    t, d = draw_kvsk(10, k=2, n_draws=3, rng=0)
    with pytest.raises(ConfigError):
        kvsk_accuracy(y, y, t, d, anchor="truth")
    with pytest.raises(InputError):
        kvsk_accuracy(y, np.zeros((10, 3)), t, d)
    with pytest.raises(InputError):
        kvsk_accuracy(np.zeros(10), np.zeros(10), t, d)
    with pytest.raises(InputError):
        kvsk_accuracy(y, y, t, d[:, :1])
    with pytest.raises(InputError):
        kvsk_accuracy(y, y, t[0], d[0])


def test_planted_signal_and_noise_voxels():
    """Truth: planted data — signal voxels predicted as truth + small noise score > 0.9; voxels whose
    predictions are independent noise score 0.5 on average (within 0.05)."""
    rng = np.random.default_rng(2024)
    n, n_signal, n_noise = 200, 10, 40
    y_true = rng.standard_normal((n, n_signal + n_noise))
    y_pred = np.empty_like(y_true)
    y_pred[:, :n_signal] = y_true[:, :n_signal] + 0.1 * rng.standard_normal((n, n_signal))
    y_pred[:, n_signal:] = rng.standard_normal((n, n_noise))
    for draws in ("independent", "disjoint"):
        targets, distractors = draw_kvsk(n, k=20, n_draws=500, rng=rng, draws=draws)
        for anchor in ("target", "prediction"):
            acc = kvsk_accuracy(y_true, y_pred, targets, distractors, anchor=anchor)
            assert np.all(acc[:n_signal] > 0.9), (draws, anchor, acc[:n_signal])
            assert abs(acc[n_signal:].mean() - 0.5) < 0.05, (draws, anchor, acc[n_signal:].mean())


# --- The numba kernel against plain loops, in both compute dtypes ------------------------------------------


def loop_kvsk(y_true, y_pred, targets, distractors, anchor="target", dtype=np.float64):
    """Slow reference in the compute dtype: NumPy scalars of ``dtype`` (every operation rounded to it), the
    k terms summed left to right from the first term, one voxel and one draw at a time. Returns the
    accuracies and the number of tied draws per voxel."""
    n_draws, k = targets.shape
    a_side, b_side = (y_true, y_pred) if anchor == "target" else (y_pred, y_true)
    out = np.zeros(a_side.shape[1], dtype=np.float64)
    ties = np.zeros(a_side.shape[1], dtype=np.int64)
    for v in range(a_side.shape[1]):
        a = [dtype(x) for x in a_side[:, v]]
        b = [dtype(x) for x in b_side[:, v]]
        total = 0.0
        for d in range(n_draws):
            for i in range(k):
                t, s = int(targets[d, i]), int(distractors[d, i])
                m = (a[t] - b[t]) * (a[t] - b[t])
                mm = (a[t] - b[s]) * (a[t] - b[s])
                assert type(m) is dtype and type(mm) is dtype
                matched, mismatched = (m, mm) if i == 0 else (matched + m, mismatched + mm)
            assert type(matched) is dtype
            total += 1.0 if matched < mismatched else 0.5 if matched == mismatched else 0.0
            ties[v] += matched == mismatched
        out[v] = total / n_draws
    return out, ties


def seed_algorithm(y_true, y_pred, targets, distractors):
    """The seed code's algorithm: a loop over draws, each vectorised over voxels in the data's dtype."""
    accuracy = np.zeros(y_true.shape[1], dtype=np.float64)
    for t, d in zip(targets, distractors):
        truth = y_true[t]
        matched = np.sum((truth - y_pred[t]) ** 2, axis=0)
        mismatched = np.sum((truth - y_pred[d]) ** 2, axis=0)
        accuracy += (matched < mismatched) + 0.5 * (matched == mismatched)
    return accuracy / len(targets)


@pytest.fixture(scope="module")
def loop_cases():
    """Real-valued data (the rounding order shows) and zeros and ones (ties are common), 45 examples x 23 voxels,
    with voxel 5 constant in truth and prediction (every draw ties)."""
    rng = np.random.default_rng(77)
    real_true = rng.standard_normal((45, 23)).astype(np.float32)
    real_pred = (0.5 * real_true + rng.standard_normal((45, 23))).astype(np.float32)
    int_true = rng.integers(0, 2, size=(45, 23)).astype(np.float32)
    int_pred = rng.integers(0, 2, size=(45, 23)).astype(np.float32)
    for y in (real_true, real_pred, int_true, int_pred):
        y[:, 5] = 1.5
    return {"real": (real_true, real_pred), "integer": (int_true, int_pred)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("draws", ["independent", "disjoint"])
@pytest.mark.parametrize("anchor", ["target", "prediction"])
@pytest.mark.parametrize("data", ["real", "integer"])
def test_kernel_equals_loop_exactly(loop_cases, monkeypatch, data, anchor, draws, dtype):
    """Truth: ``loop_kvsk`` above; equal bit for bit whatever the voxel chunks and blocks (partial blocks at
    the end of a chunk included), and with ties counted 0.5."""
    y_true, y_pred = loop_cases[data]
    targets, distractors = draw_kvsk(45, k=20, n_draws=40, rng=np.random.default_rng(8), draws=draws)
    expected, ties = loop_kvsk(y_true, y_pred, targets, distractors, anchor, dtype)
    assert np.ptp(expected) > 0.1
    assert expected[5] == 0.5 and ties[5] == 40
    if data == "integer":
        assert np.sum(ties > 0) > 10, "integer data should give ties on most voxels"
    for block_bytes in (8, 24, 1024):  # blocks of 1 to 6 voxels, and the default
        monkeypatch.setattr(kvsk, "BLOCK_BYTES", block_bytes)
        for voxel_chunk in (1, 5, 7, 23, 4096):
            got = kvsk_accuracy(y_true, y_pred, targets, distractors, anchor=anchor, voxel_chunk=voxel_chunk,
                                dtype=dtype)
            assert got.dtype == np.float64 and got.shape == (23,)
            np.testing.assert_array_equal(got, expected, err_msg=f"{block_bytes=} {voxel_chunk=}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("anchor", ["target", "prediction"])
def test_kernel_k1_equals_loop(loop_cases, anchor, dtype):
    """Truth: ``loop_kvsk`` with k = 1 (a single term each, no additions), on data with ties."""
    y_true, y_pred = loop_cases["integer"]
    targets, distractors = draw_kvsk(45, k=1, n_draws=60, rng=4)
    expected, ties = loop_kvsk(y_true, y_pred, targets, distractors, anchor, dtype)
    assert expected[5] == 0.5 and np.sum(ties > 0) > 10
    for voxel_chunk in (1, 4, 4096):
        np.testing.assert_array_equal(kvsk_accuracy(y_true, y_pred, targets, distractors, anchor,
                                                    voxel_chunk=voxel_chunk, dtype=dtype), expected)


@pytest.mark.parametrize("anchor", ["target", "prediction"])
def test_float32_equals_seed_algorithm(anchor):
    """Truth: the seed code's algorithm (``seed_algorithm`` above, float32 numpy) on the same draws; with the
    anchor on the predictions, the same algorithm with the two arrays swapped. Bit for bit, over enough
    near-tied voxels that float32 and float64 sums decide some draws differently."""
    rng = np.random.default_rng(21)
    y_true = rng.standard_normal((120, 1000)).astype(np.float32)
    y_pred = (0.2 * y_true + rng.standard_normal(y_true.shape)).astype(np.float32)
    # Near ties: terms close to 1 that differ in their last float32 bits, so that float32 sums decide some
    # draws differently from float64 sums.
    y_true[:, 500:] = (1e-7 * rng.standard_normal((120, 500))).astype(np.float32)
    y_pred[:, 500:] = (1 + 1e-7 * rng.standard_normal((120, 500))).astype(np.float32)
    targets, distractors = draw_kvsk(120, k=20, n_draws=300, rng=rng)
    sides = (y_true, y_pred) if anchor == "target" else (y_pred, y_true)
    expected32 = seed_algorithm(*sides, targets, distractors)
    expected64 = seed_algorithm(*(s.astype(np.float64) for s in sides), targets, distractors)
    assert not np.array_equal(expected32, expected64)  # the dtypes are told apart here
    for voxel_chunk in (97, 4096):
        np.testing.assert_array_equal(kvsk_accuracy(y_true, y_pred, targets, distractors, anchor,
                                                    voxel_chunk=voxel_chunk, dtype=np.float32), expected32)
        np.testing.assert_array_equal(kvsk_accuracy(y_true, y_pred, targets, distractors, anchor,
                                                    voxel_chunk=voxel_chunk), expected64)


def test_thread_count_and_input_layouts_do_not_change_the_result():
    """Truth: the one-thread result on C-ordered float32 input; other thread counts, Fortran-ordered,
    strided, integer-valued int16 and float64 inputs, and int32 indices give the same numbers."""
    import numba

    rng = np.random.default_rng(3)
    y_true = rng.integers(-3, 4, size=(50, 700)).astype(np.int16)
    y_pred = rng.integers(-3, 4, size=(50, 700)).astype(np.int16)
    targets, distractors = draw_kvsk(50, k=20, n_draws=100, rng=5)
    default_threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        expected = kvsk_accuracy(y_true.astype(np.float32), y_pred.astype(np.float32), targets, distractors)
    finally:
        numba.set_num_threads(default_threads)
    variants = [(y_true, y_pred), (np.asfortranarray(y_true), np.asfortranarray(y_pred)),
                (y_true.astype(np.float64), y_pred.astype(np.float64))]
    for yt, yp in variants:
        for dtype in (np.float64, np.float32):
            np.testing.assert_array_equal(kvsk_accuracy(yt, yp, targets, distractors, dtype=dtype), expected)
    wide_true, wide_pred = np.repeat(y_true, 2, axis=1), np.repeat(y_pred, 2, axis=1)
    np.testing.assert_array_equal(kvsk_accuracy(wide_true[:, ::2], wide_pred[:, ::2], targets.astype(np.int32),
                                                distractors.astype(np.int32), voxel_chunk=64), expected)


def test_kernel_input_errors():
    """Truth: the contracts added with the kernel raise the stated errors before any compiled code runs."""
    y = np.zeros((10, 2))
    t, d = draw_kvsk(10, k=2, n_draws=3, rng=0)
    with pytest.raises(ConfigError):
        kvsk_accuracy(y, y, t, d, dtype=np.float16)
    with pytest.raises(ConfigError):
        kvsk_accuracy(y, y, t, d, voxel_chunk=0)
    with pytest.raises(InputError):
        kvsk_accuracy(y, y, t, d + 10)
    with pytest.raises(InputError):
        kvsk_accuracy(y, y, t, d - 10)
    with pytest.raises(InputError):
        kvsk_accuracy(y, y, t.astype(float), d.astype(float))
    with pytest.raises(InputError):
        kvsk_accuracy(y, y, t[:0], d[:0])
