"""The `brainalign` command: what it prints and how it fails, on files written here by hand."""

from __future__ import annotations

import runpy
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from brainalign import cli
from brainalign.data.hp_fmri import write_hp_fmri
from brainalign.data.recording import Recording


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
    assert "subject_1.mat: data: responses are finite" in captured.err and "row 4 (index 3): nan" in captured.err


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


EXITING = """
import atexit, sys
from brainalign.cli import exit_stage
atexit.register(lambda: open(sys.argv[1], "w").write("handlers ran"))
print("unflushed output", end="")
exit_stage(3, __file__)
"""


def test_exit_stage_leaves_a_stage_process_with_its_code_after_exit_handlers(tmp_path):
    """Truth: what the script did before exiting. Started for the script, exit_stage ends the process
    with the code, after the exit handlers and with stdout flushed."""
    script, marker = tmp_path / "stage.py", tmp_path / "marker.txt"
    script.write_text(EXITING)
    done = subprocess.run([sys.executable, str(script), str(marker)], capture_output=True, text=True)
    assert (done.returncode, done.stdout, marker.read_text()) == (3, "unflushed output", "handlers ran")


def test_exit_stage_run_inside_another_process_raises_system_exit(tmp_path, monkeypatch):
    """Run with runpy (as the tests run stages), exit_stage raises SystemExit: the host process lives on."""
    script = tmp_path / "stage.py"
    script.write_text("from brainalign.cli import exit_stage\nexit_stage(3, __file__)\n")
    monkeypatch.setattr(sys, "argv", [str(script)])
    with pytest.raises(SystemExit) as raised:
        runpy.run_path(str(script), run_name="__main__")
    assert raised.value.code == 3


def test_a_stage_loads_with_the_collector_off_and_works_with_it_on(tmp_path, monkeypatch):
    """Truth: gc.isenabled() as a stage's imports and its main see it, and the process's setting after."""
    import gc

    monkeypatch.chdir(tmp_path)
    seen = []
    try:
        cli.begin_stage()
        seen.append(gc.isenabled())
        assert cli.guarded(lambda: seen.append(gc.isenabled())) == 0
    finally:
        gc.enable()
    assert seen == [False, True] and gc.isenabled()


def test_encode_features_writes_what_the_library_extracts(tmp_path, capsys):
    """Truth: the library's features of the same words (a random embedding: a fixed vector per word type)."""
    from brainalign.features.layers import extract_features, load_feature_model

    text = tmp_path / "story.txt"
    text.write_text("The cat sat.\nThe dog ran.\n", encoding="utf-8")
    out = tmp_path / "out" / "features.npy"
    assert cli.main(["encode-features", "--model", "random-16", "--text", str(text), "--out", str(out)]) == 0
    assert "1 layers x 6 words x 16 features" in capsys.readouterr().out
    expected = extract_features(load_feature_model("random-16"), "The cat sat. The dog ran.".split(), progress=False)
    np.testing.assert_array_equal(np.load(out), expected)
    assert (tmp_path / "out" / "features.words.txt").read_text().split() == ["The", "cat", "sat.", "The", "dog", "ran."]
    assert not list((tmp_path / "out").glob(".*"))  # nothing half-written left behind
    assert cli.main(["encode-features", "--model", "random-16", "--text", str(tmp_path / "missing.txt")]) == 1
    assert "missing.txt" in capsys.readouterr().err
