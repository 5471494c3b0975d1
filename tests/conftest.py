"""Shared fixtures: the offline environment for every test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "src"))

from brainalign.offline import go_offline  # noqa: E402

go_offline(REPOSITORY)


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(12345)
