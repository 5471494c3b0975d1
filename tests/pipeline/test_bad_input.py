"""Malformed inputs: each fails its stage with one clear message, and nothing is written downstream.

Every dataset here is built by hand in the test's directory from one small valid recording, then damaged in
one way, and ``stages/validate.py`` (or ``stages/prepare.py``) is run on it as DVC would run it. The truth of
each case is the damage planted: the file and field (loader errors: ``error: <file>: <field>: expected ...,
found ...``) or the file, column, check and rows (validation failures: ``<file>: <column>: <description>
(<check>): ...``) that must be named.

The valid fMRI recording: 2 runs x 40 TRs on one clock (run 1 starts at 0 s, run 2 at 80 s), TR 2 s,
6 voxels inside a 3 x 3 x 3 volume, a word every 0.5 s from 0 s to 159.5 s (the recording ends at 160 s).
prepare (drop 20 TRs at the start and 15 at the end of each run) keeps TRs 20-24 and 60-64.
The valid MEG file: 2 participants, 2 runs x 30 words, 306 sensors x 2 time bins.
"""

from __future__ import annotations

import sqlite3
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import yaml
from conftest import REPOSITORY, run_stage

from brainalign import cli
from brainalign.data.recording import Recording
from brainalign.data.hp_fmri import write_hp_fmri
from brainalign.data.hp_meg import write_hp_meg
from brainalign.data.own import write_own

TR = 2.0
TRS_PER_RUN = 40
N_TRS = 2 * TRS_PER_RUN
RUNS = [1, 2]
VOLUME = (3, 3, 3)
COORDS = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [2, 2, 2]]
VOCABULARY = ["Harry", "looked", "at", "the", "castle", "and", "Hermione", "smiled"]
MEG_WORDS_PER_RUN = 30
MEG_BINS = 2
MAT = Path("raw/subject_1.mat")
NPZ = Path("raw/meg.npz")
OWN = Path("raw/1")


# ---------------------------------------------------------------------------------------------------------
# Valid recordings and their files
# ---------------------------------------------------------------------------------------------------------


def voxel_data() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((N_TRS, len(COORDS)))


def default_words() -> pd.DataFrame:
    onsets = np.arange(0.0, N_TRS * TR, 0.5)
    return pd.DataFrame({"word": [VOCABULARY[i % len(VOCABULARY)] for i in range(len(onsets))],
                         "onset": onsets, "duration": 0.5})


def fmri_recording(responses: np.ndarray | None = None, runs: np.ndarray | None = None,
                   words: pd.DataFrame | None = None) -> Recording:
    return Recording(subject="1", modality="fmri", responses=voxel_data() if responses is None else responses,
                     times=np.arange(N_TRS) * TR,
                     runs=np.repeat(RUNS, TRS_PER_RUN) if runs is None else runs,
                     words=default_words() if words is None else words, coords=np.array(COORDS),
                     affine=np.diag([3.0, 3.0, 3.0, 1.0]), volume_shape=VOLUME)


def write_release(tmp_path: Path, recording: Recording | None = None, version: str = "5") -> Path:
    """The recording as ``raw/subject_1.mat``; returns the file."""
    path = tmp_path / MAT
    write_hp_fmri(recording or fmri_recording(), path, version=version)
    return path


def rewrite_mat(path: Path, change) -> None:
    """Load a v5 ``.mat``, let ``change`` edit its variables (a dict), and save it again."""
    mat = scipy.io.loadmat(path, squeeze_me=False, struct_as_record=True)
    variables = {k: v for k, v in mat.items() if not k.startswith("__")}
    change(variables)
    scipy.io.savemat(path, variables, do_compression=False, oned_as="column")


def write_own_dataset(tmp_path: Path, form: str = "npy") -> Path:
    """The valid recording in the own-data format under ``raw/1/``; returns that directory."""
    directory = tmp_path / OWN
    write_own(fmri_recording(), directory, form=form)
    return directory


def meg_recordings(subjects=("A", "B"), n_sensors: int = 306) -> list[Recording]:
    n = MEG_WORDS_PER_RUN * len(RUNS)
    blocks = np.repeat(RUNS, MEG_WORDS_PER_RUN)
    onsets = np.tile(np.arange(MEG_WORDS_PER_RUN) * 0.5, len(RUNS))
    words = pd.DataFrame({"word": [VOCABULARY[i % len(VOCABULARY)] for i in range(n)], "onset": onsets,
                          "duration": 0.5, "run": blocks})
    rng = np.random.default_rng(1)
    return [Recording(subject=s, modality="meg", responses=rng.standard_normal((n, n_sensors * MEG_BINS)),
                      times=onsets, runs=blocks, words=words, source=f"meg[{s}]",
                      extra={"n_sensors": n_sensors, "n_bins": MEG_BINS}) for s in subjects]


def meg_arrays(subjects=("A", "B"), n_sensors: int = 306) -> dict[str, np.ndarray]:
    """The arrays of a release-layout MEG ``.npz`` (as ``write_hp_meg`` writes them), to be damaged."""
    recordings = meg_recordings(subjects, n_sensors)
    first = recordings[0]
    return {"stimuli": np.asarray(first.words["word"].tolist(), dtype=str),
            "blocks": first.runs.astype(np.int64),
            "subjects": np.asarray([r.subject for r in recordings]),
            "data": np.stack([r.responses.reshape(len(r.words), n_sensors, MEG_BINS)
                              for r in recordings]).astype(np.float32)}


def save_npz(tmp_path: Path, arrays: dict) -> Path:
    path = tmp_path / NPZ
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


# ---------------------------------------------------------------------------------------------------------
# The stage, its params, its MLflow runs and what must not exist afterwards
# ---------------------------------------------------------------------------------------------------------


def write_params(tmp_path: Path, source: str, path: Path | str, tr: float | None = TR) -> None:
    """This repository's params.yaml with one dataset, ``d``."""
    params = yaml.safe_load((REPOSITORY / "params.yaml").read_text())
    params["datasets"] = {"d": {"source": source, "path": str(path), "participants": "all", "runs": list(RUNS),
                                "tr": tr}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(autouse=True)
def shared_store(tmp_path_factory, monkeypatch):
    """One MLflow store for the module's stage runs (creating a store costs seconds); each test finds its own
    runs by their ``workspace`` tag, the directory the stage ran in."""
    store = tmp_path_factory.getbasetemp() / "bad_input_mlflow.db"
    monkeypatch.setenv("BRAINALIGN_TRACKING_URI", f"sqlite:///{store}")
    return store


def stage_runs(tmp_path: Path, store: Path) -> list[tuple[str, str]]:
    """(name, status) of the MLflow runs of the stages run in ``tmp_path``."""
    with sqlite3.connect(store) as db:
        return db.execute("SELECT runs.name, runs.status FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid "
                          "WHERE tags.key = 'workspace' AND tags.value = ?", (str(tmp_path.resolve()),)).fetchall()


def stage(tmp_path: Path, name: str) -> tuple[int, str]:
    """``run_stage(tmp_path, name, "d")``; an uncaught exception becomes what a process would show: a
    traceback on stderr and exit status 1."""
    try:
        return run_stage(tmp_path, name, "d")
    except Exception:
        return 1, traceback.format_exc()


def nothing_downstream(tmp_path: Path) -> None:
    assert not (tmp_path / "data" / "validation" / "d.json").exists()
    assert not (tmp_path / "data" / "prepared" / "d").exists()
    data = tmp_path / "data"
    written = sorted(str(p.relative_to(tmp_path)) for p in data.rglob("*")) if data.exists() else []
    assert written == [], f"files written under data/: {written}"


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def fails_with_input_error(tmp_path: Path, name: str, file: Path, field: str, *fragments: str) -> str:
    """Run stage ``name`` on dataset d: exit 1, one ``error: <file>: <field>: expected ..., found ...``
    line, no traceback, nothing written downstream. Returns the error line."""
    code, stderr = stage(tmp_path, name)
    assert code == 1, stderr
    line = one_error_line(stderr)
    assert line.startswith(f"error: {file}: {field}: expected "), line
    assert ", found " in line, line
    for fragment in fragments:
        assert fragment in line, line
    nothing_downstream(tmp_path)
    return line


def failing_checks(stderr: str) -> set[str]:
    """The report lines (``<file>: <column>: <description> (<check>): ...``) of a failed validation."""
    return {line.strip() for line in stderr.splitlines() if line.startswith("  ") and " (expect_" in line}


def fails_validation(tmp_path: Path, name: str, file: Path | str, column: str, check: str,
                     rows: list[str] | None = None) -> str:
    """Run stage ``name`` on dataset d: exit 1, one ``error: validation failed: 1 of N checks`` report whose
    only failing check is ``<file>: <column>: ... (<check>): ...``, naming ``rows`` (as the user counts
    them, e.g. ``row 6 (index 5)``), nothing written downstream. Returns stderr."""
    code, stderr = stage(tmp_path, name)
    assert code == 1, stderr
    assert one_error_line(stderr).startswith("error: validation failed: 1 of "), stderr
    failing = failing_checks(stderr)
    assert len(failing) == 1, stderr
    line = next(iter(failing))
    assert line.startswith(f"{file}: {column}: ") and f" ({check}): " in line, stderr
    for row in rows or []:
        assert f"{row}: " in line, stderr
    nothing_downstream(tmp_path)
    return stderr


def fails_naming(tmp_path: Path, name: str, *prefixes: str) -> str:
    """Run stage ``name`` on dataset d: exit 1, one ``error:`` line and no traceback, nothing written
    downstream, and what is named starts with one of ``prefixes``: the error line (a loader's error) or every
    failing check of the report (a validation failure). For defects a fix may catch either way. Returns
    stderr."""
    code, stderr = stage(tmp_path, name)
    assert code == 1, stderr
    line = one_error_line(stderr)
    if line.startswith("error: validation failed"):
        failing = failing_checks(stderr)
        assert failing and all(check.startswith(prefixes) for check in failing), stderr
    else:
        assert line.startswith(tuple(f"error: {prefix}" for prefix in prefixes)), stderr
    nothing_downstream(tmp_path)
    return stderr


# ---------------------------------------------------------------------------------------------------------
# The valid datasets pass (so each failure below is the planted defect's)
# ---------------------------------------------------------------------------------------------------------


def test_valid_release_passes_validate_and_prepare(tmp_path, shared_store):
    write_release(tmp_path)
    write_params(tmp_path, "hp_fmri", "raw")
    code, stderr = stage(tmp_path, "validate")
    assert code == 0, stderr
    assert (tmp_path / "data" / "validation" / "d.json").exists()
    code, stderr = stage(tmp_path, "prepare")
    assert code == 0, stderr
    assert (tmp_path / "data" / "prepared" / "d" / "dataset.json").exists()
    assert sorted(stage_runs(tmp_path, shared_store)) == [("prepare@d", "FINISHED"), ("validate@d", "FINISHED")]


def test_valid_meg_file_passes(tmp_path):
    write_hp_meg(meg_recordings(), tmp_path / NPZ)
    write_params(tmp_path, "hp_meg", NPZ, tr=None)
    code, stderr = stage(tmp_path, "validate")
    assert code == 0, stderr
    assert (tmp_path / "data" / "validation" / "d.json").exists()


def test_valid_own_dataset_passes(tmp_path):
    write_own_dataset(tmp_path)
    write_params(tmp_path, "own", "raw")
    code, stderr = stage(tmp_path, "validate")
    assert code == 0, stderr
    assert (tmp_path / "data" / "validation" / "d.json").exists()


# ---------------------------------------------------------------------------------------------------------
# Harry Potter fMRI .mat files: the loader refuses them
# ---------------------------------------------------------------------------------------------------------


def test_truncated_mat_fails_with_one_line_and_the_run_is_failed(tmp_path, monkeypatch):
    """Truth: the file's bytes were cut in half. The stage's MLflow run, in run_stage's own store
    (``tmp_path/mlflow.db``), ends FAILED."""
    monkeypatch.delenv("BRAINALIGN_TRACKING_URI")
    path = write_release(tmp_path)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    write_params(tmp_path, "hp_fmri", "raw")
    fails_with_input_error(tmp_path, "validate", MAT, "file", "a readable MATLAB .mat file")
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("SELECT name, status FROM runs").fetchall() == [("validate@d", "FAILED")]


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_damaged_mat73_fails_with_one_line(tmp_path, fraction):
    """Truth: a MATLAB v7.3 file whose HDF5 header is intact but whose end was cut off."""
    path = write_release(tmp_path, version="7.3")
    content = path.read_bytes()
    assert content[512:520] == b"\x89HDF\r\n\x1a\n"  # HDF5's signature after MATLAB's 512-byte user block
    path.write_bytes(content[: int(len(content) * fraction)])
    write_params(tmp_path, "hp_fmri", "raw")
    fails_with_input_error(tmp_path, "validate", MAT, "file", "a readable MATLAB v7.3 (HDF5) file")


def test_mat_without_words_names_the_variable(tmp_path):
    rewrite_mat(write_release(tmp_path), lambda variables: variables.pop("words"))
    write_params(tmp_path, "hp_fmri", "raw")
    fails_with_input_error(tmp_path, "validate", MAT, "words", "a variable of that name",
                           "variables ['data', 'meta', 'time']")


@pytest.mark.parametrize("damage, found", [("three_columns", "shape (80, 3)"), ("one_row_short", "shape (79, 2)")])
def test_time_of_the_wrong_shape_names_time(tmp_path, damage, found):
    """Truth: ``time`` must be 80 x 2 (one row per TR of data: start, run)."""

    def change(variables):
        time = variables["time"]
        variables["time"] = np.column_stack([time, np.zeros(len(time))]) if damage == "three_columns" else time[:-1]

    rewrite_mat(write_release(tmp_path), change)
    write_params(tmp_path, "hp_fmri", "raw")
    fails_with_input_error(tmp_path, "validate", MAT, "time", "shape (80, 2)", found)


@pytest.mark.parametrize("name", ["validate", "prepare"])
def test_coordinates_outside_the_volume_name_col_to_coord(tmp_path, name):
    """Truth: column 6's x coordinate (1-based) set to 4 in a volume with dimx 3."""

    def change(variables):
        variables["meta"][0, 0]["colToCoord"][5, 0] = 4.0

    rewrite_mat(write_release(tmp_path), change)
    write_params(tmp_path, "hp_fmri", "raw")
    fails_with_input_error(tmp_path, name, MAT, "meta.colToCoord", "inside the volume (3, 3, 3)",
                           "1 voxel(s) outside, first at column 6")


# ---------------------------------------------------------------------------------------------------------
# Harry Potter fMRI .mat files: the validation suite refuses them
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_nonfinite_voxel_fails_validation(tmp_path, value):
    """Truth: voxel 3 of TR 5 is not finite."""
    data = voxel_data()
    data[5, 2] = value
    write_release(tmp_path, fmri_recording(responses=data))
    write_params(tmp_path, "hp_fmri", "raw")
    stderr = fails_validation(tmp_path, "validate", MAT, "data", "expect_column_values_to_be_between",
                              rows=["row 6 (index 5)"])
    assert f"row 6 (index 5): {value} (column 3; " in stderr


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
def test_nonfinite_voxel_fails_prepare_with_one_message(tmp_path, shared_store, value):
    """Truth: voxel 3 of TR 22, a TR prepare keeps, is not finite; prepare run without validate must refuse
    it with one message naming the file or the non-finite values, and write nothing."""
    data = voxel_data()
    data[22, 2] = value
    write_release(tmp_path, fmri_recording(responses=data))
    write_params(tmp_path, "hp_fmri", "raw")
    fails_naming(tmp_path, "prepare", f"{MAT}: ", "data/prepared/d/1: prepared_runs.nonfinite_values: ")
    assert stage_runs(tmp_path, shared_store) == [("prepare@d", "FAILED")]


def test_a_missing_run_fails_validation(tmp_path):
    """Truth: every TR is labelled run 1, while params ask for runs [1, 2]; run 2 is the one missing."""
    write_release(tmp_path, fmri_recording(runs=np.ones(N_TRS, dtype=int)))
    write_params(tmp_path, "hp_fmri", "raw")
    stderr = fails_validation(tmp_path, "validate", MAT, "time[:, 1]", "expect_column_distinct_values_to_contain_set")
    assert "(expect_column_distinct_values_to_contain_set): missing 2\n" in stderr, stderr


def test_word_onsets_out_of_order_fail_validation(tmp_path):
    """Truth: the onsets of words 10 and 11 (0-based) are swapped: word 11 starts 0.5 s before word 10."""
    words = default_words()
    words.loc[[10, 11], "onset"] = words.loc[[11, 10], "onset"].to_numpy()
    write_release(tmp_path, fmri_recording(words=words))
    write_params(tmp_path, "hp_fmri", "raw")
    stderr = fails_validation(tmp_path, "validate", MAT, "words.start", "expect_column_values_to_be_between",
                              rows=["row 12 (index 11)"])
    assert "row 12 (index 11): 5.0 (after 5.5 on row 11 (index 10))" in stderr


@pytest.mark.parametrize("damage", ["swap_at_run_boundary", "word_moved_into_next_run", "nan_onset"])
def test_word_onsets_out_of_order_across_runs_fail_validation(tmp_path, damage):
    """Truth: the words' onsets do not increase in presentation order, around a run boundary.

    ``swap_at_run_boundary``: words 159 (79.5 s, run 1) and 160 (80.0 s, run 2) swapped.
    ``word_moved_into_next_run``: word 5 (2.5 s) given the onset 120 s, between words at 2.0 s and 3.0 s.
    ``nan_onset``: word 10's onset is NaN.
    """
    words = default_words()
    if damage == "swap_at_run_boundary":
        words.loc[[159, 160], "onset"] = words.loc[[160, 159], "onset"].to_numpy()
    elif damage == "word_moved_into_next_run":
        words.loc[5, "onset"] = 120.0
    else:
        words.loc[10, "onset"] = np.nan
    write_release(tmp_path, fmri_recording(words=words))
    write_params(tmp_path, "hp_fmri", "raw")
    fails_naming(tmp_path, "validate", f"{MAT}: words.start: ")


def test_words_after_the_last_tr_fail_validation(tmp_path):
    """Truth: the last TR starts at 158 s, so the recording ends at 160 s; a word is added at 170 s."""
    words = pd.concat([default_words(), pd.DataFrame({"word": ["late"], "onset": [170.0], "duration": [0.5]})],
                      ignore_index=True)
    write_release(tmp_path, fmri_recording(words=words))
    write_params(tmp_path, "hp_fmri", "raw")
    stderr = fails_validation(tmp_path, "validate", MAT, "words.start", "expect_column_values_to_be_between",
                              rows=[f"row {len(words)} (index {len(words) - 1})"])
    assert "170.0 (run 2 ends at 160.0 s)" in stderr


def test_validation_report_is_printed_once(tmp_path):
    """One clear message: the failed check's report line appears once on stderr, not once from the stage's
    summary and again from the ``error:`` line."""
    data = voxel_data()
    data[5, 2] = np.nan
    write_release(tmp_path, fmri_recording(responses=data))
    write_params(tmp_path, "hp_fmri", "raw")
    code, stderr = stage(tmp_path, "validate")
    assert code == 1, stderr
    assert stderr.count(f"{MAT}: data: ") == 1, stderr


# ---------------------------------------------------------------------------------------------------------
# Harry Potter MEG .npz files
# ---------------------------------------------------------------------------------------------------------


def test_duplicated_participant_ids_fail_validation(tmp_path):
    """Truth: the file's subjects are ["A", "A"]."""
    save_npz(tmp_path, meg_arrays(subjects=("A", "A")))
    write_params(tmp_path, "hp_meg", NPZ, tr=None)
    stderr = fails_validation(tmp_path, "validate", f"{NPZ}[A]", "participant", "expect_column_values_to_be_unique")
    assert f"e.g. {NPZ}[A]: 'A'; {NPZ}[A]: 'A'" in stderr


@pytest.mark.parametrize("n_sensors", [204, 102])
def test_meg_sensor_count_other_than_306(tmp_path, n_sensors):
    save_npz(tmp_path, meg_arrays(n_sensors=n_sensors))
    write_params(tmp_path, "hp_meg", NPZ, tr=None)
    fails_with_input_error(tmp_path, "validate", NPZ, "data", "306 sensors",
                           f"found {n_sensors} (shape (2, 60, {n_sensors}, 2))")


def test_meg_stimuli_as_an_object_array_are_refused_unpickled(tmp_path):
    """Truth: ``stimuli`` saved as a Python-object array (loading it would unpickle)."""
    arrays = meg_arrays()
    arrays["stimuli"] = np.asarray(arrays["stimuli"].tolist(), dtype=object)
    save_npz(tmp_path, arrays)
    write_params(tmp_path, "hp_meg", NPZ, tr=None)
    fails_with_input_error(tmp_path, "validate", NPZ, "stimuli", "object array", "np.asarray(stimuli, dtype=str)")


def test_meg_stimuli_not_utf8(tmp_path):
    """Truth: word 3 of ``stimuli`` (bytes) is ``caf\\xe9``, Latin-1 for 'café'."""
    arrays = meg_arrays()
    stimuli = np.array([s.encode() for s in arrays["stimuli"]], dtype="S16")
    stimuli[3] = b"caf\xe9"
    arrays["stimuli"] = stimuli
    save_npz(tmp_path, arrays)
    write_params(tmp_path, "hp_meg", NPZ, tr=None)
    fails_with_input_error(tmp_path, "validate", NPZ, "stimuli[3]", "UTF-8 text", "caf\\xe9")


def test_meg_file_without_words(tmp_path):
    """Truth: ``stimuli``, ``blocks`` and ``data``'s word axis are empty (zero words)."""
    arrays = meg_arrays()
    arrays.update(stimuli=arrays["stimuli"][:0], blocks=arrays["blocks"][:0], data=arrays["data"][:, :0])
    save_npz(tmp_path, arrays)
    write_params(tmp_path, "hp_meg", NPZ, tr=None)
    fails_naming(tmp_path, "validate", f"{NPZ}: ", f"{NPZ}[A]: ", f"{NPZ}[B]: ")


# ---------------------------------------------------------------------------------------------------------
# Own-format directories
# ---------------------------------------------------------------------------------------------------------


def test_non_utf8_words_name_the_line(tmp_path):
    """Truth: the 4th word (file line 5, after the header) is ``caf\\xe9``, Latin-1 for 'café'."""
    directory = write_own_dataset(tmp_path)
    lines = (directory / "words.tsv").read_bytes().split(b"\n")
    lines[4] = b"caf\xe9" + lines[4][lines[4].index(b"\t"):]
    (directory / "words.tsv").write_bytes(b"\n".join(lines))
    write_params(tmp_path, "own", "raw")
    fails_with_input_error(tmp_path, "validate", OWN / "words.tsv", "encoding", "UTF-8", "b'\\xe9' on line 5")


@pytest.mark.parametrize("name", ["validate", "prepare"])
def test_empty_words_file(tmp_path, name):
    """Truth: words.tsv has zero bytes."""
    directory = write_own_dataset(tmp_path)
    (directory / "words.tsv").write_bytes(b"")
    write_params(tmp_path, "own", "raw")
    fails_with_input_error(tmp_path, name, OWN / "words.tsv", "rows", "an empty file")


def test_words_file_with_only_a_header(tmp_path):
    directory = write_own_dataset(tmp_path)
    (directory / "words.tsv").write_text("word\tonset\tduration\trun\n")
    write_params(tmp_path, "own", "raw")
    fails_with_input_error(tmp_path, "validate", OWN / "words.tsv", "rows", "at least one row")


def test_words_file_that_is_not_a_table(tmp_path):
    """Truth: line 4 of words.tsv has a 5th tab-separated field."""
    directory = write_own_dataset(tmp_path)
    lines = (directory / "words.tsv").read_text().split("\n")
    lines[3] = lines[3] + "\textra"
    (directory / "words.tsv").write_text("\n".join(lines))
    write_params(tmp_path, "own", "raw")
    fails_naming(tmp_path, "validate", f"{OWN / 'words.tsv'}: ")


def test_a_quote_mark_is_part_of_a_word(tmp_path):
    """Truth: the word on line 4 is written ``"Harry`` (a quote never closed); TSV has no quoting, so the
    word reads as those six characters and the dataset is valid."""
    from brainalign.data.own import read_own

    directory = write_own_dataset(tmp_path)
    lines = (directory / "words.tsv").read_text().split("\n")
    lines[3] = '"Harry' + lines[3][lines[3].index("\t"):]
    (directory / "words.tsv").write_text("\n".join(lines))
    assert read_own(directory).words["word"].iloc[2] == '"Harry'


def test_own_responses_rows_not_matching_trs(tmp_path):
    """Truth: responses.npy has 79 rows, trs.tsv 80."""
    directory = write_own_dataset(tmp_path)
    np.save(directory / "responses.npy", np.load(directory / "responses.npy")[:-1])
    write_params(tmp_path, "own", "raw")
    fails_with_input_error(tmp_path, "validate", OWN / "responses.npy", "rows", "80 time points", "found 79")


def test_own_trs_with_a_non_numeric_onset(tmp_path):
    """Truth: the 8th TR's onset (file line 9) is ``14.0s``."""
    directory = write_own_dataset(tmp_path)
    trs = pd.read_csv(directory / "trs.tsv", sep="\t", dtype=str)
    trs.loc[7, "onset"] = "14.0s"
    trs.to_csv(directory / "trs.tsv", sep="\t", index=False)
    write_params(tmp_path, "own", "raw")
    fails_with_input_error(tmp_path, "validate", OWN / "trs.tsv", "onset", "numbers", "'14.0s' on line 9")


def test_own_truncated_nifti(tmp_path):
    """Truth: responses.nii.gz was cut in half (its gzip stream ends early)."""
    directory = write_own_dataset(tmp_path, form="nifti")
    image = directory / "responses.nii.gz"
    content = image.read_bytes()
    image.write_bytes(content[: len(content) // 2])
    write_params(tmp_path, "own", "raw")
    fails_with_input_error(tmp_path, "validate", OWN / "responses.nii.gz", "file")


def test_own_word_in_a_run_without_trs_names_the_words_file(tmp_path):
    """Truth: data row 161 of words.tsv (file line 162; onset 80.0 s, the first word of run 2) says run 5;
    trs.tsv has runs 1 and 2 only."""
    directory = write_own_dataset(tmp_path)
    lines = (directory / "words.tsv").read_text().split("\n")
    assert lines[161].split("\t")[1:] == ["80.0", "0.5", "2"]
    lines[161] = lines[161][: lines[161].rindex("\t")] + "\t5"
    (directory / "words.tsv").write_text("\n".join(lines))
    write_params(tmp_path, "own", "raw")
    stderr = fails_validation(tmp_path, "validate", OWN / "words.tsv", "run", "expect_column_values_to_be_in_set",
                              rows=["row 161 (line 162)"])
    assert "row 161 (line 162): 5" in stderr
    assert "run_step" not in stderr


def write_own_regions(tmp_path: Path, third: str) -> None:
    """Participants 1 and 2 as region tables: 2's header names its 3rd region ``third``, 1's ``channel2``."""
    for subject in ("1", "2"):
        write_own(fmri_recording(), tmp_path / "raw" / subject, form="tsv")
    responses = tmp_path / "raw" / "2" / "responses.tsv"
    header, rest = responses.read_text().split("\n", 1)
    assert header.split("\t")[2] == "channel2"
    responses.write_text(header.replace("channel2", third) + "\n" + rest)


def test_own_participants_with_differing_regions_fail_validation(tmp_path):
    write_own_regions(tmp_path, "STG")
    write_params(tmp_path, "own", "raw")
    stderr = fails_validation(tmp_path, "validate", OWN.parent / "2" / "responses.tsv", "channel names",
                              "expect_column_values_to_be_in_set", rows=["participant 2"])
    assert f"participant 2: 'STG' (channel 3; participant 1 ({OWN / 'responses.tsv'}) has 'channel2')" in stderr


def test_own_participants_with_differing_regions_are_not_prepared(tmp_path):
    """prepare run without validate: the prepared dataset would pool the participants' regions; it is refused."""
    write_own_regions(tmp_path, "STG")
    write_params(tmp_path, "own", "raw")
    fails_with_input_error(tmp_path, "prepare", OWN.parent / "2" / "responses.tsv", "channel names",
                           f"the channel names of participant 1 ({OWN / 'responses.tsv'})",
                           "participant 2's channel 3 is 'STG' where participant 1's is 'channel2'")


# ---------------------------------------------------------------------------------------------------------
# The command outside DVC
# ---------------------------------------------------------------------------------------------------------


def test_cli_validate_own_dataset_exit_status(tmp_path, capsys):
    good = tmp_path / "good"
    write_own(fmri_recording(), good / "1", form="npy")
    assert cli.main(["validate", str(good), "--source", "own", "--runs", "1", "2"]) == 0
    assert "validation passed" in capsys.readouterr().out

    bad = tmp_path / "bad"
    write_own(fmri_recording(), bad / "1", form="npy")
    (bad / "1" / "words.tsv").write_bytes(b"")
    assert cli.main(["validate", str(bad), "--source", "own", "--runs", "1", "2"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {bad / '1' / 'words.tsv'}: rows: expected a header with columns "
        "['word', 'onset', 'duration', 'run'] and at least one row, found an empty file")
