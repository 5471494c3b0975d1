"""Tracking: where the stores are, which hashes tag a stage's run, and task runs logged side by side."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from brainalign.tracking import TaskRuns, flatten, input_hashes, main_repository, stage_run, store_uri, task_store


def _pipeline(root, deps):
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": {"cmd": "true", "deps": deps}}}))
    (root / "params.yaml").write_text(yaml.safe_dump({"dataset": {"path": "raw"}}))


def test_main_repository_from_a_dvc_temporary_workspace(tmp_path, monkeypatch):
    """Truth: DVC runs --temp/--queue experiments in <repo>/.dvc/tmp/exps/<...>; the store stays in <repo>."""
    main = tmp_path / "project"
    copy = main / ".dvc" / "tmp" / "exps" / "standalone" / "tmpab12"
    (copy / "stages").mkdir(parents=True)
    _pipeline(main, [])
    _pipeline(copy, [])
    monkeypatch.delenv("BRAINALIGN_TRACKING_URI", raising=False)
    assert main_repository(copy / "stages") == main
    assert main_repository(main) == main
    assert store_uri(copy) == f"sqlite:///{main / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("BRAINALIGN_TRACKING_URI", "http://127.0.0.1:5000")
    assert store_uri(copy) == "http://127.0.0.1:5000"


def test_input_hashes_prefer_dvc_lock_for_outputs_of_earlier_stages(tmp_path):
    """Truth: an upstream output's md5 is read from dvc.lock; a source file's is its bytes' md5; params
    interpolate (${dataset.path}); a missing dependency says so."""
    _pipeline(tmp_path, ["data/features", "code.py", "${dataset.path}", "absent.txt"])
    (tmp_path / "code.py").write_text("print('hi')\n")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.txt").write_text("a")
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "encode": {"outs": [{"path": "data/features", "md5": "0123abcd.dir"}]},
        # The stage's own previous deps are stale and must not be used.
        "train": {"deps": [{"path": "code.py", "md5": "stale"}]}}}))
    hashes = input_hashes("train", tmp_path)
    assert hashes["data/features"] == "0123abcd.dir"
    assert hashes["code.py"] == hashlib.md5(b"print('hi')\n").hexdigest()
    listing = f"a.txt:{hashlib.md5(b'a').hexdigest()}\n".encode()
    assert hashes["raw"] == hashlib.md5(listing).hexdigest() + ".tree"
    assert hashes["absent.txt"] == "missing"


def test_input_hashes_take_earlier_outputs_inside_a_directory_from_dvc_lock(tmp_path):
    """Truth: a listing worked by hand. ``data/models`` is no stage's output, but ``data/models/a/x`` is:
    its entry is the md5 dvc.lock records (its bytes, which disagree, are not read), beside the md5 of
    the one file no stage wrote."""
    _pipeline(tmp_path, ["data/models"])
    (tmp_path / "data/models/a/x").mkdir(parents=True)
    (tmp_path / "data/models/a/x/weights.bin").write_bytes(b"not what dvc.lock says")
    (tmp_path / "data/models/notes.txt").write_text("n")
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "x": {"outs": [{"path": "data/models/a/x", "md5": "feed.dir"}]}}}))
    listing = f"a/x:feed.dir\nnotes.txt:{hashlib.md5(b'n').hexdigest()}\n".encode()
    assert input_hashes("train", tmp_path)["data/models"] == hashlib.md5(listing).hexdigest() + ".tree"


def test_flatten():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a.b": 1, "a.c": "[1, 2]", "d": "x"}


def test_engine_store_moves_the_task_store(tmp_path, monkeypatch):
    """params.yaml's engine.store moves the task store (relative to the repository); the variable still wins."""
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.delenv("BRAINALIGN_TASK_STORE", raising=False)
    engine = {"kind": "ray", "address": None, "num_cpus": 1, "num_gpus": 1, "max_retries": 2}
    for store, expected in [(None, tmp_path / "data" / "tasks"), ("scratch/tasks", tmp_path / "scratch" / "tasks"),
                            ("/shared/tasks", Path("/shared/tasks"))]:
        (tmp_path / "params.yaml").write_text(yaml.safe_dump({"engine": {**engine, "store": store}}))
        assert task_store(tmp_path) == expected
    monkeypatch.setenv("BRAINALIGN_TASK_STORE", str(tmp_path / "mine"))
    assert task_store(tmp_path) == tmp_path / "mine"


class _Job:
    """A task as the observer sees it."""

    source = None

    def __init__(self, name: str) -> None:
        self.label, self.key, self.id = f"job/{name}", f"{name}-key", f"jobs/{name}-key"

    def params(self) -> dict:
        return {"name": self.label}

    def tags(self) -> dict[str, str]:
        return {"input_md5.x": "feed"}


def _result(score: float) -> dict:
    return {"score": score, "seconds": 1.0, "resumed_at_epoch": 0, "examples_per_second": 10.0, "history": []}


def test_tasks_that_run_at_once_are_logged_side_by_side(tmp_path, monkeypatch):
    """Two tasks under way together (as on Ray): each event lands in its own run, nested under the stage's; a
    failed attempt stays FAILED and the next attempt of the same task links to it."""
    import mlflow

    monkeypatch.setenv("BRAINALIGN_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    observer = TaskRuns(summarise=lambda task, result: {"score": result["score"]})
    a, b = _Job("a"), _Job("b")
    with stage_run("grid", {"x": 1}, start=tmp_path) as stage:
        observer.started(a, "trained")
        observer.placed(a, {"host": "node-1", "pid": 11, "node": "n1"})
        observer.started(b, "trained")
        observer.placed(b, {"host": "node-2", "pid": 22, "node": "n2"})
        observer.epoch(a, {"epoch": 1, "loss": 1.0})
        observer.epoch(b, {"epoch": 1, "loss": 5.0})
        observer.epoch(a, {"epoch": 2, "loss": 0.5})
        observer.failed(b, RuntimeError("its worker died"))
        observer.started(b, "resumed")
        observer.finished(a, _result(0.9), "trained", 3.0)
        observer.epoch(b, {"epoch": 2, "loss": 4.0})
        observer.finished(b, _result(0.1), "resumed", 2.0)
    client = mlflow.MlflowClient()
    runs = client.search_runs([stage.info.experiment_id], f"tags.mlflow.parentRunId = '{stage.info.run_id}'")
    by_status = sorted((r.data.tags["task"], r.info.status) for r in runs)
    assert by_status == [("job/a", "FINISHED"), ("job/b", "FAILED"), ("job/b", "FINISHED")]
    run = {(r.data.tags["task"], r.info.status): r for r in runs}
    first = run["job/a", "FINISHED"]
    assert [m.value for m in client.get_metric_history(first.info.run_id, "loss")] == [1.0, 0.5]
    assert first.data.metrics["score"] == 0.9 and first.data.metrics["wall_seconds"] == 3.0
    assert first.data.tags["worker.host"] == "node-1" and first.data.tags["worker.pid"] == "11"
    assert first.data.params["name"] == "job/a" and first.data.tags["input_md5.x"] == "feed"
    dead, resumed = run["job/b", "FAILED"], run["job/b", "FINISHED"]
    assert dead.data.tags["failure"] == "RuntimeError: its worker died" and dead.data.metrics["loss"] == 5.0
    assert resumed.data.tags["resumes_run"] == dead.info.run_id and resumed.data.tags["outcome"] == "resumed"
    assert [m.step for m in client.get_metric_history(resumed.info.run_id, "loss")] == [2]
    assert [r["run_id"] for r in observer.results] == [first.info.run_id, resumed.info.run_id]
