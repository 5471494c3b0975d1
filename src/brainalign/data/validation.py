"""great-expectations suites for recordings and prepared splits, whose failures speak of the user's data.

Each recording becomes three small tables (its rows, its words and a one-row summary), each checked by a
suite; one more table across recordings checks that no participant appears twice and that all have the
same channel names. A prepared participant becomes three more (its folds, per-run statistics and a
summary). great-expectations is imported only here, and only when something is validated (the import
costs about 2 s).

The suites check derived columns (an onset's step from the word before, a word's distance from its run's
start); each table says, per checked column, what it stands for in the user's data (:class:`Reported`):
the file and column it derives from, and for each row where the user finds it and what they wrote there.
A failure is reported that way, e.g.::

    raw/1/words.tsv: onset: word onsets increase within a run (expect_column_values_to_be_between):
    1 offending value(s), e.g. row 12 (line 13): 5.5 (after 6.0 on row 11 (line 12))

Rows count a file's entries from 1; a TSV file's line follows (its header is line 1), for other files the
0-based index (a NIfTI image's rows are its volumes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import pandas as pd

from brainalign.data.recording import Recording, assign_runs, channel_difference
from brainalign.errors import ValidationFailed

if TYPE_CHECKING:
    from brainalign.data.prepared import PreparedSubject

log = logging.getLogger(__name__)

SHOWN = 5  # offending values shown per failed check in the summary


@dataclass
class Check:
    """The outcome of one expectation on one table.

    ``table``, ``column``, ``examples`` and ``rows`` (0-based) are the checked table's; ``file``,
    ``user_column``, ``user_rows`` (each offending row as the user finds it in ``file``), ``user_values``
    (what the user wrote there) and ``details`` (one readable item per offending value) are the user's.
    """

    file: str
    table: str
    check: str
    column: str
    success: bool
    unexpected_count: int = 0
    examples: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    description: str = ""
    user_column: str = ""
    user_rows: list = field(default_factory=list)
    user_values: list = field(default_factory=list)
    details: list = field(default_factory=list)


@dataclass
class ValidationReport:
    """Every check of a validation, with a readable summary."""

    checks: list[Check]

    @property
    def success(self) -> bool:
        return all(c.success for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.success]

    def summary(self) -> str:
        """One line for the count, then one per failed check: file, column, check, offending values."""
        if self.success:
            return f"validation passed: {len(self.checks)} checks"
        lines = [f"validation failed: {len(self.failures())} of {len(self.checks)} checks"]
        for c in self.failures():
            found = "; ".join(c.details[:SHOWN])
            if c.rows:
                found = f"{c.unexpected_count} offending value(s), e.g. {found}"
            lines.append(f"  {c.file}: {c.user_column}: {c.description} ({c.check}): {found}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"success": self.success, "checks": [c.__dict__ for c in self.checks]}

    def raise_for_failure(self) -> None:
        if not self.success:
            raise ValidationFailed(self.summary())


@dataclass
class Reported:
    """What a checked column stands for in the user's data.

    Parameters
    ----------
    file : str or sequence of str
        The file its values derive from, or each row's file (a table across participants).
    column : str
        The user's column (or field, or part) they derive from.
    values : sequence, optional
        Each row's value as the user wrote it; None reports the checked value itself.
    row : callable, optional
        Row index -> where the user finds that row ("row 3 (line 4)"); None when the table's rows are not
        the user's (a one-row summary).
    context : callable, optional
        Row index -> why that row's value offends ("after 6.0 on row 2 (line 3)").
    """

    file: str | Sequence[str]
    column: str
    values: Sequence | None = None
    row: Callable[[int], str] | None = None
    context: Callable[[int], str] | None = None


@dataclass
class Table:
    """A frame a suite checks, and what its checked columns stand for (``reported``; a column without an
    entry is reported as ``file``'s ``<name>.<column>``, with rows described by ``row``)."""

    name: str
    frame: pd.DataFrame
    file: str
    reported: dict[str, Reported] = field(default_factory=dict)
    row: Callable[[int], str] | None = None

    def of(self, column: str) -> Reported:
        return self.reported.get(column) or Reported(self.file, f"{self.name}.{column}", row=self.row)


def row_label(file: str, index: int) -> str:
    """Row ``index`` (0-based) of ``file`` as its user counts it."""
    if file.endswith(".tsv"):
        return f"row {index + 1} (line {index + 2})"
    if file.endswith((".nii", ".nii.gz")):
        return f"volume {index + 1} (index {index})"
    return f"row {index + 1} (index {index})"


def _rows_of(file: str) -> Callable[[int], str]:
    return lambda i: row_label(file, i)


def recording_tables(rec: Recording, tr: float | None) -> list[Table]:
    """The tables the suites check, built from one recording.

    ``trs`` has one row per row of the responses (a TR, or a word for MEG); ``words`` one row per word
    entry, with its run and its position relative to that run's first and last row; ``summary_<modality>``
    the counts that must agree. ``tr`` is the expected TR spacing (None for MEG, whose rows are words).
    """
    times_file, words_file, responses_file = rec.files["times"], rec.files["words"], rec.files["responses"]
    named = rec.fields
    on_trs, on_words = _rows_of(times_file), _rows_of(words_file)
    n = len(rec.times)
    dt = np.full(n, np.nan)
    run_step = np.full(n, np.nan)
    if n > 1:
        same_run = rec.runs[1:] == rec.runs[:-1]
        if tr is not None:
            dt[1:] = np.where(same_run, np.diff(rec.times), np.nan)
        run_step[1:] = np.diff(rec.runs)
    bad = ~np.isfinite(rec.responses)
    n_bad = bad.sum(1)
    first_bad = np.argmax(bad, axis=1) if rec.n_channels else np.zeros(n, dtype=np.int64)
    del bad  # as large as the responses; the tables keep only its counts

    def channel(i: int) -> str:
        c = int(first_bad[i])
        name = f" ({rec.channel_names[c]!r})" if rec.channel_names else ""
        return f"column {c + 1}{name}; {n_bad[i]} non-finite value(s) in the row"

    trs = Table("trs", pd.DataFrame({"run": rec.runs, "time": rec.times, "dt": dt, "run_step": run_step,
                                     "time_finite": np.isfinite(rec.times), "nonfinite_values": n_bad}),
                times_file, {
        "run": Reported(times_file, named["runs"], rec.runs, on_trs),
        "run_step": Reported(times_file, named["runs"], rec.runs, on_trs,
                             lambda i: f"after run {rec.runs[i - 1]} on {on_trs(i - 1)}"),
        "time_finite": Reported(times_file, named["times"], rec.times, on_trs),
        "dt": Reported(times_file, named["times"], rec.times, on_trs,
                       lambda i: f"{dt[i]:g} s after {rec.times[i - 1]} on {on_trs(i - 1)}"),
        "nonfinite_values": Reported(responses_file, named["responses"],
                                     rec.responses[np.arange(n), first_bad] if rec.n_channels else None,
                                     _rows_of(responses_file), channel),
    })

    onsets = rec.words["onset"].to_numpy(dtype=np.float64)
    durations = rec.words["duration"].to_numpy(dtype=np.float64)
    explicit_runs = "run" in rec.words.columns
    if explicit_runs:
        word_runs = rec.words["run"].to_numpy(dtype=np.int64)
    else:
        # A word before the first TR belongs to no run; count it in the first, where after_start flags it.
        word_runs = assign_runs(onsets, rec.times, rec.runs)
        if len(rec.times):
            word_runs = np.where(word_runs == 0, rec.runs[np.argmin(rec.times)], word_runs)
    run_start = {r: rec.times[rec.runs == r].min() for r in np.unique(rec.runs)}
    # A run ends one TR after its last TR starts; an MEG run (rows are words) when its last word ends.
    last = tr if rec.modality == "fmri" and tr is not None else float(np.max(durations, initial=0.0))
    run_end = {r: rec.times[rec.runs == r].max() + last for r in np.unique(rec.runs)}
    start = np.array([run_start.get(r, np.nan) for r in word_runs])
    end = np.array([run_end.get(r, np.nan) for r in word_runs])
    step = np.full(len(onsets), np.nan)
    run_step_words = np.zeros(len(onsets), dtype=np.int64)
    # The word each run step is taken from: the one before among the words of runs with TRs. A word of a
    # run without TRs fails the run check; leaving it out of the order keeps one wrong run one failure.
    known = np.flatnonzero(np.isin(word_runs, rec.runs))
    previous = np.full(len(onsets), -1)
    previous[known[1:]] = known[:-1]
    if len(onsets) > 1:
        if explicit_runs:
            # Each run may have its own clock: onsets increase within a run, and runs follow each other.
            step[1:] = np.where(word_runs[1:] == word_runs[:-1], np.diff(onsets), np.nan)
            run_step_words[known[1:]] = np.diff(word_runs[known])
        else:
            step[1:] = np.diff(onsets)  # one clock: onsets increase throughout, across runs too
    text = rec.words["word"].astype(str)
    words = Table("words", pd.DataFrame({
        "word": text,
        "word_present": text.str.strip() != "",
        "run": word_runs,
        # With a clock per run, words come run by run: a run that goes back (or skips) is out of order.
        "run_step": run_step_words,
        "onset_finite": np.isfinite(onsets),
        "duration_finite": np.isfinite(durations),
        "duration": durations,
        "onset": onsets,
        "onset_step": step,
        "after_start": onsets - start,
        "before_end": end - onsets,
    }), words_file, {
        "rows": Reported(words_file, "rows"),
        "word_present": Reported(words_file, named["word"], text.tolist(), on_words),
        # Without a run column a word's run is where its onset falls.
        "run": Reported(words_file, named["word_run"], word_runs, on_words) if explicit_runs
        else Reported(words_file, named["onset"], onsets, on_words, lambda i: f"in run {word_runs[i]}"),
        "run_step": Reported(words_file, named["word_run"], word_runs, on_words,
                             lambda i: f"after run {word_runs[previous[i]]} on {on_words(previous[i])}"),
        "onset_finite": Reported(words_file, named["onset"], onsets, on_words),
        "duration_finite": Reported(words_file, named["duration"], durations, on_words),
        "duration": Reported(words_file, named["duration"], durations, on_words),
        "onset_step": Reported(words_file, named["onset"], onsets, on_words,
                               lambda i: f"after {onsets[i - 1]} on {on_words(i - 1)}"),
        "after_start": Reported(words_file, named["onset"], onsets, on_words,
                                lambda i: f"before run {word_runs[i]}'s first TR, at {start[i]} s in {times_file}"),
        "before_end": Reported(words_file, named["onset"], onsets, on_words,
                               lambda i: f"run {word_runs[i]} ends at {end[i]} s"),
    })

    n_coords = rec.n_channels if rec.coords is None else rec.coords.shape[0]
    summary = {"n_rows_responses": [rec.responses.shape[0]], "n_rows_time": [n], "n_channels": [rec.n_channels],
               "n_coords": [n_coords], "n_words": [len(rec.words)]}
    reported = {
        "n_rows_responses": Reported(responses_file, "rows", [rec.responses.shape[0]],
                                     context=lambda i: f"rows, {n} on {times_file}"),
        "n_channels": Reported(responses_file, "columns", [rec.n_channels],
                               context=lambda i: f"channels, {n_coords} voxel coordinates"),
    }
    if rec.modality == "meg":
        components = int(rec.extra.get("n_sensors", 0)) * int(rec.extra.get("n_bins", 0))
        summary["n_rows_words"] = [len(rec.words)]
        summary["n_sensor_components"] = [components]
        reported["n_rows_responses"] = Reported(responses_file, "rows", [rec.responses.shape[0]],
                                                context=lambda i: f"rows, {len(rec.words)} words on {words_file}")
        reported["n_channels"] = Reported(responses_file, "columns", [rec.n_channels],
                                          context=lambda i: f"channels, {components} sensors x time bins")
    return [trs, words, Table(f"summary_{rec.modality}", pd.DataFrame(summary), rec.source, reported)]


def participants_table(recordings: list[Recording]) -> Table:
    """One row per recording: its id, and whether its channel names are the first recording's."""
    first = recordings[0] if recordings else None
    differences = [channel_difference(r.channel_names, first.channel_names) for r in recordings]

    def differing(i: int) -> str:
        position, _, theirs = differences[i]
        return f"channel {position}; participant {first.subject} ({first.files['responses']}) has {_shown(theirs)}"

    frame = pd.DataFrame({"subject": [r.subject for r in recordings],
                          "channels_agree": [d is None for d in differences]})
    return Table("participants", frame, ", ".join(r.source for r in recordings), {
        "subject": Reported([r.source for r in recordings], "participant", row=lambda i: recordings[i].source),
        "channels_agree": Reported([r.files["responses"] for r in recordings], "channel names",
                                   [None if d is None else d[1] for d in differences],
                                   lambda i: f"participant {recordings[i].subject}", differing),
    })


def prepared_tables(prepared: "PreparedSubject", file: str) -> list[Table]:
    """The tables the prepared-split suite checks: per fold, per run and a summary, all of ``file``."""
    runs = prepared.examples["run"].to_numpy()
    folds = pd.DataFrame({
        "fold": [f.index for f in prepared.folds],
        "heldout_run": [f.heldout_run for f in prepared.folds],
        "test_runs": [len(np.unique(runs[f.test])) for f in prepared.folds],
        "test_is_heldout": [bool(np.all(runs[f.test] == f.heldout_run)) for f in prepared.folds],
        "train_has_heldout": [bool(np.any(runs[f.train] == f.heldout_run)) for f in prepared.folds],
        "overlap": [len(np.intersect1d(f.train, f.test)) for f in prepared.folds],
        "covered": [len(np.union1d(f.train, f.test)) for f in prepared.folds],
    })
    stats = []
    for run in np.unique(runs):
        block = prepared.responses[runs == run].astype(np.float64)
        sd = block.std(0)
        live = sd > 0  # constant channels were set to 0 on purpose
        stats.append({"run": int(run), "max_abs_mean": float(np.abs(block.mean(0)).max(initial=0.0)),
                      "max_sd_error": float(np.abs(sd[live] - 1.0).max(initial=0.0)),
                      "nonfinite_values": int((~np.isfinite(block)).sum())})
    stats = pd.DataFrame(stats)
    summary = pd.DataFrame({"n_examples": [len(prepared.examples)], "n_rows_responses": [prepared.responses.shape[0]],
                            "n_examples_covered": [int(folds["covered"].min()) if len(folds) else 0],
                            "n_folds": [len(prepared.folds)], "n_runs": [len(np.unique(runs))]})
    return [Table("prepared_folds", folds, file, row=lambda i: f"fold {folds['fold'].iat[i]}"),
            Table("prepared_runs", stats, file, row=lambda i: f"run {stats['run'].iat[i]}"),
            Table("prepared_summary", summary, file)]


def _suites(gx, runs: list[int], tr: float | None, tr_tolerance: float) -> dict[str, list]:
    e = gx.expectations
    return {
        "trs": [
            e.ExpectColumnValuesToBeInSet(column="run", value_set=runs,
                                          description=f"each row's run is one of the runs {runs}"),
            e.ExpectColumnDistinctValuesToContainSet(column="run", value_set=runs,
                                                     description=f"every run of {runs} has rows"),
            # Runs are contiguous blocks in order: the run label never goes back or skips.
            e.ExpectColumnValuesToBeInSet(column="run_step", value_set=[0.0, 1.0],
                                          description="runs come in order, one block each"),
            e.ExpectColumnValuesToBeBetween(column="nonfinite_values", max_value=0,
                                            description="responses are finite"),
            e.ExpectColumnValuesToBeInSet(column="time_finite", value_set=[True], description="onsets are finite"),
        ] + ([e.ExpectColumnValuesToBeBetween(column="dt", min_value=tr - tr_tolerance, max_value=tr + tr_tolerance,
                                              description=f"TRs of a run are {tr:g} s apart (+- {tr_tolerance:g} s)")]
             if tr is not None else []),
        "words": [
            e.ExpectTableRowCountToBeBetween(min_value=1, description="there is at least one word"),
            e.ExpectColumnValuesToBeInSet(column="word_present", value_set=[True], description="no word is empty"),
            e.ExpectColumnValuesToBeInSet(column="run", value_set=runs,
                                          description=f"each word's run is one of the runs {runs}"),
            e.ExpectColumnValuesToBeInSet(column="run_step", value_set=[0, 1],
                                          description="words come run by run, in order"),
            e.ExpectColumnValuesToBeInSet(column="onset_finite", value_set=[True],
                                          description="word onsets are finite"),
            e.ExpectColumnValuesToBeInSet(column="duration_finite", value_set=[True],
                                          description="word durations are finite"),
            e.ExpectColumnValuesToBeBetween(column="duration", min_value=0.0,
                                            description="no word duration is negative"),
            e.ExpectColumnValuesToBeBetween(column="onset_step", min_value=0.0, strict_min=True,
                                            description="word onsets increase within a run"),
            e.ExpectColumnValuesToBeBetween(column="after_start", min_value=0.0,
                                            description="no word starts before its run's first TR"),
            e.ExpectColumnValuesToBeBetween(column="before_end", min_value=0.0, strict_min=True,
                                            description="every word starts before its run ends"),
        ],
        "summary_fmri": [
            e.ExpectColumnPairValuesToBeEqual(column_A="n_rows_responses", column_B="n_rows_time",
                                              description="the responses have one row per TR"),
            e.ExpectColumnPairValuesToBeEqual(column_A="n_channels", column_B="n_coords",
                                              description="every channel has voxel coordinates"),
        ],
        "summary_meg": [
            e.ExpectColumnPairValuesToBeEqual(column_A="n_rows_responses", column_B="n_rows_words",
                                              description="the responses have one row per word"),
            e.ExpectColumnPairValuesToBeEqual(column_A="n_channels", column_B="n_sensor_components",
                                              description="the channels are the sensors x time bins"),
        ],
        "participants": [
            e.ExpectColumnValuesToBeUnique(column="subject", description="no participant appears twice"),
            e.ExpectColumnValuesToBeInSet(column="channels_agree", value_set=[True],
                                          description="every participant has the same channel names"),
        ],
        "prepared_folds": [
            e.ExpectColumnValuesToBeUnique(column="heldout_run", description="each run is held out once"),
            e.ExpectColumnValuesToBeInSet(column="test_runs", value_set=[1], description="a fold tests one run"),
            e.ExpectColumnValuesToBeInSet(column="test_is_heldout", value_set=[True],
                                          description="a fold tests its held-out run"),
            e.ExpectColumnValuesToBeInSet(column="train_has_heldout", value_set=[False],
                                          description="training never sees the held-out run"),
            e.ExpectColumnValuesToBeBetween(column="overlap", max_value=0,
                                            description="training and test examples do not overlap"),
        ],
        # Statistics come from all of a run's kept TRs and examples are the TRs with a full window, so
        # the examples are only close to mean 0 and SD 1; the check catches data left unnormalised.
        "prepared_runs": [
            e.ExpectColumnValuesToBeBetween(column="max_abs_mean", max_value=0.5,
                                            description="every channel has mean about 0 within a run"),
            e.ExpectColumnValuesToBeBetween(column="max_sd_error", max_value=0.5,
                                            description="every channel has SD about 1 within a run"),
            e.ExpectColumnValuesToBeBetween(column="nonfinite_values", max_value=0,
                                            description="responses are finite"),
        ],
        "prepared_summary": [
            e.ExpectColumnPairValuesToBeEqual(column_A="n_examples", column_B="n_rows_responses",
                                              description="one row of responses per example"),
            e.ExpectColumnPairValuesToBeEqual(column_A="n_examples", column_B="n_examples_covered",
                                              description="every fold covers every example"),
            e.ExpectColumnPairValuesToBeEqual(column_A="n_folds", column_B="n_runs",
                                              description="one fold per run"),
        ],
    }


def _run_suites(tables: list[Table], suites_of) -> ValidationReport:
    """Validate each table with the suite of its name."""
    quiet = logging.getLogger("great_expectations")
    quiet.setLevel(logging.WARNING)  # before the import, which logs as it loads, and after, which resets it
    import great_expectations as gx

    quiet.setLevel(logging.WARNING)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("great_expectations."):
            logging.getLogger(name).setLevel(logging.NOTSET)

    context = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # older/newer layouts of the config types: progress bars only
        pass
    source = context.data_sources.add_pandas("recordings")
    batches = {name: source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
               for name in {t.name for t in tables}}
    checks: list[Check] = []
    for table in tables:
        suite = gx.ExpectationSuite(name=f"{table.name}-{len(checks)}", expectations=suites_of(gx)[table.name])
        result = batches[table.name].get_batch(batch_parameters={"dataframe": table.frame}).validate(
            suite, result_format="SUMMARY")
        for r in result.results:
            checks.append(_check(table, r))
    return ValidationReport(checks)


def _check(table: Table, r) -> Check:
    """One expectation's result, in the table's terms and (through ``table.of``) in the user's."""
    config = r.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column") or ",".join(str(kwargs.get(c)) for c in ("column_A", "column_B")
                                              if kwargs.get(c)) or "rows"
    reported = table.of(kwargs.get("column") or kwargs.get("column_A") or "rows")
    # Column-map checks list offending values and their rows; set checks list what is missing; table
    # checks only have the observed value.
    missing = r.result.get("partial_missing_list") or []
    examples = r.result.get("partial_unexpected_list") or missing
    if not examples and not r.success and r.result.get("observed_value") is not None:
        examples = [r.result["observed_value"]]
    rows = [int(i) for i in (r.result.get("partial_unexpected_index_list") or [])[:20]]
    files = reported.file
    if not isinstance(files, str):
        files = ", ".join(dict.fromkeys(files[i] for i in rows) if rows else dict.fromkeys(files))
    user_rows, user_values, details = [], [], []
    if rows:
        for i, example in zip(rows, examples):
            value = example if reported.values is None else reported.values[i]
            where = reported.row(i) if reported.row else None
            note = reported.context(i) if reported.context else ""
            user_rows.append(where)
            user_values.append(_plain(value))
            details.append((f"{where}: " if where else "") + _shown(value) + (f" ({note})" if note else ""))
    elif not r.success:
        user_values = [_plain(x) for x in examples[:20]]
        details = [("missing " if missing else "found ") + ", ".join(_shown(x) for x in examples[:20])]
    return Check(file=files, table=table.name, check=config.type, column=column, success=bool(r.success),
                 unexpected_count=int(r.result.get("unexpected_count") or 0),
                 examples=[_plain(x) for x in examples[:20]], rows=rows, description=config.description or "",
                 user_column=reported.column, user_rows=user_rows, user_values=user_values, details=details)


def validate_recordings(recordings: list[Recording], runs: list[int], tr: float | None = 2.0,
                        tr_tolerance: float = 0.01) -> ValidationReport:
    """Run the suites on every recording and across recordings (ids unique, channel names shared).

    Parameters
    ----------
    recordings : list of Recording
    runs : list of int
        The runs every participant must have, and the only ones allowed.
    tr : float or None
        Expected spacing of TRs within a run, seconds (fMRI); None skips the check (MEG rows are words).
    tr_tolerance : float
        Allowed deviation from ``tr``, seconds.
    """
    tables = [table for rec in recordings
              for table in recording_tables(rec, tr if rec.modality == "fmri" else None)]
    tables.append(participants_table(recordings))
    return _run_suites(tables, lambda gx: _suites(gx, runs, tr, tr_tolerance))


def validate_prepared(subjects: list["PreparedSubject"], where: str) -> ValidationReport:
    """Check prepared splits: folds hold out exactly one whole run each and partition the examples,
    training never sees the held-out run, and every run's responses are finite and normalised."""
    tables = [table for p in subjects for table in prepared_tables(p, f"{where}/{p.subject}")]
    return _run_suites(tables, lambda gx: _suites(gx, [], None, 0.0))


def _plain(value: object) -> object:
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def _shown(value: object) -> str:
    """A value as the user wrote it: text quoted (so that an empty word shows), numbers plain."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return "none"
    return repr(value) if isinstance(value, str) else str(value)
