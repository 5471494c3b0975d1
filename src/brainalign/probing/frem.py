"""FReM decoding of one feature from one brain region's voxels, scored only on held-out runs (seed 003's brain side).

:func:`decode_feature` decodes a feature's value per segment from the region's images with nilearn's
:class:`~nilearn.decoding.FREMRegressor` (continuous features, scored by R²) or
:class:`~nilearn.decoding.FREMClassifier` (features that are only 0 or 1, scored by ROC AUC), the seed's
``estimator='ridge', cv=5, clustering_percentile=30, screening_percentile=4`` (reference §9).

**Held out by run.** Every run is held out once (outer folds); FReM is fitted on the other runs and predicts the
held-out one. FReM's own cross-validation (the folds whose best models it averages, "CV bagging") splits the
training runs only. By default (``inner="blocks"``) each inner fold holds out one contiguous ``1/cv`` of every
training run, so the bagged models are not chosen on samples that are the immediate neighbours of their training
samples; ``inner="shuffle"`` is nilearn's own split of an integer ``cv`` (``ShuffleSplit`` /
``StratifiedShuffleSplit`` of 10 %), seeded with ``seed``. Per outer fold a dummy FReM (``dummy_regressor``, the
training mean; ``dummy_classifier``, the training prior) is fitted on the same runs: the baseline a feature must
beat. Nothing here scores a model on the samples it was fitted on: there is no in-sample path.

**Scores.** ``r2`` is scikit-learn's ``r2_score`` of the held-out predictions of all folds pooled (squares about
the mean of all held-out values; each fold predicts from its own training mean, so a decoder that knows nothing
scores slightly below 0, as the dummy shows). ``roc_auc`` is the mean, over the held-out runs that hold both
classes, of the ROC AUC (as ``roc_auc_score``) of the run's decision values. Pooling decision values across folds
would mix the folds' intercepts, which carry each training set's class prior, and rank one model's outputs against
another's: with a feature more frequent in some runs than in others that alone moves a pooled AUC from 0.5 (the
dummy's pooled AUC falls below 0.5, as the run richest in the feature is predicted from the lowest training
prior). Within a run the dummy's AUC is exactly 0.5. Per-fold scores are kept too. ``gain = score - dummy_score``.

**p value.** A circular-shift null *within runs*: each run's held-out predictions are rolled by a shift between
``min(MIN_SHIFT, n // 4)`` and ``n - min(MIN_SHIFT, n // 4)`` samples (``n_shifts`` fractions of each run's length,
evenly spaced, duplicates dropped) and the pooled score recomputed. A shift keeps both series' autocorrelation
and each run's set of predictions and breaks their alignment. ``p = (1 + #(null >= observed)) / (1 + n_null)``.

**A fold with nothing to learn** (a training target that is constant, or one class of a binary feature) gets NaN
predictions and a reason in :attr:`FremResult.fold_reasons`; the score uses the other folds.

**Delays.** Each sample's images may come from several hemodynamic delays (FIR): :func:`delayed_volume` puts each
delay's copy of the region into its own slab of a taller volume, one empty slice apart, so one spatial decoder
reads all delays and FReM's ReNA clustering (which joins only face-adjacent voxels of the mask) never merges voxels
of different delays. One delay (the seed's 2-TR shift) is the plain region. The volume is cropped to the region's
bounding box, so memory scales with the region, not the brain.

**Two corrections to nilearn (0.14) that this module makes.**

* FReM clusters voxels with ReNA, fits the estimator on the cluster *means*, and maps the coefficients back by
  copying each cluster's coefficient to its voxels (``ReNA(scaling=False)``), so the decoder it predicts with
  weighs a cluster by its size: held-out predictions come out about ``100 / clustering_percentile`` times too
  large (at the seed's 30 %, R² is strongly negative for a feature decoded at correlation 0.9). With
  ``scaling=True`` ReNA's transform and inverse are adjoint and FReM predicts with exactly the model it fitted
  (ridge on the size-scaled cluster signals is ridge on voxel weights constant within clusters). Fits here run
  with nilearn's ReNA replaced by the scaled one (:func:`_scaled_rena`), in this process (``n_jobs=1`` inside
  FReM; parallelise over regions and features instead).
* ReNA's voxel graph is wrong when the mask holds a voxel with no face neighbour in the mask: nilearn numbers the
  graph's nodes by the voxels that have an edge, so every voxel after the isolated one (in the mask's order) is
  wired in its predecessor's place. Such isolated voxels are left out (:attr:`FremResult.n_isolated` counts
  them) when clustering is on.

nilearn's expected warnings on small masks (a region is far below 0.5 % of a brain; screening at 100 %; fewer
than 50 features) are silenced; other warnings pass.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import nibabel as nib
import nilearn.decoding.decoder as _decoder
import numpy as np
from nilearn.decoding import FREMClassifier, FREMRegressor
from nilearn.regions import ReNA
from scipy.stats import rankdata
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import PredefinedSplit, ShuffleSplit, StratifiedShuffleSplit

from brainalign.errors import ConfigError, InputError

#: FReM's estimator per setting: (regressor, classifier), nilearn's names.
ESTIMATORS = {"ridge": ("ridge", "ridge_classifier")}
INNER = ("blocks", "shuffle")
BINARY = ("auto", True, False)
#: Smallest circular shift of the null, in samples (TRs): beyond the haemodynamic response's reach, as
#: :data:`brainalign.encoding.experiment.MIN_SHIFT`.
MIN_SHIFT = 10
PARAMS = "params.yaml: probing.frem"
SOURCE = "decode_feature"
_ORIGINAL_RENA = getattr(_decoder, "ReNA", None)
# nilearn warnings that every region-sized mask raises; anything else is let through.
_EXPECTED_WARNINGS = (
    (UserWarning, r"Brain mask is smaller than \.5%"),
    (UserWarning, r"screening_percentile set to '100' despite"),
    (UserWarning, r"The decoding model will be trained only on"),
    (UndefinedMetricWarning, r"Only one class is present in y_true"),
)


@dataclass(frozen=True)
class FremSettings:
    """FReM's parameters (reference §9: the seed's ``cv=5, clustering_percentile=30, screening_percentile=4``).

    Parameters
    ----------
    cv : int
        Inner folds whose best models FReM averages.
    clustering_percentile : float
        ReNA keeps this percentage of the region's (voxels x delays) as clusters; 100 turns clustering off.
    screening_percentile : float
        ANOVA screening, as a percentage of an MNI brain's volume: nilearn rescales it by the mask's volume
        (every delay's copy counts), so a mask under that share of a brain is not screened (at 4 %: under
        75,000 mm³, 2,790 voxels of 3 mm), as in the seed; nor is one left with 100 clusters or fewer.
    estimator : {"ridge"}
        ``RidgeCV`` / ``RidgeClassifierCV``, nilearn's penalty grid (1e-3 ... 1e4) chosen by efficient
        leave-one-out within each inner fold (the seed's).
    binary : {"auto", True, False}
        ``auto``: a target that only takes 0 and 1 is binary (FREMClassifier, ROC AUC), any other continuous
        (FREMRegressor, R²). ``True`` / ``False`` force the kind.
    inner : {"blocks", "shuffle"}
        FReM's inner split of the training runs (module docstring).
    standardize : bool
        nilearn's masker z-scores each voxel over the samples it is given (the training runs at fit, the
        held-out run at prediction, which uses no target).
    n_shifts : int
        Circular shifts of the null.
    seed : int
        Random state of ``inner="shuffle"`` (every other step is deterministic).
    """

    cv: int = 5
    clustering_percentile: float = 30.0
    screening_percentile: float = 4.0
    estimator: str = "ridge"
    binary: bool | str = "auto"
    inner: str = "blocks"
    standardize: bool = True
    n_shifts: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.cv, bool) or not isinstance(self.cv, (int, np.integer)) or self.cv < 2:
            raise ConfigError(f"{PARAMS}.cv: expected a whole number of inner folds >= 2, found {self.cv!r}")
        for name in ("clustering_percentile", "screening_percentile"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 100:
                raise ConfigError(f"{PARAMS}.{name}: expected a percentage in (0, 100], found {value!r}")
        if self.estimator not in ESTIMATORS:
            raise ConfigError(f"{PARAMS}.estimator: expected one of {list(ESTIMATORS)}, found {self.estimator!r}")
        if not any(self.binary is b or (isinstance(b, str) and self.binary == b) for b in BINARY):
            raise ConfigError(f"{PARAMS}.binary: expected one of {list(BINARY)}, found {self.binary!r}")
        if self.inner not in INNER:
            raise ConfigError(f"{PARAMS}.inner: expected one of {list(INNER)}, found {self.inner!r}")
        if not isinstance(self.standardize, bool):
            raise ConfigError(f"{PARAMS}.standardize: expected true or false, found {self.standardize!r}")
        if isinstance(self.n_shifts, bool) or not isinstance(self.n_shifts, (int, np.integer)) or self.n_shifts < 1:
            raise ConfigError(f"{PARAMS}.n_shifts: expected a whole number >= 1, found {self.n_shifts!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ConfigError(f"{PARAMS}.seed: expected a whole number, found {self.seed!r}")


@dataclass
class FremResult:
    """One feature decoded from one region, held out by run.

    Attributes
    ----------
    kind : {"binary", "continuous"}
    metric : {"roc_auc", "r2"}
    score, dummy_score : float
        Over every held-out sample of the folds that could be fitted (module docstring); NaN if none, or if the
        held-out target is constant (binary: no held-out run holds both classes).
    gain : float
        ``score - dummy_score``.
    p_value : float
        Circular-shift null within runs (module docstring); NaN where ``score`` is.
    null : ndarray of shape (n_null,)
        The null's pooled scores.
    runs : ndarray of shape (n_folds,)
        The held-out run of each fold.
    fold_scores, dummy_fold_scores : ndarray of shape (n_folds,)
        Score within each held-out run (NaN where the fold was not fitted or the run's target is constant).
    fold_reasons : list of str
        Why a fold's score is NaN ("" where it is not).
    predictions, dummy_predictions : ndarray of shape (n_samples,)
        Held-out predictions (decision values for binary features), NaN in folds that were not fitted.
    n_voxels : int
        Voxels decoded from (per delay).
    n_isolated : int
        Voxels left out for having no face neighbour in the region (module docstring).
    n_folds_fitted : int
        Folds that were fitted (their held-out run has predictions).
    reason : str
        Why ``score`` is NaN ("" where it is not).
    """

    kind: str
    metric: str
    score: float
    dummy_score: float
    gain: float
    p_value: float
    null: np.ndarray
    runs: np.ndarray
    fold_scores: np.ndarray
    dummy_fold_scores: np.ndarray
    fold_reasons: list[str]
    predictions: np.ndarray
    dummy_predictions: np.ndarray
    n_voxels: int
    n_isolated: int = 0
    n_folds_fitted: int = 0
    reason: str = ""

    def summary(self) -> dict:
        """The scalar fields, for a tidy score table's row."""
        return {"kind": self.kind, "metric": self.metric, "score": self.score, "dummy_score": self.dummy_score,
                "gain": self.gain, "p_value": self.p_value, "n_folds_fitted": self.n_folds_fitted,
                "n_voxels": self.n_voxels, "n_isolated": self.n_isolated, "reason": self.reason}


def region_masks(region_of_voxel: np.ndarray, names: Sequence[str], wanted: Sequence[str] | None = None,
                 source: str = "meta") -> dict[str, np.ndarray]:
    """Each region's voxels, from a release's ``colToROInum`` and ``ROInumToName``.

    Parameters
    ----------
    region_of_voxel : ndarray of int, shape (n_voxels,)
        1-based region number of each voxel (``colToROInum``), 0 for none.
    names : sequence of str
        ``ROInumToName``: the name of region ``k`` is ``names[k - 1]``.
    wanted : sequence of str, optional
        The regions to return (default: every named region, in ``names`` order).
    source : str
        The file the atlas came from, for messages.

    Returns
    -------
    dict of str to ndarray of bool, shape (n_voxels,)

    Raises
    ------
    InputError
        If a voxel's number is not 0 or a named region's.
    ConfigError
        If a wanted region is not among ``names`` (the message lists the known ones).
    """
    numbers = np.asarray(region_of_voxel).reshape(-1)
    names = [str(n) for n in names]
    if numbers.size and (not np.all(np.isfinite(numbers)) or np.any(numbers != np.rint(numbers))
                         or numbers.min() < 0 or numbers.max() > len(names)):
        bad = np.flatnonzero(~np.isfinite(numbers) | (numbers != np.rint(numbers)) | (numbers < 0)
                             | (numbers > len(names)))
        raise InputError(source, "colToROInum", f"region numbers 0 (none) to {len(names)} (ROInumToName's length)",
                         f"{numbers[bad[0]]!r} at voxel {bad[0] + 1} ({bad.size} voxel(s) in all)")
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise InputError(source, "ROInumToName", "unique region names", f"repeated names {duplicated}")
    wanted = names if wanted is None else [str(w) for w in wanted]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise ConfigError(f"{PARAMS}: regions: unknown region(s) {unknown}; the atlas ({source}) knows {names}")
    numbers = np.rint(numbers).astype(np.int64)
    return {name: numbers == names.index(name) + 1 for name in wanted}


def recording_atlas(meta: dict, source: str = "meta") -> tuple[np.ndarray, list[str]]:
    """``colToROInum`` (flat ints) and ``ROInumToName`` (strings) from a release's ``meta``.

    ``meta`` is ``Recording.extra["meta"]`` of :func:`brainalign.data.hp_fmri.read_hp_fmri` (MATLAB v5 and
    v7.3 read alike: a column of numbers and a 1 x N cell of names).
    """
    for name in ("colToROInum", "ROInumToName"):
        if name not in meta:
            raise InputError(source, f"meta.{name}", "the atlas labels of the release", f"meta fields {sorted(meta)}")
    numbers = np.asarray(meta["colToROInum"], dtype=np.float64).reshape(-1)
    names = [_text(n) for n in np.asarray(meta["ROInumToName"], dtype=object).reshape(-1)]
    return numbers, names


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    array = np.asarray(value)
    if array.dtype.kind in "US":
        return "".join(str(x) for x in array.reshape(-1))
    if array.dtype == object and array.size == 1:
        return _text(array.reshape(-1)[0])
    raise InputError("meta", "ROInumToName", "a cell of region names", f"an entry of type {array.dtype}")


def isolated_voxels(coords: np.ndarray) -> np.ndarray:
    """Per voxel, whether none of its six face neighbours is among ``coords`` (0-based voxel indices)."""
    coords = np.asarray(coords, dtype=np.int64)
    present = {tuple(c) for c in coords.tolist()}
    steps = ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))
    return np.array([not any((x + a, y + b, z + c) in present for a, b, c in steps) for x, y, z in coords.tolist()],
                    dtype=bool)


@dataclass(frozen=True)
class Placement:
    """Where (sample, voxel, delay) data go in the delayed volume: see :func:`delayed_volume`.

    Attributes
    ----------
    shape : tuple of int
        The delayed volume's shape.
    affine : ndarray of shape (4, 4)
        Its affine (the region's voxel size; slabs after the first sit above the region in space).
    index : ndarray of shape (n_voxels, n_delays, 3)
        Voxel indices of each voxel's copy at each delay.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray
    index: np.ndarray

    def array(self, data: np.ndarray) -> np.ndarray:
        """(n_samples, n_voxels, n_delays) data as a 4-D float32 array (x, y, z, sample), zero outside."""
        data = np.asarray(data, dtype=np.float32)
        if data.ndim != 3 or data.shape[1:] != self.index.shape[:2]:
            raise InputError(SOURCE, "images", f"shape (n_samples, {self.index.shape[0]}, {self.index.shape[1]})",
                             f"shape {data.shape}")
        volume = np.zeros(self.shape + (data.shape[0],), dtype=np.float32)
        flat = self.index.reshape(-1, 3)
        volume[flat[:, 0], flat[:, 1], flat[:, 2], :] = data.reshape(data.shape[0], -1).T
        return volume

    def image(self, data: np.ndarray) -> nib.Nifti1Image:
        """(n_samples, n_voxels, n_delays) data as a 4-D Nifti image, one volume per sample."""
        return nib.Nifti1Image(self.array(data), self.affine)

    __call__ = image


def delayed_volume(coords: np.ndarray, volume_shape: Sequence[int], affine: np.ndarray, n_delays: int
                   ) -> tuple[nib.Nifti1Image, Placement]:
    """A volume holding one copy of the region per delay, and where data go in it.

    The volume is the region's bounding box in x and y; along z it stacks ``n_delays`` slabs of the box's depth,
    slab ``d`` holding delay ``d``'s copy of the region, with one empty slice between slabs. Voxels of different
    slabs are therefore never face neighbours, and ReNA (which merges only face-adjacent mask voxels) keeps
    delays apart. With one delay it is the cropped region itself.

    Parameters
    ----------
    coords : ndarray of int, shape (n_voxels, 3)
        The region's 0-based voxel indices in a volume of ``volume_shape``.
    volume_shape : sequence of 3 int
    affine : ndarray of shape (4, 4)
        Maps 0-based voxel indices of the original volume to millimetres (its voxel size sets the mask's volume,
        which nilearn's screening percentile is relative to).
    n_delays : int

    Returns
    -------
    mask_img : Nifti1Image
        1 at every voxel copy, 0 elsewhere (uint8).
    place : Placement
        ``place(data)`` turns (n_samples, n_voxels, n_delays) data into the matching 4-D image.
    """
    coords = np.asarray(coords)
    if coords.ndim != 2 or coords.shape[1] != 3 or not len(coords) or not np.issubdtype(coords.dtype, np.number):
        raise InputError(SOURCE, "coords", "a (n_voxels >= 1, 3) array of voxel indices", f"shape {coords.shape}")
    if np.any(coords != np.rint(coords)):
        raise InputError(SOURCE, "coords", "whole-number voxel indices", "fractions")
    coords = np.rint(coords).astype(np.int64)
    shape = np.asarray(volume_shape, dtype=np.int64).reshape(-1)
    if shape.size != 3 or (coords < 0).any() or (coords >= shape).any():
        raise InputError(SOURCE, "coords", f"0-based indices inside the volume {tuple(shape.tolist())}",
                         f"indices from {coords.min(0).tolist()} to {coords.max(0).tolist()}")
    if len(np.unique(coords, axis=0)) != len(coords):
        raise InputError(SOURCE, "coords", "each voxel once", f"{len(coords) - len(np.unique(coords, axis=0))} repeats")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) == 0:
        raise InputError(SOURCE, "affine", "an invertible 4 x 4 affine", f"{affine.shape} array")
    if isinstance(n_delays, bool) or int(n_delays) != n_delays or n_delays < 1:
        raise InputError(SOURCE, "images", "at least one delay", f"{n_delays!r}")
    n_delays = int(n_delays)
    low = coords.min(0)
    box = coords.max(0) - low + 1
    local = coords - low
    pitch = box[2] + 1  # one empty slice between slabs
    index = np.repeat(local[:, None, :], n_delays, axis=1)
    index[:, :, 2] += pitch * np.arange(n_delays)[None, :]
    volume = (int(box[0]), int(box[1]), int(n_delays * pitch - 1))
    shift = np.eye(4)
    shift[:3, 3] = low
    crop_affine = affine @ shift
    mask = np.zeros(volume, dtype=np.uint8)
    flat = index.reshape(-1, 3)
    mask[flat[:, 0], flat[:, 1], flat[:, 2]] = 1
    return nib.Nifti1Image(mask, crop_affine), Placement(shape=volume, affine=crop_affine, index=index)


def decode_feature(images: np.ndarray, target: np.ndarray, runs: np.ndarray, coords: np.ndarray,
                   volume_shape: Sequence[int], affine: np.ndarray, settings: FremSettings | None = None
                   ) -> FremResult:
    """Decode one feature from one region with FReM, every run held out once.

    Parameters
    ----------
    images : ndarray of shape (n_samples, n_voxels, n_delays)
        The region's images of each sample (segment) at each delay, float32 (z-scored within run).
    target : ndarray of shape (n_samples,)
        The feature's value per sample.
    runs : ndarray of shape (n_samples,)
        Each sample's run (samples of a run in time order: the null shifts within runs).
    coords : ndarray of int, shape (n_voxels, 3)
        The region's 0-based voxel indices.
    volume_shape : sequence of 3 int
        The volume ``coords`` index into.
    affine : ndarray of shape (4, 4)
        Voxel indices to millimetres.
    settings : FremSettings, optional

    Returns
    -------
    FremResult

    Raises
    ------
    InputError
        If the arrays disagree in shape, hold non-finite values, or the region is too small to cluster.
    """
    settings = settings or FremSettings()
    images, target, runs = _check_inputs(images, target, runs, coords)
    kind = _kind(target, settings.binary)
    metric = "roc_auc" if kind == "binary" else "r2"
    coords = np.rint(np.asarray(coords)).astype(np.int64)
    keep = ~isolated_voxels(coords) if settings.clustering_percentile < 100 else np.ones(len(coords), dtype=bool)
    n_isolated = int((~keep).sum())
    n_features = int(keep.sum()) * images.shape[2]
    if int(n_features * settings.clustering_percentile / 100) < 1:
        raise InputError(SOURCE, "coords", f"enough voxels with a face neighbour for "
                         f"{settings.clustering_percentile} % of them (x delays) to make a cluster",
                         f"{int(keep.sum())} voxel(s) x {images.shape[2]} delay(s) "
                         f"({n_isolated} isolated voxel(s) left out)")
    mask_img, place = delayed_volume(coords[keep], volume_shape, affine, images.shape[2])
    images = images[:, keep, :]

    order = np.unique(runs)
    predictions = np.full(len(target), np.nan)
    dummy_predictions = np.full(len(target), np.nan)
    fold_scores = np.full(len(order), np.nan)
    dummy_fold_scores = np.full(len(order), np.nan)
    reasons = [""] * len(order)
    n_fitted = 0
    score_of = _scorer(metric)
    for f, run in enumerate(order):
        test = np.flatnonzero(runs == run)
        train = np.flatnonzero(runs != run)
        inner, why = _inner_split(target[train], runs[train], kind, settings)
        if why:
            reasons[f] = f"held-out run {run}: {why}"
            continue
        model, dummy = _fit_fold(images[train], target[train], inner, kind, mask_img, place, settings)
        n_fitted += 1
        test_img = place(images[test])
        with _quiet():
            if kind == "binary":
                predictions[test] = model.decision_function(test_img)
                # The dummy's held-out decision value: its training prior of class 1, the same for every sample.
                dummy_predictions[test] = float(np.asarray(dummy.dummy_output_).reshape(-1)[-1])
            else:
                predictions[test] = model.predict(test_img)
                dummy_predictions[test] = dummy.predict(test_img)
        fold_scores[f], why = score_of(target[test], predictions[test])
        dummy_fold_scores[f], _ = score_of(target[test], dummy_predictions[test])
        reasons[f] = why and f"held-out run {run}: {why}"

    fitted = np.isfinite(predictions)
    result = FremResult(kind=kind, metric=metric, score=np.nan, dummy_score=np.nan, gain=np.nan, p_value=np.nan,
                        null=np.empty(0), runs=order, fold_scores=fold_scores, dummy_fold_scores=dummy_fold_scores,
                        fold_reasons=reasons, predictions=predictions, dummy_predictions=dummy_predictions,
                        n_voxels=int(keep.sum()), n_isolated=n_isolated, n_folds_fitted=n_fitted)
    if not fitted.any():
        result.reason = "no fold could be fitted: " + "; ".join(r for r in reasons if r)
        return result
    y, held_runs = target[fitted], runs[fitted]

    def overall(p: np.ndarray) -> tuple[float, str]:
        return _overall_score(metric, y, p, held_runs, score_of)

    score, why = overall(predictions[fitted])
    if why:
        result.reason = why
        return result
    result.score = score
    result.dummy_score = overall(dummy_predictions[fitted])[0]
    result.gain = result.score - result.dummy_score
    result.null = shift_null(y, predictions[fitted], held_runs, settings.n_shifts, lambda _, p: overall(p)[0])
    result.p_value = float((1 + np.sum(result.null >= score)) / (1 + len(result.null)))
    return result


def _overall_score(metric: str, target: np.ndarray, predictions: np.ndarray, runs: np.ndarray,
                   score_of: Callable[[np.ndarray, np.ndarray], tuple[float, str]]) -> tuple[float, str]:
    """R² of the pooled predictions; the mean of the runs' AUCs (module docstring: why not pooled)."""
    if metric == "r2":
        return score_of(target, predictions)
    scores = [score_of(target[runs == r], predictions[runs == r])[0] for r in np.unique(runs)]
    scores = [s for s in scores if np.isfinite(s)]
    if not scores:
        return np.nan, "no held-out run holds both classes"
    return float(np.mean(scores)), ""


def shift_null(target: np.ndarray, predictions: np.ndarray, runs: np.ndarray, n_shifts: int,
               score: Callable[[np.ndarray, np.ndarray], float], min_shift: int = MIN_SHIFT) -> np.ndarray:
    """``score(target, shifted)`` for each shift of each run's predictions within the run: (n_null,).

    Draw ``j`` rolls a run of ``n`` samples by ``round(low + (n - 2 low) j / (n_shifts - 1))`` samples,
    ``low = min(min_shift, max(1, n // 4))`` (every run by the same fraction of its length); draws that repeat
    an earlier one's shifts are dropped, so short runs give fewer than ``n_shifts`` draws.
    """
    blocks = [np.flatnonzero(runs == r) for r in np.unique(runs)]
    fractions = np.linspace(0.0, 1.0, n_shifts) if n_shifts > 1 else np.array([0.5])
    plans = []
    for fraction in fractions:
        plan = []
        for block in blocks:
            n = len(block)
            low = min(min_shift, max(1, n // 4))
            plan.append(int(round(low + (n - 2 * low) * fraction)) % n if n > 1 else 0)
        plans.append(tuple(plan))
    plans = [p for i, p in enumerate(plans) if p not in plans[:i] and any(p)]
    null = np.empty(len(plans))
    for j, plan in enumerate(plans):
        shifted = predictions.copy()
        for block, s in zip(blocks, plan):
            shifted[block] = np.roll(predictions[block], s)
        null[j] = score(target, shifted)
    return null


def _check_inputs(images: np.ndarray, target: np.ndarray, runs: np.ndarray, coords: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images = np.asarray(images)
    if images.ndim != 3 or not np.issubdtype(images.dtype, np.floating):
        raise InputError(SOURCE, "images", "a float (n_samples, n_voxels, n_delays) array",
                         f"{images.dtype} array of shape {images.shape}")
    n = images.shape[0]
    target = np.asarray(target, dtype=np.float64)
    runs = np.asarray(runs)
    if target.shape != (n,):
        raise InputError(SOURCE, "target", f"one value per sample: shape ({n},)", f"shape {target.shape}")
    if runs.shape != (n,):
        raise InputError(SOURCE, "runs", f"one run per sample: shape ({n},)", f"shape {runs.shape}")
    if np.asarray(coords).shape != (images.shape[1], 3):
        raise InputError(SOURCE, "coords", f"one (x, y, z) per voxel of images: shape ({images.shape[1]}, 3)",
                         f"shape {np.asarray(coords).shape}")
    if not np.isfinite(target).all():
        raise InputError(SOURCE, "target", "finite values", f"{int((~np.isfinite(target)).sum())} NaN or infinite")
    if not np.isfinite(images).all():
        bad = np.flatnonzero(~np.isfinite(images).all(axis=(1, 2)))
        raise InputError(SOURCE, "images", "finite values", f"NaN or infinite values in {bad.size} sample(s), "
                         f"first at sample {bad[0]}")
    if len(np.unique(runs)) < 2:
        raise InputError(SOURCE, "runs", "samples from at least two runs (each is held out once)",
                         f"runs {np.unique(runs).tolist()}")
    return images, target, runs


def _kind(target: np.ndarray, binary: bool | str) -> str:
    zero_one = bool(np.isin(target, (0.0, 1.0)).all())
    if binary is True and not zero_one:
        raise InputError(SOURCE, "target", "values 0 and 1 (settings.binary is true)",
                         f"values such as {target[~np.isin(target, (0.0, 1.0))][:3].tolist()}")
    if binary is True or (binary == "auto" and zero_one):
        return "binary"
    return "continuous"


def _inner_split(target: np.ndarray, runs: np.ndarray, kind: str, settings: FremSettings
                 ) -> tuple[object, str]:
    """FReM's inner cross-validation of one outer fold's training samples, or why the fold cannot be fitted."""
    if kind == "binary":
        if len(np.unique(target)) < 2:
            return None, f"the training runs hold only class {int(target[0])}"
    elif np.ptp(target) == 0:
        return None, "the training target is constant"
    if settings.inner == "shuffle":
        if kind == "binary" and np.unique(target, return_counts=True)[1].min() < 2:
            return None, "a class occurs once in the training runs (too few to stratify)"
        splitter = StratifiedShuffleSplit if kind == "binary" else ShuffleSplit
        return splitter(settings.cv, random_state=settings.seed), ""
    # Inner fold k holds out the k-th contiguous 1/cv of every training run.
    block = np.empty(len(target), dtype=np.int64)
    for r in np.unique(runs):
        where = np.flatnonzero(runs == r)
        block[where] = np.arange(len(where)) * settings.cv // len(where)
    if kind == "binary":
        # An inner fold whose training part holds one class cannot be fitted: its block is left out of the
        # inner test folds (its samples still train the other inner folds).
        for k in np.unique(block):
            if len(np.unique(target[block != k])) < 2:
                block[block == k] = -1
        if not (block >= 0).any():
            return None, "no inner fold has both classes in its training part"
    if len(np.unique(block[block >= 0])) < 1:
        return None, "no inner fold"
    return PredefinedSplit(block), ""


def _fit_fold(images: np.ndarray, target: np.ndarray, inner: object, kind: str, mask_img: nib.Nifti1Image,
              place: Placement, settings: FremSettings) -> tuple[object, object]:
    """FReM and the dummy FReM fitted on one outer fold's training samples."""
    regressor, classifier = ESTIMATORS[settings.estimator]
    frem = FREMClassifier if kind == "binary" else FREMRegressor
    common = dict(mask=mask_img, cv=inner, standardize=settings.standardize, n_jobs=1,
                  scoring="roc_auc" if kind == "binary" else "r2")
    model = frem(estimator=classifier if kind == "binary" else regressor,
                 clustering_percentile=settings.clustering_percentile,
                 screening_percentile=settings.screening_percentile, **common)
    # The dummy ignores the voxels: no clustering or screening to pay for.
    dummy = frem(estimator="dummy_classifier" if kind == "binary" else "dummy_regressor",
                 clustering_percentile=100, screening_percentile=100, **common)
    train_img = place(images)
    # ReNA divides by each node's largest edge weight: a part of the region merged into one cluster has no
    # edges left, and the 1/0 it makes multiplies nothing.
    with _quiet(), _scaled_rena(), np.errstate(divide="ignore"):
        model.fit(train_img, target)
        dummy.fit(train_img, target)
    return model, dummy


def _scorer(metric: str) -> Callable[[np.ndarray, np.ndarray], tuple[float, str]]:
    def score(y: np.ndarray, p: np.ndarray) -> tuple[float, str]:
        if metric == "roc_auc":
            if len(np.unique(y)) < 2:
                return np.nan, f"only class {int(y[0])} is present"
            return _auc(y, p), ""
        if np.ptp(y) == 0:
            return np.nan, "the target is constant"
        return float(r2_score(y, p)), ""

    return score


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC of 0/1 labels ``y`` by decision values ``p`` (ties count one half), as ``roc_auc_score``.

    The Mann-Whitney form, through average ranks: the null recomputes it for every shift and run, where
    scikit-learn's checks cost more than the computation.
    """
    positive = y == 1
    n1 = int(positive.sum())
    n0 = len(y) - n1
    return float((rankdata(p)[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


class _ScaledReNA:
    """Stands in for nilearn's ReNA inside FReM: makes the same clustering, with ``scaling=True``."""

    def __new__(cls, *args, **kwargs):
        kwargs["scaling"] = True
        return ReNA(*args, **kwargs)


_PATCH_LOCK = threading.Lock()
_PATCH_USERS = [0]


@contextlib.contextmanager
def _scaled_rena() -> Iterator[None]:
    """Within the block, FReM clusters with ``ReNA(scaling=True)`` (module docstring: why).

    Counted, so that threads decoding at once keep the replacement until the last one leaves.
    """
    with _PATCH_LOCK:
        if not isinstance(getattr(_decoder, "ReNA", None), type):
            raise RuntimeError("nilearn.decoding.decoder no longer uses ReNA by that name: check whether FReM "
                               "still maps cluster coefficients back unscaled and update brainalign.probing.frem")
        if _PATCH_USERS[0] == 0:
            _decoder.ReNA = _ScaledReNA
        _PATCH_USERS[0] += 1
    try:
        yield
    finally:
        with _PATCH_LOCK:
            _PATCH_USERS[0] -= 1
            if _PATCH_USERS[0] == 0:
                _decoder.ReNA = _ORIGINAL_RENA


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        for category, message in _EXPECTED_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield
