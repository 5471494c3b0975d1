"""Which examples changed: percent change, bootstrap prevalence, window features, the user's feature table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from brainalign.metrics.changes import (changed_mask, feature_prevalence, percent_change, read_feature_table,
                                window_features)
from brainalign.errors import InputError


def test_percent_change_by_hand():
    y = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    before = np.array([[3.0, 4.0], [1.0, 3.0], [2.0, 2.0]])  # distances 5, 2, 0
    after = np.array([[0.0, 4.0], [1.0, 4.0], [2.0, 3.0]])  # distances 4, 3, 1
    change = percent_change(y, before, after)
    np.testing.assert_allclose(change[:2], [-20.0, 50.0])
    assert np.isnan(change[2])  # no relative change from a perfect prediction
    np.testing.assert_allclose(percent_change([0.0], [2.0], [3.0]), [50.0])  # one channel, 1-D
    with pytest.raises(InputError, match="pred_after"):
        percent_change(y, before, after[:2])


def test_changed_mask_threshold_is_inclusive_and_two_sided():
    change = np.array([-20.0, 50.0, 5.0, -10.0, 9.99, np.nan])
    np.testing.assert_array_equal(changed_mask(change), [True, True, False, True, False, False])
    np.testing.assert_array_equal(changed_mask(change, threshold=30), [False, True, False, False, False, False])


def test_bootstrap_se_matches_the_analytic_se_and_is_reproducible():
    rng = np.random.default_rng(7)
    n_changed, n_unchanged = 2000, 3000
    features = pd.DataFrame({"dialogue": np.r_[rng.random(n_changed) < 0.3, rng.random(n_unchanged) < 0.6],
                             "length": rng.normal(5.0, 2.0, n_changed + n_unchanged)})
    changed = np.r_[np.ones(n_changed, bool), np.zeros(n_unchanged, bool)]
    table = feature_prevalence(features, changed, n_boot=400, rng=np.random.default_rng(0)).set_index("feature")
    for group, n in (("changed", n_changed), ("unchanged", n_unchanged)):
        p = table.loc["dialogue", f"{group}_mean"]
        assert p == pytest.approx(features["dialogue"][changed if group == "changed" else ~changed].mean())
        assert table.loc["dialogue", f"{group}_se"] == pytest.approx(math.sqrt(p * (1 - p) / n), rel=0.15)
        assert table.loc["length", f"{group}_se"] == pytest.approx(2.0 / math.sqrt(n), rel=0.15)
    assert (table["n_changed"] == n_changed).all() and (table["n_unchanged"] == n_unchanged).all()

    small = features.iloc[::50]
    first = feature_prevalence(small, changed[::50], n_boot=100, rng=3)
    again = feature_prevalence(small, changed[::50], n_boot=100, rng=np.random.default_rng(3))
    pd.testing.assert_frame_equal(first, again)
    other = feature_prevalence(small, changed[::50], n_boot=100, rng=4)
    assert not np.allclose(first["changed_se"], other["changed_se"])


def test_prevalence_with_an_empty_group_and_bad_input():
    features = pd.DataFrame({"a": [1.0, 0.0, 1.0]})
    table = feature_prevalence(features, np.array([False, False, False]), rng=0)
    assert np.isnan(table.loc[0, "changed_mean"]) and table.loc[0, "unchanged_mean"] == pytest.approx(2 / 3)
    with pytest.raises(InputError, match="changed"):
        feature_prevalence(features, np.array([True, False]), rng=0)
    with pytest.raises(InputError, match="a: expected numbers"):
        feature_prevalence(pd.DataFrame({"a": ["x", "y", "z"]}), np.array([True, False, True]), rng=0)


def test_window_features_by_hand():
    examples = pd.DataFrame({"row": [0, 1], "time": [20.0, 22.0], "run": [1, 1], "n_words": [7, 2],
                             "text": ["The owl flew — into Harry's room.", "extraordinarily quiet"]})
    table = window_features(examples)
    assert list(table.index) == [0, 1] and table.index.name == "example"
    # Window 0: The(3, function) owl(3) flew(4) —(no letters, not a content word) into(4, preposition)
    # Harry's(6: letters only) room.(4). Content: owl, flew, Harry's, room = 4 of 7 words.
    # Lengths of the 6 words with letters: 3 3 4 4 6 4 -> mean 4, two of 1-3 letters, four of 4-6.
    expected = pd.DataFrame({"n_words": [7, 2], "content_share": [4 / 7, 1.0], "mean_word_length": [4.0, 10.0],
                             "length_1_3": [2 / 6, 0.0], "length_4_6": [4 / 6, 0.5], "length_7_plus": [0.0, 0.5]})
    expected.index.name = "example"
    pd.testing.assert_frame_equal(table, expected)
    np.testing.assert_array_equal(table["n_words"], examples["n_words"])
    with pytest.raises(InputError, match="text"):
        window_features(examples.drop(columns="text"))


def test_read_feature_table_accepts_example_column_in_any_order(tmp_path):
    path = tmp_path / "features.csv"
    pd.DataFrame({"example": [2, 0, 1], "dialogue": [True, False, True],
                  "emotion": [0.5, 1, 2]}).to_csv(path, index=False)
    table = read_feature_table(path, 3)
    assert list(table.columns) == ["dialogue", "emotion"] and list(table.index) == [0, 1, 2]
    np.testing.assert_array_equal(table["dialogue"], [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(table["emotion"], [1.0, 2.0, 0.5])

    pd.DataFrame({"dialogue": [1, 0, 1]}).to_csv(tmp_path / "indexed.csv")  # pandas' unnamed index column
    assert list(read_feature_table(tmp_path / "indexed.csv", 3)["dialogue"]) == [1.0, 0.0, 1.0]
    pd.DataFrame({"dialogue": [1, 0, 1]}).to_csv(tmp_path / "plain.csv", index=False)  # rows in order
    assert list(read_feature_table(tmp_path / "plain.csv", 3)["dialogue"]) == [1.0, 0.0, 1.0]


@pytest.mark.parametrize("table, field, expected, found", [
    ({"example": [0, 1, 1], "a": [1, 0, 1]}, "example", "each example once", "repeated example(s) 1"),
    ({"example": [0, 1], "a": [1, 0]}, "example", "all 3 examples", "missing example(s) 2"),
    ({"example": [0, 1, 3], "a": [1, 0, 1]}, "example", "example numbers 0..2", "found 3"),
    ({"example": [0.5, 1, 2], "a": [1, 0, 1]}, "example", "integer example numbers", "float64"),
    ({"a": [1, 0]}, "rows", "3 rows (one per example)", "found 2 rows"),
    ({"example": [0, 1, 2], "a": ["yes", "no", "yes"]}, "a", "numbers or True/False", "'yes'"),
    ({"example": [0, 1, 2], "a": [1, None, 0]}, "a", "a finite value for every example", "first at example 1"),
    ({"example": [0, 1, 2]}, "columns", "at least one feature column", "none"),
])
def test_read_feature_table_errors_name_file_field_expected_found(tmp_path, table, field, expected, found):
    path = tmp_path / "features.csv"
    pd.DataFrame(table).to_csv(path, index=False)
    with pytest.raises(InputError) as error:
        read_feature_table(path, 3)
    assert error.value.source == str(path) and error.value.field == field
    assert expected in error.value.expected and found in f"found {error.value.found}"


def test_read_feature_table_missing_file(tmp_path):
    with pytest.raises(InputError, match="absent.csv: file: expected a CSV of example features, found no such file"):
        read_feature_table(tmp_path / "absent.csv", 3)


def test_changed_examples_figure_writes_png_and_csv(tmp_path):
    from brainalign.report.figures import changed_examples_figure

    features = pd.DataFrame({"a": [1, 0, 1, 1], "b": [0.5, 0.2, 0.1, 0.9]})
    prevalence = feature_prevalence(features, np.array([True, False, True, False]), rng=0)
    changed_examples_figure(prevalence, tmp_path / "changed.png", "which examples changed")
    assert (tmp_path / "changed.png").stat().st_size > 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "changed.csv"), prevalence, check_dtype=False)
