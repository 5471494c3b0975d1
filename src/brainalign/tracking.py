"""MLflow at the edge: the store, the experiment, and runs tagged with commit, stage and input hashes.

The store is ``sqlite:///<main repository>/mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts``.
"Main repository" matters: ``dvc exp run --temp`` and ``--queue`` run stages in copies under
``<repository>/.dvc/tmp/exps/``, and a store relative to the working directory would vanish with the copy.
``BRAINALIGN_TRACKING_URI`` overrides the store (a server, say).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

from brainalign.files import md5_file

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


def _tree_md5(path: Path) -> str:
    digest = hashlib.md5()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}:{md5_file(file)}\n".encode())
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
        # A foreach stage (``validate@fmri``): ${key} is the entry's key, ${item.x} its values.
        entries = _lookup(params, definition["foreach"].strip()[2:-1])
        context.update({"key": key, "item": entries.get(key, {})})
        definition = definition.get("do", {})
    deps = [d if isinstance(d, str) else next(iter(d)) for d in definition.get("deps", [])]
    deps = [_interpolate(d, context) for d in deps]
    recorded: dict[str, str] = {}
    lock = root / "dvc.lock"
    if lock.exists():
        for name, entry in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).items():
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
            hashes[key] = _tree_md5(path)
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


@contextmanager
def stage_run(stage: str, params: dict, start: str | os.PathLike | None = None) -> Iterator[Any]:
    """An MLflow parent run for one invocation of ``stage``, tagged and with its params logged.

    The run ends FINISHED, or FAILED if the block raises (the exception propagates).
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
    tags = {"stage": stage, "git_commit": git_commit(start), "workspace": str(workspace_root(start))}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    tags.update({f"input_md5.{path}": digest for path, digest in input_hashes(stage, start).items()})
    with mlflow.start_run(run_name=stage, tags=tags) as run:
        mlflow.log_params({k: v for k, v in flatten(params).items()})
        yield run


@contextmanager
def child_run(name: str, params: dict | None = None, tags: dict | None = None) -> Iterator[Any]:
    """A run nested under the active stage run."""
    import mlflow

    with mlflow.start_run(run_name=name, nested=True, tags=tags or {}) as run:
        if params:
            mlflow.log_params(flatten(params))
        yield run


def log_history(history: list[dict]) -> None:
    """Log per-epoch records (``epoch`` plus metrics) as metric series stepped by epoch."""
    import mlflow

    for record in history:
        step = int(record["epoch"])
        mlflow.log_metrics({k: float(v) for k, v in record.items() if k != "epoch"}, step=step)
