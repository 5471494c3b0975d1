"""The GLUE check on the real GLUE files in ``../shared/glue`` (the issue's acceptance).

Those files are not part of the project (their licences forbid copying them in); a clone without them
skips these tests and says why (``BRAINALIGN_GLUE_DIR`` points elsewhere). Training is subsampled to
fit the test budget on 2 CPU cores, with a higher learning rate than BERT's for the fewer steps.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import REPOSITORY, run_stage
from experiments import set_params
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from brainalign.nlu.glue import read_split
from brainalign.nlu.finetune import GlueSettings
from brainalign.nlu.runs import PRETRAINED, GlueEncoder, GlueRun, execute

GLUE = Path(os.environ.get("BRAINALIGN_GLUE_DIR", REPOSITORY.parent / "shared" / "glue"))
pytestmark = pytest.mark.skipif(not (GLUE / "SST-2" / "dev.tsv").exists(),
                                reason=f"the real GLUE files are not at {GLUE} (set BRAINALIGN_GLUE_DIR)")
MINILM = GlueEncoder(PRETRAINED, {"name": "minilm", "untrained": False, "seed": 0})
# README of shared/glue: the published split sizes.
SIZES = {"CoLA": (8551, 1043), "SST-2": (67349, 872), "MRPC": (3668, 408), "STS-B": (5749, 1500),
         "RTE": (2490, 277), "WNLI": (635, 71)}


@pytest.mark.parametrize("task", sorted(SIZES))
def test_real_release_files_read_whole(task):
    train, dev = read_split(GLUE, task, "train"), read_split(GLUE, task, "dev")
    assert (len(train), len(dev)) == SIZES[task]
    assert all(text.strip() for text in train.first)


@pytest.mark.parametrize("task, n_train", [("SST-2", 600), ("MRPC", 1000)])
def test_minilm_beats_the_majority_baseline(task, n_train, tmp_path):
    """Fine-tuned on a subsample (two epochs), the pretrained MiniLM beats the majority class on the whole
    dev set by a clear margin; the metrics equal scikit-learn's on the stored predictions."""
    settings = GlueSettings(learning_rate=1e-4, epochs=2, max_length=64, pooling="mean")
    run = GlueRun(MINILM, task, 0, str(GLUE), settings, max_train=n_train)
    result = execute(run, tmp_path, progress=False)
    dev = read_split(GLUE, task, "dev")
    predictions = np.load(tmp_path / "glue" / result["key"] / "predictions.dev.npy")
    assert result["metrics"]["dev"]["accuracy"] == pytest.approx(100 * accuracy_score(dev.labels, predictions))
    if task == "MRPC":
        assert result["metrics"]["dev"]["f1"] == pytest.approx(100 * f1_score(dev.labels, predictions))
    accuracy, majority = result["metrics"]["dev"]["accuracy"], result["majority"]["dev"]["accuracy"]
    margin = {"SST-2": 15.0, "MRPC": 3.0}[task]
    assert accuracy >= majority + margin, f"{task}: {accuracy:.1f} against the majority's {majority:.1f}"


def test_stage_on_real_glue(tmp_path):
    """The stage on real RTE, CoLA and STS-B (tiny subsamples): Table 1 with the paper's columns, and each
    metric equal to scikit-learn's / scipy's on the stored predictions."""
    import pandas as pd

    (tmp_path / "params.yaml").write_text((REPOSITORY / "params.yaml").read_text())
    set_params(tmp_path, {"glue.data": str(GLUE), "glue.tasks": ["RTE", "CoLA", "STS-B"], "glue.encoders": ["pretrained"],
                          "glue.max_train": 48, "glue.max_dev": 64, "glue.epochs": 1, "glue.max_length": 64})
    code, stderr = run_stage(tmp_path, "glue")
    assert code == 0, stderr
    table = pd.read_csv(tmp_path / "reports/glue/table1.csv").set_index(["task", "metric"])
    assert list(table.columns) == ["pretrained", "majority", "paper: vanilla BERT", "paper: MEG-transfer",
                                   "paper: joint"]
    assert table.loc[("RTE", "accuracy"), "paper: MEG-transfer"] == 65.42
    long = pd.read_parquet(tmp_path / "data/glue/results.parquet")
    store = tmp_path / "data/tasks/glue"
    checks = {("RTE", "accuracy"): lambda y, p: accuracy_score(y, p),
              ("CoLA", "Matthews corr."): lambda y, p: matthews_corrcoef(y, p),
              ("STS-B", "Pearson r"): lambda y, p: pearsonr(y, p)[0],
              ("STS-B", "Spearman rho"): lambda y, p: spearmanr(y, p)[0]}
    for (task, metric), reference in checks.items():
        dev = read_split(GLUE, task, "dev").subsample(64, 0)
        keys = [k for k in store.iterdir() if (k / "spec.json").read_text().count(f'"task": "{task}"')]
        assert len(keys) == 1
        predictions = np.load(keys[0] / "predictions.dev.npy")
        assert table.loc[(task, metric), "pretrained"] == pytest.approx(100 * reference(dev.labels, predictions), abs=1e-3)
    assert set(long["encoder"]) == {"pretrained", "majority"}
