"""The model zoo of the Brain-Score language benchmarks: every model a benchmark can score, by name.

A registered name (:data:`ZOO`) is a :class:`ZooModel`: its family (``masked``, ``causal``, ``static``,
``random``), whether it is trained, its trained/untrained counterpart, the label the leaderboard shows,
and how it loads. Besides the registered names:

- ``random-<width>``: one fixed random vector per word type (Brain-Score's random-embedding control);
- ``<name>-untrained`` for any architecture :mod:`brainalign.features.encoders` knows or a local model
  directory: the architecture with fresh weights (seeded);
- any other name: a local model directory or a Hugging Face name already in the local cache (never
  downloaded, never ``trust_remote_code``).

Loaded transformers keep the exact weights of :func:`brainalign.features.encoders.load_encoder` (an
untrained model of a name and seed is the same here and in the encoding stages), with the language-model
head where there is one: causal models as ``AutoModelForCausalLM`` (hidden states and next-token logits
from one pass), an untrained masked architecture with a fresh masked-LM head.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from brainalign.errors import ConfigError
from brainalign.files import md5_file
from brainalign.features.encoders import (
    SMOLLM2_CAVEAT,
    SMOLLM2_LABEL,
    StaticVectors,
    load_encoder,
    load_static,
    named_encoder,
    resolve_encoder,
    weight_files,
)
from brainalign.features.layers import RANDOM, UNTRAINED, is_causal, random_embedding
from brainalign.registry import Registry

log = logging.getLogger(__name__)

FAMILIES = ("masked", "causal", "static", "random", "unigram")
MINILM_WORDPIECE = "MiniLM's uncased WordPiece tokenizer (no package ships the architecture's own)"


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo.

    Parameters
    ----------
    name : str
        The name benchmarks and the leaderboard use.
    family : {"masked", "causal", "static", "random"}
        Bidirectional encoder, left-to-right language model, static word embedding, random embedding.
    trained : bool
        Pretrained weights (False: an architecture with fresh weights, or a random embedding).
    pair : str or None
        The zoo name of its trained/untrained counterpart.
    label : str
        What the leaderboard shows; carries the caveats that must accompany the scores.
    source : str
        What :func:`load_zoo_model` loads: an encoder name or directory, or a static embedding name.
    width, n_layers : int or None
        Hidden size and number of hidden layers (0 for one embedding layer), where known before loading.
    caveat : str or None
        What must be said wherever the model's scores appear.
    """

    name: str
    family: str
    trained: bool
    pair: str | None
    label: str
    source: str
    width: int | None = None
    n_layers: int | None = None
    caveat: str | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"zoo model {self.name!r}: family: expected one of {FAMILIES}, found {self.family!r}")


@dataclass
class LoadedModel:
    """A zoo model ready to read text.

    Attributes
    ----------
    entry : ZooModel
        What was loaded.
    tokenizer, model : transformers objects, or None for a static/random embedding
        ``model`` returns hidden states (``output_hidden_states``) and, where ``has_lm_head``, logits.
    static : StaticVectors or None
        The table of a static embedding.
    seed : int
        The seed of fresh weights or of a random embedding.
    """

    entry: ZooModel
    tokenizer: object | None = None
    model: torch.nn.Module | None = None
    static: StaticVectors | None = None
    seed: int = 0

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def family(self) -> str:
        return self.entry.family

    @property
    def causal(self) -> bool:
        return self.entry.family == "causal"

    @property
    def is_lookup(self) -> bool:
        """A static or random embedding: one layer, no context."""
        return self.model is None

    @property
    def has_lm_head(self) -> bool:
        return self.model is not None and self.model.get_output_embeddings() is not None

    @property
    def width(self) -> int:
        if self.static is not None:
            return self.static.width
        if self.model is None:
            return int(RANDOM.match(self.entry.name).group(1))
        return int(self.model.config.hidden_size)

    @property
    def n_layers(self) -> int:
        """Hidden layers; the activations hold ``n_layers + 1`` layers (0: the embeddings)."""
        return 0 if self.model is None else int(self.model.config.num_hidden_layers)

    @property
    def max_positions(self) -> int:
        """The longest sequence the model and its tokenizer read (Brain-Score truncates to this)."""
        limits = [getattr(self.model.config, key, None) for key in ("max_position_embeddings", "n_positions")]
        limits = [int(x) for x in limits if x]
        tokenizer_limit = getattr(self.tokenizer, "model_max_length", None)
        if tokenizer_limit and tokenizer_limit < 10**9:  # "no limit" is 1e30 in transformers
            limits.append(int(tokenizer_limit))
        return min(limits) if limits else 512

    def word_vectors(self, words: list[str]) -> np.ndarray:
        """A lookup model's vector of each word: (n_words, width) float32."""
        if self.static is not None:
            return self.static.lookup(words)[0]
        return random_embedding(words, self.width, self.seed)


ZOO: Registry[ZooModel] = Registry("zoo model", "benchmarks.models")


def _add(entry: ZooModel) -> ZooModel:
    return ZOO.register(entry.name)(entry)


_add(ZooModel("minilm", "masked", True, "minilm-untrained",
              "all-MiniLM-L6-v2 (6 layers, 384 wide; a sentence-embedding BERT)", "minilm", 384, 6))
_add(ZooModel("minilm-untrained", "masked", False, "minilm",
              "all-MiniLM-L6-v2 architecture, untrained", "minilm", 384, 6))
_add(ZooModel("smollm2", "causal", True, "smollm2-untrained", SMOLLM2_LABEL, "smollm2", 576, 30, SMOLLM2_CAVEAT))
_add(ZooModel("smollm2-untrained", "causal", False, "smollm2",
              "SmolLM2-135M architecture (Llama, 30 x 576), untrained, with SmolLM2's tokenizer", "smollm2", 576, 30))
_add(ZooModel("gpt2-untrained", "causal", False, None,
              f"GPT-2 small architecture (12 x 768), untrained, with {MINILM_WORDPIECE}", "gpt2", 768, 12))
_add(ZooModel("bert-base-untrained", "masked", False, None,
              f"BERT-base architecture (12 x 768), untrained, with {MINILM_WORDPIECE}", "bert-base", 768, 12))
_add(ZooModel("unigram", "unigram", True, None,
              "unigram surprisal: wordfreq's English word frequencies (the reading-time baseline)", "wordfreq", None, 0))
_add(ZooModel("glove-50", "static", True, "random-50",
              "GloVe 6B 50-d (mean of the words' vectors)", "glove-50", 50, 0))


def zoo_model(name: str) -> ZooModel:
    """The zoo entry a name stands for (see the module docstring)."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"params.yaml: benchmarks.models: expected model names, found {name!r}")
    if name in ZOO:
        return ZOO.get(name)
    match = RANDOM.match(name)
    if match:
        width = int(match.group(1))
        if width < 1:
            raise ConfigError(f"params.yaml: benchmarks.models: {name!r}: a random embedding needs a width >= 1")
        return ZooModel(name, "random", False, "glove-50" if width == 50 else None,
                        f"random embedding, {width} wide (one fixed vector per word type)", "", width, 0)
    untrained = name.endswith(UNTRAINED)
    source = name[: -len(UNTRAINED)] if untrained else name
    named = named_encoder(source)
    if named is not None and named.config is not None:
        if not untrained:
            raise ConfigError(f"params.yaml: benchmarks.models: {name!r} is an architecture without weights "
                              f"offline ({named.description}); write {name + UNTRAINED!r} for it untrained")
        config = named.config
    else:
        config = _local_config(name, source)
    family = "causal" if is_causal(config) else "masked"
    label = f"{source}{', untrained' if untrained else ''}"
    return ZooModel(name, family, not untrained, None, label, source, int(config.hidden_size),
                    int(config.num_hidden_layers))


def _local_config(name: str, source: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(resolve_encoder(source), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"params.yaml: benchmarks.models: {name!r}: expected one of {', '.join(ZOO.names())}, random-<width>, "
            f"<name>-untrained, a local model directory or a name in the local Hugging Face cache; found none "
            f"offline ({exc})") from exc


def load_zoo_model(name: str | ZooModel, seed: int = 0) -> LoadedModel:
    """Load a zoo model, offline.

    Parameters
    ----------
    name : str or ZooModel
        See the module docstring.
    seed : int
        Seed of fresh weights (untrained) and of a random embedding.

    Returns
    -------
    LoadedModel
        In eval mode; ``n_layers``/``width`` read from the loaded model.
    """
    entry = zoo_model(name) if isinstance(name, str) else name
    if entry.family == "unigram":
        raise ConfigError(f"zoo model {entry.name!r}: {entry.label} is a word-frequency table, not a model to load")
    if entry.family == "random":
        return LoadedModel(entry, seed=seed)
    if entry.family == "static":
        return LoadedModel(entry, static=load_static(entry.source), seed=seed)
    encoder = load_encoder(entry.source, untrained=not entry.trained, seed=seed)
    model = _with_lm_head(entry, encoder.model, seed)
    model.eval()
    loaded = LoadedModel(entry, tokenizer=encoder.tokenizer, model=model, seed=seed)
    if (entry.width, entry.n_layers) != (loaded.width, loaded.n_layers) and entry.width is not None:
        log.warning("%s: loaded %d layers x %d, the zoo says %s x %s", entry.name, loaded.n_layers, loaded.width,
                    entry.n_layers, entry.width)
    return loaded


def _with_lm_head(entry: ZooModel, base: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The model with its language-model head, whose base holds exactly ``base``'s weights."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    config = base.config
    if entry.trained:
        location = resolve_encoder(entry.source)
        head_class = AutoModelForCausalLM if entry.family == "causal" else AutoModelForMaskedLM
        if entry.family == "masked" and not _has_masked_head(location):
            return base  # e.g. the sentence-embedding MiniLM: no masked-LM head was shipped
        return head_class.from_pretrained(location, local_files_only=True, trust_remote_code=False)
    head_class = AutoModelForCausalLM if entry.family == "causal" else AutoModelForMaskedLM
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed + 1)  # the head's own fresh weights: seeded, and apart from the base's
    model = head_class.from_config(config)
    torch.random.set_rng_state(generator_state)
    missing, unexpected = model.base_model.load_state_dict(base.state_dict(), strict=False)
    if missing or any(not key.startswith("pooler.") for key in unexpected):
        raise ConfigError(f"zoo model {entry.name!r}: the head model's base does not match the encoder "
                          f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.tie_weights()
    return model


def _has_masked_head(location: str) -> bool:
    """Whether a local checkpoint holds masked-LM head weights (``cls.predictions``, ``lm_head``)."""
    from safetensors import safe_open

    files = list(Path(location).glob("*.safetensors")) if Path(location).is_dir() else []
    for path in files:
        with safe_open(str(path), "pt") as handle:
            if any(key.startswith(("cls.predictions", "lm_head", "predictions")) for key in handle.keys()):
                return True
    return False


def model_files_md5(name: str) -> dict[str, str]:
    """The MD5 of the files that decide what a zoo model computes (a local directory's or SmolLM2's cache's
    config, weights and tokenizer); none where code decides (registered architectures, embeddings)."""
    entry = zoo_model(name)
    if entry.family in ("random", "unigram"):
        return {}
    if entry.family == "static":
        return {p.name: md5_file(p) for p in weight_files(entry.source)}
    return {p.name: md5_file(p) for p in weight_files(entry.source, not entry.trained, tokenizer=True)}


def predicts_words(name: str) -> bool:
    """Whether a zoo model gives next-word (or masked-word) predictions: causal models, the unigram
    baseline, and masked models with a masked-LM head (fresh when untrained; MiniLM ships none)."""
    entry = zoo_model(name)
    if entry.family in ("causal", "unigram"):
        return True
    if entry.family != "masked":
        return False
    return not entry.trained or _has_masked_head(resolve_encoder(entry.source))
