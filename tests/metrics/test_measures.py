"""Measures by name: score.measures chooses what the score table holds; the summaries follow it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign.errors import ConfigError, InputError
from brainalign.metrics.measures import MEASURES
from brainalign.metrics.table import score_settings, summarise, wide_scores

SCORE = {"k": 20, "n_draws": 1000, "seed": 0, "anchor": "target", "draws": "independent", "top_voxels": 1000,
         "measures": ["accuracy_target", "accuracy_prediction", "r2", "pearson_r"]}


def test_each_measure_on_a_hand_worked_run():
    # Two channels, four examples. Channel 0 is predicted exactly: r2 1, r 1. Channel 1's prediction is
    # the response reversed: y = [1, 2, 3, 4], p = [4, 3, 2, 1]; SS_res = 9+1+1+9 = 20, SS_tot = 5: r2 = -3.
    y = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [5.0, 4.0]])
    p = np.array([[0.0, 4.0], [1.0, 3.0], [2.0, 2.0], [5.0, 1.0]])
    # One 1 vs 1 draw: target example 0, distractor example 3. Channel 0: |y0-p0| = 0 < |y0-p3| = 5, right.
    # Channel 1: |y0-p0| = 3 > |y0-p3| = 0, wrong; anchored on the prediction: |p0-y0| = 3 > |p0-y3| = 0.
    draws = (np.array([[0]]), np.array([[3]]))
    assert MEASURES.get("r2")(y, p, draws) == pytest.approx([1.0, -3.0])
    assert MEASURES.get("pearson_r")(y, p, draws) == pytest.approx([1.0, -1.0])
    assert MEASURES.get("accuracy_target")(y, p, draws) == pytest.approx([1.0, 0.0])
    assert MEASURES.get("accuracy_prediction")(y, p, draws) == pytest.approx([1.0, 0.0])


def test_the_default_measures_are_registered_in_params_order():
    assert set(SCORE["measures"]) == set(MEASURES.names())
    assert score_settings({"score": dict(SCORE)})["measures"] == SCORE["measures"]


@pytest.mark.parametrize("measures, message", [
    (["accuracy_target", "spearman"], "score.measures: expected one of accuracy_prediction, accuracy_target, "
                                      "pearson_r, r2, found 'spearman'"),
    (["r2", "pearson_r"], "score.measures: expected accuracy_target among them (score.anchor is 'target')"),
    (["accuracy_target", "accuracy_target"], "score.measures: expected a list of distinct measures"),
    ([], "score.measures: expected a list of distinct measures"),
    ("r2", "score.measures: expected a list of distinct measures"),
])
def test_bad_measures_are_refused_with_the_known_names(measures, message):
    with pytest.raises(ConfigError) as info:
        score_settings({"score": {**SCORE, "measures": measures}})
    assert message in str(info.value)


@pytest.mark.parametrize("key, value", [("anchor", "both"), ("draws", "paired")])
def test_bad_score_form_is_refused(key, value):
    with pytest.raises(ConfigError, match=f"score.{key}: expected one of .* found '{value}'"):
        score_settings({"score": {**SCORE, key: value}})


def long_table(measures: dict[str, list[float]]) -> pd.DataFrame:
    """One participant, one held-out run, one seed; a value per channel for each measure."""
    rows = [{"dataset": "fmri", "model": "m", "subject": "1", "fold": 0, "heldout_run": 1, "seed": 0, "voxel": v,
             "measure": name, "value": value}
            for name, values in measures.items() for v, value in enumerate(values)]
    return pd.DataFrame(rows)


def test_summaries_follow_the_measures_scored():
    table = long_table({"accuracy_target": [0.6, 0.8, 0.4], "r2": [0.1, 0.3, -0.1]})
    summary = summarise(table, top=2, anchor="target")
    expected = {"accuracy_mean": 0.6, "accuracy_top2": 0.7, "accuracy_target_mean": 0.6, "r2_mean": 0.1}
    assert summary["m"]["fmri"]["1"] == pytest.approx(expected)
    assert summary["m"]["fmri"]["mean"] == pytest.approx(expected)
    assert list(wide_scores(table).columns[-3:]) == ["accuracy_target", "r2", "accuracy"]


def test_a_table_without_the_anchors_form_is_refused():
    with pytest.raises(InputError, match="accuracy_prediction"):
        summarise(long_table({"accuracy_target": [0.6]}), anchor="prediction")
