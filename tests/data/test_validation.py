"""great-expectations validation of recordings: each planted defect is reported with its file, column and values.

Every recording here is written out by hand (4 runs x 4 TRs, TR 2 s, 5 voxels); each defect test plants one
defect and checks that it is the only failure, in the column and at the rows where it was planted. The last
section writes own-format datasets by hand, file by file, and checks that a failure speaks of them: the
file, the column, the row (1-based data row and the file's line) and the value written there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainalign.data.datasets import read_dataset
from brainalign.data.hp_fmri import read_hp_fmri, write_hp_fmri
from brainalign.data.hp_meg import read_hp_meg, write_hp_meg
from brainalign.data.prepared import prepare_recording, write_prepared
from brainalign.errors import InputError, ValidationFailed
from brainalign.data.recording import Recording
from brainalign.data.validation import validate_recordings

RUN_LIST = [1, 2, 3, 4]
# Four runs of four TRs, 2 s apart within a run, with gaps between runs. Last TR starts at 36.0, so the
# recording ends at 38.0.
TIMES = [0.0, 2.0, 4.0, 6.0,
         10.0, 12.0, 14.0, 16.0,
         20.0, 22.0, 24.0, 26.0,
         30.0, 32.0, 34.0, 36.0]
RUNS = [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4]
ONSETS = [0.5, 3.0, 11.0, 25.0, 37.5]
WORDS = ["Harry", "had", "never", "believed", "he"]

# 6 checks on the TRs, 10 on the words, 2 on the summary, and 2 across recordings.
CHECKS_PER_RECORDING = 6 + 10 + 2  # trs, words, summary_fmri
CHECKS_ACROSS = 2  # participants: unique ids, the same channel names


def words_frame(onsets=ONSETS, words=None) -> pd.DataFrame:
    words = WORDS[: len(onsets)] if words is None else words
    return pd.DataFrame({"word": words, "onset": list(onsets), "duration": [0.5] * len(onsets)})


def recording(subject="1", source=None, responses=None, times=TIMES, runs=RUNS, words=None, **extra) -> Recording:
    n = len(times)
    if responses is None:
        responses = np.arange(n * 5, dtype=np.float64).reshape(n, 5) / 10.0
    return Recording(subject=subject, modality="fmri", responses=responses, times=times, runs=runs,
                     words=words_frame() if words is None else words,
                     source=source or f"subject_{subject}.mat", **extra)


def validate(recordings, **kwargs):
    return validate_recordings(recordings, runs=RUN_LIST, tr=2.0, tr_tolerance=0.01, **kwargs)


def only_failure(report):
    """The single failing check of ``report`` (asserting there is exactly one)."""
    assert report.success is False
    failures = report.failures()
    assert len(failures) == 1, report.summary()
    return failures[0]


def assert_reported(failure, file: str, column: str, rows: list, values: list) -> None:
    """The failure speaks in the user's words: their file, their column, rows as they count them, their values."""
    assert (failure.file, failure.user_column, failure.user_rows, failure.user_values) == (file, column, rows, values)


# ---------------------------------------------------------------------------------------------------------
# A valid recording
# ---------------------------------------------------------------------------------------------------------


def test_valid_recordings_pass():
    report = validate([recording("1"), recording("2", coords=[[0, 0, i] for i in range(5)])])
    assert report.success is True, report.summary()
    assert report.failures() == []
    assert len(report.checks) == 2 * CHECKS_PER_RECORDING + CHECKS_ACROSS
    assert {c.file for c in report.checks} == {"subject_1.mat", "subject_2.mat", "subject_1.mat, subject_2.mat"}
    assert all(c.success for c in report.checks)
    assert report.summary() == f"validation passed: {2 * CHECKS_PER_RECORDING + CHECKS_ACROSS} checks"
    report.raise_for_failure()  # must not raise


def test_tr_within_tolerance_passes():
    times = list(TIMES)
    times[5] = 12.005  # dt 2.005 then 1.995: both inside 2.0 +- 0.01
    assert validate([recording(times=times)]).success is True


# ---------------------------------------------------------------------------------------------------------
# One planted defect per test
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("row, voxel, value", [(6, 2, np.nan), (13, 4, np.inf), (0, 0, -np.inf)],
                         ids=["nan", "inf", "-inf"])
def test_nonfinite_voxel_value(row, voxel, value):
    responses = np.ones((16, 5))
    responses[row, voxel] = value
    failure = only_failure(validate([recording(responses=responses)]))
    assert failure.file == "subject_1.mat"
    assert failure.table == "trs"
    assert failure.column == "nonfinite_values"
    assert failure.rows == [row]
    assert failure.unexpected_count == 1
    assert failure.examples == [1]  # one non-finite voxel in that TR
    assert failure.user_column == "responses"
    assert failure.user_rows == [f"row {row + 1} (index {row})"]
    assert failure.user_values == [str(value)]
    assert failure.details == [f"row {row + 1} (index {row}): {value} (column {voxel + 1}; "
                               "1 non-finite value(s) in the row)"]


def test_nonfinite_values_in_two_trs():
    responses = np.ones((16, 5))
    responses[3, [0, 1]] = np.nan
    responses[9, 4] = np.inf
    failure = only_failure(validate([recording(responses=responses)]))
    assert failure.column == "nonfinite_values"
    assert failure.rows == [3, 9]
    assert failure.examples == [2, 1]
    assert failure.unexpected_count == 2
    assert failure.user_values == ["nan", "inf"]


def three_run_recording() -> Recording:
    """Runs 1, 2 and 3 only (ends at 28.0), with every word inside them."""
    return recording(times=TIMES[:12], runs=RUNS[:12], words=words_frame([0.5, 3.0, 11.0, 25.0, 27.5]))


def test_missing_run():
    failure = only_failure(validate([three_run_recording()]))
    assert failure.file == "subject_1.mat"
    assert failure.table == "trs"
    assert failure.column == "run"
    assert failure.check == "expect_column_distinct_values_to_contain_set"


def test_missing_run_is_named_in_the_report():
    failure = only_failure(validate([three_run_recording()]))
    assert failure.column == "run"
    assert failure.examples == [4]
    assert failure.details == ["missing 4"]


def test_run_outside_the_allowed_set():
    times = TIMES + [40.0, 42.0, 44.0, 46.0]
    runs = RUNS + [5, 5, 5, 5]
    failure = only_failure(validate([recording(times=times, runs=runs)]))
    assert failure.file == "subject_1.mat"
    assert failure.table == "trs"
    assert failure.column == "run"
    assert failure.check == "expect_column_values_to_be_in_set"
    assert failure.examples == [5, 5, 5, 5]
    assert failure.rows == [16, 17, 18, 19]
    assert failure.user_rows == ["row 17 (index 16)", "row 18 (index 17)", "row 19 (index 18)", "row 20 (index 19)"]


def test_runs_out_of_order():
    runs = [1, 1, 1, 1, 3, 3, 3, 3, 2, 2, 2, 2, 4, 4, 4, 4]  # steps 1 -> 3 (+2), 3 -> 2 (-1), 2 -> 4 (+2)
    failure = only_failure(validate([recording(runs=runs)]))
    assert failure.table == "trs"
    assert failure.column == "run_step"
    assert failure.examples == [2.0, -1.0, 2.0]
    assert failure.rows == [4, 8, 12]
    assert failure.user_column == "run"
    assert failure.user_values == [3, 2, 4]  # the runs as written, not their steps
    assert failure.details[1] == "row 9 (index 8): 2 (after run 3 on row 8 (index 7))"


def test_trs_too_far_apart():
    times = [0.0, 2.0, 4.0, 6.0,
             10.0, 12.0, 14.5, 16.5,  # 12.0 -> 14.5: 2.5 s
             20.0, 22.0, 24.0, 26.0,
             30.0, 32.0, 34.0, 36.0]
    failure = only_failure(validate([recording(times=times)]))
    assert failure.file == "subject_1.mat"
    assert failure.table == "trs"
    assert failure.column == "dt"
    assert failure.examples == [2.5]
    assert failure.rows == [6]
    assert failure.user_column == "onset"
    assert failure.details == ["row 7 (index 6): 14.5 (2.5 s after 12.0 on row 6 (index 5))"]


def test_tr_just_outside_tolerance():
    times = list(TIMES)
    times[9] = 22.02  # dt 2.02 then 1.98
    failure = only_failure(validate([recording(times=times)]))
    assert failure.column == "dt"
    assert failure.rows == [9, 10]
    assert failure.examples == pytest.approx([2.02, 1.98])


def test_word_onsets_out_of_order():
    failure = only_failure(validate([recording(words=words_frame([0.5, 3.0, 2.0, 25.0, 37.5]))]))
    assert failure.file == "subject_1.mat"
    assert failure.table == "words"
    assert failure.column == "onset_step"
    assert failure.examples == [-1.0]
    assert failure.rows == [2]
    assert failure.user_column == "onset"
    assert failure.user_values == [2.0]


def test_word_after_the_last_tr():
    # The last TR starts at 36.0 and lasts 2.0 s: a word at 39.0 is 1.0 s past the end.
    failure = only_failure(validate([recording(words=words_frame([0.5, 3.0, 11.0, 25.0, 39.0]))]))
    assert failure.file == "subject_1.mat"
    assert failure.table == "words"
    assert failure.column == "before_end"
    assert failure.examples == [-1.0]
    assert failure.rows == [4]
    assert failure.user_column == "onset"
    assert failure.details == ["row 5 (index 4): 39.0 (run 4 ends at 38.0 s)"]


def test_word_exactly_at_the_end_fails():
    failure = only_failure(validate([recording(words=words_frame([0.5, 3.0, 11.0, 25.0, 38.0]))]))
    assert failure.column == "before_end"
    assert failure.examples == [0.0]
    assert failure.rows == [4]


def test_word_before_the_first_tr():
    failure = only_failure(validate([recording(words=words_frame([-1.5, 3.0, 11.0, 25.0, 37.5]))]))
    assert failure.table == "words"
    assert failure.column == "after_start"
    assert failure.examples == [-1.5]
    assert failure.rows == [0]
    assert failure.user_column == "onset"
    assert failure.user_values == [-1.5]


def test_empty_words_table():
    failure = only_failure(validate([recording(words=words_frame([]))]))
    assert failure.file == "subject_1.mat"
    assert failure.table == "words"
    assert failure.column == "rows"
    assert failure.check == "expect_table_row_count_to_be_between"
    assert failure.examples == [0]
    assert failure.details == ["found 0"]


def test_duplicated_participant():
    report = validate([recording("1", source="subject_1.mat"), recording("2", source="subject_2.mat"),
                       recording("1", source="subject_1_copy.mat")])
    failure = only_failure(report)
    assert failure.table == "participants"
    assert failure.column == "subject"
    assert failure.file == "subject_1.mat, subject_1_copy.mat"  # the two participants, not the third
    assert failure.examples == ["1", "1"]
    assert failure.rows == [0, 2]
    assert failure.user_column == "participant"
    assert failure.details == ["subject_1.mat: '1'", "subject_1_copy.mat: '1'"]


def test_defect_is_attributed_to_its_own_file():
    words = words_frame([0.5, 3.0, 2.0, 25.0, 37.5])
    report = validate([recording("1"), recording("2", words=words), recording("3")])
    failure = only_failure(report)
    assert failure.file == "subject_2.mat"
    assert failure.column == "onset_step"


def test_responses_and_time_rows_must_agree():
    with pytest.raises(InputError) as info:
        recording(responses=np.ones((15, 5)))
    assert info.value.field == "times"
    assert "subject_1.mat" in str(info.value)
    with pytest.raises(InputError) as info:
        Recording(subject="1", modality="fmri", responses=np.ones((16, 5)), times=TIMES, runs=RUNS[:15],
                  words=words_frame(), source="subject_1.mat")
    assert info.value.field == "runs"


# ---------------------------------------------------------------------------------------------------------
# Summary and raising
# ---------------------------------------------------------------------------------------------------------


def test_summary_names_file_column_and_example():
    times = [0.0, 2.0, 4.0, 6.0, 10.0, 12.0, 14.5, 16.5, 20.0, 22.0, 24.0, 26.0, 30.0, 32.0, 34.0, 36.0]
    report = validate([recording(source="data/subject_1.mat", times=times)])
    summary = report.summary()
    assert summary.splitlines() == [
        f"validation failed: 1 of {CHECKS_PER_RECORDING + CHECKS_ACROSS} checks",
        "  data/subject_1.mat: onset: TRs of a run are 2 s apart (+- 0.01 s) (expect_column_values_to_be_between): "
        "1 offending value(s), e.g. row 7 (index 6): 14.5 (2.5 s after 12.0 on row 6 (index 5))"]


def test_summary_of_nonfinite_value_names_the_row():
    responses = np.ones((16, 5))
    responses[11, 3] = np.nan
    summary = validate([recording(responses=responses)]).summary()
    assert "subject_1.mat: responses: responses are finite" in summary
    assert "row 12 (index 11): nan (column 4; 1 non-finite value(s) in the row)" in summary


def test_raise_for_failure():
    report = validate([recording(words=words_frame([0.5, 3.0, 11.0, 25.0, 39.0]))])
    with pytest.raises(ValidationFailed) as info:
        report.raise_for_failure()
    assert info.value.report == report.summary()
    assert "subject_1.mat: onset: every word starts before its run ends" in str(info.value)
    assert "row 5 (index 4): 39.0" in str(info.value)


# ---------------------------------------------------------------------------------------------------------
# Own-format datasets written by hand: a failure names the user's file, column, row and value
# ---------------------------------------------------------------------------------------------------------

# Two runs of 6 TRs, 2 s apart, each run on its own clock: a run ends at 12.0 s.
OWN_TRS = "onset\trun\n" + "".join(f"{2.0 * i}\t{run}\n" for run in (1, 2) for i in range(6))
# Data rows 1-7 of words.tsv (file lines 2-8).
OWN_WORDS = [["Harry", "0.5", "0.4", "1"], ["had", "1.5", "0.3", "1"], ["never", "3.0", "0.5", "1"],
             ["believed", "6.2", "0.6", "1"], ["he", "0.4", "0.3", "2"], ["would", "2.0", "0.4", "2"],
             ["see", "4.5", "0.5", "2"]]
OWN_REGIONS = ["L_IFG", "L_PostTemp", "R_AngG", "PCC"]


def write_own_participant(root: Path, name: str, words=OWN_WORDS, regions=OWN_REGIONS) -> Path:
    """One participant directory: trs.tsv, words.tsv (``words``: its data rows) and a region table."""
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "trs.tsv").write_text(OWN_TRS)
    (directory / "words.tsv").write_text("word\tonset\tduration\trun\n" + "".join("\t".join(w) + "\n" for w in words))
    values = np.random.default_rng(len(name)).standard_normal((12, len(regions)))
    (directory / "responses.tsv").write_text("\t".join(regions) + "\n"
                                             + "".join("\t".join(f"{v:.4f}" for v in row) + "\n" for row in values))
    return directory


def with_row(row: int, column: int, value: str) -> list[list[str]]:
    """OWN_WORDS with data row ``row`` (1-based, as the file counts them after its header) changed."""
    words = [list(w) for w in OWN_WORDS]
    words[row - 1][column] = value
    return words


def validate_own(root: Path):
    return validate_recordings(read_dataset("own", root), runs=[1, 2], tr=2.0, tr_tolerance=0.01)


def test_clean_own_dataset_passes(tmp_path):
    write_own_participant(tmp_path, "1")
    write_own_participant(tmp_path, "2")
    report = validate_own(tmp_path)
    assert report.success is True, report.summary()
    assert report.summary() == f"validation passed: {2 * CHECKS_PER_RECORDING + CHECKS_ACROSS} checks"


def test_own_word_in_a_run_without_trs(tmp_path):
    """Truth: data row 5 of words.tsv (line 6) says run 5; trs.tsv has runs 1 and 2 only."""
    directory = write_own_participant(tmp_path, "1", words=with_row(5, 3, "5"))
    failure = only_failure(validate_own(tmp_path))
    assert_reported(failure, str(directory / "words.tsv"), "run", ["row 5 (line 6)"], [5])
    summary = validate_own(tmp_path).summary()
    assert f"  {directory / 'words.tsv'}: run: each word's run is one of the runs [1, 2] " in summary
    assert "e.g. row 5 (line 6): 5" in summary
    assert "run_step" not in summary


def test_own_onset_going_backwards(tmp_path):
    """Truth: data row 3 of words.tsv (line 4) starts at 1.0 s, before row 2's 1.5 s in the same run."""
    directory = write_own_participant(tmp_path, "1", words=with_row(3, 1, "1.0"))
    failure = only_failure(validate_own(tmp_path))
    assert failure.description == "word onsets increase within a run"
    assert_reported(failure, str(directory / "words.tsv"), "onset", ["row 3 (line 4)"], [1.0])
    assert failure.details == ["row 3 (line 4): 1.0 (after 1.5 on row 2 (line 3))"]
    assert "onset_step" not in validate_own(tmp_path).summary()


def test_own_negative_duration(tmp_path):
    """Truth: data row 2 of words.tsv (line 3) lasts -0.3 s."""
    directory = write_own_participant(tmp_path, "1", words=with_row(2, 2, "-0.3"))
    failure = only_failure(validate_own(tmp_path))
    assert_reported(failure, str(directory / "words.tsv"), "duration", ["row 2 (line 3)"], [-0.3])
    assert (f"  {directory / 'words.tsv'}: duration: no word duration is negative "
            "(expect_column_values_to_be_between): 1 offending value(s), e.g. row 2 (line 3): -0.3"
            ) in validate_own(tmp_path).summary()


@pytest.mark.parametrize("word", ["", "   "], ids=["empty", "spaces"])
def test_own_empty_word(tmp_path, word):
    """Truth: data row 4 of words.tsv (line 5) has an empty (or all-space) word; the reader keeps it as written."""
    directory = write_own_participant(tmp_path, "1", words=with_row(4, 0, word))
    failure = only_failure(validate_own(tmp_path))
    assert_reported(failure, str(directory / "words.tsv"), "word", ["row 4 (line 5)"], [word])
    assert f"{directory / 'words.tsv'}: word: no word is empty" in validate_own(tmp_path).summary()
    assert f"row 4 (line 5): {word!r}" in validate_own(tmp_path).summary()


def test_own_tr_off_its_grid_names_trs_tsv(tmp_path):
    """Truth: data row 4 of trs.tsv (line 5) starts at 6.5 s: 2.5 s after row 3, 1.5 s before row 5."""
    directory = write_own_participant(tmp_path, "1")
    lines = (directory / "trs.tsv").read_text().splitlines()
    assert lines[4] == "6.0\t1"
    lines[4] = "6.5\t1"
    (directory / "trs.tsv").write_text("\n".join(lines) + "\n")
    failure = only_failure(validate_own(tmp_path))
    assert_reported(failure, str(directory / "trs.tsv"), "onset", ["row 4 (line 5)", "row 5 (line 6)"], [6.5, 8.0])
    assert failure.details[0] == "row 4 (line 5): 6.5 (2.5 s after 4.0 on row 3 (line 4))"


def test_own_nonfinite_response_names_the_region(tmp_path):
    """Truth: data row 7 of responses.tsv (line 8) has ``nan`` for region R_AngG (column 3)."""
    directory = write_own_participant(tmp_path, "1")
    lines = (directory / "responses.tsv").read_text().splitlines()
    cells = lines[7].split("\t")
    cells[2] = "nan"
    lines[7] = "\t".join(cells)
    (directory / "responses.tsv").write_text("\n".join(lines) + "\n")
    failure = only_failure(validate_own(tmp_path))
    assert failure.file == str(directory / "responses.tsv")
    assert failure.details == ["row 7 (line 8): nan (column 3 ('R_AngG'); 1 non-finite value(s) in the row)"]


def differing_regions(tmp_path: Path) -> tuple[Path, Path]:
    """Participant 1 with OWN_REGIONS; participant 2 names its 3rd region (header column 3) R_SMG."""
    return (write_own_participant(tmp_path, "1"),
            write_own_participant(tmp_path, "2", regions=["L_IFG", "L_PostTemp", "R_SMG", "PCC"]))


def test_own_participants_with_differing_region_names_fail_validation(tmp_path):
    first, second = differing_regions(tmp_path)
    report = validate_own(tmp_path)
    failure = only_failure(report)
    assert failure.table == "participants"
    assert failure.file == str(second / "responses.tsv")
    assert failure.user_column == "channel names"
    assert failure.user_values == ["R_SMG"]
    assert failure.details == [f"participant 2: 'R_SMG' (channel 3; participant 1 ({first / 'responses.tsv'}) "
                               "has 'R_AngG')"]
    assert (f"  {second / 'responses.tsv'}: channel names: every participant has the same channel names "
            "(expect_column_values_to_be_in_set): 1 offending value(s), e.g. participant 2: 'R_SMG'"
            ) in report.summary()


def test_own_participants_with_differing_region_names_are_not_pooled(tmp_path):
    """Prepared without validation, the participants are refused where they are pooled: the prepared dataset."""
    first, second = differing_regions(tmp_path)
    prepared = [prepare_recording(r, drop_start=0, drop_end=0, span=4.0, min_lead=0.0)
                for r in read_dataset("own", tmp_path)]
    with pytest.raises(InputError) as info:
        write_prepared(prepared, tmp_path / "prepared")
    assert str(info.value) == (
        f"{second / 'responses.tsv'}: channel names: expected the channel names of participant 1 "
        f"({first / 'responses.tsv'}), found participant 2's channel 3 is 'R_SMG' where participant 1's is 'R_AngG'")
    assert not (tmp_path / "prepared").exists()


def test_own_participant_with_fewer_regions_is_not_pooled(tmp_path):
    """Truth: participant 2 lacks the 4th region (PCC)."""
    first = write_own_participant(tmp_path, "1")
    write_own_participant(tmp_path, "2", regions=OWN_REGIONS[:3])
    failure = only_failure(validate_own(tmp_path))
    assert failure.details == [f"participant 2: none (channel 4; participant 1 ({first / 'responses.tsv'}) has 'PCC')"]
    prepared = [prepare_recording(r, drop_start=0, drop_end=0, span=4.0, min_lead=0.0)
                for r in read_dataset("own", tmp_path)]
    with pytest.raises(InputError, match="participant 2's channel 4 is missing where participant 1's is 'PCC'"):
        write_prepared(prepared, tmp_path / "prepared")


def test_prepared_participants_with_the_same_regions_are_written(tmp_path):
    write_own_participant(tmp_path, "1")
    write_own_participant(tmp_path, "2")
    prepared = [prepare_recording(r, drop_start=0, drop_end=0, span=4.0, min_lead=0.0)
                for r in read_dataset("own", tmp_path)]
    write_prepared(prepared, tmp_path / "prepared")
    assert (tmp_path / "prepared" / "2" / "channels.json").exists()


# ---------------------------------------------------------------------------------------------------------
# Release files written in their formats: a failure names the release's fields, not brainalign's columns
# ---------------------------------------------------------------------------------------------------------


def write_release_fmri(path: Path, onsets=ONSETS, durations=None, times=TIMES) -> Path:
    """A ``subject_N.mat`` of the Harry Potter fMRI release holding the hand-made recording."""
    durations = [0.5] * len(onsets) if durations is None else durations
    words = pd.DataFrame({"word": WORDS[: len(onsets)], "onset": list(onsets), "duration": list(durations)})
    write_hp_fmri(recording(times=times, words=words, coords=[[0, 0, i] for i in range(5)], affine=np.eye(4),
                            volume_shape=(1, 1, 5)), path)
    return path


def test_release_fmri_negative_word_length_names_words_length(tmp_path):
    path = write_release_fmri(tmp_path / "subject_1.mat", durations=[0.5, -0.25, 0.5, 0.5, 0.5])
    failure = only_failure(validate([read_hp_fmri(path)]))
    assert failure.column == "duration"
    assert_reported(failure, str(path), "words.length", ["row 2 (index 1)"], [-0.25])


def test_release_fmri_word_after_its_run_names_words_start(tmp_path):
    path = write_release_fmri(tmp_path / "subject_1.mat", onsets=[0.5, 3.0, 11.0, 25.0, 39.0])
    failure = only_failure(validate([read_hp_fmri(path)]))
    assert failure.column == "before_end"
    assert_reported(failure, str(path), "words.start", ["row 5 (index 4)"], [39.0])
    assert f"{path}: words.start: every word starts before its run ends" in validate(
        [read_hp_fmri(path)]).summary()


def test_release_fmri_tr_off_its_grid_names_the_time_column(tmp_path):
    times = list(TIMES)
    times[6] = 14.5  # 12.0 -> 14.5 -> 16.0: 2.5 s, then 1.5 s
    path = write_release_fmri(tmp_path / "subject_1.mat", times=times)
    failure = only_failure(validate([read_hp_fmri(path)]))
    assert failure.column == "dt"
    assert_reported(failure, str(path), "time[:, 0]", ["row 7 (index 6)", "row 8 (index 7)"], [14.5, 16.0])


def test_release_meg_block_outside_the_runs_names_blocks(tmp_path):
    # Six words in blocks 1, 1, 2, 2, 5, 5: block 5 is not among the runs 1-4.
    blocks = [1, 1, 2, 2, 5, 5]
    words = pd.DataFrame({"word": ["a", "b", "c", "d", "e", "f"], "onset": [0.0, 0.5] * 3, "duration": 0.5,
                          "run": blocks})
    meg = Recording(subject="A", modality="meg", responses=np.ones((6, 306 * 2)), times=[0.0, 0.5] * 3,
                    runs=blocks, words=words, extra={"n_sensors": 306, "n_bins": 2})
    path = tmp_path / "hp_meg.npz"
    write_hp_meg([meg], path)
    report = validate_recordings(read_hp_meg(path), runs=RUN_LIST, tr=None)
    words_failure = next(c for c in report.failures() if c.table == "words" and c.column == "run")
    assert_reported(words_failure, f"{path}[A]", "blocks", ["row 5 (index 4)", "row 6 (index 5)"], [5, 5])
    assert all(c.user_column == "blocks" for c in report.failures()), report.summary()
