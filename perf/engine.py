"""Benchmark: one grid of CPU-bound tasks under ``engine: local`` and ``engine: ray``, and what Ray costs a task.

The grid: ``--tasks`` independent tasks, each ``--seconds`` of single-threaded numpy work (a matrix product
repeated, the count calibrated on this machine first), run through the task store as a stage runs its tasks
(``brainalign.runs.engine.executor_for``), each time into an empty store:

- local, one after another in this process (the local engine's default, a section's ``workers: 1``);
- local, in ``--cpus`` forked workers (a section's ``workers: --cpus``), for comparison;
- ray, on a Ray of this machine that the script starts with ``--cpus`` CPUs: one CPU and one BLAS thread a task.

Ray's start-up, with its first worker processes (a task each per CPU), is timed on its own: a stage pays it
once. Ray's overhead per task, in CPU time lost per task:
``--empty`` tasks that do nothing, ``wall x cpus / empty``, with workers kept (the default), and ``--fresh`` such
tasks with a fresh worker process each (``fresh_process``, as the training grids run); and in the grid itself,
``(wall x cpus - the tasks' own work) / tasks``.

Targets (issue 20): Ray's overhead at most 0.5 s a task; on 2 cores, Ray at least 1.6x faster than local for
CPU-bound tasks of one thread each.

    python perf/engine.py [--tasks 8] [--seconds 2] [--cpus 2] [--empty 40] [--fresh 8]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from brainalign.offline import go_offline
from brainalign.runs.distributed import connect
from brainalign.runs.engine import Engine, executor_for
from brainalign.runs.spec import StoredTask
from brainalign.runs.store import TaskStore

SIZE = 256  # the matrices multiplied: big enough for BLAS, small enough to stay in cache


@dataclass(frozen=True)
class Busy(StoredTask):
    """``products`` products of two SIZE x SIZE matrices (0: a task that does nothing)."""

    number: int
    products: int

    namespace = "busy"

    @property
    def label(self) -> str:
        return f"busy/{self.number}"

    @property
    def spec(self) -> dict:
        return {"number": self.number, "products": self.products}

    def params(self) -> dict:
        return self.spec

    def tags(self) -> dict[str, str]:
        return {}


def work(task: Busy, directory: Path, on_epoch=None) -> dict:
    started = time.perf_counter()
    a = np.random.default_rng(task.number).standard_normal((SIZE, SIZE))
    b = a.T.copy()
    for _ in range(task.products):
        a = a @ b
        a /= np.abs(a).max()
    return {"seconds": time.perf_counter() - started, "checksum": float(a.sum())}


def calibrate(seconds: float) -> int:
    """Products that take ``seconds`` at one thread here."""
    with threadpool_limits(1):
        started, n = time.perf_counter(), 0
        while time.perf_counter() - started < 0.5:
            work(Busy(0, 10), Path("."))
            n += 10
    return max(1, round(n * seconds / (time.perf_counter() - started)))


def timed(tasks: list[Busy], **options) -> tuple[float, list[dict]]:
    """Wall time and results of ``tasks`` through an empty store."""
    with tempfile.TemporaryDirectory() as store, threadpool_limits(1):
        started = time.perf_counter()
        results = executor_for(progress=False, **options).run(tasks, TaskStore(store), work)
        return time.perf_counter() - started, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--empty", type=int, default=40)
    parser.add_argument("--fresh", type=int, default=8)
    args = parser.parse_args()
    go_offline()
    products = calibrate(args.seconds)
    grid = [Busy(i, products) for i in range(args.tasks)]
    empty = [Busy(i, 0) for i in range(args.empty)]
    local, ray = Engine(kind="local"), Engine(kind="ray")

    def line(what: str, seconds: float, note: str = "") -> None:
        print(f"  {what + ':':<60} {seconds:7.3f} s   {note}".rstrip())

    t_local, reference = timed(grid, engine=local)
    print(f"grid: {args.tasks} tasks of {np.mean([r['seconds'] for r in reference]):.2f} s single-threaded work "
          f"({products} products of {SIZE}x{SIZE} matrices each), {args.cpus} CPUs of this machine's {os.cpu_count()}")
    line("local, one after another in process", t_local)
    t_fork, _ = timed(grid, engine=local, workers=args.cpus)
    line(f"local, {args.cpus} forked workers", t_fork, f"speed-up {t_local / t_fork:4.2f}x")

    started = time.perf_counter()
    connect(ray, num_cpus=args.cpus)
    timed(empty[:args.cpus], engine=ray)
    line("ray, start-up and first workers", time.perf_counter() - started, "(once per stage)")
    t_empty, _ = timed(empty, engine=ray)
    t_ray, results = timed(grid, engine=ray)
    # Last: a worker that ran its task exits, and the next task waits for a new one.
    t_fresh, _ = timed(empty[:args.fresh], engine=ray, fresh_process=True)
    line(f"ray, {args.cpus} CPUs, one a task", t_ray, f"speed-up {t_local / t_ray:4.2f}x (target >= 1.6x on 2 cores)")
    worked = sum(r["seconds"] for r in results)
    line("ray overhead per task, in the grid", (t_ray * args.cpus - worked) / args.tasks, "(target <= 0.5 s)")
    line(f"ray overhead per task, {args.empty} empty tasks", t_empty * args.cpus / args.empty, "(target <= 0.5 s)")
    line(f"ray overhead per task, {args.fresh} empty tasks, a fresh process each", t_fresh * args.cpus / args.fresh,
         "(the training grids' way)")
    if [r["checksum"] for r in results] != [r["checksum"] for r in reference]:
        raise SystemExit("engine: ray's results differ from local's")


if __name__ == "__main__":
    main()
