"""Benchmark data sources: how ``benchmarks.suite.<name>`` names a loader of presentation-level data.

Importing this module imports every loader module, so that :data:`BENCHMARK_SOURCES` holds them all:
``pereira2018``, ``fedorenko2016``, ``blank2014``, ``futrell2018`` (the releases' own files) and
``brainscore_assembly`` (Brain-Score's packaged netCDF assemblies).
"""

from __future__ import annotations

import os
from pathlib import Path

from brainalign.data import assembly, blank, fedorenko, futrell, pereira  # noqa: F401  (they register their loaders)
from brainalign.data.presentations import BENCHMARK_SOURCES, Presentations


def read_benchmark_data(source: str, path: str | os.PathLike, **options) -> Presentations:
    """Read ``path`` with the loader registered as ``source``."""
    return BENCHMARK_SOURCES.get(source)(Path(path), **options)
