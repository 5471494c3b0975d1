"""Every layer's word features from one pass, against a slow reference: one window per word, one pass per layer."""

import numpy as np
import pytest
import torch

from brainalign.errors import ConfigError
from brainalign.features.encoders import Encoder, load_encoder
from brainalign.features.layers import (
    extract_features,
    is_causal,
    load_feature_model,
    parse_feature_model,
    random_embedding,
)

WORDS = "When the rain stopped , the old man walked slowly back to the harbour and counted the boats".split()


def tiny(kind: str) -> Encoder:
    """A small untrained model of each family, with the packaged MiniLM's tokenizer."""
    from transformers import AutoModel, BertConfig, GPT2Config, LlamaConfig

    configs = {
        "bert": BertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64),
        "gpt2": GPT2Config(n_embd=32, n_layer=3, n_head=2, vocab_size=30522),
        "llama": LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                             num_key_value_heads=1, vocab_size=30522),
    }
    torch.manual_seed(0)
    model = AutoModel.from_config(configs[kind]).eval()
    return Encoder(name=kind, tokenizer=load_encoder("minilm").tokenizer, model=model)


def reference(encoder: Encoder, words, context, layer, pooling="last"):
    """Word by word: the window's text alone in a batch of one, the last real token's state at ``layer``."""
    out = []
    for i in range(len(words)):
        text = " ".join(words[max(0, i - context): i + 1])
        tokens = encoder.tokenizer(text, return_tensors="pt", return_offsets_mapping=True)
        offsets = tokens.pop("offset_mapping")[0]
        real = [j for j, (a, b) in enumerate(offsets.tolist()) if b > a]
        with torch.no_grad():
            # Token types are BERT's; GPT-2 would add them as word embeddings, so only ids go in.
            hidden = encoder.model(input_ids=tokens["input_ids"], output_hidden_states=True).hidden_states[layer][0]
        out.append(hidden[0 if pooling == "cls" else real[-1]].numpy())
    return np.stack(out)


@pytest.mark.parametrize("kind", ["bert", "gpt2", "llama"])
def test_batched_one_pass_features_equal_word_by_word_reference(kind):
    encoder = tiny(kind)
    features = extract_features(encoder, WORDS, context=4, batch_size=5, progress=False)
    assert features.shape == (4, len(WORDS), 32)
    for layer in (0, 2, 3):
        np.testing.assert_allclose(features[layer], reference(encoder, WORDS, 4, layer), atol=2e-5)


def test_cls_pooling_reads_the_window_first_token_and_is_refused_for_causal_models(tmp_path):
    encoder = tiny("bert")
    features = extract_features(encoder, WORDS, context=3, pooling="cls", progress=False, out=tmp_path / "f.npy")
    np.testing.assert_allclose(features[3], reference(encoder, WORDS, 3, 3, pooling="cls"), atol=2e-5)
    assert isinstance(np.load(tmp_path / "f.npy", mmap_mode="r"), np.memmap)
    with pytest.raises(ConfigError, match="causal"):
        extract_features(tiny("gpt2"), WORDS, pooling="cls", progress=False)


def test_a_word_sees_only_its_context_in_a_causal_model():
    # Changing a word far before a word's window leaves its features; changing one inside changes them.
    encoder = tiny("gpt2")
    changed = list(WORDS)
    changed[0] = "Yesterday"
    a = extract_features(encoder, WORDS, context=4, progress=False)
    b = extract_features(encoder, changed, context=4, progress=False)
    np.testing.assert_allclose(a[:, 5:], b[:, 5:], atol=1e-5)
    assert np.abs(a[:, 1:5] - b[:, 1:5]).max() > 1e-3
    assert is_causal(encoder.model.config) and not is_causal(tiny("bert").model.config)


def test_random_embedding_is_one_fixed_vector_per_word_type():
    e = random_embedding(["the", "cat", "The", "dog"], 8, seed=0)
    np.testing.assert_array_equal(e[0], e[2])
    assert not np.allclose(e[0], e[1])
    np.testing.assert_array_equal(random_embedding(["cat"], 8, seed=0)[0], e[1])  # independent of the text
    features = extract_features(load_feature_model("random-8"), ["the", "cat"], progress=False)
    assert features.shape == (1, 2, 8)


def test_model_names_parse_with_clear_errors():
    assert parse_feature_model("gpt2-untrained").untrained
    assert parse_feature_model("random-384").random_width == 384
    assert parse_feature_model("minilm").base == "minilm"
    with pytest.raises(ConfigError, match="gpt2-untrained"):
        parse_feature_model("gpt2")
