"""Tasks on a Ray cluster, through the same ``run(tasks, store, work, observer)`` as the local executors.

The stage process (Ray's driver) puts the work function into Ray's object store once, submits each task once the
task it starts from has finished, and stays the only writer of tracking. A worker runs its task through the task
store, which every node sees at the same path (a shared filesystem), in the stage's working directory (the same
path on every node, for the inputs the work reads), and appends where it runs and each epoch's record to
``attempt.jsonl`` in the task's folder; the driver reads those files while it waits on Ray and passes them on to
the observer (``placed``, then ``epoch`` as they come), so MLflow gets each epoch while the task runs. A finished
task's result comes back to the driver, which reports it.

Faults. Tasks are submitted without Ray's own retries, so that the driver sees every attempt. A worker or node
that dies (killed, out of memory, a lost node) costs that attempt: the observer hears ``failed``, and the task is
submitted again, up to ``engine.max_retries`` times; the new attempt finds the checkpoint the dead one left in the
store, and the observer hears ``started`` with the outcome ``resumed``. An error the task raises itself would come
again: it is not retried; nothing new starts, the tasks already running finish (their results stay in the store),
and the stage fails with that error.

``ray`` is imported only here, and only when a stage runs on Ray: the library and the local engine work without it.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from brainalign.errors import BrainalignError, ConfigError, InputError
from brainalign.offline import offline_environment
from brainalign.runs.engine import Engine
from brainalign.runs.executors import Observer, order_tasks
from brainalign.runs.spec import TaskSpec
from brainalign.runs.store import TaskStore, Work

ATTEMPT_LOG = "attempt.jsonl"
# How long the driver waits on Ray before it reads the attempt logs again: the delay of live epochs in MLflow.
WAIT_SECONDS = 0.5


class TaskFailed(BrainalignError):
    """A task whose attempts all ended with their worker or node dead."""


def _ray():
    try:
        import ray
    except ImportError as error:
        raise ConfigError("params.yaml: engine.kind: ray needs the ray package (pip install -e '.[ray]'), "
                          "found it not installed") from error
    return ray


def connect(engine: Engine, num_cpus: int | None = None) -> None:
    """Join the cluster at ``engine.address`` (once per process), or start a Ray of this machine when it is null,
    with ``num_cpus`` CPUs (default: all of them).

    The workers get this process's offline environment (no hub, no telemetry), whatever shell started their node.
    """
    ray = _ray()
    if ray.is_initialized():
        return
    local = engine.address is None
    if local and not any(k in os.environ for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")):
        # A Ray of the stage's own: a token for it alone, rather than one Ray would write under ~/.ray.
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    try:
        ray.init(address="local" if local else engine.address, log_to_driver=False,
                 runtime_env={"env_vars": offline_environment()},
                 **({"include_dashboard": False, "num_cpus": num_cpus} if local else {}))
    except ConnectionError as error:
        raise ConfigError(f"params.yaml: engine.address: expected a running Ray cluster at {engine.address!r}, "
                          f"found none ({error})") from error


def _json(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def run_attempt(work: Work, store: TaskStore, task: TaskSpec, workspace: str, threads: int) -> dict:
    """One attempt of ``task``, on a Ray worker: the task's result, its wall time and where it ran."""
    import ray
    from threadpoolctl import threadpool_limits

    where = {"host": socket.gethostname(), "pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}
    try:
        os.chdir(workspace)
    except OSError as error:
        raise InputError(workspace, "working directory", "the stage's workspace, at the same path on every Ray node "
                         "(a shared filesystem)", f"{error.strerror} on {where['host']}") from error
    directory = store.directory(task)
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / ATTEMPT_LOG
    log.write_text(json.dumps({"placed": where}) + "\n")

    def on_epoch(record: dict) -> None:
        with open(log, "a") as handle:
            handle.write(json.dumps({"epoch": record}, default=_json) + "\n")

    # The work's modules are loaded (its pickle imported them): torch, when the task uses it, gets the task's
    # threads as the BLAS libraries do.
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    started = time.perf_counter()
    with threadpool_limits(threads):
        result = store.run(task, work, on_epoch)
    return {"result": result, "wall_seconds": time.perf_counter() - started, **where}


@dataclass
class _Attempt:
    """One submission of a task, as the driver follows it."""

    task: TaskSpec
    outcome: str
    log: Path
    offset: int = 0
    opened: bool = False
    where: dict = field(default_factory=dict)

    def follow(self, observer: Observer | None) -> None:
        """Pass on what the worker has appended to the attempt's log since the last look."""
        try:
            with open(self.log, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return
        complete = data[:data.rfind(b"\n") + 1]  # a line being written is read next time
        self.offset += len(complete)
        for line in complete.splitlines():
            entry = json.loads(line)
            if "placed" in entry:
                self.open(observer, entry["placed"])
            elif observer is not None:
                observer.epoch(self.task, entry["epoch"])

    def open(self, observer: Observer | None, where: dict) -> None:
        if self.opened:
            return
        self.opened, self.where = True, where
        if observer is not None:
            observer.started(self.task, self.outcome)
            observer.placed(self.task, where)


class _Progress:
    """A bar over the stage's tasks (done / running / failed), with a line per finished or failed attempt."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=done, desc="tasks", unit="task", file=sys.stdout, disable=not enabled,
                        mininterval=1.0, dynamic_ncols=True)
        self.write = tqdm.write if enabled else (lambda line, **kwargs: None)
        self.failed = 0
        self.shown = ""

    def show(self, running: int) -> None:
        """Redrawn when the counts change (the bar's own clock redraws it only when a task finishes)."""
        counts = f"running {running}, failed {self.failed}"
        if counts != self.shown:
            self.shown = counts
            self.bar.set_postfix_str(counts)


class RayExecutor:
    """Runs tasks on a Ray cluster (``engine.address``), each with ``engine.num_cpus`` CPUs and threads, and
    ``engine.num_gpus`` GPUs when ``gpu``; ``fresh_process`` gives every attempt a new worker process
    (:func:`brainalign.runs.engine.executor_for` says when)."""

    def __init__(self, engine: Engine, gpu: bool = False, fresh_process: bool = False, progress: bool = True) -> None:
        self.engine, self.gpu, self.fresh_process, self.progress = engine, gpu, fresh_process, progress

    def run(self, tasks: Sequence[TaskSpec], store: TaskStore, work: Work,
            observer: Observer | None = None) -> list[dict]:
        """Every task's result, in the order of ``tasks`` (the module docstring says how faults end)."""
        ray = _ray()
        connect(self.engine)
        results: dict[str, dict] = {}
        for task in order_tasks(tasks):  # finished: never run again
            if store.is_done(task):
                results[task.id] = store.read_result(task)
                if observer is not None:
                    observer.started(task, "reused")
                    observer.finished(task, results[task.id], "reused", 0.0)
        if len(results) == len({t.id for t in tasks}):
            return [results[t.id] for t in tasks]
        # max_calls can only be given where the function becomes remote; Ray's own retries are off (see above).
        remote = (ray.remote(max_calls=1)(run_attempt) if self.fresh_process else ray.remote(run_attempt)).options(
            num_cpus=self.engine.num_cpus, num_gpus=self.engine.num_gpus if self.gpu else 0, max_retries=0,
            retry_exceptions=False)
        work_ref, workspace, threads = ray.put(work), os.getcwd(), max(1, int(self.engine.num_cpus))
        grid = _Grid(ray, lambda task: remote.remote(work_ref, store, task, workspace, threads), store, observer,
                     self.engine.max_retries, _Progress(len(tasks), len(results), self.progress), results)
        try:
            grid.drive([t for t in order_tasks(tasks) if t.id not in results], {t.id for t in tasks})
        except BaseException as interrupted:
            grid.abandon(interrupted)
            raise
        finally:
            grid.progress.bar.close()
        if grid.error is not None:
            raise grid.error
        return [results[t.id] for t in tasks]


class _Grid:
    """One run of a :class:`RayExecutor`: the attempts under way, the results, the first error."""

    def __init__(self, ray, submit_attempt, store: TaskStore, observer: Observer | None, max_retries: int,
                 progress: _Progress, results: dict[str, dict]) -> None:
        self.ray, self.submit_attempt, self.store, self.observer = ray, submit_attempt, store, observer
        self.max_retries, self.progress, self.results = max_retries, progress, results
        self.running: dict[Any, _Attempt] = {}
        self.deaths: dict[str, int] = {}
        self.error: BaseException | None = None

    def drive(self, waiting: list[TaskSpec], ids: set[str]) -> None:
        """Submit what can start, follow what runs, settle what ended, until nothing runs."""
        while waiting or self.running:
            if self.error is None:
                ready = [t for t in waiting if t.source is None or t.source not in ids or t.source in self.results]
                for task in ready:
                    self.submit(task)
                waiting = [t for t in waiting if t not in ready]
            if not self.running:
                return  # what still waits starts from a task that failed
            finished, _ = self.ray.wait(list(self.running), num_returns=1, timeout=WAIT_SECONDS)
            for attempt in self.running.values():
                attempt.follow(self.observer)
            for ref in finished:
                self.settle(self.running.pop(ref), ref)
            self.progress.show(sum(a.opened for a in self.running.values()))

    def submit(self, task: TaskSpec) -> None:
        log = self.store.directory(task) / ATTEMPT_LOG
        log.unlink(missing_ok=True)  # a dead attempt's: its records went to that attempt's run
        self.running[self.submit_attempt(task)] = _Attempt(task, self.store.outcome(task), log)

    def settle(self, attempt: _Attempt, ref) -> None:
        """Report an attempt that ended: its result, its own error (final), or its worker's death (retried)."""
        ray, observer, task = self.ray, self.observer, attempt.task
        try:
            value = ray.get(ref)
        except ray.exceptions.TaskCancelledError as cancelled:
            if attempt.opened and observer is not None:
                observer.failed(task, cancelled)
            return
        except ray.exceptions.RayTaskError as raised:
            error = raised.cause if isinstance(raised.cause, BaseException) else raised
            self.failed(attempt, error, f"failed: {type(error).__name__}: {error}")
            error.add_note(f"in task {task.label} ({task.id})" + (
                f" on {attempt.where['host']}, pid {attempt.where['pid']}" if attempt.where else ""))
            self.stop(error)
            return
        except ray.exceptions.RayError as died:
            self.deaths[task.id] = self.deaths.get(task.id, 0) + 1
            self.failed(attempt, died, f"its worker died (attempt {self.deaths[task.id]}): {type(died).__name__}")
            if self.error is None and self.deaths[task.id] <= self.max_retries:
                self.submit(task)  # resumes from the checkpoint the dead attempt left
            else:
                self.stop(TaskFailed(f"task {task.label}: its worker or node died {self.deaths[task.id]} times "
                                     f"(engine.max_retries: {self.max_retries}); last: {died}"))
            return
        attempt.open(observer, {k: value[k] for k in ("host", "pid", "node")})
        self.results[task.id] = value["result"]
        if observer is not None:
            observer.finished(task, value["result"], attempt.outcome, value["wall_seconds"])
        self.progress.bar.update(1)
        self.progress.write(f"task {task.label}: {attempt.outcome}, {value['wall_seconds']:.1f} s on "
                            f"{value['host']} (pid {value['pid']})")

    def failed(self, attempt: _Attempt, error: BaseException, what: str) -> None:
        attempt.open(self.observer, {})  # an attempt that ended before the driver saw it start
        if self.observer is not None:
            self.observer.failed(attempt.task, error)
        self.progress.failed += 1
        self.progress.write(f"task {attempt.task.label} on {attempt.where.get('host', '?')}: {what}")

    def stop(self, reason: BaseException) -> None:
        """No new task starts; the submitted ones that have not started are taken back."""
        self.error = self.error or reason
        for ref, attempt in self.running.items():
            attempt.follow(self.observer)
            if not attempt.opened:
                self.ray.cancel(ref)

    def abandon(self, interrupted: BaseException) -> None:
        """The stage itself stops (an interrupt, the tracker): the attempts under way end with it, recorded as
        failed; each keeps its checkpoint for the next run."""
        for ref, attempt in self.running.items():
            self.ray.cancel(ref, force=True)
            if attempt.opened and self.observer is not None:
                self.observer.failed(attempt.task, interrupted)
