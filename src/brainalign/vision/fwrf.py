"""fwRF: the feature-weighted receptive field encoding model (St-Yves & Naselaris 2018; reference section 10).

A voxel reads a network's feature maps through one Gaussian population receptive field (pRF): the design row of
image ``k`` under pRF ``g`` holds, for every layer and kept channel ``c``, ``sum_cells map[k, c] * g``; a ridge
regression from those features predicts the voxel. Each voxel's pRF and penalty are chosen from a grid
(:func:`prf_grid`) and a list of penalties by the error on held-out training trials.

**Coordinates** (shared with the simulation). A pRF is ``(x, y, sigma)``: the centre in fractions of the image's
width and height, origin top-left, x rightwards, y downwards; ``sigma`` in fractions of the image's width. Over a
map of ``h x w`` cells the Gaussian is evaluated at the cell centres ``((j + 0.5) / w, (i + 0.5) / h)``, distances
measured in units of the image width (the map is taken to have the image's aspect ratio), and normalised to sum 1
over the map (:func:`prf_weights`).

**The grid** (:func:`prf_grid`): ``n_sizes`` sizes log-spaced from ``min_size`` to ``max_size``; for size
``sigma``, ``n = ceil(1 / (spacing * sigma))`` centres per side at ``(i + 0.5) / n``, so neighbouring centres are
at most ``spacing * sigma`` apart and every centre lies inside the image; small pRFs get dense grids. The default
(8 sizes, 0.03 to 0.4, ``spacing = 0.91``) gives 37, 26, 18, 13, 9, 6, 4, 3 centres per side: 2,680 candidates,
the seed's count. The seed's own grid (``model_space_pyramid``) spans 1.1 image widths with ``spacing`` 1.4;
here centres stay inside the image and ``spacing`` sets the count.

**Features.** Per layer the ``n_features`` channels with the largest variance over the training images and the
map's cells (each image once, however many trials showed it) are kept (the seed ranks maps by variance, 512 per
layer: all of AlexNet's channels). Features are z-scored per candidate with statistics of the rows a model is
fitted on (trial rows, so an image counts as often as it was shown); responses are centred on the same rows'
mean, and the ridge has no other intercept (the seed appends a penalised bias column instead).

**Selection.** The holdout is the last ``holdout`` fraction of the response rows (the seed: the last 10 % of the
training trials; rows, not images, so an image's repeats may fall on both sides, as in the seed). For every
candidate and penalty a ridge is fitted on the other rows and its mean squared error on the holdout rows is
computed for every voxel; each voxel takes the (candidate, penalty) with the lowest error, the first in the
grid's order (candidates, then penalties ascending) among exact ties. The seed selects on the same loss.

**Refit.** The chosen (candidate, penalty) is then refitted on all training rows, and that model predicts
(``refit=False`` keeps the model fitted without the holdout, as the seed does). Refitting uses the 10 % more data
that selection had set aside, as scikit-learn's ``GridSearchCV(refit=True)`` and :mod:`brainalign.ridge` do. The
penalty chosen on 90 % of the rows regularises the refit on 100 % about 10 % less (the Gram matrix grows with the
rows); that shift is within the grid's step of ``10 ** 0.375``. :attr:`FwRF.holdout_r_` and
:attr:`FwRF.holdout_loss_` describe the model fitted without the holdout, on the rows that chose it (so they are
optimistic).

**Speed.** Responses never repeat the maps per trial: the design is built once per image and the ridge uses
per-image sums (``X'X = D' diag(n_k) D``, ``X'y = D' sum_k y``). Per candidate one eigendecomposition of the
training Gram matrix ``X'X = V diag(s) V'`` serves every penalty and every voxel,
``W_alpha = V diag(1 / (s + alpha)) V' X'y``; ``candidate_batch`` candidates go through torch as one batch
(``torch.linalg.eigh`` on ``(b, p, p)``), on ``device`` ``"cpu"`` or ``"cuda"`` with the same code. Only the best
(loss, candidate, penalty) per voxel is kept, a running minimum, with that model's holdout predictions (for
:attr:`FwRF.holdout_r_`); no other candidate's predictions are stored. The refit solves ``X'X + alpha I`` once per
(chosen pRF, penalty) pair: a pRF is chosen by few voxels, so that costs less than an eigendecomposition. The
holdout error is the within-image scatter of the holdout trials (computed once, exactly) plus the per-image
weighted squared error of the prediction, so no prediction is repeated per trial either.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import scipy.sparse
import torch
from tqdm.auto import tqdm

from brainalign.errors import ConfigError, InputError
from brainalign.vision.evaluation import voxel_correlation

ALPHAS = np.logspace(3, 6, 9)
#: Centre spacing in units of a pRF's sigma: with the default sizes, 2,680 candidates (module docstring).
SPACING = 0.91
DTYPES = {"float32": torch.float32, "float64": torch.float64}
SOURCE = "FwRF"
# Largest intermediate (elements) of the per-voxel part of the search; voxels are taken in blocks below it so a
# batch of candidates times tens of thousands of voxels fits in memory.
_BLOCK_ELEMENTS = 1 << 26
# Images per chunk when reading feature maps on the host (channel variances, finiteness).
_CHUNK_ELEMENTS = 1 << 24

logger = logging.getLogger(__name__)


def prf_grid(n_sizes: int = 8, min_size: float = 0.03, max_size: float = 0.4,
             spacing: float = SPACING) -> np.ndarray:
    """Candidate pRFs: ``n_sizes`` log-spaced sizes, each on a square grid of centres inside the image.

    Parameters
    ----------
    n_sizes : int
        Number of sizes, log-spaced from ``min_size`` to ``max_size`` (both included).
    min_size, max_size : float
        Smallest and largest sigma, in fractions of the image width.
    spacing : float
        For size ``sigma``, ``ceil(1 / (spacing * sigma))`` centres per side at ``(i + 0.5) / n``. The default gives
        2,680 candidates with the default sizes (the seed's count); the count grows as ``1 / spacing**2``.

    Returns
    -------
    ndarray of shape (n_candidates, 3)
        ``(x, y, sigma)`` per candidate, sizes ascending, then rows (y), then columns (x).
    """
    if isinstance(n_sizes, bool) or not isinstance(n_sizes, (int, np.integer)) or n_sizes < 1:
        raise ConfigError(f"{SOURCE}: prf_grid n_sizes: expected a whole number >= 1, found {n_sizes!r}")
    if not 0 < min_size <= max_size:
        raise ConfigError(f"{SOURCE}: prf_grid sizes: expected 0 < min_size <= max_size, found {min_size!r}, "
                          f"{max_size!r}")
    if not spacing > 0:
        raise ConfigError(f"{SOURCE}: prf_grid spacing: expected a positive number, found {spacing!r}")
    rows = []
    for sigma in np.geomspace(min_size, max_size, n_sizes):
        # the tolerance keeps an exact quotient (1 / (0.5 * 1.0) = 2) from rounding up to one more centre
        n = max(1, math.ceil(1.0 / (spacing * sigma) - 1e-9))
        centres = (np.arange(n) + 0.5) / n
        y, x = np.meshgrid(centres, centres, indexing="ij")
        rows.append(np.column_stack([x.ravel(), y.ravel(), np.full(n * n, sigma)]))
    return np.concatenate(rows)


def prf_weights(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Each pRF of ``grid`` as pooling weights over a map of ``height x width`` cells, summing to 1.

    Returns
    -------
    ndarray of shape (n_candidates, height, width), float64
    """
    grid = _check_grid(grid)
    x = (np.arange(width) + 0.5) / width
    y = (np.arange(height) + 0.5) / height
    dx = x[None, None, :] - grid[:, 0, None, None]
    # distances in image widths: a map cell is 1 / width wide and 1 / height tall in those units only after
    # scaling y by height / width (the map keeps the image's aspect ratio)
    dy = (y[None, :, None] - grid[:, 1, None, None]) * (height / width)
    exponent = -(dx**2 + dy**2) / (2.0 * grid[:, 2, None, None] ** 2)
    # shifting by the peak keeps a pRF far smaller than a cell from underflowing to all zeros
    weights = np.exp(exponent - exponent.max(axis=(1, 2), keepdims=True))
    return weights / weights.sum(axis=(1, 2), keepdims=True)


def pool(maps: np.ndarray, grid: np.ndarray, dtype: str = "float64") -> np.ndarray:
    """One layer's feature maps pooled under every pRF of ``grid``.

    Parameters
    ----------
    maps : ndarray of shape (n_images, channels, height, width)
    grid : ndarray of shape (n_candidates, 3)
        ``(x, y, sigma)`` per pRF (module docstring for the coordinates).
    dtype : {"float32", "float64"}

    Returns
    -------
    ndarray of shape (n_images, channels, n_candidates)
        ``sum over cells of maps[k, c] * weights[g]``.
    """
    maps = np.asarray(maps)
    if maps.ndim != 4:
        raise InputError(SOURCE, "maps", "an array (n_images, channels, height, width)", f"shape {maps.shape}")
    n, channels, height, width = maps.shape
    torch_dtype = _dtype(dtype)
    weights = torch.as_tensor(prf_weights(grid, height, width).reshape(-1, height * width), dtype=torch_dtype)
    cells = torch.as_tensor(np.ascontiguousarray(maps), dtype=torch_dtype).reshape(n * channels, height * width)
    return (cells @ weights.T).reshape(n, channels, -1).numpy()


@dataclass
class _Maps:
    """Kept channels' maps of some images on the device, and every candidate's pooling weights per layer."""

    cells: list[torch.Tensor]        # per layer (n_images * kept channels, cells)
    weights: list[torch.Tensor]      # per layer (n_candidates, cells)
    kept: list[int]                  # kept channels per layer
    n_images: int

    def design(self, candidates: np.ndarray) -> torch.Tensor:
        """Raw design of every image under each of ``candidates``: (b, n_images, n_features)."""
        index = torch.as_tensor(candidates, device=self.cells[0].device)
        # weights @ cells' lands in (candidate, image, channel) order: no transpose copy afterwards
        parts = [(weights[index] @ cells.T).reshape(len(candidates), self.n_images, kept)
                 for cells, weights, kept in zip(self.cells, self.weights, self.kept)]
        return torch.cat(parts, dim=2)


@dataclass
class _Problem:
    """A training set on the device: the maps of its images and per-image sums of the responses."""

    maps: _Maps
    fit_weights: torch.Tensor        # (n_images,) fit trials per image
    train_weights: torch.Tensor      # (n_images,) training trials per image
    fit_images: torch.Tensor         # images with fit trials
    hold_images: torch.Tensor        # images with holdout trials
    fit_sums: torch.Tensor           # (n_fit_images, n_voxels) sums of responses centred on the fit mean
    train_sums: torch.Tensor         # (n_images, n_voxels) sums of responses centred on the training mean
    hold_means: torch.Tensor         # (n_hold_images, n_voxels) mean holdout response, centred on the fit mean
    hold_counts: torch.Tensor        # (n_hold_images,) holdout trials per image
    within: np.ndarray               # (n_voxels,) holdout trials' squared deviation from their image's mean
    n_hold_rows: int
    hold_rows: np.ndarray            # (n_hold_rows,) each holdout row's image, as an index into hold_images
    hold_responses: np.ndarray       # (n_hold_rows, n_voxels)
    fit_mean: np.ndarray             # (n_voxels,)
    train_mean: np.ndarray           # (n_voxels,)


@dataclass
class _Basis:
    """A batch of candidates' designs z-scored on some rows, and the eigenbasis of those rows' Gram matrix."""

    z: torch.Tensor                  # (b, n_images, p)
    z_rows: torch.Tensor             # (b, n_row_images, p) the images of the rows
    mean: torch.Tensor               # (b, p) the z-scoring statistics
    scale: torch.Tensor              # (b, p)
    values: torch.Tensor             # (b, p) eigenvalues, ascending
    vectors: torch.Tensor            # (b, p, p)

    def solve(self, j: int, rhs: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
        """Candidate ``j``'s ridge coordinates ``diag(1 / (s + alpha)) V' X'y`` for ``rhs = V' X'y`` (p, v)."""
        return rhs / (self.values[j][:, None] + penalty[None, :])


def _standardise(design: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """z-score ``design`` (b, n, p) with the statistics of rows repeated ``counts`` (n,) times."""
    share = counts / counts.sum()
    mean = share @ design
    centred = design - mean[:, None, :]
    scale = (share @ centred.square()).sqrt()
    # a constant feature keeps a rounding-sized spread (the shares sum to 1 only to rounding); dividing by it
    # would turn the constant into +-1 noise, so it is left unscaled
    constant = scale <= 100 * torch.finfo(design.dtype).eps * mean.abs()
    scale = torch.where(constant | (scale == 0), torch.ones_like(scale), scale)
    return centred.div_(scale[:, None, :]), mean, scale


def _gram(z: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """``z' diag(counts) z`` for each candidate of ``z`` (b, n, p): the Gram matrix of the trial rows."""
    return z.transpose(1, 2) @ (z * counts[None, :, None])


def _basis(design: torch.Tensor, counts: torch.Tensor, rows: torch.Tensor) -> _Basis:
    """z-score ``design`` with the statistics of the trial rows and decompose their Gram matrix (``rows``: the
    images that have such rows)."""
    z, mean, scale = _standardise(design, counts)
    z_rows = z[:, rows]
    values, vectors = torch.linalg.eigh(_gram(z_rows, counts[rows]))
    # the Gram matrix is positive semi-definite: negative eigenvalues are rounding
    return _Basis(z, z_rows, mean, scale, values.clamp_min(0), vectors)


class FwRF:
    """Feature-weighted receptive field encoding model: one Gaussian pRF and one ridge read-out per voxel.

    Parameters
    ----------
    grid : ndarray of shape (n_candidates, 3), optional
        Candidate pRFs ``(x, y, sigma)``; default :func:`prf_grid` (2,680 candidates).
    alphas : array-like of float
        Ridge penalties tried for every candidate (the reference's ``logspace(3, 6, 9)``; they act on z-scored
        features summed over trial rows, so they scale with the number of rows).
    holdout : float
        Fraction of the response rows, the last ones, on which pRFs and penalties are chosen.
    n_features : int
        Channels kept per layer, the most variable over the training images.
    refit : bool
        Refit the chosen (pRF, penalty) on all training rows (default); False keeps the model fitted without
        the holdout, as the seed does.
    candidate_batch : int
        Candidates solved together (one batched eigendecomposition).
    device : str
        torch device, ``"cpu"`` or ``"cuda"`` (``"cuda:1"``, ...).
    dtype : {"float32", "float64"}
        Precision of the search and the refit.
    progress : bool
        tqdm bars over candidates.

    Attributes
    ----------
    layers_ : list of str
        Layers read, in the order of the design's columns.
    map_shapes_ : dict of str to tuple
        ``(channels, height, width)`` of each layer's maps at fit.
    channels_ : dict of str to ndarray
        Kept channels per layer, ascending.
    grid_ : ndarray of shape (n_candidates, 3)
    candidate_ : ndarray of shape (n_voxels,)
        Chosen candidate, an index into ``grid_``.
    prf_ : ndarray of shape (n_voxels, 3)
        Chosen ``(x, y, sigma)``.
    alpha_ : ndarray of shape (n_voxels,)
        Chosen penalty.
    holdout_loss_ : ndarray of shape (n_voxels,)
        Mean squared error on the holdout rows of the chosen model fitted without them.
    holdout_r_ : ndarray of shape (n_voxels,)
        Pearson r on the holdout rows of that model.
    coef_ : ndarray of shape (n_voxels, n_features_total), float32
        Weights on the z-scored features of the model that predicts (refitted on all training rows, or not).
    feature_mean_, feature_scale_ : ndarray of shape (n_voxels, n_features_total), float32
        The z-scoring statistics of each voxel's features (those of its pRF) over that model's rows.
    intercept_ : ndarray of shape (n_voxels,), float32
        Mean response over that model's rows.
    """

    def __init__(self, grid: np.ndarray | None = None, alphas: np.ndarray = ALPHAS, holdout: float = 0.1,
                 n_features: int = 512, refit: bool = True, candidate_batch: int = 16, device: str = "cpu",
                 dtype: str = "float32", progress: bool = True) -> None:
        self.grid = grid
        self.alphas = alphas
        self.holdout = holdout
        self.n_features = n_features
        self.refit = refit
        self.candidate_batch = candidate_batch
        self.device = device
        self.dtype = dtype
        self.progress = progress

    def fit(self, maps: dict[str, np.ndarray], responses: np.ndarray,
            image_index: np.ndarray | None = None) -> FwRF:
        """Choose each voxel's pRF and penalty on the holdout rows, then refit on all rows (``refit``).

        Parameters
        ----------
        maps : dict of str to ndarray of shape (n_images, channels, height, width)
            Feature maps per layer (:func:`brainalign.vision.networks.feature_maps`); sizes may differ by layer.
        responses : ndarray of shape (n_rows, n_voxels)
            One row per trial; the last ``holdout`` fraction of the rows is the holdout.
        image_index : ndarray of shape (n_rows,), optional
            Row of ``maps`` shown in each trial (default: row ``i`` is image ``i``).

        Returns
        -------
        FwRF
            ``self``, fitted.
        """
        grid, alphas = self._settings()
        problem, channels = self._prepare(maps, responses, image_index, grid)
        self.layers_ = list(maps)
        self.map_shapes_ = {layer: tuple(np.shape(maps[layer])[1:]) for layer in maps}
        self.channels_ = channels
        self.grid_ = grid
        self._search(problem, grid, alphas)
        self.prf_ = grid[self.candidate_]
        if self.refit:
            self._refit(problem)
        logger.info("fwRF: %d voxels, %d candidates, %d distinct pRFs chosen, median holdout r %.3f",
                    len(self.candidate_), len(grid), len(np.unique(self.candidate_)),
                    float(np.median(self.holdout_r_)))
        return self

    def predict(self, maps: dict[str, np.ndarray], image_index: np.ndarray | None = None) -> np.ndarray:
        """Predicted responses, one row per image (or per entry of ``image_index``).

        Returns
        -------
        ndarray of shape (n_rows, n_voxels), float32
        """
        if not hasattr(self, "coef_"):
            raise ConfigError(f"{SOURCE}: predict called before fit")
        n_images = _check_maps(maps, self.layers_, self.map_shapes_)
        rows = _check_index(image_index, n_images, None)
        used, local = np.unique(rows, return_inverse=True)
        dtype = _dtype(self.dtype)
        device_maps = self._device_maps(maps, used, self.channels_, self.grid_)
        coef = torch.as_tensor(self.coef_, dtype=dtype, device=self.device)
        mean = torch.as_tensor(self.feature_mean_, dtype=dtype, device=self.device)
        scale = torch.as_tensor(self.feature_scale_, dtype=dtype, device=self.device)
        out = np.empty((len(used), len(self.candidate_)), dtype=np.float32)
        chosen = np.unique(self.candidate_)
        batch = int(self.candidate_batch)
        for start in range(0, len(chosen), batch):
            candidates = chosen[start:start + batch]
            design = device_maps.design(candidates)
            for j, c in enumerate(candidates):
                voxels = np.flatnonzero(self.candidate_ == c)
                # voxels sharing a pRF share its statistics: the first one's stand for all
                z = (design[j] - mean[voxels[0]]) / scale[voxels[0]]
                out[:, voxels] = (z @ coef[voxels].T).cpu().numpy()
        out += self.intercept_
        return out[local]

    def score(self, maps: dict[str, np.ndarray], responses: np.ndarray,
              image_index: np.ndarray | None = None) -> np.ndarray:
        """Pearson r per voxel between ``responses`` and the predictions for their images.

        Returns
        -------
        ndarray of shape (n_voxels,)
        """
        responses = _check_responses(responses)
        predictions = self.predict(maps, image_index)
        if predictions.shape != responses.shape:
            raise InputError(SOURCE, "responses", f"shape {predictions.shape} (rows x the fitted voxels)",
                             f"shape {responses.shape}")
        return voxel_correlation(responses, predictions)

    def ridge_path(self, maps: dict[str, np.ndarray], responses: np.ndarray, candidate: int,
                   image_index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One candidate's ridge solutions and holdout errors for every penalty, as the search computes them.

        Parameters
        ----------
        maps, responses, image_index
            As for :meth:`fit`.
        candidate : int
            Index into the grid.

        Returns
        -------
        weights : ndarray of shape (n_alphas, n_features_total, n_voxels)
            Ridge weights on the z-scored features, fitted without the holdout rows.
        losses : ndarray of shape (n_alphas, n_voxels)
            Mean squared error on the holdout rows.
        """
        grid, alphas = self._settings()
        if not 0 <= candidate < len(grid):
            raise ConfigError(f"{SOURCE}: candidate: expected an index below {len(grid)}, found {candidate!r}")
        problem, _ = self._prepare(maps, responses, image_index, grid)
        basis, held = self._candidate_basis(problem, np.array([candidate]))
        n_voxels = problem.fit_sums.shape[1]
        weights = np.empty((len(alphas), basis.vectors.shape[1], n_voxels))
        losses = np.empty((len(alphas), n_voxels))
        penalties = torch.as_tensor(alphas, dtype=basis.z.dtype, device=basis.z.device)
        for voxels, block, coords in self._block_losses(problem, basis, held, alphas):
            losses[:, voxels] = block[0]
            for i in range(len(alphas)):
                solved = basis.solve(0, coords[0], penalties[i].expand(coords.shape[2]))
                weights[i][:, voxels] = (basis.vectors[0] @ solved).cpu().numpy()
        return weights, losses

    # -- the search --------------------------------------------------------------------------------------------

    def _search(self, problem: _Problem, grid: np.ndarray, alphas: np.ndarray) -> None:
        """Running minimum of the holdout error over (candidate, penalty), per voxel; the chosen models'
        holdout predictions (and, without ``refit``, their weights) follow the minimum."""
        n_voxels, p = problem.fit_sums.shape[1], sum(problem.maps.kept)
        dtype, device = problem.fit_sums.dtype, problem.fit_sums.device
        best_loss = np.full(n_voxels, np.inf)
        best_candidate = np.zeros(n_voxels, dtype=np.int64)
        best_alpha = np.zeros(n_voxels, dtype=np.int64)
        held_predictions = torch.zeros((len(problem.hold_images), n_voxels), dtype=dtype, device=device)
        if not self.refit:
            coef, mean, scale = (torch.zeros((n_voxels, p), dtype=dtype, device=device) for _ in range(3))
        penalties = torch.as_tensor(alphas, dtype=dtype, device=device)
        batch = int(self.candidate_batch)
        with tqdm(total=len(grid), desc="fwRF candidates", unit="pRF", disable=not self.progress) as bar:
            for start in range(0, len(grid), batch):
                candidates = np.arange(start, min(start + batch, len(grid)))
                basis, held = self._candidate_basis(problem, candidates)
                for voxels, losses, coords in self._block_losses(problem, basis, held, alphas):
                    flat = losses.reshape(-1, losses.shape[2])
                    # argmin takes the first minimum: candidates in grid order, then penalties ascending
                    pick = flat.argmin(axis=0)
                    value = flat[pick, np.arange(flat.shape[1])]
                    local = np.flatnonzero(value < best_loss[voxels])
                    if not local.size:
                        continue
                    which, alpha_index = np.divmod(pick[local], len(alphas))
                    target = voxels.start + local
                    best_loss[target] = value[local]
                    best_candidate[target] = candidates[which]
                    best_alpha[target] = alpha_index
                    for j in np.unique(which):
                        mine = which == j
                        solved = basis.solve(j, coords[j][:, local[mine]], penalties[alpha_index[mine]])
                        held_predictions[:, target[mine]] = held[j] @ solved
                        if not self.refit:
                            coef[target[mine]] = (basis.vectors[j] @ solved).T
                            mean[target[mine]] = basis.mean[j]
                            scale[target[mine]] = basis.scale[j]
                bar.update(len(candidates))
        self.candidate_ = best_candidate
        self.alpha_ = alphas[best_alpha]
        self.holdout_loss_ = best_loss
        predictions = held_predictions.cpu().numpy()[problem.hold_rows] + problem.fit_mean
        self.holdout_r_ = voxel_correlation(problem.hold_responses, predictions)
        if not self.refit:
            self.coef_ = coef.cpu().numpy().astype(np.float32)
            self.feature_mean_ = mean.cpu().numpy().astype(np.float32)
            self.feature_scale_ = scale.cpu().numpy().astype(np.float32)
            self.intercept_ = problem.fit_mean.astype(np.float32)

    @staticmethod
    def _candidate_basis(problem: _Problem, candidates: np.ndarray) -> tuple[_Basis, torch.Tensor]:
        """The candidates' designs z-scored and decomposed on the fit rows, and the holdout images' designs in
        that eigenbasis (b, n_hold_images, p)."""
        basis = _basis(problem.maps.design(candidates), problem.fit_weights, problem.fit_images)
        return basis, basis.z[:, problem.hold_images] @ basis.vectors

    @staticmethod
    def _block_losses(problem: _Problem, basis: _Basis, held: torch.Tensor,
                      alphas: np.ndarray) -> Iterator[tuple[slice, np.ndarray, torch.Tensor]]:
        """Per block of voxels: the holdout mean squared error of every candidate and penalty (b, n_alphas,
        voxels) and the ridge right-hand sides ``V' X'y`` (b, p, voxels) they came from."""
        b, n_hold, p = held.shape
        n_voxels = problem.fit_sums.shape[1]
        step = max(1, _BLOCK_ELEMENTS // (b * max(p, n_hold)))
        for lo in range(0, n_voxels, step):
            voxels = slice(lo, min(lo + step, n_voxels))
            coords = basis.vectors.transpose(1, 2) @ (basis.z_rows.transpose(1, 2) @ problem.fit_sums[:, voxels])
            losses = np.empty((b, len(alphas), voxels.stop - lo))
            for i, alpha in enumerate(alphas):
                residual = problem.hold_means[None, :, voxels] - (held / (basis.values[:, None, :] + alpha)) @ coords
                losses[:, i] = (residual.square_() * problem.hold_counts[None, :, None]).sum(1).cpu().numpy()
            yield voxels, (losses + problem.within[voxels]) / problem.n_hold_rows, coords

    def _refit(self, problem: _Problem) -> None:
        """Each voxel's chosen pRF and penalty refitted on all training rows."""
        n_voxels, p = len(self.candidate_), sum(problem.maps.kept)
        self.coef_ = np.empty((n_voxels, p), dtype=np.float32)
        self.feature_mean_ = np.empty((n_voxels, p), dtype=np.float32)
        self.feature_scale_ = np.empty((n_voxels, p), dtype=np.float32)
        self.intercept_ = problem.train_mean.astype(np.float32)
        identity = torch.eye(p, dtype=problem.train_sums.dtype, device=problem.train_sums.device)
        chosen = np.unique(self.candidate_)
        batch = int(self.candidate_batch)
        with tqdm(total=len(chosen), desc="fwRF refit", unit="pRF", disable=not self.progress) as bar:
            for start in range(0, len(chosen), batch):
                candidates = chosen[start:start + batch]
                z, mean, scale = _standardise(problem.maps.design(candidates), problem.train_weights)
                gram = _gram(z, problem.train_weights)
                for j, c in enumerate(candidates):
                    voxels = np.flatnonzero(self.candidate_ == c)
                    rhs = z[j].T @ problem.train_sums[:, voxels]
                    # a pRF is chosen by a few voxels with a few penalties: one solve per penalty costs less
                    # than an eigendecomposition
                    for alpha in np.unique(self.alpha_[voxels]):
                        mine = np.flatnonzero(self.alpha_[voxels] == alpha)
                        solved = torch.linalg.solve(gram[j] + float(alpha) * identity, rhs[:, mine])
                        self.coef_[voxels[mine]] = solved.T.cpu().numpy()
                    self.feature_mean_[voxels] = mean[j].cpu().numpy()
                    self.feature_scale_[voxels] = scale[j].cpu().numpy()
                bar.update(len(candidates))

    # -- inputs ------------------------------------------------------------------------------------------------

    def _settings(self) -> tuple[np.ndarray, np.ndarray]:
        grid = prf_grid() if self.grid is None else _check_grid(self.grid)
        alphas = np.asarray(self.alphas, dtype=np.float64)
        if alphas.ndim != 1 or not alphas.size or not np.all(np.isfinite(alphas)) or (alphas <= 0).any():
            raise ConfigError(f"{SOURCE}: alphas: expected positive penalties, found {np.ravel(alphas).tolist()}")
        if isinstance(self.holdout, bool) or not isinstance(self.holdout, (int, float)) or not 0 < self.holdout < 1:
            raise ConfigError(f"{SOURCE}: holdout: expected a fraction in (0, 1), found {self.holdout!r}")
        if not isinstance(self.refit, (bool, np.bool_)):
            raise ConfigError(f"{SOURCE}: refit: expected true or false, found {self.refit!r}")
        for name in ("n_features", "candidate_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{SOURCE}: {name}: expected a whole number >= 1, found {value!r}")
        _dtype(self.dtype)
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as error:
            raise ConfigError(f"{SOURCE}: device: expected cpu or cuda, found {self.device!r}") from error
        if device.type not in ("cpu", "cuda"):
            raise ConfigError(f"{SOURCE}: device: expected cpu or cuda, found {self.device!r}")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"{SOURCE}: device: {self.device}, but torch sees no CUDA device here")
        return grid, alphas

    def _prepare(self, maps: dict[str, np.ndarray], responses: np.ndarray, image_index: np.ndarray | None,
                 grid: np.ndarray) -> tuple[_Problem, dict[str, np.ndarray]]:
        """Check the inputs, choose the channels and put the training set on the device."""
        n_images = _check_maps(maps, None, None)
        responses = _check_responses(responses)
        rows = _check_index(image_index, n_images, len(responses))
        n_rows, n_voxels = responses.shape
        n_hold = math.ceil(self.holdout * n_rows)
        if n_rows - n_hold < 2:
            raise InputError(SOURCE, "responses", f"at least 2 rows besides the {self.holdout:g} holdout",
                             f"{n_rows} rows")
        used, local = np.unique(rows, return_inverse=True)
        channels = {layer: _top_channels(np.asarray(values), used, int(self.n_features))
                    for layer, values in maps.items()}
        device_maps = self._device_maps(maps, used, channels, grid)

        fit, hold = np.arange(n_rows - n_hold), np.arange(n_rows - n_hold, n_rows)
        fit_mean = responses[fit].mean(axis=0)
        train_mean = responses.mean(axis=0)
        sums = scipy.sparse.csr_matrix((np.ones(n_rows), (local, np.arange(n_rows))), shape=(len(used), n_rows))
        fit_counts = np.bincount(local[fit], minlength=len(used)).astype(np.float64)
        hold_counts = np.bincount(local[hold], minlength=len(used)).astype(np.float64)
        fit_images, hold_images = np.flatnonzero(fit_counts), np.flatnonzero(hold_counts)
        fit_sums = (sums[:, fit] @ (responses[fit] - fit_mean))[fit_images]
        train_sums = sums @ (responses - train_mean)
        hold_centred = responses[hold] - fit_mean
        hold_means = (sums[:, hold] @ hold_centred)[hold_images] / hold_counts[hold_images, None]
        position = np.full(len(used), -1)
        position[hold_images] = np.arange(len(hold_images))
        hold_rows = position[local[hold]]
        within = ((hold_centred - hold_means[hold_rows]) ** 2).sum(axis=0)

        dtype = _dtype(self.dtype)

        def put(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype, device=self.device)

        problem = _Problem(
            maps=device_maps,
            fit_weights=put(fit_counts), train_weights=put(fit_counts + hold_counts),
            fit_images=torch.as_tensor(fit_images, device=self.device),
            hold_images=torch.as_tensor(hold_images, device=self.device),
            fit_sums=put(fit_sums), train_sums=put(train_sums), hold_means=put(hold_means),
            hold_counts=put(hold_counts[hold_images]), within=within, n_hold_rows=n_hold, hold_rows=hold_rows,
            hold_responses=responses[hold], fit_mean=fit_mean, train_mean=train_mean)
        return problem, channels

    def _device_maps(self, maps: dict[str, np.ndarray], used: np.ndarray, channels: dict[str, np.ndarray],
                     grid: np.ndarray) -> _Maps:
        """Kept channels of the ``used`` images, flattened to (images * channels, cells), and the pRF weights."""
        dtype = _dtype(self.dtype)
        cells, weights, kept = [], [], []
        for layer, chosen in channels.items():
            values = np.asarray(maps[layer])
            _, _, height, width = values.shape
            selected = values[used][:, chosen].reshape(len(used) * len(chosen), height * width)
            cells.append(torch.as_tensor(np.ascontiguousarray(selected), dtype=dtype, device=self.device))
            weights.append(torch.as_tensor(prf_weights(grid, height, width).reshape(len(grid), -1), dtype=dtype,
                                           device=self.device))
            kept.append(len(chosen))
        return _Maps(cells, weights, kept, len(used))


def _dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ConfigError(f"{SOURCE}: dtype: expected one of {list(DTYPES)}, found {name!r}")
    return DTYPES[name]


def _check_grid(grid: np.ndarray) -> np.ndarray:
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 2 or grid.shape[1] != 3 or not len(grid):
        raise ConfigError(f"{SOURCE}: grid: expected an array (n_candidates, 3) of (x, y, sigma), "
                          f"found shape {grid.shape}")
    if not np.isfinite(grid).all() or (grid[:, 2] <= 0).any():
        raise ConfigError(f"{SOURCE}: grid: expected finite (x, y, sigma) with sigma > 0")
    return grid


def _check_maps(maps: dict[str, np.ndarray], layers: list[str] | None,
                shapes: dict[str, tuple] | None) -> int:
    """Number of images; every layer a finite 4-D array with the same images (and the fitted shapes)."""
    if not isinstance(maps, dict) or not maps:
        raise InputError(SOURCE, "maps", "a dict of layer name -> (n_images, channels, height, width)",
                         type(maps).__name__ if not isinstance(maps, dict) else "an empty dict")
    if layers is not None and sorted(maps) != sorted(layers):
        raise InputError(SOURCE, "maps", f"the fitted layers {layers}", f"{list(maps)}")
    counts = {}
    for layer, values in maps.items():
        values = np.asarray(values)
        if values.ndim != 4 or not np.issubdtype(values.dtype, np.number):
            raise InputError(SOURCE, f"maps[{layer!r}]", "a numeric array (n_images, channels, height, width)",
                             f"{values.dtype} of shape {values.shape}")
        if shapes is not None and tuple(values.shape[1:]) != tuple(shapes[layer]):
            raise InputError(SOURCE, f"maps[{layer!r}]", f"(channels, height, width) {tuple(shapes[layer])} as at fit",
                             f"{tuple(values.shape[1:])}")
        step = max(1, _CHUNK_ELEMENTS // max(1, int(np.prod(values.shape[1:]))))
        if not all(np.isfinite(values[lo:lo + step]).all() for lo in range(0, len(values), step)):
            raise InputError(SOURCE, f"maps[{layer!r}]", "finite values", "NaN or infinite values")
        counts[layer] = values.shape[0]
    if len(set(counts.values())) != 1:
        raise InputError(SOURCE, "maps", "the same number of images in every layer",
                         ", ".join(f"{layer}: {n}" for layer, n in counts.items()))
    return next(iter(counts.values()))


def _check_responses(responses: np.ndarray) -> np.ndarray:
    responses = np.asarray(responses)
    if responses.ndim != 2 or not responses.size or not np.issubdtype(responses.dtype, np.number):
        raise InputError(SOURCE, "responses", "a numeric array (n_rows, n_voxels)",
                         f"{responses.dtype} of shape {responses.shape}")
    responses = responses.astype(np.float64)
    if not np.isfinite(responses).all():
        raise InputError(SOURCE, "responses", "finite values", f"{int((~np.isfinite(responses)).sum())} NaN or "
                                                                "infinite values")
    return responses


def _check_index(image_index: np.ndarray | None, n_images: int, n_rows: int | None) -> np.ndarray:
    """Each row's image: ``image_index`` checked, or every image once."""
    if image_index is None:
        if n_rows is not None and n_rows != n_images:
            raise InputError(SOURCE, "responses", f"one row per image ({n_images}) when image_index is not given",
                             f"{n_rows} rows")
        return np.arange(n_images)
    index = np.asarray(image_index)
    if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer) or not index.size:
        raise InputError(SOURCE, "image_index", "a non-empty 1-D integer array",
                         f"{index.dtype} of shape {index.shape}")
    if n_rows is not None and len(index) != n_rows:
        raise InputError(SOURCE, "image_index", f"one entry per response row ({n_rows})", f"{len(index)}")
    if index.min() < 0 or index.max() >= n_images:
        raise InputError(SOURCE, "image_index", f"rows of the maps, 0 to {n_images - 1}",
                         f"values from {index.min()} to {index.max()}")
    return index.astype(np.int64)


def _top_channels(values: np.ndarray, images: np.ndarray, n_features: int) -> np.ndarray:
    """The ``n_features`` channels of largest variance over ``images`` and cells, ascending (ties: lower first)."""
    _, channels, height, width = values.shape
    step = max(1, _CHUNK_ELEMENTS // (channels * height * width))
    chunks = [images[lo:lo + step] for lo in range(0, len(images), step)]
    # two passes in float64 by chunks: a layer's maps of every image need not fit twice in memory
    total = sum(values[chunk].sum(axis=(0, 2, 3), dtype=np.float64) for chunk in chunks)
    mean = total / (len(images) * height * width)
    spread = sum(((values[chunk] - mean[None, :, None, None]) ** 2).sum(axis=(0, 2, 3)) for chunk in chunks)
    order = np.argsort(-spread, kind="stable")
    return np.sort(order[:min(n_features, channels)])
