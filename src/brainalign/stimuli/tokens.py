"""Word windows tokenised once per dataset, and batches of similar length.

Every model reads the same windows many times (every epoch of every participant, fold and seed), so
the ``encode`` stage tokenises each distinct window once and stores the pieces here; training and
feature extraction only gather and pad them.

A window's *target* is the token the head reads: ``[CLS]`` (position 0) for fMRI, the first piece of
the window's last word for MEG, whose length and unigram log-probability ride along as ``properties``
(reference section 2). A window too long for ``max_length`` loses words from its start, never the last.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from brainalign.errors import InputError
from brainalign.stimuli.lexicon import DUMMY_LENGTH, DUMMY_LOG_PROBABILITY, word_properties

TARGETS = ("cls", "last_word")


@dataclass
class TokenizedWindows:
    """The word pieces of ``n`` windows, stored flat.

    Attributes
    ----------
    texts : ndarray of str, shape (n,)
    ids : ndarray of int32
        All windows' piece ids, with ``[CLS]`` and ``[SEP]``, one after the other.
    offsets : ndarray of int64, shape (n + 1,)
        Window ``i`` is ``ids[offsets[i]:offsets[i + 1]]``.
    target : ndarray of int64, shape (n,)
        Position of the token the head reads.
    properties : ndarray of float32, shape (n, 2)
        Length and log-probability of the last word (MEG); the dummies 0 and -20 for ``[CLS]`` targets.
    kind : str
        ``"cls"`` or ``"last_word"``.
    pad_id : int
        The tokenizer's padding id.
    """

    texts: np.ndarray
    ids: np.ndarray
    offsets: np.ndarray
    target: np.ndarray
    properties: np.ndarray
    kind: str
    pad_id: int = 0

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def batch(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """Windows ``rows`` padded to their longest: ``input_ids``, ``attention_mask``, ``target``, ``properties``."""
        rows = np.asarray(rows)
        lengths = self.lengths[rows]
        width = int(lengths.max())
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, (row, length) in enumerate(zip(rows, lengths)):
            ids[i, :length] = self.ids[self.offsets[row]:self.offsets[row + 1]]
            mask[i, :length] = 1
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
                "target": torch.from_numpy(self.target[rows].astype(np.int64)),
                "properties": torch.from_numpy(self.properties[rows])}

    def save(self, path: str | os.PathLike) -> None:
        np.savez(path, texts=self.texts.astype(str), ids=self.ids, offsets=self.offsets, target=self.target,
                 properties=self.properties, kind=np.array(self.kind), pad_id=np.array(self.pad_id))


def read_tokens(path: str | os.PathLike) -> TokenizedWindows:
    """Read windows written by :meth:`TokenizedWindows.save` (plain arrays only: nothing is unpickled)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "tokens.npz", "the tokenised windows the encode stage writes", "no such file")
    with np.load(path, allow_pickle=False) as data:
        tokens = TokenizedWindows(texts=data["texts"], ids=data["ids"], offsets=data["offsets"],
                                  target=data["target"], properties=data["properties"], kind=str(data["kind"]),
                                  pad_id=int(data["pad_id"]))
    if len(tokens.offsets) != len(tokens.texts) + 1 or tokens.offsets[-1] != len(tokens.ids):
        raise InputError(path, "offsets", f"{len(tokens.texts) + 1} offsets ending at {len(tokens.ids)}",
                         f"{len(tokens.offsets)} ending at {tokens.offsets[-1] if len(tokens.offsets) else None}")
    return tokens


def tokenize_windows(tokenizer, texts: list[str], kind: str = "cls", max_length: int = 128) -> TokenizedWindows:
    """Tokenise each window (split on white space) into ``[CLS] pieces [SEP]``, at most ``max_length`` long.

    Each word is cut into pieces on its own (``is_split_into_words``), so dropping a window's first
    words drops exactly their pieces: a long window keeps its longest suffix of whole words that fits.
    """
    if kind not in TARGETS:
        raise ValueError(f"kind: expected one of {TARGETS}, found {kind!r}")
    words = [t.split() for t in texts]
    if any(not w for w in words):
        raise InputError("<windows>", "text", "at least one word per window", "an empty window")
    encoded = tokenizer(words, is_split_into_words=True, add_special_tokens=False)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    pieces, target = [], np.zeros(len(texts), dtype=np.int64)
    for i, ids in enumerate(encoded["input_ids"]):
        word_ids = np.array([-1 if w is None else w for w in encoded.word_ids(i)])
        ids = np.asarray(ids, dtype=np.int32)
        if len(ids) > max_length - 2:
            # Keep whole words: start at the first piece of the earliest word that still fits.
            starts = np.flatnonzero(np.r_[True, word_ids[1:] != word_ids[:-1]])
            fitting = starts[starts >= len(ids) - (max_length - 2)]
            if not len(fitting):
                raise InputError("<windows>", "text", f"a last word of at most {max_length - 2} pieces "
                                 f"(max_length {max_length})", f"{texts[i].split()[-1]!r} in window {i}")
            first = fitting[0]
            ids, word_ids = ids[first:], word_ids[first:]
        if kind == "last_word":
            # A word the tokenizer drops entirely has no piece: the last word that has one stands in.
            last = word_ids.max() if len(word_ids) else -1
            target[i] = 1 + int(np.flatnonzero(word_ids == last)[0]) if last >= 0 else 0
        pieces.append(np.concatenate([[cls], ids, [sep]]).astype(np.int32))
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    if kind == "last_word":
        properties = word_properties([w[-1] for w in words])
    else:
        properties = np.tile(np.array([DUMMY_LENGTH, DUMMY_LOG_PROBABILITY], dtype=np.float32), (len(texts), 1))
    return TokenizedWindows(texts=np.array(texts, dtype=str), ids=np.concatenate(pieces) if pieces else
                            np.zeros(0, np.int32), offsets=np.r_[0, np.cumsum(lengths)].astype(np.int64),
                            target=target, properties=properties.astype(np.float32), kind=kind,
                            pad_id=int(tokenizer.pad_token_id or 0))


def length_batches(lengths: np.ndarray, batch_size: int, generator: torch.Generator | None = None,
                   pool: int = 50) -> list[np.ndarray]:
    """Indices in batches of similar length, so padding stays small.

    Without ``generator``: sorted by length (inference). With it (training): a random permutation is
    cut into pools of ``pool`` batches, each pool is sorted by length and cut into batches, and the
    batches are shuffled, so every epoch sees a new order and still pads little.
    """
    lengths = np.asarray(lengths)
    if generator is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    permutation = torch.randperm(len(lengths), generator=generator).numpy()
    batches = []
    step = batch_size * pool
    for start in range(0, len(permutation), step):
        chunk = permutation[start:start + step]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    order = torch.randperm(len(batches), generator=generator).numpy()
    return [batches[i] for i in order]
