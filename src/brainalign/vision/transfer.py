"""The transfer matrix between ROIs' GNet cores, and its asymmetry index (St-Yves et al. 2023; reference section 10).

**Matrix.** Each ROI ``i``'s GNet8r core is frozen (with its training mean and pre-filter) and new readouts are
trained on it for every ROI ``j`` (:func:`brainalign.vision.gnet.train_gnet` with ``core=``; the same settings,
model selection on the held-out training trials). Every readout is then scored on the *validation* trials the
caller passes (NSD's shared-image trials), never on training trials: voxelwise Pearson r. Entry ``(i, j)`` is the
mean over ROI ``j``'s voxels (all participants' pooled) of ``r(core i, new readout) - r(ROI j's own GNet8r)``,
as the seed's notebook computes it (``gnet8j_v_gnet8r_and_transfer_matrix.ipynb``: ``mean(v[roi_mask] -
roiwise_val_ccs[roi_mask])``). The diagonal is then not 0 by construction: it is what retraining a readout on a
frozen core costs against training core and readout together (near 0 when the readout training converges). Rows
are source cores, columns target ROIs, in the order of ``models``.

**Asymmetry index**, as the seed's notebook (``gnet8j_v_gnet8r_and_transfer_matrix.ipynb``) computes it: with ROIs
in hierarchical ``order`` and ``d`` the distance between a source's and a target's places in it, ``a_up`` is the
least-squares slope through the origin of the entries against ``d`` over the pairs whose source comes *later*
than its target (``sum d m / sum d^2``), ``a_down`` the same over the pairs whose source comes earlier, and
``alpha = (a_up - a_down) / (|a_up| + |a_down|)``. The seed's matrix is drawn with rows (models) rising upwards, so
its "upper" triangle is source-after-target. ``alpha > 0``: later ROIs' cores predict earlier ROIs better than the
reverse (published 0.226 +/- 0.072, pooled over participants). With two ROIs each slope is the single entry.

**Truth on the simulated twin.** :func:`ideal_transfer_matrix` computes the matrix the twin's generative model
implies, from its hidden network and true pRFs, without GNet: a truth to test trained cores against.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from brainalign.errors import ConfigError, InputError
from brainalign.vision.evaluation import voxel_correlation
from brainalign.vision.gnet import GNet, GNetResult, GNetSettings, Participant, check_participants, predict, train_gnet

ORDER = ("V1", "V2", "V3", "hV4")


@dataclass
class TransferDetails:
    """What the matrix is made of.

    Attributes
    ----------
    r : dict of (source, target) to dict of str to ndarray
        Validation r of every target readout's voxels with the source's frozen core (new readouts).
    own_r : dict of str to dict of str to ndarray
        Validation r of each ROI's own GNet8r (its jointly trained core and readouts), per participant: the
        baseline of the matrix.
    per_participant : dict of str to DataFrame
        The matrix from one participant's voxels only, for the participants every ROI has.
    best_epochs : dict of (source, target) to int
        The selected epoch of each frozen-core training.
    """

    r: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)
    own_r: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    per_participant: dict[str, pd.DataFrame] = field(default_factory=dict)
    best_epochs: dict[tuple[str, str], int] = field(default_factory=dict)


def validation_r(model: GNet, images: np.ndarray, participant: Participant) -> np.ndarray:
    """Voxelwise Pearson r of readout ``participant.name``'s predictions with the participant's validation
    trials (each image predicted once, whatever its repeats)."""
    unique, inverse = np.unique(participant.image_index, return_inverse=True)
    predictions = predict(model, images[unique], participant.name)[inverse]
    return voxel_correlation(participant.responses, predictions)


def transfer_matrix(models: dict[str, GNetResult], images: np.ndarray, training: dict[str, Sequence[Participant]],
                    validation: dict[str, Sequence[Participant]], settings: GNetSettings,
                    checkpoint_dir: str | os.PathLike | None = None) -> tuple[pd.DataFrame, TransferDetails]:
    """Train new readouts for every ROI on every ROI's frozen core and compare their validation r.

    Parameters
    ----------
    models : dict of str to GNetResult
        Each ROI's GNet8r (:func:`brainalign.vision.gnet.train_gnet8r`), in the matrix's order.
    images : ndarray of uint8, shape (n_images, height, width, 3)
        Every image the training and validation trials point into.
    training : dict of str to list of Participant
        Per ROI, the training trials its readouts train on (held-out share for selection included).
    validation : dict of str to list of Participant
        Per ROI, the validation trials (shared images) of the same readouts; never trained on.
    settings : GNetSettings
        Of the readouts' training; ``image_size`` and ``widths`` must be the cores'.
    checkpoint_dir : path, optional
        Each training resumable from ``<checkpoint_dir>/<source>__<target>.safetensors``.

    Returns
    -------
    matrix : DataFrame
        Source ROI (index ``source``) x target ROI (columns ``target``): mean over the target's voxels of the
        validation r difference from the target's own GNet8r (module docstring).
    details : TransferDetails

    Raises
    ------
    ConfigError
        If ``models``, ``training`` and ``validation`` do not name the same ROIs.
    InputError
        If a ROI's validation readouts are not its training readouts, or trials are bad.
    """
    rois = list(models)
    if set(training) != set(rois) or set(validation) != set(rois):
        raise ConfigError(f"transfer_matrix: models, training and validation must name the same ROIs; found "
                          f"{rois}, {list(training)}, {list(validation)}")
    checked = {}
    for roi in rois:
        names = [p.name for p in check_participants(images, training[roi], source=f"training {roi}")]
        checked[roi] = check_participants(images, validation[roi], min_trials=2, source=f"validation {roi}")
        if [p.name for p in checked[roi]] != names:
            raise InputError(f"validation {roi}", "name", f"the training readouts {names}",
                             str([p.name for p in checked[roi]]))
        shapes = {p.name: np.shape(p.responses)[1] for p in training[roi]}
        for p in checked[roi]:
            if p.responses.shape[1] != shapes[p.name]:
                raise InputError(f"validation {roi}: {p.name}", "responses",
                                 f"{shapes[p.name]} voxels (the training responses')", str(p.responses.shape[1]))
    details = TransferDetails()
    for roi in rois:
        details.own_r[roi] = {p.name: validation_r(models[roi].model, images, p) for p in checked[roi]}
    for source in rois:
        row, epochs = transfer_row(models[source], images, {t: training[t] for t in rois},
                                   {t: checked[t] for t in rois}, settings, checkpoint_dir, name=source)
        details.r.update({(source, target): r for target, r in row.items()})
        details.best_epochs.update({(source, target): e for target, e in epochs.items()})
    return assemble_matrix(details, rois)


def transfer_row(core: GNetResult, images: np.ndarray, training: dict[str, Sequence[Participant]],
                 validation: dict[str, Sequence[Participant]], settings: GNetSettings,
                 checkpoint_dir: str | os.PathLike | None = None, name: str = "core",
                 ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int]]:
    """One row of the matrix: new readouts for every target ROI trained on ``core``, frozen.

    A row needs nothing from the other rows, so the rows of a matrix can be trained apart (in parallel, on other
    machines) and put together with :func:`assemble_matrix`.

    Parameters
    ----------
    core : GNetResult
        The source ROI's GNet8r.
    images, settings
        As for :func:`transfer_matrix`.
    training, validation : dict of str to list of Participant
        Per target ROI, the readouts' training trials and their validation trials (never trained on).
    checkpoint_dir : path, optional
        Each training resumable from ``<checkpoint_dir>/<name>__<target>.safetensors``.
    name : str
        The source's name in the checkpoint files.

    Returns
    -------
    r : dict of str to dict of str to ndarray
        Per target ROI and participant, the validation r of every voxel with the new readout.
    best_epochs : dict of str to int
        Per target ROI, the selected epoch.
    """
    r, epochs = {}, {}
    for target in training:
        path = Path(checkpoint_dir) / f"{name}__{target}.safetensors" if checkpoint_dir is not None else None
        result = train_gnet(images, training[target], settings, checkpoint=path, core=core.model)
        r[target] = {p.name: validation_r(result.model, images, p) for p in validation[target]}
        epochs[target] = result.best_epoch
    return r, epochs


def assemble_matrix(details: TransferDetails, rois: Sequence[str]) -> tuple[pd.DataFrame, TransferDetails]:
    """The matrix (pooled over participants) and ``details.per_participant`` from ``details.r`` (every (source,
    target) pair of ``rois``) and ``details.own_r`` (every target).

    Raises
    ------
    InputError
        If a pair or a target's own r is missing.
    """
    rois = list(rois)
    missing = [f"{a}->{b}" for a in rois for b in rois if (a, b) not in details.r] + [
        f"own {b}" for b in rois if b not in details.own_r]
    if missing:
        raise InputError("transfer matrix", "entries", f"every pair of {rois} and each ROI's own r",
                         f"{missing} missing")
    matrix = _matrix(details, rois, None)
    everyone = set.intersection(*(set(details.own_r[roi]) for roi in rois))
    names = [name for name in details.own_r[rois[0]] if name in everyone]
    details.per_participant = {name: _matrix(details, rois, name) for name in names}
    return matrix, details


def _matrix(details: TransferDetails, rois: list[str], participant: str | None) -> pd.DataFrame:
    values = np.zeros((len(rois), len(rois)))
    for a, source in enumerate(rois):
        for b, target in enumerate(rois):
            names = [participant] if participant is not None else list(details.own_r[target])
            difference = np.concatenate([details.r[(source, target)][n] - details.own_r[target][n] for n in names])
            values[a, b] = difference.mean()
    return pd.DataFrame(values, index=pd.Index(rois, name="source"), columns=pd.Index(rois, name="target"))


def asymmetry_index(matrix: pd.DataFrame, order: Sequence[str] = ORDER) -> float:
    """The seed's asymmetry index of a transfer matrix (module docstring); NaN when both slopes are 0.

    Parameters
    ----------
    matrix : DataFrame
        Source ROI (index) x target ROI (columns), holding at least the ROIs of ``order``.
    order : sequence of str
        The ROIs from early to late; only these enter.

    Raises
    ------
    InputError
        If a ROI of ``order`` is missing from the rows or columns, or an entry used is not finite.
    """
    order = list(order)
    if len(order) < 2 or len(set(order)) != len(order):
        raise ConfigError(f"asymmetry_index: order must name at least two distinct ROIs, found {order}")
    for axis, labels in (("index (source ROIs)", matrix.index), ("columns (target ROIs)", matrix.columns)):
        missing = [roi for roi in order if roi not in labels]
        if missing:
            raise InputError("transfer matrix", axis, f"the ROIs {order}", f"{list(labels)} (missing {missing})")
    values = matrix.loc[order, order].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise InputError("transfer matrix", "entries", "finite numbers", str(values))
    place = np.arange(len(order))
    distance = place[:, None] - place[None, :]  # source's place minus target's
    up, down = distance > 0, distance < 0
    a_up = (distance[up] * values[up]).sum() / (distance[up] ** 2).sum()
    a_down = (-distance[down] * values[down]).sum() / (distance[down] ** 2).sum()
    denominator = abs(a_up) + abs(a_down)
    return float((a_up - a_down) / denominator) if denominator > 0 else float("nan")


# --- the twin's ground truth ----------------------------------------------------------------------------------------

#: Ridge penalties of the ideal readouts, per feature: the penalty is ``p x`` these for ``p`` features, so that
#: cores of different sizes get the same prior per feature.
IDEAL_PENALTIES = np.logspace(-3, 3, 13)


@dataclass
class IdealTransferDetails:
    """What the ideal transfer matrix is made of.

    Attributes
    ----------
    r : dict of (source, target) to dict of str to ndarray
        Validation r of the target ROI's voxels read out from the source's ideal core, per participant.
    penalties : dict of (source, target) to dict of str to ndarray
        The ridge penalty each voxel's readout chose (leave-one-image-out), per participant.
    per_participant : dict of str to DataFrame
        The matrix from one participant's voxels only.
    n_features : dict of str to int
        The ideal core's features per voxel (its layers' channels).
    """

    r: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)
    penalties: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)
    per_participant: dict[str, pd.DataFrame] = field(default_factory=dict)
    n_features: dict[str, int] = field(default_factory=dict)


def ideal_transfer_matrix(root: str | os.PathLike, subjects: Sequence[int] | None = None,
                          rois: Sequence[str] = ORDER,
                          penalties: np.ndarray = IDEAL_PENALTIES) -> tuple[pd.DataFrame, IdealTransferDetails]:
    """The transfer matrix a simulated twin's own generative model implies, computed without any GNet.

    The twin (:mod:`brainalign.vision.simulate`) drives ROI ``i``'s voxels from the hidden network's layers
    ``ROI_LAYERS[i]`` (V1 conv1; V2 conv1-conv2; V3 conv1-conv3; hV4 conv1-conv5). The **ideal core** of ROI ``i``
    is those layers' maps, channel-normalised as the twin normalises them: what a perfectly trained ROI-``i`` core
    would represent. For a target voxel of ROI ``j`` the ideal core's channels are pooled under the voxel's *true*
    pRF (truth.json), so a readout has only the channel weights to learn, and the matrix measures what the cores
    contain, not how well fields are found. Per (source ``i``, target ``j``) and voxel, a ridge regression from those
    pooled channels (z-scored over the training images) to the voxel's mean response over each training image's
    trials, its penalty chosen per voxel by exact leave-one-image-out error among ``p x penalties`` (``p``
    features), predicts the validation images; r is with the validation *single trials*, as
    :func:`validation_r` scores GNet. The training and validation trials are those the pipeline uses (not shared /
    shared images), so noise and sample size are the experiment's. Entry ``(i, j)`` is the mean over ROI ``j``'s
    voxels (participants pooled) of ``r(core i) - r(core j)``: the seed's definition, with each ROI's ideal core
    as its own model, so the diagonal is 0 exactly.

    What the truth says follows from the nesting of ``ROI_LAYERS``: a later ROI's core holds every layer an
    earlier ROI reads, so transfer down costs only the estimation noise of the extra channels, while an earlier
    core lacks the layers a later ROI reads most (its top layer carries ``top_layer_share`` of the signal), which
    the channels it has predict only in part.

    Parameters
    ----------
    root : path
        A twin written by :func:`~brainalign.vision.simulate.simulate_nsd` (its ``truth.json`` beside the data).
    subjects : sequence of int, optional
        Participants (1-based); all of the twin's by default.
    rois : sequence of str
        The ROIs of the matrix, in its order.
    penalties : ndarray
        Per-feature ridge penalties to choose from.

    Returns
    -------
    matrix : DataFrame
        Source ROI (index ``source``) x target ROI (columns ``target``).
    details : IdealTransferDetails

    Raises
    ------
    InputError
        If ``root`` is not a twin (no truth.json), or a participant or ROI is not in it.
    """
    from brainalign.vision.nsd import NsdLayout, load_recording, read_images
    from brainalign.vision.simulate import (ROI_LAYERS, VisionSimulation, gaussian_weights, hidden_feature_maps,
                                            read_truth, voxel_truth)

    truth = read_truth(root)
    rois = list(rois)
    unknown = [roi for roi in rois if roi not in ROI_LAYERS]
    if unknown or not rois:
        raise InputError("ideal_transfer_matrix", "rois", f"ROIs among {list(ROI_LAYERS)}", str(rois))
    settings = VisionSimulation(**truth["settings"])
    subjects = list(range(1, settings.subjects + 1)) if subjects is None else [int(s) for s in subjects]
    images = read_images(NsdLayout(root), np.arange(truth["images"]["n_images"]))
    maps, _ = hidden_feature_maps(images, settings)
    penalties = np.asarray(penalties, dtype=np.float64)
    details = IdealTransferDetails(n_features={roi: int(sum(maps[layer].shape[1] for layer in ROI_LAYERS[roi]))
                                               for roi in rois})
    for subject in subjects:
        name = f"subj{subject:02d}"
        recording = load_recording(root, subject, rois=rois)
        known = voxel_truth(truth, subject, recording.voxels)
        train, validation = ~recording.shared, recording.shared
        train_ids, train_rows = np.unique(recording.images[train], return_inverse=True)
        # The mean over an image's training trials: ridge on trial rows with equal repeats is ridge on these.
        means = np.zeros((len(train_ids), recording.responses.shape[1]))
        np.add.at(means, train_rows, recording.responses[train])
        means /= np.bincount(train_rows, minlength=len(train_ids))[:, None]
        validation_ids, validation_rows = np.unique(recording.images[validation], return_inverse=True)
        for target in rois:
            voxels = np.flatnonzero(recording.rois == target)
            prf = np.column_stack([known["prf_x"][voxels], known["prf_y"][voxels], known["prf_sigma"][voxels]])
            pooled = {}
            needed = sorted({layer for roi in rois for layer in ROI_LAYERS[roi]}, key=list(maps).index)
            for layer in needed:
                values = maps[layer]
                fields = gaussian_weights(prf[:, 0], prf[:, 1], prf[:, 2], *values.shape[2:]).astype(np.float32)
                cells = values.reshape(values.shape[0], values.shape[1], -1)
                # (voxels, images, channels): every image's channels under each voxel's true pRF
                pooled[layer] = (np.einsum("ncs,vs->vnc", cells[train_ids], fields, optimize=True),
                                 np.einsum("ncs,vs->vnc", cells[validation_ids], fields, optimize=True))
            for source in rois:
                layers = ROI_LAYERS[source]
                fit = np.concatenate([pooled[layer][0] for layer in layers], axis=2).astype(np.float64)
                held = np.concatenate([pooled[layer][1] for layer in layers], axis=2).astype(np.float64)
                predicted, chosen = _ridge_loo(fit, means[:, voxels].T, held, penalties * fit.shape[2])
                r = voxel_correlation(recording.responses[np.ix_(validation, voxels)],
                                      predicted.T[validation_rows])
                details.r.setdefault((source, target), {})[name] = r
                details.penalties.setdefault((source, target), {})[name] = chosen
    names = [f"subj{s:02d}" for s in subjects]

    def matrix(which: list[str]) -> pd.DataFrame:
        values = np.array([[np.concatenate([details.r[(s, t)][n] - details.r[(t, t)][n] for n in which]).mean()
                            for t in rois] for s in rois])
        return pd.DataFrame(values, index=pd.Index(rois, name="source"), columns=pd.Index(rois, name="target"))

    details.per_participant = {n: matrix([n]) for n in names}
    return matrix(names), details


def _ridge_loo(fit: np.ndarray, targets: np.ndarray, held: np.ndarray,
               penalties: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per voxel ridge with the penalty of least leave-one-out error, in the dual (images < features).

    Parameters
    ----------
    fit : ndarray, shape (voxels, n_fit, p)
        Each voxel's features on the fitting images.
    targets : ndarray, shape (voxels, n_fit)
    held : ndarray, shape (voxels, n_held, p)
        The features on the images to predict.
    penalties : ndarray, shape (k,)

    Returns
    -------
    predictions : ndarray, shape (voxels, n_held)
    chosen : ndarray, shape (voxels,)
        Each voxel's penalty.
    """
    mean, sd = fit.mean(axis=1, keepdims=True), fit.std(axis=1, keepdims=True)
    sd = np.where(sd > 1e-12 * np.maximum(np.abs(mean), 1.0), sd, np.inf)  # a constant feature contributes nothing
    fit, held = (fit - mean) / sd, (held - mean) / sd
    offset = targets.mean(axis=1, keepdims=True)
    y = targets - offset
    gram = fit @ fit.transpose(0, 2, 1)                                  # (voxels, n_fit, n_fit)
    eigenvalues, vectors = np.linalg.eigh(gram)
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    projected = np.einsum("vji,vj->vi", vectors, y)                      # U'y
    shrink = eigenvalues[:, None, :] / (eigenvalues[:, None, :] + penalties[None, :, None])  # (v, k, n)
    fitted = np.einsum("vji,vki->vkj", vectors, shrink * projected[:, None, :])   # H y per penalty
    leverage = np.einsum("vji,vki->vkj", vectors**2, shrink)                       # diag H per penalty
    # Centring uses every fitting image, so the exact leave-one-out residual has leverage 1/n added.
    leverage = leverage + 1.0 / fit.shape[1]
    loo = (((y[:, None, :] - fitted) / (1.0 - leverage)) ** 2).mean(axis=2)       # (voxels, k)
    best = loo.argmin(axis=1)
    alpha = penalties[best]
    dual = np.einsum("vji,vi->vj", vectors, projected / (eigenvalues + alpha[:, None]))  # (G + aI)^-1 y
    predictions = np.einsum("vhp,vfp,vf->vh", held, fit, dual) + offset
    return predictions, alpha
