"""Word-level features in context from every layer of a language model, in one forward pass per window.

A *feature model* is what ``encoding.models`` names:

- a registered encoder or a local/cached Hugging Face model (:mod:`brainalign.features.encoders`):
  ``minilm``, a directory, ``gpt2-untrained`` (an architecture of the registry with fresh weights: the
  ``-untrained`` suffix works for any name);
- ``random-<width>``: one fixed random vector per word type (Brain-Score's random-embedding control);
- a static word embedding (:data:`brainalign.features.encoders.STATIC_EMBEDDINGS`: ``glove-50``): each word's
  vector, lower-cased and stripped of surrounding punctuation, zeros out of the vocabulary; one layer.

Each word's representation at each layer is the state of its last token given the word and up to
``context`` preceding words (a sliding window: exactly the words a reader has seen). For an encoder the
seed paper's alternative, the window's ``[CLS]`` state, is ``pooling="cls"``. Every hidden layer comes out
of the same pass (``output_hidden_states``); layer 0 is the embedding layer. Windows are grouped by
length into batches, and the states go straight into a memory-mapped ``.npy`` of shape
(n_layers + 1, n_words, width), so memory holds one batch, never every layer of every window.
"""

from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from brainalign.errors import ConfigError, InputError
from brainalign.features.encoders import Encoder, load_encoder, load_static, named_encoder, named_static

log = logging.getLogger(__name__)

POOLINGS = ("last", "cls")
UNTRAINED = "-untrained"
RANDOM = re.compile(r"^random-(\d+)$")


@dataclass(frozen=True)
class FeatureModel:
    """A parsed ``encoding.models`` entry.

    Attributes
    ----------
    name : str
        As the user wrote it (the score table's ``model``).
    base : str
        The encoder name or path without ``-untrained``; empty for a random embedding.
    untrained : bool
        The architecture with fresh weights (seeded).
    random_width : int
        Width of a random embedding; 0 for a language model.
    static : str
        A registered static word embedding (``glove-50``); empty otherwise.
    """

    name: str
    base: str
    untrained: bool = False
    random_width: int = 0
    static: str = ""

    @property
    def is_random(self) -> bool:
        return self.random_width > 0

    @property
    def is_static(self) -> bool:
        return bool(self.static)

    def spec(self, seed: int) -> dict:
        """What determines the model's features (for task keys)."""
        out = {"name": self.name, "base": self.base, "untrained": self.untrained,
               "random_width": self.random_width, "seed": int(seed)}
        if self.static:  # only then, so that the keys of every other model stay as they were
            out["static"] = self.static
        return out


def parse_feature_model(name: str) -> FeatureModel:
    """What an ``encoding.models`` entry stands for (see the module docstring)."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"params.yaml: encoding.models: expected model names, found {name!r}")
    match = RANDOM.match(name)
    if match:
        width = int(match.group(1))
        if width < 1:
            raise ConfigError(f"params.yaml: encoding.models: {name!r}: a random embedding needs a width >= 1")
        return FeatureModel(name=name, base="", random_width=width)
    if named_static(name) is not None:
        return FeatureModel(name=name, base=name, static=name)
    if name.endswith(UNTRAINED):
        if named_static(name[: -len(UNTRAINED)]) is not None:
            raise ConfigError(f"params.yaml: encoding.models: {name!r}: a static embedding has no untrained "
                              f"architecture; its control is a random embedding of its width (random-<width>)")
        return FeatureModel(name=name, base=name[: -len(UNTRAINED)], untrained=True)
    named = named_encoder(name)
    if named is not None and named.directory is None:
        raise ConfigError(f"params.yaml: encoding.models: {name!r} is an architecture without weights offline "
                          f"({named.description}); write {name + UNTRAINED!r} for it with fresh weights")
    return FeatureModel(name=name, base=name)


def is_causal(config) -> bool:
    """Whether a transformers config is a causal (left-to-right) language model rather than an encoder."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = getattr(config, "model_type", "")
    return bool(getattr(config, "is_decoder", False)) or (
        kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES)


def load_feature_model(model: FeatureModel | str, seed: int = 0) -> Encoder | FeatureModel:
    """The loaded language model of an entry, or the entry itself for a random or static embedding."""
    model = parse_feature_model(model) if isinstance(model, str) else model
    if model.is_random or model.is_static:
        return model
    return load_encoder(model.base, untrained=model.untrained, seed=seed)


def random_embedding(words: Sequence[str], width: int, seed: int = 0) -> np.ndarray:
    """One fixed standard-normal vector per word type (lower-cased): (n_words, width) float32.

    Each type's vector is drawn from a generator seeded by the type itself, so a word has the same vector
    in every text and every run, whatever else the text holds.
    """
    out = np.empty((len(words), width), dtype=np.float32)
    cache: dict[str, np.ndarray] = {}
    for i, word in enumerate(words):
        key = word.lower()
        if key not in cache:
            cache[key] = np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))]).standard_normal(
                width).astype(np.float32)
        out[i] = cache[key]
    return out


def n_feature_layers(model: Encoder | FeatureModel) -> int:
    """How many layers :func:`extract_features` returns: hidden layers + the embeddings, or 1 (random,
    static)."""
    if isinstance(model, FeatureModel):
        return 1
    return int(model.model.config.num_hidden_layers) + 1


def feature_width(model: Encoder | FeatureModel) -> int:
    if isinstance(model, FeatureModel):
        return load_static(model.static).width if model.is_static else model.random_width
    return int(model.model.config.hidden_size)


def extract_features(model: Encoder | FeatureModel, words: Sequence[str], context: int = 20,
                     pooling: str = "last", batch_size: int = 32, max_length: int = 256,
                     out: str | Path | None = None, seed: int = 0, progress: bool = True) -> np.ndarray:
    """Every layer's representation of every word given up to ``context`` preceding words.

    Parameters
    ----------
    model : Encoder or FeatureModel
        From :func:`load_feature_model` (a random embedding ignores ``context`` and ``pooling``).
    words : sequence of str
        The text, one entry per word, in reading order.
    context : int
        Preceding words in each word's window (0: the word alone).
    pooling : {"last", "cls"}
        ``last``: the state of the word's last token; ``cls``: the window's first token (encoders).
    batch_size : int
        Windows per forward pass (windows of similar length go together).
    max_length : int
        Tokens per window; a longer window loses words from its start, never the word itself.
    out : path, optional
        Write the features to this ``.npy`` (memory-mapped while filled) and return it memory-mapped.
    seed : int
        Seed of a random embedding.

    Returns
    -------
    ndarray of shape (n_layers + 1, n_words, width), float32
        Layer 0 is the embedding layer (a random embedding has that layer only).
    """
    words = [str(w) for w in words]
    if not words:
        raise InputError("words", "words", "at least one word", "none")
    if not isinstance(context, (int, np.integer)) or context < 0:
        raise ConfigError(f"params.yaml: encoding.context: expected a number of words >= 0, found {context!r}")
    if pooling not in POOLINGS:
        raise ConfigError(f"params.yaml: encoding.pooling: expected one of {POOLINGS}, found {pooling!r}")
    shape = (n_feature_layers(model), len(words), feature_width(model))
    array = (np.lib.format.open_memmap(str(out), mode="w+", dtype=np.float32, shape=shape) if out is not None
             else np.zeros(shape, dtype=np.float32))
    if isinstance(model, FeatureModel) and model.is_static:
        array[0], n_oov = load_static(model.static).lookup(words)
        log.info("%s: %d of %d words out of the vocabulary (zero vectors)", model.name, n_oov, len(words))
    elif isinstance(model, FeatureModel):
        array[0] = random_embedding(words, model.random_width, seed)
    else:
        if pooling == "cls" and is_causal(model.model.config):
            raise ConfigError(f"params.yaml: encoding.pooling: 'cls' needs an encoder; {model.name} is a causal "
                              f"language model (its first token has seen nothing)")
        _fill_layers(model, words, context, pooling, batch_size, max_length, array, progress)
    if out is not None:
        array.flush()
        del array
        return np.load(str(out), mmap_mode="r")
    return array


def window_texts(words: Sequence[str], context: int) -> list[str]:
    """Each word's window: the word and up to ``context`` preceding words, joined by spaces."""
    return [" ".join(words[max(0, i - context): i + 1]) for i in range(len(words))]


@torch.inference_mode()
def _fill_layers(encoder: Encoder, words: list[str], context: int, pooling: str, batch_size: int,
                 max_length: int, array: np.ndarray, progress: bool) -> None:
    tokenizer = encoder.tokenizer
    tokenizer.truncation_side = "left"  # a long window loses its first words, never the word itself
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    texts = window_texts(words, context)
    encoded = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True)
    ids = encoded["input_ids"]
    positions = np.empty(len(texts), dtype=np.int64)
    for i, offsets in enumerate(encoded["offset_mapping"]):
        # The last token that covers text (special tokens cover none) ends the window's last word.
        real = [j for j, (start, end) in enumerate(offsets) if end > start]
        if not real:
            raise InputError("words", f"word {i + 1}", "a word the tokenizer turns into tokens",
                             f"{words[i]!r} gives none")
        positions[i] = 0 if pooling == "cls" else real[-1]
    order = np.argsort([len(x) for x in ids], kind="stable")
    pad = int(tokenizer.pad_token_id)
    device = next(encoder.model.parameters()).device
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc=f"layer features ({encoder.name})", disable=not progress):
        longest = max(len(ids[i]) for i in batch)
        # Right padding: every real token keeps its position, and a causal model's states at or before
        # the word never see the padding.
        input_ids = torch.full((len(batch), longest), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, i in enumerate(batch):
            input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
            mask[row, : len(ids[i])] = 1
        hidden = encoder.model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                               output_hidden_states=True).hidden_states
        where = torch.as_tensor(positions[batch], device=device)
        rows = torch.arange(len(batch), device=device)
        for layer, states in enumerate(hidden):
            array[layer, batch] = states[rows, where].float().cpu().numpy()
