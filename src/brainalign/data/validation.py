"""great-expectations suites for recordings and prepared splits: a failure names the file, check and values.

Each recording becomes three small tables (its rows, its words and a one-row summary), each checked by a
suite; one more table across recordings checks that no participant appears twice. A prepared participant
becomes three more (its folds, per-run statistics and a summary). great-expectations is imported only
here, and only when something is validated (the import costs about 2 s).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from brainalign.data.recording import Recording, assign_runs
from brainalign.errors import ValidationFailed

if TYPE_CHECKING:
    from brainalign.data.prepared import PreparedSubject

log = logging.getLogger(__name__)


@dataclass
class Check:
    """The outcome of one expectation on one file."""

    file: str
    table: str
    check: str
    column: str
    success: bool
    unexpected_count: int = 0
    examples: list = field(default_factory=list)
    rows: list = field(default_factory=list)


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
        if self.success:
            return f"validation passed: {len(self.checks)} checks"
        lines = [f"validation failed: {len(self.failures())} of {len(self.checks)} checks"]
        for c in self.failures():
            where = f" at rows {c.rows[:5]}" if c.rows else ""
            lines.append(f"  {c.file}: {c.table}.{c.column}: {c.check}: {c.unexpected_count} offending value(s), "
                         f"e.g. {c.examples[:5]}{where}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"success": self.success, "checks": [c.__dict__ for c in self.checks]}

    def raise_for_failure(self) -> None:
        if not self.success:
            raise ValidationFailed(self.summary())


def recording_tables(rec: Recording, tr: float | None) -> dict[str, pd.DataFrame]:
    """The tables the suites check, built from one recording.

    ``trs`` has one row per row of the responses (a TR, or a word for MEG); ``words`` one row per word
    entry, with its run and its position relative to that run's first and last row; ``summary`` the
    counts that must agree. ``tr`` is the expected TR spacing (None for MEG, whose rows are words).
    """
    n = len(rec.times)
    dt = np.full(n, np.nan)
    run_step = np.full(n, np.nan)
    if n > 1:
        same_run = rec.runs[1:] == rec.runs[:-1]
        if tr is not None:
            dt[1:] = np.where(same_run, np.diff(rec.times), np.nan)
        run_step[1:] = np.diff(rec.runs)
    trs = pd.DataFrame({"run": rec.runs, "time": rec.times, "dt": dt, "run_step": run_step,
                        "time_finite": np.isfinite(rec.times),
                        "nonfinite_values": (~np.isfinite(rec.responses)).sum(1)})
    onsets = rec.words["onset"].to_numpy(dtype=np.float64)
    if "run" in rec.words.columns:
        word_runs = rec.words["run"].to_numpy(dtype=np.int64)
    else:
        # A word before the first TR belongs to no run; count it in the first, where after_start flags it.
        word_runs = assign_runs(onsets, rec.times, rec.runs)
        if len(rec.times):
            word_runs = np.where(word_runs == 0, rec.runs[np.argmin(rec.times)], word_runs)
    run_start = {r: rec.times[rec.runs == r].min() for r in np.unique(rec.runs)}
    # A run ends one TR after its last TR starts; an MEG run (rows are words) when its last word ends.
    last = tr if rec.modality == "fmri" and tr is not None else float(np.max(rec.words["duration"].to_numpy(dtype=np.float64), initial=0.0))
    run_end = {r: rec.times[rec.runs == r].max() + last for r in np.unique(rec.runs)}
    start = np.array([run_start.get(r, np.nan) for r in word_runs])
    end = np.array([run_end.get(r, np.nan) for r in word_runs])
    explicit_runs = "run" in rec.words.columns
    step = np.full(len(onsets), np.nan)
    run_step_words = np.zeros(len(onsets), dtype=np.int64)
    if len(onsets) > 1:
        if explicit_runs:
            # Each run may have its own clock: onsets increase within a run, and runs follow each other.
            step[1:] = np.where(word_runs[1:] == word_runs[:-1], np.diff(onsets), np.nan)
            run_step_words[1:] = np.diff(word_runs)
        else:
            step[1:] = np.diff(onsets)  # one clock: onsets increase throughout, across runs too
    timing = rec.words[["onset", "duration"]].to_numpy(dtype=np.float64)
    words = pd.DataFrame({
        "word": rec.words["word"].astype(str),
        "run": word_runs,
        # With a clock per run, words come run by run: a run that goes back (or skips) is out of order.
        "run_step": run_step_words,
        "timing_finite": np.isfinite(timing).all(1),
        "onset": onsets,
        "onset_step": step,
        "after_start": onsets - start,
        "before_end": end - onsets,
    })
    summary = {"n_rows_responses": [rec.responses.shape[0]], "n_rows_time": [n], "n_channels": [rec.n_channels],
               "n_coords": [rec.n_channels if rec.coords is None else rec.coords.shape[0]],
               "n_words": [len(rec.words)]}
    if rec.modality == "meg":
        summary["n_rows_words"] = [len(rec.words)]
        summary["n_sensor_components"] = [int(rec.extra.get("n_sensors", 0)) * int(rec.extra.get("n_bins", 0))]
    return {"trs": trs, "words": words, f"summary_{rec.modality}": pd.DataFrame(summary)}


def prepared_tables(prepared: "PreparedSubject") -> dict[str, pd.DataFrame]:
    """The tables the prepared-split suite checks: per example, per fold, per run x channel and a summary."""
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
    summary = pd.DataFrame({"n_examples": [len(prepared.examples)], "n_rows_responses": [prepared.responses.shape[0]],
                            "n_examples_covered": [int(folds["covered"].min()) if len(folds) else 0],
                            "n_folds": [len(prepared.folds)], "n_runs": [len(np.unique(runs))]})
    return {"prepared_folds": folds, "prepared_runs": pd.DataFrame(stats), "prepared_summary": summary}


def _suites(gx, runs: list[int], tr: float | None, tr_tolerance: float) -> dict[str, list]:
    e = gx.expectations
    return {
        "trs": [
            e.ExpectColumnValuesToBeInSet(column="run", value_set=runs),
            e.ExpectColumnDistinctValuesToContainSet(column="run", value_set=runs),
            # Runs are contiguous blocks in order: the run label never goes back or skips.
            e.ExpectColumnValuesToBeInSet(column="run_step", value_set=[0.0, 1.0]),
            e.ExpectColumnValuesToBeBetween(column="nonfinite_values", max_value=0),
            e.ExpectColumnValuesToBeInSet(column="time_finite", value_set=[True]),
        ] + ([e.ExpectColumnValuesToBeBetween(column="dt", min_value=tr - tr_tolerance, max_value=tr + tr_tolerance)]
             if tr is not None else []),
        "words": [
            e.ExpectTableRowCountToBeBetween(min_value=1),
            e.ExpectColumnValuesToBeInSet(column="run", value_set=runs),
            e.ExpectColumnValuesToBeInSet(column="run_step", value_set=[0, 1]),
            e.ExpectColumnValuesToBeInSet(column="timing_finite", value_set=[True]),
            e.ExpectColumnValuesToBeBetween(column="onset_step", min_value=0.0, strict_min=True),
            e.ExpectColumnValuesToBeBetween(column="after_start", min_value=0.0),
            e.ExpectColumnValuesToBeBetween(column="before_end", min_value=0.0, strict_min=True),
        ],
        "summary_fmri": [
            e.ExpectColumnPairValuesToBeEqual(column_A="n_rows_responses", column_B="n_rows_time"),
            e.ExpectColumnPairValuesToBeEqual(column_A="n_channels", column_B="n_coords"),
        ],
        "summary_meg": [
            e.ExpectColumnPairValuesToBeEqual(column_A="n_rows_responses", column_B="n_rows_words"),
            e.ExpectColumnPairValuesToBeEqual(column_A="n_channels", column_B="n_sensor_components"),
        ],
        "participants": [e.ExpectColumnValuesToBeUnique(column="subject")],
        "prepared_folds": [
            e.ExpectColumnValuesToBeUnique(column="heldout_run"),
            e.ExpectColumnValuesToBeInSet(column="test_runs", value_set=[1]),
            e.ExpectColumnValuesToBeInSet(column="test_is_heldout", value_set=[True]),
            e.ExpectColumnValuesToBeInSet(column="train_has_heldout", value_set=[False]),
            e.ExpectColumnValuesToBeBetween(column="overlap", max_value=0),
        ],
        # Statistics come from all of a run's kept TRs and examples are the TRs with a full window, so
        # the examples are only close to mean 0 and SD 1; the check catches data left unnormalised.
        "prepared_runs": [
            e.ExpectColumnValuesToBeBetween(column="max_abs_mean", max_value=0.5),
            e.ExpectColumnValuesToBeBetween(column="max_sd_error", max_value=0.5),
            e.ExpectColumnValuesToBeBetween(column="nonfinite_values", max_value=0),
        ],
        "prepared_summary": [
            e.ExpectColumnPairValuesToBeEqual(column_A="n_examples", column_B="n_rows_responses"),
            e.ExpectColumnPairValuesToBeEqual(column_A="n_examples", column_B="n_examples_covered"),
            e.ExpectColumnPairValuesToBeEqual(column_A="n_folds", column_B="n_runs"),
        ],
    }


def _run_suites(tables: list[tuple[str, pd.DataFrame, str]], suites_of) -> ValidationReport:
    """Validate each (table name, frame, file) with the suite of that name."""
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
               for name in {t for t, _, _ in tables}}
    checks: list[Check] = []
    for table, frame, file in tables:
        suite = gx.ExpectationSuite(name=f"{table}-{len(checks)}", expectations=suites_of(gx)[table])
        result = batches[table].get_batch(batch_parameters={"dataframe": frame}).validate(
            suite, result_format="SUMMARY")
        for r in result.results:
            kwargs = r.expectation_config.kwargs
            column = kwargs.get("column") or ",".join(str(kwargs.get(c)) for c in ("column_A", "column_B")
                                                       if kwargs.get(c)) or "rows"
            # Column-map checks list offending values; set checks list what is missing; table checks
            # only have the observed value.
            examples = (r.result.get("partial_unexpected_list") or r.result.get("partial_missing_list") or [])
            if not examples and not r.success and r.result.get("observed_value") is not None:
                examples = [r.result["observed_value"]]
            checks.append(Check(file=file, table=table, check=r.expectation_config.type, column=column,
                                success=bool(r.success), unexpected_count=int(r.result.get("unexpected_count") or 0),
                                examples=[_plain(x) for x in examples[:20]],
                                rows=[_plain(x) for x in (r.result.get("partial_unexpected_index_list") or [])[:20]]))
    return ValidationReport(checks)


def validate_recordings(recordings: list[Recording], runs: list[int], tr: float | None = 2.0,
                        tr_tolerance: float = 0.01) -> ValidationReport:
    """Run the suites on every recording and across recordings.

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
    tables = []
    for rec in recordings:
        spacing = tr if rec.modality == "fmri" else None
        for table, frame in recording_tables(rec, spacing).items():
            tables.append((table, frame, rec.source))
    tables.append(("participants", pd.DataFrame({"subject": [r.subject for r in recordings]}),
                   ", ".join(r.source for r in recordings)))
    return _run_suites(tables, lambda gx: _suites(gx, runs, tr, tr_tolerance))


def validate_prepared(subjects: list["PreparedSubject"], where: str) -> ValidationReport:
    """Check prepared splits: folds hold out exactly one whole run each and partition the examples,
    training never sees the held-out run, and every run's responses are finite and normalised."""
    tables = [(table, frame, f"{where}/{p.subject}") for p in subjects for table, frame in prepared_tables(p).items()]
    return _run_suites(tables, lambda gx: _suites(gx, [], None, 0.0))


def _plain(value: object) -> object:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
