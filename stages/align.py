"""Stage align: the model's and the brain's feature profiles compared (the seed's alignment), held out only.

Reads ``data/probing/probes/scores.parquet`` and ``data/probing/frem/scores.parquet``; averages FReM over
participants (a t-test of the held-out runs' gains over the dummy, Benjamini-Hochberg over region x feature); the cosine
similarity of every region's and layer's profile, over all features and per family (``probing.families``).
Writes ``data/probing/scores/`` (``scores.parquet`` tidy, ``probes.parquet``, ``frem.parquet``,
``alignment.parquet``, ``families.csv``, ``summary.json``) and ``metrics/probing.json``.
"""

from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

import mlflow  # noqa: E402
import pandas as pd  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402
from brainalign.files import write_json  # noqa: E402
from brainalign.probing.experiment import probing_plan, probing_tables, write_tables  # noqa: E402


def main() -> None:
    plan = probing_plan(load_params())
    probes = pd.read_parquet("data/probing/probes/scores.parquet")
    frem = pd.read_parquet("data/probing/frem/scores.parquet")
    with tracking.stage_run("align", {"probing": {"alpha_fdr": plan.alpha_fdr, "families": plan.families}}):
        tables = probing_tables(probes, frem, plan)
        write_tables(tables, "data/probing/scores")
        summary = tables.summary
        write_json("metrics/probing.json", {"frem_significant": summary["frem_significant"],
                                            "frem_pairs": summary["frem_pairs"],
                                            "probes_significant": summary["probes_significant"]})
        mlflow.log_metrics({"frem_significant": summary["frem_significant"],
                            **{f"probes_significant.{k}": v for k, v in summary["probes_significant"].items()}})
        best = tables.alignment[tables.alignment["family"] == "all"].pivot_table(
            index="region", columns=["kind", "layer"], values="cosine")
        print(best.round(2).to_string(), flush=True)


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
