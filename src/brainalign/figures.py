"""Figures of scores: accuracy distributions and glass-brain maps. Each figure's numbers go to a CSV too."""

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


def _save(fig: plt.Figure, table: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, metadata={"Software": None})
    plt.close(fig)
    _write_csv(table, path)


def _write_csv(table: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(Path(path).with_suffix(".csv")) as tmp:
        table.to_csv(tmp, index=False)
