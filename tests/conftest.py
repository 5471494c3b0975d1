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

# The slowest files, slowest first (``make test`` prints the durations). ``make test`` shares the files out
# to two workers (pytest-xdist, ``--dist loadfile``) in collection order, one file at a time as a worker
# frees up; starting the long ones first keeps one worker from being left with a 6-minute file at the end.
# The order changes no result.
SLOWEST_FIRST = ("pipeline/test_pipeline.py", "finetuning/test_models_science.py", "nlu/test_glue_real.py",
                 "probing/test_probing_truth.py", "pipeline/test_formats_pipeline.py", "encoding/test_science.py",
                 "finetuning/test_resume.py", "finetuning/test_grid.py")


def pytest_collection_modifyitems(config, items: list) -> None:
    def rank(item) -> int:
        path = Path(str(item.fspath)).resolve().relative_to(REPOSITORY / "tests").as_posix()
        return SLOWEST_FIRST.index(path) if path in SLOWEST_FIRST else len(SLOWEST_FIRST)

    items.sort(key=rank)  # stable: within a file, and among the rest, the collected order stays


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(12345)


def run_stage(workdir: Path, stage: str, *args: str) -> tuple[int, str]:
    """Run ``stages/<stage>.py`` in-process with ``workdir`` as its working directory, as DVC would run it.

    Returns the exit status and what the stage wrote to stderr. MLflow goes to a store inside
    ``workdir`` (set ``BRAINALIGN_TRACKING_URI`` to change it).
    """
    import contextlib
    import io
    import runpy

    stderr = io.StringIO()
    previous_dir, previous_argv = os.getcwd(), sys.argv
    env_before = os.environ.get("BRAINALIGN_TRACKING_URI")
    os.environ.setdefault("BRAINALIGN_TRACKING_URI", f"sqlite:///{Path(workdir).resolve() / 'mlflow.db'}")
    try:
        os.chdir(workdir)
        sys.argv = [f"stages/{stage}.py", *args]
        with contextlib.redirect_stderr(stderr):
            try:
                runpy.run_path(str(REPOSITORY / "stages" / f"{stage}.py"), run_name="__main__")
                code = 0
            except SystemExit as exc:
                code = int(exc.code or 0)
    finally:
        os.chdir(previous_dir)
        sys.argv = previous_argv
        if env_before is None:
            os.environ.pop("BRAINALIGN_TRACKING_URI", None)
    return code, stderr.getvalue()


@pytest.fixture(scope="session")
def small_experiment(tmp_path_factory) -> Path:
    """A small simulated experiment, prepared and encoded with a two-layer BERT (tests/experiments.py).

    2 fMRI participants (12 mm voxels) and 2 MEG participants, 160 words a run, 5 + 3 TRs trimmed per
    run; the models train on held-out run 2 only. Tests that change its params.yaml restore it.
    """
    from experiments import make_experiment, tiny_encoder

    root = tmp_path_factory.mktemp("small-experiment")
    encoder = tiny_encoder(root / "tiny-bert", hidden=64)
    return make_experiment(root, {
        "simulate.subjects": 2, "simulate.meg_subjects": 2, "simulate.words_per_run": 160,
        "simulate.resolution_mm": 12, "prepare.drop_start_trs": 5, "prepare.drop_end_trs": 3,
        "encode.encoder": str(encoder), "models.heldout_runs": [2], "participant_transfer.source": "1",
        "finetuned.head_epochs": 2, "finetuned.full_epochs": 40, "joint.head_epochs": 2, "joint.full_epochs": 2,
        "meg_transfer.meg_head_epochs": 2, "meg_transfer.meg_full_epochs": 2, "meg_transfer.head_epochs": 2,
        "meg_transfer.full_epochs": 2, "participant_transfer.source_head_epochs": 2,
        "participant_transfer.source_full_epochs": 2, "participant_transfer.head_epochs": 2,
        "models.checkpoint_every": 0})  # every epoch: the kill-and-resume test stops a run mid-phase
