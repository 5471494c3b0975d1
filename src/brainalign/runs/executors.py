"""Executors: who runs a stage's tasks, and where.

An executor takes the tasks, the store and the ``work`` function, runs every task through the store
(so a finished one is reused and an interrupted one resumes), starts a task only after the task it
starts from, and tells an :class:`Observer` what happens. The stage process owns the observer (the
tracker): tasks never write tracking themselves, so an executor that runs them elsewhere
(:mod:`brainalign.runs.distributed`, on Ray) reports the same events. Stages take their executor from
:func:`brainalign.runs.engine.executor_for`.
"""

from __future__ import annotations

import time
from typing import Protocol, Sequence

from brainalign.runs.spec import TaskSpec
from brainalign.runs.store import TaskStore, Work


class Observer(Protocol):
    """What an executor reports, in this order per task: started, any epochs, then finished or failed.

    An executor that runs tasks in other processes or machines (Ray) also reports, after ``started``, where
    each attempt runs: ``placed(task, {"host", "pid", "node"})``.
    """

    def started(self, task: TaskSpec, outcome: str) -> None: ...

    def placed(self, task: TaskSpec, where: dict) -> None: ...

    def epoch(self, task: TaskSpec, record: dict) -> None: ...

    def finished(self, task: TaskSpec, result: dict, outcome: str, wall_seconds: float) -> None: ...

    def failed(self, task: TaskSpec, error: BaseException) -> None: ...


class Executor(Protocol):
    def run(self, tasks: Sequence[TaskSpec], store: TaskStore, work: Work,
            observer: Observer | None = None) -> list[dict]:
        """Every task's result, in the order of ``tasks``."""


def order_tasks(tasks: Sequence[TaskSpec]) -> list[TaskSpec]:
    """Tasks with every source before the tasks that start from it (otherwise in the given order)."""
    ids = {t.id for t in tasks}
    done: set[str] = set()
    ordered: list[TaskSpec] = []
    pending = list(tasks)
    while pending:
        ready = [t for t in pending if t.source is None or t.source in done or t.source not in ids]
        if not ready:
            raise ValueError(f"tasks with circular sources: {[t.label for t in pending]}")
        for t in ready:
            ordered.append(t)
            done.add(t.id)
        pending = [t for t in pending if t.id not in done]
    return ordered


class LocalExecutor:
    """Runs tasks one after another in this process (today's default)."""

    def __init__(self, progress: bool = True) -> None:
        self.progress = progress

    def run(self, tasks: Sequence[TaskSpec], store: TaskStore, work: Work,
            observer: Observer | None = None) -> list[dict]:
        results: dict[str, dict] = {}
        ordered = order_tasks(tasks)
        for number, task in enumerate(ordered, 1):
            outcome = store.outcome(task)
            if self.progress:
                print(f"task {number}/{len(ordered)}: {task.label} ({outcome})", flush=True)
            if observer is not None:
                observer.started(task, outcome)
            started = time.perf_counter()
            try:
                result = store.run(task, work, on_epoch=None if observer is None else
                                   (lambda record, task=task: observer.epoch(task, record)))
            except BaseException as error:
                if observer is not None:
                    observer.failed(task, error)
                raise
            if observer is not None:
                observer.finished(task, result, outcome, time.perf_counter() - started)
            results[task.id] = result
        return [results[t.id] for t in tasks]


# The forked workers' job: set before the pool forks, so that the work function and its data are inherited
# rather than pickled (a stage's work is a closure over its arrays).
_JOB: tuple[TaskStore, Work, list[TaskSpec]] | None = None


def _run_forked(index: int) -> tuple[int, str | None]:
    from threadpoolctl import threadpool_limits

    store, work, tasks = _JOB
    try:
        # One BLAS thread per worker: the workers are the parallelism.
        with threadpool_limits(1):
            store.run(tasks[index], work)
    except BaseException as error:  # reported by the parent, which fails the stage with it
        return index, f"{type(error).__name__}: {error}"
    return index, None


class ForkExecutor:
    """Runs independent tasks in ``workers`` forked processes of this machine (POSIX).

    Tasks that start from another task's result, or a single pending task, run in process
    (:class:`LocalExecutor`). A worker's failure stops the stage with its message; the tasks that finished are
    kept in the store, so a rerun resumes from them.
    """

    def __init__(self, workers: int = 2, progress: bool = True) -> None:
        self.workers = int(workers)
        self.progress = progress

    def run(self, tasks: Sequence[TaskSpec], store: TaskStore, work: Work,
            observer: Observer | None = None) -> list[dict]:
        global _JOB
        import multiprocessing

        pending = [t for t in order_tasks(tasks) if not store.is_done(t)]
        independent = all(t.source is None for t in tasks)
        if (self.workers <= 1 or len(pending) <= 1 or not independent
                or "fork" not in multiprocessing.get_all_start_methods()):
            return LocalExecutor(self.progress).run(tasks, store, work, observer)
        outcomes = {t.id: store.outcome(t) for t in tasks}
        _JOB = (store, work, pending)
        started = time.perf_counter()
        try:
            with multiprocessing.get_context("fork").Pool(min(self.workers, len(pending))) as pool:
                for done, (index, error) in enumerate(pool.imap_unordered(_run_forked, range(len(pending))), 1):
                    task = pending[index]
                    if error is not None:
                        if observer is not None:
                            observer.started(task, outcomes[task.id])
                            observer.failed(task, RuntimeError(error))
                        raise RuntimeError(f"task {task.label} failed in a worker: {error}")
                    if self.progress:
                        print(f"task {done}/{len(pending)}: {task.label} (done in a worker)", flush=True)
        finally:
            _JOB = None
        wall = time.perf_counter() - started
        results = []
        for task in tasks:
            result = store.read_result(task)
            if observer is not None:
                observer.started(task, outcomes[task.id])
                observer.finished(task, result, outcomes[task.id], wall / max(len(pending), 1))
            results.append(result)
        return results
