"""Linear read-outs from an encoder's output to brain responses."""

from __future__ import annotations

import torch
from torch import nn


class LinearHead(nn.Module):
    """One linear layer from an embedding (``[CLS]`` for fMRI) to every voxel.

    Initialised as BERT initialises its linear layers: weights from N(0, ``init_std``), biases 0,
    drawn from ``generator`` so that paired models start from the same head.
    """

    def __init__(self, width: int, n_outputs: int, init_std: float = 0.02,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(width, n_outputs)
        with torch.no_grad():
            self.linear.weight.normal_(0.0, init_std, generator=generator)
            self.linear.bias.zero_()

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.linear(embedding)
