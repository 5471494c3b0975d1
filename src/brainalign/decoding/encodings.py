"""Sentence encodings of the stimuli at a checkpoint: one forward pass over every sentence.

Gauthier & Levy took the ``[CLS]`` output of BERT's last layer (``pooling: cls``, ``layer: -1``); any layer
(0 is the embeddings) and mean pooling over the sentence's word pieces are offered too. Each sentence is read
on its own (``[CLS] sentence [SEP]``), as the original did.
"""

from __future__ import annotations

import numpy as np
import torch

from brainalign.errors import ConfigError
from brainalign.features.encoders import Encoder, load_encoder

POOLINGS = ("cls", "mean")


@torch.inference_mode()
def sentence_encodings(encoder: Encoder, sentences: list[str], layer: int = -1, pooling: str = "cls",
                       batch_size: int = 64, max_length: int = 128, device: str = "cpu") -> np.ndarray:
    """Each sentence's encoding: (n_sentences, width) float32.

    Parameters
    ----------
    layer : int
        Hidden-state index (0: the embeddings, -1: the last layer).
    pooling : {"cls", "mean"}
        The ``[CLS]`` state, or the mean over the sentence's pieces (``[CLS]`` and ``[SEP]`` excluded).
    """
    if pooling not in POOLINGS:
        raise ConfigError(f"decoding.pooling: expected one of {', '.join(POOLINGS)}, found {pooling!r}")
    n_states = int(encoder.model.config.num_hidden_layers) + 1
    if not -n_states <= layer < n_states:
        raise ConfigError(f"decoding.layer: expected -{n_states}..{n_states - 1} for {encoder.name} "
                          f"({n_states - 1} layers), found {layer}")
    model = encoder.model.to(device).eval()
    # Longest first: batches of similar length waste little compute on padding.
    order = np.argsort([-len(s) for s in sentences], kind="stable")
    out = np.empty((len(sentences), encoder.width), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = encoder.tokenizer([sentences[i] for i in rows], truncation=True, max_length=max_length,
                                  padding=True, return_tensors="pt")
        batch = {k: v.to(device) for k, v in batch.items()}
        states = model(**batch, output_hidden_states=True).hidden_states[layer]
        if pooling == "cls":
            pooled = states[:, 0]
        else:
            special = torch.zeros_like(batch["attention_mask"], dtype=torch.bool)
            for token in (encoder.tokenizer.cls_token_id, encoder.tokenizer.sep_token_id):
                if token is not None:
                    special |= batch["input_ids"] == token
            weights = (batch["attention_mask"].bool() & ~special).unsqueeze(-1).to(states.dtype)
            pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1)
        out[rows] = pooled.float().cpu().numpy()
    return out


def checkpoint_encoder(base: str, weights: str | None) -> Encoder:
    """The base encoder (``weights`` None: step 0) or the base with a trajectory checkpoint's weights."""
    from safetensors.torch import load_file

    encoder = load_encoder(base)
    if weights is not None:
        encoder.model.load_state_dict(load_file(str(weights)))
    return encoder
