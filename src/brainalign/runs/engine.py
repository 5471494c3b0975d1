"""The engine that runs a stage's tasks, from params.yaml's ``engine`` section: this machine, or a Ray cluster.

Every stage that runs a grid of tasks takes its executor from :func:`executor_for`, and no stage schedules
tasks itself. The engine decides where tasks run, never what they compute (a task's key holds everything that
determines its result), so ``engine`` is no DVC parameter of any stage: switching engines reruns nothing.

``engine`` in params.yaml (docs/scaleout.md)::

    kind: local           local: in the stage's process, or in the forked workers a section's `workers` asks
                          for; ray: on a Ray cluster (brainalign.runs.distributed)
    address: null         ray: auto (the cluster this machine belongs to), ray://<head>:10001, <head>:6379,
                          or null (a Ray of this machine, started by the stage)
    num_cpus: 1           ray: CPUs per task, also its BLAS and torch threads
    num_gpus: 1           ray: GPUs per task of a stage that runs on CUDA (stages on the CPU ask for none)
    max_retries: 2        ray: new attempts of a task whose worker or node died (a task's own error is final)
    store: null           the task store, a path every node sees (relative: to the repository); null: data/tasks

A missing section is the local engine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from brainalign.config.params import load_params, section
from brainalign.errors import ConfigError
from brainalign.runs.executors import Executor, ForkExecutor, LocalExecutor

KINDS = ("local", "ray")


@dataclass(frozen=True)
class Engine:
    """params.yaml's ``engine`` section, checked (the module docstring says what each field means)."""

    kind: str = "local"
    address: str | None = None
    num_cpus: float = 1
    num_gpus: float = 1
    max_retries: int = 2
    store: str | None = None


def engine_settings(params: dict, path: str | os.PathLike = "params.yaml") -> Engine:
    """The ``engine`` section of ``params`` (read from ``path``) as an :class:`Engine`; local when it is absent.

    Raises
    ------
    ConfigError
        Naming the file and the field, what was expected and what was found.
    """
    if "engine" not in params:
        return Engine()
    values = section(params, "engine", [f.name for f in fields(Engine)], path=str(path))

    def check(field: str, ok: bool, expected: str) -> None:
        if not ok:
            raise ConfigError(f"{path}: engine.{field}: expected {expected}, found {values[field]!r}")

    def number(value: object) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def text_or_null(value: object) -> bool:
        return value is None or (isinstance(value, str) and value.strip() != "")

    check("kind", values["kind"] in KINDS, f"one of {list(KINDS)}")
    check("address", text_or_null(values["address"]),
          "null (a Ray started by the stage), auto, ray://<head>:<port> or <head>:<port>")
    check("num_cpus", number(values["num_cpus"]) and values["num_cpus"] > 0, "CPUs per task, a number above 0")
    check("num_gpus", number(values["num_gpus"]) and values["num_gpus"] > 0,
          "GPUs per task on CUDA, a number above 0 (a fraction shares a GPU)")
    check("max_retries", isinstance(values["max_retries"], int) and not isinstance(values["max_retries"], bool)
          and values["max_retries"] >= 0, "a whole number, 0 or more")
    check("store", text_or_null(values["store"]), "null (data/tasks of the repository) or a path every node sees")
    return Engine(**values)


def workspace_engine(directory: str | os.PathLike = ".") -> Engine:
    """The engine that ``params.yaml`` in ``directory`` (a stage's working directory) names; local without one."""
    path = Path(directory) / "params.yaml"
    if not path.is_file():
        return Engine()
    return engine_settings(load_params(path), path)


def executor_for(workers: int = 1, device: str = "cpu", fresh_process: bool = False, engine: Engine | None = None,
                 progress: bool = True) -> Executor:
    """The executor of a stage's tasks.

    Parameters
    ----------
    workers : int
        The local engine's parallelism: more than 1 forks that many workers, one BLAS thread each (the stage's
        own ``workers`` setting). The Ray engine ignores it: the cluster's CPUs and ``num_cpus`` decide.
    device : str
        Where the tasks compute (``cpu``, ``cuda``): on CUDA the local engine runs them one after another in
        this process (a forked process cannot use a CUDA context its parent made), and Ray gives each
        ``engine.num_gpus`` GPUs.
    fresh_process : bool
        Ray: every attempt in a new worker process. Training grids ask for it: at one thread, torch's CPU
        backward pass can differ in the last bits in a process that already trained other models, so an
        attempt that resumes from a checkpoint ends bitwise where an uninterrupted one does only when both
        start from a fresh process (as DVC starts every stage).
    engine : Engine, optional
        Default: the ``engine`` of ``params.yaml`` in the working directory (:func:`workspace_engine`).
    progress : bool
        Print a line per task (local) or a progress bar over tasks (Ray).
    """
    engine = workspace_engine() if engine is None else engine
    if engine.kind == "ray":
        from brainalign.runs.distributed import RayExecutor

        return RayExecutor(engine, gpu=device.startswith("cuda"), fresh_process=fresh_process, progress=progress)
    if workers > 1 and not device.startswith("cuda"):
        return ForkExecutor(workers, progress)
    return LocalExecutor(progress)
