"""Executors: who runs a stage's tasks, and where.

An executor takes the tasks, the store and the ``work`` function, runs every task through the store
(so a finished one is reused and an interrupted one resumes), starts a task only after the task it
starts from, and tells an :class:`Observer` what happens. The stage process owns the observer (the
tracker): tasks never write tracking themselves, so an executor that runs them elsewhere (Ray, a
cluster) only has to report the same four events.
"""

from __future__ import annotations

import time
from typing import Protocol, Sequence

from brainalign.runs.spec import TaskSpec
from brainalign.runs.store import TaskStore, Work


class Observer(Protocol):
    """What an executor reports, in this order per task: started, any epochs, then finished or failed."""

    def started(self, task: TaskSpec, outcome: str) -> None: ...

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
