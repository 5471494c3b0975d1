"""The pipeline end to end, in a scratch copy of the repository: DVC, MLflow, the simulation's truth.

One module-scoped scratch repository runs ``dvc repro`` once on the default parameters made small
(:data:`SCRATCH`: two fMRI participants, 240 words a run, 8 mm voxels, one held-out run and one epoch for the
fine-tuned models); the tests then check its results against the simulation's ground truth, DVC's
skipping, a forced re-run's bitwise reproduction (training included), MLflow's records, a queued
experiment, and a failing validation.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from browser import dump_dom, figure_verdicts, screenshot
from experiments import set_params, tiny_causal, tiny_encoder
from PIL import Image

from brainalign.data.hp_fmri import read_hp_fmri, write_hp_fmri
from brainalign.data.simulated import read_truth
from brainalign.metrics.table import brain_model_rows, voxel_means, wide_scores

pytestmark = pytest.mark.pipeline

REPOSITORY = Path(__file__).resolve().parents[2]
COPIED = ("dvc.yaml", "params.yaml", "stages", "src", ".dvc/config", ".dvc/.gitignore", ".dvcignore",
          ".gitignore", "data/.gitignore")


def _environment(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "BRAINALIGN_", "DVC_"))}
    env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(root / ".dvc" / "site-cache"),
                "MPLCONFIGDIR": str(root / ".cache" / "matplotlib"), "GIT_AUTHOR_NAME": "test",
                "GIT_AUTHOR_EMAIL": "test@example.org", "GIT_COMMITTER_NAME": "test",
                "GIT_COMMITTER_EMAIL": "test@example.org"})
    return env


def run(root: Path, *command: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=root, env={**_environment(root), **(env or {})}, capture_output=True,
                            text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def stages_run(result: subprocess.CompletedProcess) -> set[str]:
    return {line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage '")}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A git + DVC repository holding this project's pipeline, after one ``dvc repro``."""
    root = tmp_path_factory.mktemp("pipeline") / "repo"
    root.mkdir()
    for name in COPIED:
        source, target = REPOSITORY / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, target)
    tiny_encoder(root / "tiny-bert")  # a local model directory for the encoding models: 2 layers, fast
    tiny_causal(root / "tiny-gpt")  # and a causal one for surprisal and next-word prediction
    set_params(root, SCRATCH)
    run(root, "git", "init", "-q")
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "scratch copy")
    result = run(root, "dvc", "repro")
    assert stages_run(result) == STAGES
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "first run")
    return root


BENCHMARKS = ("pereira2018", "fedorenko2016", "blank2014", "futrell2018")
# SQuAD's trajectory is tested on its own (tests/decoding/test_trajectory.py): two trajectories show the foreach.
TRAJECTORIES = ("sst2", "lm_scrambled")
STAGES = {"simulate", "score", "report", "glue", "simulate_benchmarks", "nextword", "leaderboard",
          "simulate_decoding", "decode", "simulate_probing", "probe", "frem", "align", "simulate_vision", "fwrf",
          "gnet", "transfer"} | {f"trajectory@{name}" for name in TRAJECTORIES} | {
    f"benchmark@{key}" for key in BENCHMARKS} | {
    f"train@{model}" for model in ("finetuned", "participant_transfer", "meg_transfer", "joint")} | {
    f"{stage}@{name}" for stage in ("validate", "prepare", "encode", "features", "encoding", "vanilla")
    for name in ("fmri", "meg")}
MODELS = ("vanilla", "finetuned", "participant_transfer", "meg_transfer", "joint")
# The default parameters, made small enough for a test: DVC's mechanics do not depend on the size.
SCRATCH = {"simulate.subjects": 2, "simulate.words_per_run": 240, "simulate.resolution_mm": 8,
           "models.heldout_runs": [1], "finetuned.head_epochs": 2, "finetuned.full_epochs": 1,
           "participant_transfer.source_head_epochs": 1, "participant_transfer.source_full_epochs": 1,
           "participant_transfer.head_epochs": 2, "meg_transfer.meg_head_epochs": 1,
           "meg_transfer.meg_full_epochs": 1, "meg_transfer.head_epochs": 1, "meg_transfer.full_epochs": 1,
           "joint.head_epochs": 1, "joint.full_epochs": 1, "participant_transfer.source": "1",
           "glue.tasks": ["SST-2"], "glue.sample.train": 64, "glue.sample.dev": 32, "glue.sample.epochs": 1,
           "report.comparisons": [["vanilla", "finetuned"], ["vanilla", "joint"]], "report.attention": True,
           "encoding.models": ["tiny-bert", "random-16"], "encoding.low_level": ["word_length"],
           # The benchmarks' twins at their default sizes (the ceilings' accuracy depends on them), generated by
           # the tiny local models, which the zoo then scores beside their untrained twins and the controls.
           "simulate_benchmarks.generator": "tiny-bert", "simulate_benchmarks.generator_layer": 1,
           "simulate_benchmarks.surprisal_generator": "tiny-gpt",
           "benchmarks.models": ["tiny-bert", "tiny-bert-untrained", "random-64", "tiny-gpt", "unigram"],
           "benchmarks.seed": 7, "nextword.max_words": 400, "nextword.max_words_masked": 80,
           # Decoding: the tiny BERT fine-tuned for a few steps per trajectory, decoded from 3 simulated participants.
           "decoding.encoder": "tiny-bert", "decoding.steps": 4, "decoding.checkpoint_every": 2,
           "decoding.batch_size": 8, "decoding.max_train": 48, "decoding.max_dev": 16, "decoding.learning_rate": 1e-3,
           "decoding.squad_learning_rate": 1e-3, "simulate_decoding.participants": 3, "simulate_decoding.voxels": 200,
           "decoding.trajectories": {"sst2": {"objective": "glue", "task": "SST-2", "data": "sample"},
                                     "lm_scrambled": {"objective": "lm_scrambled", "corpus": "story"}},
           # Probing: a shorter story, the tiny BERT probed, FReM on two regions and three features.
           "simulate_probing.words_per_run": 200, "probing.encoder": "tiny-bert", "probing.n_permutations": 20,
           "probing.regions": ["Frontal_Inf_Tri_L", "Temporal_Sup_R"], "probing.n_shifts": 20,
           "probing.frem_features": ["simulated/layer2", "simulated/state", "pos/NN"],
           # Vision: the default twin, GNet and its transfer readouts trained for a few epochs.
           "vision.gnet.epochs": 2, "vision.transfer.epochs": 1}


def prepared_ids(root: Path, dataset: str = "fmri") -> list[str]:
    return json.loads((root / "data/prepared" / dataset / "dataset.json").read_text())["subjects"]


def store(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / "mlruns" / "mlflow.db")


def test_benchmarks_recover_the_simulations_truth(scratch):
    """On every simulated twin: the estimated ceiling within 15 % of the true one, the generator model first
    (committed within a layer of the planted one), its untrained twin below it, the random embedding near 0;
    on the reading times the generator's surprisal first and the unigram baseline positive."""
    for key in BENCHMARKS:
        summary = json.loads((scratch / "data/benchmarks/scores" / key / "summary.json").read_text())
        truth = summary["truth"]
        assert summary["ceiling"] == pytest.approx(truth["true_ceiling"], rel=0.15), key
        rows = {row["model"]: row for row in summary["models"]}
        generator = rows[truth["generator"]]
        others = [row for name, row in rows.items() if name != truth["generator"]]
        assert generator["raw"] > max(row["raw"] for row in others), key
        if summary["kind"] == "neural":
            assert set(rows) == {"tiny-bert", "tiny-bert-untrained", "random-64", "tiny-gpt"}
            # A 2-layer random BERT's embeddings already carry most of its layer 1: within one layer.
            assert abs(generator["committed_layer"] - truth["generator_layer"]) <= 1, key
            assert generator["normalised"] > 0.5, key
            assert rows["random-64"]["normalised"] < min(0.1, generator["normalised"] / 5), key
            assert rows["tiny-bert-untrained"]["normalised"] < generator["normalised"] * 0.8, key
        else:
            assert set(rows) == {"tiny-gpt", "unigram"}  # only surprisal-giving models read reading times
            assert summary["not_scored"].keys() == {"tiny-bert", "tiny-bert-untrained", "random-64"}
            assert rows["unigram"]["raw"] > 0.1
    board = pd.read_parquet(scratch / "data/benchmarks/leaderboard.parquet")
    assert set(board["benchmark"]) == {"Pereira2018.384sentences", "Fedorenko2016", "Blank2014", "Futrell2018",
                                       "average", "neural average"}
    metrics = json.loads((scratch / "metrics/leaderboard.json").read_text())
    pereira = json.loads((scratch / "data/benchmarks/scores/pereira2018/summary.json").read_text())
    assert metrics["scores"]["tiny-bert"]["Pereira2018.384sentences"] == {
        k: next(r for r in pereira["models"] if r["model"] == "tiny-bert")[k]
        for k in ("raw", "normalised", "committed_layer")}
    nextword = pd.read_parquet(scratch / "data/benchmarks/nextword.parquet").set_index("model")
    assert set(nextword.index) == {"tiny-gpt", "tiny-bert-untrained", "unigram"}  # tiny-bert has no MLM head
    assert nextword.loc["tiny-gpt", "perplexity"] > 1000  # an untrained 30k-word LM is near uniform
    assert (scratch / "reports/leaderboard/brain_vs_nextword.png").stat().st_size > 5000


def test_decoding_against_the_simulations_truth(scratch):
    """The simulated images follow the pretrained encoder: it decodes far below chance; every trajectory has its
    checkpoints (with cards) and a row per participant and step; ranks and MAR agree; the report shows MAR."""
    summary = json.loads((scratch / "data/decoding/scores/summary.json").read_text())
    assert summary["chance_mar"] == 192.5 and summary["leaky_pca"] is False
    assert summary["pretrained_mar"] < 0.5 * summary["chance_mar"]
    scores = pd.read_parquet(scratch / "data/decoding/scores/scores.parquet")
    assert set(scores["trajectory"]) == set(TRAJECTORIES) and set(scores["step"]) == {0, 2, 4}
    assert scores.groupby(["trajectory", "step"]).size().eq(3).all()  # 3 participants
    ranks = pd.read_parquet(scratch / "data/decoding/scores/ranks.parquet")
    by_hand = ranks.groupby(["participant", "trajectory", "step"])["rank"].mean()
    merged = scores.set_index(["participant", "trajectory", "step"])["mar"]
    np.testing.assert_allclose(merged.sort_index().to_numpy(), by_hand.sort_index().to_numpy())
    for name in TRAJECTORIES:
        out = scratch / "data/decoding/trajectories" / name
        assert sorted(p.name for p in (out / "seed0").glob("*.safetensors")) == ["step-0002.safetensors",
                                                                                  "step-0004.safetensors"]
        card = json.loads((out / "seed0" / "step-0004.json").read_text())
        assert card["trajectory"] == name and card["step"] == 4
    history = pd.read_csv(scratch / "data/decoding/trajectories/sst2/history.csv")
    assert history["dev.accuracy"].notna().sum() == 3  # steps 0, 2 and 4
    tests = pd.read_csv(scratch / "data/decoding/scores/tests.csv")
    assert set(tests["task"]) == set(TRAJECTORIES)
    assert (scratch / "reports/figures/decoding_mar.png").stat().st_size > 10_000
    assert "Mean average rank against fine-tuning step" in (scratch / "reports/index.html").read_text()


def test_probing_outputs(scratch):
    """Probes of both kinds for every layer of the tiny BERT; FReM for each participant, region and feature and the
    group's row; the alignment per kind and family; the report's heatmap. The planted layer feature is decoded from
    its region above the dummy (the acceptance at full size: tests/probing/test_probing_truth.py)."""
    probes = pd.read_parquet(scratch / "data/probing/scores/probes.parquet")
    assert set(probes["kind"]) == {"embedding", "attention"} and set(probes["layer"]) == {1, 2}
    frem = pd.read_parquet(scratch / "data/probing/scores/frem.parquet")
    assert len(frem) == 3 * 2 * 3  # (participants 1, 2 and the group) x regions x features
    group = frem[frem["subject"] == "mean"].set_index(["region", "feature"])
    assert group.loc[("Frontal_Inf_Tri_L", "simulated/layer2"), "gain"] > 0
    assert group.loc[("Frontal_Inf_Tri_L", "simulated/state"), "metric"] == "roc_auc"
    alignment = pd.read_parquet(scratch / "data/probing/scores/alignment.parquet")
    assert set(alignment["kind"]) == {"embedding", "attention"} and "all" in set(alignment["family"])
    metrics = json.loads((scratch / "metrics/probing.json").read_text())
    assert metrics["frem_pairs"] == 6
    assert (scratch / "reports/figures/probing_alignment.png").stat().st_size > 10_000
    assert "Alignment of regions and layers" in (scratch / "reports/index.html").read_text()


def test_outputs_exist(scratch):
    """The score table, metrics and figures are where the README says, with the right content."""
    table = pd.read_parquet(scratch / "data/scores/scores.parquet")
    assert list(table.columns) == ["dataset", "model", "subject", "fold", "heldout_run", "seed", "voxel", "measure",
                                   "value", "layer", "feature_space", "roi"]  # long format (roi: vision rows)
    # The encoding models sit in the same table: every layer of the local 2-layer BERT (embeddings + 2), one
    # of the others.
    encoding = table[~table["feature_space"].isin(["cls", "image"])]
    assert encoding.groupby("model")["layer"].nunique().to_dict() == {"tiny-bert": 3, "random-16": 1, "word_length": 1}
    assert set(encoding["measure"]) == {"pearson_r", "r2", "accuracy_target"}
    assert set(encoding["heldout_run"]) == {1, 2, 3, 4}  # every run held out once
    summary = json.loads((scratch / "data/encoding/fmri/summary.json").read_text())
    assert summary["ceiling"] is None and "at least 3 participants" in summary["ceiling_note"]  # 2 participants
    assert (scratch / "reports/figures/encoding_fmri_layers.png").exists()
    assert set(json.loads((scratch / "metrics/encoding_meg.json").read_text())) == {"ceiling", "tiny-bert",
                                                                                    "random-16", "word_length"}
    table = table[table["feature_space"] == "cls"].drop(columns=["layer", "feature_space", "roi"])
    assert set(table["measure"]) == {"accuracy_target", "accuracy_prediction", "r2", "pearson_r"}
    assert table.groupby(["dataset", "model", "subject", "fold", "seed", "voxel"]).size().eq(4).all()
    table = wide_scores(table)
    assert set(table["dataset"]) == {"fmri", "meg"}
    assert sorted(table.loc[table["dataset"] == "meg", "subject"].unique()) == ["M1", "M2"]
    assert table.loc[table["dataset"] == "meg", "voxel"].max() == 306 * 20 - 1
    prepared = prepared_ids(scratch)
    # Every model scores every participant it predicts, on the held-out run and seed the params name.
    expected = {("vanilla", "fmri"), ("vanilla", "meg"), ("finetuned", "fmri"), ("participant_transfer", "fmri"),
                ("meg_transfer", "fmri"), ("meg_transfer", "meg"), ("joint", "fmri"), ("joint", "meg")}
    assert set(map(tuple, table[["model", "dataset"]].drop_duplicates().to_numpy())) == expected
    for (model, dataset), group in table.groupby(["model", "dataset"]):
        ids = prepared_ids(scratch, dataset)
        assert sorted(group["subject"].unique()) == sorted(ids), (model, dataset)
        assert set(group["heldout_run"]) == {1} and set(group["seed"]) == {0}, (model, dataset)
        assert len(group) == sum(group.groupby("subject")["voxel"].nunique())  # one row per channel
    table = table[(table["dataset"] == "fmri") & (table["model"] == "vanilla")]
    for model in MODELS:
        assert set(json.loads((scratch / f"metrics/{model}.json").read_text())) == {d for m, d in expected if m == model}
    metrics = json.loads((scratch / "metrics/vanilla.json").read_text())
    metrics = metrics["fmri"]
    assert set(metrics) == set(prepared) | {"mean"}
    for subject in prepared:
        acc = table[table["subject"] == subject].groupby("voxel", sort=True)["accuracy"].mean().to_numpy()
        assert metrics[subject]["accuracy_mean"] == pytest.approx(acc.mean())
        assert metrics[subject]["accuracy_top1000"] == pytest.approx(np.sort(acc)[::-1][:1000].mean())
    figures = scratch / "reports/figures"
    for name in ["vanilla_fmri_accuracy_distribution.png", "vanilla_fmri_glass_brain_1.png",
                 "vanilla_fmri_glass_brain_mean.png", "vanilla_meg_accuracy_distribution.png",
                 "vanilla_meg_time_course.png", "finetuned_vs_vanilla_fmri_curves.png", "finetuned_vs_vanilla_fmri_map_1.png",
                 "joint_vs_vanilla_meg_curves.png", "attention_vanilla_vs_finetuned.png",
                 "changed_examples_features.png"]:
        assert (figures / name).stat().st_size > 10_000
        assert (figures / name).with_suffix(".csv").exists()


def test_glue_table_and_runs(scratch):
    """Table 1 on the embedded sample: every default encoder and the majority baseline, said not to be GLUE;
    its numbers are the stored dev predictions' accuracy; every GLUE run is an MLflow run with its params."""
    from brainalign.nlu.glue import read_split

    table = pd.read_csv(scratch / "reports/glue/table1.csv")
    assert list(table.columns) == ["task", "metric", "pretrained", "meg_transfer", "joint", "majority"]
    assert table[["task", "metric"]].values.tolist() == [["SST-2", "accuracy"]]
    assert "not GLUE" in (scratch / "reports/glue/table1.md").read_text().splitlines()[0]
    metrics = json.loads((scratch / "metrics/glue.json").read_text())
    assert "not GLUE" in metrics["data"] and set(metrics) == {"data", "pretrained", "meg_transfer", "joint", "majority"}
    dev = read_split(scratch / "data/glue/sample", "SST-2", "dev")
    assert len(dev) == 32
    with store(scratch) as db:
        runs = db.execute("select r.run_uuid, t.value from runs r join tags t on t.run_uuid = r.run_uuid "
                          "where t.key = 'glue_key'").fetchall()
        assert len(runs) == 3
        for run_id, key in runs:
            params = dict(db.execute("select key, value from params where run_uuid = ?", (run_id,)).fetchall())
            assert params["task"] == "SST-2" and params["seed"] == "0" and params["learning_rate"] == "0.0001"
            accuracy = db.execute("select value from latest_metrics where run_uuid = ? and key = 'dev.accuracy'",
                                  (run_id,)).fetchone()[0]
            predictions = np.load(scratch / "data/tasks/glue" / key / "predictions.dev.npy")
            by_hand = 100 * float(np.mean(predictions == dev.labels))
            assert accuracy == pytest.approx(by_hand)
            assert table.loc[0, params["encoder"]] == pytest.approx(by_hand, abs=1e-4)
    page = (scratch / "reports/index.html").read_text()
    assert "GLUE dev metrics: the paper&#x27;s Table 1 (on the embedded sample: NOT GLUE scores)" in page


def test_vanilla_accuracy_against_ground_truth(scratch):
    """Responsive voxels clearly above chance; pure-noise voxels within 0.5 +- 0.03 (simulation's truth)."""
    means = voxel_means(brain_model_rows(pd.read_parquet(scratch / "data/scores/scores.parquet")))
    for subject, group in means[(means["dataset"] == "fmri") & (means["model"] == "vanilla")].groupby("subject"):
        truth = read_truth(scratch / "data/truth", str(subject), "fmri")
        accuracy = group.sort_values("voxel")["accuracy"].to_numpy()
        responsive = truth["responsive"]
        assert responsive.sum() > 50 and (~responsive).sum() > 1000
        assert accuracy[responsive].mean() > 0.6, f"participant {subject}"
        assert abs(accuracy[~responsive].mean() - 0.5) < 0.03, f"participant {subject}"


def test_report_renders_in_chromium(scratch, tmp_path):
    """The HTML report: self-contained, naming the MLflow runs, every figure drawn in a real browser."""
    page = scratch / "reports/index.html"
    text = page.read_text()
    assert "http://" not in text and "https://" not in text
    with store(scratch) as db:
        ids = [r for (r,) in db.execute("select r.run_uuid from runs r join tags t on t.run_uuid = r.run_uuid "
                                         "where t.key = 'stage' and t.value in ('train@finetuned', 'score', 'report')")]
    assert ids and all(run_id in text for run_id in ids)
    # Every figure of the report: its own, and the leaderboard's two (drawn by the leaderboard stage).
    pngs = sorted((scratch / "reports/figures").glob("*.png")) + sorted((scratch / "reports/leaderboard").glob("*.png"))
    verdicts = figure_verdicts(dump_dom(page))
    assert len(verdicts) == len(pngs) >= 15
    assert set(verdicts.values()) == {"drawn"}, verdicts
    shot = np.asarray(Image.open(screenshot(page, tmp_path / "report.png")).convert("L"))
    assert len(np.unique(shot)) > 50


def test_second_repro_reproduces_nothing(scratch):
    """Nothing changed: no stage runs."""
    result = run(scratch, "dvc", "repro")
    assert stages_run(result) == set()
    assert "up to date" in result.stdout


def _outputs(root: Path) -> dict[str, str]:
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {out["path"]: out["md5"] for stage in lock.values() for out in stage["outs"]}


def test_forced_rerun_reproduces_outputs_bitwise(scratch, tmp_path):
    """Same commit and params on CPU: the simulation, the fine-tuned models (retrained: an empty task store)
    and the scores, run again, give outputs with the same hashes."""
    before = _outputs(scratch)
    forced = ["simulate", "train@finetuned", "score"]
    result = run(scratch, "dvc", "repro", "--force", "--single-item", *forced,
                 env={"BRAINALIGN_TASK_STORE": str(tmp_path / "empty-store")})
    assert stages_run(result) == set(forced)
    assert len(list((tmp_path / "empty-store").glob("*/*/result.json"))) == 2  # retrained, not reused
    assert _outputs(scratch) == before


def test_mlflow_records(scratch):
    """The first run of every stage is a finished parent run tagged with the commit and its inputs'
    hashes from dvc.lock; every participant x fold of the vanilla stage is a nested run with per-epoch
    losses."""
    commit = run(scratch, "git", "rev-parse", "HEAD~1").stdout.strip()
    lock = yaml.safe_load((scratch / "dvc.lock").read_text())["stages"]
    with store(scratch) as db:
        parents = dict(db.execute(
            "select t.value, r.run_uuid from runs r join tags t on t.run_uuid = r.run_uuid "
            "where t.key = 'stage' and r.status = 'FINISHED' order by r.start_time desc").fetchall())
        assert set(parents) == STAGES
        tags = dict(db.execute("select key, value from tags where run_uuid = ?", (parents["vanilla@fmri"],)).fetchall())
        assert tags["git_commit"] == commit
        assert tags["input_md5.data/features/fmri"] == lock["encode@fmri"]["outs"][0]["md5"]
        assert tags["input_md5.data/prepared/fmri"] == lock["prepare@fmri"]["outs"][0]["md5"]
        subjects = prepared_ids(scratch)
        for stage, count, epochs in [("vanilla@fmri", len(subjects), 10), ("train@finetuned", len(subjects), 2 + 1),
                                     ("train@joint", 1, 1 + 1)]:
            children = [r for (r,) in db.execute(
                "select run_uuid from tags where key = 'mlflow.parentRunId' and value = ?", (parents[stage],))]
            assert len(children) == count, stage
            for child in children:
                steps = db.execute("select step from metrics where run_uuid = ? and key = 'loss' order by step",
                                   (child,)).fetchall()
                assert [s for (s,) in steps] == list(range(1, epochs + 1)), stage
                keys = {k for (k,) in db.execute("select distinct key from metrics where run_uuid = ?", (child,))}
                assert {"lr", "seconds", "examples_per_second", "wall_seconds"} <= keys, stage
                assert any(k.startswith("heldout_accuracy/") for k in keys), stage
                tags = dict(db.execute("select key, value from tags where run_uuid = ?", (child,)).fetchall())
                assert tags["outcome"] == "trained" and len(tags["task_key"]) == 20
            if stage == "train@joint":  # a loss per head: every MEG and fMRI participant
                heads = {k for k in keys if k.startswith("loss.")}
                assert heads == {f"loss.meg/{m}" for m in prepared_ids(scratch, "meg")} | {
                    f"loss.fmri/{s}" for s in subjects}


def test_vision_rows_reach_the_score_table_and_the_report(scratch):
    """The vision models' validation scores are rows of the one score table (feature space "image", each voxel's
    ROI), held out: every score is on the shared images, which the training trials never show."""

    table = pd.read_parquet(scratch / "data/scores/scores.parquet", filters=[("feature_space", "==", "image")])
    assert set(table["model"]) == {"fwrf", "gnet8j", "gnet8r"}
    assert set(table["roi"]) == {"V1", "V2", "V3", "hV4"}
    assert set(table["measure"]) == {"pearson_r", "noise_ceiling", "explained_fraction"}
    r = table[table["measure"] == "pearson_r"].groupby("model")["value"].median()
    assert (r > 0.2).all(), r  # the twin's voxels are predictable; an untrained read-out would score about 0
    transfer = json.loads((scratch / "metrics/vision_transfer.json").read_text())
    assert np.isfinite(transfer["asymmetry"])
    for name in ("vision_accuracy", "vision_maps", "vision_transfer", "vision_prf"):
        assert (scratch / "reports/figures" / f"{name}.png").exists()


def test_score_parameter_reruns_only_the_stages_that_score(scratch):
    # The encoding models draw the same 20 vs 20 draws as the brain models (paired): they re-score too.
    params = scratch / "params.yaml"
    original = params.read_text()
    try:
        params.write_text(original.replace("  n_draws: 1000", "  n_draws: 300"))
        assert stages_run(run(scratch, "dvc", "repro")) == {"score", "report", "encoding@fmri", "encoding@meg"}
    finally:
        params.write_text(original)
        run(scratch, "dvc", "repro")  # back to the committed state (restored from the run cache)


def _runs_with_param(root: Path, key: str, value: str) -> list[tuple[str, str]]:
    with store(root) as db:
        return db.execute(
            "select r.run_uuid, t.value from runs r join params p on p.run_uuid = r.run_uuid "
            "join tags t on t.run_uuid = r.run_uuid "
            "where p.key = ? and p.value = ? and t.key = 'workspace' and r.status = 'FINISHED'",
            (key, value)).fetchall()


def test_queued_experiment_logs_to_main_store(scratch):
    """`dvc exp run --queue` runs in a copy under .dvc/tmp/exps (as `--temp` does); its MLflow runs land in
    the main store. (`glue.device: cpu` is what `auto` resolves to here: the glue stage re-runs, reuses its
    runs, writes the same outputs, and DVC then skips the report, which keeps the test short.)"""
    run(scratch, "dvc", "exp", "run", "--queue", "-S", "glue.device=cpu")
    run(scratch, "dvc", "exp", "run", "--run-all")
    runs = _runs_with_param(scratch, "glue.device", "cpu")
    assert runs, "no run of the queued experiment in the main store"
    assert all("/.dvc/tmp/exps/" in workspace for _, workspace in runs)
    shown = json.loads(run(scratch, "dvc", "exp", "show", "--json").stdout)
    experiments = [e for entry in shown for e in entry.get("experiments") or []]
    listed = [run_["data"] for e in experiments for run_ in e.get("revs", [])]
    queued = [d for d in listed if d["params"]["params.yaml"]["data"]["glue"]["device"] == "cpu"]
    assert queued, "dvc exp show does not list the queued experiment"
    assert "accuracy_mean" in queued[0]["metrics"]["metrics/vanilla.json"]["data"]["fmri"]["1"]


def test_failed_validation_stops_the_pipeline(scratch):
    """A NaN in one recording: validate fails naming the file and check; prepare does not run."""
    bad = scratch / "bad_raw"
    bad.mkdir()
    for source in sorted((scratch / "data/raw/fmri").glob("subject_*.mat")):
        recording = read_hp_fmri(source)
        if source.name == "subject_2.mat":
            recording.responses[30, 5] = np.nan
        write_hp_fmri(recording, bad / source.name)
    params = scratch / "params.yaml"
    original = params.read_text()
    try:
        params.write_text(original.replace("  path: data/raw/fmri", "  path: bad_raw"))
        result = run(scratch, "dvc", "repro", check=False)
        assert result.returncode != 0
        assert "subject_2.mat: data: responses are finite" in result.stderr  # the release's field
        assert "prepare@fmri" not in stages_run(result)
        with store(scratch) as db:
            status = db.execute("select r.status from runs r join tags t on t.run_uuid = r.run_uuid "
                                "where t.key = 'stage' and t.value = 'validate@fmri' order by r.start_time desc").fetchone()
        assert status == ("FAILED",)
    finally:
        params.write_text(original)
