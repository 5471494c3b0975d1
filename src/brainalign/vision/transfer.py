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
        for target in rois:
            path = Path(checkpoint_dir) / f"{source}__{target}.safetensors" if checkpoint_dir is not None else None
            result = train_gnet(images, training[target], settings, checkpoint=path, core=models[source].model)
            details.r[(source, target)] = {p.name: validation_r(result.model, images, p) for p in checked[target]}
            details.best_epochs[(source, target)] = result.best_epoch
    matrix = _matrix(details, rois, None)
    everyone = set.intersection(*(set(p.name for p in checked[roi]) for roi in rois))
    names = [p.name for p in checked[rois[0]] if p.name in everyone]
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
