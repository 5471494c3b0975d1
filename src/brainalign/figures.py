"""Figures of scores: accuracy distributions, glass-brain maps, region bars and MEG time courses.

Each figure's numbers go to a CSV beside it.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainalign.files import atomic_path  # noqa: E402


def accuracy_distribution(voxel_scores: pd.DataFrame, path: str | os.PathLike, bins: int = 40) -> pd.DataFrame:
    """Histogram of per-voxel accuracy (mean over folds), one panel per participant, chance marked.

    Parameters
    ----------
    voxel_scores : DataFrame
        Columns ``subject``, ``voxel``, ``accuracy`` (one row per participant and voxel).
    path : path
        PNG to write; the histogram counts go beside it as ``<stem>.csv``.
    """
    subjects = list(dict.fromkeys(voxel_scores["subject"]))
    edges = np.linspace(min(0.3, voxel_scores["accuracy"].min()), max(0.9, voxel_scores["accuracy"].max()), bins + 1)
    fig, axes = plt.subplots(1, len(subjects), figsize=(3.2 * len(subjects), 2.8), sharey=True, squeeze=False)
    rows = []
    for ax, subject in zip(axes[0], subjects):
        acc = voxel_scores.loc[voxel_scores["subject"] == subject, "accuracy"].to_numpy()
        counts, _ = np.histogram(acc, bins=edges)
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4477aa")
        ax.axvline(0.5, color="k", lw=1, ls="--")
        ax.set_title(f"participant {subject}: mean {acc.mean():.3f}", fontsize=9)
        ax.set_xlabel("20 vs 20 accuracy")
        rows += [{"subject": subject, "bin_left": lo, "bin_right": hi, "count": int(c)}
                 for lo, hi, c in zip(edges[:-1], edges[1:], counts)]
    axes[0][0].set_ylabel("voxels")
    fig.tight_layout()
    table = pd.DataFrame(rows)
    _save(fig, table, path)
    return table


def glass_brain(values: np.ndarray, coords: np.ndarray, affine: np.ndarray, shape: tuple[int, int, int],
                path: str | os.PathLike, title: str, threshold: float = 0.5, vmax: float | None = None) -> None:
    """A glass-brain map of per-voxel values on the MNI template (nilearn; offline)."""
    import nibabel as nib
    from nilearn import plotting

    volume = np.zeros(shape, dtype=np.float32)
    volume[tuple(np.asarray(coords).T)] = values
    image = nib.Nifti1Image(volume, affine)
    display = plotting.plot_glass_brain(image, threshold=threshold, colorbar=True, plot_abs=False,
                                        title=title, vmax=vmax, cmap="cold_hot")
    table = pd.DataFrame({"i": coords[:, 0], "j": coords[:, 1], "k": coords[:, 2], "value": values})
    with atomic_path(path) as tmp:
        display.savefig(str(tmp), dpi=100)
    display.close()
    _write_csv(table, path)


def channel_accuracy(voxel_scores: pd.DataFrame, channel_names: list[str], path: str | os.PathLike,
                     title: str) -> pd.DataFrame:
    """Accuracy of each named channel (regions), one bar group per participant, chance marked."""
    subjects = list(dict.fromkeys(voxel_scores["subject"]))
    table = voxel_scores.assign(channel=[channel_names[v] for v in voxel_scores["voxel"]])[
        ["subject", "channel", "accuracy"]]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(channel_names) * len(subjects) ** 0.5), 3.0))
    width = 0.8 / len(subjects)
    for i, subject in enumerate(subjects):
        acc = table.loc[table["subject"] == subject].set_index("channel").reindex(channel_names)["accuracy"]
        ax.bar(np.arange(len(channel_names)) + i * width, acc.to_numpy(), width=width, label=f"participant {subject}")
    ax.axhline(0.5, color="k", lw=1, ls="--")
    ax.set_xticks(np.arange(len(channel_names)) + 0.4 - width / 2, channel_names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("20 vs 20 accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, table, path)
    return table


def meg_time_course(voxel_scores: pd.DataFrame, n_bins: int, path: str | os.PathLike, title: str,
                    bin_ms: float = 25.0) -> pd.DataFrame:
    """MEG accuracy per time bin after word onset, averaged over sensors, one line per participant.

    Channels are sensor-major (``sensor * n_bins + bin``), as the MEG loader orders them.
    """
    rows = []
    fig, ax = plt.subplots(figsize=(4.5, 3.0))
    for subject, group in voxel_scores.groupby("subject", sort=False):
        acc = group.sort_values("voxel")["accuracy"].to_numpy().reshape(-1, n_bins).mean(0)
        times = (np.arange(n_bins) + 0.5) * bin_ms
        ax.plot(times, acc, marker="o", ms=3, label=f"participant {subject}")
        rows += [{"subject": subject, "time_ms": t, "accuracy": a} for t, a in zip(times, acc)]
    ax.axhline(0.5, color="k", lw=1, ls="--")
    ax.set_xlabel("time after word onset (ms)")
    ax.set_ylabel("20 vs 20 accuracy (mean over sensors)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    table = pd.DataFrame(rows)
    _save(fig, table, path)
    return table


def _save(fig: plt.Figure, table: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, metadata={"Software": None})
    plt.close(fig)
    _write_csv(table, path)


def _write_csv(table: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(Path(path).with_suffix(".csv")) as tmp:
        table.to_csv(tmp, index=False)
