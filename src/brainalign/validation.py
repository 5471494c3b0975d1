"""great-expectations suites for recordings: a failed check names the file, the check and the values.

Each recording becomes three small tables (its TRs, its words and a one-row summary), each checked by a
suite; one more table across recordings checks that no participant appears twice. great-expectations is
imported only here, and only when something is validated (the import costs about 2 s).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from brainalign.errors import ValidationFailed
from brainalign.recordings.base import Recording

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


def recording_tables(rec: Recording, tr: float) -> dict[str, pd.DataFrame]:
    """The tables the suites check, built from one recording."""
    dt = np.full(len(rec.times), np.nan)
    run_step = np.full(len(rec.times), np.nan)
    if len(rec.times) > 1:
        same_run = rec.runs[1:] == rec.runs[:-1]
        dt[1:] = np.where(same_run, np.diff(rec.times), np.nan)
        run_step[1:] = np.diff(rec.runs)
    trs = pd.DataFrame({"run": rec.runs, "time": rec.times, "dt": dt, "run_step": run_step,
                        "nonfinite_values": (~np.isfinite(rec.responses)).sum(1)})
    onsets = rec.words["onset"].to_numpy(dtype=np.float64)
    start = rec.times.min() if len(rec.times) else 0.0
    end = rec.times.max() + tr if len(rec.times) else 0.0
    words = pd.DataFrame({
        "word": rec.words["word"].astype(str),
        "onset": onsets,
        "onset_step": np.concatenate([[np.nan], np.diff(onsets)]) if len(onsets) else onsets,
        "after_start": onsets - start,
        "before_end": end - onsets,
    })
    summary = pd.DataFrame({
        "n_rows_responses": [rec.responses.shape[0]], "n_rows_time": [len(rec.times)],
        "n_channels": [rec.n_channels],
        "n_coords": [rec.n_channels if rec.coords is None else rec.coords.shape[0]],
        "n_words": [len(rec.words)],
    })
    return {"trs": trs, "words": words, "summary": summary}


def _suites(gx, runs: list[int], tr: float, tr_tolerance: float) -> dict[str, list]:
    e = gx.expectations
    return {
        "trs": [
            e.ExpectColumnValuesToBeInSet(column="run", value_set=runs),
            e.ExpectColumnDistinctValuesToContainSet(column="run", value_set=runs),
            e.ExpectColumnValuesToBeInSet(column="run_step", value_set=[0.0, 1.0]),
            e.ExpectColumnValuesToBeBetween(column="dt", min_value=tr - tr_tolerance, max_value=tr + tr_tolerance),
            e.ExpectColumnValuesToBeBetween(column="nonfinite_values", max_value=0),
        ],
        "words": [
            e.ExpectTableRowCountToBeBetween(min_value=1),
            e.ExpectColumnValuesToBeBetween(column="onset_step", min_value=0.0, strict_min=True),
            e.ExpectColumnValuesToBeBetween(column="after_start", min_value=0.0),
            e.ExpectColumnValuesToBeBetween(column="before_end", min_value=0.0, strict_min=True),
        ],
        "summary": [
            e.ExpectColumnPairValuesToBeEqual(column_A="n_rows_responses", column_B="n_rows_time"),
            e.ExpectColumnPairValuesToBeEqual(column_A="n_channels", column_B="n_coords"),
        ],
        "participants": [e.ExpectColumnValuesToBeUnique(column="subject")],
    }


def validate_recordings(recordings: list[Recording], runs: list[int], tr: float = 2.0,
                        tr_tolerance: float = 0.01) -> ValidationReport:
    """Run the suites on every recording and across recordings.

    Parameters
    ----------
    recordings : list of Recording
    runs : list of int
        The runs every participant must have, and the only ones allowed.
    tr : float
        Expected spacing of TRs within a run, seconds.
    tr_tolerance : float
        Allowed deviation from ``tr``, seconds.
    """
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
               for name in _suites(gx, runs, tr, tr_tolerance)}
    checks: list[Check] = []

    def run(table: str, frame: pd.DataFrame, file: str) -> None:
        suite = gx.ExpectationSuite(name=f"{table}-{len(checks)}",
                                    expectations=_suites(gx, runs, tr, tr_tolerance)[table])
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

    for rec in recordings:
        for table, frame in recording_tables(rec, tr).items():
            run(table, frame, rec.source)
    run("participants", pd.DataFrame({"subject": [r.subject for r in recordings]}),
        ", ".join(r.source for r in recordings))
    return ValidationReport(checks)


def _plain(value: object) -> object:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
