"""The report's Brain-Score section: the leaderboard, layer curves per benchmark, brain score against
next-word prediction."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainalign.files import atomic_path  # noqa: E402
from brainalign.report.html import Figure  # noqa: E402

SCORES = "data/benchmarks/scores"
LEADERBOARD = "reports/leaderboard"
SECTION = "Brain-Score language"


def save_with_numbers(fig, path: Path, numbers: pd.DataFrame, index: bool = False) -> None:
    """Save ``fig`` as ``path`` (PNG) and the numbers it draws beside it (``.csv``), atomically; close it."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    with atomic_path(path.with_suffix(".csv")) as tmp:
        numbers.to_csv(tmp, index=index)


def scatter_figure(table: pd.DataFrame, correlation: dict, path: Path, measure: str = "accuracy") -> None:
    """Each model's mean normalised brain score against its next-word ``measure``, with the correlation."""
    average = table[table["benchmark"] == "neural average"]
    points = average.dropna(subset=[measure, "normalised"]) if measure in average.columns else average.iloc[:0]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.scatter(points[measure], points["normalised"], color="#1f77b4")
    for row in points.itertuples():
        ax.annotate(row.model, (getattr(row, measure), row.normalised), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    ax.set_xlabel(f"next-word {measure}")
    ax.set_ylabel("brain score (mean ceiling-normalised, neural benchmarks)")
    r = correlation.get("pearson_r")
    ax.set_title(f"Brain score against next-word {measure}" +
                 (f": r = {r:.2f}, ρ = {correlation['spearman_rho']:.2f} over {correlation['n_models']} models"
                  if r is not None else f" (correlation needs 3+ models with both; {correlation['n_models']} have)"))
    ax.grid(alpha=0.3)
    save_with_numbers(fig, path, points[["model", "label", measure, "normalised", "raw"]])


def leaderboard_figure(table: pd.DataFrame, path: Path) -> None:
    """Grouped bars: models x benchmarks, ceiling-normalised score of the committed layer."""
    scored = table[table["kind"] != "average"].dropna(subset=["normalised"])
    wide = scored.pivot_table(index="model", columns="benchmark", values="normalised", sort=False)
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    width = 0.8 / max(len(wide.columns), 1)
    for i, benchmark in enumerate(wide.columns):
        ax.bar(np.arange(len(wide)) + i * width, wide[benchmark].to_numpy(), width, label=benchmark)
    ax.set_xticks(np.arange(len(wide)) + 0.4 - width / 2, wide.index, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("ceiling-normalised score (committed layer, test part)")
    ax.axhline(0, color="#999", linewidth=0.8)
    ax.legend(fontsize=8)
    ax.set_title("Leaderboard: every model on every benchmark")
    save_with_numbers(fig, path, scored[["model", "benchmark", "committed_layer", "raw", "ceiling", "normalised"]])


def layer_figure(key: str, summary: dict, layers: pd.DataFrame, path: Path) -> None:
    """Test score against relative layer depth per model; committed layers marked, ceilings as lines."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    test = layers[layers["part"] == "test"]
    committed = {row["model"]: row["committed_layer"] for row in summary["models"]}
    colours = iter(plt.cm.tab10.colors)
    for model, group in test.groupby("model", sort=False):
        colour = next(colours)
        depth = group["layer"] / max(group["layer"].max(), 1)
        if len(group) > 1:
            ax.plot(depth, group["score"], marker="o", markersize=3, color=colour, label=f"{model} ({len(group)} layers)")
            chosen = group[group["layer"] == committed.get(model)]
            ax.scatter(chosen["layer"] / max(group["layer"].max(), 1), chosen["score"], s=90, facecolors="none",
                       edgecolors=colour, linewidths=2)
        else:
            ax.axhline(float(group["score"].iloc[0]), color=colour, linestyle="-.", label=model)
    if summary.get("ceiling") is not None:
        ax.axhline(summary["ceiling"], color="black", linestyle="--",
                   label=f"noise ceiling (extrapolation) {summary['ceiling']:.3f}")
    truth = summary.get("truth") or {}
    if truth.get("true_ceiling") is not None:
        ax.axhline(truth["true_ceiling"], color="grey", linestyle=":",
                   label=f"true ceiling (simulation) {truth['true_ceiling']:.3f}")
    ax.axhline(0.0, color="#bbb", linewidth=0.8)
    ax.set_xlabel("relative layer depth (0: embeddings)")
    ax.set_ylabel("raw score (median r over channels, test part)")
    ax.set_title(f"{summary['benchmark']}: every layer; circles: the committed layers")
    ax.legend(fontsize=7, loc="best")
    save_with_numbers(fig, path, test)


def benchmark_figures(out: Path, root: str | Path = SCORES, leaderboard: str | Path = LEADERBOARD) -> list[Figure]:
    """The leaderboard's two figures (drawn by the leaderboard stage) and a layer figure per neural benchmark."""
    shown = []
    board = Path(leaderboard)
    if (board / "leaderboard.png").exists():
        shown.append(Figure(SECTION, "Leaderboard", board / "leaderboard.png",
                            "Per model and benchmark: the committed layer's ceiling-normalised score (raw / ceiling, "
                            "clipped to [0, 1]) on the test part of the benchmark's groups; the layer was committed on "
                            "the selection part."))
    if (board / "brain_vs_nextword.png").exists():
        shown.append(Figure(SECTION, "Brain score against next-word prediction", board / "brain_vs_nextword.png",
                            "One point per language model with both: its mean normalised score over the neural "
                            "benchmarks, against its top-1 next-word accuracy (nextword stage); the correlation "
                            "across models needs 3 or more."))
    for summary_path in sorted(Path(root).glob("*/summary.json")):
        summary = json.loads(summary_path.read_text())
        if summary["kind"] != "neural":
            continue
        key = summary_path.parent.name
        path = out / f"benchmark_{key}_layers.png"
        layer_figure(key, summary, pd.read_parquet(summary_path.parent / "layers.parquet"), path)
        shown.append(Figure(SECTION, f"{summary['benchmark']}: score against layer depth", path,
                            f"Per model and layer, the {summary['benchmark']} metric on the test part (median over "
                            f"channels of the cross-validated Pearson r, mean over splits). Circles: the layer each "
                            f"model committed on the selection part."))
    return shown


def benchmark_tables(root: str | Path = SCORES, leaderboard: str | Path = LEADERBOARD) -> dict[str, pd.DataFrame]:
    """The leaderboard (wide) and the next-word table, for the HTML page."""
    tables = {}
    wide = Path(leaderboard) / "leaderboard.csv"
    if wide.exists():
        tables["Brain-Score language leaderboard: committed layer, raw, ceiling, normalised (test part)"] = \
            pd.read_csv(wide)
    nextword = Path(leaderboard) / "nextword.csv"
    if nextword.exists():
        tables["Next-word prediction"] = pd.read_csv(nextword)
    return tables
