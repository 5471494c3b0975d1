"""[CLS] attention (paper Figure 4): the weights against a hand computation, their summary, loading weights.

The encoder is a two-layer, 32-wide untrained BERT (``experiments.tiny_encoder``) whose first layer's
query and key are scaled up, so attention is far from uniform and a wrong position would show.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from brainalign.features.attention import _attention_maps, attention_summary, cls_attention, encoder_from_weights
from brainalign.features.encoders import load_encoder
from brainalign.errors import InputError
from brainalign.stimuli.tokens import tokenize_windows
from experiments import tiny_encoder

TEXTS = ["the boy looked at the owl", "Harry ran", "a letter came for him from nobody at all that morning"]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    encoder = load_encoder(str(tiny_encoder(tmp_path_factory.mktemp("tiny") / "bert", hidden=32, layers=2)))
    with torch.no_grad():
        layer = encoder.model.encoder.layer[0].attention.self
        layer.query.weight.mul_(30.0)
        layer.key.weight.mul_(30.0)
    return encoder


@pytest.fixture(scope="module")
def tokens(encoder):
    return tokenize_windows(encoder.tokenizer, TEXTS, "cls")


def hand_attention(model, ids: np.ndarray) -> torch.Tensor:
    """Layer 0: softmax(Q K^T / sqrt(d) + mask) from the embeddings' output, one unpadded window: (heads, q, k)."""
    config = model.config
    heads, d = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    with torch.no_grad():
        x = model.embeddings(input_ids=torch.as_tensor(ids, dtype=torch.long)[None])[0]  # (seq, hidden)
        layer = model.encoder.layer[0].attention.self
        q = (x @ layer.query.weight.T + layer.query.bias).reshape(len(ids), heads, d).transpose(0, 1)
        k = (x @ layer.key.weight.T + layer.key.bias).reshape(len(ids), heads, d).transpose(0, 1)
        mask = torch.zeros(len(ids))  # every position is a real token: the additive mask is 0
        return torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d) + mask, dim=-1)


def test_layer0_attention_equals_hand_computation(encoder, tokens):
    # All three windows in one padded batch: the short one (row 1) is padded to the longest.
    weights = cls_attention(encoder, tokens, rows=np.array([0, 1, 2]), batch_size=8)
    assert weights.shape == (2, 2, 3, 2) and weights.dtype == np.float32
    for row in range(3):
        ids = tokens.ids[tokens.offsets[row]:tokens.offsets[row + 1]]
        expected = hand_attention(encoder.model, ids)  # (heads, q, k)
        np.testing.assert_allclose(weights[0, :, row, 0], expected[:, 0, 0].numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(weights[0, :, row, 1], expected[:, 0, -1].numpy(), rtol=1e-4, atol=1e-6)
    assert not np.allclose(weights[0, :, :, 0], weights[0, :, :, 1])  # far from uniform: the test can fail


def test_rows_and_batches_do_not_change_the_weights(encoder, tokens):
    together = cls_attention(encoder, tokens, batch_size=8)
    one_by_one = cls_attention(encoder, tokens, batch_size=1)
    np.testing.assert_allclose(together, one_by_one, rtol=1e-5, atol=1e-7)
    reordered = cls_attention(encoder, tokens, rows=np.array([2, 0]))
    np.testing.assert_allclose(reordered, together[:, :, [2, 0]], rtol=1e-5, atol=1e-7)


def test_cls_rows_sum_to_one_over_real_tokens_and_ignore_padding(encoder, tokens):
    model = encoder.model
    model.set_attn_implementation("eager")
    try:
        batch = tokens.batch(np.arange(len(tokens)))
        with torch.no_grad():
            maps = _attention_maps(model, batch)
    finally:
        model.set_attn_implementation("sdpa")
    mask = batch["attention_mask"].bool()
    for weights in maps:
        from_cls = weights[:, :, 0, :]  # (batch, heads, key)
        np.testing.assert_allclose(from_cls.sum(-1).numpy(), 1.0, atol=1e-5)
        assert float(from_cls.masked_select(~mask[:, None, :].expand_as(from_cls)).abs().max()) < 1e-6
    both = cls_attention(encoder, tokens)
    assert (both >= 0).all() and (both.sum(-1) <= 1 + 1e-6).all()


def test_encoder_state_is_restored(encoder, tokens):
    model = encoder.model
    before = model.config._attn_implementation
    model.train()
    model.encoder.layer[1].eval()
    cls_attention(encoder, tokens, rows=[0])
    assert model.config._attn_implementation == before
    assert model.training and not model.encoder.layer[1].training and model.encoder.layer[0].training
    model.eval()


def test_summary_pools_presentations_heads_and_seeds():
    # 1 layer, 2 heads, seed 0 with 2 windows and seed 1 with 1 window: n = 2*2 + 2*1 = 6 values per target.
    seed0 = np.array([[[[0.1, 0.5], [0.3, 0.7]], [[0.2, 0.4], [0.4, 0.6]]]])
    seed1 = np.array([[[[0.6, 0.1]], [[0.8, 0.3]]]])
    summary = attention_summary({0: seed0, 1: seed1}).set_index("target")
    cls = np.array([0.1, 0.3, 0.2, 0.4, 0.6, 0.8])  # mean 0.4; squared deviations .09+.01+.04+0+.04+.16 = .34
    assert summary.loc["cls", "mean"] == pytest.approx(0.4)
    assert summary.loc["cls", "se"] == pytest.approx(math.sqrt(0.34 / 5) / math.sqrt(6))
    assert summary.loc["cls", "se"] == pytest.approx(cls.std(ddof=1) / math.sqrt(6))
    sep = np.array([0.5, 0.7, 0.4, 0.6, 0.1, 0.3])
    assert summary.loc["sep", "mean"] == pytest.approx(sep.mean())
    assert summary.loc["sep", "se"] == pytest.approx(sep.std(ddof=1) / math.sqrt(6))
    assert (summary["layer"] == 1).all() and (summary["n"] == 6).all() and (summary["n_seeds"] == 2).all()


def test_summary_refuses_mismatched_heads():
    with pytest.raises(InputError, match="seed 1"):
        attention_summary({0: np.zeros((2, 3, 4, 2)), 1: np.zeros((2, 2, 4, 2))})


def test_encoder_from_weights_round_trip(encoder, tokens, tmp_path):
    tuned = copy.deepcopy(encoder.model)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    state = {f"encoder.{k}": v.contiguous() for k, v in tuned.state_dict().items()}
    state["heads.fmri/1.weight"] = torch.zeros(3, 32)  # heads sit beside the encoder and are ignored
    save_file(state, str(tmp_path / "weights.safetensors"))
    loaded = encoder_from_weights(tmp_path / "weights.safetensors", encoder)
    assert loaded.tokenizer is encoder.tokenizer and loaded.model is not encoder.model
    for k, v in tuned.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[k], v, rtol=0, atol=0)
    assert not torch.equal(encoder.model.embeddings.word_embeddings.weight, tuned.embeddings.word_embeddings.weight)
    np.testing.assert_allclose(cls_attention(loaded, tokens), cls_attention(tuned, tokens), rtol=1e-6)
    assert isinstance(encoder_from_weights(tmp_path / "weights.safetensors", encoder.model), torch.nn.Module)


def test_encoder_from_weights_names_the_file_and_the_missing_key(encoder, tmp_path):
    state = {f"encoder.{k}": v.contiguous() for k, v in encoder.model.state_dict().items()}
    del state["encoder.pooler.dense.bias"]
    path = tmp_path / "partial.safetensors"
    save_file(state, str(path))
    with pytest.raises(InputError) as error:
        encoder_from_weights(path, encoder)
    assert str(path) in str(error.value) and "1 missing: encoder.pooler.dense.bias" in str(error.value)

    heads_only = tmp_path / "heads.safetensors"
    save_file({"heads.fmri/1.weight": torch.zeros(2, 2)}, str(heads_only))
    with pytest.raises(InputError, match="heads.safetensors: encoder"):
        encoder_from_weights(heads_only, encoder)
    with pytest.raises(InputError, match="no such file"):
        encoder_from_weights(tmp_path / "absent.safetensors", encoder)


def test_attention_figure_writes_png_and_csv(tmp_path):
    from brainalign.report.figures import attention_figure

    a = attention_summary({0: np.full((3, 2, 4, 2), 0.2)})
    b = attention_summary({0: np.full((3, 2, 4, 2), 0.1), 1: np.full((3, 2, 4, 2), 0.3)})
    table = attention_figure(a, b, tmp_path / "attention.png")
    assert (tmp_path / "attention.png").stat().st_size > 0
    written = pd.read_csv(tmp_path / "attention.csv")
    assert len(written) == len(table) == 12 and set(written["model"]) == {"vanilla", "fine-tuned"}
