"""A simulated twin of NSD, written in the release layout (:mod:`brainalign.vision.nsd`), with its ground truth.

**Design.** Every participant sees the ``shared_images`` (the same NSD ids for everyone, listed in
``sharedix``) and ``images_per_subject`` images of its own, each ``repeats`` times. As in the release, one
``masterordering`` (a seeded random order of the columns of ``subjectim``, each repeated) serves every
participant, and each row of ``subjectim`` lists the shared images first (ascending), then the participant's
own (ascending). NSD ids are a seeded permutation of the ``imgBrick`` rows, so shared and own images are
interleaved in the brick as in the release. Trials fill sessions of ``trials_per_session``.

**Voxels.** Each participant has a small volume (``grid``, (x, y, z)). The first and last x-slabs lie outside
the brain (-1 in prf-visualrois and nsdgeneral); the rest is inside nsdgeneral. Along y, four equal bands hold
V1, V2, V3 and hV4 (posterior to anterior); along z the lower half is ventral, the upper dorsal (V1v/V1d,
V2v/V2d, V3v/V3d; hV4 is ventral only, its dorsal band unlabelled). A random ``noise_voxel_share`` of the
labelled voxels is unlabelled too (0): those voxels carry noise only.

**Signal.** Each ROI voxel has a Gaussian population receptive field over the feature maps of a hidden network,
``load_network("alexnet", seed=hidden_seed)`` read with ``feature_maps(..., size=image_size)``. The hierarchy:
V1 reads conv1; V2 conv1-conv2; V3 conv1-conv3; hV4 conv1-conv5; an ROI's top layer gets ``top_layer_share``
(0.6) of the weight, the lower layers share the rest equally (a V1 voxel reads conv1 only). pRF sizes grow
V1 -> hV4 (:data:`SIGMA_RANGES`); centres are uniform in [0.2, 0.8] of the image. For each of its layers a
voxel pools every channel map (each channel divided by its standard deviation over all images and positions,
so that channels count alike) with its Gaussian, weights the channels with random non-negative weights (a
random quarter of the channels, exponential weights), and standardises the sum over the participant's images;
the voxel's signal is the sum over layers of ``sqrt(share) x`` that component, standardised again. So a share
is the layer's share of the signal variance were the layers' components uncorrelated.

**Coordinate convention.** A pRF centre ``(prf_x, prf_y)`` is in fractions of the image width and height, origin
at the top-left corner, x rightwards, y downwards; ``prf_sigma`` is a fraction of the image width. A Gaussian
over a feature map of h x w cells is evaluated at the cell centres ``((j + 0.5) / w, (i + 0.5) / h)`` (row i,
column j) and normalised to sum 1. (A convolution's cell centres are not exactly there: conv1's stride-4 cells
are centred 3.5 pixels past ``4 j``; the convention, not the network's geometry, defines the truth.)

**Noise.** Each ROI voxel's ncsnr is ``median x exp(ncsnr_spread x N(0, 1))`` with the ROI's median from
``ncsnr_median`` (V1 > V2 > V3 > hV4 by default, so the noise ceilings order the same way). A single trial is
``(signal + noise / ncsnr) / sqrt(1 + 1 / ncsnr**2)`` with standard normal noise, so ncsnr is the true ratio of
signal to noise standard deviation and the correlation between two repeats of an image is
``ncsnr**2 / (ncsnr**2 + 1)``. Unlabelled voxels get standard normal noise only. Responses become percent signal
change, ``baseline + psc_sd x gain x response`` (per-voxel baseline and gain), then every session adds its own
per-voxel offset (sd ``session_offset_sd``) and scale (log-normal, sd ``session_scale_sd``) — drift that
z-scoring within sessions removes — and betas are ``round(300 x psc)`` in int16. ``ncsnr.nii.gz`` holds the
true ncsnr (0 outside the ROIs).

**Truth.** ``truth.json`` beside the data (schema in :func:`simulate_nsd`). The transfer matrix's truth is not in
it (it needs fitting, about a minute): :func:`brainalign.vision.transfer.ideal_transfer_matrix` derives it from
this generative model (each ROI's layers as its ideal core, read out under the true pRFs). With nested layers its
infinite-data sign is alpha = +1; at the default twin's size it is -1 (docs/vision.md).

Everything is seeded: the same settings give the same bytes in every file (on the same machine and torch build;
the network's float arithmetic decides where a beta rounds).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from brainalign.errors import ConfigError, InputError
from brainalign.files import atomic_path, write_json
from brainalign.vision.images import make_images
from brainalign.vision.networks import feature_maps, load_network
from brainalign.vision.nsd import (BETA_SCALE, LABEL_NAMES, ROI_LABELS, ExpDesign, NsdLayout, write_betas,
                                   write_expdesign, write_stimuli, write_volume)

log = logging.getLogger(__name__)

ROIS = tuple(ROI_LABELS)
#: The hidden network's layers each ROI reads; the last is its top layer.
ROI_LAYERS = {"V1": ("conv1",), "V2": ("conv1", "conv2"), "V3": ("conv1", "conv2", "conv3"),
              "hV4": ("conv1", "conv2", "conv3", "conv4", "conv5")}
#: Range of pRF sigma (fraction of the image width) per ROI.
SIGMA_RANGES = {"V1": (0.04, 0.08), "V2": (0.06, 0.12), "V3": (0.08, 0.16), "hV4": (0.12, 0.25)}
#: pRF centres are uniform in this range of the image width and height.
CENTRE_RANGE = (0.2, 0.8)
#: Share of a layer's channels a voxel weights.
CHANNEL_DENSITY = 0.25
HIDDEN_NETWORK = "alexnet"
#: AlexNet's conv5 map is empty below this image size.
MIN_IMAGE_SIZE = 32
CONVENTION = {
    "prf_x": "fraction of the image width, 0 = left edge, increasing rightwards",
    "prf_y": "fraction of the image height, 0 = top edge, increasing downwards",
    "prf_sigma": "standard deviation of the Gaussian, fraction of the image width",
    "feature_map_cells": "cell (row i, column j) of an h x w map lies at ((j + 0.5) / w, (i + 0.5) / h)",
    "coords": "(x, y, z) 0-based indices into the participant's volume (the NIfTI's axes)",
}
NOTES = ("layer_shares are each layer's share of the signal variance were the layers' components uncorrelated.")
TRUTH_FILE = "truth.json"


@dataclass
class VisionSimulation:
    """Settings of the simulated NSD twin (small by default: a run takes seconds).

    Parameters
    ----------
    subjects : int
        Participants.
    shared_images : int
        Images every participant sees (the validation images, ``sharedix``).
    images_per_subject : int
        Each participant's own images, besides the shared.
    repeats : int
        Presentations of every image.
    trials_per_session : int
        Trials per session file; must divide ``(shared_images + images_per_subject) * repeats``.
    image_size : int
        Side of the square images, pixels (at least 32, for AlexNet's conv5).
    grid : tuple of int
        The (x, y, z) volume of each participant; at least (3, 4, 2).
    hidden_seed : int
        Seed of the untrained AlexNet whose feature maps drive the voxels.
    ncsnr_median : tuple of float
        Median ncsnr of V1, V2, V3, hV4.
    ncsnr_spread : float
        Standard deviation of log ncsnr within an ROI.
    top_layer_share : float
        Share of an ROI's signal from its top layer (the rest is spread over its lower layers).
    noise_voxel_share : float
        Share of the labelled positions left unlabelled (noise-only voxels inside nsdgeneral).
    psc_sd : float
        Standard deviation of a voxel's single-trial response, percent signal change.
    session_offset_sd : float
        Per-session, per-voxel offset, percent signal change.
    session_scale_sd : float
        Standard deviation of the log of the per-session, per-voxel scale.
    seed : int
        Seeds images, design, voxels and noise.
    """

    subjects: int = 2
    shared_images: int = 60
    images_per_subject: int = 300
    repeats: int = 3
    trials_per_session: int = 360
    image_size: int = 96
    grid: tuple[int, int, int] = (10, 10, 6)
    hidden_seed: int = 1234
    ncsnr_median: tuple[float, float, float, float] = (0.9, 0.75, 0.6, 0.45)
    ncsnr_spread: float = 0.2
    top_layer_share: float = 0.6
    noise_voxel_share: float = 0.1
    psc_sd: float = 1.5
    session_offset_sd: float = 0.5
    session_scale_sd: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        self.grid = tuple(int(g) for g in self.grid)
        self.ncsnr_median = tuple(float(m) for m in self.ncsnr_median)
        counts = {"subjects": self.subjects, "shared_images": self.shared_images,
                  "images_per_subject": self.images_per_subject, "repeats": self.repeats,
                  "trials_per_session": self.trials_per_session}
        low = {name: value for name, value in counts.items() if int(value) != value or value < 1}
        if low:
            raise ConfigError(f"vision simulation: {low} must be whole numbers >= 1")
        if self.image_size < MIN_IMAGE_SIZE:
            raise ConfigError(f"vision simulation: image_size must be >= {MIN_IMAGE_SIZE}; got {self.image_size}")
        if len(self.grid) != 3 or self.grid[0] < 3 or self.grid[1] < 4 or self.grid[2] < 2:
            raise ConfigError(f"vision simulation: grid must be (x >= 3, y >= 4, z >= 2); got {self.grid}")
        if self.trials % self.trials_per_session:
            raise ConfigError(f"vision simulation: trials_per_session ({self.trials_per_session}) must divide the "
                              f"{self.trials} trials ((shared_images + images_per_subject) x repeats)")
        if len(self.ncsnr_median) != len(ROIS) or min(self.ncsnr_median) <= 0:
            raise ConfigError(f"vision simulation: ncsnr_median must be {len(ROIS)} positive numbers "
                              f"({', '.join(ROIS)}); got {self.ncsnr_median}")
        if not 0 < self.top_layer_share <= 1 or not 0 <= self.noise_voxel_share < 1:
            raise ConfigError("vision simulation: top_layer_share must be in (0, 1], noise_voxel_share in [0, 1)")
        if min(self.ncsnr_spread, self.psc_sd, self.session_offset_sd, self.session_scale_sd) < 0:
            raise ConfigError("vision simulation: spreads and standard deviations must be >= 0")

    @property
    def trials(self) -> int:
        """Trials per participant."""
        return (self.shared_images + self.images_per_subject) * self.repeats

    @property
    def sessions(self) -> int:
        """Sessions per participant."""
        return self.trials // self.trials_per_session


def layer_shares(roi: str, top_share: float) -> dict[str, float]:
    """Each layer's share of an ROI's signal: ``top_share`` for its top layer, the rest equally below."""
    layers = ROI_LAYERS[roi]
    if len(layers) == 1:
        return {layers[0]: 1.0}
    rest = (1.0 - top_share) / (len(layers) - 1)
    return {layer: (top_share if layer == layers[-1] else rest) for layer in layers}


def gaussian_weights(x: np.ndarray, y: np.ndarray, sigma: np.ndarray, height: int, width: int) -> np.ndarray:
    """Gaussians at (x, y) with ``sigma`` over an h x w map's cell centres, normalised to sum 1: (n, h * w)."""
    cx = (np.arange(width) + 0.5) / width
    cy = (np.arange(height) + 0.5) / height
    dx = (cx[None, None, :] - np.asarray(x)[:, None, None]) ** 2
    # distances in image widths (the convention), on a map with the image's aspect ratio
    dy = ((cy[None, :, None] - np.asarray(y)[:, None, None]) * (height / width)) ** 2
    exponent = (-(dx + dy) / (2 * np.asarray(sigma)[:, None, None] ** 2)).reshape(len(x), -1)
    # Shifting by the peak keeps a pRF far smaller than a cell from underflowing to all zeros.
    g = np.exp(exponent - exponent.max(axis=1, keepdims=True))
    return g / g.sum(axis=1, keepdims=True)


def _standardise(values: np.ndarray) -> np.ndarray:
    mean, sd = values.mean(axis=0), values.std(axis=0)
    return np.where(sd > 0, (values - mean) / np.where(sd > 0, sd, 1.0), 0.0)


def _label_volume(settings: VisionSimulation, rng: np.random.Generator) -> np.ndarray:
    nx, ny, nz = settings.grid
    band = (np.arange(ny) * len(ROIS)) // ny
    dorsal = (np.arange(nz) >= nz // 2).astype(np.int64)
    labels = (1 + 2 * band[:, None] + dorsal[None, :]).astype(np.int64)  # (y, z): V1v=1 ... V3d=6
    labels[band == 3] = np.where(dorsal == 0, 7, 0)  # hV4 is ventral only
    volume = np.broadcast_to(labels, (nx, ny, nz)).copy()
    volume[volume > 0] *= rng.random(int((volume > 0).sum())) >= settings.noise_voxel_share
    volume[[0, -1]] = -1
    return volume


def _voxel_signals(maps: dict[str, np.ndarray], ids: np.ndarray, roi: np.ndarray, prf: np.ndarray,
                   settings: VisionSimulation, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """Standardised signal (n_images, n_voxels) of ROI voxels over images ``ids``, and each voxel's shares."""
    shares = [layer_shares(name, settings.top_layer_share) for name in roi]
    signal = np.zeros((len(ids), len(roi)))
    for layer in ROI_LAYERS["hV4"]:
        users = np.flatnonzero([layer in share for share in shares])
        if not len(users):
            continue
        n_channels, height, width = maps[layer].shape[1:]
        chosen = rng.random((len(users), n_channels)) < CHANNEL_DENSITY
        chosen[np.arange(len(users)), rng.integers(0, n_channels, len(users))] = True
        weights = (rng.exponential(size=(len(users), n_channels)) * chosen).astype(np.float32)
        pools = gaussian_weights(prf[users, 0], prf[users, 1], prf[users, 2], height, width).astype(np.float32)
        component = np.empty((len(ids), len(users)))
        for start in range(0, len(ids), 64):
            block = maps[layer][ids[start:start + 64]]
            pooled = (block.reshape(-1, height * width) @ pools.T).reshape(len(block), n_channels, len(users))
            component[start:start + len(block)] = np.einsum("ncu,uc->nu", pooled, weights)
        root_share = np.sqrt([shares[u][layer] for u in users])
        signal[:, users] += root_share * _standardise(component)
    return _standardise(signal), shares


def hidden_feature_maps(images: np.ndarray, settings: VisionSimulation) -> tuple[dict[str, np.ndarray], str]:
    """The hidden network's feature maps that drive the twin's voxels, as the simulation computes them.

    Parameters
    ----------
    images : ndarray of uint8, shape (n_images, H, W, 3)
        Every image of the twin's ``imgBrick``, in its row order: each channel is divided by its standard
        deviation over exactly these images and positions, as the simulation did.
    settings : VisionSimulation
        The twin's settings (``truth["settings"]``): ``hidden_seed`` and ``image_size``.

    Returns
    -------
    maps : dict of str to ndarray
        conv1 ... conv5 -> float32 (n_images, channels, height, width).
    provenance : str
    """
    return _normalised_maps(images, settings)


def _normalised_maps(images: np.ndarray, settings: VisionSimulation) -> tuple[dict[str, np.ndarray], str]:
    network = load_network(HIDDEN_NETWORK, seed=settings.hidden_seed)
    maps = feature_maps(network, images, size=settings.image_size)
    for layer, values in maps.items():
        sd = values.std(axis=(0, 2, 3), dtype=np.float64)
        maps[layer] = values / np.where(sd > 0, sd, 1.0).astype(np.float32)[None, :, None, None]
    return maps, network.provenance


def _design(settings: VisionSimulation, rng: np.random.Generator) -> tuple[ExpDesign, int]:
    n_shared, n_own = settings.shared_images, settings.images_per_subject
    n_images = n_shared + settings.subjects * n_own
    ids = rng.permutation(n_images)
    shared = np.sort(ids[:n_shared])
    rows = [np.concatenate([shared, np.sort(ids[n_shared + s * n_own:n_shared + (s + 1) * n_own])])
            for s in range(settings.subjects)]
    order = rng.permutation(np.repeat(np.arange(n_shared + n_own), settings.repeats))
    return ExpDesign(order.astype(np.int64), np.stack(rows).astype(np.int64), shared.astype(np.int64)), n_images


def _participant(layout: NsdLayout, subject: int, design: ExpDesign, maps: dict[str, np.ndarray],
                 settings: VisionSimulation, rng: np.random.Generator) -> dict:
    """Simulate and write one participant's volumes and betas; return its truth."""
    labels = _label_volume(settings, rng)
    inside = np.argwhere(labels >= 0)
    inside_labels = labels[tuple(inside.T)]
    responsive = inside_labels > 0
    name_of = {label: name for name, group in ROI_LABELS.items() for label in group}
    roi = np.array([name_of[int(label)] for label in inside_labels[responsive]])
    n_roi = len(roi)

    sigma_lo = np.array([SIGMA_RANGES[name][0] for name in roi])
    sigma_hi = np.array([SIGMA_RANGES[name][1] for name in roi])
    prf = np.column_stack([rng.uniform(*CENTRE_RANGE, n_roi), rng.uniform(*CENTRE_RANGE, n_roi),
                           rng.uniform(sigma_lo, sigma_hi)])
    median = np.array([settings.ncsnr_median[ROIS.index(name)] for name in roi])
    ncsnr = median * np.exp(settings.ncsnr_spread * rng.standard_normal(n_roi))
    signal, shares = _voxel_signals(maps, design.subjectim[subject - 1], roi, prf, settings, rng)

    columns = design.masterordering
    response = np.empty((len(columns), len(inside)))
    noise = rng.standard_normal((len(columns), len(inside)))
    response[:, responsive] = (signal[columns] + noise[:, responsive] / ncsnr) / np.sqrt(1 + 1 / ncsnr**2)
    response[:, ~responsive] = noise[:, ~responsive]
    baseline = rng.normal(0.5, 0.5, len(inside))
    gain = rng.uniform(0.7, 1.3, len(inside))
    psc = baseline + settings.psc_sd * gain * response
    offset = rng.normal(0.0, settings.session_offset_sd, (settings.sessions, len(inside)))
    scale = np.exp(settings.session_scale_sd * rng.standard_normal((settings.sessions, len(inside))))

    for session in range(settings.sessions):
        rows = slice(session * settings.trials_per_session, (session + 1) * settings.trials_per_session)
        values = np.round(BETA_SCALE * (offset[session] + scale[session] * psc[rows]))
        volume = np.zeros(settings.grid + (settings.trials_per_session,), dtype=np.int16)
        volume[tuple(inside.T)] = np.clip(values, -32768, 32767).astype(np.int16).T
        write_betas(layout, subject, session + 1, volume)

    ncsnr_volume = np.zeros(settings.grid, dtype=np.float32)
    ncsnr_volume[tuple(inside[responsive].T)] = ncsnr
    general = np.where(labels >= 0, 1, -1).astype(np.int16)
    write_volume(layout.roi(subject, "prf-visualrois"), labels.astype(np.int16))
    write_volume(layout.roi(subject, "nsdgeneral"), general)
    write_volume(layout.ncsnr(subject), ncsnr_volume)

    def per_voxel(values: np.ndarray, fill: object) -> list:
        out = [fill] * len(inside)
        for position, value in zip(np.flatnonzero(responsive), values):
            out[position] = value
        return out

    return {
        "grid": list(settings.grid),
        "coords": inside.tolist(),
        "label": inside_labels.tolist(),
        "label_name": [LABEL_NAMES.get(int(label)) for label in inside_labels],
        "roi": per_voxel(roi.tolist(), None),
        "responsive": responsive.tolist(),
        "layer_shares": per_voxel(shares, {}),
        "prf_x": per_voxel(prf[:, 0].tolist(), None),
        "prf_y": per_voxel(prf[:, 1].tolist(), None),
        "prf_sigma": per_voxel(prf[:, 2].tolist(), None),
        "ncsnr": per_voxel(ncsnr.tolist(), 0.0),
    }


def simulate_nsd(root: str | os.PathLike, settings: VisionSimulation | None = None) -> dict:
    """Write a simulated NSD (the release layout, :class:`~brainalign.vision.nsd.NsdLayout`) and its truth.

    ``root`` is replaced as a whole, atomically, so a previous twin's extra sessions cannot linger; a
    non-empty ``root`` without a ``truth.json`` (not a twin: perhaps the real NSD) is refused.

    Returns
    -------
    dict
        The content of ``root/truth.json``:

        - ``settings``: the :class:`VisionSimulation` fields;
        - ``network``: ``name``, ``seed``, ``provenance``, ``image_size``, ``layers`` (layer -> [channels,
          height, width] of its maps), ``channel_normalisation``;
        - ``convention``: how ``prf_x``, ``prf_y``, ``prf_sigma``, feature-map cells and ``coords`` are meant;
        - ``rois``: per ROI its ``labels``, ``layers``, ``layer_shares``, ``sigma_range``, ``ncsnr_median``;
        - ``ceiling_order``: ``["V1", "V2", "V3", "hV4"]`` (highest noise ceiling first);
        - ``notes``;
        - ``images``: ``n_images``, ``shared_ids`` (0-based NSD ids), ``trials``, ``sessions``;
        - ``subjects``: participant number (a string, "1", ...) -> per voxel inside the brain (prf-visualrois
          >= 0), in the volume's C order (x slowest) — the order :func:`~brainalign.vision.nsd.load_recording`
          gives the ROI voxels in — lists of equal length: ``coords`` [x, y, z], ``label`` (prf-visualrois
          value), ``label_name`` ("V1v" ... or null), ``roi`` ("V1" ... or null), ``responsive`` (an ROI voxel),
          ``layer_shares`` ({layer: share}, {} when not responsive), ``prf_x``, ``prf_y``, ``prf_sigma`` (null
          when not responsive), ``ncsnr`` (true; 0 when not responsive); and ``grid``.
    """
    settings = settings or VisionSimulation()
    root = Path(root)
    if root.is_dir() and any(root.iterdir()) and not (root / TRUTH_FILE).is_file():
        raise ConfigError(f"{root} holds files but no {TRUTH_FILE}: not a simulated twin, so it is not replaced")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(settings.seed).spawn(2 + settings.subjects)]
    design, n_images = _design(settings, streams[0])
    image_seed = int(streams[1].integers(0, 2**31 - 1))
    images = make_images(n_images, settings.image_size, image_seed)
    log.info("hidden network features of %d images", n_images)
    maps, provenance = _normalised_maps(images, settings)
    truth = {
        "settings": {key: (list(value) if isinstance(value, tuple) else value)
                     for key, value in asdict(settings).items()},
        "network": {"name": HIDDEN_NETWORK, "seed": settings.hidden_seed, "provenance": provenance,
                    "image_size": settings.image_size,
                    "layers": {layer: list(values.shape[1:]) for layer, values in maps.items()},
                    "channel_normalisation": "each channel divided by its sd over all images and positions"},
        "convention": CONVENTION,
        "rois": {name: {"labels": list(ROI_LABELS[name]), "layers": list(ROI_LAYERS[name]),
                        "layer_shares": layer_shares(name, settings.top_layer_share),
                        "sigma_range": list(SIGMA_RANGES[name]),
                        "ncsnr_median": settings.ncsnr_median[index]} for index, name in enumerate(ROIS)},
        "ceiling_order": [ROIS[i] for i in np.argsort(-np.asarray(settings.ncsnr_median), kind="stable")],
        "notes": NOTES,
        "images": {"n_images": n_images, "shared_ids": design.sharedix.tolist(), "trials": settings.trials,
                   "sessions": settings.sessions},
        "subjects": {},
    }
    with atomic_path(root) as tmp:
        layout = NsdLayout(tmp)
        write_stimuli(layout.stimuli, images)
        write_expdesign(layout.expdesign, design, settings.trials_per_session)
        for subject in tqdm(range(1, settings.subjects + 1), desc="simulated NSD participants",
                            disable=settings.subjects < 2):
            truth["subjects"][str(subject)] = _participant(layout, subject, design, maps, settings,
                                                           streams[1 + subject])
        write_json(tmp / TRUTH_FILE, truth)
    return truth


def read_truth(root: str | os.PathLike) -> dict:
    """``truth.json`` of a simulated twin."""
    path = Path(root) / TRUTH_FILE
    if not path.is_file():
        raise InputError(path, "file", "an existing file (a simulated twin's truth)", "no such file")
    return json.loads(path.read_text())


def voxel_truth(truth: dict, subject: int, voxels: np.ndarray) -> dict[str, np.ndarray]:
    """The truth of ``voxels`` ((n, 3) x, y, z indices, e.g. a recording's) of participant ``subject``.

    Returns
    -------
    dict of str to ndarray
        ``roi`` (str, "" when not responsive), ``responsive`` (bool), ``prf_x``, ``prf_y``, ``prf_sigma``
        (NaN when not responsive) and ``ncsnr``, each aligned with ``voxels``.
    """
    part = truth["subjects"].get(str(subject))
    if part is None:
        raise InputError(TRUTH_FILE, "subjects", f"participant {subject}", f"participants {sorted(truth['subjects'])}")
    position = {tuple(c): i for i, c in enumerate(part["coords"])}
    voxels = np.asarray(voxels, dtype=np.int64).reshape(-1, 3)
    missing = [tuple(v) for v in voxels.tolist() if tuple(v) not in position]
    if missing:
        raise InputError(TRUTH_FILE, "coords", "every voxel asked inside the simulated brain", f"{missing[0]}")
    rows = [position[tuple(v)] for v in voxels.tolist()]

    def column(key: str, fill: float) -> np.ndarray:
        return np.array([fill if part[key][r] is None else part[key][r] for r in rows], dtype=np.float64)

    return {"roi": np.array([part["roi"][r] or "" for r in rows]),
            "responsive": np.array([part["responsive"][r] for r in rows], dtype=bool),
            "prf_x": column("prf_x", math.nan), "prf_y": column("prf_y", math.nan),
            "prf_sigma": column("prf_sigma", math.nan), "ncsnr": column("ncsnr", 0.0)}
