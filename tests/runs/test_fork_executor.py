"""The forked executor gives the in-process executor's results, keeps finished tasks when one fails, and reuses."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

import pytest

from brainalign.runs.executors import ForkExecutor, LocalExecutor
from brainalign.runs.spec import StoredTask
from brainalign.runs.store import TaskStore


@dataclass(frozen=True)
class Square(StoredTask):
    value: int
    namespace = "squares"

    @property
    def label(self) -> str:
        return f"square/{self.value}"

    @cached_property
    def spec(self) -> dict:
        return {"value": self.value}

    def params(self) -> dict:
        return {"value": self.value}

    def tags(self) -> dict[str, str]:
        return {}


def work(task: Square, directory, on_epoch=None) -> dict:
    if task.value == 13:
        raise ValueError("thirteen is refused")
    return {"square": task.value ** 2, "pid": os.getpid()}


def test_forked_results_match_in_process_and_run_elsewhere(tmp_path):
    tasks = [Square(v) for v in range(6)]
    forked = ForkExecutor(workers=2, progress=False).run(tasks, TaskStore(tmp_path / "a"), work)
    local = LocalExecutor(progress=False).run(tasks, TaskStore(tmp_path / "b"), work)
    assert [r["square"] for r in forked] == [r["square"] for r in local] == [v * v for v in range(6)]
    assert os.getpid() not in {r["pid"] for r in forked}
    # Done tasks are read back, not recomputed: the same pids come back.
    again = ForkExecutor(workers=2, progress=False).run(tasks, TaskStore(tmp_path / "a"), work)
    assert [r["pid"] for r in again] == [r["pid"] for r in forked]


class Events:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def started(self, task, outcome):
        self.events.append(("started", task.label))

    def failed(self, task, error):
        self.events.append(("failed", task.label))


def test_a_failing_task_stops_the_stage_and_the_others_are_kept(tmp_path):
    store = TaskStore(tmp_path)
    tasks = [Square(v) for v in (1, 2, 13, 4)]
    events = Events()
    with pytest.raises(RuntimeError, match="square/13 failed in a worker: ValueError: thirteen is refused"):
        ForkExecutor(workers=2, progress=False).run(tasks, store, work, events)
    assert events.events == [("started", "square/13"), ("failed", "square/13")]  # the observer's order, kept
    # A worker takes 13 only after finishing 1 or 2.
    assert (store.is_done(Square(1)) or store.is_done(Square(2))) and not store.is_done(Square(13))
