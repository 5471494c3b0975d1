"""Stage validate: great-expectations checks of the raw recordings; a failure stops the pipeline."""

import sys
from pathlib import Path

from brainalign.offline import go_offline

go_offline(Path.cwd())

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.cli import guarded  # noqa: E402
from brainalign.files import write_json  # noqa: E402
from brainalign.params import DATASET_KEYS, load_params, section  # noqa: E402
from brainalign.recordings import read_dataset  # noqa: E402
from brainalign.validation import validate_recordings  # noqa: E402

REPORT = "data/validation/raw.json"


def main() -> None:
    params = load_params()
    dataset = section(params, "dataset", DATASET_KEYS)
    settings = section(params, "validate", ["tr_tolerance"])
    with tracking.stage_run("validate", {"dataset": dataset, "validate": settings}):
        recordings = read_dataset(dataset["source"], dataset["path"])
        report = validate_recordings(recordings, runs=list(dataset["runs"]), tr=float(dataset["tr"]),
                                     tr_tolerance=float(settings["tr_tolerance"]))
        mlflow.log_dict(report.to_dict(), "validation.json")
        mlflow.log_metrics({"validation_success": float(report.success),
                            "failed_checks": float(len(report.failures()))})
        print(report.summary(), file=sys.stderr if not report.success else sys.stdout)
        report.raise_for_failure()
        write_json(REPORT, report.to_dict())


if __name__ == "__main__":
    raise SystemExit(guarded(main))
