"""The probing experiment against the simulation's planted truth (issue 18's acceptance).

FReM finds each planted feature in its region (held out, above the dummy, significant after BH) and in at
most 5 % of the other region x feature pairs whose feature is not correlated with a planted one; the probes
find each layer-planted feature best at its layer; the alignment of a region planted with a layer's feature
peaks at that layer and above every unplanted region.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from brainalign.probing.experiment import (decode_brain, probe_model, probing_plan, probing_tables, read_recordings,
                                           story_segments)
from brainalign.probing.features import read_story_features
from brainalign.probing.simulate import PROBING_REGIONS, ProbingSimulation, write_probing_simulation
from brainalign.runs.store import TaskStore

UNPLANTED = ["Frontal_Inf_Oper_R", "Temporal_Sup_R", "Frontal_Inf_Orb_L", "Angular_R"]
EXTRA_FEATURES = ["pos/NN", "pos/DT", "length/sentence_length", "characters/tamsin"]


def params(root) -> dict:
    settings = ProbingSimulation()
    planted_regions = [r for _, r in settings.planted]
    return {"probing": {
        "data": str(root / "raw/fmri"), "participants": "all", "features": str(root / "raw/story_features.mat"),
        "groups": None, "encoder": "minilm", "kinds": ["embedding"], "delays": [2], "drop_start": 20, "drop_end": 15,
        "alphas": [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0], "n_permutations": 100, "seed": 0,
        "regions": planted_regions + UNPLANTED, "frem_features": [f for f, _ in settings.planted] + EXTRA_FEATURES,
        "cv": 5, "clustering_percentile": 30, "screening_percentile": 4, "n_shifts": 50, "alpha_fdr": 0.05,
        "families": None, "workers": 2}}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("probing")
    truth = write_probing_simulation(root / "raw", root / "truth", ProbingSimulation(), progress=False)
    plan = probing_plan(params(root))
    recordings = read_recordings(plan)
    segments = story_segments(plan, recordings[0])
    store = TaskStore(root / "tasks")
    probes = probe_model(segments, plan, store, progress=False)
    frem = decode_brain(recordings, segments, plan, store, progress=False)
    return {"root": root, "truth": truth, "plan": plan, "segments": segments, "probes": probes, "frem": frem,
            "tables": probing_tables(probes, frem, plan), "store": store, "recordings": recordings}


def test_files_are_the_release_layout_with_their_truth(experiment):
    root, truth = experiment["root"], experiment["truth"]
    features = read_story_features(root / "raw/story_features.mat",
                                   n_entries=len(experiment["recordings"][0].words))
    assert {"pos", "dependency", "length", "punctuation", "characters", "motion", "emotion", "verbs",
            "simulated"} <= {g.type for g in features.groups}
    assert json.loads((root / "truth/truth.json").read_text())["planted"] == truth["planted"]
    # Four words a TR of 2 s.
    assert np.median([len(t.split()) for t in experiment["segments"].text]) == 4
    assert experiment["segments"].kinds()[experiment["segments"].names.index("simulated/state")] == "binary"


def test_frem_finds_the_planted_features_in_their_regions_and_little_else(experiment):
    truth, tables = experiment["truth"], experiment["tables"]
    group = tables.frem[tables.frem["subject"] == "mean"].set_index(["region", "feature"])
    planted = {tuple(pair[::-1]) for pair in truth["planted"]}
    for region, feature in planted:
        row = group.loc[(region, feature)]
        assert row["significant"] and row["gain"] > 0, (region, feature, row.to_dict())
    assert group.loc[("Angular_L", "simulated/state"), "metric"] == "roc_auc"
    correlation = truth["max_abs_correlation_with_planted"]
    clean = [(r, f) for r, f in group.index if (r, f) not in planted and correlation[r][f] < truth["implied_correlation"]]
    found = [pair for pair in clean if group.loc[pair, "significant"]]
    assert len(clean) >= 40
    assert len(found) <= 0.05 * len(clean), found


def test_probes_find_each_planted_layer(experiment):
    probes = experiment["probes"]
    for feature, layer in experiment["truth"]["layers"].items():
        rows = probes[(probes["kind"] == "embedding") & (probes["feature"] == feature)].set_index("layer")
        assert rows["r2"].idxmax() == layer, rows["r2"].to_dict()
        assert rows.loc[layer, "significant"] and rows.loc[layer, "r2"] > 0.5
    # The binary state is a property of no text: no layer carries it.
    state = probes[probes["feature"] == "simulated/state"]
    assert not state["significant"].any() and (state["r2"] < 0.05).all()


def test_alignment_peaks_where_the_layers_were_planted(experiment):
    truth, alignment = experiment["truth"], experiment["tables"].alignment
    table = alignment[(alignment["kind"] == "embedding") & (alignment["family"] == "all")]
    matrix = table.pivot(index="region", columns="layer", values="cosine")
    layer_of = truth["layers"]
    unplanted_best = np.nanmax(matrix.loc[UNPLANTED].to_numpy(), initial=0.0)
    for feature, region in truth["planted"]:
        if feature in layer_of:
            assert matrix.loc[region].idxmax() == layer_of[feature], matrix.loc[region].to_dict()
            assert matrix.loc[region].max() > unplanted_best
    assert experiment["tables"].summary["best_layer_of_region"]["embedding"]["Frontal_Inf_Tri_L"] == 2


def test_tidy_table_holds_both_sides_held_out(experiment):
    scores = experiment["tables"].scores
    assert set(scores["side"]) == {"model", "brain"}
    assert set(scores["metric"]) == {"r2", "roc_auc"}
    brain = scores[scores["side"] == "brain"]
    assert set(brain["subject"]) == {"1", "2", "mean"}
    assert set(brain["unit"]) == set(params(experiment["root"])["probing"]["regions"])
    assert set(scores["group"]) >= {"simulated", "pos", "length", "characters"}


def test_frem_tasks_are_reused_and_identical(experiment):
    again = decode_brain(experiment["recordings"], experiment["segments"], experiment["plan"], experiment["store"],
                         progress=False)
    pd.testing.assert_frame_equal(again, experiment["frem"])
    assert len(list((experiment["root"] / "tasks/frem").iterdir())) == len(experiment["frem"])


def test_unknown_regions_and_features_fail_with_one_message(experiment):
    from brainalign.errors import ConfigError

    bad = params(experiment["root"])
    bad["probing"]["regions"] = ["Broca"]
    plan = probing_plan(bad)
    with pytest.raises(ConfigError, match="unknown region"):
        decode_brain(experiment["recordings"][:1], experiment["segments"], plan, experiment["store"], progress=False)
    bad["probing"]["regions"] = list(PROBING_REGIONS)[:1]
    bad["probing"]["frem_features"] = ["pos/XX"]
    with pytest.raises(ConfigError, match="probing.frem_features"):
        decode_brain(experiment["recordings"][:1], experiment["segments"], probing_plan(bad), experiment["store"],
                     progress=False)
