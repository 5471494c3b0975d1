"""Next-word prediction: per-word surprisal (reading times), Brain-Score's WikiText next-word accuracy,
perplexity, and the pseudo-perplexity of masked language models.

Conditioning. A story (or line) is read left to right; each token is conditioned on everything before
it in the same group, and on the tokenizer's beginning-of-sequence token: the leading special tokens the
tokenizer adds, or, where it adds none but defines ``bos_token`` (SmolLM2's ``<|im_start|>``), that
token prepended. A tokenizer with neither gives the first token of each story no context: its surprisal
is NaN, and so is its word's (Brain-Score does the same for a first word it cannot predict).

Long groups are read in windows of ``max_length`` tokens (the leading special tokens included) that
advance by ``stride`` tokens; each window scores only the tokens the previous windows did not, so every
token after the first window keeps at least ``max_length - stride`` tokens of context.
"""

from __future__ import annotations

import hashlib
import logging
import math
import string
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from brainalign.benchmarks.activations import group_order
from brainalign.benchmarks.zoo import LoadedModel, model_files_md5
from brainalign.runs.spec import StoredTask
from brainalign.errors import ConfigError, InputError
from brainalign.runs.code import code_key

log = logging.getLogger(__name__)

LN2 = math.log(2.0)


def _require_lm(model: LoadedModel, causal: bool) -> None:
    if model.is_lookup or not model.has_lm_head:
        raise ConfigError(f"next-word prediction: {model.name!r} has no language-model head "
                          f"({model.entry.label}); it cannot predict words")
    if causal and not model.causal:
        raise ConfigError(f"next-word prediction: {model.name!r} is a {model.family} model; surprisal and "
                          f"next-word accuracy need a causal language model (masked: pseudo_log_likelihood)")


def context_prefix(tokenizer) -> list[int]:
    """The token ids every sequence starts with: the tokenizer's leading special tokens, or its BOS."""
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    lead = next((k for k in range(len(ids) - len(plain) + 1) if ids[k:k + len(plain)] == plain), 0)
    if lead:
        return list(ids[:lead])
    return [int(tokenizer.bos_token_id)] if tokenizer.bos_token_id is not None else []


@dataclass
class Scan:
    """What one causal pass over a token sequence yields, per content token ``t``.

    Attributes
    ----------
    bits : ndarray (n,)
        ``-log2 p(token t | prefix, tokens before t)``; NaN where nothing precedes it.
    argmax : ndarray (n,)
        The most probable token after tokens ``0 … t``.
    """

    bits: np.ndarray
    argmax: np.ndarray


def _windows(n: int, room: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, first scored, end) of each window over ``n`` content tokens."""
    out, begin, scored = [], 0, 0
    while scored < n:
        end = min(begin + room, n)
        out.append((begin, scored, end))
        scored, begin = end, begin + stride
    return out


@torch.inference_mode()
def scan(model: LoadedModel, contents: list[list[int]], *, max_length: int | None = None, stride: int | None = None,
         batch_size: int = 2, progress: bool = False) -> list[Scan]:
    """Per-token surprisal and argmax prediction of each token sequence (content tokens, no specials).

    Parameters
    ----------
    model : LoadedModel
        A causal language model.
    contents : list of list of int
        The token ids of each group, without special tokens (:func:`context_prefix` goes first).
    max_length : int, optional
        Tokens per window, the prefix included; default the model's maximum.
    stride : int, optional
        Tokens a window advances; default half the room after the prefix.
    batch_size : int
        Windows per forward pass.
    """
    _require_lm(model, causal=True)
    prefix = context_prefix(model.tokenizer)
    length = int(max_length or model.max_positions)
    room = length - len(prefix)
    step = int(stride or max(1, room // 2))
    if room < 2 or not 1 <= step < room:
        raise ConfigError(f"next-word prediction: max_length {length} and stride {step}: expected "
                          f"1 <= stride < max_length - {len(prefix)} (the prefix)")
    results = [Scan(np.full(len(c), np.nan, dtype=np.float64), np.full(len(c), -1, dtype=np.int64))
               for c in contents]
    jobs = [(g, *w) for g, c in enumerate(contents) for w in _windows(len(c), room, step)]
    jobs.sort(key=lambda job: job[3] - job[1])
    device = next(model.model.parameters()).device
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    batches = [jobs[i:i + batch_size] for i in range(0, len(jobs), batch_size)]
    for batch in tqdm(batches, desc=f"surprisal ({model.name})", disable=not progress):
        longest = max(len(prefix) + end - begin for _, begin, _, end in batch)
        input_ids = torch.full((len(batch), longest), int(pad), dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, (g, begin, _, end) in enumerate(batch):
            ids = prefix + list(contents[g][begin:end])
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        logits = model.model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()
        log_probs = torch.log_softmax(logits, dim=-1)
        for row, (g, begin, scored, end) in enumerate(batch):
            offset = len(prefix) - begin  # window position of content token t: t + offset
            targets = np.arange(scored, end)
            has_context = targets + offset - 1 >= 0
            t = targets[has_context]
            token_ids = torch.as_tensor(np.asarray(contents[g])[t], device=device)
            picked = log_probs[row, torch.as_tensor(t + offset - 1, device=device), token_ids]
            results[g].bits[t] = (-picked / LN2).double().cpu().numpy()
            positions = torch.as_tensor(targets + offset, device=device)
            results[g].argmax[targets] = logits[row, positions].argmax(-1).cpu().numpy()
    return results


def _content_tokens(tokenizer, text: str) -> tuple[list[int], np.ndarray]:
    """The ids of ``text`` without special tokens, and each token's (start, end) characters."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(encoded["input_ids"]), np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2)


def word_surprisal(model: LoadedModel, words: Sequence[str], groups: Sequence, *, max_length: int | None = None,
                   stride: int | None = None, batch_size: int = 2, progress: bool = True) -> np.ndarray:
    """Each word's surprisal in bits: the sum over its tokens of ``-log2 p(token | everything before it in
    the same group)`` (see the module docstring for the first token and long groups).

    Parameters
    ----------
    model : LoadedModel
        A causal language model (:func:`brainalign.benchmarks.zoo.load_zoo_model`).
    words : sequence of str
        The words, in reading order within each group (a story's words joined by spaces are its text).
    groups : sequence
        The group (story) of each word.

    Returns
    -------
    ndarray of shape (n_words,), float64
    """
    _require_lm(model, causal=True)
    words = [str(w) for w in words]
    groups = np.asarray(groups)
    if groups.shape != (len(words),):
        raise InputError("groups", "groups", f"one group per word ({len(words)})", f"shape {groups.shape}")
    bad = [i for i, w in enumerate(words) if not w.strip() or w != w.strip()]
    if bad:
        raise InputError("words", f"word {bad[0]}", "a word without surrounding white space", repr(words[bad[0]]))
    order = group_order(groups)
    contents, owners = [], []
    for indices in order:
        group_words = [words[i] for i in indices]
        starts = np.cumsum([0] + [len(w) + 1 for w in group_words[:-1]])
        ids, offsets = _content_tokens(model.tokenizer, " ".join(group_words))
        # A token belongs to the word its last character lies in (a leading space is the word's own).
        owner = np.searchsorted(starts, np.maximum(offsets[:, 1] - 1, 0), side="right") - 1
        covered = np.bincount(owner, minlength=len(group_words))
        if (covered == 0).any():
            j = int(np.flatnonzero(covered == 0)[0])
            raise InputError("words", f"word {indices[j]}", "a word the tokenizer turns into tokens",
                             f"{group_words[j]!r} gives none")
        contents.append(ids)
        owners.append(owner)
    scans = scan(model, contents, max_length=max_length, stride=stride, batch_size=batch_size, progress=progress)
    out = np.zeros(len(words), dtype=np.float64)
    for indices, owner, result in zip(order, owners, scans):
        sums = np.zeros(len(indices), dtype=np.float64)
        np.add.at(sums, owner, result.bits)  # NaN stays NaN: a word with an unpredictable token
        out[indices] = sums
    return out


# Brain-Score's WikiText next-word accuracy ------------------------------------------------------------------

def wikitext_targets(text: str) -> list[tuple[int, int, str]]:
    """Brain-Score's ``WikitextAccuracy.build_contexts``: (line, context end, target) triples.

    Each line of the file is stripped and read alone (Brain-Score's page-header reset never fires, since
    WikiText's lines begin with a space, and its ``previous_context`` is never extended): the context of a
    target is the line up to the white space before it; the targets are the line's words from the second
    to the last but one (punctuation and ``@-@`` are words too).
    """
    out = []
    for number, raw in enumerate(text.split("\n")):
        line = raw.strip()
        spaces = [i for i, char in enumerate(line) if char in string.whitespace and i > 0]
        for k in range(1, len(spaces)):
            out.append((number, spaces[k - 1], line[spaces[k - 1]:spaces[k]].strip()))
    return out


def unigram_accuracy(text: str) -> float:
    """The accuracy of always predicting the most frequent target (the best a unigram model does)."""
    targets = [t for _, _, t in wikitext_targets(text)]
    return Counter(targets).most_common(1)[0][1] / len(targets) if targets else float("nan")


def next_word_accuracy(model: LoadedModel, text: str, *, max_length: int | None = None, batch_size: int = 2,
                       progress: bool = True) -> dict:
    """Brain-Score's ``Wikitext-accuracy`` and the perplexity of a causal model on ``text``; the
    pseudo-perplexity of a masked one.

    Accuracy: for each target of :func:`wikitext_targets`, the argmax token after its context, decoded and
    stripped of white space, compared with the target word. Brain-Score feeds the model every earlier
    context joined before this one (an artefact of ``digest_text``); here the context is the line so far,
    which is what ``build_contexts`` builds, read in one pass per line. Perplexity: ``exp`` of the mean
    token negative log-likelihood (nats) over the lines' tokens, each line read as one group.

    Returns
    -------
    dict
        ``accuracy``, ``n_targets``, ``perplexity``, ``mean_nll``, ``n_tokens``, ``family``, ``label``; for a
        masked model ``accuracy`` is None and ``pseudo_perplexity``, ``pseudo_log_likelihood`` are given.
    """
    if model.is_lookup or model.family == "masked":
        _require_lm(model, causal=False)
        result = pseudo_log_likelihood(model, [line.strip() for line in text.split("\n") if line.strip()],
                                       max_length=max_length, batch_size=max(batch_size, 16), progress=progress)
        return {"accuracy": None, "n_targets": 0, **result, "family": model.family, "label": model.entry.label}
    _require_lm(model, causal=True)
    lines = text.split("\n")
    targets = wikitext_targets(text)
    used = sorted({number for number, _, _ in targets} | {i for i, line in enumerate(lines) if line.strip()})
    contents, offsets = {}, {}
    for number in used:
        contents[number], offsets[number] = _content_tokens(model.tokenizer, lines[number].strip())
    numbers = [n for n in used if contents[n]]
    scans = dict(zip(numbers, scan(model, [contents[n] for n in numbers], max_length=max_length,
                                   batch_size=batch_size, progress=progress)))
    correct = 0
    decoded: dict[int, str] = {}
    for number, end, target in targets:
        # The context ends at the space before the target: its last token is the last that starts before.
        last = int(np.flatnonzero(offsets[number][:, 0] < end)[-1])
        token = int(scans[number].argmax[last])
        if token not in decoded:
            decoded[token] = model.tokenizer.decode([token]).strip()
        correct += decoded[token] == target
    bits = np.concatenate([s.bits for s in scans.values()]) if scans else np.zeros(0)
    bits = bits[np.isfinite(bits)]
    mean_nll = float(bits.mean() * LN2) if len(bits) else float("nan")
    return {"accuracy": correct / len(targets) if targets else float("nan"), "n_targets": len(targets),
            "perplexity": math.exp(mean_nll), "mean_nll": mean_nll, "n_tokens": int(len(bits)),
            "family": model.family, "label": model.entry.label}


@torch.inference_mode()
def pseudo_log_likelihood(model: LoadedModel, texts: Sequence[str], *, max_length: int | None = None,
                          batch_size: int = 16, progress: bool = True) -> dict:
    """A masked language model's pseudo-log-likelihood (Salazar et al. 2020): each token masked in turn
    and scored given all the others (special tokens are context, never scored).

    Returns
    -------
    dict
        ``pseudo_log_likelihood`` (sum, nats), ``pseudo_perplexity`` (``exp`` of minus the mean),
        ``n_tokens``, and ``token_log_likelihoods`` (one float64 array per text).
    """
    _require_lm(model, causal=False)
    tokenizer = model.tokenizer
    if tokenizer.mask_token_id is None:
        raise ConfigError(f"pseudo-log-likelihood: {model.name!r}'s tokenizer has no mask token")
    tokenizer.truncation_side = "left"
    length = int(max_length or model.max_positions)
    special = set(tokenizer.all_special_ids)
    device = next(model.model.parameters()).device
    per_text = []
    for text in tqdm(list(texts), desc=f"pseudo-log-likelihood ({model.name})", disable=not progress):
        ids = torch.tensor(tokenizer(text, truncation=True, max_length=length)["input_ids"])
        scored = [i for i, t in enumerate(ids.tolist()) if t not in special]
        values = np.zeros(len(scored), dtype=np.float64)
        for start in range(0, len(scored), batch_size):
            chunk = scored[start:start + batch_size]
            masked = ids.repeat(len(chunk), 1)
            masked[torch.arange(len(chunk)), torch.tensor(chunk)] = tokenizer.mask_token_id
            log_probs = torch.log_softmax(model.model(input_ids=masked.to(device)).logits.float(), dim=-1)
            rows = torch.arange(len(chunk), device=device)
            where = torch.tensor(chunk, device=device)
            values[start:start + len(chunk)] = log_probs[rows, where, ids[chunk].to(device)].double().cpu().numpy()
        per_text.append(values)
    total = float(sum(v.sum() for v in per_text))
    n = int(sum(len(v) for v in per_text))
    return {"pseudo_log_likelihood": total, "pseudo_perplexity": math.exp(-total / n) if n else float("nan"),
            "n_tokens": n, "token_log_likelihoods": per_text}


def nextword_text(spec: str) -> tuple[str, str]:
    """The text ``nextword.text`` names: ``story`` (the project's own story, shipped in the package) or a
    text file's path; returns the text and where it came from."""
    from importlib.resources import files
    from pathlib import Path

    if spec == "story":
        return files("brainalign.data").joinpath("story.txt").read_text(encoding="utf-8"), "brainalign/data/story.txt"
    path = Path(spec)
    if not path.is_file():
        raise InputError(path, "nextword.text", "story, or a text file (e.g. WikiText-2's test split)",
                         "no such file" if not path.exists() else "a directory")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise InputError(path, "nextword.text", "a text with words", "an empty file")
    return text, str(path)


def first_words(text: str, n_words: int) -> str:
    """The text's lines up to the line holding its ``n_words``-th word (line breaks kept: they are contexts)."""
    kept, count = [], 0
    for line in text.split("\n"):
        if count >= n_words:
            break
        kept.append(line)
        count += len(line.split())
    return "\n".join(kept)


@dataclass(frozen=True)
class NextWordTask(StoredTask):
    """A zoo language model's next-word prediction on a text (a task of the store)."""

    model: str
    text: str
    text_source: str
    max_words: int
    max_words_masked: int
    seed: int = 0
    max_length: int = 256

    namespace = "nextword"

    @property
    def label(self) -> str:
        return f"nextword/{self.model}"

    @cached_property
    def spec(self) -> dict:
        return {"model": self.model, "model_md5": model_files_md5(self.model), "seed": self.seed,
                "text_md5": hashlib.md5(self.text.encode("utf-8")).hexdigest(), "max_words": self.max_words,
                "max_words_masked": self.max_words_masked, "max_length": self.max_length, "code": code_key(__name__)}

    def params(self) -> dict:
        return {"model": self.model, "text": self.text_source, "max_words": self.max_words,
                "max_words_masked": self.max_words_masked}

    def tags(self) -> dict[str, str]:
        return {"nextword_key": self.key, "model": self.model, "input_md5.text": self.spec["text_md5"]}


def nextword_work(progress: bool = True):
    """The work of next-word tasks: the metrics, in the result."""
    import time

    from brainalign.benchmarks.zoo import load_zoo_model, zoo_model

    def work(task: NextWordTask, directory, on_epoch=None) -> dict:
        started = time.perf_counter()
        entry = zoo_model(task.model)
        if entry.family == "unigram":
            text = first_words(task.text, task.max_words)
            metrics = {"accuracy": unigram_accuracy(text), "n_targets": len(wikitext_targets(text))}
        else:
            model = load_zoo_model(entry, seed=task.seed)
            masked = entry.family == "masked"
            text = first_words(task.text, task.max_words_masked if masked else task.max_words)
            result = next_word_accuracy(model, text, max_length=task.max_length, progress=progress)
            metrics = {k: result.get(k) for k in ("accuracy", "perplexity", "pseudo_perplexity", "n_targets",
                                                    "n_tokens")}
        metrics = {k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else v)
                   for k, v in metrics.items()}
        seconds = time.perf_counter() - started
        return {"metrics": metrics, "n_words": len(text.split()), "history": [], "seconds": seconds,
                "resumed_at_epoch": 0, "examples_per_second": len(text.split()) / seconds if seconds else 0.0}
    return work


def nextword_row(task: NextWordTask, result: dict) -> dict:
    """One row of the next-word table."""
    from brainalign.benchmarks.zoo import zoo_model

    entry = zoo_model(task.model)
    metrics = result["metrics"]
    return {"model": task.model, "label": entry.label, "family": entry.family, "text": task.text_source,
            "n_words": result["n_words"], "accuracy": metrics.get("accuracy"),
            "perplexity": metrics.get("perplexity"), "pseudo_perplexity": metrics.get("pseudo_perplexity")}
