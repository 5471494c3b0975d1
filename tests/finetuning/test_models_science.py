"""Which model wins, against the simulation's ground truth (the models and results issues' acceptance).

Two simulated experiments, two fMRI participants each, 8 mm voxels, held-out run 1, the packaged MiniLM:

``need``     ``cls_share: 0``, ``n_features: 2``: the hidden features are each word's length and unigram
             log-frequency, held for the word's duration, which the frozen final ``[CLS]`` carries only
             partly; fine-tuning has something to find. SNR 8-12, responsive spheres of 24 mm (475 of 3,666
             voxels), runs of 1,600, 400, 400 and 400 words: the held-out run 1 is long (365 TRs), so a
             voxel's accuracy is measured to +-0.08 instead of +-0.18, while the model trains on 3 x 80 TRs.
``optimal``  ``cls_share: 1``: the hidden features are a linear projection of the frozen ``[CLS]``. The
             vanilla model is the right model; fine-tuning can only add noise. SNR 3-5, 300 words a run.

Models (the task library, exactly as the stages build them): vanilla (10 head epochs) and fine-tuned (the
same 10 head epochs, then 4 full epochs), learning rate 1e-4 for both (the paper's 5e-5 needs more epochs
than a test can afford; the schedule shape is the paper's). Participant-transfer: a new head (30 epochs)
for the other participant on the frozen encoder of the most predictable participant's fine-tuned model,
against a vanilla head trained as long (the paper matches the epochs of the models it compares).

Scores: 20 vs 20 accuracy (1000 draws, the score stage's function) of the held-out run on the responsive
voxels, which only the simulation knows. The comparison statistics (curves, the FDR map) run the report's
own functions on the models exported and scored as the pipeline does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPOSITORY
from experiments import make_experiment

from brainalign.report.analyses import chance_screen, compare_pair, seed_matrix, seed_means
from brainalign.finetuning.grid import Grid, export, grid_from_params
from brainalign.finetuning.recipes.participant_transfer import most_predictable
from brainalign.config.params import load_params, section
from brainalign.data.prepared import read_prepared
from brainalign.data.simulated import read_truth
from brainalign.metrics.comparisons import comparison_curves, voxel_ttest
from brainalign.metrics.kvsk import draw_kvsk, kvsk_accuracy
from brainalign.metrics.table import score_model, wide_scores
from brainalign.finetuning.tasks import Task, read_task_predictions, run_task

SEEDS = (0, 1)
RUN = 1
SUBJECTS = ("1", "2")
SIMULATION = {"simulate.subjects": 2, "simulate.meg_subjects": 1, "simulate.snr": [3.0, 5.0],
              "simulate.resolution_mm": 8, "models.learning_rate": 1.0e-4}
NEED = {"simulate.cls_share": 0.0, "simulate.n_features": 2, "simulate.snr": [8.0, 12.0],
        "simulate.region_radius_mm": 24.0, "simulate.words_per_run": [1600, 400, 400, 400]}
HEAD, FULL = 10, 4
TRANSFER_HEAD = 30  # a new head on a changed encoder needs more than 10 epochs at 1e-4 to settle


def _grid(root: Path) -> Grid:
    grid = grid_from_params(load_params(root / "params.yaml"))
    grid.prepared_root, grid.features_root = root / "data/prepared", root / "data/features"
    return grid


def _accuracy(root: Path, store: Path, task: Task, subject: str) -> float:
    data = read_prepared(root / "data/prepared/fmri", subject)
    fold = next(f for f in data.folds if f.heldout_run == RUN)
    responsive = read_truth(root / "data/truth", subject)["responsive"]
    targets, distractors = draw_kvsk(len(fold.test), 20, 1000, np.random.default_rng([7, int(subject)]))
    predictions = read_task_predictions(store, task, "fmri", subject)
    return float(kvsk_accuracy(data.responses[fold.test][:, responsive], predictions[:, responsive],
                               targets, distractors).mean())


def _train(root: Path) -> dict:
    """Vanilla and fine-tuned for every participant and seed: accuracies and the tasks."""
    grid, store = _grid(root), root / "store"
    out = {"vanilla": {}, "finetuned": {}, "tasks": {}}
    for seed in SEEDS:
        for subject in SUBJECTS:
            for model, phases in (("vanilla", [["head", HEAD]]), ("finetuned", [["head", HEAD], ["full", FULL]])):
                task = grid.task(model, f"{model}/fmri/{subject}/run{RUN}/seed{seed}", [("fmri", subject)], RUN,
                                 seed, phases)
                result = run_task(task, store, root / "data/prepared", root / "data/features", progress=False)
                out[model][subject, seed] = _accuracy(root, store, task, subject)
                out["tasks"][model, subject, seed] = (task, result)
    return out


@pytest.fixture(scope="module")
def need(tmp_path_factory) -> tuple[Path, dict]:
    root = make_experiment(tmp_path_factory.mktemp("need"), {**SIMULATION, **NEED}, datasets=("fmri",))
    return root, _train(root)


@pytest.fixture(scope="module")
def optimal(tmp_path_factory) -> tuple[Path, dict]:
    root = make_experiment(tmp_path_factory.mktemp("optimal"), {**SIMULATION, "simulate.cls_share": 1.0,
                                                                "simulate.words_per_run": 300}, datasets=("fmri",))
    return root, _train(root)


def test_paired_models_share_their_head_phase(need):
    """Same seed: vanilla and the fine-tuned model's head phase see the same head and data order, so their
    per-epoch training losses agree; another seed changes the order."""
    _, results = need
    for subject in SUBJECTS:
        vanilla = [r["loss"] for r in results["tasks"]["vanilla", subject, 0][1]["history"]]
        tuned = [r["loss"] for r in results["tasks"]["finetuned", subject, 0][1]["history"]][:HEAD]
        other = [r["loss"] for r in results["tasks"]["vanilla", subject, 1][1]["history"]]
        np.testing.assert_allclose(vanilla, tuned, rtol=1e-6)
        assert not np.allclose(vanilla, other, rtol=1e-6)


def test_finetuning_beats_vanilla_when_it_is_needed(need):
    _, results = need
    for key, vanilla in results["vanilla"].items():
        tuned = results["finetuned"][key]
        assert tuned > vanilla, f"participant {key[0]}, seed {key[1]}: fine-tuned {tuned:.3f} <= vanilla {vanilla:.3f}"
    gains = [results["finetuned"][k] - v for k, v in results["vanilla"].items()]
    assert np.mean(gains) > 0.005


def test_finetuning_does_not_beat_an_optimal_vanilla(optimal):
    """With the [CLS] read-out optimal, fine-tuning gains no more than seeds differ among themselves."""
    _, results = optimal
    for subject in SUBJECTS:
        tuned = [results["finetuned"][subject, s] for s in SEEDS]
        gains = [results["finetuned"][subject, s] - results["vanilla"][subject, s] for s in SEEDS]
        seed_noise = max(max(tuned) - min(tuned), 0.005)
        assert np.mean(gains) <= seed_noise, f"participant {subject}: gains {gains}, seed noise {seed_noise:.4f}"


def test_participant_transfer_beats_vanilla_on_the_other_participant(need):
    root, results = need
    grid, store = _grid(root), root / "store"
    vanilla_tasks = [results["tasks"]["vanilla", s, seed][0] for s in SUBJECTS for seed in SEEDS]
    export(vanilla_tasks, store, root / "data/models/vanilla/fmri", dataset="fmri", prepared_root=root / "data/prepared")
    # The source is chosen on the other runs only: the vanilla model's predictions there are needed.
    others = []
    for run in (2, 3, 4):
        for subject in SUBJECTS:
            task = grid.task("vanilla", f"vanilla/fmri/{subject}/run{run}/seed0", [("fmri", subject)], run, 0,
                             [["head", HEAD]])
            run_task(task, store, root / "data/prepared", root / "data/features", progress=False)
            others.append(task)
    export(vanilla_tasks + others, store, root / "data/models/vanilla/fmri", dataset="fmri",
           prepared_root=root / "data/prepared")
    source = most_predictable(root / "data/models/vanilla/fmri", root / "data/prepared/fmri", RUN)
    snr = {s: float(read_truth(root / "data/truth", s)["snr"]) for s in SUBJECTS}
    assert source == max(snr, key=snr.get)  # the better-predicted participant is the one with more signal
    target = next(s for s in SUBJECTS if s != source)
    for seed in SEEDS:
        tuned = results["tasks"]["finetuned", source, seed][0]
        transfer = grid.task("participant_transfer", f"participant_transfer/fmri/{target}/run{RUN}/seed{seed}",
                             [("fmri", target)], RUN, seed, [["head", TRANSFER_HEAD]], source=tuned)
        result = run_task(transfer, store, root / "data/prepared", root / "data/features", progress=False)
        assert result["encoder_from"] == tuned.id and not result["encoder_trained"]
        # The vanilla model it is compared with trains as many head epochs (the paper matches them).
        vanilla = grid.task("vanilla", f"vanilla/fmri/{target}/run{RUN}/seed{seed}/matched", [("fmri", target)], RUN,
                            seed, [["head", TRANSFER_HEAD]])
        run_task(vanilla, store, root / "data/prepared", root / "data/features", progress=False)
        transferred, matched = _accuracy(root, store, transfer, target), _accuracy(root, store, vanilla, target)
        assert transferred > matched, f"seed {seed}: transfer {transferred:.4f} <= vanilla {matched:.4f}"


# ---------------------------------------------------------------------------------------------------------
# The comparison statistics (results issue): curves and FDR maps against the simulation's truth
# ---------------------------------------------------------------------------------------------------------

MAP_SEEDS = (0, 1, 2)  # the voxel t-test runs across initialisations: three, its least (the paper: 100)


def _map_tasks(root: Path, model: str, phases: list, seeds: tuple[int, ...]) -> list[Task]:
    grid, store = _grid(root), root / "store"
    tasks = []
    for seed in seeds:
        task = grid.task(model, f"{model}/fmri/1/run{RUN}/seed{seed}", [("fmri", "1")], RUN, seed, phases)
        run_task(task, store, root / "data/prepared", root / "data/features", progress=False)  # seeds 0, 1: stored
        tasks.append(task)
    return tasks


@pytest.fixture(scope="module")
def need_map(need):
    """Participant 1 of the need set, vanilla and fine-tuned over MAP_SEEDS, exported and scored as the
    pipeline does (into ``maps/``, laid out as a pipeline's ``data/``; the score stage's function); the
    report's comparison on top."""
    root, _ = need
    params = load_params(root / "params.yaml")
    scoring = section(params, "score")
    (root / "maps/data").mkdir(parents=True)
    (root / "maps/data/prepared").symlink_to(root / "data/prepared")
    models_root = root / "maps/data/models"
    tables = []
    for model, phases in (("vanilla", [["head", HEAD]]), ("finetuned", [["head", HEAD], ["full", FULL]])):
        export(_map_tasks(root, model, phases, MAP_SEEDS), root / "store", models_root / model / "fmri",
               dataset="fmri", prepared_root=root / "data/prepared")
        tables.append(score_model(model, models_root / model / "fmri", root / "data/prepared/fmri", k=scoring["k"],
                                  n_draws=scoring["n_draws"], seed=scoring["seed"], draws=scoring["draws"],
                                  dataset="fmri"))
    wide = wide_scores(pd.concat(tables, ignore_index=True), scoring["anchor"])

    def screen(subject, seeds):
        return chance_screen(wide, "fmri", ("vanilla", "finetuned"), subject, seeds, models_root,
                             root / "data/prepared/fmri", scoring, q=0.01)

    means = seed_means(wide)
    pair = compare_pair(means, "fmri", "vanilla", "finetuned", q=0.01, screen=screen)
    accuracies = [seed_matrix(means, "fmri", model, "1", list(MAP_SEEDS)) for model in ("vanilla", "finetuned")]
    return pair, *accuracies, read_truth(root / "data/truth", "1")["responsive"], wide, root / "maps"


def test_comparison_curve_is_positive_when_finetuning_is_needed(need_map):
    """The curve's mean difference is positive for every seed: over the best tenth of the voxels, over all
    voxels (its last point) and over the responsive voxels alone."""
    pair, vanilla, tuned, responsive, _, _ = need_map
    curves = pair.curves["1"]
    np.testing.assert_allclose(curves, comparison_curves(vanilla, tuned))
    tenth = curves.shape[1] // 10
    assert (curves[:, tenth - 1] > 0.01).all(), f"per seed, mean difference over the best tenth: {curves[:, tenth - 1]}"
    assert (curves[:, -1] > 0).all(), f"per seed, mean difference over all voxels: {curves[:, -1]}"
    responsive_only = comparison_curves(vanilla[:, responsive], tuned[:, responsive])[:, -1]
    assert (responsive_only > 0.01).all(), f"per seed, over the responsive voxels: {responsive_only}"


def test_fdr_map_finds_responsive_voxels_only(need_map):
    """The report's map (t-test across seeds, BH q = .01, on the voxels the pair predicts above chance):
    its significant voxels lie in the responsive regions, false discovery proportion <= 5 %."""
    pair, _, _, responsive, _, _ = need_map
    test = pair.tests["1"]
    significant = test["significant"].to_numpy()
    tested = test["p"].notna().to_numpy()
    assert (tested & responsive).sum() >= 0.5 * responsive.sum(), "the screen lost most responsive voxels"
    assert (tested & ~responsive).sum() <= 0.05 * tested.sum(), f"{(tested & ~responsive).sum()} noise voxels tested"
    assert significant.sum() >= 10, f"only {significant.sum()} significant voxels"
    false = int((significant & ~responsive).sum())
    assert false / significant.sum() <= 0.05, f"{false} of {significant.sum()} significant voxels are not responsive"
    assert (test.loc[significant, "difference"] > 0).mean() > 0.9  # fine-tuning helps where it is significant


def test_report_stage_draws_the_screened_map(need_map, tmp_path, monkeypatch):
    """The report stage's own comparison code on the same models: its map is the screened test above,
    and its caption says how many voxels were tested and found."""
    from brainalign.report.pages import comparison_figures

    pair, _, _, _, wide, layout = need_map
    params = load_params(REPOSITORY / "params.yaml")
    settings = {**section(params, "report"), "comparisons": [["vanilla", "finetuned"]], "q": 0.01}
    monkeypatch.chdir(layout)
    shown, _ = comparison_figures(wide, tmp_path, settings, section(load_params(layout.parent / "params.yaml"), "score"))
    (vanilla_map,) = [f for f in shown if f.title.endswith("participant 1: voxel map")]
    test = pair.tests["1"]
    assert (f"on the {int(test['p'].notna().sum())} voxels the two models predict above chance"
            in vanilla_map.caption)
    assert f"{int(test['significant'].sum())} significant voxels" in vanilla_map.caption
    assert vanilla_map.png.exists() and vanilla_map.png.with_suffix(".csv").exists()


def test_identical_models_declare_about_q_of_voxels(need):
    """The same model (vanilla) with different seeds, paired 0-2 against 3-5, every voxel tested (no
    screen): at most about q significant."""
    root, _ = need
    params = load_params(root / "params.yaml")
    scoring = section(params, "score")
    data = read_prepared(root / "data/prepared/fmri", "1")
    fold = next(f for f in data.folds if f.heldout_run == RUN)
    targets, distractors = draw_kvsk(len(fold.test), scoring["k"], scoring["n_draws"], np.random.default_rng(0))
    halves = []
    for seeds in (MAP_SEEDS, tuple(s + len(MAP_SEEDS) for s in MAP_SEEDS)):
        halves.append(np.array([kvsk_accuracy(data.responses[fold.test],
                                              read_task_predictions(root / "store", task, "fmri", "1"),
                                              targets, distractors)
                                for task in _map_tasks(root, "vanilla", [["head", HEAD]], seeds)]))
    significant = voxel_ttest(*halves, q=0.01)["significant"].to_numpy()
    assert significant.mean() <= 0.02, f"{significant.sum()} of {len(significant)} voxels significant"
