"""The report's pages: which figures a finished experiment calls for, their captions, and the HTML page.

:func:`report_settings` checks the ``report`` section; :func:`write_figures` draws every figure (with the
CSV of its numbers) into ``reports/figures`` atomically; :func:`write_page` writes ``reports/index.html``.
The stage adds the MLflow run ids (``runs``), since this package does not import tracking.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from brainalign.config.params import section
from brainalign.data.atlas import language_region_labels
from brainalign.data.hp_meg import bins_per_sensor
from brainalign.data.prepared import read_prepared
from brainalign.errors import ConfigError, InputError
from brainalign.files import atomic_path, write_json
from brainalign.finetuning.recipes import RECIPES
from brainalign.metrics.comparisons import combined_predictable
from brainalign.metrics.table import read_brain_model_rows, summarise, wide_scores
from brainalign.nlu.sample import NOTICE as GLUE_NOTICE
from brainalign.report import figures
from brainalign.report.analyses import (
    above_chance,
    attention_by_model,
    chance_screen,
    changed_examples,
    compare_pair,
    seed_matrix,
    seed_means,
)
from brainalign.report.brainscore import benchmark_figures, benchmark_tables
from brainalign.report.decoding import decoding_figures, decoding_tables
from brainalign.report.probing import probing_figures, probing_tables
from brainalign.report.vision import vision_figures, vision_tables
from brainalign.report.encoding import encoding_figures, encoding_tables
from brainalign.report.drawing import Drawer, inline
from brainalign.report.html import Figure, write_report

GLUE_TABLE = "reports/glue/table1.csv"
PREPARED, FEATURES, MODELS_ROOT, TABLE = \
    "data/prepared", "data/features", "data/models", "data/scores/scores.parquet"
FIGURES, REPORT = "reports/figures", "reports/index.html"
KEYS = ["map_vmax", "comparisons", "q", "map_screen", "changed_threshold", "attention", "features"]


def chance_tests(wide: pd.DataFrame, means: pd.DataFrame, scoring: dict, q: float) -> dict[tuple, tuple]:
    """Every voxel map's test against chance, ``(dataset, model, subject) -> (ChanceTest, n_seeds)``."""
    out = {}
    for (name, model, subject), _ in means.groupby(["dataset", "model", "subject"], sort=False):
        if read_prepared(Path(PREPARED) / name, str(subject)).coords is None:
            continue
        rows = wide[(wide["dataset"] == name) & (wide["model"] == model) & (wide["subject"] == subject)]
        seeds = sorted(int(s) for s in rows["seed"].unique())
        out[(name, model, str(subject))] = (above_chance(wide, name, [model], str(subject), seeds, MODELS_ROOT,
                                                         Path(PREPARED) / name, scoring, q=q), len(seeds))
    return out


def score_figures(wide: pd.DataFrame, out: Path, settings: dict, scoring: dict,
                  draw: Callable[..., None] = inline) -> list[Figure]:
    """Per dataset and model: the accuracy distribution, and the figure its channels call for.

    Voxel datasets get one glass brain per participant and, when the participants share one voxel space,
    one of their mean; each shows only the voxels whose accuracy passes a test against chance
    (:func:`brainalign.report.analyses.above_chance`; for the mean, the participants' z combined,
    :func:`brainalign.metrics.comparisons.combined_predictable`), Benjamini-Hochberg at ``report.q``.
    ``draw(function, *args)`` draws each figure (:class:`brainalign.report.drawing.Drawer`: in workers).
    """
    means = wide.groupby(["dataset", "model", "subject", "voxel"], sort=False)["accuracy"].mean().reset_index()
    q, k, vmax = settings["q"], int(scoring["k"]), settings["map_vmax"]
    chance = chance_tests(wide, means, scoring, q)
    shown = []
    for (name, model), scores in means.groupby(["dataset", "model"], sort=False):
        stem = f"{model}_{name}"
        draw(figures.accuracy_distribution, scores, out / f"{stem}_accuracy_distribution.png")
        shown.append(Figure(f"Scores: {model}", f"{model} on {name}: distribution of {k} vs {k} accuracy",
                            out / f"{stem}_accuracy_distribution.png", "Per channel, mean over held-out runs and "
                            "initialisations; chance (0.5) dashed."))
        spaces = {}
        for subject, voxels in scores.groupby("subject", sort=False):
            space = read_prepared(Path(PREPARED) / name, str(subject))
            if space.coords is not None:
                test, n_seeds = chance[(name, model, str(subject))]
                spaces[subject] = (space, voxels.sort_values("voxel")["accuracy"].to_numpy(), test, n_seeds)
        for subject, (space, accuracy, test, n_seeds) in spaces.items():
            path = out / f"{stem}_glass_brain_{subject}.png"
            passes = test.passes
            draw(figures.glass_brain, accuracy, passes, space.coords, space.affine, space.volume_shape, path,
                 title=f"{model} ({name}), participant {subject}: {int(passes.sum()):,} voxels pass",
                 vmax=vmax)
            shown.append(Figure(f"Scores: {model}", f"{model} on {name}, participant {subject}: accuracy map",
                                path, f"Voxels whose held-out {k} vs {k} accuracy (mean over {test.n_runs} held-out "
                                f"run(s) and {n_seeds} initialisation(s)) is above a circular-shift null "
                                f"({test.n_shifts} shifts per held-out run), Benjamini-Hochberg FDR q = {q}: "
                                f"{_passing(accuracy, passes)} Colour up to {vmax}."))
        shared = [sp for sp, *_ in spaces.values()]
        if len(shared) > 1 and all(np.array_equal(sp.coords, shared[0].coords) for sp in shared):
            # Participants in one voxel space (MNI, same mask): a voxel shown passes the test of the mean.
            path = out / f"{stem}_glass_brain_mean.png"
            accuracy = np.mean([acc for _, acc, *_ in spaces.values()], axis=0)
            tests = [test for _, _, test, _ in spaces.values()]
            combined = combined_predictable(np.array([t.table["z"].to_numpy() for t in tests]), q)
            passes = combined["predictable"].to_numpy()
            draw(figures.glass_brain, accuracy, passes, shared[0].coords, shared[0].affine, shared[0].volume_shape,
                 path, title=f"{model} ({name}), mean of {len(shared)}: {int(passes.sum()):,} voxels pass",
                 vmax=vmax)
            shown.append(Figure(f"Scores: {model}", f"{model} on {name}: accuracy map, mean of participants", path,
                                f"Voxels whose held-out {k} vs {k} accuracy, mean of the {len(shared)} participants, "
                                f"is above chance: each participant's z against the circular-shift null "
                                f"({min(t.n_shifts for t in tests)} shifts per held-out run) combined as Stouffer's "
                                f"sum / √{len(shared)}, Benjamini-Hochberg FDR q = {q}: "
                                f"{_passing(accuracy, passes)} Colour up to {vmax}."))
        first = read_prepared(Path(PREPARED) / name, str(scores["subject"].iloc[0]))
        if first.modality == "meg":
            path = out / f"{stem}_time_course.png"
            draw(figures.meg_time_course, scores, bins_per_sensor(first.channel_names), path,
                 title=f"{model} ({name}): 20 vs 20 accuracy after word onset")
            shown.append(Figure(f"Scores: {model}", f"{model} on {name}: accuracy after word onset", path))
        elif first.coords is None and first.channel_names is not None:
            path = out / f"{stem}_regions.png"
            draw(figures.channel_accuracy, scores, first.channel_names, path,
                 title=f"{model} ({name}): 20 vs 20 accuracy per region")
            shown.append(Figure(f"Scores: {model}", f"{model} on {name}: accuracy per region", path))
    return shown


def _passing(accuracy: np.ndarray, passes: np.ndarray) -> str:
    """The caption's count: "123 of 8,712 voxels pass (lowest shown accuracy 0.61)."."""
    count = f"{int(passes.sum()):,} of {len(passes):,} voxels pass"
    return f"{count} (lowest shown accuracy {accuracy[passes].min():.2f})." if passes.any() else f"{count}."


def comparison_figures(wide: pd.DataFrame, out: Path, settings: dict, scoring: dict,
                       draw: Callable[..., None] = inline) -> tuple[list[Figure], pd.DataFrame]:
    """Curves, voxel maps and paired tests for every pair ``report.comparisons`` names that was scored
    (each figure drawn by ``draw``, as in :func:`score_figures`)."""
    means = seed_means(wide)
    shown, tests = [], []
    for model_a, model_b in settings["comparisons"]:
        for name in dict.fromkeys(means["dataset"]):
            scored = set(means.loc[means["dataset"] == name, "model"])
            if model_a not in scored or model_b not in scored:
                continue
            def screen(subject, seeds, name=name, models=(model_a, model_b)):
                return chance_screen(wide, name, models, subject, seeds, MODELS_ROOT, Path(PREPARED) / name, scoring,
                                     q=settings["q"])

            pair = compare_pair(means, name, model_a, model_b, q=settings["q"],
                                screen=screen if settings["map_screen"] else None)
            stem = f"{model_b}_vs_{model_a}_{name}"
            section_name = f"{model_b} against {model_a}"
            path = out / f"{stem}_curves.png"
            draw(figures.comparison_curve_figure, pair.curves, path, f"{model_b} − {model_a} ({name})", model_a,
                 model_b)
            n_seeds = max(len(s) for s in pair.seeds.values())
            shown.append(Figure(section_name, f"{model_b} − {model_a} on {name}: comparison curves", path,
                                "Voxels sorted by the larger of the two accuracies; at x, the mean difference over the "
                                f"x best. One line per participant, their mean in black, a ±1 SD band over "
                                f"{n_seeds} initialisation(s)."))
            if pair.across_participants:
                tests.append({"comparison": f"{model_b} − {model_a}", "dataset": name,
                              **{k: v for k, v in pair.across_participants.items()}})
            for subject, test in pair.tests.items():
                space = read_prepared(Path(PREPARED) / name, str(subject))
                if space.coords is None:
                    continue
                path = out / f"{stem}_map_{subject}.png"
                regions = language_region_labels(space.coords, space.affine) > 0
                if test is None:
                    difference = (seed_matrix(means, name, model_b, subject, pair.seeds[subject]).mean(axis=0)
                                  - seed_matrix(means, name, model_a, subject, pair.seeds[subject]).mean(axis=0))
                    draw(figures.voxel_map_figure, difference, np.ones_like(difference, dtype=bool), space.coords,
                         space.affine, space.volume_shape, path,
                         f"{model_b} − {model_a}, participant {subject}: raw difference "
                         f"({len(pair.seeds[subject])} initialisation(s))", regions=regions, tested=False)
                    caption = ("Fewer than 3 shared initialisations: the raw difference, untested. Set models.seeds "
                               "to 3 or more for the t-test and FDR map.")
                else:
                    draw(figures.voxel_map_figure, test["difference"].to_numpy(), test["significant"].to_numpy(),
                         space.coords, space.affine, space.volume_shape, path,
                         f"{model_b} − {model_a}, participant {subject}: significant voxels (q = {settings['q']})",
                         regions=regions)
                    tested = ("every voxel" if not settings["map_screen"] else
                              f"the {int(test['p'].notna().sum())} voxels the two models predict above chance "
                              f"(circular-shift null, BH at q = {settings['q']})")
                    caption = (f"Related-samples t-test across {len(pair.seeds[subject])} initialisations per voxel on "
                               f"{tested}, Benjamini-Hochberg at q = {settings['q']}: "
                               f"{int(test['significant'].sum())} significant voxels.")
                shown.append(Figure(section_name, f"{model_b} − {model_a} on {name}, participant {subject}: voxel map",
                                    path, caption + " Colour saturates at the 95th percentile of |difference|; "
                                    "language regions outlined."))
    return shown, pd.DataFrame(tests)


def model_figures(params: dict, out: Path, settings: dict) -> list[Figure]:
    """Attention from [CLS] and the changed examples: vanilla against fine-tuned, on the fMRI dataset."""
    fmri = params["models"]["fmri"]
    vanilla, finetuned = Path(MODELS_ROOT) / "vanilla" / fmri, Path(MODELS_ROOT) / "finetuned"
    shown = []
    if settings["attention"] and (finetuned / "checkpoints").is_dir():
        base, tuned = attention_by_model(finetuned, PREPARED, FEATURES)
        path = out / "attention_vanilla_vs_finetuned.png"
        figures.attention_figure(base, tuned, path, label_a="vanilla", label_b="fine-tuned")
        shown.append(Figure("Attention", "Attention from [CLS] per layer, vanilla against fine-tuned", path,
                            "Averaged over heads; mean ± SE over held-out presentations, heads and initialisations "
                            "(the vanilla encoder is the same for every initialisation)."))
    if (finetuned / fmri).is_dir() and vanilla.is_dir():
        changes, prevalence = changed_examples(vanilla, finetuned / fmri, Path(PREPARED) / fmri,
                                               threshold=settings["changed_threshold"], features=settings["features"])
        changes.to_csv(out / "changed_examples.csv", index=False)
        path = out / "changed_examples_features.png"
        n_changed = int(changes["changed"].sum())
        figures.changed_examples_figure(prevalence, path, f"Features of changed (|change| ≥ "
                                        f"{settings['changed_threshold']:g} %: {n_changed}) and unchanged "
                                        f"({len(changes) - n_changed}) examples")
        shown.append(Figure("Which examples changed", "Word features of the examples fine-tuning changed", path,
                            "Per held-out example, the percent change of the prediction-to-target distance from "
                            "vanilla to fine-tuned (mean over initialisations); bars: the features' mean in changed "
                            "and unchanged examples, ± bootstrap SE (100 samples). Per-example changes: "
                            "changed_examples.csv."))
    return shown


def report_settings(params: dict) -> dict:
    """The ``report`` section, checked."""
    settings = section(params, "report", KEYS)
    for pair in settings["comparisons"]:
        if not (isinstance(pair, list) and len(pair) == 2 and all(m in RECIPES for m in pair)):
            raise ConfigError(f"params.yaml: report.comparisons: expected pairs of models from {RECIPES.names()}, "
                              f"found {pair!r}")
    if not isinstance(settings["map_screen"], bool):
        raise ConfigError(f"params.yaml: report.map_screen: expected true or false, found {settings['map_screen']!r}")
    return settings


def pipeline_stages(params: dict) -> list[str]:
    """The DVC stages of the pipeline, in order, as params.yaml's datasets and the recipes make them."""
    stages = ["simulate"] + [f"{stage}@{name}" for stage in ("validate", "prepare", "encode", "features", "encoding")
                             for name in params["datasets"]]
    for name in sorted(RECIPES.names(), key=lambda n: not RECIPES.get(n).per_dataset):
        recipe = RECIPES.get(name)
        stages += [recipe.stage(d) for d in params["datasets"]] if recipe.per_dataset else [recipe.stage(None)]
    stages += ["score", "glue", "simulate_benchmarks"]
    stages += [f"benchmark@{key}" for key in params.get("benchmarks", {}).get("suite", {})]
    stages += ["nextword", "leaderboard", "simulate_decoding"]
    stages += [f"trajectory@{key}" for key in params.get("decoding", {}).get("trajectories", {})]
    return stages + ["decode", "simulate_probing", "probe", "frem", "align", "simulate_vision", "fwrf", "gnet",
                     "transfer", "report"]


def write_figures(params: dict, settings: dict, out: str | Path = FIGURES) -> tuple[list[Figure], pd.DataFrame]:
    """Every figure and ``comparison_tests.json`` into ``out`` (written atomically); the figures shown
    (paths under ``out``) and the paired tests across participants."""
    scoring = section(params, "score")
    anchor = scoring["anchor"]
    with atomic_path(out) as tmp, Drawer() as draw:
        tmp.mkdir(parents=True)
        table = read_brain_model_rows(TABLE)
        wide = wide_scores(table, anchor)
        # The score and comparison figures draw in worker processes while the rest is computed and drawn here.
        shown = score_figures(wide, tmp, settings, scoring, draw)
        pairs, tests = comparison_figures(wide, tmp, settings, scoring, draw)
        shown += pairs
        shown += model_figures(params, tmp, settings)
        shown += encoding_figures(tmp, q=section(params, "encoding")["q"], vmax=None)
        shown += benchmark_figures(tmp)
        shown += decoding_figures(tmp)
        shown += probing_figures(tmp)
        shown += vision_figures(tmp)
        write_json(tmp / "comparison_tests.json", tests.to_dict(orient="records"))
    return [Figure(f.section, f.title, Path(out) / f.png.relative_to(tmp) if f.png.is_relative_to(tmp) else f.png,
                   f.caption) for f in shown], tests


def write_page(params: dict, shown: list[Figure], tests: pd.DataFrame, runs: list[dict], path: str | Path = REPORT
               ) -> None:
    """``reports/index.html``: the configuration, the score summary, every figure, the tables and ``runs``."""
    scoring = section(params, "score")
    summary = summarise(read_brain_model_rows(TABLE), top=scoring["top_voxels"], anchor=scoring["anchor"])
    notes = []
    if any(spec.get("source") == "simulated" for spec in params["datasets"].values()):
        notes.append("The recordings are simulated by brainalign (simulate stage), written in the real releases' "
                     "formats: these are not results about brains.")
    tables = {"Paired tests across participants": tests} if len(tests) else {}
    tables.update(encoding_tables())
    tables.update(benchmark_tables())
    tables.update(decoding_tables())
    tables.update(probing_tables())
    tables.update(vision_tables())
    if any(str(entry.get("path", "")).startswith("data/benchmarks/raw")
           for entry in params.get("benchmarks", {}).get("suite", {}).values()):
        notes.append("The Brain-Score benchmarks read simulated twins of the real datasets (simulate_benchmarks "
                     "stage); SmolLM2-135M is the instruction-tuned model, 4-bit quantised (Q4_1) then dequantised.")
    if str(params.get("decoding", {}).get("data", "")).startswith("data/decoding/raw"):
        notes.append("The decoding reads simulated Pereira images (simulate_decoding stage), a noisy linear function of "
                     "the pretrained encoder's sentence encodings; trajectories on `data: sample` train on made-up "
                     "tasks in the GLUE and SQuAD formats, not GLUE or SQuAD.")
    if str(params.get("probing", {}).get("data", "")).startswith("data/probing/raw"):
        notes.append("The probing reads a simulated experiment (simulate_probing stage): the project's own story, "
                     "annotated by the project (spaCy, its own lexicons), with features planted in given regions and "
                     "layers; the regions are spheres named after the seed's AAL regions.")
    if str(params.get("vision", {}).get("data", "")).startswith("data/vision/nsd"):
        notes.append("The vision models read a simulated NSD (simulate_vision stage): the project's own images, voxels "
                     "with Gaussian receptive fields over an untrained AlexNet's feature maps; the feature network "
                     "is untrained too (no ImageNet weights can be had offline).")
    if Path(GLUE_TABLE).exists():  # always under dvc repro (a dependency); a stage run by hand may lack it
        glue = pd.read_csv(GLUE_TABLE)
        if not {"task", "metric"} <= set(glue.columns):
            raise InputError(GLUE_TABLE, "columns", "task, metric, then one column per encoder", ", ".join(glue.columns))
        sample = section(params, "glue").get("data") == "sample"
        tables["GLUE dev metrics: the paper's Table 1" + (" (on the embedded sample: NOT GLUE scores)"
                                                          if sample else "")] = glue
        if sample:
            notes.append(f"GLUE check: {GLUE_NOTICE}.")
    else:
        notes.append(f"The GLUE check has not run ({GLUE_TABLE} is missing): run the glue stage.")
    write_report(path, title="brainalign: brain-tuned language models", configuration=params,
                 summary=summary, figures=shown, runs=runs, notes=notes, tables=tables)
