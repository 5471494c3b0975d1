"""Blank 2014 loader: words to TRs as Brain-Score assigns them (hand-worked and against a loop written the
way the packaging code walks the TRs), fROI voxel means, and one clear error per malformed input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign.data.blank import (FROIS, assign_words, read_blank2014, read_textgrid_words, write_blank_participant,
                                   write_blank_textgrids)
from brainalign.data.matfile import is_mat73
from brainalign.errors import InputError

WORDS = {"Boar": pd.DataFrame({"word": ["If", "you", "were", 'a "boar"'], "time_start": [0.1, 0.5, 3.0, 5.0],
                               "time_end": [0.4, 1.0, 3.5, 6.1]}),
         "Aqua": pd.DataFrame({"word": ["A", "clear"], "time_start": [0.0, 1.0], "time_end": [0.9, 2.5]})}


def courses(seed: int, n_trs=None) -> dict:
    rng = np.random.default_rng(seed)
    n_trs = n_trs or {"Boar": 10, "Aqua": 8}
    return {story: [rng.standard_normal((3, n)) for _ in FROIS] for story, n in n_trs.items()}


def release(directory, participants=(("088", 0), ("085", 1))) -> dict:
    series = {}
    for uid, seed in participants:
        series[uid] = courses(seed)
        write_blank_participant(directory, uid, "s1", series[uid])
    write_blank_textgrids(directory, WORDS)
    return series


def test_words_go_to_the_tr_four_seconds_later_and_voxels_are_averaged(tmp_path):
    series = release(tmp_path)
    data = read_blank2014(tmp_path)
    # By hand: TR i ends at 2(i+1) - 8 s; minus the 4 s shift, TR 6 is the first that reaches past 0 (2 s) and
    # takes "If you" (ends 0.4, 1.0); TR 7 (4 s) "were" (3.5); TR 8 (6 s) nothing; TR 9 (8 s) the last word.
    assert data.stimuli["stimulus_id"].tolist() == ["Boar.6", "Boar.7", "Boar.9", "Aqua.6", "Aqua.7"]
    assert data.stimuli["text"].tolist() == ["If you", "were", 'a "boar"', "A", "clear"]
    assert data.stimuli["story"].tolist() == ["Boar"] * 3 + ["Aqua"] * 2 and data.group == "story"
    assert data.channels["channel_id"].iloc[[0, 12]].tolist() == ["085.01_LH_PostTemp", "088.01_LH_PostTemp"]
    assert data.responses.shape == (5, 24)
    boar = series["088"]["Boar"][2]  # fROI 3, a 3-voxel x 10-TR matrix
    np.testing.assert_allclose(data.responses[:3, 12 + 2], boar[:, [6, 7, 9]].mean(axis=0), rtol=1e-6)
    assert data.extra["words"]["tr"].tolist() == [6, 6, 7, 9, 6, 7]


def _packaging_loop(word_ends: np.ndarray, tr_times: np.ndarray, shift: float) -> list[list[int]]:
    """Brain-Score's walk over TRs: skip TRs at or before the shift; each takes the words ending after the last
    taken word and by its shifted time; stop once every word is taken."""
    taken, last = [], -np.inf
    for time in tr_times - shift:
        if last >= word_ends.max():
            break
        if time <= 0:
            continue
        words = [i for i, end in enumerate(word_ends) if last < end <= time]
        taken.append(words)
        if words:
            last = word_ends[words[-1]]
    return [w for w in taken if w]


def test_assignment_equals_the_packaging_loop_on_random_stories():
    rng = np.random.default_rng(11)
    for _ in range(50):
        ends = np.sort(rng.uniform(0, 60, size=rng.integers(5, 80)))
        times = 2.0 * (np.arange(40) + 1) - 8.0
        assigned = assign_words(ends, times, 4.0)
        ours = [list(np.flatnonzero(assigned == tr)) for tr in np.unique(assigned[assigned >= 0])]
        assert ours == _packaging_loop(ends, times, 4.0)


def test_textgrid_round_trip_keeps_quotes_and_drops_silences(tmp_path):
    folder = write_blank_textgrids(tmp_path, {"Boar": WORDS["Boar"]})
    words = read_textgrid_words(folder / "1.TextGrid")
    pd.testing.assert_frame_equal(words, WORDS["Boar"])
    assert "intervals [2]" in (folder / "1.TextGrid").read_text()  # the 0.4-0.5 s gap is an empty interval


def test_an_froi_without_data_is_skipped(tmp_path):
    series = courses(0)
    for story in series:
        series[story][4] = None
    write_blank_participant(tmp_path, "088", "s1", series)
    write_blank_textgrids(tmp_path, WORDS)
    data = read_blank2014(tmp_path)
    assert data.channels["region"].tolist() == [f for i, f in enumerate(FROIS) if i != 4]


def test_v5_and_v73_files_read_identically(tmp_path):
    """The same participants written as MATLAB v5 (as released) and v7.3 (HDF5: the 12 fROIs are a struct
    array whose elements are structs, or NaN for an fROI without data) give the same presentations."""
    series = {"088": courses(0), "085": courses(1)}
    for story in series["085"]:
        series["085"][story][4] = None
    for folder, v73 in (("v5", False), ("v73", True)):
        for uid, by_story in series.items():
            written = write_blank_participant(tmp_path / folder, uid, "s1", by_story, v73=v73)
            assert is_mat73(written) == v73
        write_blank_textgrids(tmp_path / folder, WORDS)
    v5, v73 = read_blank2014(tmp_path / "v5"), read_blank2014(tmp_path / "v73")
    pd.testing.assert_frame_equal(v73.stimuli, v5.stimuli)
    pd.testing.assert_frame_equal(v73.channels, v5.channels)
    pd.testing.assert_frame_equal(v73.extra["words"], v5.extra["words"])
    np.testing.assert_array_equal(v73.responses, v5.responses)
    # And both are right, by hand: 085 lacks fROI 5 (11 channels, first), then 088's 12; Aqua's TRs 6 and 7.
    assert v73.channels["channel_id"].iloc[[4, 11]].tolist() == ["085.06_LH_AngG", "088.01_LH_PostTemp"]
    np.testing.assert_allclose(v73.responses[3:, 11 + 7], series["088"]["Aqua"][7][:, [6, 7]].mean(axis=0),
                               rtol=1e-6)


def test_malformed_inputs_fail_once_and_clearly(tmp_path):
    release(tmp_path / "a", participants=(("088", 0),))
    write_blank_participant(tmp_path / "a", "085", "s1", courses(1, {"Boar": 10, "Aqua": 9}))
    with pytest.raises(InputError) as error:
        read_blank2014(tmp_path / "a")
    assert error.value.field == "data.language.from90to100(1).timeseries.Aqua"
    assert error.value.expected == "9 TRs (as 085_s1_preprocessed.mat, fROI 01_LH_PostTemp)"
    assert error.value.found == "8"
    assert error.value.source.endswith("088_s1_preprocessed.mat")

    release(tmp_path / "b", participants=(("088", 0),))
    write_blank_participant(tmp_path / "b", "085", "s1", courses(1, {"Boar": 10}))
    with pytest.raises(InputError, match=r"088_s1_preprocessed.mat: data.language.from90to100\(1\).timeseries: "
                                         r"expected the stories \['Boar'\] \(as 085_s1_preprocessed.mat\), "
                                         r"found \['Aqua', 'Boar'\]"):
        read_blank2014(tmp_path / "b")

    series = courses(0)
    series["Boar"][1][2, 4] = np.nan
    write_blank_participant(tmp_path / "c", "088", "s1", series)
    with pytest.raises(InputError) as error:
        read_blank2014(tmp_path / "c")
    assert error.value.field == "data.language.from90to100(2).timeseries.Boar"
    assert error.value.found.endswith("first at TR 5, voxel 3")

    write_blank_participant(tmp_path / "d", "088", "s1", courses(0))
    with pytest.raises(InputError) as error:
        read_blank2014(tmp_path / "d")
    assert error.value.source.endswith("stories_textgridsbyJeanne/1.TextGrid") and error.value.found == "no such path"
