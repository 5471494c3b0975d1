"""Segments by hand: which words form each TR's segment, their mean features, and the paired images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign.data.recording import Recording
from brainalign.errors import ConfigError, InputError
from brainalign.probing.segments import check_delays, entry_segments, make_segments, segment_images


def recording(n_trs: int = 12, runs: int = 2) -> Recording:
    """Runs of ``n_trs`` TRs of 2 s on one clock; from the second TR of each run, one word every 0.5 s until two
    TRs before its end, with a fixation entry first in each run."""
    times = np.arange(n_trs * runs) * 2.0
    run_of_tr = np.repeat(np.arange(1, runs + 1), n_trs)
    entries = []
    for run in range(runs):
        start = (run * n_trs + 1) * 2.0
        entries.append(("+", start - 0.5, 0.5))
        for k in range((n_trs - 3) * 4):
            entries.append((f"w{run}_{k}", start + 0.5 * k, 0.5))
    words = pd.DataFrame(entries, columns=["word", "onset", "duration"])
    responses = np.random.default_rng(0).standard_normal((n_trs * runs, 5)).cumsum(0)
    return Recording(subject="1", modality="fmri", responses=responses, times=times, runs=run_of_tr, words=words)


def test_four_words_a_tr_and_fixations_left_out():
    rec = recording()
    rows = entry_segments(rec)
    assert rows[0] == -1  # the fixation
    # Run 1's words start at TR 1 (2.0 s): words 0-3 in TR 1, 4-7 in TR 2 ...
    np.testing.assert_array_equal(rows[1:9], [1, 1, 1, 1, 2, 2, 2, 2])
    # Run 2's first word is at 26 s: TR 13.
    second = int(np.flatnonzero(rec.words["word"] == "w1_0")[0])
    assert rows[second] == 13 and rows[second - 1] == -1


def test_mean_features_and_delayed_images_within_kept_trs():
    rec = recording()
    values = np.zeros((len(rec.words), 2))
    values[:, 0] = np.arange(len(rec.words))
    values[:, 1] = rec.words["word"].str.len()
    seg = make_segments(rec, values, ["a/index", "a/length"], delays=[2], drop_start=1, drop_end=1)
    # Kept TRs: 1..10 and 13..22; a segment at TR t needs TR t + 2 kept and in its run: t in 1..8 and 13..20.
    np.testing.assert_array_equal(seg.tr, list(range(1, 9)) + list(range(13, 21)))
    np.testing.assert_array_equal(seg.images[:, 0], seg.tr + 2)
    assert seg.text[0] == "w0_0 w0_1 w0_2 w0_3"
    # Entries 1-4 (after the fixation at 0) are TR 1's words: mean index 2.5.
    assert seg.values[0, 0] == pytest.approx(2.5)
    assert seg.kinds() == ["continuous", "continuous"]
    fir = make_segments(rec, values, ["a/index", "a/length"], delays=[3, 1], drop_start=1, drop_end=1)
    np.testing.assert_array_equal(fir.images, np.column_stack([fir.tr + 1, fir.tr + 3]))
    assert fir.tr.max() == 19  # 19 + 3 = 22, the last kept TR of run 2


def test_images_are_zscored_within_run_over_kept_trs():
    rec = recording()
    seg = make_segments(rec, np.ones((len(rec.words), 1)), ["a/one"], delays=[0, 1], drop_start=1, drop_end=1)
    images = segment_images(rec, seg, drop_start=1, drop_end=1, channels=np.array([0, 3]))
    assert images.shape == (len(seg), 2, 2)
    # By hand: detrend and z-score TRs 1..10 of run 1 for voxel 3, then read TR seg.tr[4] (delay 0).
    from scipy.signal import detrend
    block = detrend(rec.responses[1:11, 3].astype(np.float64))
    expected = (block - block.mean()) / block.std()
    assert images[4, 1, 0] == pytest.approx(expected[seg.tr[4] - 1], abs=1e-5)
    assert images[4, 1, 1] == pytest.approx(expected[seg.tr[4]], abs=1e-5)
    assert seg.kinds() == ["binary"]


def test_bad_delays_and_feature_shapes_fail_with_one_message():
    with pytest.raises(ConfigError, match="probing.delays"):
        check_delays([])
    with pytest.raises(ConfigError, match="probing.delays"):
        check_delays([2, 2])
    with pytest.raises(ConfigError, match="probing.delays"):
        check_delays([-1])
    rec = recording()
    with pytest.raises(InputError, match="one row per word entry"):
        make_segments(rec, np.zeros((3, 1)), ["a/b"])
