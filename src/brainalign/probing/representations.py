"""What a probe reads: per layer, each segment's embedding and a summary of each head's attention.

One forward pass per batch of segments gives both (``output_hidden_states`` and ``output_attentions``,
with the *eager* attention implementation: SDPA and flash kernels never form the attention matrix).

For a segment of ``T`` tokens (its real tokens, ``[CLS]`` and ``[SEP]`` included for a BERT; padding
never counts) and a layer ``l = 1 .. L`` (``hidden_states[l]``, the output of the ``l``-th transformer layer):

* **embedding**: the mean of the ``T`` token states, SBERT's mean pooling over the attention mask (the
  sentence embedding of all-MiniLM-L6-v2 before its final L2 normalisation, computed at every layer).
  ``[CLS]`` and ``[SEP]`` are averaged in with the words, as SBERT does.
* **attention**: per head, :data:`ATTENTION_STATISTICS` of its ``T x T`` attention map ``A`` (rows are
  queries, each summing to 1 over the ``T`` real keys), each averaged over query tokens:

  ``cls``
      weight on the first token (``[CLS]`` in a BERT): ``mean_i A[i, 0]``;
  ``sep``
      weight on the last token (the final ``[SEP]`` in a BERT): ``mean_i A[i, T-1]``;
  ``self``
      weight on the query token itself: ``mean_i A[i, i]``;
  ``previous``
      weight on the token before: ``mean over i = 1 .. T-1 of A[i, i-1]`` (the queries that have one);
  ``next``
      weight on the token after: ``mean over i = 0 .. T-2 of A[i, i+1]`` (0 in a causal model);
  ``entropy``
      the entropy of each query's row, ``-sum_j A[i, j] log A[i, j]``, divided by ``log T`` (1 = uniform
      over the segment, 0 = all weight on one token), averaged over all ``T`` queries.

  With ``T = 1`` (a one-token segment of a model without special tokens) ``previous``, ``next`` and
  ``entropy`` are 0. The columns of ``"attention"`` run head by head: column ``h * S + s`` is statistic
  ``s`` of head ``h`` (:func:`attention_feature_names`).

Segments are batched by length and padded on the right; the summaries only ever read real tokens, so a
segment gives the same values alone or in any batch (to float32 rounding of the batched products).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from brainalign.errors import ConfigError, InputError
from brainalign.features.attention import eager_attention
from brainalign.stimuli.tokens import length_batches

ATTENTION_STATISTICS = ("cls", "sep", "self", "previous", "next", "entropy")
KINDS = ("embedding", "attention")


def attention_feature_names(n_heads: int) -> list[str]:
    """Names of the ``"attention"`` columns, ``"head<h>/<statistic>"`` with heads counted from 1."""
    return [f"head{h + 1}/{s}" for h in range(n_heads) for s in ATTENTION_STATISTICS]


def _tokenize(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    ids = tokenizer(list(texts), truncation=True, max_length=max_length, add_special_tokens=True)["input_ids"]
    empty = [i for i, row in enumerate(ids) if not len(row)]
    if empty:
        raise InputError("<segments>", "texts", "texts that give at least one token",
                         f"{len(empty)} giving none (first: row {empty[0]}, {texts[empty[0]]!r})")
    return [list(row) for row in ids]


def _head_statistics(attention: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """:data:`ATTENTION_STATISTICS` of every head of one layer: (batch, heads, S), float64.

    ``attention`` is (batch, heads, query, key), right-padded; ``mask`` (batch, position) is 1 on real tokens.
    """
    a = attention.double()
    m = mask.double()
    length = m.sum(1)  # T per segment
    span = torch.arange(a.shape[0], device=a.device)
    last = (length - 1).long()
    per_query = m[:, None, :] / length[:, None, None]  # averaging weights over real queries
    to_cls = (a[:, :, :, 0] * per_query).sum(-1)
    to_sep = (a[span, :, :, last] * per_query).sum(-1)  # advanced index first: (batch, heads, query)
    to_self = (torch.diagonal(a, dim1=-2, dim2=-1) * per_query).sum(-1)
    # A[i+1, i] and A[i, i+1] for i = 0 .. P-2: a pair counts where both positions are real tokens.
    pairs = (m[:, :-1] * m[:, 1:])[:, None, :]
    n_pairs = torch.clamp(length - 1, min=1)[:, None]
    previous = (torch.diagonal(a, offset=-1, dim1=-2, dim2=-1) * pairs).sum(-1) / n_pairs
    following = (torch.diagonal(a, offset=1, dim1=-2, dim2=-1) * pairs).sum(-1) / n_pairs
    # Padded keys carry exactly 0 weight (the additive mask underflows the softmax), and xlogy(0, 0) = 0.
    row_entropy = -(torch.xlogy(a, a) * m[:, None, None, :]).sum(-1)
    normaliser = torch.where(length > 1, torch.log(torch.clamp(length, min=2)), torch.ones_like(length))
    entropy = (row_entropy * per_query).sum(-1) / normaliser[:, None]
    entropy = torch.where(length[:, None] > 1, entropy, torch.zeros_like(entropy))
    return torch.stack([to_cls, to_sep, to_self, previous, following, entropy], dim=-1)


def segment_representations(encoder, texts: Sequence[str], batch_size: int = 64, max_length: int = 64,
                            device: str = "cpu", progress: bool = True) -> dict[str, np.ndarray]:
    """Per layer, each segment's mean-pooled embedding and its heads' attention summaries (module docstring).

    Parameters
    ----------
    encoder : Encoder
        A :class:`~brainalign.features.encoders.Encoder` (``.model`` and ``.tokenizer``), e.g.
        ``load_encoder("minilm")``.
    texts : sequence of str
        One text per segment (its words joined by spaces).
    batch_size : int
        Segments per forward pass (grouped by token count, so padding stays small).
    max_length : int
        Tokens per segment at most, special tokens included; longer segments are truncated by the tokenizer
        (which keeps the final ``[SEP]``). A TR's four words take about 6 to 12.
    device : str
        Where the pass runs; the model is moved there and back.
    progress : bool
        A tqdm bar when there are more than a few batches.

    Returns
    -------
    dict of str to ndarray, float32
        ``"embedding"``: (n_layers, n_segments, width); ``"attention"``: (n_layers, n_segments,
        n_heads * len(ATTENTION_STATISTICS)). Layer index 0 is the first transformer layer (the token
        embeddings, ``hidden_states[0]``, are not included).

    Notes
    -----
    The model runs in evaluation mode without gradients, with eager attention; its attention implementation,
    every module's training flag and its device are restored afterwards.

    Examples
    --------
    >>> reps = segment_representations(load_encoder("minilm"), ["the boy looked at", "the owl"])  # doctest: +SKIP
    >>> reps["embedding"].shape, reps["attention"].shape                                       # doctest: +SKIP
    ((6, 2, 384), (6, 2, 72))
    """
    if batch_size < 1 or max_length < 1:
        raise ConfigError(f"segment representations: batch_size and max_length must be >= 1, found "
                          f"{batch_size} and {max_length}")
    if isinstance(texts, str):
        raise InputError("<segments>", "texts", "a sequence of segment texts", "one string")
    model, tokenizer = encoder.model, encoder.tokenizer
    config = model.config
    n_layers, n_heads = int(config.num_hidden_layers), int(config.num_attention_heads)
    width = int(config.hidden_size)
    n_stats = len(ATTENTION_STATISTICS)
    embedding = np.zeros((n_layers, len(texts), width), dtype=np.float32)
    attention = np.zeros((n_layers, len(texts), n_heads * n_stats), dtype=np.float32)
    if not len(texts):
        return {"embedding": embedding, "attention": attention}
    ids = _tokenize(tokenizer, texts, max_length)
    lengths = np.array([len(row) for row in ids])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0  # masked out: any id would do
    batches = length_batches(lengths, batch_size)

    with eager_attention(model, device), torch.inference_mode():
        for index in tqdm(batches, desc="segment representations", disable=not progress or len(batches) <= 3):
            size = int(lengths[index].max())
            input_ids = torch.full((len(index), size), pad_id, dtype=torch.long)
            mask = torch.zeros((len(index), size), dtype=torch.long)
            for row, segment in enumerate(index):
                input_ids[row, :lengths[segment]] = torch.as_tensor(ids[segment])
                mask[row, :lengths[segment]] = 1
            input_ids, mask = input_ids.to(device), mask.to(device)
            out = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True,
                        output_attentions=True)
            if out.attentions is None or len(out.attentions) != n_layers:
                raise RuntimeError(f"the encoder returned {0 if out.attentions is None else len(out.attentions)}"
                                   f" attention maps for {n_layers} layers with eager attention")
            weights = mask.to(out.hidden_states[1].dtype)[:, :, None]
            count = weights.sum(1)
            for layer in range(n_layers):
                pooled = (out.hidden_states[layer + 1] * weights).sum(1) / count
                embedding[layer, index] = pooled.float().cpu().numpy()
                summary = _head_statistics(out.attentions[layer], mask)  # (batch, heads, S)
                attention[layer, index] = summary.reshape(len(index), -1).float().cpu().numpy()
    return {"embedding": embedding, "attention": attention}
