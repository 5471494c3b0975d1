"""Fine-tuning objectives of a trajectory: what each step trains on, and what a checkpoint is evaluated on.

Gauthier & Levy (2019) fine-tuned BERT on three GLUE tasks, SQuAD 2.0 and language-modelling variants
(reference §8). Each is one registered entry of :data:`OBJECTIVES` (``params.yaml``:
``decoding.trajectories.<name>.objective``):

``glue``
    A GLUE task (``task``: MNLI, QQP, SST-2, ...) through :mod:`brainalign.nlu`: BERT's classifier on the
    pooled ``[CLS]`` state; the dev metric at every checkpoint. ``data: sample`` is the embedded GLUE-format
    sample (made-up tasks, not GLUE).
``squad``
    SQuAD 2.0 span extraction (:mod:`brainalign.nlu.squad`); exact match and F1 at every checkpoint.
``lm``, ``lm_lmonly``, ``lm_scrambled``, ``lm_contentonly``, ``lm_randommask``
    Masked language modelling on a corpus (``corpus: story``, the project's story, or a text file), as BERT's
    pre-training builds it: sentence pairs, 15 % of word pieces chosen (80 % ``[MASK]``, 10 % a random piece,
    10 % kept), the masks fixed per example (BERT's static masking), plus next-sentence prediction.
    ``lm_lmonly`` drops next-sentence prediction; ``lm_scrambled`` shuffles the words within every sentence;
    ``lm_contentonly`` masks only the pieces of content words (not scikit-learn's English stop words);
    ``lm_randommask`` draws new masks each time an example is used. The original's ``LM_pos`` (predicting
    part-of-speech tags) needs a tagger and is not offered. Our reading of the variants the paper names only
    briefly is documented in ``docs/decoding.md``.

Every random choice is a function of the run's seed and the step, never of a stream position, so a
trajectory resumed from a checkpoint draws exactly what an uninterrupted one draws.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from brainalign.errors import ConfigError, InputError
from brainalign.files import md5_file
from brainalign.registry import Registry

OBJECTIVES: Registry[type["Objective"]] = Registry("fine-tuning objective",
                                                   "decoding.trajectories.<name>.objective")


@dataclass(frozen=True)
class TrajectorySettings:
    """How a trajectory trains (params.yaml ``decoding``; the paper: 250 steps, a checkpoint every 5,
    batches of 32, learning rate 2e-5 (SQuAD 3e-5))."""

    steps: int = 250
    checkpoint_every: int = 5
    learning_rate: float = 2e-5
    batch_size: int = 32
    max_length: int = 128
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    dropout: float = 0.1
    mask_probability: float = 0.15
    max_train: int | None = None
    max_dev: int | None = None

    def __post_init__(self) -> None:
        if self.steps < 1 or self.checkpoint_every < 1:
            raise ConfigError(f"decoding: steps and checkpoint_every must be positive, found {self.steps} and "
                              f"{self.checkpoint_every}")

    @property
    def checkpoint_steps(self) -> list[int]:
        """The steps after which a checkpoint is kept (the last step always)."""
        steps = list(range(self.checkpoint_every, self.steps + 1, self.checkpoint_every))
        return steps if steps and steps[-1] == self.steps else steps + [self.steps]


class Objective(ABC):
    """A fine-tuning task: its examples, the model it trains (the encoder and a head), its evaluation."""

    #: the registered name
    name: str = ""

    def __init__(self, options: dict[str, Any], tokenizer, settings: TrajectorySettings, seed: int) -> None:
        self.options, self.tokenizer, self.settings, self.seed = dict(options), tokenizer, settings, seed

    @property
    @abstractmethod
    def n_examples(self) -> int:
        """Training examples (an epoch's worth of rows)."""

    @abstractmethod
    def inputs(self) -> dict[str, str]:
        """What decides the training data: ``{description: md5}`` (files or the corpus text)."""

    @abstractmethod
    def build(self, encoder: nn.Module) -> nn.Module:
        """The trainable model around ``encoder`` (a transformers encoder, trained in place); its head is
        initialised from the run's seed. The returned module has ``encoder`` and ``loss(batch)``."""

    @abstractmethod
    def batch(self, rows: np.ndarray, step: int, device: str) -> dict[str, torch.Tensor]:
        """The tensors of training step ``step`` for examples ``rows``."""

    def evaluate(self, model: nn.Module, device: str) -> dict[str, float]:
        """Dev metrics of ``model`` (none for objectives without a dev set)."""
        return {}

    def describe(self) -> str:
        return self.name


def _md5_text(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _files_md5(files: list[Path]) -> dict[str, str]:
    return {f"{p.parent.name}/{p.name}": md5_file(p) for p in files}


def _init_linear(layer: nn.Linear, generator: torch.Generator) -> None:
    """BERT's initialisation, N(0, 0.02) weights and zero bias, from the run's own generator."""
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * 0.02)
        layer.bias.zero_()


# ---------------------------------------------------------------------------------------------- GLUE


@OBJECTIVES.register("glue")
class GlueObjective(Objective):
    """A GLUE task (``task``; ``data``: ``sample`` or a GLUE release / hub cache directory)."""

    name = "glue"

    def __init__(self, options, tokenizer, settings, seed) -> None:
        super().__init__(options, tokenizer, settings, seed)
        from brainalign.nlu.finetune import encode_split
        from brainalign.nlu.glue import glue_task, read_split, split_files

        if "task" not in options or "root" not in options:
            raise ConfigError(f"decoding.trajectories: a glue objective needs `task` and its data, found {options}")
        self.task = glue_task(options["task"])
        root = options["root"]
        self.files = split_files(root, self.task, "train") + [
            f for split in self.task.dev_splits for f in split_files(root, self.task, split)]
        self.files_md5 = _files_md5(self.files)  # now: a sample's scratch directory is gone after construction
        self.train = read_split(root, self.task, "train").subsample(settings.max_train, seed)
        self.devs = [read_split(root, self.task, split).subsample(settings.max_dev, seed)
                     for split in self.task.dev_splits]
        self.encoded = encode_split(tokenizer, self.train, settings.max_length)
        self.dev_encoded = [encode_split(tokenizer, dev, settings.max_length) for dev in self.devs]
        labels = self.train.labels
        if self.task.regression:
            self.centre, self.scale = float(labels.mean()), float(labels.std()) or 1.0
            self.labels = torch.from_numpy(((labels - self.centre) / self.scale).astype(np.float32))
        else:
            self.labels = torch.from_numpy(labels.astype(np.int64))

    @property
    def n_examples(self) -> int:
        return len(self.train)

    def inputs(self) -> dict[str, str]:
        return self.files_md5

    def build(self, encoder: nn.Module) -> nn.Module:
        from brainalign.nlu.finetune import SequenceClassifier

        task = self.task

        class Classifier(SequenceClassifier):
            def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
                labels = batch.pop("labels")
                logits = self(**batch)
                if task.regression:
                    return nn.functional.mse_loss(logits.squeeze(-1).float(), labels.float())
                return nn.functional.cross_entropy(logits.float(), labels)

        return Classifier(encoder, task.n_outputs, self.settings.dropout, self.seed,
                          self.options.get("pooling", "pooler"))

    def batch(self, rows, step, device):
        return {**self.encoded.batch(rows, device), "labels": self.labels[rows].to(device)}

    def evaluate(self, model, device):
        from brainalign.nlu.finetune import predict
        from brainalign.nlu.metrics import task_metrics

        scores = {}
        for dev, encoded in zip(self.devs, self.dev_encoded):
            predictions = predict(model, self.task, encoded, 128, device)
            if self.task.regression:
                predictions = self.centre + self.scale * predictions
            prefix = "" if len(self.devs) == 1 else f"{dev.split}."
            scores.update({f"dev.{prefix}{k}": v for k, v in task_metrics(self.task, dev.labels, predictions).items()})
        model.train()
        return scores

    def describe(self) -> str:
        return f"glue {self.task.name}"


# --------------------------------------------------------------------------------------------- SQuAD


@OBJECTIVES.register("squad")
class SquadObjective(Objective):
    """SQuAD 2.0 (``data``: ``sample`` or a directory with ``train-v2.0.json`` and ``dev-v2.0.json``)."""

    name = "squad"

    def __init__(self, options, tokenizer, settings, seed) -> None:
        super().__init__(options, tokenizer, settings, seed)
        from brainalign.nlu.squad import encode_squad, read_squad

        root = Path(options["root"])
        self.files = [root / "train-v2.0.json", root / "dev-v2.0.json"]
        self.files_md5 = _files_md5(self.files)
        self.train = read_squad(self.files[0]).subsample(settings.max_train, seed)
        self.dev = read_squad(self.files[1]).subsample(settings.max_dev, seed)
        length = int(options.get("max_length", settings.max_length))
        stride = min(128, length // 2)
        self.features = encode_squad(tokenizer, self.train, max_length=length, doc_stride=stride)
        self.dev_features = encode_squad(tokenizer, self.dev, max_length=length, doc_stride=stride)

    @property
    def n_examples(self) -> int:
        return len(self.features.lengths)

    def inputs(self) -> dict[str, str]:
        return self.files_md5

    def build(self, encoder):
        from brainalign.nlu.squad import SpanQA

        return SpanQA(encoder, seed=self.seed)

    def batch(self, rows, step, device):
        return self.features.batch(rows, device)

    def evaluate(self, model, device):
        from brainalign.nlu.squad import predict_answers, squad_metrics

        answers = predict_answers(model, self.dev_features, self.dev, device=device)
        model.train()
        scores = squad_metrics(self.dev, answers)
        return {f"dev.{k}": float(scores[k]) for k in ("exact", "f1")}


# -------------------------------------------------------------------------------- language modelling

SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"\u201d\u2019]))\s+")


def corpus_sentences(text: str) -> list[str]:
    """A text's sentences (split after ``.``, ``!``, ``?`` and a closing quote; white space normalised)."""
    return [s.strip() for s in SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def read_corpus(corpus: str) -> tuple[list[str], str]:
    """The sentences of ``corpus`` (``story``: the project's story; else a UTF-8 text file) and its md5."""
    if corpus == "story":
        from importlib.resources import files

        text = files("brainalign.data").joinpath("story.txt").read_text(encoding="utf-8")
    else:
        path = Path(corpus)
        if not path.is_file():
            raise InputError(path, "decoding.trajectories.<name>.corpus", "`story` or a UTF-8 text file",
                             "no such file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise InputError(path, "text", "UTF-8 text", f"undecodable bytes ({error.reason})") from None
    sentences = [s for s in corpus_sentences(text) if len(s.split()) >= 2]
    if len(sentences) < 4:
        raise InputError(corpus, "sentences", "a text of at least 4 sentences", f"{len(sentences)}")
    return sentences, _md5_text(text)


class PretrainingHeads(nn.Module):
    """BERT's pre-training heads on an encoder: the masked-LM head (a dense layer, GELU and LayerNorm, then
    the input embeddings transposed, plus a bias) and, optionally, next-sentence prediction on the pooled
    ``[CLS]`` state. The heads are new (the packaged encoders carry none), initialised from the seed."""

    def __init__(self, encoder: nn.Module, next_sentence: bool, seed: int) -> None:
        super().__init__()
        config = encoder.config
        hidden = int(config.hidden_size)
        self.encoder = encoder
        self.transform = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=float(getattr(config, "layer_norm_eps", 1e-12)))
        self.bias = nn.Parameter(torch.zeros(int(config.vocab_size)))
        self.next_sentence = nn.Linear(hidden, 2) if next_sentence else None
        generator = torch.Generator().manual_seed(seed)
        _init_linear(self.transform, generator)
        if self.next_sentence is not None:
            _init_linear(self.next_sentence, generator)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           token_type_ids=batch["token_type_ids"])
        states = out.last_hidden_state
        chosen = states[batch["masked"]]  # only the masked pieces reach the vocabulary-wide projection
        hidden = self.norm(nn.functional.gelu(self.transform(chosen)))
        logits = hidden @ self.encoder.get_input_embeddings().weight.T + self.bias
        loss = nn.functional.cross_entropy(logits.float(), batch["targets"])
        if self.next_sentence is not None:
            pooled = out.pooler_output if getattr(out, "pooler_output", None) is not None else states[:, 0]
            loss = loss + nn.functional.cross_entropy(self.next_sentence(pooled).float(), batch["is_random"])
        return loss


class LanguageModelling(Objective):
    """Masked language modelling (plus next-sentence prediction) on a corpus's sentence pairs."""

    next_sentence = True
    scramble = False
    content_only = False
    static_masks = True

    def __init__(self, options, tokenizer, settings, seed) -> None:
        super().__init__(options, tokenizer, settings, seed)
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        sentences, self.corpus_md5 = read_corpus(str(options.get("corpus", "story")))
        rng = np.random.default_rng([seed, 1])
        if self.scramble:
            sentences = [" ".join(rng.permutation(s.split())) for s in sentences]
        n = len(sentences) - 1
        # Next-sentence pairs: half the second sentences are drawn from elsewhere in the corpus (BERT's 50 %).
        is_random = (rng.random(n) < 0.5) if self.next_sentence else np.zeros(n, dtype=bool)
        others = rng.integers(0, len(sentences) - 2, n)
        second_index = np.where(is_random, np.where(others >= np.arange(n) + 1, others + 2, others), np.arange(n) + 1)
        firsts, seconds = sentences[:-1], [sentences[j] for j in second_index]
        if settings.max_train is not None and settings.max_train < n:
            keep = np.sort(rng.choice(n, settings.max_train, replace=False))
            firsts, seconds, is_random = [firsts[i] for i in keep], [seconds[i] for i in keep], is_random[keep]
        encoded = tokenizer(firsts, seconds, truncation=True, max_length=settings.max_length,
                            return_token_type_ids=True)
        self.ids = [np.asarray(i, dtype=np.int64) for i in encoded["input_ids"]]
        self.segments = [np.asarray(s, dtype=np.int64) for s in encoded["token_type_ids"]]
        self.is_random = torch.from_numpy(is_random.astype(np.int64))
        # Which pieces may be masked: not special pieces; for content-only, pieces of content words only.
        self.maskable = []
        for row in range(len(self.ids)):
            special = np.asarray(tokenizer.get_special_tokens_mask(self.ids[row].tolist(),
                                                                   already_has_special_tokens=True), dtype=bool)
            allowed = ~special
            if self.content_only:
                words = encoded.word_ids(row)
                sequence = encoded.sequence_ids(row)
                texts = (firsts[row], seconds[row])
                spans = [encoded.word_to_chars(row, w, sequence_index=s) if w is not None else None
                         for w, s in zip(words, sequence)]
                content = np.array([span is not None and _is_content(texts[s][span.start:span.end], ENGLISH_STOP_WORDS)
                                    for span, s in zip(spans, sequence)])
                allowed &= content
            self.maskable.append(allowed)
        self.vocab_size = int(len(tokenizer))
        self.mask_id = int(tokenizer.mask_token_id)
        self.pad_id = int(tokenizer.pad_token_id)

    @property
    def n_examples(self) -> int:
        return len(self.ids)

    def inputs(self) -> dict[str, str]:
        return {f"corpus:{self.options.get('corpus', 'story')}": self.corpus_md5}

    def build(self, encoder):
        return PretrainingHeads(encoder, self.next_sentence, self.seed)

    def _masks(self, row: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions to predict and the ids fed in their place (BERT's 80/10/10), seeded per example (static)
        or per example and step (dynamic)."""
        key = [self.seed, 2, row] if self.static_masks else [self.seed, 3, step, row]
        rng = np.random.default_rng(key)
        candidates = np.flatnonzero(self.maskable[row])
        if candidates.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        n = max(1, int(round(self.settings.mask_probability * candidates.size)))
        positions = np.sort(rng.choice(candidates, n, replace=False))
        roll = rng.random(n)
        replacement = np.where(roll < 0.8, self.mask_id,
                               np.where(roll < 0.9, rng.integers(0, self.vocab_size, n), self.ids[row][positions]))
        return positions, replacement

    def batch(self, rows, step, device):
        width = max(len(self.ids[r]) for r in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        segments = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        masked = np.zeros(ids.shape, dtype=bool)
        targets = []
        for i, r in enumerate(rows):
            n = len(self.ids[r])
            ids[i, :n], segments[i, :n], mask[i, :n] = self.ids[r], self.segments[r], 1
            positions, replacement = self._masks(int(r), step)
            targets.append(self.ids[r][positions])  # row-major order, as boolean indexing reads them
            ids[i, positions] = replacement
            masked[i, positions] = True
        return {"input_ids": torch.from_numpy(ids).to(device), "token_type_ids": torch.from_numpy(segments).to(device),
                "attention_mask": torch.from_numpy(mask).to(device), "masked": torch.from_numpy(masked).to(device),
                "targets": torch.from_numpy(np.concatenate(targets)).to(device),
                "is_random": self.is_random[rows].to(device)}

    def describe(self) -> str:
        return f"{self.name} on {self.options.get('corpus', 'story')}"


def _is_content(word: str, stop_words) -> bool:
    return any(c.isalpha() for c in word) and word.lower() not in stop_words


@OBJECTIVES.register("lm")
class MaskedLM(LanguageModelling):
    name = "lm"


@OBJECTIVES.register("lm_lmonly")
class MaskedLMOnly(LanguageModelling):
    name = "lm_lmonly"
    next_sentence = False


@OBJECTIVES.register("lm_scrambled")
class ScrambledLM(LanguageModelling):
    name = "lm_scrambled"
    scramble = True


@OBJECTIVES.register("lm_contentonly")
class ContentOnlyLM(LanguageModelling):
    name = "lm_contentonly"
    content_only = True


@OBJECTIVES.register("lm_randommask")
class RandomMaskLM(LanguageModelling):
    name = "lm_randommask"
    static_masks = False


def make_objective(kind: str, options: dict[str, Any], tokenizer, settings: TrajectorySettings,
                   seed: int) -> Objective:
    """The registered objective ``kind`` on the data ``options`` name."""
    return OBJECTIVES.get(kind)(options, tokenizer, settings, seed)
