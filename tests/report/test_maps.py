"""The report's accuracy maps show the voxels a test against chance passes, checked against the truth.

A simulated experiment where the vanilla model is the right model (``cls_share: 1``, the simulation's
hidden features a linear read-out of the same two-layer BERT the models encode with), 2 fMRI participants,
12 mm voxels (1,084, 142 of them responsive), three held-out runs of about 130 TRs, one seed: the report's
own functions on the models exported and scored as the pipeline does. On this experiment the fixed
accuracy threshold the maps used to draw (0.7) showed 17 and 24 noise voxels; the circular-shift test
shows 109 and 116 voxels, all responsive. (The session's ``small_experiment`` cannot serve: its
simulation reads MiniLM while its models encode with the tiny BERT, so vanilla predicts its 26 responsive
voxels at 0.54 to 0.58 on runs of 37 TRs, where no test can tell them from chance.)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_stage
from experiments import make_experiment, tiny_encoder

from brainalign.config.params import load_params, section
from brainalign.data.prepared import read_prepared
from brainalign.data.simulated import read_truth
from brainalign.metrics.comparisons import combined_predictable
from brainalign.metrics.table import score_model, wide_scores
from brainalign.report.analyses import above_chance, chance_screen

SUBJECTS = ("1", "2")
SEEDS = [0]  # vanilla's; the hand-made model has two
Q = 0.01


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> dict:
    """The experiment, vanilla trained (stages/train.py) and scored (the score stage's function)."""
    root = tmp_path_factory.mktemp("maps")
    encoder = str(tiny_encoder(root / "tiny-bert", hidden=64))
    make_experiment(root, {
        "simulate.subjects": 2, "simulate.meg_subjects": 0, "simulate.snr": [3.0, 5.0], "simulate.resolution_mm": 12,
        "simulate.runs": 3, "datasets.fmri.runs": [1, 2, 3], "simulate.words_per_run": 600,
        "simulate.region_radius_mm": 24.0, "simulate.cls_share": 1.0, "simulate.encoder": encoder,
        "simulate.encoder_layer": 2, "encode.encoder": encoder, "models.seeds": SEEDS, "vanilla.epochs": 3,
        "models.learning_rate": 1.0e-3, "models.heldout_runs": "all"}, datasets=("fmri",))
    before = os.environ.get("BRAINALIGN_TASK_STORE")
    os.environ["BRAINALIGN_TASK_STORE"] = str(root / "store")
    try:
        code, stderr = run_stage(root, "train", "vanilla", "fmri")
    finally:
        if before is None:
            os.environ.pop("BRAINALIGN_TASK_STORE", None)
        else:
            os.environ["BRAINALIGN_TASK_STORE"] = before
    assert code == 0, stderr
    scoring = section(load_params(root / "params.yaml"), "score")
    table = score_model("vanilla", root / "data/models/vanilla/fmri", root / "data/prepared/fmri", k=scoring["k"],
                        n_draws=scoring["n_draws"], seed=scoring["seed"], draws=scoring["draws"], dataset="fmri")
    truth = {s: read_truth(root / "data/truth", s)["responsive"] for s in SUBJECTS}
    return {"root": root, "scoring": scoring, "wide": wide_scores(table, scoring["anchor"]), "truth": truth}


def _test(experiment: dict, subject: str, model: str = "vanilla", wide: pd.DataFrame | None = None,
          seeds: list[int] = SEEDS):
    root = experiment["root"]
    return above_chance(experiment["wide"] if wide is None else wide, "fmri", [model], subject, seeds,
                        root / "data/models", root / "data/prepared/fmri", experiment["scoring"], q=Q)


def test_map_voxels_are_the_responsive_ones(experiment):
    """Truth: the simulation's responsive voxels. The voxels that pass are nearly all responsive (precision
    >= 0.9), at most 5 % of the noise voxels pass, and most responsive voxels do; the fixed threshold of
    0.7 showed more noise voxels than the test lets through."""
    wide = experiment["wide"]
    old = new = 0
    for subject in SUBJECTS:
        responsive = experiment["truth"][subject]
        test = _test(experiment, subject)
        passes = test.passes
        assert test.n_runs == 3 and test.n_shifts == 10
        assert passes.sum() >= 0.5 * responsive.sum(), f"participant {subject}: {passes.sum()} voxels pass"
        false = int((passes & ~responsive).sum())
        assert false / passes.sum() <= 0.1, f"participant {subject}: {false} of {passes.sum()} pass without signal"
        assert false <= 0.05 * (~responsive).sum()
        accuracy = wide[wide["subject"] == subject].groupby("voxel")["accuracy"].mean().sort_index().to_numpy()
        old, new = old + int(((accuracy > 0.7) & ~responsive).sum()), new + false
    assert old >= 10 and old > 2 * new, f"noise voxels shown: {old} above 0.7, {new} passing the test"
    # The pair screen is the same test of two models' mean: with one model twice, the same voxels.
    twice = wide.assign(model="twin")
    both = pd.concat([wide, twice], ignore_index=True)
    root = experiment["root"]
    (root / "data/models/twin").mkdir(exist_ok=True)
    if not (root / "data/models/twin/fmri").exists():
        (root / "data/models/twin/fmri").symlink_to(root / "data/models/vanilla/fmri")
    np.testing.assert_array_equal(chance_screen(both, "fmri", ("vanilla", "twin"), "1", SEEDS, root / "data/models",
                                                root / "data/prepared/fmri", experiment["scoring"], q=Q),
                                  _test(experiment, "1").passes)


def test_hand_made_predictions_pass_where_they_predict(experiment):
    """Predictions equal to the responses plus small noise on 30 chosen voxels, unrelated noise elsewhere,
    two seeds: the chosen voxels pass, the others do not."""
    root, scoring = experiment["root"], experiment["scoring"]
    model_dir = root / "data/models/oracle/fmri"
    rng = np.random.default_rng(0)
    subject = "1"
    data = read_prepared(root / "data/prepared/fmri", subject)
    chosen = np.zeros(data.responses.shape[1], dtype=bool)
    chosen[rng.choice(chosen.size, 30, replace=False)] = True
    for fold in data.folds:
        y = data.responses[fold.test]
        for seed in (0, 1):
            prediction = rng.standard_normal(y.shape)
            prediction[:, chosen] = y[:, chosen] + 0.3 * y[:, chosen].std(axis=0) * rng.standard_normal((len(y), 30))
            directory = model_dir / subject / f"fold{fold.index}" / f"seed{seed}"
            directory.mkdir(parents=True, exist_ok=True)
            np.save(directory / "predictions.npy", prediction.astype(np.float32))
    table = score_model("oracle", model_dir, root / "data/prepared/fmri", k=scoring["k"], n_draws=scoring["n_draws"],
                        seed=scoring["seed"], draws=scoring["draws"], dataset="fmri")
    test = _test(experiment, subject, "oracle", wide_scores(table, scoring["anchor"]), seeds=[0, 1])
    assert test.n_runs == 3
    np.testing.assert_array_equal(test.passes, chosen)


def _count(caption: str) -> int:
    match = re.search(r": ([\d,]+) of ([\d,]+) voxels pass", caption)
    assert match, caption
    return int(match.group(1).replace(",", ""))


def test_report_maps_show_the_tested_voxels(experiment, monkeypatch, tmp_path):
    """The report's glass brains (score_figures, as the report stage calls it): each caption's count is the
    number of voxels its CSV marks shown, those are the test's voxels, and the participant-mean map shows the
    voxels Stouffer's combination of the participants' z passes (nearly all responsive)."""
    from brainalign.report.pages import score_figures

    root, wide = experiment["root"], experiment["wide"]
    settings = section(load_params(root / "params.yaml"), "report")
    assert "map_threshold" not in settings
    monkeypatch.chdir(root)
    shown = {f.png.name: f for f in score_figures(wide[wide["model"] == "vanilla"], tmp_path, settings,
                                                  experiment["scoring"])}
    zs = []
    for subject in SUBJECTS:
        figure = shown[f"vanilla_fmri_glass_brain_{subject}.png"]
        csv = pd.read_csv(figure.png.with_suffix(".csv"))
        test = _test(experiment, subject)
        zs.append(test.table["z"].to_numpy())
        np.testing.assert_array_equal(csv["shown"], test.passes)
        assert _count(figure.caption) == csv["shown"].sum() > 0
        assert "circular-shift null (10 shifts per held-out run), Benjamini-Hochberg FDR q = 0.01" in figure.caption
        lowest = csv.loc[csv["shown"], "value"].min()
        assert f"(lowest shown accuracy {lowest:.2f})" in figure.caption
    figure = shown["vanilla_fmri_glass_brain_mean.png"]
    csv = pd.read_csv(figure.png.with_suffix(".csv"))
    expected = combined_predictable(np.array(zs), Q)["predictable"].to_numpy()
    np.testing.assert_array_equal(csv["shown"], expected)
    assert _count(figure.caption) == expected.sum() and "Stouffer" in figure.caption
    responsive = experiment["truth"]["1"]
    np.testing.assert_array_equal(responsive, experiment["truth"]["2"])  # one voxel space, one set of regions
    assert expected.sum() >= 0.5 * responsive.sum() and (expected & ~responsive).sum() <= 0.1 * expected.sum()
    assert all(Path(f.png).stat().st_size > 10_000 for f in shown.values())
