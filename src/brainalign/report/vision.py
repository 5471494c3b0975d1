"""The report's vision section (seed 002): accuracy per ROI against the noise ceiling, accuracy maps on the
volume, fwRF's pRFs against the simulated truth, and the GNet8r transfer matrix."""

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

ROOT = "data/vision"
SECTION = "Encoding models of visual cortex (fwRF, GNet)"
MODELS = ("fwrf", "gnet8j", "gnet8r")
ROIS = ("V1", "V2", "V3", "hV4")


def _wide(root: Path) -> pd.DataFrame:
    scores = pd.concat([pd.read_parquet(root / part / "scores.parquet") for part in ("fwrf", "gnet")],
                       ignore_index=True)
    return scores.pivot_table(index=["model", "subject", "roi", "voxel"], columns="measure",
                              values="value").reset_index()


def accuracy_figure(wide: pd.DataFrame, path: Path) -> None:
    """Median validation r per ROI and model (participants' medians averaged), with the ceiling's r."""
    per_subject = wide.groupby(["model", "roi", "subject"])[["pearson_r", "noise_ceiling"]].median().reset_index()
    table = per_subject.groupby(["model", "roi"])[["pearson_r", "noise_ceiling"]].mean().reset_index()
    rois = [r for r in ROIS if r in set(table["roi"])]
    models = [m for m in MODELS if m in set(table["model"])]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    width = 0.8 / len(models)
    for k, model in enumerate(models):
        values = table[table["model"] == model].set_index("roi").reindex(rois)
        ax.bar(np.arange(len(rois)) + (k - (len(models) - 1) / 2) * width, values["pearson_r"], width, label=model,
               color=f"C{k}")
    ceiling = table.groupby("roi")["noise_ceiling"].mean().reindex(rois)
    ax.plot(np.arange(len(rois)), np.sqrt(ceiling / 100.0), "k_", markersize=28, mew=2,
            label="ceiling (r of a perfect model, single trials)")
    ax.set_xticks(range(len(rois)), rois)
    ax.set_ylabel("median validation r")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=4)
    ax.set_title("Validation accuracy per ROI (shared images, single trials)", fontsize=10)
    save_with_numbers(fig, path, table)


def maps_figure(wide: pd.DataFrame, root: Path, path: Path, model: str = "gnet8j") -> None:
    """Each participant's voxels' validation r on the volume: a mosaic of axial slices."""
    from brainalign.vision.nsd import load_recording

    data = json.loads((root / "fwrf" / "summary.json").read_text()).get("data")
    table = wide[wide["model"] == model]
    subjects = sorted(table["subject"].unique(), key=int)
    recordings = {s: load_recording(data, int(s), zscore=False) for s in subjects} if data else {}
    slices = max(r.voxels[:, 2].max() + 1 for r in recordings.values())
    fig, axes = plt.subplots(len(subjects), slices, figsize=(1.4 * slices + 1, 1.6 * len(subjects) + 0.6),
                             squeeze=False)
    image = None
    numbers = []
    for row, subject in zip(axes, subjects):
        recording = recordings[subject]
        values = table[table["subject"] == subject].set_index("voxel")["pearson_r"]
        shape = recording.voxels.max(axis=0) + 1
        volume = np.full(shape, np.nan)
        x, y, z = recording.voxels[values.index.to_numpy()].T
        volume[x, y, z] = values.to_numpy()
        numbers.append(pd.DataFrame({"subject": subject, "x": x, "y": y, "z": z, "roi": recording.rois[values.index],
                                     "pearson_r": values.to_numpy()}))
        for k, ax in enumerate(row):
            image = ax.imshow(volume[:, :, k].T if k < shape[2] else np.full(shape[:2], np.nan).T, origin="lower",
                              cmap="RdBu_r", vmin=-0.8, vmax=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_ylabel(f"subj{int(subject):02d}", fontsize=8)
            if row is axes[0]:
                ax.set_title(f"z = {k}", fontsize=7)
    # Beside the last panel only (save_with_numbers lays the figure out tightly, which a shared colorbar defeats).
    fig.colorbar(image, ax=axes[-1, -1], label="validation r")
    fig.suptitle(f"{model}: validation accuracy of every voxel, by slice", fontsize=10)
    save_with_numbers(fig, path, pd.concat(numbers))


def prf_figure(prf: pd.DataFrame, path: Path) -> None:
    """fwRF's chosen pRF centres against the simulated ones, per ROI."""
    known = prf.dropna(subset=["true_x"])
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
    for ax, axis in zip(axes, ("x", "y")):
        for k, roi in enumerate(r for r in ROIS if r in set(known["roi"])):
            part = known[known["roi"] == roi]
            ax.scatter(part[f"true_{axis}"], part[f"prf_{axis}"], s=6, alpha=0.6, color=f"C{k}", label=roi)
        r = np.corrcoef(known[f"true_{axis}"], known[f"prf_{axis}"])[0, 1]
        ax.plot([0, 1], [0, 1], color="0.5", lw=0.8)
        ax.set_xlabel(f"true pRF {axis} (image fraction)")
        ax.set_ylabel(f"fwRF pRF {axis}")
        ax.set_title(f"{axis}: r = {r:.2f}", fontsize=9)
    axes[0].legend(fontsize=7, frameon=False)
    save_with_numbers(fig, path, known)


def transfer_figure(matrix: pd.DataFrame, asymmetry: float, path: Path) -> None:
    values = matrix.to_numpy(dtype=np.float64)
    limit = max(float(np.nanmax(np.abs(values))), 1e-6)
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_xticks(range(values.shape[1]), matrix.columns)
    ax.set_yticks(range(values.shape[0]), matrix.index)
    ax.set_xlabel("target ROI (new readouts)")
    ax.set_ylabel("source ROI (frozen GNet8r core)")
    for (i, j), value in np.ndenumerate(values):
        ax.text(j, i, f"{value:+.3f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="Δ validation r against the target's own core")
    ax.set_title(f"Transfer matrix (asymmetry index {asymmetry:+.2f})", fontsize=10)
    save_with_numbers(fig, path, matrix, index=True)


def vision_figures(out: Path, root: str | Path = ROOT) -> list[Figure]:
    """The section's figures, when the vision stages have written their outputs."""
    root = Path(root)
    if not (root / "gnet" / "summary.json").exists():
        return []
    wide = _wide(root)
    accuracy_figure(wide, out / "vision_accuracy.png")
    maps_figure(wide, root, out / "vision_maps.png")
    fwrf = json.loads((root / "fwrf" / "summary.json").read_text())
    transfer = json.loads((root / "transfer" / "summary.json").read_text())
    transfer_figure(pd.read_csv(root / "transfer" / "matrix.csv", index_col=0), transfer["asymmetry"],
                    out / "vision_transfer.png")
    shown = [
        Figure(SECTION, "Accuracy per ROI", out / "vision_accuracy.png",
               f"Median voxelwise Pearson r between each model's prediction for an image and the single-trial "
               f"responses to the shared images (never trained on), per ROI; the bar is NSD's noise ceiling for one "
               f"trial as an r. Features: {fwrf['network']}, {fwrf['provenance']}."),
        Figure(SECTION, "Accuracy maps", out / "vision_maps.png",
               "GNet8j's validation r of every voxel of V1-hV4, slice by slice."),
        Figure(SECTION, "Transfer matrix", out / "vision_transfer.png",
               "Each ROI's GNet8r core frozen, new readouts trained for every ROI: the mean change in validation r "
               "against the target ROI's own core; the asymmetry index compares transfers up and down the hierarchy."),
    ]
    prf = pd.read_parquet(root / "fwrf" / "prf.parquet")
    if "true_x" in prf.columns:
        prf_figure(prf, out / "vision_prf.png")
        shown.append(Figure(SECTION, "fwRF pRFs against the truth", out / "vision_prf.png",
                            "The pRF centre fwRF chose for each responsive voxel against the simulated one."))
    return shown


def vision_tables(root: str | Path = ROOT) -> dict[str, pd.DataFrame]:
    """Median validation r, ceiling and explained share per model and ROI, for the HTML page."""
    root = Path(root)
    if not (root / "gnet" / "summary.json").exists():
        return {}
    wide = _wide(root)
    table = wide.groupby(["model", "roi"])[["pearson_r", "noise_ceiling", "explained_fraction"]].median()
    return {"Vision: median validation r, noise ceiling (% variance, one trial) and % of it explained":
            table.reset_index().round(3)}
