"""A benchmark's results per model, and the leaderboard: models x benchmarks, raw and ceiling-normalised.

:func:`benchmark_summary` turns a benchmark stage's finished tasks into one row per model (committed layer,
raw score, ceiling, normalised score, the optimistic best test layer); :func:`leaderboard` joins every
benchmark's rows with the next-word results into one long table; :func:`brain_vs_nextword` correlates
the models' mean brain score with their next-word performance.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from brainalign.metrics.ceiling import normalise

SCORED_BY = {"neural": ("masked", "causal", "static", "random"), "reading_times": ("causal", "unigram")}


def scores_benchmark(family: str, kind: str) -> bool:
    """Whether a model of ``family`` is scored on a benchmark of ``kind`` (reading times need a surprisal:
    causal language models and the unigram baseline)."""
    return family in SCORED_BY[kind]


def benchmark_summary(benchmark, key: str, tasks: Sequence, results: Sequence[dict], ceiling: float | None,
                      truth: dict | None, skipped: dict[str, str], labels: dict[str, str]
                      ) -> tuple[dict, pd.DataFrame]:
    """One row per model and the benchmark's summary (for ``summary.json`` and the metrics file)."""
    rows = []
    for task, result in zip(tasks, results):
        raw = result["raw"]
        rows.append({
            "benchmark": benchmark.name, "key": key, "kind": benchmark.kind, "model": task.model, "label": labels.get(task.model, task.model),
            "committed_layer": int(result["committed_layer"]), "raw": None if raw is None else float(raw),
            "ceiling": ceiling,
            "normalised": None if raw is None or not ceiling else float(normalise(raw, ceiling)),
            "best_test_layer": int(result["best_test_layer"]),
            "best_test_raw": None if result["best_test_raw"] is None else float(result["best_test_raw"]),
            "n_layers": int(result["n_layers"]),
        })
    table = pd.DataFrame(rows, columns=["benchmark", "key", "kind", "model", "label", "committed_layer", "raw", "ceiling",
                                        "normalised", "best_test_layer", "best_test_raw", "n_layers"])
    summary = {"benchmark": benchmark.name, "key": key, "kind": benchmark.kind, "ceiling": ceiling,
               "ceiling_kind": benchmark.ceiling, "published": benchmark.published, "models": rows,
               "not_scored": {m: f"a {family} model has no {'surprisal' if benchmark.kind == 'reading_times' else 'layers'}"
                              for m, family in skipped.items()},
               "truth": truth}
    return summary, table


def leaderboard(benchmarks: Sequence[pd.DataFrame], nextword: pd.DataFrame | None = None) -> pd.DataFrame:
    """Models x benchmarks in long form, with each model's mean normalised score over the benchmarks it was
    scored on (``benchmark == "average"``) and over the neural ones alone (``"neural average"``: the brain
    score set against next-word prediction), and its next-word results as columns."""
    table = pd.concat([b for b in benchmarks if len(b)], ignore_index=True) if benchmarks else pd.DataFrame()
    if table.empty:
        return table
    averages = []
    for name, rows in (("average", table), ("neural average", table[table["kind"] == "neural"])):
        if len(rows):
            averages.append(rows.groupby(["model", "label"], sort=False)
                            .agg(raw=("raw", "mean"), normalised=("normalised", "mean"),
                                 n_benchmarks=("benchmark", "nunique"))
                            .reset_index().assign(benchmark=name, key=name, kind="average"))
    table = pd.concat([table, *averages], ignore_index=True)
    if nextword is not None and len(nextword):
        measures = [c for c in ("accuracy", "perplexity", "pseudo_perplexity") if c in nextword.columns]
        table = table.merge(nextword[["model", *measures]], on="model", how="left")
    return table


def brain_vs_nextword(table: pd.DataFrame, measure: str = "accuracy") -> dict:
    """Across models, the Pearson and Spearman correlations of the neural brain score (mean normalised over the
    neural benchmarks) with a next-word measure (models without either are left out); None where fewer than 3
    models have both."""
    average = table[table["benchmark"] == "neural average"].dropna(subset=["normalised", measure]) \
        if measure in table.columns else pd.DataFrame()
    if len(average) < 3:
        return {"measure": measure, "n_models": int(len(average)), "pearson_r": None, "pearson_p": None,
                "spearman_rho": None, "spearman_p": None}
    x, y = average[measure].to_numpy(float), average["normalised"].to_numpy(float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"measure": measure, "n_models": int(len(average)), "pearson_r": None, "pearson_p": None,
                "spearman_rho": None, "spearman_p": None}
    pearson, spearman = stats.pearsonr(x, y), stats.spearmanr(x, y)
    return {"measure": measure, "n_models": int(len(average)), "pearson_r": float(pearson.statistic),
            "pearson_p": float(pearson.pvalue), "spearman_rho": float(spearman.statistic),
            "spearman_p": float(spearman.pvalue)}


def wide_leaderboard(table: pd.DataFrame) -> pd.DataFrame:
    """One row per model: per benchmark ``<benchmark> normalised`` / ``raw`` / ``layer``, the average, and the
    next-word columns; sorted by the average normalised score."""
    scored = table[table["kind"] != "average"]
    benchmarks = list(dict.fromkeys(scored["benchmark"]))
    rows = []
    for model, group in scored.groupby("model", sort=False):
        row = {"model": model, "label": group["label"].iloc[0]}
        by_benchmark = {item.benchmark: item for item in group.itertuples()}
        for benchmark in benchmarks:
            item = by_benchmark.get(benchmark)
            row[f"{benchmark} normalised"] = None if item is None else item.normalised
            row[f"{benchmark} raw"] = None if item is None else item.raw
            row[f"{benchmark} layer"] = ("-" if item is None or item.committed_layer < 0 else
                                         f"{int(item.committed_layer)}/{int(item.n_layers) - 1}")
        for name in ("average", "neural average"):
            average = table[(table["benchmark"] == name) & (table["model"] == model)]
            row[f"{name} normalised"] = float(average["normalised"].iloc[0]) if len(average) else None
        row["benchmarks scored"] = int(group["benchmark"].nunique())
        for column in ("accuracy", "perplexity", "pseudo_perplexity"):
            if column in table.columns:
                row[f"next-word {column}"] = group[column].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows).sort_values("average normalised", ascending=False, na_position="last",
                                          kind="stable").reset_index(drop=True)
