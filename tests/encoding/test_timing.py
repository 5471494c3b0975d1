"""Word -> TR resampling and FIR delays against hand-worked cases."""

import numpy as np
import pytest

from brainalign.encoding.timing import delay, lanczos_to_trs, low_level_features, sum_to_trs
from brainalign.errors import ConfigError


def test_sum_counts_each_word_in_the_tr_that_closes_after_it_within_its_run():
    # TRs every 2 s: run 1 at 0, 2, 4, 6; run 2 at 8, 10, 12 (one clock).
    tr_times = np.array([0, 2, 4, 6, 8, 10, 12.0])
    tr_runs = np.array([1, 1, 1, 1, 2, 2, 2])
    onsets = np.array([0.0, 0.5, 1.9, 2.0, 5.5, 8.0, 8.5])
    word_runs = np.array([1, 1, 1, 1, 1, 2, 2])
    features = np.array([[1.0], [2.0], [4.0], [8.0], [16.0], [32.0], [64.0]])
    out = sum_to_trs(features, onsets, word_runs, tr_times, tr_runs, tr=2.0)
    # TR at 2 s takes onsets in [0, 2): 1+2+4; at 4 s: [2, 4): 8; at 6 s: 5.5 -> 16; the run-1 word at
    # 5.5 never reaches run 2; run 2's TR at 10 s takes 8.0 and 8.5.
    np.testing.assert_array_equal(out[:, 0], [0, 7, 8, 16, 0, 96, 0])


def test_low_level_spaces_count_words_and_letters():
    spaces = low_level_features(["The", "cat,", "sat."])
    np.testing.assert_array_equal(spaces["word_rate"][:, 0], [1, 1, 1])
    np.testing.assert_array_equal(spaces["word_length"][:, 0], [3, 3, 3])


def test_delays_shift_within_runs_and_zero_pad_each_run_start():
    x = np.arange(1, 7, dtype=float)[:, None]  # rows 1..6
    runs = np.array([1, 1, 1, 2, 2, 2])
    out = delay(x, runs, (0, 1, 2))
    np.testing.assert_array_equal(out, [[1, 0, 0], [2, 1, 0], [3, 2, 1], [4, 0, 0], [5, 4, 0], [6, 5, 4]])
    with pytest.raises(ConfigError, match="encoding.delays"):
        delay(x, runs, (-1,))


def test_lanczos_is_a_low_pass_that_preserves_a_constant_rate():
    # Words every 0.25 s: after low-pass filtering at the TR's Nyquist rate, each TR sees the rate
    # (words per TR, 8 at 0.25 s per word and 2 s per TR) far from the run edges.
    onsets = np.arange(0, 100, 0.25)
    tr_times = np.arange(0, 100, 2.0)
    out = lanczos_to_trs(np.ones((len(onsets), 1)), onsets, np.ones(len(onsets)), tr_times, np.ones(len(tr_times)),
                         tr=2.0)
    np.testing.assert_allclose(out[10:-10, 0], 8.0, rtol=0.02)
    # A single word lands mostly on the TR whose interval holds it.
    single = lanczos_to_trs(np.ones((1, 1)), np.array([11.0]), np.ones(1), tr_times, np.ones(len(tr_times)), tr=2.0)
    assert int(np.argmax(single[:, 0])) == 6
