"""Table 1: GLUE dev metrics per task (rows) and encoder (columns), beside the majority baseline.

The long table holds one row per (encoder, task, dev split, seed, metric); the wide table averages seeds
(and gives their SD when there are several), adds the majority-class baseline, and, on real GLUE, the
paper's published values for comparison.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from brainalign.files import atomic_path, write_json
from brainalign.nlu.glue import TASKS
from brainalign.nlu.metrics import METRIC_NAMES

# Schwartz, Toneva & Wehbe (2019), Table 1: BERT-base fine-tuned from the pretrained, the MEG-transfer
# and the jointly brain-tuned encoders (reference section 4).
PAPER = {
    ("CoLA", "matthews"): (57.29, 57.63, 57.97), ("SST-2", "accuracy"): (93.00, 93.23, 91.62),
    ("MRPC", "accuracy"): (83.82, 83.97, 84.04), ("MRPC", "f1"): (88.85, 88.93, 88.91),
    ("STS-B", "pearson"): (89.70, 89.32, 88.60), ("STS-B", "spearman"): (89.37, 88.87, 88.23),
    ("QQP", "accuracy"): (90.72, 91.06, 90.87), ("QQP", "f1"): (87.41, 87.91, 87.69),
    ("MNLI-m", "accuracy"): (83.95, 84.26, 84.08), ("MNLI-mm", "accuracy"): (84.39, 84.65, 85.15),
    ("QNLI", "accuracy"): (89.04, 91.73, 91.49), ("RTE", "accuracy"): (61.01, 65.42, 62.02),
    ("WNLI", "accuracy"): (53.52, 53.80, 51.97)}
PAPER_COLUMNS = ("paper: vanilla BERT", "paper: MEG-transfer", "paper: joint")
COLUMNS = ["encoder", "task", "split", "seed", "metric", "value"]


def row_name(task: str, split: str) -> str:
    """The table's name for a dev split: the task, or MNLI-m / MNLI-mm."""
    return {"dev_matched": "MNLI-m", "dev_mismatched": "MNLI-mm"}.get(split, task)


def long_results(results: list[dict]) -> pd.DataFrame:
    """One row per metric value of each run; ``results`` items have encoder, task, seed and metrics.

    The majority baseline enters as encoder ``majority`` (once per task and dev split: it ignores seeds
    except through the training subsample, so the first seed's is kept).
    """
    rows, majority_seen = [], set()
    for result in results:
        for split, metrics in result["metrics"].items():
            rows += [(result["encoder"], result["task"], split, result["seed"], m, v) for m, v in metrics.items()]
            if (result["task"], split) not in majority_seen:
                majority_seen.add((result["task"], split))
                rows += [("majority", result["task"], split, result["seed"], m, v)
                         for m, v in result["majority"][split].items()]
    return pd.DataFrame(rows, columns=COLUMNS)


def table1(long: pd.DataFrame, paper: bool = False) -> pd.DataFrame:
    """The wide table: index (task, metric) in GLUE's order, a column per encoder (mean over seeds),
    ``<encoder> SD`` columns where an encoder has several seeds, ``majority`` last, then the paper's."""
    if long.empty:
        raise ValueError("no GLUE results to tabulate")
    frame = long.assign(row=[row_name(t, s) for t, s in zip(long["task"], long["split"])])
    means = frame.pivot_table(index=["row", "metric"], columns="encoder", values="value", aggfunc="mean")
    spread = frame.groupby(["row", "metric", "encoder"])["value"].std(ddof=1).unstack("encoder")
    encoders = [e for e in dict.fromkeys(long["encoder"]) if e != "majority"]
    columns = {}
    for encoder in encoders:
        columns[encoder] = means[encoder]
        if encoder in spread and spread[encoder].notna().any():
            columns[f"{encoder} SD"] = spread[encoder]
    columns["majority"] = means["majority"]
    table = pd.DataFrame(columns)
    order = [(row_name(t, s), m) for t in TASKS for s in TASKS[t].dev_splits for m in TASKS[t].metrics]
    table = table.reindex([i for i in order if i in table.index])
    if paper:
        for j, name in enumerate(PAPER_COLUMNS):
            table[name] = [PAPER.get(i, (np.nan,) * 3)[j] for i in table.index]
    table.index = pd.MultiIndex.from_tuples([(r, METRIC_NAMES[m]) for r, m in table.index], names=["task", "metric"])
    return table


def markdown(table: pd.DataFrame, notice: str | None = None, digits: int = 2) -> str:
    """The table as GitHub Markdown, with an optional notice line above it."""
    header = ["task", "metric", *table.columns]
    lines = [f"_{notice}_", ""] if notice else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (task, metric), values in table.iterrows():
        cells = ["" if pd.isna(v) else f"{v:.{digits}f}" for v in values]
        lines.append("| " + " | ".join([task, metric, *cells]) + " |")
    return "\n".join(lines) + "\n"


def dvc_metrics(table: pd.DataFrame, notice: str | None = None) -> dict:
    """``{encoder: {"<task> <metric>": value}}`` for ``metrics/glue.json`` (``dvc metrics diff``)."""
    metrics: dict = {"data": notice or "GLUE dev sets"} if notice else {"data": "GLUE dev sets"}
    for column in table.columns:
        if column.endswith(" SD") or column.startswith("paper:"):
            continue
        metrics[column] = {f"{task} {metric}": round(float(v), 4) for (task, metric), v in table[column].items()
                           if pd.notna(v)}
    return metrics


def write_tables(results: list[dict], long_path: str | os.PathLike, tables_dir: str | os.PathLike,
                 metrics_path: str | os.PathLike, notice: str | None = None) -> str:
    """Write the long results (parquet), Table 1 (``table1.csv``, ``table1.md``) and the DVC metrics, each
    atomically; returns Table 1 as markdown. ``notice`` (the sample's) marks every output as not GLUE."""
    long = long_results(results)
    with atomic_path(long_path) as tmp:
        long.to_parquet(tmp, index=False)
    table = table1(long, paper=notice is None)
    Path(tables_dir).mkdir(parents=True, exist_ok=True)
    with atomic_path(Path(tables_dir) / "table1.csv") as tmp:
        table.to_csv(tmp, float_format="%.4f")
    text = markdown(table, notice)
    with atomic_path(Path(tables_dir) / "table1.md") as tmp:
        tmp.write_text(text)
    write_json(metrics_path, dvc_metrics(table, notice))
    return text
