"""Image networks whose feature maps the vision models read: a registry of architectures built in torch.

No ImageNet weights can be downloaded here and no package ships them (reference section 6), so a network is
built untrained from a seed, or loaded from a local safetensors file the user converted from their own
weights. The parameter names are torchvision's (``features.0.weight``, ...), so a state dict saved from
``torchvision.models.alexnet`` loads unchanged; pickled ``.pth`` files are refused (never unpickle a file a user
handed us). Every output says which kind of network it came from (:attr:`Network.provenance`).

torchvision itself cannot be installed beside this project's CPU build of torch (its wheels pin another torch
build), so its architectures are written out here; a new one is one registered builder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from brainalign.errors import ConfigError, InputError
from brainalign.registry import Registry

# ImageNet statistics, the convention of the torchvision weights a user may bring.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass
class Network:
    """A feature network and where its weights come from.

    Attributes
    ----------
    name : str
        Registered architecture name.
    model : nn.Module
        In evaluation mode; ``model.features`` is an ``nn.Sequential`` whose indices the layers name.
    layers : dict of str to int
        Named feature layers -> index in ``model.features`` after which the map is read (after the ReLU).
    provenance : str
        ``"untrained (seed N)"`` or ``"weights from <file>"``: said in every output that uses it.
    """

    name: str
    model: nn.Module
    layers: dict[str, int]
    provenance: str


NETWORKS: Registry[Callable[[], tuple[nn.Module, dict[str, int]]]] = Registry("image network", "network")


class AlexNet(nn.Module):
    """AlexNet's convolutional part as torchvision lays it out (``features``), without the classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@NETWORKS.register("alexnet")
def _alexnet() -> tuple[nn.Module, dict[str, int]]:
    return AlexNet(), {"conv1": 1, "conv2": 4, "conv3": 7, "conv4": 9, "conv5": 11}


def load_network(name: str = "alexnet", weights: str | os.PathLike | None = None, seed: int = 0) -> Network:
    """Build registered network ``name``: untrained from ``seed``, or with ``weights`` (a safetensors file).

    Parameters
    ----------
    name : str
        A name in :data:`NETWORKS`.
    weights : path, optional
        A ``.safetensors`` state dict with torchvision's parameter names; a classifier's entries, if present,
        are ignored. Any other file type is refused.
    seed : int
        Seeds the initialisation of an untrained network (torch's default initialisation).
    """
    builder = NETWORKS.get(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, layers = builder()
    provenance = f"untrained (seed {seed})"
    if weights is not None:
        path = Path(weights)
        if path.suffix != ".safetensors":
            raise InputError(path, "weights", "a .safetensors file (pickled checkpoints are never loaded)",
                             f"a {path.suffix or 'suffix-less'} file")
        if not path.exists():
            raise InputError(path, "weights", "an existing file", "no such file")
        from safetensors.torch import load_file

        state = {k: v for k, v in load_file(str(path)).items() if k.startswith("features.")}
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state))
        if missing:
            raise InputError(path, "tensors", f"{name}'s feature parameters ({len(expected)})",
                             f"missing {missing[:4]}")
        wrong = [k for k in expected if tuple(state[k].shape) != tuple(expected[k].shape)]
        if wrong:
            k = wrong[0]
            raise InputError(path, k, f"shape {tuple(expected[k].shape)}", f"{tuple(state[k].shape)}")
        model.load_state_dict(state)
        provenance = f"weights from {path.name}"
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return Network(name, model, layers, provenance)


def preprocess(images: np.ndarray, size: int | None = None) -> torch.Tensor:
    """uint8 images (n, H, W, 3) -> float32 (n, 3, H', W') normalised with the ImageNet statistics.

    ``size`` resizes (bilinear, antialiased) to ``size`` x ``size`` first; None keeps the images' own size.
    """
    if images.ndim != 4 or images.shape[-1] != 3:
        raise InputError("images", "shape", "(n, height, width, 3)", str(images.shape))
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    if size is not None and x.shape[-2:] != (size, size):
        x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def feature_maps(network: Network, images: np.ndarray, layers: list[str] | None = None, size: int | None = None,
                 batch_size: int = 64, device: str = "cpu") -> dict[str, np.ndarray]:
    """The feature maps of ``layers`` (all named layers by default) for uint8 ``images`` (n, H, W, 3).

    Returns
    -------
    dict of str to ndarray
        Layer name -> float32 (n, channels, height, width), after the layer's ReLU.
    """
    layers = list(network.layers) if layers is None else list(layers)
    unknown = [name for name in layers if name not in network.layers]
    if unknown:
        raise ConfigError(f"{network.name}: unknown layers {unknown}; expected among {list(network.layers)}")
    last = max(network.layers[name] for name in layers)
    wanted = {network.layers[name]: name for name in layers}
    model = network.model.to(device)
    out: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    for start in range(0, len(images), batch_size):
        x = preprocess(images[start:start + batch_size], size).to(device)
        for index, module in enumerate(model.features[:last + 1]):
            x = module(x)
            if index in wanted:
                out[wanted[index]].append(x.float().cpu().numpy())
    return {name: np.concatenate(chunks) for name, chunks in out.items()}
