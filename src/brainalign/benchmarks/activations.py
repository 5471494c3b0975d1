"""Every layer's representation of each presentation, read the way Brain-Score language reads a model.

Brain-Score's ``HuggingfaceSubject.digest_text`` receives the presentations of one group (a Pereira
passage, a Blank story, a Fedorenko sentence) in order; presentation *p* is fed as the group's
presentations 1 … *p* joined by spaces, tokenised with the tokenizer's own special tokens and cut from the
left to the model's maximum length, and its representation is the state of the last token at each layer.
Here:

- **causal models**: the state of a token depends only on the tokens before it, so one pass over the
  whole group gives every presentation's state at once. A presentation whose context no longer fits
  ``max_length`` gets its own window: the tokenizer's leading special tokens and the most recent tokens
  up to its end (what Brain-Score's left truncation keeps), batched with the others of that length.
- **bidirectional encoders**: a token sees what follows it, so each presentation is one pass over its
  own prefix (the group so far), batched with right padding.
- **static and random embeddings** (one layer, no context): the mean of the vectors of the
  presentation's words, as Brain-Score's ``EmbeddingSubject`` (``mean_over_words``); words made of
  punctuation only are left out (Brain-Score joins them to the previous word and strips them).

"Last token" is the last token that covers the presentation's text: a trailing special token
(``[SEP]``, an end-of-sequence token) is not the presentation's, and Brain-Score's literal ``-1`` would
read it for tokenizers that append one. Layers are transformers' ``hidden_states`` (layer 0: the
embeddings; the last one after the final normalisation where the architecture has one).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from brainalign.benchmarks.zoo import LoadedModel
from brainalign.errors import ConfigError, InputError
from brainalign.features.encoders import is_punctuation

log = logging.getLogger(__name__)


def group_order(groups: Sequence) -> list[np.ndarray]:
    """The presentation indices of each group, groups in order of first appearance, presentations in order."""
    first: dict = {}
    for i, group in enumerate(np.asarray(groups).tolist()):
        first.setdefault(group, []).append(i)
    return [np.asarray(indices, dtype=np.int64) for indices in first.values()]


def presentation_activations(model: LoadedModel, texts: Sequence[str], groups: Sequence, *, batch_size: int = 8,
                             max_length: int | None = None, progress: bool = True,
                             out: str | Path | None = None) -> np.ndarray:
    """Every layer's representation of each presentation given the preceding ones of its group.

    Parameters
    ----------
    model : LoadedModel
        From :func:`brainalign.benchmarks.zoo.load_zoo_model`.
    texts : sequence of str
        The presentations (sentences, words, the words of a TR), in reading order within each group.
    groups : sequence
        The group (passage, story, sentence) of each presentation; a presentation's context is the
        presentations before it with the same group.
    batch_size : int
        Sequences per forward pass.
    max_length : int, optional
        Tokens a sequence may hold (special tokens included); default the model's maximum.
    progress : bool
        Show a progress bar.
    out : path, optional
        Write into this ``.npy`` (memory-mapped while filled) and return it memory-mapped.

    Returns
    -------
    ndarray of shape (n_layers + 1, n_presentations, width), float32
        One layer for a static or random embedding.
    """
    texts = [str(t).strip() for t in texts]
    groups = np.asarray(groups)
    if len(texts) == 0:
        raise InputError("texts", "texts", "at least one presentation", "none")
    if groups.shape != (len(texts),):
        raise InputError("groups", "groups", f"one group per presentation ({len(texts)})", f"shape {groups.shape}")
    empty = [i for i, t in enumerate(texts) if not t]
    if empty:
        raise InputError("texts", f"presentation {empty[0]}", "text", "an empty string")
    if batch_size < 1:
        raise ConfigError(f"activations: batch_size: expected >= 1, found {batch_size}")
    shape = (model.n_layers + 1, len(texts), model.width)
    array = (np.lib.format.open_memmap(str(out), mode="w+", dtype=np.float32, shape=shape) if out is not None
             else np.zeros(shape, dtype=np.float32))
    if model.is_lookup:
        _fill_lookup(model, texts, array)
    else:
        length = int(max_length or model.max_positions)
        if length < 2:
            raise ConfigError(f"activations: max_length: expected >= 2 tokens, found {length}")
        fill = _fill_causal if model.causal else _fill_bidirectional
        fill(model, texts, group_order(groups), array, batch_size, length, progress)
    if out is not None:
        array.flush()
        del array
        return np.load(str(out), mmap_mode="r", allow_pickle=False)
    return array


def _fill_lookup(model: LoadedModel, texts: list[str], array: np.ndarray) -> None:
    for i, text in enumerate(texts):
        words = [w for w in text.split() if not is_punctuation(w)]
        if words:
            array[0, i] = model.word_vectors(words).mean(axis=0)


def _special_counts(tokenizer) -> tuple[int, int]:
    """How many special tokens the tokenizer adds before and after a text."""
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    for lead in range(len(ids) - len(plain) + 1):
        if ids[lead:lead + len(plain)] == plain:
            return lead, len(ids) - len(plain) - lead
    raise InputError("tokenizer", "special tokens", "the plain tokens inside the tokens with special tokens",
                     f"{ids} against {plain}")


def _last_tokens(offsets: list[tuple[int, int]], ends: list[int], first_content: int) -> list[int]:
    """For each character end, the index of the last token that starts before it (specials cover nothing)."""
    starts = np.array([start if end > start else -1 for start, end in offsets])
    content = np.flatnonzero(starts >= 0)
    out = []
    for end in ends:
        before = content[starts[content] < end]
        if len(before) == 0 or before[-1] < first_content:
            raise InputError("texts", "presentation", "a text the tokenizer turns into tokens", f"none at {end}")
        out.append(int(before[-1]))
    return out


@torch.inference_mode()
def _run(model: LoadedModel, sequences: list[list[int]], targets: list[list[int]], rows: list[np.ndarray],
         array: np.ndarray, batch_size: int, pad: int, desc: str, progress: bool) -> None:
    """Run ``sequences`` (right-padded, in batches of similar length) and store, for each, the states at
    ``targets`` into the presentation ``rows`` of every layer."""
    base = model.model.base_model
    device = next(base.parameters()).device
    order = np.argsort([len(s) for s in sequences], kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc=desc, disable=not progress):
        longest = max(len(sequences[i]) for i in batch)
        input_ids = torch.full((len(batch), longest), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, i in enumerate(batch):
            input_ids[row, : len(sequences[i])] = torch.tensor(sequences[i])
            mask[row, : len(sequences[i])] = 1
        hidden = base(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                      output_hidden_states=True).hidden_states
        where_row = torch.as_tensor(np.concatenate([[row] * len(targets[i]) for row, i in enumerate(batch)]),
                                    device=device)
        where_token = torch.as_tensor(np.concatenate([targets[i] for i in batch]), device=device)
        presentation = np.concatenate([rows[i] for i in batch])
        for layer, states in enumerate(hidden):
            array[layer, presentation] = states[where_row, where_token].float().cpu().numpy()


def _pad_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


def _fill_causal(model: LoadedModel, texts: list[str], groups: list[np.ndarray], array: np.ndarray,
                 batch_size: int, length: int, progress: bool) -> None:
    tokenizer = model.tokenizer
    lead, trail = _special_counts(tokenizer)
    room = length - lead - trail  # content tokens a window may hold, as left truncation leaves them
    if room < 1:
        raise ConfigError(f"activations: max_length: {length} leaves no room for text after {lead + trail} "
                          f"special tokens")
    sequences, targets, rows = [], [], []
    windows: dict[int, tuple[list, list, list]] = {}
    for indices in groups:
        parts = [texts[i] for i in indices]
        joined = " ".join(parts)
        ends = np.cumsum([len(p) for p in parts]) + np.arange(len(parts))  # the joining spaces
        encoded = tokenizer(joined, add_special_tokens=True, return_offsets_mapping=True)
        ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
        last = _last_tokens(offsets, ends.tolist(), lead)
        # Presentation p's own tokenisation would hold the tokens up to last[p] and the trailing specials.
        fits = [p for p, t in enumerate(last) if t + 1 + trail <= length]
        if fits:
            sequences.append(ids[: last[fits[-1]] + 1])
            targets.append([last[p] for p in fits])
            rows.append(indices[fits])
        for p, t in enumerate(last):
            if t + 1 + trail <= length:
                continue
            # Brain-Score's left truncation: the leading specials, then the most recent ``room`` tokens.
            window = ids[:lead] + ids[t + 1 - room: t + 1]
            seqs, tgts, rws = windows.setdefault(len(window), ([], [], []))
            seqs.append(window)
            tgts.append([len(window) - 1])
            rws.append(indices[[p]])
    n_windows = sum(len(v[0]) for v in windows.values())
    if n_windows:
        log.info("%s: %d presentations exceed %d tokens of context; each gets its own window", model.name,
                 n_windows, length)
    for seqs, tgts, rws in windows.values():
        sequences += seqs
        targets += tgts
        rows += rws
    _run(model, sequences, targets, rows, array, batch_size, _pad_id(tokenizer), f"activations ({model.name})",
         progress)


def _fill_bidirectional(model: LoadedModel, texts: list[str], groups: list[np.ndarray], array: np.ndarray,
                        batch_size: int, length: int, progress: bool) -> None:
    tokenizer = model.tokenizer
    tokenizer.truncation_side = "left"  # Brain-Score's: a long context loses its start, never the presentation
    lead, _ = _special_counts(tokenizer)
    sequences, targets, rows = [], [], []
    for indices in groups:
        parts = [texts[i] for i in indices]
        for p in range(len(parts)):
            prefix = " ".join(parts[: p + 1])
            encoded = tokenizer(prefix, truncation=True, max_length=length, return_offsets_mapping=True)
            last = _last_tokens(encoded["offset_mapping"], [len(prefix)], lead)
            sequences.append(encoded["input_ids"])
            targets.append(last)
            rows.append(indices[[p]])
    _run(model, sequences, targets, rows, array, batch_size, _pad_id(tokenizer), f"activations ({model.name})",
         progress)
