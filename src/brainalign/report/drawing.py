"""Figures drawn in worker processes while the report computes the next ones.

Rendering (matplotlib, nilearn's glass brains and surfaces) is single-threaded Python and was most of the
report stage's time, with the machine's other cores idle: :class:`Drawer` hands each figure call to a pool
of forked workers and returns at once. The workers run the same functions on the same arguments, so every
PNG and CSV is the one an inline call writes; where fork is unavailable, or one core is all there is, the
calls run inline.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Callable

from brainalign.errors import BrainalignError


def inline(function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Draw one figure now, in this process (what a :class:`Drawer` without workers does)."""
    function(*args, **kwargs)


def _draw(function: Callable[..., Any], args: tuple, kwargs: dict) -> str | None:
    """Run one figure call in a worker; a brainalign error comes back as its message (its exception type
    may not survive pickling), anything else is raised as it is."""
    try:
        function(*args, **kwargs)
    except BrainalignError as exc:
        return str(exc)
    return None


class Drawer:
    """Calls figure functions in worker processes: ``draw(figures.glass_brain, values, ...)``.

    Use it as a context manager: leaving the block waits for every figure, and raises the first failure
    (a :class:`~brainalign.errors.BrainalignError` carrying its message, or the worker's own exception).
    Figure functions must only write their files: their return values are dropped.

    Parameters
    ----------
    workers : int, optional
        Worker processes (default: the CPUs this process may use). 0 or 1 CPU, or no ``fork`` start method:
        every call runs inline, when it is made.
    """

    def __init__(self, workers: int | None = None) -> None:
        if workers is None:
            workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.workers = workers if "fork" in multiprocessing.get_all_start_methods() and workers > 1 else 0
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[Future] = []

    def __enter__(self) -> Drawer:
        if self.workers:
            # Imported before the workers fork, so that they share these modules instead of each importing them.
            import nilearn.plotting  # noqa: F401

            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"))
        return self

    def __call__(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if self._pool is None:
            function(*args, **kwargs)
        else:
            self._pending.append(self._pool.submit(_draw, function, args, kwargs))

    def wait(self) -> None:
        """Block until every figure submitted so far is written; raise the first failure."""
        pending, self._pending = self._pending, []
        failures = [message for message in (future.result() for future in pending) if message is not None]
        if failures:
            raise BrainalignError(failures[0])

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None:
                self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=kind is not None)
                self._pool = None
