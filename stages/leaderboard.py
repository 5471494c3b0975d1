"""Stage leaderboard: every benchmark's models joined with next-word prediction.

Writes ``data/benchmarks/leaderboard.parquet`` (long: model x benchmark, plus each model's average),
``reports/leaderboard/`` (``leaderboard.csv`` and ``.md``: models x benchmarks; ``nextword.csv``; the bar chart;
``brain_vs_nextword.{png,csv}``, also a DVC plot) and ``metrics/leaderboard.json`` (scores per model and
benchmark, and the correlation across models of brain score and next-word accuracy).
"""

from pathlib import Path

from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

import mlflow  # noqa: E402
import pandas as pd  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.benchmarks.leaderboard import brain_vs_nextword, leaderboard, wide_leaderboard  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402
from brainalign.files import atomic_path, write_json  # noqa: E402
from brainalign.report.brainscore import leaderboard_figure, scatter_figure  # noqa: E402

SCORES = Path("data/benchmarks/scores")


def main() -> None:
    params = load_params()
    keys = list(params["benchmarks"]["suite"])
    with tracking.stage_run("leaderboard", {"benchmarks": keys, "models": params["benchmarks"]["models"]}):
        nextword = pd.read_parquet("data/benchmarks/nextword.parquet")
        table = leaderboard([pd.read_parquet(SCORES / key / "models.parquet") for key in keys], nextword)
        correlation = brain_vs_nextword(table, "accuracy")
        with atomic_path("data/benchmarks/leaderboard.parquet") as tmp:
            table.to_parquet(tmp, index=False)
        with atomic_path("reports/leaderboard") as tmp:
            tmp.mkdir(parents=True)
            wide = wide_leaderboard(table)
            wide.to_csv(tmp / "leaderboard.csv", index=False)
            (tmp / "leaderboard.md").write_text(wide.to_markdown(index=False, floatfmt=".3f") + "\n")
            nextword.to_csv(tmp / "nextword.csv", index=False)
            leaderboard_figure(table, tmp / "leaderboard.png")
            scatter_figure(table, correlation, tmp / "brain_vs_nextword.png")
        scored = table[table["kind"] != "average"]
        write_json("metrics/leaderboard.json", {
            "brain_vs_nextword": correlation,
            "scores": {model: {row.benchmark: {"raw": row.raw, "normalised": row.normalised,
                                               "committed_layer": int(row.committed_layer)}
                               for row in group.itertuples()} for model, group in scored.groupby("model", sort=False)}})
        mlflow.log_metrics({k: v for k, v in correlation.items() if isinstance(v, float)})
        print(wide.to_string(index=False), flush=True)


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
