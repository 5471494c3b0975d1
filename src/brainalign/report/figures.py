"""Figures: accuracy distributions, glass-brain maps, region bars, MEG time courses, comparison curves,
FDR voxel maps, [CLS] attention and changed examples.

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

from brainalign.errors import InputError
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


def glass_brain(values: np.ndarray, shown: np.ndarray, coords: np.ndarray, affine: np.ndarray,
                shape: tuple[int, int, int], path: str | os.PathLike, title: str,
                vmax: float | None = None) -> pd.DataFrame:
    """A glass-brain map of per-voxel values on the MNI template (nilearn; offline), drawing only ``shown``.

    ``shown`` (boolean, one per voxel) says which voxels the map draws: those a test passed. The CSV beside
    the PNG holds every voxel (``voxel``, ``i``, ``j``, ``k``, ``value``, ``shown``), and is returned.
    """
    import nibabel as nib
    from nilearn import plotting

    values, shown, coords = np.asarray(values, dtype=np.float64), np.asarray(shown), np.asarray(coords)
    if shown.dtype != bool or shown.shape != values.shape or values.ndim != 1 or coords.shape != (len(values), 3):
        raise InputError("glass_brain", "values/shown/coords", "per voxel: a value, a boolean and three indices",
                         f"shapes {values.shape}, {shown.shape} ({shown.dtype}) and {coords.shape}")
    volume = np.zeros(shape, dtype=np.float32)
    volume[tuple(coords[shown].T)] = values[shown]
    image = nib.Nifti1Image(volume, affine)
    # Every shown voxel is drawn (nilearn hides |value| <= threshold; the rest of the volume is 0). On a black
    # background, since cold_hot runs to white at vmax: the best voxels would vanish on white.
    display = plotting.plot_glass_brain(image, threshold=1e-12, colorbar=True, plot_abs=False, black_bg=True,
                                        title=title, vmax=vmax, cmap="cold_hot")
    table = pd.DataFrame({"voxel": np.arange(len(values)), "i": coords[:, 0], "j": coords[:, 1], "k": coords[:, 2],
                          "value": values, "shown": shown})
    with atomic_path(path) as tmp:
        display.savefig(str(tmp), dpi=100)
    display.close()
    _write_csv(table, path)
    return table


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


def attention_figure(summary_a: pd.DataFrame, summary_b: pd.DataFrame, path: str | os.PathLike,
                     label_a: str = "vanilla", label_b: str = "fine-tuned") -> pd.DataFrame:
    """``[CLS]`` attention per layer, two models (paper Figure 4): ``[CLS]``->``[CLS]`` and ``[CLS]``->``[SEP]``.

    Parameters
    ----------
    summary_a, summary_b : DataFrame
        :func:`brainalign.features.attention.attention_summary` of each model (``layer``, ``target``, ``mean``, ``se``).
    path : path
        PNG to write; the numbers (both summaries, with a ``model`` column) go beside it as ``<stem>.csv``.
    label_a, label_b : str
        The models' names in the legend and the CSV.
    """
    table = pd.concat([summary_a.assign(model=label_a), summary_b.assign(model=label_b)], ignore_index=True)
    table = table[["model"] + [c for c in table.columns if c != "model"]]
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.0), sharey=True)
    for ax, (target, name) in zip(axes, (("cls", "[CLS] → [CLS]"), ("sep", "[CLS] → [SEP]"))):
        for (label, summary), colour in zip(((label_a, summary_a), (label_b, summary_b)), ("#4477aa", "#ee6677")):
            rows = summary.loc[summary["target"] == target].sort_values("layer")
            ax.errorbar(rows["layer"], rows["mean"], yerr=rows["se"], marker="o", ms=3, capsize=2,
                        color=colour, label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("layer")
    axes[0].set_ylabel("attention weight (mean ± SE)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, table, path)
    return table


def changed_examples_figure(prevalence: pd.DataFrame, path: str | os.PathLike, title: str) -> pd.DataFrame:
    """Mean of each feature on changed against unchanged examples, with ±SE bars (bootstrap).

    Parameters
    ----------
    prevalence : DataFrame
        :func:`brainalign.metrics.changes.feature_prevalence` (``feature``, ``changed_mean``, ``changed_se``,
        ``unchanged_mean``, ``unchanged_se``, ``n_changed``, ``n_unchanged``).
    path : path
        PNG to write; ``prevalence`` goes beside it as ``<stem>.csv``.
    """
    table = prevalence.reset_index(drop=True)
    x = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(table) + 1.5), 3.2))
    for offset, group, colour in ((-0.2, "changed", "#ee6677"), (0.2, "unchanged", "#4477aa")):
        n = int(table[f"n_{group}"].iloc[0]) if len(table) else 0
        ax.bar(x + offset, table[f"{group}_mean"], width=0.4, yerr=table[f"{group}_se"], capsize=2,
               color=colour, label=f"{group} (n = {n})")
    ax.set_xticks(x, table["feature"], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("mean over examples (± bootstrap SE)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, table, path)
    return table


def comparison_curve_figure(curves: dict[str, np.ndarray], path: str | os.PathLike, title: str, label_a: str,
                            label_b: str) -> pd.DataFrame:
    """Paper Figure 2: mean accuracy difference ``B - A`` over the top ``x`` voxels, one line per participant.

    Each participant's line is the mean over seeds of :func:`brainalign.metrics.comparisons.comparison_curves`,
    with a light band of ±1 SD over seeds (ddof = 1; zero with a single seed); the black line is the mean
    over participants, for ``x`` up to the smallest participant's voxel count. Above the zero line, model B
    is better.

    Parameters
    ----------
    curves : dict of participant to ndarray of shape (n_seeds, n_voxels)
        Each participant's comparison curves, one row per seed.
    path : path
        PNG to write; the numbers go beside it as ``<stem>.csv``.
    title : str
        Figure title.
    label_a, label_b : str
        Names of models A and B, for the axis label.

    Returns
    -------
    DataFrame
        Columns ``subject``, ``n_voxels`` (x), ``mean``, ``sd``: per participant, mean and SD over seeds;
        rows with subject ``"mean"`` hold the mean over participants and, in ``sd``, the SD across
        participants' mean curves (ddof = 1; zero with one participant).
    """
    if not isinstance(curves, dict) or not curves:
        raise InputError("curves", "participants", "a non-empty dict of participant to (n_seeds, n_voxels) array",
                         repr(curves)[:80])
    summaries = {}
    for subject, curve in curves.items():
        array = np.asarray(curve, dtype=np.float64)
        if array.ndim != 2 or 0 in array.shape or not np.all(np.isfinite(array)):
            raise InputError(f"curves[{subject!r}]", "values", "a finite (n_seeds, n_voxels) array",
                             f"shape {array.shape}" + ("" if np.all(np.isfinite(array)) else " with NaN/inf"))
        sd = array.std(axis=0, ddof=1) if array.shape[0] > 1 else np.zeros(array.shape[1])
        summaries[str(subject)] = (array.mean(axis=0), sd)
    n_common = min(len(mean) for mean, _ in summaries.values())
    means = np.stack([mean[:n_common] for mean, _ in summaries.values()])
    grand_mean = means.mean(axis=0)
    grand_sd = means.std(axis=0, ddof=1) if len(means) > 1 else np.zeros(n_common)

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    frames = []
    for subject, (mean, sd) in summaries.items():
        x = np.arange(1, len(mean) + 1)
        (line,) = ax.plot(x, mean, lw=1, label=f"participant {subject}")
        ax.fill_between(x, mean - sd, mean + sd, color=line.get_color(), alpha=0.15, lw=0)
        frames.append(pd.DataFrame({"subject": subject, "n_voxels": x, "mean": mean, "sd": sd}))
    x = np.arange(1, n_common + 1)
    ax.plot(x, grand_mean, color="k", lw=2, label="mean over participants")
    frames.append(pd.DataFrame({"subject": "mean", "n_voxels": x, "mean": grand_mean, "sd": grand_sd}))
    ax.axhline(0.0, color="0.4", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("number of top voxels (sorted by the better model's accuracy)")
    ax.set_ylabel(f"accuracy difference\n{label_b} − {label_a}")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    table = pd.concat(frames, ignore_index=True)
    _save(fig, table, path)
    return table


def voxel_map_figure(difference: np.ndarray, significant: np.ndarray, coords: np.ndarray, affine: np.ndarray,
                     shape: tuple[int, int, int], path: str | os.PathLike, title: str,
                     regions: np.ndarray | None = None, tested: bool = True) -> pd.DataFrame:
    """Paper Figure 3: the significant voxels' accuracy difference on the MNI template and on fsaverage5.

    ``tested=False``: no test was possible (too few initialisations); ``significant`` then only selects
    the voxels to show, and the subtitle says the map is untested.

    Panels: a glass brain (four views) and axial slices on nilearn's MNI152 template, with ``regions``
    outlined on both; the lateral surface of each hemisphere of fsaverage5 (inflated, sulcal depth beneath).
    Everything ships inside nilearn; nothing is downloaded. The colour scale is symmetric and saturates at
    the 95th percentile of ``|difference|`` over all of this participant's voxels (significant or not).

    On the surface, each vertex shows the mean difference of the significant voxels its sampling line
    crosses, drawn where at least a quarter of the samples fall in significant voxels, so that the
    projection neither dilutes significant values with the zeros around them nor loses small clusters.

    Parameters
    ----------
    difference : ndarray of shape (n_voxels,)
        Mean accuracy difference per voxel (model B minus model A; positive: B better).
    significant : ndarray of bool, shape (n_voxels,)
        Voxels kept after FDR correction; only these are drawn.
    coords : ndarray of int, shape (n_voxels, 3)
        Voxel indices into a volume of ``shape``.
    affine : ndarray of shape (4, 4)
        Voxel indices to MNI millimetres.
    shape : tuple of 3 int
        The volume's shape.
    path : path
        PNG to write; the numbers go beside it as ``<stem>.csv``.
    title : str
        Figure title.
    regions : ndarray of bool, shape (n_voxels,), optional
        Voxels of the language regions, outlined on the volume panels.

    Returns
    -------
    DataFrame
        One row per voxel: ``voxel``, ``i``, ``j``, ``k``, ``difference``, ``significant`` (and ``region``
        when ``regions`` is given).
    """
    import nibabel as nib
    from nilearn import datasets, plotting, surface


    difference = np.asarray(difference, dtype=np.float64)
    if difference.ndim != 1 or difference.size == 0 or not np.all(np.isfinite(difference)):
        raise InputError("difference", "values", "a non-empty finite 1-D array", f"shape {difference.shape}")
    n_voxels = difference.size
    significant = np.asarray(significant)
    if significant.shape != (n_voxels,) or significant.dtype != bool:
        raise InputError("significant", "values", f"a boolean array of shape ({n_voxels},)",
                         f"{significant.dtype} of shape {significant.shape}")
    shape = tuple(int(s) for s in shape)
    coords = np.asarray(coords)
    if len(shape) != 3 or coords.shape != (n_voxels, 3) or not np.issubdtype(coords.dtype, np.integer):
        raise InputError("coords", "shape", f"integer voxel indices of shape ({n_voxels}, 3) and a 3-D shape",
                         f"{coords.dtype} of shape {coords.shape}, volume shape {shape}")
    if np.any(coords < 0) or np.any(coords >= np.asarray(shape)):
        raise InputError("coords", "values", f"indices inside the volume {shape}", "indices outside it")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise InputError("affine", "shape", "(4, 4)", str(affine.shape))
    if regions is not None:
        regions = np.asarray(regions)
        if regions.shape != (n_voxels,) or regions.dtype != bool:
            raise InputError("regions", "values", f"a boolean array of shape ({n_voxels},)",
                             f"{regions.dtype} of shape {regions.shape}")

    def image(values: np.ndarray) -> nib.Nifti1Image:
        volume = np.zeros(shape, dtype=np.float32)
        volume[tuple(coords.T)] = values
        return nib.Nifti1Image(volume, affine)

    vmax = float(np.percentile(np.abs(difference), 95)) or float(np.abs(difference).max()) or 1.0
    shown = image(np.where(significant, difference, 0.0))
    colours = {"threshold": 1e-12, "vmax": vmax, "cmap": "RdBu_r", "symmetric_cbar": True}

    fig = plt.figure(figsize=(10, 8.8))
    grid = fig.add_gridspec(3, 2, height_ratios=[1.0, 0.8, 1.2])
    glass = plotting.plot_glass_brain(shown, display_mode="lzry", axes=fig.add_subplot(grid[0, :]),
                                      plot_abs=False, colorbar=True, **colours)
    slices = plotting.plot_stat_map(shown, bg_img=datasets.load_mni152_template(resolution=2), display_mode="z",
                                    cut_coords=6, axes=fig.add_subplot(grid[1, :]), colorbar=False,
                                    black_bg=False, draw_cross=False, **colours)
    if regions is not None and regions.any():
        outline = image(regions.astype(np.float32))
        glass.add_contours(outline, levels=[0.5], colors="limegreen", linewidths=1.5)
        slices.add_contours(outline, levels=[0.5], colors="limegreen", linewidths=1.0)
    fsaverage = datasets.fetch_surf_fsaverage("fsaverage5")
    sums, hits = shown, image(significant.astype(np.float32))
    for column, hemi in enumerate(("left", "right")):
        fraction = surface.vol_to_surf(hits, fsaverage[f"pial_{hemi}"])
        mean = surface.vol_to_surf(sums, fsaverage[f"pial_{hemi}"]) / np.maximum(fraction, 1e-12)
        texture = np.where(fraction >= 0.25, mean, 0.0)
        plotting.plot_surf_stat_map(fsaverage[f"infl_{hemi}"], texture, hemi=hemi, view="lateral",
                                    bg_map=fsaverage[f"sulc_{hemi}"], axes=fig.add_subplot(grid[2, column],
                                                                                           projection="3d"),
                                    figure=fig, colorbar=False, title=f"{hemi} hemisphere, lateral", **colours)
    outlined = ", language regions outlined" if regions is not None else ""
    verdict = (f"{int(significant.sum())} of {n_voxels} voxels significant" if tested
               else f"untested: all {int(significant.sum())} voxels shown")
    fig.suptitle(f"{title}\n{verdict}; colour saturates at ±{vmax:.3g}{outlined}", fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.93, bottom=0.02, hspace=0.12, wspace=0.0)
    table = pd.DataFrame({"voxel": np.arange(n_voxels), "i": coords[:, 0], "j": coords[:, 1], "k": coords[:, 2],
                          "difference": difference, "significant": significant})
    if regions is not None:
        table["region"] = regions
    _save(fig, table, path)
    return table
