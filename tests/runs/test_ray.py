"""The Ray engine on a Ray cluster of this machine: a head and a second worker node, one CPU each, each started
with ``ray start --block`` as docs/scaleout.md starts a cluster's nodes (offline, usage stats off, token
authentication on), so that tasks run in two worker processes on two Ray nodes.

- tasks run on both nodes with their epochs passed on live, finished ones are never run again, a task waits for
  the task it starts from, and a task's own error fails the run with that error while the others' results stay;
- a stage's grid (``encoding@fmri``) gives, on Ray, bitwise the results of ``engine: local``;
- a worker killed in the middle of a training task costs that task's time since its checkpoint: the stage finishes,
  the task resumes from its checkpoint on a fresh worker, its weights equal an uninterrupted run's, and MLflow
  holds one FAILED attempt that the run which finished it links to.

Ray is a pinned test dependency (``.[ray]``): without it these tests fail, never skip.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPOSITORY
from experiments import run_resuming, set_params
from safetensors.torch import load_file

from brainalign.runs.distributed import ATTEMPT_LOG
from brainalign.runs.engine import Engine, executor_for
from brainalign.runs.spec import StoredTask
from brainalign.runs.store import TaskStore

OBJECT_STORE = str(200 * 1024 ** 2)  # bytes per node: these tests put little in it
FULL_EPOCHS = 16  # of the fine-tuned model (after 2 head epochs), checkpointed after every epoch


def _started(log: Path, process: subprocess.Popen, pattern: str, timeout: float = 90.0) -> re.Match:
    """``pattern`` in a ``ray start --block`` log once its node is up (the process failing or hanging fails)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = re.search(pattern, log.read_text() if log.exists() else "")
        if found:
            return found
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"ray start did not come up:\n{log.read_text()[-3000:] if log.exists() else ''}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The address of a two-node Ray cluster of this machine; this module's driver connects to it."""
    logs = tmp_path_factory.mktemp("ray-nodes")
    # Ray's unix sockets live under the temporary directory and allow 107 characters: a short one of its own.
    temp = Path(f"/tmp/ray-{secrets.token_hex(4)}")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    command = [str(Path(sys.executable).with_name("ray")), "start", "--num-cpus=1", "--disable-usage-stats",
               f"--object-store-memory={OBJECT_STORE}", "--block"]
    with socket.socket() as probe:
        probe.bind(("", 0))
        port = probe.getsockname()[1]
    processes: list[subprocess.Popen] = []
    try:
        with open(logs / "head.log", "w") as log:
            processes.append(subprocess.Popen([*command, "--head", f"--port={port}", "--include-dashboard=false",
                                               f"--temp-dir={temp}"], stdout=log, stderr=subprocess.STDOUT, env=env))
        # The head prints how to join it once it is up.
        address = _started(logs / "head.log", processes[0], r"ray start --address='([^']+)'").group(1)
        with open(logs / "worker.log", "w") as log:
            processes.append(subprocess.Popen([*command, f"--address={address}"], stdout=log,
                                              stderr=subprocess.STDOUT, env=env))
        _started(logs / "worker.log", processes[1], "Ray runtime started")
        with pytest.MonkeyPatch.context() as patch:
            for key in ("RAY_USAGE_STATS_ENABLED", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
                patch.setenv(key, env[key])
            import ray

            # Ray reads its authentication mode as it loads: again now, for a ray imported before the token was set
            # (as ray.init does for a cluster it starts).
            ray._raylet.Config.initialize("")
            # The tasks and work functions below travel to the workers by value: this module is not importable
            # there.
            ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
            yield address
            ray.shutdown()
    finally:
        for process in reversed(processes):  # each `ray start --block` stops its node's processes as it ends
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(temp, ignore_errors=True)


@dataclass(frozen=True)
class Square(StoredTask):
    value: int
    seconds: float = 0.3
    after: str | None = None  # the id of the task this one starts from

    namespace = "squares"

    @property
    def label(self) -> str:
        return f"square/{self.value}"

    @property
    def spec(self) -> dict:
        return {"value": self.value, "seconds": self.seconds, "after": self.after}

    @property
    def source(self) -> str | None:
        return self.after

    def params(self) -> dict:
        return {"value": self.value}

    def tags(self) -> dict[str, str]:
        return {}


def square(task: Square, directory: Path, on_epoch=None) -> dict:
    """Three "epochs", then the square (plus the source's result, when the task starts from one)."""
    for epoch in range(1, 4):
        time.sleep(task.seconds / 3)
        if on_epoch is not None:
            on_epoch({"epoch": epoch, "loss": 1.0 / epoch})
    if task.value == 13:
        raise ValueError("thirteen is refused")
    base = TaskStore(directory.parent.parent).read_result(task.after)["square"] if task.after else 0
    return {"square": base + task.value ** 2, "pid": os.getpid(), "time": time.time()}


class Events:
    """An observer that keeps what it hears."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def started(self, task, outcome):
        self.events.append(("started", task.label, outcome))

    def placed(self, task, where):
        self.events.append(("placed", task.label, where.get("node")))

    def epoch(self, task, record):
        self.events.append(("epoch", task.label, record["epoch"]))

    def finished(self, task, result, outcome, wall_seconds):
        self.events.append(("finished", task.label, outcome))

    def failed(self, task, error):
        self.events.append(("failed", task.label, str(error)))

    def of(self, label: str) -> list[tuple]:
        return [e for e in self.events if e[1] == label]


def test_tasks_run_on_both_nodes_live_and_finished_ones_are_reused(cluster, tmp_path):
    engine = Engine(kind="ray", address=cluster)
    tasks = [Square(v) for v in range(6)]
    events = Events()
    results = executor_for(engine=engine, progress=False).run(tasks, TaskStore(tmp_path / "ray"), square, events)
    local = executor_for(progress=False).run(tasks, TaskStore(tmp_path / "local"), square)
    assert [r["square"] for r in results] == [r["square"] for r in local] == [v * v for v in range(6)]
    assert len({e[2] for e in events.events if e[0] == "placed"}) == 2  # both nodes worked
    for task in tasks:
        assert [e[0] for e in events.of(task.label)] == ["started", "placed", "epoch", "epoch", "epoch", "finished"]
        assert not (TaskStore(tmp_path / "ray").directory(task) / "checkpoint.safetensors").exists()
    again = Events()
    reread = executor_for(engine=engine, progress=False).run(tasks, TaskStore(tmp_path / "ray"), square, again)
    assert reread == results  # read back, not run: the same pids and times
    assert {e[0] for e in again.events} == {"started", "finished"} and {e[2] for e in again.events} == {"reused"}


def test_a_task_starts_after_its_source(cluster, tmp_path):
    first = Square(3)
    second = Square(4, after=first.id)
    events = Events()
    results = executor_for(engine=Engine(kind="ray", address=cluster), progress=False).run(
        [second, first], TaskStore(tmp_path), square, events)
    assert [r["square"] for r in results] == [9 + 16, 9]
    assert events.events.index(("finished", "square/3", "trained")) < events.events.index(("started", "square/4",
                                                                                           "trained"))


def test_a_failing_task_fails_the_run_with_its_error_and_the_others_are_kept(cluster, tmp_path):
    """Two slots: the slow task and the failing one start together; the one that waits for the slow one would
    start after the failure, so it never does."""
    store = TaskStore(tmp_path)
    slow, failing = Square(5, seconds=3.0), Square(13)
    waiting = Square(7, after=slow.id)
    events = Events()
    with pytest.raises(ValueError, match="thirteen is refused") as raised:
        executor_for(engine=Engine(kind="ray", address=cluster), progress=False).run(
            [slow, failing, waiting], store, square, events)
    assert raised.value.__notes__[0].startswith(f"in task square/13 ({failing.id}) on ")
    assert store.is_done(slow)  # it was running: it finished
    assert not store.is_done(failing) and not store.is_done(waiting)
    assert ("failed", "square/13", "thirteen is refused") in events.events
    assert ("finished", "square/5", "trained") in events.events and not events.of("square/7")


@pytest.fixture(scope="module")
def experiment(small_experiment, tmp_path_factory, cluster) -> Path:
    """A copy of the session's small experiment (tests/conftest.py) whose params.yaml names the cluster."""
    root = tmp_path_factory.mktemp("ray-experiment")
    shutil.copytree(small_experiment, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("mlflow.db", "tasks"))
    set_params(root, {"engine.kind": "ray", "engine.address": cluster, "engine.max_retries": 1,
                      "encoding.models": ["random-64"], "encoding.n_shifts": 2, "encoding.ceiling_bootstraps": 5,
                      "finetuned.full_epochs": FULL_EPOCHS})
    return root


def _engine(root: Path, kind: str) -> None:
    set_params(root, {"engine.kind": kind})


def test_a_stage_grid_on_ray_is_bitwise_the_local_one(experiment, tmp_path):
    """``encoding@fmri`` (a ridge per participant x feature space, 2 x 3 tasks) on the cluster gives the files and
    results of ``engine: local`` bit for bit; each run is a fresh process, as DVC runs a stage.

    Why it holds: a fit is numpy and BLAS at one thread, the same operations in the same order in whichever process
    runs it; the local engine forks ``encoding.workers`` workers with one BLAS thread each, and a Ray task gets
    ``engine.num_cpus`` (1) threads. (A torch training grid would not do here: the local engine trains its tasks
    one after another in one process, and torch's CPU backward pass can differ in the last bits in a process that
    already trained another model; the kill test below compares training on Ray with training on Ray.)
    """
    db = tmp_path / "mlflow.db"
    _finish(_stage(experiment, tmp_path / "features", db, "features", "fmri"), tmp_path / "features")
    outputs = {}
    for kind in ("local", "ray"):
        _engine(experiment, kind)
        _finish(_stage(experiment, tmp_path / kind, db, "encoding", "fmri"), tmp_path / kind)
        outputs[kind] = {p.name: pd.read_parquet(p) for p in (experiment / "data/encoding/fmri").glob("*.parquet")}
    assert sorted(outputs["local"]) == sorted(outputs["ray"]) and "scores.parquet" in outputs["ray"]
    for name, table in outputs["local"].items():
        pd.testing.assert_frame_equal(table, outputs["ray"][name], check_exact=True)
    stored = {kind: sorted(p.relative_to(tmp_path / kind) for p in (tmp_path / kind).glob("encoding/*/*")
                           if p.name != ATTEMPT_LOG) for kind in ("local", "ray")}
    assert stored["local"] == stored["ray"] and len({p.parent for p in stored["ray"]}) == 6
    for path in stored["local"]:
        if path.name != "result.json":  # it holds the fit's wall time
            assert (tmp_path / "local" / path).read_bytes() == (tmp_path / "ray" / path).read_bytes(), path
    with sqlite3.connect(db) as con:
        nodes = {v for (v,) in con.execute("select value from tags where key = 'worker.node'")}
    assert len(nodes) == 2, nodes  # the grid was spread over both nodes


def _checkpoint_epochs(store: Path) -> dict[Path, int]:
    from brainalign.finetuning.model import read_checkpoint

    found = {}
    for path in store.glob("finetuned/*/checkpoint.safetensors"):
        try:
            found[path.parent] = len(read_checkpoint(path)[1]["history"])
        except Exception:  # being replaced this very moment
            continue
    return found


def _stage(root: Path, store: Path, db: Path, *argv: str) -> subprocess.Popen:
    """``stages/<argv[0]>.py <argv[1:]>`` in a fresh process, as DVC runs a stage; its output to ``<store>.log``."""
    env = dict(os.environ, BRAINALIGN_TASK_STORE=str(store), BRAINALIGN_TRACKING_URI=f"sqlite:///{db}")
    with open(f"{store}.log", "a") as log:
        return subprocess.Popen([sys.executable, str(REPOSITORY / "stages" / f"{argv[0]}.py"), *argv[1:]], cwd=root,
                                env=env, stdout=log, stderr=subprocess.STDOUT)


def _finish(process: subprocess.Popen, store: Path) -> str:
    process.wait(timeout=600)
    log = Path(f"{store}.log").read_text()
    assert process.returncode == 0, log[-3000:]
    return log


def test_a_killed_worker_costs_its_task_the_time_since_its_checkpoint(experiment, tmp_path):
    """SIGKILL to the worker process of a training task, mid-training: the stage finishes, the task resumes from its
    checkpoint, its weights equal an uninterrupted run's, and MLflow holds one FAILED attempt linked to the run that
    finished the task. Both runs train every task in a fresh worker process (``fresh_process``): the uninterrupted
    reference is a fair truth for the resumed attempt (see the bitwise test above)."""
    _engine(experiment, "ray")
    db = tmp_path / "mlflow.db"
    _finish(_stage(experiment, tmp_path / "reference", db, "train", "finetuned"), tmp_path / "reference")

    process = _stage(experiment, tmp_path / "killed", db, "train", "finetuned")
    deadline = time.time() + 300
    victim = None
    while victim is None and process.poll() is None and time.time() < deadline:
        # A few epochs into the full phase (2 head epochs come first) of either task.
        victim = next((folder for folder, epochs in _checkpoint_epochs(tmp_path / "killed").items() if epochs >= 5),
                      None)
        time.sleep(0.02)
    assert victim is not None, "no task reached its fifth epoch before the stage ended: make the run longer"
    placed = json.loads((victim / ATTEMPT_LOG).read_text().splitlines()[0])["placed"]
    assert placed["pid"] != process.pid  # a Ray worker, not the stage's process
    os.kill(placed["pid"], signal.SIGKILL)
    killed_at = _checkpoint_epochs(tmp_path / "killed").get(victim)
    log = _finish(process, tmp_path / "killed")
    assert "its worker died (attempt 1): WorkerCrashedError" in log
    assert re.search(r"tasks: 100%.*2/2 .*running 0, failed 1", log)  # the stage's progress bar over tasks

    reference = {p.parent.name: load_file(p) for p in (tmp_path / "reference").glob("finetuned/*/weights.safetensors")}
    resumed = {p.parent.name: load_file(p) for p in (tmp_path / "killed").glob("finetuned/*/weights.safetensors")}
    assert sorted(reference) == sorted(resumed) and len(reference) == 2
    for key in reference:
        assert sorted(reference[key]) == sorted(resumed[key])
        for name, tensor in reference[key].items():
            assert bool((tensor == resumed[key][name]).all()), f"{key}: {name} differs after resuming"
    for a, b in zip(sorted((tmp_path / "reference").glob("finetuned/*/predictions/fmri/*.npy")),
                    sorted((tmp_path / "killed").glob("finetuned/*/predictions/fmri/*.npy"))):
        np.testing.assert_array_equal(np.load(a), np.load(b))

    with sqlite3.connect(db) as con:
        runs = con.execute("select r.run_uuid, r.status from runs r join tags t on t.run_uuid = r.run_uuid "
                           "where t.key = 'task'").fetchall()
        tags = {run: dict(con.execute("select key, value from tags where run_uuid = ?", (run,)).fetchall())
                for run, _ in runs}
        failed = [run for run, status in runs if status == "FAILED"]
        assert len(failed) == 1 and len(runs) == 2 + 3, runs  # reference 2, killed stage 2 + the dead attempt
        dead = failed[0]
        assert tags[dead]["task_key"] == victim.name and "WorkerCrashedError" in tags[dead]["failure"]
        assert tags[dead]["worker.pid"] == str(placed["pid"])
        run, resumed_at = run_resuming(con, tags, dead)
        assert killed_at is not None and resumed_at >= killed_at >= 5
        steps = [s for (s,) in con.execute("select distinct step from metrics where run_uuid = ? and key = 'loss' "
                                           "order by step", (run,))]
        assert steps == list(range(1, 2 + FULL_EPOCHS + 1))  # replayed from the checkpoint, then the rest: whole
        walls = con.execute("select count(*) from metrics m join tags t on t.run_uuid = m.run_uuid "
                            "where m.key = 'wall_seconds' and t.key = 'worker.node'").fetchone()[0]
        assert walls == 4  # every finished task: its wall time and the node it ran on
