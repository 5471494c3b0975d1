"""Kill -9 in the middle of training, re-run the stage: it resumes and ends where an uninterrupted run ends.

The session's small experiment (tests/conftest.py: 2 fMRI participants, one held-out run, a two-layer
BERT) makes the ``finetuned`` stage's two tasks take a few seconds. The stage runs three times in one directory:

1. uninterrupted, into task store A (the reference);
2. in a separate process, into store B, killed with SIGKILL once a checkpoint holds a few epochs of the
   full phase (mid-training: no chance to clean up, the MLflow run is left RUNNING);
3. again into store B, as a user re-running ``dvc repro`` would.

Expected: every tensor of B's final weights equals A's bit for bit, and B's predictions equal A's; the
killed run is FAILED (not lost: its epochs are still in the store) and the resumed run points to it.

Each of the three runs is a fresh process, as ``dvc repro`` runs a stage. That matters: with one BLAS/OpenMP
thread, torch's CPU backward pass in a process that has already trained other models can differ in the last
bits from the same step in a fresh process (first seen in the attention's query and key gradients), so a
resumed run compared with a reference trained earlier in the same process is not a fair truth.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPOSITORY, run_stage
from experiments import run_resuming, set_params
from safetensors.torch import load_file

FULL_EPOCHS = 40


@pytest.fixture(scope="module")
def experiment(small_experiment) -> Path:
    from brainalign.config.params import load_params

    assert load_params(small_experiment / "params.yaml")["finetuned"]["full_epochs"] == FULL_EPOCHS
    return small_experiment


def _checkpoint_epochs(store: Path) -> int:
    from brainalign.finetuning.model import read_checkpoint

    best = 0
    for path in store.glob("finetuned/*/checkpoint.safetensors"):
        try:
            best = max(best, len(read_checkpoint(path)[1]["history"]))
        except Exception:  # being replaced this very moment
            continue
    return best


def _weights(store: Path) -> dict[str, dict]:
    out = {}
    for spec in store.glob("finetuned/*/spec.json"):
        label = json.loads(spec.read_text())["label"]
        out[label] = load_file(spec.parent / "weights.safetensors")
    return out


def _train_process(root: Path, store: Path, db: Path) -> subprocess.Popen:
    """``stages/train.py finetuned`` in a fresh process; its stderr goes to ``<store>.log`` (a pipe nobody
    reads while the test waits to kill it could fill up and stall the stage)."""
    env = dict(os.environ, BRAINALIGN_TASK_STORE=str(store), BRAINALIGN_TRACKING_URI=f"sqlite:///{db}")
    with open(f"{store}.log", "a") as log:
        return subprocess.Popen([sys.executable, str(REPOSITORY / "stages" / "train.py"), "finetuned"], cwd=root,
                                env=env, stdout=subprocess.DEVNULL, stderr=log)


def _finish(process: subprocess.Popen, store: Path) -> None:
    process.wait(timeout=600)
    assert process.returncode == 0, Path(f"{store}.log").read_text()[-3000:]


def test_killed_stage_resumes_to_identical_weights(experiment, tmp_path):
    root = experiment
    db = tmp_path / "mlflow.db"
    _finish(_train_process(root, tmp_path / "store-a", db), tmp_path / "store-a")

    process = _train_process(root, tmp_path / "store-b", db)
    deadline = time.time() + 300
    # Kill once the first task is a few epochs into its full phase (2 head epochs come first).
    while _checkpoint_epochs(tmp_path / "store-b") < 5 and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the stage finished before it could be killed: make the run longer"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = _checkpoint_epochs(tmp_path / "store-b")
    assert 5 <= killed_at < 2 + FULL_EPOCHS

    _finish(_train_process(root, tmp_path / "store-b", db), tmp_path / "store-b")

    reference, resumed = _weights(tmp_path / "store-a"), _weights(tmp_path / "store-b")
    assert sorted(reference) == sorted(resumed) and len(reference) == 2
    for label in reference:
        assert sorted(reference[label]) == sorted(resumed[label])
        for name, tensor in reference[label].items():
            assert bool((tensor == resumed[label][name]).all()), f"{label}: {name} differs after resuming"
        # ... and the training did move the encoder (a resumed run that trained nothing would also "match").
    start = load_file(next((root / "tiny-bert").glob("*.safetensors")))
    moved = next(iter(reference.values()))
    name = "embeddings.word_embeddings.weight"
    assert not bool((moved[f"encoder.{name}"] == start[name]).all())
    for a, b in zip(sorted((tmp_path / "store-a").glob("finetuned/*/predictions/fmri/*.npy")),
                    sorted((tmp_path / "store-b").glob("finetuned/*/predictions/fmri/*.npy"))):
        np.testing.assert_array_equal(np.load(a), np.load(b))

    with sqlite3.connect(db) as con:
        runs = con.execute(
            "select r.run_uuid, r.status, t.value from runs r join tags t on t.run_uuid = r.run_uuid "
            "where t.key = 'task' order by r.start_time").fetchall()
        tags = {run: dict(con.execute("select key, value from tags where run_uuid = ?", (run,)).fetchall())
                for run, _, _ in runs}
        failed = [run for run, status, _ in runs if status == "FAILED"]
        assert len(failed) == 1, runs
        dead = failed[0]
        assert "died" in tags[dead]["failure"]
        # Not lost: the epochs the killed run logged are still there (all but, at most, the one whose
        # checkpoint was written when the kill came; the resumed run replays that one).
        logged = con.execute("select count(distinct step) from metrics where run_uuid = ? and key = 'loss'",
                             (dead,)).fetchone()[0]
        assert logged >= killed_at - 1
        run, resumed_at = run_resuming(con, tags, dead)
        assert resumed_at == killed_at
        # The resumed run's history is whole: replayed epochs plus the rest.
        steps = [s for (s,) in con.execute("select distinct step from metrics where run_uuid = ? and key = 'loss' "
                                           "order by step", (run,))]
        assert steps == list(range(1, 2 + FULL_EPOCHS + 1))
        # The stage run the kill interrupted is FAILED too.
        stages = con.execute("select r.status from runs r join tags t on t.run_uuid = r.run_uuid "
                             "where t.key = 'stage' and t.value = 'train@finetuned' order by r.start_time").fetchall()
        assert [s for (s,) in stages] == ["FINISHED", "FAILED", "FINISHED"]


def test_finished_task_is_reused_and_changed_input_is_not(experiment, tmp_path):
    """A finished task is skipped on a re-run; changing a parameter gives new task keys (never reused)."""
    root = experiment
    os.environ["BRAINALIGN_TASK_STORE"] = str(tmp_path / "store")
    os.environ["BRAINALIGN_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    original = (root / "params.yaml").read_text()
    try:
        set_params(root, {"finetuned.full_epochs": 1})
        assert run_stage(root, "train", "finetuned")[0] == 0
        first = sorted(p.parent.name for p in (tmp_path / "store").glob("finetuned/*/result.json"))
        stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "store").glob("finetuned/*/weights.safetensors")}
        assert run_stage(root, "train", "finetuned")[0] == 0
        assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing retrained
        with sqlite3.connect(tmp_path / "mlflow.db") as con:
            outcomes = [v for (v,) in con.execute("select value from tags where key = 'outcome'")]
        assert sorted(outcomes) == ["reused", "reused", "trained", "trained"]
        set_params(root, {"models.learning_rate": 1e-4})
        assert run_stage(root, "train", "finetuned")[0] == 0
        second = sorted(p.parent.name for p in (tmp_path / "store").glob("finetuned/*/result.json"))
        assert len(second) == 4 and set(first) < set(second)
    finally:
        (root / "params.yaml").write_text(original)
        os.environ.pop("BRAINALIGN_TASK_STORE", None)
        os.environ.pop("BRAINALIGN_TRACKING_URI", None)
