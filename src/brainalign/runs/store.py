"""The task store: one folder per task, named by its key, holding everything the task wrote.

``<root>/<namespace>/<key>/``::

    spec.json                  the task's payload, in full, and its label (written first)
    checkpoint.safetensors     training state while it runs (removed when it finishes)
    attempt.jsonl              on Ray: where its last attempt ran, and that attempt's epochs as they came
    ...                        what the task writes (weights, predictions)
    result.json                written last and atomically: its presence means "done"

A finished task is never run again, a task whose payload changed lives under another key, and an
interrupted one finds its checkpoint where it left it. The store knows nothing of what a task
computes; any process that sees the folder (another node on a shared filesystem) can run tasks in it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from brainalign.errors import InputError
from brainalign.files import atomic_path
from brainalign.runs.spec import TaskSpec

#: ``work(task, directory, on_epoch) -> result``: runs a task, writing its files into ``directory``.
Work = Callable[[TaskSpec, Path, Callable[[dict], None] | None], dict]

OUTCOMES = ("trained", "resumed", "reused")


class TaskStore:
    """A content-addressed store of tasks under ``root``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def directory(self, task: TaskSpec | str) -> Path:
        return self.root / (task if isinstance(task, str) else task.id)

    def checkpoint(self, task: TaskSpec | str) -> Path:
        return self.directory(task) / "checkpoint.safetensors"

    def is_done(self, task: TaskSpec | str) -> bool:
        return (self.directory(task) / "result.json").exists()

    def outcome(self, task: TaskSpec) -> str:
        """What running ``task`` now would do: ``reused`` (done), ``resumed`` (an earlier attempt left its
        folder) or ``trained`` (first attempt)."""
        if self.is_done(task):
            return "reused"
        return "resumed" if self.directory(task).exists() else "trained"

    def read_result(self, task: TaskSpec | str) -> dict:
        path = self.directory(task) / "result.json"
        if not path.exists():
            raise InputError(path, "result.json", "a finished task", "no such file (the task has not finished)")
        return json.loads(path.read_text())

    def run(self, task: TaskSpec, work: Work, on_epoch: Callable[[dict], None] | None = None) -> dict:
        """The task's result: stored, or computed now by ``work`` (resuming from its checkpoint)."""
        if self.is_done(task):
            return self.read_result(task)
        directory = self.directory(task)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / "spec.json") as tmp:
            tmp.write_text(json.dumps({**task.payload(), "label": task.label}, indent=2, sort_keys=True) + "\n")
        result = work(task, directory, on_epoch)
        self.finish(task, result)
        return result

    def finish(self, task: TaskSpec, result: dict[str, Any]) -> None:
        """Store ``result`` (the task's "done" mark) and drop its checkpoint: its numbers are kept."""
        with atomic_path(self.directory(task) / "result.json") as tmp:
            tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        self.checkpoint(task).unlink(missing_ok=True)
