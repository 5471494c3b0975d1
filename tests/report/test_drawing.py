"""Figures drawn by worker processes (brainalign.report.drawing.Drawer) are the files an inline call writes.

The truth is the figure function called directly, in this process: the workers must write the same PNG and
CSV bytes, into files that exist once the Drawer's block ends; a worker's brainalign error must come back as
an error carrying its message, not be lost.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign.errors import BrainalignError
from brainalign.report import figures
from brainalign.report.drawing import Drawer


def _calls(out):
    """Three figures of the kinds the report draws in workers: histogram, comparison curves, glass brain."""
    rng = np.random.default_rng(3)
    scores = pd.DataFrame({"subject": np.repeat(["1", "2"], 50), "voxel": np.tile(np.arange(50), 2),
                           "accuracy": rng.uniform(0.3, 0.9, 100)})
    curves = {"1": rng.normal(size=(2, 40)), "2": rng.normal(size=(2, 40))}
    shape = (12, 14, 12)
    coords = np.argwhere(np.ones(shape, dtype=bool))[::7]
    affine = np.diag([6.0, 6.0, 6.0, 1.0])
    affine[:3, 3] = [-36.0, -42.0, -30.0]
    values = rng.uniform(0.4, 0.9, len(coords))
    return [
        (figures.accuracy_distribution, (scores, out / "hist.png"), {}),
        (figures.comparison_curve_figure, (curves, out / "curves.png", "B - A", "A", "B"), {}),
        (figures.glass_brain, (values, values > 0.7, coords, affine, shape, out / "glass.png"),
         {"title": "map", "vmax": 0.85}),
    ]


def test_workers_write_the_inline_files(tmp_path):
    inline, pooled = tmp_path / "inline", tmp_path / "pooled"
    inline.mkdir()
    pooled.mkdir()
    for function, args, kwargs in _calls(inline):
        function(*args, **kwargs)
    with Drawer(workers=2) as draw:
        assert draw.workers == 2  # Linux has fork: the calls below really run in workers
        for function, args, kwargs in _calls(pooled):
            draw(function, *args, **kwargs)
    names = sorted(p.name for p in inline.iterdir())
    assert names == ["curves.csv", "curves.png", "glass.csv", "glass.png", "hist.csv", "hist.png"]
    assert sorted(p.name for p in pooled.iterdir()) == names
    for name in names:
        assert (pooled / name).read_bytes() == (inline / name).read_bytes(), name


def test_a_worker_error_reaches_the_caller(tmp_path):
    empty = {}  # comparison_curve_figure refuses an empty dict with an InputError naming "curves"
    with pytest.raises(BrainalignError, match="curves: participants: expected a non-empty dict"):
        with Drawer(workers=2) as draw:
            draw(figures.comparison_curve_figure, empty, tmp_path / "x.png", "t", "A", "B")
    assert not (tmp_path / "x.png").exists()


def test_one_worker_draws_inline(tmp_path):
    with Drawer(workers=1) as draw:
        assert draw.workers == 0
        function, args, kwargs = _calls(tmp_path)[0]
        draw(function, *args, **kwargs)
        assert (tmp_path / "hist.png").is_file()  # written when the call was made, before the block ends
