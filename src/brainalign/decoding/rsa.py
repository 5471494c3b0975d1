"""Representational similarity analysis as Gauthier & Levy 2019 did it (reference section 8).

A representational dissimilarity matrix (RDM) of a model checkpoint or a participant is the condensed vector
of distances between every pair of sentence representations (:func:`rdm`: scipy's ``pdist``, Euclidean by
default, as the original). Two RDMs are compared by their Spearman correlation.

Spearman's rho is Pearson's r between the rank vectors (ties get average ranks, as ``scipy.stats.spearmanr``
gives them), so every RDM is ranked once, centred and scaled to unit norm, and all correlations come from one
matrix product: for ``k`` RDMs that is ``k`` rankings instead of ``k^2``. ``tests/decoding/test_rsa.py``
checks every entry against ``scipy.stats.spearmanr``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.spatial.distance import pdist
from scipy.stats import rankdata

from brainalign.errors import InputError


def rdm(x: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """The condensed RDM of the rows of ``x`` (``scipy.spatial.distance.pdist``).

    Parameters
    ----------
    x : ndarray of shape (n_sentences, n_features)
        One representation per sentence (a checkpoint's encodings, a participant's images).
    metric : str
        Any ``pdist`` metric; Gauthier & Levy used ``"euclidean"``.

    Returns
    -------
    ndarray of shape (n_sentences * (n_sentences - 1) / 2,), float64
        Distances of the pairs (0, 1), (0, 2), ..., (n - 2, n - 1).
    """
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 2:
        raise InputError("representations", "shape", "a 2-D array with at least 2 rows", str(array.shape))
    if not np.isfinite(array).all():
        raise InputError("representations", "values", "finite numbers", f"{int((~np.isfinite(array)).sum())} "
                         "NaN or infinite values")
    return pdist(array, metric=metric)


def rsa_matrix(named_rdms: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Spearman correlation between every pair of RDMs.

    Parameters
    ----------
    named_rdms : mapping of str to ndarray of shape (n_pairs,)
        Condensed RDMs (:func:`rdm`) of equal length, keyed by name.

    Returns
    -------
    DataFrame of shape (n_rdms, n_rdms)
        Symmetric, 1 on the diagonal, rows and columns in the mapping's order; NaN for a constant RDM.
    """
    names, scaled = _scaled_ranks(named_rdms, "rdms")
    rho = np.clip(scaled @ scaled.T, -1.0, 1.0)
    rho = (rho + rho.T) / 2                       # exactly symmetric
    defined = np.isfinite(np.diag(rho))
    rho[np.diag_indices_from(rho)] = np.where(defined, 1.0, np.nan)
    return pd.DataFrame(rho, index=pd.Index(names, name="rdm"), columns=pd.Index(names, name="rdm"))


def rsa_to_targets(models: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Spearman correlation of every model RDM (rows, e.g. checkpoints) with every target RDM (columns, e.g.
    participants).

    Parameters
    ----------
    models, targets : mapping of str to ndarray of shape (n_pairs,)
        Condensed RDMs of one common length, keyed by name.

    Returns
    -------
    DataFrame of shape (n_models, n_targets)
        Rows and columns in the mappings' orders; NaN where an RDM is constant.
    """
    model_names, model_ranks = _scaled_ranks(models, "models")
    target_names, target_ranks = _scaled_ranks(targets, "targets")
    if model_ranks.shape[1] != target_ranks.shape[1]:
        raise InputError("targets", "length", f"{model_ranks.shape[1]} pairs, as the model RDMs",
                         str(target_ranks.shape[1]))
    rho = np.clip(model_ranks @ target_ranks.T, -1.0, 1.0)
    return pd.DataFrame(rho, index=pd.Index(model_names, name="model"),
                        columns=pd.Index(target_names, name="target"))


def _scaled_ranks(named_rdms: Mapping[str, np.ndarray], source: str) -> tuple[list[str], np.ndarray]:
    """Names, and each RDM's average ranks centred and scaled to unit norm (a row of NaN if constant)."""
    if not named_rdms:
        raise InputError(source, "length", "at least one RDM", "none")
    names = [str(name) for name in named_rdms]
    vectors = [np.asarray(v, dtype=np.float64) for v in named_rdms.values()]
    length = vectors[0].size
    for name, vector in zip(names, vectors):
        if vector.ndim != 1 or vector.size != length or vector.size < 2:
            raise InputError(f"{source}[{name}]", "shape", f"a condensed RDM of {length} (>= 2) pairs",
                             str(vector.shape))
        if not np.isfinite(vector).all():
            raise InputError(f"{source}[{name}]", "values", "finite distances", "NaN or infinite values")
    ranks = rankdata(np.stack(vectors), axis=1)   # average ranks on ties, as spearmanr
    ranks -= ranks.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(ranks, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return names, np.where(norms > 0, ranks / norms, np.nan)
