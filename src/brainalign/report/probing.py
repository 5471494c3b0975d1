"""The report's probing section (seed 003): the region x layer alignment heatmap, the syntactic against
discourse bars, and the features FReM found in each region."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainalign.report.brainscore import save_with_numbers  # noqa: E402
from brainalign.report.html import Figure  # noqa: E402

SCORES = "data/probing/scores"
SECTION = "Probing the model and decoding the brain (FReM)"


def alignment_figure(alignment: pd.DataFrame, path: Path) -> None:
    """One heatmap per representation kind: the cosine similarity of each region's and layer's profile."""
    table = alignment[alignment["family"] == "all"]
    kinds = list(table["kind"].unique())
    regions = sorted(table["region"].unique())
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.6 + 3.4 * len(kinds), 1.8 + 0.42 * len(regions)),
                             squeeze=False)
    numbers = []
    for ax, kind in zip(axes[0], kinds):
        matrix = table[table["kind"] == kind].pivot(index="region", columns="layer", values="cosine").reindex(regions)
        values = matrix.to_numpy(dtype=np.float64)
        image = ax.imshow(np.ma.masked_invalid(values), cmap="magma", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(matrix.shape[1]), [str(c) for c in matrix.columns])
        ax.set_yticks(range(len(regions)), regions if ax is axes[0][0] else [""] * len(regions), fontsize=7)
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                        color="w" if value < 0.6 else "k")
        ax.set_xlabel("layer")
        ax.set_title(f"{kind}", fontsize=9)
        numbers.append(matrix.assign(kind=kind))
    # Beside the last heatmap (save_with_numbers lays the figure out tightly, which a shared colorbar would defeat).
    fig.colorbar(image, ax=axes[0][-1], label="cosine of the profiles")
    fig.suptitle("Alignment of brain regions (FReM) and model layers (probes)", fontsize=10)
    save_with_numbers(fig, path, pd.concat(numbers), index=True)


def families_figure(families: pd.DataFrame, path: Path) -> None:
    """Grouped bars: the mean clipped score of each family's features, per layer (model) and region (brain)."""
    sides = list(families["side"].unique())
    order = list(dict.fromkeys(families["family"]))
    colours = {family: f"C{k}" for k, family in enumerate(order)}
    fig, axes = plt.subplots(1, len(sides), figsize=(3.6 * len(sides), 3.8), squeeze=False)
    for ax, side in zip(axes[0], sides):
        table = families[families["side"] == side].pivot(index="unit", columns="family", values="score")
        table = table.reindex(columns=order)
        width = 0.8 / max(table.shape[1], 1)
        x = np.arange(len(table))
        for k, family in enumerate(table.columns):
            ax.bar(x + (k - (table.shape[1] - 1) / 2) * width, table[family].fillna(0.0).to_numpy(), width,
                   label=family, color=colours[family])
        ax.set_xticks(x, [str(u) for u in table.index], rotation=60 if side == "brain" else 0,
                      ha="right" if side == "brain" else "center", fontsize=7)
        ax.set_title(side, fontsize=9)
        ax.set_ylabel("mean held-out score\n(R² or 2 (AUC − 0.5), < 0 as 0)" if ax is axes[0][0] else "")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Syntactic against discourse features", fontsize=10)
    save_with_numbers(fig, path, families)


def probing_figures(out: Path, root: str | Path = SCORES) -> list[Figure]:
    """The section's figures, when the align stage has written its tables."""
    root = Path(root)
    if not (root / "summary.json").exists():
        return []
    alignment = pd.read_parquet(root / "alignment.parquet")
    families = pd.read_csv(root / "families.csv")
    alignment_figure(alignment, out / "probing_alignment.png")
    families_figure(families, out / "probing_families.png")
    return [
        Figure(SECTION, "Alignment of regions and layers", out / "probing_alignment.png",
               "Each region's profile is FReM's held-out gain over a dummy decoder for every feature (R², or twice the "
               "AUC's gain for a binary feature), averaged over participants; each layer's is its ridge probes' "
               "held-out R². Negative scores count as 0; the cosine similarity of every pair of profiles (blank: a "
               "region that carries none of the features)."),
        Figure(SECTION, "Syntactic against discourse features", out / "probing_families.png",
               "The mean held-out score of each family's features, per layer (model) and region (brain)."),
    ]


def probing_tables(root: str | Path = SCORES) -> dict[str, pd.DataFrame]:
    """The features FReM found (significant after Benjamini-Hochberg over region x feature) for the HTML page."""
    path = Path(root) / "frem.parquet"
    if not path.exists():
        return {}
    frem = pd.read_parquet(path)
    found = frem[(frem["subject"] == "mean") & frem["significant"]]
    summary = json.loads((Path(root) / "summary.json").read_text())
    title = (f"Probing: features FReM decodes from each region, held out by run ({summary['frem_significant']} of "
             f"{summary['frem_pairs']} region x feature pairs; t-test of the runs' gains over the dummy, BH)")
    return {title: found[["region", "feature", "kind", "metric", "score", "dummy_score", "gain", "p_value", "p_fdr"]]
            .sort_values(["region", "p_value"]).round(4)}
