"""The report's decoding section (Gauthier & Levy 2019): MAR against fine-tuning step, the RSA matrix, the tests
of each trajectory's final checkpoint against the pretrained encoder."""

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

SCORES = "data/decoding/scores"
SECTION = "Decoding along fine-tuning trajectories"


def mar_curves(scores: pd.DataFrame) -> pd.DataFrame:
    """Per trajectory and step: MAR mean and standard error over runs (seeds) and participants."""
    grouped = scores.groupby(["trajectory", "step"])["mar"]
    curves = grouped.agg(["mean", "std", "count"]).reset_index()
    curves["se"] = curves["std"].fillna(0.0) / np.sqrt(curves["count"])
    return curves.drop(columns="std")


def mar_figure(scores: pd.DataFrame, summary: dict, path: Path) -> None:
    """MAR against fine-tuning step, one line per trajectory (mean ± SE over runs and participants); the
    pretrained encoder's MAR and chance as horizontal lines."""
    curves = mar_curves(scores)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for trajectory, curve in curves.groupby("trajectory", sort=False):
        ax.errorbar(curve["step"], curve["mean"], yerr=curve["se"], marker="o", ms=3, capsize=2, label=trajectory)
    ax.axhline(summary["pretrained_mar"], color="k", ls="--", lw=1, label="pretrained")
    # Chance is far above the curves (192.5 of 384): drawn only when it is near them, named on the axis always.
    low, high = (curves["mean"] - curves["se"]).min(), (curves["mean"] + curves["se"]).max()
    if summary["chance_mar"] <= high + 2 * (high - low):
        ax.axhline(summary["chance_mar"], color="grey", ls=":", lw=1, label="chance")
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel(f"mean average rank of {summary['n_sentences']} (lower is better;\nchance "
                  f"{summary['chance_mar']:.1f})")
    ax.set_title("Decoding into each checkpoint's sentence space" +
                 (" (PCA fitted on all sentences: leaky, as the original)" if summary["leaky_pca"] else ""))
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    save_with_numbers(fig, path, curves)


def rsa_figure(rsa: pd.DataFrame, path: Path) -> None:
    """The Spearman correlation of every pair of representational dissimilarity matrices."""
    fig, ax = plt.subplots(figsize=(max(7.0, 2.5 + 0.45 * len(rsa)), max(5.0, 1.5 + 0.4 * len(rsa))))
    image = ax.imshow(rsa.to_numpy(), cmap="viridis", vmin=min(0.0, float(np.nanmin(rsa.to_numpy()))), vmax=1.0)
    ax.set_xticks(range(len(rsa)), rsa.columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(rsa)), rsa.index, fontsize=7)
    for (i, j), value in np.ndenumerate(rsa.to_numpy()):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=5, color="w" if value < 0.6 else "k")
    fig.colorbar(image, ax=ax, label="Spearman ρ between RDMs")
    ax.set_title("Representational similarity (RSA)")
    save_with_numbers(fig, path, rsa, index=True)


def decoding_figures(out: Path, root: str | Path = SCORES) -> list[Figure]:
    """The section's figures, when the decode stage has written its scores."""
    root = Path(root)
    if not (root / "summary.json").exists():
        return []
    summary = json.loads((root / "summary.json").read_text())
    scores = pd.read_parquet(root / "scores.parquet")
    rsa = pd.read_csv(root / "rsa.csv", index_col=0)
    shown = []
    mar_figure(scores, summary, out / "decoding_mar.png")
    fitted = ("PCA and centring fitted on all sentences (leaky_pca: true, the original's choice; for "
              "reproduction only)" if summary["leaky_pca"] else
              "PCA, centring and the ridge penalty fitted inside each training fold only")
    shown.append(Figure(SECTION, "Mean average rank against fine-tuning step", out / "decoding_mar.png",
                        f"Brain images decoded into each checkpoint's sentence space (ridge, {fitted}; outer folds by "
                        f"{summary['folds_by']}); the true sentence's rank among all {summary['n_sentences']} by "
                        f"cosine similarity, averaged over sentences (1-based; chance {summary['chance_mar']:.1f}). "
                        f"Mean ± SE over runs and participants; step 0 is the pretrained encoder."))
    rsa_figure(rsa, out / "decoding_rsa.png")
    shown.append(Figure(SECTION, "Representational similarity", out / "decoding_rsa.png",
                        "Euclidean RDMs of the sentence encodings (pretrained; each trajectory's last checkpoint, "
                        "per seed) and of each participant's images; Spearman correlation of every pair."))
    return shown


def decoding_tables(root: str | Path = SCORES) -> dict[str, pd.DataFrame]:
    """The tests table for the HTML page."""
    path = Path(root) / "tests.csv"
    if not path.exists():
        return {}
    return {"Decoding: each trajectory's final checkpoint against the pretrained encoder (per-sentence ranks, "
            "Wilcoxon signed-rank, Benjamini-Hochberg across trajectories)": pd.read_csv(path)}
