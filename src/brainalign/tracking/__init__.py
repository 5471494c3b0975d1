"""MLflow at the edge, and only MLflow: the store, the experiment, and runs tagged with commit, stage and
input hashes. The library never imports this package; stages do.

May import: the base modules and ``runs``.

The store is ``sqlite:///<main repository>/mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts``.
"Main repository" matters: ``dvc exp run --temp`` and ``--queue`` run stages in copies under
``<repository>/.dvc/tmp/exps/``, and a store relative to the working directory would vanish with the copy.
``BRAINALIGN_TRACKING_URI`` overrides the store (a server, say).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

# dvc.lock lists every file hash of the pipeline: the C loader reads it in a fraction of the time.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

from brainalign.files import md5_file
from brainalign.runs.engine import workspace_engine

EXPERIMENT = "brainalign"
TEMP_WORKSPACES = (".dvc", "tmp", "exps")


def workspace_root(start: str | os.PathLike | None = None) -> Path:
    """The nearest directory at or above ``start`` that holds ``dvc.yaml`` (else ``start``)."""
    here = Path(start or os.getcwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "dvc.yaml").exists():
            return candidate
    return here


def main_repository(start: str | os.PathLike | None = None) -> Path:
    """The repository whose store runs belong in, also from inside a DVC temporary workspace."""
    root = workspace_root(start)
    parts = root.parts
    for i in range(len(parts) - len(TEMP_WORKSPACES) + 1):
        if parts[i:i + len(TEMP_WORKSPACES)] == TEMP_WORKSPACES:
            return Path(*parts[:i])
    return root


def store_uri(start: str | os.PathLike | None = None) -> str:
    """The MLflow tracking URI (``BRAINALIGN_TRACKING_URI`` wins)."""
    if os.environ.get("BRAINALIGN_TRACKING_URI"):
        return os.environ["BRAINALIGN_TRACKING_URI"]
    store = main_repository(start) / "mlruns"
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def task_store(start: str | os.PathLike | None = None) -> Path:
    """Where tasks keep their files: ``BRAINALIGN_TASK_STORE``, else params.yaml's ``engine.store`` (a path
    every node of a cluster sees; relative to the main repository), else ``data/tasks`` of the main repository.

    Like the MLflow store it lives in the main repository, so an experiment run in a temporary DVC
    workspace reuses the tasks already finished (a task's key covers everything that determines it).
    """
    if os.environ.get("BRAINALIGN_TASK_STORE"):
        return Path(os.environ["BRAINALIGN_TASK_STORE"])
    store = workspace_engine(workspace_root(start)).store
    return main_repository(start) / (store if store is not None else Path("data", "tasks"))


def artifact_root(start: str | os.PathLike | None = None) -> Path:
    return main_repository(start) / "mlruns" / "artifacts"


def git_commit(start: str | os.PathLike | None = None) -> str:
    """The commit the workspace was checked out from, with ``-dirty`` when tracked files differ."""
    root = workspace_root(start)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def _tree_md5(path: Path, recorded: dict[str, str], key: str) -> str:
    """The MD5 of a directory's sorted ``path:md5`` listing.

    Subdirectories that are outputs of earlier stages (``recorded``, from dvc.lock) enter with the hash
    DVC recorded rather than being read again: ``data/models`` holds every model's checkpoints, and
    reading them all would cost a stage many seconds before it starts.
    """
    lines = [f"{Path(os.path.relpath(out, key)).as_posix()}:{digest}" for out, digest in recorded.items()
             if out.startswith(key + os.sep)]
    for folder, subfolders, files in os.walk(path):
        here = Path(folder)
        subfolders[:] = sorted(d for d in subfolders
                               if os.path.normpath(os.path.join(key, (here / d).relative_to(path))) not in recorded)
        lines += [f"{(here / f).relative_to(path).as_posix()}:{md5_file(here / f)}" for f in files
                  if os.path.normpath(os.path.join(key, (here / f).relative_to(path))) not in recorded]
    digest = hashlib.md5()
    for line in sorted(lines):
        digest.update(f"{line}\n".encode())
    return digest.hexdigest() + ".tree"


def input_hashes(stage: str, start: str | os.PathLike | None = None) -> dict[str, str]:
    """Hashes of the stage's dependencies.

    Outputs of earlier stages take the MD5 that DVC recorded in ``dvc.lock`` (DVC writes each stage's
    entry as soon as it finishes, so these are current); other dependencies (code, raw data given by
    path) are hashed here: a file's MD5, or for a directory the MD5 of its sorted ``path:md5`` listing.
    """
    root = workspace_root(start)
    if not (root / "dvc.yaml").exists():
        return {}  # a stage run by hand outside a pipeline: nothing declares its inputs
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((root / "params.yaml").read_text()) if (root / "params.yaml").exists() else {}
    name, _, key = stage.partition("@")
    definition = stages.get(name, {})
    context = dict(params)
    if key and "foreach" in definition:
        # A foreach stage: over a dict of params (``validate@fmri``: ${key} is the entry's key, ${item.x}
        # its values) or over a literal list (``train@joint``: ${item} is the entry itself).
        entries = definition["foreach"]
        if isinstance(entries, str):
            entries = _lookup(params, entries.strip()[2:-1])
        context.update({"key": key, "item": entries.get(key, {}) if isinstance(entries, dict) else key})
        definition = definition.get("do", {})
    deps = [d if isinstance(d, str) else next(iter(d)) for d in definition.get("deps", [])]
    deps = [_interpolate(d, context) for d in deps]
    recorded: dict[str, str] = {}
    lock = root / "dvc.lock"
    if lock.exists():
        for name, entry in (yaml.load(lock.read_text(), Loader=_YAML_LOADER) or {}).get("stages", {}).items():
            if name == stage:
                continue
            for out in entry.get("outs", []):
                recorded[os.path.normpath(out["path"])] = out.get("md5") or out.get("hash", "")
    hashes = {}
    for dep in deps:
        key = os.path.normpath(dep)
        path = (root / dep) if not os.path.isabs(dep) else Path(dep)
        if key in recorded:
            hashes[key] = recorded[key]
        elif path.is_file():
            hashes[key] = md5_file(path)
        elif path.is_dir():
            hashes[key] = _tree_md5(path, recorded, key)
        else:
            hashes[key] = "missing"
    return hashes


def _lookup(context: dict, dotted: str) -> Any:
    value: Any = context
    for part in dotted.split("."):
        value = value[part]
    return value


def _interpolate(text: str, context: dict) -> str:
    """Resolve ``${a.b}`` from ``context`` (params, plus ``key`` and ``item`` in foreach stages), as
    dvc.yaml templating does for plain values."""
    out = text
    while "${" in out:
        start = out.index("${")
        end = out.index("}", start)
        out = out[:start] + str(_lookup(context, out[start + 2:end])) + out[end + 1:]
    return out


def flatten(params: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists become JSON)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple)) else value
    return flat


STARTUP_PROBE = "BRAINALIGN_STARTUP_PROBE"
"""Set in the environment, a stage stops (exit 0) as soon as its MLflow run has started (perf/startup.py)."""


@contextmanager
def stage_run(stage: str, params: dict, start: str | os.PathLike | None = None) -> Iterator[Any]:
    """An MLflow parent run for one invocation of ``stage``, tagged and with its params logged.

    The run ends FINISHED, or FAILED if the block raises (the exception propagates). Runs left RUNNING
    by a process of this host that no longer exists (killed, say with ``kill -9``) are marked FAILED
    first, so a re-run finds them failed rather than forever running.
    """
    import mlflow

    mlflow.set_tracking_uri(store_uri(start))
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        location = artifact_root(start)
        location.mkdir(parents=True, exist_ok=True)
        try:
            mlflow.create_experiment(EXPERIMENT, artifact_location=location.as_uri())
        except mlflow.exceptions.MlflowException:
            pass  # created meanwhile by a concurrent stage
    mlflow.set_experiment(EXPERIMENT)
    fail_dead_runs()
    tags = {"stage": stage, "git_commit": git_commit(start), "workspace": str(workspace_root(start)), **_process_tags()}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    tags.update({f"input_md5.{path}": digest for path, digest in input_hashes(stage, start).items()})
    with mlflow.start_run(run_name=stage, tags=tags) as run:
        mlflow.log_params({k: v for k, v in flatten(params).items()})
        if os.environ.get(STARTUP_PROBE):
            # perf/startup.py times a stage up to here: imports, params, MLflow connection and run start;
            # the process then leaves at once, since unloading its modules is not start-up.
            mlflow.end_run()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        yield run


def _process_tags() -> dict[str, str]:
    return {"host": socket.gethostname(), "pid": str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_runs() -> list[str]:
    """Mark FAILED the RUNNING runs whose process (on this host) is gone; returns their ids."""
    import mlflow

    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    host = socket.gethostname()
    dead = []
    for run in client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'", max_results=10000):
        tags = run.data.tags
        if tags.get("host") == host and tags.get("pid", "").isdigit() and not _alive(int(tags["pid"])):
            client.set_tag(run.info.run_id, "failure", f"process {tags['pid']} died while the run was running; "
                           f"found by process {os.getpid()} at {time.strftime('%Y-%m-%d %H:%M:%S')}")
            client.set_terminated(run.info.run_id, status="FAILED")
            dead.append(run.info.run_id)
    return dead


def stage_runs(stages: list[str], start: str | os.PathLike | None = None) -> list[dict]:
    """The latest run of each stage (``stage``, ``run_id``, ``status``, ``git_commit``), for the report."""
    import mlflow

    mlflow.set_tracking_uri(store_uri(start))
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    client = mlflow.MlflowClient()
    found = []
    for stage in stages:
        runs = client.search_runs([experiment.experiment_id], f"tags.stage = '{stage}'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
        for run in runs:
            found.append({"stage": stage, "run_id": run.info.run_id, "status": run.info.status,
                          "git_commit": run.data.tags.get("git_commit", "")})
    return found


def _earlier_attempts(task_key: str) -> list:
    import mlflow

    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id], f"tags.task_key = '{task_key}'",
                              order_by=["attributes.start_time DESC"], max_results=100)


def _numbers(record: dict) -> dict[str, float]:
    # Head names read dataset:subject; MLflow keys cannot hold ':'.
    return {k.replace(":", "/"): float(v) for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("epoch", "replayed")}


class TaskRuns:
    """An executor's observer that logs each task as an MLflow run nested under the stage's run.

    Each task's run gets its params (``task.params()``) and tags (``task.tags()``: input hashes, names),
    per-epoch metrics as they come, then wall time and ``summarise(task, result)``'s metrics (the
    held-out 20 vs 20 summary, a GLUE run's dev metrics). A task whose earlier attempt died is resumed
    from its checkpoint by the executor; its new run is tagged ``resumes_run`` with the dead run's id
    and links to it, and replays the epochs the checkpoint holds so the new run's history is whole. A
    task already finished in the store says ``outcome: reused`` and logs its stored history. A task run
    elsewhere (Ray) is tagged with where it ran: ``worker.host``, ``worker.pid``, ``worker.node``.

    Only the stage process writes to MLflow: tasks report through the executor and their result files.
    Each task's run is addressed by its id, so tasks that run at once (on Ray) log side by side.
    """

    def __init__(self, summarise: Callable[[Any, dict], dict[str, float]] | None = None,
                 tags: dict[str, str] | None = None) -> None:
        self.summarise, self.extra_tags = summarise, dict(tags or {})
        self.results: list[dict] = []
        self._runs: dict[str, str] = {}  # task id -> the run of its attempt under way

    def started(self, task: Any, outcome: str) -> None:
        import mlflow
        from mlflow.tracking.context import registry

        failed = [r for r in _earlier_attempts(task.key) if r.info.status == "FAILED"]
        if outcome == "trained" and failed:
            outcome = "resumed"  # an attempt died before its first checkpoint: still the same task
        tags = {**_process_tags(), **self.extra_tags, **task.tags(), "task_key": task.key, "task": task.label,
                "outcome": outcome, "mlflow.runName": task.label}
        if outcome == "resumed" and failed:
            dead = failed[0].info
            tags["resumes_run"] = dead.run_id
            tags["mlflow.note.content"] = (f"Resumes the failed run [{dead.run_name}](#/experiments/"
                                           f"{dead.experiment_id}/runs/{dead.run_id}) from its last checkpoint.")
        parent = mlflow.active_run()  # the stage's
        if parent is not None:
            tags["mlflow.parentRunId"] = parent.info.run_id
            experiment = parent.info.experiment_id
        else:
            experiment = mlflow.set_experiment(EXPERIMENT).experiment_id
        run = mlflow.MlflowClient().create_run(experiment, tags=registry.resolve_tags(tags), run_name=task.label)
        self._runs[task.id] = run.info.run_id
        self._log(task, params=flatten(task.params()))

    def placed(self, task: Any, where: dict) -> None:
        self._log(task, tags={f"worker.{key}": value for key, value in where.items()})

    def epoch(self, task: Any, record: dict) -> None:
        self._log(task, metrics=_numbers(record), step=int(record["epoch"]))

    def finished(self, task: Any, result: dict, outcome: str, wall_seconds: float) -> None:
        import mlflow

        if outcome == "reused":
            for record in result["history"]:
                self.epoch(task, record)
        self._log(task, metrics={"wall_seconds": wall_seconds, "task_seconds": result["seconds"],
                                 "resumed_at_epoch": result["resumed_at_epoch"],
                                 "examples_per_second": result["examples_per_second"],
                                 **(self.summarise(task, result) if self.summarise is not None else {})})
        run_id = self._runs.pop(task.id)
        self.results.append({**result, "run_id": run_id})
        mlflow.MlflowClient().set_terminated(run_id, status="FINISHED")

    def failed(self, task: Any, error: BaseException) -> None:
        import mlflow

        run_id = self._runs.pop(task.id)
        self._log_to(run_id, tags={"failure": f"{type(error).__name__}: {error}"[:5000]})
        mlflow.MlflowClient().set_terminated(run_id, status="FAILED")

    def _log(self, task: Any, **what: Any) -> None:
        self._log_to(self._runs[task.id], **what)

    @staticmethod
    def _log_to(run_id: str, params: dict | None = None, metrics: dict | None = None, tags: dict | None = None,
                step: int = 0) -> None:
        import mlflow
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        mlflow.MlflowClient().log_batch(
            run_id, metrics=[Metric(k, float(v), now, step) for k, v in (metrics or {}).items()],
            params=[Param(k, str(v)) for k, v in (params or {}).items()],
            tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()])
