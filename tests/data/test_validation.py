"""great-expectations validation of recordings: each planted defect is reported with its file, column and values.

Every recording here is written out by hand (4 runs x 4 TRs, TR 2 s, 5 voxels); each defect test plants one
defect and checks that it is the only failure, in the column and at the rows where it was planted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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

# 5 checks on the TRs, 4 on the words, 2 on the summary, and 1 across recordings.
CHECKS_PER_RECORDING = 6 + 7 + 2  # trs, words, summary_fmri


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


# ---------------------------------------------------------------------------------------------------------
# A valid recording
# ---------------------------------------------------------------------------------------------------------


def test_valid_recordings_pass():
    report = validate([recording("1"), recording("2", coords=[[0, 0, i] for i in range(5)])])
    assert report.success is True, report.summary()
    assert report.failures() == []
    assert len(report.checks) == 2 * CHECKS_PER_RECORDING + 1
    assert {c.file for c in report.checks} == {"subject_1.mat", "subject_2.mat", "subject_1.mat, subject_2.mat"}
    assert all(c.success for c in report.checks)
    assert report.summary() == f"validation passed: {2 * CHECKS_PER_RECORDING + 1} checks"
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


def test_nonfinite_values_in_two_trs():
    responses = np.ones((16, 5))
    responses[3, [0, 1]] = np.nan
    responses[9, 4] = np.inf
    failure = only_failure(validate([recording(responses=responses)]))
    assert failure.column == "nonfinite_values"
    assert failure.rows == [3, 9]
    assert failure.examples == [2, 1]
    assert failure.unexpected_count == 2


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
    assert 4 in failure.examples or "4" in str(failure.examples)


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


def test_runs_out_of_order():
    runs = [1, 1, 1, 1, 3, 3, 3, 3, 2, 2, 2, 2, 4, 4, 4, 4]  # steps 1 -> 3 (+2), 3 -> 2 (-1), 2 -> 4 (+2)
    failure = only_failure(validate([recording(runs=runs)]))
    assert failure.table == "trs"
    assert failure.column == "run_step"
    assert failure.examples == [2.0, -1.0, 2.0]
    assert failure.rows == [4, 8, 12]


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


def test_word_after_the_last_tr():
    # The last TR starts at 36.0 and lasts 2.0 s: a word at 39.0 is 1.0 s past the end.
    failure = only_failure(validate([recording(words=words_frame([0.5, 3.0, 11.0, 25.0, 39.0]))]))
    assert failure.file == "subject_1.mat"
    assert failure.table == "words"
    assert failure.column == "before_end"
    assert failure.examples == [-1.0]
    assert failure.rows == [4]


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


def test_empty_words_table():
    failure = only_failure(validate([recording(words=words_frame([]))]))
    assert failure.file == "subject_1.mat"
    assert failure.table == "words"
    assert failure.column == "rows"
    assert failure.check == "expect_table_row_count_to_be_between"
    assert failure.examples == [0]


def test_duplicated_participant():
    report = validate([recording("1", source="subject_1.mat"), recording("2", source="subject_2.mat"),
                       recording("1", source="subject_1_copy.mat")])
    failure = only_failure(report)
    assert failure.table == "participants"
    assert failure.column == "subject"
    assert "subject_1.mat" in failure.file and "subject_1_copy.mat" in failure.file
    assert failure.examples == ["1", "1"]
    assert failure.rows == [0, 2]


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
    assert summary.startswith(f"validation failed: 1 of {CHECKS_PER_RECORDING + 1} checks")
    assert "data/subject_1.mat" in summary
    assert "trs.dt" in summary
    assert "2.5" in summary
    assert "[6]" in summary  # the offending row


def test_summary_of_nonfinite_value_names_the_row():
    responses = np.ones((16, 5))
    responses[11, 3] = np.nan
    summary = validate([recording(responses=responses)]).summary()
    assert "subject_1.mat" in summary and "nonfinite_values" in summary and "[11]" in summary


def test_raise_for_failure():
    report = validate([recording(words=words_frame([0.5, 3.0, 11.0, 25.0, 39.0]))])
    with pytest.raises(ValidationFailed) as info:
        report.raise_for_failure()
    assert info.value.report == report.summary()
    assert "subject_1.mat" in str(info.value) and "before_end" in str(info.value) and "-1.0" in str(info.value)
