"""The Presentations type: validation messages (file, field, expected, found) and its helpers, on hand-made data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign.data.benchmark_sources import read_benchmark_data
from brainalign.data.presentations import BENCHMARK_SOURCES, Presentations
from brainalign.errors import ConfigError, InputError


def make(responses=None, **changes) -> Presentations:
    stimuli = pd.DataFrame({"stimulus_id": ["a", "b", "c", "d"], "text": ["one", "two", "three", "four"],
                            "sentence": [0, 0, 1, 1], "story": [1, 1, 2, 2]})
    channels = pd.DataFrame({"channel_id": ["s2.x", "s1.x", "s1.y"], "subject": ["s2", "s1", "s1"]})
    if responses is None:
        responses = np.arange(12, dtype=np.float64).reshape(4, 3)
    fields = dict(stimuli=stimuli, responses=responses, channels=channels, group="story", kind="fmri",
                  source="file.mat")
    fields.update(changes)
    return Presentations(**fields)


def test_helpers_on_a_hand_made_table():
    data = make()
    assert data.responses.dtype == np.float32
    assert data.subjects == ["s1", "s2"]
    assert data.subject_mask("s1").tolist() == [False, True, True]
    assert data.groups.tolist() == [1, 1, 2, 2]
    assert {k: v.tolist() for k, v in data.group_indices().items()} == {1: [0, 1], 2: [2, 3]}
    only = data.for_subject("s1")
    assert only.channels["channel_id"].tolist() == ["s1.x", "s1.y"]
    assert only.responses.tolist() == [[1, 2], [4, 5], [7, 8], [10, 11]]
    later = data.select_presentations(np.array([False, False, True, True]))
    assert later.stimuli["stimulus_id"].tolist() == ["c", "d"] and later.responses[0].tolist() == [6, 7, 8]


def test_mean_over_subject_ignores_missing_values():
    responses = np.array([[1, 2, 4], [np.nan, 3, np.nan], [5, np.nan, np.nan], [0, 0, 0]])
    data = make(responses, allow_missing=True, kind="reading_times")
    means = data.mean_over("subject")
    assert means.channels["channel_id"].tolist() == ["s2", "s1"]
    # By hand: s2 is column 0; s1 is the mean of columns 1 and 2 over the values present.
    expected = np.array([[1, 3], [np.nan, 3], [5, np.nan], [0, 0]])
    np.testing.assert_array_equal(means.responses, expected.astype(np.float32))


@pytest.mark.parametrize("change, field, expected, found", [
    (dict(responses=np.zeros((3, 3))), "stimuli", "3 rows", "4"),
    (dict(group="passage"), "group", "a column of the stimuli", "'passage'"),
    (dict(kind="meg"), "kind", "one of", "'meg'"),
    (dict(stimuli=pd.DataFrame({"stimulus_id": ["a", "b", "a", "d"], "text": list("wxyz"), "sentence": [0] * 4,
                                "story": [1] * 4})),
     "stimuli.stimulus_id", "unique ids", "'a' repeated (again at row 3)"),
    (dict(stimuli=pd.DataFrame({"stimulus_id": list("abcd"), "text": ["w", " ", "y", "z"], "sentence": [0] * 4,
                                "story": [1] * 4})), "stimuli.text", "non-empty", "' ' at row 2"),
    (dict(stimuli=pd.DataFrame({"stimulus_id": list("abcd"), "text": list("wxyz"), "story": [1] * 4})),
     "stimuli.sentence", "columns", "columns ['stimulus_id', 'text', 'story']"),
])
def test_malformed_tables_are_named(change, field, expected, found):
    with pytest.raises(InputError) as error:
        make(**change)
    assert error.value.source == "file.mat" and error.value.field == field
    assert expected in error.value.expected and found in error.value.found


def test_a_missing_value_names_its_row_and_channel_one_based():
    responses = np.ones((4, 3))
    responses[2, 1] = np.nan
    with pytest.raises(InputError) as error:
        make(responses)
    assert error.value.field == "responses" and error.value.expected == "finite values"
    assert "row 3, channel 2 (s1.x)" in error.value.found
    # Reading times may miss a word; an infinity is never a reading.
    assert np.isnan(make(responses, allow_missing=True).responses[2, 1])
    responses[0, 0] = np.inf
    with pytest.raises(InputError, match="row 1, channel 1"):
        make(responses, allow_missing=True)


def test_every_loader_is_registered_and_unknown_names_list_them():
    assert BENCHMARK_SOURCES.names() == ["blank2014", "brainscore_assembly", "fedorenko2016", "futrell2018",
                                         "pereira2018"]
    with pytest.raises(ConfigError, match="benchmarks.<name>.source: expected one of blank2014, .*pereira2018"):
        read_benchmark_data("pereira", "nowhere")
