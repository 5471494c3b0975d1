"""The report's encoding-model figures: layer curves with the noise ceiling, the best layer's map, the score table."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainalign.data.prepared import read_prepared  # noqa: E402
from brainalign.metrics.comparisons import combined_predictable  # noqa: E402
from brainalign.report import figures  # noqa: E402
from brainalign.report.html import Figure  # noqa: E402

ENCODING = "data/encoding"
SECTION = "Encoding models"


def layer_curve_figure(curves: pd.DataFrame, ceiling: float | None, true_ceiling: float | None, path: Path,
                       title: str) -> None:
    """Held-out score against relative layer depth per model; one-layer spaces as horizontal lines."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colours = iter(plt.cm.tab10.colors)
    for (model, space), group in curves.groupby(["model", "feature_space"], sort=False):
        colour = next(colours)
        if len(group) > 1:
            ax.errorbar(group["relative_depth"], group["median_r"], yerr=group["se"], marker="o", color=colour,
                        label=f"{model} ({len(group)} layers)", capsize=2)
        else:
            ax.axhline(float(group["median_r"].iloc[0]), color=colour, linestyle="-.", label=f"{model} ({space})")
    if ceiling is not None:
        ax.axhline(ceiling, color="black", linestyle="--", label=f"noise ceiling (extrapolation) {ceiling:.3f}")
    if true_ceiling is not None:
        ax.axhline(true_ceiling, color="grey", linestyle=":", label=f"true ceiling (simulation) {true_ceiling:.3f}")
    ax.axhline(0.0, color="#bbb", linewidth=0.8)
    ax.set_xlabel("relative layer depth (0: embeddings, 1: last layer)")
    ax.set_ylabel("held-out Pearson r (median over channels)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    curves.to_csv(path.with_suffix(".csv"), index=False)


def best_map(name: str, summary: dict, scores: pd.DataFrame, significance: pd.DataFrame, out: Path,
             q: float, vmax: float) -> Figure | None:
    """The best language model's best layer (any model's, without one), per channel: a glass brain of the
    voxels above chance (voxel data), or bars per region (named regions); None for sensor data."""
    contextual = [row for row in summary["best"] if row["feature_space"] == "contextual"]
    best = max(contextual or summary["best"], key=lambda row: row["raw"])
    model, layer = best["model"], best["best_layer"]
    rows = scores[(scores["model"] == model) & (scores["layer"] == layer) & (scores["measure"] == "pearson_r")]
    per_subject = rows.groupby(["subject", "voxel"], sort=False)["value"].mean().unstack()
    subjects = [str(s) for s in per_subject.index]
    space = read_prepared(Path("data/prepared") / name, subjects[0])
    values = np.nanmean(per_subject.to_numpy(), axis=0)
    stem = f"encoding_{name}_best_layer"
    if space.modality == "meg":
        return None
    if space.coords is not None:
        tests = significance[(significance["model"] == model) & (significance["layer"] == layer)]
        z = np.stack([tests[tests["subject"] == s].sort_values("voxel")["z"].to_numpy() for s in subjects])
        shown = combined_predictable(np.nan_to_num(z), q=q)["predictable"].to_numpy()
        path = out / f"{stem}.png"
        figures.glass_brain(values, shown, space.coords, space.affine, space.volume_shape, path,
                            title=f"{model}, layer {layer} ({name}): held-out r, {int(shown.sum())} voxels pass",
                            vmax=vmax)
        caption = (f"Held-out Pearson r of the best language model's best layer ({model}, layer {layer}), mean of "
                   f"{len(subjects)} participant(s). Shown: voxels above a circular-shift null of r (10 shifts per "
                   f"held-out run, runs pooled), participants combined by Stouffer's z, Benjamini-Hochberg FDR "
                   f"q = {q}: {int(shown.sum())} of {len(shown):,} voxels pass"
                   + (f" (lowest shown r {values[shown].min():.3f})." if shown.any() else "."))
        return Figure(SECTION, f"{name}: best layer's map", path, caption)
    names = space.channel_names or [str(i) for i in range(len(values))]
    path = out / f"{stem}_regions.png"
    fig, ax = plt.subplots(figsize=(max(5, 0.4 * len(names)), 4))
    ax.bar(range(len(values)), values, color="#4c72b0")
    ax.set_xticks(range(len(values)), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("held-out Pearson r")
    ax.set_title(f"{model}, layer {layer} ({name})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    pd.DataFrame({"channel": names, "r": values}).to_csv(path.with_suffix(".csv"), index=False)
    return Figure(SECTION, f"{name}: best layer per region", path,
                  f"Held-out Pearson r per region of {model}'s layer {layer}, mean of {len(subjects)} participant(s).")


def encoding_figures(out: Path, q: float, vmax: float, root: str | Path = ENCODING) -> list[Figure]:
    """Per dataset with encoding results: the layer curves and the best layer's map."""
    shown = []
    for summary_path in sorted(Path(root).glob("*/summary.json")):
        name = summary_path.parent.name
        summary = json.loads(summary_path.read_text())
        curves = pd.read_parquet(summary_path.parent / "curves.parquet")
        path = out / f"encoding_{name}_layers.png"
        layer_curve_figure(curves, summary["ceiling"], summary.get("true_ceiling"), path,
                           f"Encoding models on {name}: held-out r per layer")
        note = ("" if summary["ceiling"] is not None else
                f" No extrapolation ceiling: {summary['ceiling_note']}.")
        shown.append(Figure(SECTION, f"{name}: score against layer depth", path,
                            f"Per model and layer: a ridge encoding model per channel (FIR delays, per-channel "
                            f"penalty by inner leave-one-run-out), Pearson r on held-out runs, the median over "
                            f"{summary['channels']}, mean ± SE over participants. One-layer spaces (random "
                            f"embedding, word rate, word length) as lines." + note))
        scores = pd.read_parquet(summary_path.parent / "scores.parquet")
        significance = pd.read_parquet(summary_path.parent / "significance.parquet")
        figure = best_map(name, summary, scores, significance, out, q, vmax)
        if figure is not None:
            shown.append(figure)
    return shown


def encoding_tables(root: str | Path = ENCODING) -> dict[str, pd.DataFrame]:
    """Per dataset, each model's best layer: raw score, ceiling and ceiling-normalised score."""
    tables = {}
    for summary_path in sorted(Path(root).glob("*/summary.json")):
        name, summary = summary_path.parent.name, json.loads(summary_path.read_text())
        best = pd.DataFrame(summary["best"])
        descriptions = {m: meta["description"] for m, meta in summary["models"].items()}
        best.insert(1, "what", [descriptions.get(m, "low-level feature space") for m in best["model"]])
        tables[f"Encoding models on {name}: best layer, raw and ceiling-normalised (raw / ceiling, "
               f"clipped to [0, 1])"] = best
    return tables
