"""The `brainalign` command: what it prints and how it fails, on files written here by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign import cli
from brainalign.data.recording import Recording
from brainalign.data.hp_fmri import write_hp_fmri


def _recording(subject: str, nan: bool = False) -> Recording:
    times = np.concatenate([np.arange(12) * 2.0, 30 + np.arange(12) * 2.0])
    runs = np.repeat([1, 2], 12)
    responses = np.random.default_rng(0).standard_normal((24, 5)).astype(np.float32)
    if nan:
        responses[3, 2] = np.nan
    words = pd.DataFrame({"word": ["One", "+", "two", "three"], "onset": [4.0, 4.5, 5.0, 34.0],
                          "duration": [0.5] * 4})
    coords = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]])
    return Recording(subject=subject, modality="fmri", responses=responses, times=times, runs=runs, words=words,
                     coords=coords, affine=np.diag([3.0, 3.0, 3.0, 1.0]), volume_shape=(2, 2, 2))


def test_inspect_summarises_a_file(tmp_path, capsys):
    """Truth: the recording built here has 24 TRs x 5 voxels, runs 1-2, 3 words and 1 fixation."""
    write_hp_fmri(_recording("4"), tmp_path / "subject_4.mat")
    assert cli.main(["inspect", str(tmp_path / "subject_4.mat")]) == 0
    out = capsys.readouterr().out
    assert "participant 4 (fmri), 24 TRs x 5 voxels, runs [1, 2], 3 words (1 fixations), volume (2, 2, 2)" in out


def test_validate_passes_and_fails(tmp_path, capsys):
    good, bad = tmp_path / "good", tmp_path / "bad"
    write_hp_fmri(_recording("1"), good / "subject_1.mat")
    assert cli.main(["validate", str(good), "--runs", "1", "2"]) == 0
    assert "validation passed" in capsys.readouterr().out
    write_hp_fmri(_recording("1", nan=True), bad / "subject_1.mat")
    assert cli.main(["validate", str(bad), "--runs", "1", "2"]) == 1
    captured = capsys.readouterr()
    assert "subject_1.mat: responses: responses are finite" in captured.err and "row 4 (index 3): nan" in captured.err


def test_errors_are_one_line_and_exit_1(tmp_path, capsys):
    assert cli.main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path}: subject_N.mat: expected at least one participant file, found none"
    (tmp_path / "subject_1.mat").write_bytes(b"not a mat file")
    assert cli.main(["inspect", str(tmp_path / "subject_1.mat")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path / 'subject_1.mat'}: file: expected a readable MATLAB .mat file")
    assert "\n" not in err


def test_ui_binds_to_localhost_and_the_main_store(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BRAINALIGN_TRACKING_URI", raising=False)
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda command: calls.append(command) or 0)
    with pytest.raises(SystemExit):
        cli.main(["ui"])
    command = calls[0]
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
