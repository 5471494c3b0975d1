"""The leaderboard's joins and averages, by hand; the suite's parameter checks."""

from __future__ import annotations

import pandas as pd
import pytest

from brainalign.benchmarks.leaderboard import brain_vs_nextword, leaderboard, scores_benchmark, wide_leaderboard
from brainalign.benchmarks.suite import suite_entry
from brainalign.errors import ConfigError


def _rows(benchmark, values, kind="neural"):
    return pd.DataFrame([{"benchmark": benchmark, "key": benchmark.lower(), "kind": kind, "model": m, "label": m.upper(),
                          "committed_layer": layer, "raw": raw, "ceiling": 0.5, "normalised": raw / 0.5,
                          "best_test_layer": layer, "best_test_raw": raw, "n_layers": 4}
                         for m, (layer, raw) in values.items()])


def test_average_and_wide_table_by_hand():
    a = _rows("A", {"m1": (2, 0.4), "m2": (1, 0.2), "m3": (0, 0.1)})
    b = _rows("B", {"m1": (3, 0.3), "m2": (1, 0.1)})
    reading = _rows("R", {"m1": (-1, 0.05), "m4": (-1, 0.5)}, kind="reading_times")
    nextword = pd.DataFrame({"model": ["m1", "m2", "m3"], "label": ["x", "y", "z"], "accuracy": [0.3, 0.2, 0.05]})
    nextword = pd.concat([nextword, pd.DataFrame({"model": ["m4"], "label": ["u"], "accuracy": [0.9]})])
    table = leaderboard([a, b, reading], nextword)
    average = table[table["benchmark"] == "average"].set_index("model")
    assert average.loc["m1", "normalised"] == pytest.approx((0.8 + 0.6 + 0.1) / 3)
    neural = table[table["benchmark"] == "neural average"].set_index("model")
    assert neural.loc["m1", "normalised"] == pytest.approx((0.8 + 0.6) / 2)
    assert "m4" not in neural.index  # read reading times only: not a neural brain score
    assert average.loc["m3", "normalised"] == pytest.approx(0.2)  # scored on A only
    assert average.loc["m3", "n_benchmarks"] == 1
    wide = wide_leaderboard(table)
    assert list(wide["model"]) == ["m4", "m1", "m2", "m3"]  # by average normalised
    assert wide.loc[1, "A layer"] == "2/3" and wide.loc[3, "B layer"] == "-" and wide.loc[1, "R layer"] == "-"
    assert wide.loc[2, "next-word accuracy"] == 0.2
    correlation = brain_vs_nextword(table)
    # By hand: x = (0.3, 0.2, 0.05), y = (0.7, 0.3, 0.2): ranks agree, Spearman 1.
    assert correlation["spearman_rho"] == pytest.approx(1.0)
    x, y = [0.3, 0.2, 0.05], [0.7, 0.3, 0.2]
    mx, my = sum(x) / 3, sum(y) / 3
    r = sum((a - mx) * (b - my) for a, b in zip(x, y)) / (
        sum((a - mx) ** 2 for a in x) ** 0.5 * sum((b - my) ** 2 for b in y) ** 0.5)
    assert correlation["pearson_r"] == pytest.approx(r)
    assert correlation["n_models"] == 3  # m4 has an accuracy but no neural score
    assert brain_vs_nextword(table[table["model"] != "m3"])["pearson_r"] is None  # fewer than 3 models


def test_who_reads_which_benchmark():
    assert scores_benchmark("causal", "reading_times") and scores_benchmark("unigram", "reading_times")
    assert not scores_benchmark("masked", "reading_times") and not scores_benchmark("unigram", "neural")
    assert scores_benchmark("random", "neural")


def test_suite_entries_are_checked():
    params = {"benchmarks": {"suite": {"p": {"benchmark": "Pereira2018.243sentences", "path": "x",
                                             "options": {"atlases": None}}}}}
    benchmark, entry = suite_entry(params, "p")
    assert entry["options"] == {"experiment": "243sentences", "atlases": None}
    assert entry["metric"] == "ridge_pearsonr"
    with pytest.raises(ConfigError, match="expected one of .*Pereira2018.384sentences"):
        suite_entry({"benchmarks": {"suite": {"p": {"benchmark": "Pereira", "path": "x"}}}}, "p")
    with pytest.raises(ConfigError, match=r"options: expected options of the pereira2018 loader .*found atlas$"):
        suite_entry({"benchmarks": {"suite": {"p": {"benchmark": "Pereira2018.384sentences", "path": "x",
                                                    "options": {"atlas": ["MD"]}}}}}, "p")
    _, assembly = suite_entry({"benchmarks": {"suite": {"p": {"benchmark": "Pereira2018.384sentences", "path": "x.nc",
                                                              "source": "brainscore_assembly",
                                                              "options": {"group": "passage_index"}}}}}, "p")
    assert assembly["source"] == "brainscore_assembly" and assembly["options"] == {"group": "passage_index"}
    with pytest.raises(ConfigError, match="expected keys benchmark, path"):
        suite_entry({"benchmarks": {"suite": {"p": {"benchmark": "Fedorenko2016", "pth": "x"}}}}, "p")
