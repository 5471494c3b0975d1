"""Decoding brain images into a model's sentence space and ranking the true sentence (Gauthier & Levy 2019).

The decoder of the paper (reference section 8), for one participant's images (``n`` sentences x voxels) and
one checkpoint's sentence encodings (``n`` x ``dim``):

1. Outer cross-validation over sentences: ``KFold(n_folds, shuffle=True, random_state=seed)``, or with
   ``groups`` (passages) scikit-learn's ``GroupKFold(n_folds, shuffle=True, random_state=seed)``, so that no
   passage is split between training and test.
2. Per outer fold, both sides are brought into a space fitted on the *training* sentences only: PCA to
   ``n_components`` (256), then "rows centred and L2-normalised" -- the training rows' column means are
   subtracted and every row divided by its L2 norm. The test images go through the training fold's image
   transform; the *candidates* (all ``n`` sentences' encodings) through the training fold's encoding transform.
3. ``Ridge(fit_intercept=False)`` from transformed images to transformed encodings, its penalty chosen from
   ``alphas`` as ``GridSearchCV(Ridge(fit_intercept=False), {"alpha": alphas}, cv=KFold(inner_folds))`` chooses
   it (R^2 averaged uniformly over outputs, averaged over the unshuffled inner folds, ties to the first penalty
   in the list), then refitted on the whole training fold.
4. Every test prediction is compared with all ``n`` candidates by cosine similarity; its rank is
   ``1 + #(candidates strictly more similar than the true sentence)``: 1-based, chance ``(n + 1) / 2``
   (:func:`chance_mar`). The original code reported 0-based ranks (chance ``(n - 1) / 2``, 191.5 for 384
   sentences): ours minus 1. The mean rank is the paper's "mean average rank" (MAR; lower is better).

``leaky_pca=True`` reproduces the original instead: both PCAs and both centrings fitted once on all ``n``
sentences (the held-out sentences' images and encodings then shape the space they are decoded in).

How it is fast (``perf/decoding.py``: ranks identical to the straightforward scikit-learn pipeline). One call
decodes one participant's images into *many* checkpoints' encodings, and everything on the image side is
independent of the checkpoint, so it is done once:

- the image PCA of every fold comes from the ``n x n`` Gram matrix of the images (a linear-kernel PCA: the
  eigendecomposition of the training rows' centred Gram matrix gives the scores of the training rows and,
  through the cross-kernel, of the test rows), so the voxels are touched once per call, not once per fold and
  checkpoint. The ridge fit only sees the image side through the subspace it spans (predictions are invariant
  to an orthogonal change of the image features' basis, and so are the centring and the row norms), so the
  component signs or rotations within the subspace do not matter;
- the SVD of the transformed training images of each outer and inner fold is computed once; from it the
  ridge solution for every penalty is ``V diag(s / (s^2 + alpha)) U^T Y``, so every penalty's predictions of
  an inner test fold come from one matrix product per checkpoint, and R^2 for all penalties at once.

The encoding side needs the actual PCA basis (R^2 averaged over outputs is not rotation invariant), so the
encoding PCA is an exact SVD of the training encodings (scikit-learn's ``svd_solver="full"``; component
signs do not change R^2). The original's scikit-learn chose a randomized SVD automatically for large inputs;
ours and the reference in the tests are exact. All linear algebra is float64.

The number of components is clipped to what the rows a PCA is fitted on allow: at most ``m - 1`` for ``m``
centred rows (their rank) and at most the number of columns; components of numerically zero variance (below
1e-10 of the largest, e.g. duplicated voxels, or more encoding dimensions than training sentences minus one)
are dropped: their direction is an arbitrary basis of the training rows' null space, and a held-out row's
value along it is information the training fold never saw.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from sklearn.model_selection import GroupKFold, KFold
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from brainalign.errors import ConfigError, InputError

log = logging.getLogger(__name__)

#: The paper's penalties, in its order (ties in the inner cross-validation go to the first).
ALPHAS = (1e1, 1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
N_COMPONENTS = 256
N_FOLDS = 8
INNER_FOLDS = 5
#: Components whose variance is below this fraction of the largest are numerically zero variance.
ZERO_VARIANCE = 1e-10


@dataclass
class Decoding:
    """One checkpoint's decoding of one participant's images.

    Attributes
    ----------
    ranks : ndarray of shape (n_sentences,), int64
        Rank of the true sentence among all candidates, 1-based (1 = the true sentence is the most similar;
        the original's 0-based rank is this minus 1).
    mar : float
        Mean of ``ranks`` (the paper's mean average rank, 1-based; chance :func:`chance_mar`).
    pairwise_accuracy : float
        2-vs-2 accuracy over all unordered pairs (:func:`pairwise_accuracy`).
    alphas : ndarray of shape (n_folds,)
        The penalty the inner cross-validation chose in each outer fold.
    folds : ndarray of shape (n_sentences,), int64
        The outer fold in which each sentence was held out.
    n_candidates : int
        How many encodings each prediction was ranked among (all sentences).
    leaky : bool
        Whether the PCAs and centrings were fitted on all sentences (the original) or per training fold.
    similarities : ndarray of shape (n_sentences, n_candidates), optional
        Row ``i``: cosine similarity of sentence ``i``'s prediction to every candidate, in the space of the
        fold that held ``i`` out (``return_similarities=True``).
    """

    ranks: np.ndarray
    mar: float
    pairwise_accuracy: float
    alphas: np.ndarray
    folds: np.ndarray
    n_candidates: int
    leaky: bool
    similarities: np.ndarray | None = None


def chance_mar(n_candidates: int) -> float:
    """The expected 1-based rank of the true sentence among ``n_candidates`` when predictions carry no
    information: ``(n + 1) / 2`` (the original's 0-based chance is ``(n - 1) / 2``)."""
    return (n_candidates + 1) / 2


def rank_scores(similarities: np.ndarray, true_index: np.ndarray) -> np.ndarray:
    """1-based rank of each row's true candidate: ``1 + #(candidates strictly more similar)``.

    Parameters
    ----------
    similarities : ndarray of shape (n_predictions, n_candidates)
        Similarity of each prediction to every candidate.
    true_index : ndarray of shape (n_predictions,)
        The column of each row's true candidate.

    Returns
    -------
    ndarray of shape (n_predictions,), int64
        Ties with the true candidate do not count against it.
    """
    similarities = np.asarray(similarities)
    true_index = np.asarray(true_index, dtype=np.int64)
    truth = similarities[np.arange(similarities.shape[0]), true_index]
    return 1 + (similarities > truth[:, None]).sum(axis=1, dtype=np.int64)


def pairwise_accuracy(similarities: np.ndarray) -> float:
    """2-vs-2 accuracy (Mitchell 2008, Pereira 2018) over all unordered pairs of sentences.

    The pair ``i < j`` is decoded correctly when ``S[i, i] + S[j, j] > S[i, j] + S[j, i]``, where row ``i`` of
    ``S`` holds the similarity of sentence ``i``'s prediction to every candidate encoding. A tie counts one
    half. When ``i`` and ``j`` were held out in different outer folds their predictions live in different
    spaces (each fold fits its own encoding transform): each prediction is then compared with the two
    candidates *in its own fold's space* -- row ``i`` of ``S`` is in ``i``'s fold's space, row ``j`` in
    ``j``'s. Within one fold (and always with ``leaky_pca``) this is the usual definition.

    Parameters
    ----------
    similarities : ndarray of shape (n, n)
        ``S[i, k]``: similarity of prediction ``i`` to candidate ``k``; candidate ``i`` is sentence ``i``.
    """
    s = np.asarray(similarities, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] < 2:
        raise InputError("similarities", "shape", "a square (n, n) matrix with n >= 2", str(s.shape))
    diagonal = np.diag(s)
    margin = (diagonal[:, None] + diagonal[None, :]) - (s + s.T)
    upper = margin[np.triu_indices(s.shape[0], k=1)]
    return float(((upper > 0).sum() + 0.5 * (upper == 0).sum()) / upper.size)


def outer_folds(n_sentences: int, n_folds: int = N_FOLDS, groups: Sequence | None = None,
                seed: int = 0) -> np.ndarray:
    """The outer fold (0 .. n_folds - 1) in which each sentence is held out.

    ``KFold(n_folds, shuffle=True, random_state=seed)`` over sentences, or, with ``groups`` (e.g. the passage
    of each sentence), ``GroupKFold(n_folds, shuffle=True, random_state=seed)``: every group lies in one fold.
    """
    if groups is None:
        if not 2 <= n_folds <= n_sentences:
            raise ConfigError(f"decoding: n_folds: expected 2 <= n_folds <= n_sentences = {n_sentences}, "
                              f"found {n_folds}")
        splits = KFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(n_sentences))
    else:
        labels = np.asarray(groups)
        if labels.shape != (n_sentences,):
            raise InputError("groups", "shape", f"one group per sentence, ({n_sentences},)", str(labels.shape))
        n_groups = np.unique(labels).size
        if not 2 <= n_folds <= n_groups:
            raise ConfigError(f"decoding: n_folds: expected 2 <= n_folds <= the number of groups = {n_groups}, "
                              f"found {n_folds}")
        splits = GroupKFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(n_sentences), groups=labels)
    folds = np.full(n_sentences, -1, dtype=np.int64)
    for fold, (_, test) in enumerate(splits):
        folds[test] = fold
    return folds


def decode(images: np.ndarray, encodings: Sequence[np.ndarray], *, n_folds: int = N_FOLDS,
           inner_folds: int = INNER_FOLDS, alphas: Sequence[float] = ALPHAS, n_components: int = N_COMPONENTS,
           leaky_pca: bool = False, groups: Sequence | None = None, seed: int = 0,
           return_similarities: bool = False, progress: bool = False) -> list[Decoding]:
    """Decode one participant's images into every checkpoint's sentence encodings; rank the true sentences.

    Parameters
    ----------
    images : ndarray of shape (n_sentences, n_voxels)
        One brain image per sentence.
    encodings : sequence of ndarray of shape (n_sentences, dim)
        One matrix per checkpoint (row ``i`` encodes the sentence of image ``i``); ``dim`` may differ.
    n_folds : int
        Outer folds (the paper: 8).
    inner_folds : int
        Unshuffled ``KFold`` folds of the penalty search inside each outer training fold (scikit-learn's 5).
    alphas : sequence of float
        Ridge penalties, all > 0, in order of preference on ties (the paper's 10, 1, 0.1, ..., 1e-6).
    n_components : int
        PCA components of both sides (the paper: 256), clipped as the module docstring says.
    leaky_pca : bool
        Fit both PCAs and centrings on all sentences, as the original did (default: per training fold).
    groups : sequence of shape (n_sentences,), optional
        Group (passage) of each sentence: no group is split between training and test folds.
    seed : int
        ``random_state`` of the outer splitter (scikit-learn's splitters draw from a ``RandomState``).
    return_similarities : bool
        Keep each checkpoint's (n_sentences, n_sentences) cosine similarities in ``Decoding.similarities``.
    progress : bool
        A progress bar over checkpoints.

    Returns
    -------
    list of Decoding
        One per checkpoint, in the order of ``encodings``.
    """
    x = _finite_matrix(images, "images", float64=False)  # converted a block at a time
    n = x.shape[0]
    ys = [_finite_matrix(y, f"encodings[{c}]", n_rows=n) for c, y in enumerate(encodings)]
    if not ys:
        raise InputError("encodings", "length", "at least one checkpoint's encodings", "none")
    penalties = _penalties(alphas)
    if not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ConfigError(f"decoding: n_components: expected a positive integer, found {n_components!r}")
    folds = outer_folds(n, n_folds, groups, seed)
    smallest_training = n - np.bincount(folds).max()
    if not 2 <= inner_folds <= smallest_training:
        raise ConfigError(f"decoding: inner_folds: expected 2 <= inner_folds <= the smallest outer training "
                          f"fold ({smallest_training} sentences), found {inner_folds}")

    # One BLAS thread: the matrices are a few hundred rows wide, so threads gain little, and on a busy machine
    # OpenBLAS's spinning threads made one 336 x 256 SVD 100x slower (measured: a sweep 2 s on one thread, 105 s
    # on two under load).
    with threadpool_limits(limits=1, user_api="blas"):
        gram = _centred_gram(x)
        plans = _image_plans(gram, x.shape[1], folds, inner_folds, penalties, n_components, leaky_pca)
        results = []
        for c, y in enumerate(tqdm(ys, desc="decoding checkpoints", unit="checkpoint", disable=not progress)):
            results.append(_decode_checkpoint(y, plans, folds, penalties, n_components, leaky_pca,
                                              return_similarities))
            log.debug("checkpoint %d: MAR %.2f of %d", c, results[-1].mar, n)
    return results


# --- image side: everything that does not depend on the checkpoint -------------------------------------------


@dataclass
class _Inner:
    """One inner fold's ridge pieces: predictions of its test rows for penalty ``a`` are
    ``weighted[a] @ (u.T @ targets[train])``."""

    train: np.ndarray
    test: np.ndarray
    u: np.ndarray                # (m_train, r)
    weighted: np.ndarray         # (n_alphas, m_test, r): (test rows @ V) * s / (s^2 + alpha)


@dataclass
class _Plan:
    """One outer fold's image side."""

    train: np.ndarray
    test: np.ndarray
    inner: list[_Inner]
    u: np.ndarray                # SVD of the transformed training images
    projected: np.ndarray        # test images @ V
    s: np.ndarray


def _centred_gram(x: np.ndarray, block: int = 16384) -> np.ndarray:
    """``Xc Xc^T`` in float64 for ``Xc`` = ``x`` centred on all rows, a block of voxels at a time (no float64
    copy of a whole-brain ``x``)."""
    # Centring on all rows first changes no fold's centred Gram matrix (a common shift cancels), but keeps
    # the per-fold double centring from subtracting large, nearly equal numbers.
    gram = np.zeros((x.shape[0], x.shape[0]))
    for start in range(0, x.shape[1], block):
        part = x[:, start:start + block].astype(np.float64)
        part -= part.mean(axis=0)
        gram += part @ part.T
    return gram


def _kernel_pca_scores(gram: np.ndarray, fit: np.ndarray, n_components: int, n_columns: int) -> np.ndarray:
    """PCA scores of all rows, PCA fitted on rows ``fit``, from the Gram matrix of the rows alone.

    With the fit rows centred on their mean ``mu`` and their centred Gram matrix ``K = U diag(l) U^T``, the
    principal axes are ``V = Xc^T U / sqrt(l)``, so any row's score is its centred cross-kernel with the fit
    rows, ``(x - mu) . (x_j - mu)``, times ``U / sqrt(l)``.
    """
    row_means = gram[:, fit].mean(axis=1)               # x . mu for every row
    grand = row_means[fit].mean()                       # mu . mu
    cross = gram[:, fit] - row_means[:, None] - row_means[fit][None, :] + grand
    centred = cross[fit]
    eigenvalues, vectors = scipy.linalg.eigh((centred + centred.T) / 2, check_finite=False)
    eigenvalues, vectors = eigenvalues[::-1], vectors[:, ::-1]
    keep = min(n_components, fit.size - 1, n_columns)
    keep = min(keep, int((eigenvalues[:keep] > ZERO_VARIANCE * eigenvalues[0]).sum()))
    if keep == 0:
        raise InputError("images", "variance", "images that differ between training sentences",
                         f"{fit.size} identical rows")
    return cross @ (vectors[:, :keep] / np.sqrt(eigenvalues[:keep]))


def _centre_and_normalise(scores: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """Subtract the fit rows' column means, then divide every row by its L2 norm (zero rows stay zero)."""
    centred = scores - scores[fit].mean(axis=0)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return centred / norms


def _svd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return scipy.linalg.svd(x, full_matrices=False, check_finite=False)


def _image_plans(gram: np.ndarray, n_voxels: int, folds: np.ndarray, inner_folds: int, penalties: np.ndarray,
                 n_components: int, leaky: bool) -> list[_Plan]:
    everything = np.arange(gram.shape[0])
    if leaky:
        shared = _centre_and_normalise(_kernel_pca_scores(gram, everything, n_components, n_voxels), everything)
    plans = []
    for fold in range(folds.max() + 1):
        train, test = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        if leaky:
            z = shared
        else:
            z = _centre_and_normalise(_kernel_pca_scores(gram, train, n_components, n_voxels), train)
        z_train = z[train]
        inner = []
        for inner_train, inner_test in KFold(inner_folds).split(z_train):
            u, s, vt = _svd(z_train[inner_train])
            weighted = (z_train[inner_test] @ vt.T)[None] * _shrinkage(s, penalties)[:, None, :]
            inner.append(_Inner(inner_train, inner_test, u, weighted))
        u, s, vt = _svd(z_train)
        plans.append(_Plan(train, test, inner, u, z[test] @ vt.T, s))
    return plans


def _shrinkage(s: np.ndarray, penalties: np.ndarray) -> np.ndarray:
    """``s / (s^2 + alpha)`` for every penalty (rows) and singular value (columns)."""
    return s[None, :] / (s[None, :] ** 2 + penalties[:, None])


# --- encoding side: per checkpoint ------------------------------------------------------------------------------


def _encoding_space(y: np.ndarray, fit: np.ndarray, n_components: int) -> np.ndarray:
    """All rows of ``y`` through PCA, centring and row normalisation fitted on rows ``fit``."""
    mean = y[fit].mean(axis=0)
    _, s, vt = _svd(y[fit] - mean)
    keep = min(n_components, fit.size - 1, y.shape[1])
    keep = min(keep, int((s[:keep] ** 2 > ZERO_VARIANCE * s[0] ** 2).sum()))
    if keep == 0:
        raise InputError("encodings", "variance", "encodings that differ between training sentences",
                         f"{fit.size} identical rows")
    return _centre_and_normalise((y - mean) @ vt[:keep].T, fit)


def _mean_r2(targets: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """scikit-learn's ``r2_score`` (uniform average over outputs, ``force_finite``) for a stack of predictions.

    ``targets`` (m, d); ``predictions`` (n_alphas, m, d); returns (n_alphas,).
    """
    residual = ((targets[None] - predictions) ** 2).sum(axis=1)
    total = ((targets - targets.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(residual == 0, 1.0, np.where(total == 0, 0.0, 1 - residual / total))
    return scores.mean(axis=1)


def _decode_checkpoint(y: np.ndarray, plans: list[_Plan], folds: np.ndarray, penalties: np.ndarray,
                       n_components: int, leaky: bool, keep_similarities: bool) -> Decoding:
    n = y.shape[0]
    similarities = np.empty((n, n))
    chosen = np.empty(len(plans))
    shared = _encoding_space(y, np.arange(n), n_components) if leaky else None
    for fold, plan in enumerate(plans):
        candidates = shared if leaky else _encoding_space(y, plan.train, n_components)
        targets = candidates[plan.train]
        scores = np.zeros(penalties.size)
        for inner in plan.inner:
            coefficients = inner.u.T @ targets[inner.train]
            # one matrix product for all penalties: (n_alphas * m_test, r) @ (r, d)
            predictions = (inner.weighted.reshape(-1, coefficients.shape[0]) @ coefficients).reshape(
                penalties.size, inner.test.size, -1)
            scores += _mean_r2(targets[inner.test], predictions)
        best = int(np.argmax(scores / len(plan.inner)))       # argmax: ties go to the first penalty listed
        chosen[fold] = penalties[best]
        shrink = _shrinkage(plan.s, penalties[best:best + 1])[0]
        predictions = (plan.projected * shrink) @ (plan.u.T @ targets)
        norms = np.linalg.norm(predictions, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        similarities[plan.test] = (predictions / norms) @ candidates.T
    ranks = rank_scores(similarities, np.arange(n))
    return Decoding(ranks=ranks, mar=float(ranks.mean()), pairwise_accuracy=pairwise_accuracy(similarities),
                    alphas=chosen, folds=folds.copy(), n_candidates=n, leaky=leaky,
                    similarities=similarities if keep_similarities else None)


# --- validation ---------------------------------------------------------------------------------------------------


def _finite_matrix(values: np.ndarray, name: str, n_rows: int | None = None, float64: bool = True) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 2:
        raise InputError(name, "shape", "a 2-D array (sentences x columns)", str(array.shape))
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise InputError(name, "dtype", "real numbers", str(array.dtype))
    if n_rows is not None and array.shape[0] != n_rows:
        raise InputError(name, "rows", f"{n_rows} rows, one per image", str(array.shape[0]))
    if array.shape[0] < 4 or array.shape[1] < 1:
        raise InputError(name, "shape", "at least 4 sentences and 1 column", str(array.shape))
    if float64:
        array = array.astype(np.float64)  # float64 throughout: the ranks must match scikit-learn's
    bad = ~np.isfinite(array)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise InputError(name, "values", "finite numbers",
                         f"{int(bad.sum())} NaN or infinite values (first at row {row}, column {column})")
    return array


def _penalties(alphas: Sequence[float]) -> np.ndarray:
    penalties = np.asarray(alphas, dtype=np.float64).ravel()
    if penalties.size == 0 or not np.all(np.isfinite(penalties)) or np.any(penalties <= 0):
        raise ConfigError(f"decoding: alphas: expected one or more finite penalties > 0, found {list(alphas)!r}")
    return penalties
