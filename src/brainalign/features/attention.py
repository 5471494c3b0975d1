"""Attention from ``[CLS]`` to ``[CLS]`` and to ``[SEP]``, per layer and head (paper Figure 4).

The seed paper compares a vanilla encoder with a brain-fine-tuned one by how much ``[CLS]`` attends to
itself and to the final ``[SEP]`` in each layer, averaged over heads, with the mean and standard error
over presentations (windows), heads and initialisations (reference section 4). The fine-tuned model
attends less to ``[SEP]`` in layers 8-9.

Attention weights are only returned by the *eager* attention implementation (SDPA and flash kernels never
form the matrix), so :func:`cls_attention` switches the encoder to eager for the pass and restores it.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from brainalign.errors import InputError
from brainalign.stimuli.tokens import TokenizedWindows, length_batches

TARGET_COLUMNS = ("cls", "sep")


def _module(encoder) -> torch.nn.Module:
    """The transformer of an :class:`~brainalign.features.encoders.Encoder`, or the module itself."""
    return encoder.model if hasattr(encoder, "model") and isinstance(encoder.model, torch.nn.Module) else encoder


def _set_attention_implementation(model: torch.nn.Module, name: str) -> None:
    # transformers >= 4.48 switches through set_attn_implementation (and its sub-configs); older
    # versions read the private config field at every forward pass.
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(name)
    else:
        model.config._attn_implementation = name


@contextmanager
def eager_attention(model: torch.nn.Module, device: str | torch.device = "cpu") -> Iterator[torch.nn.Module]:
    """``model`` in evaluation mode on ``device`` with eager attention (the only implementation that returns
    attention weights: SDPA returns none); its implementation, device and train/eval modes are restored after."""
    modes = {module: module.training for module in model.modules()}
    implementation = getattr(model.config, "_attn_implementation", None)
    original_device = next(model.parameters()).device
    try:
        if implementation != "eager":
            _set_attention_implementation(model, "eager")
        model.eval()
        model.to(device)
        yield model
    finally:
        model.to(original_device)
        if implementation is not None and getattr(model.config, "_attn_implementation", None) != implementation:
            _set_attention_implementation(model, implementation)
        for module, training in modes.items():
            module.train(training)


def _attention_maps(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Every layer's attention, each (batch, heads, query, key), for a batch of padded windows.

    ``model`` must already use the eager implementation (see :func:`cls_attention`).
    """
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_attentions=True)
    attentions = out.attentions
    n_layers = int(model.config.num_hidden_layers)
    if attentions is None or len(attentions) != n_layers:
        raise RuntimeError(f"the encoder returned {0 if attentions is None else len(attentions)} attention maps "
                           f"for {n_layers} layers: it does not support output_attentions with eager attention")
    return attentions


def cls_attention(encoder, tokens: TokenizedWindows, rows: np.ndarray | None = None, batch_size: int = 64,
                  device: str = "cpu") -> np.ndarray:
    """Attention from ``[CLS]`` to ``[CLS]`` and to the final ``[SEP]``, per layer, head and window.

    Parameters
    ----------
    encoder : Encoder or transformers model
        A BERT-family encoder (a :class:`~brainalign.features.encoders.Encoder` or its ``model``).
    tokens : TokenizedWindows
        Windows tokenised as ``[CLS] pieces [SEP]`` (either ``kind``: the query is always ``[CLS]``).
    rows : array of int, optional
        Windows to read (all by default), in the order of the result.
    batch_size : int
        Windows per forward pass (grouped by length, so padding stays small).
    device : str
        Where the pass runs; the encoder is moved there and back.

    Returns
    -------
    ndarray of shape (n_layers, n_heads, n_rows, 2), float32
        ``[..., 0]``: weight of ``[CLS]`` on ``[CLS]`` (position 0); ``[..., 1]``: weight of ``[CLS]`` on
        ``[SEP]`` (the window's last non-padding position). Layer ``0`` is the first transformer layer.

    Notes
    -----
    The encoder runs in evaluation mode without gradients, with the eager attention implementation; its
    attention implementation, every module's training flag and its device are restored afterwards.

    Examples
    --------
    >>> weights = cls_attention(load_encoder("minilm"), tokens)     # doctest: +SKIP
    >>> weights[..., 1].mean(axis=(1, 2))                            # [CLS] -> [SEP] per layer  # doctest: +SKIP
    """
    model = _module(encoder)
    rows = np.arange(len(tokens)) if rows is None else np.asarray(rows, dtype=np.int64)
    n_layers, n_heads = int(model.config.num_hidden_layers), int(model.config.num_attention_heads)
    out = np.zeros((n_layers, n_heads, len(rows), 2), dtype=np.float32)
    if not len(rows):
        return out
    lengths = tokens.lengths[rows]
    if lengths.min() < 2:
        raise InputError("<tokens>", "lengths", "windows of at least [CLS] and [SEP] (2 pieces)",
                         f"a window of {int(lengths.min())}")
    with eager_attention(model, device), torch.no_grad():
        for index in length_batches(lengths, batch_size):
            batch = tokens.batch(rows[index])
            batch = {k: batch[k].to(device) for k in ("input_ids", "attention_mask")}
            sep = torch.as_tensor(lengths[index] - 1, device=device)
            span = torch.arange(len(index), device=device)
            for layer, weights in enumerate(_attention_maps(model, batch)):
                from_cls = weights[:, :, 0, :].float()  # (batch, heads, key)
                pair = torch.stack([from_cls[:, :, 0], from_cls[span, :, sep]], dim=-1)  # (batch, heads, 2)
                out[layer][:, index] = pair.permute(1, 0, 2).cpu().numpy()
    return out


def attention_summary(per_seed: dict[int, np.ndarray]) -> pd.DataFrame:
    """Mean and standard error of ``[CLS]`` attention per layer and target, over presentations, heads and seeds.

    Parameters
    ----------
    per_seed : dict of int to ndarray of shape (n_layers, n_heads, n_rows, 2)
        :func:`cls_attention` of each initialisation's encoder (seeds may read different numbers of windows).

    Returns
    -------
    DataFrame
        One row per layer and target: ``layer`` (1 = first transformer layer), ``target`` (``"cls"`` or
        ``"sep"``), ``mean``, ``se``, ``n`` (values pooled) and ``n_seeds``.

    Notes
    -----
    For each layer and target, all ``n = sum over seeds of n_heads * n_rows`` values (every presentation x
    head x seed) are pooled as one sample: ``mean`` is their mean and ``se = std(values, ddof=1) / sqrt(n)``
    (NaN when ``n == 1``). Heads and seeds are not averaged first, so a seed that read more windows weighs
    more.
    """
    if not per_seed:
        raise InputError("<attention>", "per_seed", "at least one seed", "none")
    shapes = {seed: np.shape(a) for seed, a in per_seed.items()}
    first = next(iter(shapes.values()))
    for seed, shape in shapes.items():
        if len(shape) != 4 or shape[3] != 2 or shape[:2] != first[:2]:
            raise InputError("<attention>", f"seed {seed}", f"shape (n_layers, n_heads, n_rows, 2) = "
                             f"({first[0]}, {first[1]}, n_rows, 2) for every seed", f"{shape}")
    n_layers = first[0]
    pooled = [np.concatenate([np.asarray(a, dtype=np.float64)[layer].reshape(-1, 2) for a in per_seed.values()])
              for layer in range(n_layers)]
    records = []
    for layer, values in enumerate(pooled):
        n = len(values)
        for column, target in enumerate(TARGET_COLUMNS):
            v = values[:, column]
            se = float(v.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
            records.append({"layer": layer + 1, "target": target, "mean": float(v.mean()) if n else float("nan"),
                            "se": se, "n": n, "n_seeds": len(per_seed)})
    return pd.DataFrame(records)


def encoder_from_weights(path: str | os.PathLike, base_encoder):
    """A copy of ``base_encoder`` carrying the fine-tuned encoder weights saved in ``path``.

    Parameters
    ----------
    path : path
        A safetensors file with the encoder under ``encoder.*`` keys (a task's ``weights.safetensors``,
        or an exported ``checkpoints/<label>.safetensors``); other keys (heads) are ignored. Read with
        safetensors only: nothing is unpickled.
    base_encoder : Encoder or transformers model
        The architecture the weights were trained from (the task's base encoder); left unchanged.

    Returns
    -------
    The same type as ``base_encoder`` (an :class:`~brainalign.features.encoders.Encoder` with a copied model, or
    the copied model), in evaluation mode.

    Raises
    ------
    InputError
        The file is missing or not safetensors, or its ``encoder.*`` keys do not match the base encoder's
        parameters (names the missing, unexpected and mis-shaped keys).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise InputError(path, "file", "a safetensors file with encoder.* weights", "no such file")
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(path, "file", "a safetensors file", f"unreadable ({exc})") from exc
    prefix = "encoder."
    state = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    if not state:
        raise InputError(path, "encoder.*", "the fine-tuned encoder's weights under encoder.* keys (a model "
                         "whose encoder was frozen saves only its heads: use its base encoder)",
                         f"no such key among {len(weights)} ({', '.join(sorted(weights)[:5])}...)")
    model = copy.deepcopy(_module(base_encoder))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
                    for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or shapes:
        found = []
        for what, keys in (("missing", [prefix + k for k in missing]), ("unexpected", [prefix + k for k in unexpected]),
                           ("mis-shaped", [prefix + k for k in shapes])):
            if keys:
                found.append(f"{len(keys)} {what}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}")
        raise InputError(path, "encoder.*", f"the {len(expected)} parameters of the base encoder "
                         f"({type(model).__name__}, {model.config.num_hidden_layers} layers)", "; ".join(found))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
    model.eval()
    if dataclasses.is_dataclass(base_encoder):
        return dataclasses.replace(base_encoder, model=model)
    return model
