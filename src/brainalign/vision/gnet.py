"""GNet (St-Yves et al. 2023): a trainable convolutional core shared by per-participant readouts, trained jointly.

Reference section 10, the seed code ``styvesg/nsd_gnet8x`` (``src/torch_gnet.py``, the joint training loop) and
its readout (``styvesg/nsd`` ``src/torch_mpf.py``, ``Torch_LayerwiseFWRF``).

**Input.** uint8 RGB images resized to ``image_size`` (227 in the paper) and normalised as the feature network's
weights expect (:func:`brainalign.vision.networks.preprocess`), minus the *training mean image*: the mean of the
normalised images that the training trials show (every participant's, hold-out included, each image once), as the
seed subtracts its ``mu`` before the pre-filter. The mean is a buffer of the model, so predictions subtract the
training mean too.

**Pre-filter.** AlexNet's conv1-conv2 (``features[:5]``: conv1, ReLU, max-pool, conv2, ReLU), frozen. The paper
uses ImageNet weights; here they are untrained or the user's own safetensors (:func:`load_network`), and the
network's provenance travels into :attr:`GNetResult.provenance`. As nothing before the core trains and no
augmentation is used, the pre-filter runs once per image and its output is cached (``cache_gb`` bounds the cache;
a larger set runs it per batch, which can differ from the cached path in the last bits).

**Core** (trainable). A block is BatchNorm (momentum 0.25) -> Dropout2d -> 3x3 convolution -> ReLU (Xavier-normal
weights with the ReLU gain, zero biases), as the seed's ``TrunkBlock``. With ``widths = (stem, trunk)`` (the
paper's ``(128, 64)``): a stem block without padding to ``stem`` maps, two blocks of ``2 trunk`` maps, a 3x3
max-pool (stride 2, padding 1), four more blocks (the last ``trunk`` wide). The readouts see two resolutions: the
stem's maps with the first ``trunk`` maps of each of the next two blocks (``stem + 2 trunk`` maps; 256 at
25 x 25 in the paper), and the first ``trunk`` maps of the four blocks after the pool (``4 trunk`` maps; 256 at
13 x 13). At the small default ``image_size=96`` the two resolutions are 9 x 9 and 5 x 5.

**Readout**, one per :class:`Participant` (a participant, or a participant's voxels of one ROI): per resolution a
pooling field per voxel, ``softmax`` over the map's cells of learned logits (zero at first: uniform pooling); the
pooled features of both resolutions concatenated, passed through ``log(1 + |x|) tanh(x)``, and mapped linearly to
the voxel (weights and bias drawn from N(0, 0.01^2), as the seed). A readout's initial weights come from a
generator seeded by the run's seed and the readout's name, so a participant's readout starts the same whatever
the other readouts are.

**Loss** (:func:`gnet_loss`), per batch of one readout's trials::

    loss = (sum_v c_v sum_n (prediction - response)^2 + l1 sum |readout weights|) / n_voxels
    c_v  = clip(r_v^2, 0.1, 1),  r_v the batch's Pearson r of voxel v's predictions and responses, detached

The seed's sums, divided by the readout's voxel count so that a batch weighs the same whatever its readout's size
(Adam's steps do not change with a constant factor of the loss, but for its epsilon). The bias is not penalised.

**Optimisation.** Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8) over the core and all readouts (the pooling-field
logits with ``field_learning_rate`` when it is set, below). A readout gets no
gradient from another participant's batch and Adam skips it, so each readout's moments count its own steps,
exactly as one optimiser for the core plus one per readout would. Each epoch, every readout's training trials are
shuffled and split into ``ceil(n / batch_size)`` batches of near-equal size (at most ``batch_size``: no
one-trial remnant with a meaningless batch correlation), and the batches of all readouts are shuffled together:
every batch comes from one participant, participants interleave in a seeded order.

**Model selection.** The last ``holdout`` share (10 %, rounded up) of each readout's training trials, in the order
given, is held out. After each epoch the held-out median r over voxels is computed per readout; the epoch's score
is the mean of those medians over readouts (the seed takes one median over all participants' voxels pooled, which
weighs a participant by its voxel count). The epoch with the best score (the first, on ties) gives the returned
weights, of the core and of every readout together: a readout only makes sense with the core it was trained with,
so no readout takes another epoch's weights.

**Checkpoints.** After every epoch, atomically: one safetensors file with the model, Adam's state, the torch and
data-order generators, the best weights so far, and the history and a fingerprint of the settings and inputs in
its metadata. A call with an existing checkpoint resumes from it and ends bit for bit where an uninterrupted run
ends (on CPU); a checkpoint of other settings or data is refused. Randomness (initialisation, dropout, order) runs
inside a forked torch RNG seeded by ``seed``: the caller's global RNG is left as it was.

On a GPU (``device="auto"`` picks CUDA when present) the core and readouts run under bf16 autocast (``amp``); the
loss and the held-out scores are computed in float32. GPU runs are seeded but not promised bitwise.

**Small data.** The pooling fields start uniform and Adam moves a logit by at most about its step size per step.
The paper gives a readout ~13,500 steps (27,000 trials in batches of 100, 50 epochs): its fields can become local.
A twin of 200 images per participant gives 6 steps an epoch; at ``learning_rate`` 1e-3 every field is still
uniform to a few percent after 15 epochs, so no voxel can read a local part of the maps, and ROIs with small pRFs
(V1) are predicted worst although their ceiling is highest. ``field_learning_rate`` (e.g. 0.1) gives the logits
their own step size; None keeps the paper's single step size.

GNet8j is one :func:`train_gnet` over every participant's early visual voxels; GNet8r is one core per ROI, each
with a readout for every participant's voxels of that ROI: :func:`train_gnet8r`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from brainalign.errors import ConfigError, InputError
from brainalign.files import atomic_path
from brainalign.finetuning.model import head_seed, read_checkpoint
from brainalign.finetuning.training import optimizer_tensors, restore_optimizer_state
from brainalign.vision.evaluation import voxel_correlation
from brainalign.vision.networks import NETWORKS, Network, preprocess

log = logging.getLogger(__name__)

SETTINGS = "GNetSettings"
#: The pre-filter ends after this named layer's ReLU (AlexNet's conv1-conv2).
PREFILTER_LAYER = "conv2"
#: The smallest image AlexNet's conv1-conv2 leaves at least 3 x 3, so that the core's unpadded stem has output.
MIN_IMAGE_SIZE = 31
WEIGHT_CLAMP = (0.1, 1.0)
READOUT_INIT_STD = 0.01
BATCHNORM_MOMENTUM = 0.25


@dataclass(frozen=True)
class GNetSettings:
    """GNet's training settings (reference section 10; the paper's values in brackets).

    Parameters
    ----------
    image_size : int
        Images are resized to ``image_size`` x ``image_size`` [227]; at least 31.
    widths : (int, int)
        ``(stem, trunk)`` widths of the core [(128, 64)] (module docstring).
    dropout : float
        Dropout2d probability before every core convolution [0.5].
    epochs : int
        Training epochs [50]; 0 returns the initial (untrained) model.
    batch_size : int
        Trials of one readout per batch, at most [100].
    learning_rate : float
        Adam's step size [1e-3].
    field_learning_rate : float or None
        Adam's step size for the readouts' pooling-field logits; None: ``learning_rate`` [the paper's choice].
        Adam moves a logit by at most about its step size per step, and the fields start uniform: with the
        paper's ~13,500 steps per readout (27,000 trials, batches of 100, 50 epochs) the logits can move by ~10
        and the fields become local, but a small data set gives a readout only tens of steps, after which
        every field is still uniform to a few percent and no voxel can read a local part of the maps (module
        docstring, "Small data").
    l1 : float
        Weight of the L1 penalty on the readouts' linear weights [0.1].
    holdout : float
        Share of each readout's training trials (the last ones) held out for model selection [0.1].
    seed : int
        Seeds the core's and readouts' initialisation, dropout and the batch order.
    device : str
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:<n>"``.
    amp : bool
        bf16 autocast of the core and readouts on a GPU (ignored on CPU).
    cache_gb : float
        Cache the frozen front end's output per image when it fits in this many GiB (module docstring).
    progress : bool
        tqdm bars over epochs and the cache.
    """

    image_size: int = 96
    widths: tuple[int, int] = (32, 16)
    dropout: float = 0.5
    epochs: int = 10
    batch_size: int = 100
    learning_rate: float = 1e-3
    field_learning_rate: float | None = None
    l1: float = 0.1
    holdout: float = 0.1
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    cache_gb: float = 4.0
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))
        whole = {"image_size": MIN_IMAGE_SIZE, "epochs": 0, "batch_size": 1}
        for name, least in whole.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ConfigError(f"{SETTINGS}.{name}: expected a whole number >= {least}, found {value!r}")
        if len(self.widths) != 2 or any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1
                                        for w in self.widths):
            raise ConfigError(f"{SETTINGS}.widths: expected two whole numbers >= 1 (stem, trunk), "
                              f"found {self.widths!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ConfigError(f"{SETTINGS}.seed: expected a whole number, found {self.seed!r}")
        ranges = {"dropout": (0.0, 1.0, False), "holdout": (0.0, 1.0, True)}
        for name, (low, high, open_low) in ranges.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    (low < value if open_low else low <= value) and value < high):
                interval = f"{'(' if open_low else '['}{low}, {high})"
                raise ConfigError(f"{SETTINGS}.{name}: expected a number in {interval}, found {value!r}")
        positive = {"learning_rate": False, "field_learning_rate": False, "l1": True, "cache_gb": True}
        for name, zero_ok in positive.items():
            value = getattr(self, name)
            if name == "field_learning_rate" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
                    value < 0 if zero_ok else value <= 0):
                raise ConfigError(f"{SETTINGS}.{name}: expected a number {'>= 0' if zero_ok else '> 0'}, "
                                  f"found {value!r}")
        device = self.device
        if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda") or (
                device.startswith("cuda:") and device[5:].isdigit())):
            raise ConfigError(f"{SETTINGS}.device: expected auto, cpu, cuda or cuda:<n>, found {device!r}")
        for name in ("amp", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{SETTINGS}.{name}: expected true or false, found {getattr(self, name)!r}")


@dataclass
class Participant:
    """The training (or validation) trials of one readout.

    Attributes
    ----------
    name : str
        The readout's name, e.g. ``"subj01"`` (or ``"subj01/V1"``).
    image_index : ndarray of int64, shape (n_trials,)
        The row of the shared image array each trial showed.
    responses : ndarray of float32, shape (n_trials, n_voxels)
        Each trial's response of every voxel.
    """

    name: str
    image_index: np.ndarray
    responses: np.ndarray


@dataclass
class GNetResult:
    """A trained GNet.

    Attributes
    ----------
    model : GNet
        With the best epoch's weights (evaluation mode).
    history : list of dict
        Per epoch: ``epoch``, ``loss`` (mean training loss over batches), ``loss.<readout>``,
        ``holdout_r.<readout>`` (median held-out r over the readout's voxels), ``holdout_r`` (their mean: the
        selection score), ``seconds`` (the epoch, held-out scoring included), ``images_per_second`` (training
        trials through core and readouts per second of the training pass).
    best_epoch : int
        The epoch whose weights :attr:`model` holds (0: untrained, when ``epochs`` is 0).
    provenance : str
        The pre-filter's weights: ``"alexnet conv1-conv2, untrained (seed 0)"`` or ``"... weights from <file>"``.
    """

    model: "GNet"
    history: list[dict]
    best_epoch: int
    provenance: str


def log_tanh(x: torch.Tensor) -> torch.Tensor:
    """The readout's nonlinearity ``log(1 + |x|) tanh(x)``: odd, near ``x |x|`` at 0, logarithmic far out."""
    return torch.log1p(x.abs()) * torch.tanh(x)


def gnet_loss(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, l1: float) -> torch.Tensor:
    """GNet's batch loss (module docstring): correlation-weighted squared error plus the readout's L1 penalty.

    Parameters
    ----------
    prediction, target : Tensor, shape (n_trials, n_voxels)
    weight : Tensor, shape (n_voxels, n_features)
        The readout's linear weights.
    l1 : float
    """
    n_voxels = prediction.shape[1]
    with torch.no_grad():
        p = prediction - prediction.mean(dim=0)
        t = target - target.mean(dim=0)
        denominator = torch.sqrt((p * p).sum(dim=0) * (t * t).sum(dim=0))
        r = torch.where(denominator > 0, (p * t).sum(dim=0) / denominator.clamp(min=1e-30),
                        torch.zeros_like(denominator))
        scale = (r * r).clamp(*WEIGHT_CLAMP)
    error = ((prediction - target) ** 2).sum(dim=0)
    return ((scale * error).sum() + l1 * weight.abs().sum()) / n_voxels


class _Block(nn.Module):
    """BatchNorm -> Dropout2d -> 3x3 convolution -> ReLU (the seed's ``TrunkBlock``)."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float, padding: int = 1) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels, momentum=BATCHNORM_MOMENTUM)
        self.drop = nn.Dropout2d(dropout)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=padding)
        nn.init.xavier_normal_(self.conv.weight, gain=nn.init.calculate_gain("relu"))
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(self.drop(self.norm(x))))


class Core(nn.Module):
    """GNet's trainable core: pre-filter maps -> feature maps at two resolutions (module docstring).

    Parameters
    ----------
    in_channels : int
        The pre-filter's output channels (192 for AlexNet's conv2).
    widths : (int, int)
        ``(stem, trunk)``.
    dropout : float
    """

    def __init__(self, in_channels: int, widths: tuple[int, int], dropout: float) -> None:
        super().__init__()
        stem, trunk = widths
        self.trunk = trunk
        self.stem = _Block(in_channels, stem, dropout, padding=0)
        self.block4a = _Block(stem, 2 * trunk, dropout)
        self.block4b = _Block(2 * trunk, 2 * trunk, dropout)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.block5a = _Block(2 * trunk, 2 * trunk, dropout)
        self.block5b = _Block(2 * trunk, 2 * trunk, dropout)
        self.block6a = _Block(2 * trunk, 2 * trunk, dropout)
        self.block6b = _Block(2 * trunk, trunk, dropout)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        t = self.trunk
        c3 = self.stem(x)
        c4a = self.block4a(c3)
        c4b = self.block4b(c4a)
        c5a = self.block5a(self.pool(c4b))
        c5b = self.block5b(c5a)
        c6a = self.block6a(c5b)
        c6b = self.block6b(c6a)
        return [torch.cat([c3, c4a[:, :t], c4b[:, :t]], dim=1),
                torch.cat([c5a[:, :t], c5b[:, :t], c6a[:, :t], c6b], dim=1)]


class Readout(nn.Module):
    """One readout: softmax pooling fields per resolution, ``log_tanh``, a linear map per voxel.

    Parameters
    ----------
    shapes : sequence of (channels, height, width)
        The core's maps, per resolution.
    n_voxels : int
    generator : torch.Generator
        Draws the initial weights and biases.
    """

    def __init__(self, shapes: Sequence[tuple[int, int, int]], n_voxels: int, generator: torch.Generator) -> None:
        super().__init__()
        self.logits = nn.ParameterList([nn.Parameter(torch.zeros(n_voxels, h * w)) for _, h, w in shapes])
        n_features = sum(c for c, _, _ in shapes)
        self.weight = nn.Parameter(torch.randn(n_voxels, n_features, generator=generator) * READOUT_INIT_STD)
        self.bias = nn.Parameter(torch.randn(n_voxels, generator=generator) * READOUT_INIT_STD)

    def pooling_fields(self) -> list[torch.Tensor]:
        """Per resolution, (n_voxels, height * width) weights over the map's cells; each row sums to 1."""
        return [torch.softmax(logits, dim=1) for logits in self.logits]

    def forward(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """(n, channels, h, w) maps per resolution -> (n, n_voxels) predictions."""
        pooled = [torch.matmul(m.flatten(2), field.to(m.dtype).t())  # (n, channels, n_voxels)
                  for m, field in zip(maps, self.pooling_fields())]
        features = log_tanh(torch.cat(pooled, dim=1))
        return (features * self.weight.t()).sum(dim=1) + self.bias


class GNet(nn.Module):
    """Training mean image, frozen pre-filter, core and named readouts.

    Build it with :func:`train_gnet` (or :func:`load_gnet`); :func:`predict` applies it.

    Attributes
    ----------
    mean : Tensor, shape (1, 3, image_size, image_size)
        The training mean image (normalised), subtracted from every input.
    prefilter : nn.Sequential
        AlexNet's conv1-conv2, frozen.
    core : Core
    readouts : nn.ModuleList
        In :attr:`readout_names` order.
    readout_names : list of str
    settings : GNetSettings
    network : str
        The registered network the pre-filter comes from.
    provenance : str
    """

    def __init__(self, prefilter: nn.Sequential, core: Core, mean: torch.Tensor, readouts: dict[str, int],
                 settings: GNetSettings, network: str, provenance: str) -> None:
        super().__init__()
        self.prefilter = prefilter
        self.core = core
        self.register_buffer("mean", mean)
        self.settings, self.network, self.provenance = settings, network, provenance
        self.readout_names = list(readouts)
        shapes = self.map_shapes()
        self.readouts = nn.ModuleList(
            Readout(shapes, n, torch.Generator().manual_seed(head_seed(settings.seed, name)))
            for name, n in readouts.items())

    @torch.no_grad()
    def map_shapes(self) -> list[tuple[int, int, int]]:
        """The core's (channels, height, width) per resolution at the model's image size."""
        training = self.core.training
        self.core.eval()  # no dropout, no change to BatchNorm's running statistics
        size = self.settings.image_size
        maps = self.core(self.prefilter(torch.zeros(1, 3, size, size, device=self.mean.device)))
        self.core.train(training)
        return [tuple(m.shape[1:]) for m in maps]

    def readout(self, name: str) -> Readout:
        """The readout called ``name``."""
        if name not in self.readout_names:
            raise InputError("GNet", "readout", f"one of {self.readout_names}", repr(name))
        return self.readouts[self.readout_names.index(name)]

    def front(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images -> the frozen pre-filter's maps (the training mean subtracted first)."""
        return self.prefilter(x - self.mean)

    def forward(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """Normalised images (n, 3, size, size) -> readout ``name``'s predictions (n, n_voxels)."""
        return self.readout(name)(self.core(self.front(x)))


def _device(settings: GNetSettings) -> torch.device:
    if settings.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if settings.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{SETTINGS}.device: {settings.device!r} asked for, but torch sees no CUDA device")
    return torch.device(settings.device)


def _autocast(device: torch.device, settings: GNetSettings):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.amp and device.type == "cuda")


def check_participants(images: np.ndarray, participants: Sequence[Participant], min_trials: int = 1,
                       source: str = "participants") -> list[Participant]:
    """Check trials against the image array once, at the boundary; returns them with int64 / float32 arrays.

    Raises
    ------
    InputError
        Images not uint8 (n, H, W, 3); no participants; a repeated or empty name; an index that is not whole
        numbers or points outside the images; responses not (n_trials, n_voxels >= 1) finite numbers, or a
        trial count that differs from the index's or is below ``min_trials``.
    """
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        found = f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}"
        raise InputError("images", "array", "uint8 of shape (n_images, height, width, 3)", found)
    if len(participants) == 0:
        raise InputError(source, "participants", "at least one", "none")
    names = [p.name for p in participants]
    if any(not isinstance(n, str) or not n for n in names) or len(set(names)) != len(names):
        raise InputError(source, "name", "unique non-empty names", str(names))
    checked = []
    for p in participants:
        where = f"{source}: {p.name}"
        index = np.asarray(p.image_index)
        if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
            raise InputError(where, "image_index", "a 1-d array of whole numbers", f"{index.dtype} {index.shape}")
        if index.size and (index.min() < 0 or index.max() >= len(images)):
            bad = int(index[(index < 0) | (index >= len(images))][0])
            raise InputError(where, "image_index", f"rows 0 to {len(images) - 1} of the images", str(bad))
        responses = np.asarray(p.responses)
        if responses.ndim != 2 or responses.shape[1] < 1 or not np.issubdtype(responses.dtype, np.number):
            raise InputError(where, "responses", "numbers of shape (n_trials, n_voxels >= 1)",
                             f"{responses.dtype} {responses.shape}")
        if len(responses) != len(index):
            raise InputError(where, "responses", f"{len(index)} trials (image_index's length)", str(len(responses)))
        if len(index) < min_trials:
            raise InputError(where, "image_index", f"at least {min_trials} trials", str(len(index)))
        finite = np.isfinite(responses)
        if not finite.all():
            trial, voxel = np.argwhere(~finite)[0]
            raise InputError(where, "responses", "finite numbers",
                             f"{responses[trial, voxel]} at trial {trial}, voxel {voxel} "
                             f"({int((~finite).sum())} in all)")
        checked.append(Participant(p.name, index.astype(np.int64), responses.astype(np.float32)))
    return checked


def _holdout_size(n_trials: int, holdout: float) -> int:
    # rounded first: 10 x 0.3 is 3.0000000000000004 in floating point, and must hold out 3 trials, not 4
    return int(math.ceil(round(n_trials * holdout, 9)))


def _min_trials(holdout: float) -> int:
    """The fewest trials leaving at least 2 to train on and 2 held out (a correlation needs two)."""
    n = 4
    while _holdout_size(n, holdout) < 2 or n - _holdout_size(n, holdout) < 2:
        n += 1
    return n


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _fingerprint(settings: GNetSettings, images: np.ndarray, participants: list[Participant], provenance: str,
                 frozen: GNet | None) -> str:
    """What a checkpoint must have been written for: the settings (but progress) and the inputs."""
    # field_learning_rate left at None is left out, so that checkpoints written before it existed still match.
    payload = {"settings": {k: v for k, v in asdict(settings).items()
                            if k != "progress" and not (k == "field_learning_rate" and v is None)},
               "images": list(images.shape), "provenance": provenance,
               "participants": [[p.name, list(p.responses.shape), _digest(p.image_index, p.responses)]
                                for p in participants],
               "frozen_core": None if frozen is None else _digest(
                   *(v.detach().cpu().numpy() for k, v in sorted(frozen.state_dict().items())
                     if not k.startswith("readouts.")))}
    return hashlib.blake2b(json.dumps(payload, sort_keys=True).encode(), digest_size=16).hexdigest()


@torch.no_grad()
def _mean_image(images: np.ndarray, rows: np.ndarray, size: int, chunk: int = 256) -> torch.Tensor:
    """The mean normalised image over ``rows`` (each once), accumulated in float64."""
    total = torch.zeros(1, 3, size, size, dtype=torch.float64)
    for start in range(0, len(rows), chunk):
        total += preprocess(images[rows[start:start + chunk]], size).double().sum(dim=0, keepdim=True)
    return (total / max(1, len(rows))).float()


class _FrontEnd:
    """What the trained part reads for a batch of images: the pre-filter's maps (the core trains) or the frozen
    core's maps (transfer), from a cache of every needed image when it fits in ``cache_gb``, else computed."""

    def __init__(self, model: GNet, images: np.ndarray, rows: np.ndarray, frozen_core: bool, device: torch.device,
                 settings: GNetSettings, chunk: int = 128) -> None:
        self.model, self.images, self.frozen, self.device, self.settings = model, images, frozen_core, device, settings
        self.position = np.full(len(images), -1, dtype=np.int64)
        self.position[rows] = np.arange(len(rows))
        size = settings.image_size
        if frozen_core:
            shapes = model.map_shapes()
        else:
            with torch.no_grad():
                shapes = [tuple(model.front(torch.zeros(1, 3, size, size, device=model.mean.device)).shape[1:])]
        needed = len(rows) * sum(int(np.prod(s)) for s in shapes) * 4
        self.cache: list[torch.Tensor] | None = None
        if needed <= settings.cache_gb * 2**30:
            started = time.perf_counter()
            parts: list[list[torch.Tensor]] = [[] for _ in shapes]
            for start in tqdm(range(0, len(rows), chunk), desc="GNet front-end cache", leave=False,
                              disable=not settings.progress or len(rows) < 8 * chunk):
                for store, maps in zip(parts, self._compute(rows[start:start + chunk])):
                    store.append(maps)
            self.cache = [torch.cat(p) for p in parts]
            log.info("GNet: cached the %s of %d images (%.0f MB) in %.1f s", "frozen core" if frozen_core
                     else "pre-filter", len(rows), needed / 2**20, time.perf_counter() - started)

    @torch.no_grad()
    def _compute(self, image_rows: np.ndarray) -> list[torch.Tensor]:
        x = preprocess(self.images[image_rows], self.settings.image_size).to(self.device)
        if not self.frozen:
            return [self.model.front(x)]
        with _autocast(self.device, self.settings):
            return [m.float() for m in self.model.core(self.model.front(x))]

    def __call__(self, image_rows: np.ndarray) -> list[torch.Tensor]:
        if self.cache is None:
            return self._compute(image_rows)
        at = torch.from_numpy(self.position[image_rows]).to(self.device)
        return [c[at] for c in self.cache]


def _maps(model: GNet, front: _FrontEnd, image_rows: np.ndarray) -> list[torch.Tensor]:
    inputs = front(image_rows)
    return inputs if front.frozen else model.core(inputs[0])


def _build(settings: GNetSettings, participants: list[Participant], images: np.ndarray, prefilter: Network | None,
           core: GNet | None) -> GNet:
    """A fresh model: a new core from the (already seeded) torch RNG, or a copy of ``core``'s front, frozen."""
    readouts = {p.name: p.responses.shape[1] for p in participants}
    if core is None:
        layers = prefilter.layers
        if PREFILTER_LAYER not in layers:
            raise ConfigError(f"train_gnet: the pre-filter network {prefilter.name!r} has no layer "
                              f"{PREFILTER_LAYER!r}; expected among {list(layers)}")
        front = copy.deepcopy(prefilter.model.features[:layers[PREFILTER_LAYER] + 1]).cpu().eval()
        for parameter in front.parameters():
            parameter.requires_grad_(False)
        rows = np.unique(np.concatenate([p.image_index for p in participants]))
        mean = _mean_image(images, rows, settings.image_size)
        with torch.no_grad():
            in_channels = front(torch.zeros(1, 3, settings.image_size, settings.image_size)).shape[1]
        provenance = f"{prefilter.name} conv1-conv2, {prefilter.provenance}"
        return GNet(front, Core(in_channels, settings.widths, settings.dropout), mean, readouts, settings,
                    prefilter.name, provenance)
    source = core.settings
    if (source.image_size, source.widths) != (settings.image_size, settings.widths):
        raise ConfigError(f"{SETTINGS}: image_size and widths must be the frozen core's "
                          f"({source.image_size}, {source.widths}), found ({settings.image_size}, {settings.widths})")
    frozen = GNet(copy.deepcopy(core.prefilter).cpu(), copy.deepcopy(core.core).cpu().eval(),
                  core.mean.detach().cpu().clone(), readouts, settings, core.network, core.provenance)
    for parameter in frozen.core.parameters():
        parameter.requires_grad_(False)
    return frozen


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _save_checkpoint(path: Path, model: GNet, optimizer: torch.optim.Optimizer, order: torch.Generator,
                     best: dict[str, torch.Tensor] | None, state: dict, device: torch.device) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if best is not None:
        tensors.update({f"best.{k}": v.cpu().contiguous() for k, v in best.items()})
    optimizer_state, param_groups = optimizer_tensors(optimizer)
    tensors.update(optimizer_state)
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.order"] = order.get_state()
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"state": json.dumps({**state, "param_groups": param_groups})})


@torch.no_grad()
def _holdout_scores(model: GNet, front: _FrontEnd, participants: list[Participant], splits: list[np.ndarray],
                    device: torch.device, settings: GNetSettings, chunk: int = 500) -> dict[str, float]:
    """Median held-out r over each readout's voxels (evaluation mode)."""
    model.eval()
    scores = {}
    for p, (participant, trials) in enumerate(zip(participants, splits)):
        readout = model.readouts[p]
        predicted = []
        for start in range(0, len(trials), chunk):
            rows = participant.image_index[trials[start:start + chunk]]
            with _autocast(device, settings):
                predicted.append(readout(_maps(model, front, rows)).float().cpu().numpy())
        r = voxel_correlation(participant.responses[trials], np.concatenate(predicted))
        scores[participant.name] = float(np.median(r))
    return scores


def _parameter_groups(model: GNet, settings: GNetSettings) -> list:
    """Adam's parameters: one group (the paper), or the pooling-field logits in a second group with their own
    step size when ``field_learning_rate`` is set."""
    trainable = [q for q in model.parameters() if q.requires_grad]
    if settings.field_learning_rate is None:
        return trainable
    fields = {id(q) for readout in model.readouts for q in readout.logits}
    return [{"params": [q for q in trainable if id(q) not in fields]},
            {"params": [q for q in trainable if id(q) in fields], "lr": settings.field_learning_rate}]


def _batches(n_train: list[int], batch_size: int, order: torch.Generator) -> list[tuple[int, np.ndarray]]:
    """One epoch's batches: (readout, training trial rows), each readout's trials shuffled and split into
    near-equal batches, all readouts' batches shuffled together."""
    batches = []
    for p, n in enumerate(n_train):
        permutation = torch.randperm(n, generator=order).numpy()
        batches.extend((p, rows) for rows in np.array_split(permutation, math.ceil(n / batch_size)))
    return [batches[i] for i in torch.randperm(len(batches), generator=order).numpy()]


def train_gnet(images: np.ndarray, participants: Sequence[Participant], settings: GNetSettings,
               prefilter: Network | None = None, checkpoint: str | os.PathLike | None = None,
               on_epoch: Callable[[dict], None] | None = None, core: GNet | None = None) -> GNetResult:
    """Train GNet's core and one readout per participant jointly, or new readouts on a frozen ``core``.

    Parameters
    ----------
    images : ndarray of uint8, shape (n_images, height, width, 3)
        Every image a trial may show; trials point into it.
    participants : sequence of Participant
        One readout each; each's last ``settings.holdout`` share of trials is held out for model selection.
    settings : GNetSettings
    prefilter : Network
        The feature network whose conv1-conv2 is the frozen pre-filter (:func:`load_network`); give it to train
        a new core.
    checkpoint : path, optional
        Written after every epoch; if it exists, training resumes from it (it must be of these settings and
        inputs).
    on_epoch : callable, optional
        Called with each epoch's history record after its checkpoint is written (and, on resuming, with every
        finished epoch's record, ``replayed=True``).
    core : GNet, optional
        A trained GNet whose training mean, pre-filter and core are kept frozen (the transfer matrix): only the
        new readouts train. Give either ``prefilter`` or ``core``.

    Returns
    -------
    GNetResult

    Raises
    ------
    InputError
        Bad images or trials (:func:`check_participants`), or a checkpoint of another run.
    ConfigError
        Neither or both of ``prefilter`` and ``core``; settings that do not fit the frozen core.
    """
    if (prefilter is None) == (core is None):
        raise ConfigError("train_gnet: give either prefilter (a new core trains) or core (a trained GNet whose "
                          f"core stays frozen), found {'both' if core is not None else 'neither'}")
    participants = check_participants(images, participants, _min_trials(settings.holdout))
    device = _device(settings)
    frozen = core is not None
    n_hold = [_holdout_size(len(p.image_index), settings.holdout) for p in participants]
    n_train = [len(p.image_index) - h for p, h in zip(participants, n_hold)]
    holdout = [np.arange(n, n + h) for n, h in zip(n_train, n_hold)]
    responses = [torch.from_numpy(p.responses).to(device) for p in participants]
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    fork = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork):
        torch.manual_seed(settings.seed)
        model = _build(settings, participants, images, prefilter, core)
        fingerprint = _fingerprint(settings, images, participants, model.provenance, core)
        model.to(device)
        optimizer = torch.optim.Adam(_parameter_groups(model, settings), lr=settings.learning_rate,
                                     betas=(0.9, 0.999), eps=1e-8)
        order = torch.Generator().manual_seed(settings.seed)
        history: list[dict] = []
        best: dict[str, torch.Tensor] | None = None
        best_epoch, best_score = 0, None
        if checkpoint is not None and checkpoint.exists():
            tensors, saved = read_checkpoint(checkpoint)
            if saved.get("fingerprint") != fingerprint:
                raise InputError(checkpoint, "fingerprint", f"a checkpoint of these settings and inputs "
                                 f"({fingerprint})", f"{saved.get('fingerprint')} (another run's: delete it or "
                                 "choose another path)")
            model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
            best = {k[len("best."):]: v.to(device) for k, v in tensors.items() if k.startswith("best.")} or None
            restore_optimizer_state(optimizer, tensors, saved["param_groups"])
            torch.set_rng_state(tensors["rng.torch"])
            order.set_state(tensors["rng.order"])
            if device.type == "cuda" and "rng.cuda" in tensors:
                torch.cuda.set_rng_state(tensors["rng.cuda"], device)
            history, best_epoch, best_score = saved["history"], saved["best_epoch"], saved["best_score"]
            if on_epoch:
                for record in history:
                    on_epoch({**record, "replayed": True})
        if len(history) < settings.epochs:
            rows = np.unique(np.concatenate([p.image_index for p in participants]))
            front = _FrontEnd(model, images, rows, frozen, device, settings)
        epochs = tqdm(range(len(history), settings.epochs), desc=f"GNet ({len(participants)} readouts)",
                      disable=not settings.progress, initial=len(history), total=settings.epochs)
        for epoch in epochs:
            started = time.perf_counter()
            model.train()
            if frozen:
                model.core.eval()
            losses: dict[int, list[float]] = {p: [] for p in range(len(participants))}
            for p, batch in _batches(n_train, settings.batch_size, order):
                readout = model.readouts[p]
                with _autocast(device, settings):
                    prediction = readout(_maps(model, front, participants[p].image_index[batch]))
                loss = gnet_loss(prediction.float(), responses[p][torch.from_numpy(batch).to(device)],
                                 readout.weight, settings.l1)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses[p].append(float(loss.detach()))
            trained = time.perf_counter() - started
            scores = _holdout_scores(model, front, participants, holdout, device, settings)
            score = float(np.mean(list(scores.values())))
            record = {"epoch": epoch + 1, "loss": float(np.mean([v for vs in losses.values() for v in vs])),
                      **{f"loss.{q.name}": float(np.mean(losses[p])) for p, q in enumerate(participants)},
                      **{f"holdout_r.{name}": s for name, s in scores.items()}, "holdout_r": score,
                      "seconds": time.perf_counter() - started, "images_per_second": sum(n_train) / trained}
            history.append(record)
            if best_score is None or score > best_score:
                best, best_epoch, best_score = _state_copy(model), epoch + 1, score
            if checkpoint is not None:
                _save_checkpoint(checkpoint, model, optimizer, order, best,
                                 {"fingerprint": fingerprint, "history": history, "best_epoch": best_epoch,
                                  "best_score": best_score}, device)
            epochs.set_postfix(holdout_r=f"{score:.3f}")
            if on_epoch:
                on_epoch(record)
    if best is not None:
        model.load_state_dict(best)
    model.eval()
    return GNetResult(model, history, best_epoch, model.provenance)


def train_gnet8r(images: np.ndarray, participants_by_roi: dict[str, Sequence[Participant]], settings: GNetSettings,
                 prefilter: Network, checkpoint_dir: str | os.PathLike | None = None,
                 on_epoch: Callable[[dict], None] | None = None) -> dict[str, GNetResult]:
    """GNet8r: one core per ROI (same seed for every ROI), each with a readout for every participant's voxels of
    that ROI; ROIs train one after another, each resumable from ``<checkpoint_dir>/<roi>.safetensors``.
    ``on_epoch`` records carry the ROI under ``"roi"``."""
    results = {}
    for roi, participants in participants_by_roi.items():
        path = Path(checkpoint_dir) / f"{roi}.safetensors" if checkpoint_dir is not None else None
        callback = (lambda record, roi=roi: on_epoch({**record, "roi": roi})) if on_epoch else None
        results[roi] = train_gnet(images, participants, settings, prefilter, checkpoint=path, on_epoch=callback)
    return results


@torch.no_grad()
def predict(model: GNet, images: np.ndarray, participant_name: str, batch_size: int = 256) -> np.ndarray:
    """Readout ``participant_name``'s predictions for uint8 ``images`` (n, H, W, 3): float32 (n, n_voxels)."""
    readout = model.readout(participant_name)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        found = f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}"
        raise InputError("images", "array", "uint8 of shape (n_images, height, width, 3)", found)
    model.eval()
    device = model.mean.device
    out = []
    for start in range(0, len(images), batch_size):
        x = preprocess(images[start:start + batch_size], model.settings.image_size).to(device)
        with _autocast(device, model.settings):
            out.append(readout(model.core(model.front(x))).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, readout.bias.shape[0]), dtype=np.float32)


def save_gnet(path: str | os.PathLike, result: GNetResult) -> None:
    """Write a trained GNet as one safetensors file (weights; settings, readouts, history in its metadata)."""
    model = result.model
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"settings": asdict(model.settings), "network": model.network, "provenance": result.provenance,
            "readouts": [[name, int(r.bias.shape[0])] for name, r in zip(model.readout_names, model.readouts)],
            "history": result.history, "best_epoch": result.best_epoch}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"gnet": json.dumps(meta)})


def load_gnet(path: str | os.PathLike, device: str = "cpu") -> GNetResult:
    """Read what :func:`save_gnet` wrote (a safetensors file; nothing is unpickled)."""
    from safetensors import safe_open

    path = Path(path)
    if path.suffix != ".safetensors" or not path.exists():
        raise InputError(path, "file", "an existing .safetensors file written by save_gnet",
                         "no such file" if not path.exists() else f"a {path.suffix or 'suffix-less'} file")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "gnet" not in metadata:
        raise InputError(path, "metadata", "a 'gnet' entry (settings, readouts)", f"keys {sorted(metadata)}")
    meta = json.loads(metadata["gnet"])
    settings = GNetSettings(**{**meta["settings"], "widths": tuple(meta["settings"]["widths"])})
    size = settings.image_size
    with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten: leave the caller's RNG alone
        architecture, layers = NETWORKS.get(meta["network"])()
        front = architecture.features[:layers[PREFILTER_LAYER] + 1].eval()
        for parameter in front.parameters():
            parameter.requires_grad_(False)
        with torch.no_grad():
            in_channels = front(torch.zeros(1, 3, size, size)).shape[1]
        model = GNet(front, Core(in_channels, settings.widths, settings.dropout), torch.zeros(1, 3, size, size),
                     {name: n for name, n in meta["readouts"]}, settings, meta["network"], meta["provenance"])
    tensors = load_file(str(path))
    expected = set(model.state_dict())
    if set(tensors) != expected:
        raise InputError(path, "tensors", f"the {len(expected)} tensors of this GNet",
                         f"missing {sorted(expected - set(tensors))[:3]}, "
                         f"unexpected {sorted(set(tensors) - expected)[:3]}")
    model.load_state_dict(tensors)
    model.to(device).eval()
    return GNetResult(model, meta["history"], meta["best_epoch"], meta["provenance"])
