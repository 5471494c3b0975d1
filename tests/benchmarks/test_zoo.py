"""The model zoo: entries, pairs, labels; SmolLM2 converted once from its GGUF and cached; untrained models that
hold exactly the encoding stages' weights; local models by path."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import torch

from brainalign.benchmarks.zoo import ZOO, load_zoo_model, zoo_model
from brainalign.errors import ConfigError
from brainalign.features import encoders
from brainalign.features.encoders import load_encoder, smollm2_directory, weight_files


def test_registered_entries_pair_up_and_say_what_they_are():
    assert {"minilm", "minilm-untrained", "smollm2", "smollm2-untrained", "gpt2-untrained", "bert-base-untrained",
            "glove-50"} <= set(ZOO.names())
    for name in ZOO.names():
        entry = zoo_model(name)
        if entry.pair is not None:
            assert zoo_model(entry.pair).pair == name and zoo_model(entry.pair).trained != entry.trained
    assert zoo_model("smollm2").label == "SmolLM2-135M-Instruct (instruction-tuned, Q4_1 quantised)"
    assert "quantised" in zoo_model("smollm2").caveat and "instruction-tuned" in encoders.named_encoder(
        "smollm2").description
    assert "WordPiece" in zoo_model("gpt2-untrained").label and "WordPiece" in zoo_model("bert-base-untrained").label
    random = zoo_model("random-50")
    assert (random.family, random.width, random.trained, random.pair) == ("random", 50, False, "glove-50")
    with pytest.raises(ConfigError, match="gpt2-untrained"):
        zoo_model("gpt2")  # an architecture without weights offline
    with pytest.raises(ConfigError, match="expected one of"):
        zoo_model("no/such/model")


def test_smollm2_loads_from_its_cache_with_the_published_shape():
    smollm2_directory()  # converts on a fresh checkout (~25 s), once
    started = time.perf_counter()
    model = load_zoo_model("smollm2")
    seconds = time.perf_counter() - started
    assert (model.n_layers, model.width, model.family, model.has_lm_head) == (30, 576, "causal", True)
    assert seconds < 10, f"a cached load took {seconds:.1f} s"
    config = json.loads((smollm2_directory() / "config.json").read_text())
    assert "quantization_config" not in config and config["vocab_size"] == 49152  # SmolLM2's config
    # The reference's measurement: mean token loss 4.1-4.8 on real sentences, 8.2-9.2 on their words shuffled.
    sentence = "The old man walked slowly back to the harbour and counted the boats that had come home."
    words = sentence.split()
    shuffled = " ".join(np.random.default_rng(0).permutation(words))
    losses = []
    for text in (sentence, shuffled):
        ids = torch.tensor([[model.tokenizer.bos_token_id] + model.tokenizer(text)["input_ids"]])
        with torch.no_grad():
            losses.append(float(model.model(input_ids=ids, labels=ids).loss))
    assert losses[0] < 5.5 and losses[1] > 7.0, losses
    # Its untrained twin: the same shape and tokenizer, fresh weights.
    twin = load_zoo_model("smollm2-untrained", seed=0)
    assert (twin.n_layers, twin.width) == (30, 576) and twin.tokenizer.vocab_size == model.tokenizer.vocab_size
    name = "model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(twin.model.state_dict()[name], model.model.state_dict()[name])


def test_task_keys_follow_the_files_that_decide_smollm2():
    names = {p.name for p in weight_files("smollm2", tokenizer=True)}
    assert {"config.json", "model.safetensors", "source.json", "tokenizer.json"} <= names
    assert {p.name for p in weight_files("smollm2", untrained=True)} == {"config.json"}
    recorded = json.loads((smollm2_directory() / "source.json").read_text())
    assert recorded["name"] == "SmolLM2-135M-Instruct.Q4_1.gguf" and recorded["size"] == 98362432
    assert {p.name for p in weight_files("glove-50")} == {"glove_6B_50d_emb.npy", "glove_6B_index.parquet"}


def test_a_changed_gguf_is_converted_again(tmp_path, monkeypatch):
    # A stand-in GGUF and conversion: what is checked is when the cache counts as current.
    source = tmp_path / "package" / "model.gguf"
    source.parent.mkdir()
    source.write_bytes(b"version one")
    converted = []

    def fake_convert(path, directory):
        converted.append(path.read_bytes())
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text("{}")
        (directory / "model.safetensors").write_bytes(b"")
        (directory / "source.json").write_text(json.dumps(encoders.file_fingerprint(path)))
        return directory

    monkeypatch.setenv("BRAINALIGN_MODEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(encoders, "smollm2_gguf", lambda: source)
    monkeypatch.setattr(encoders, "convert_gguf", fake_convert)
    directory = encoders.smollm2_directory()
    assert directory == tmp_path / "cache" / "smollm2-135m-instruct"
    encoders.smollm2_directory()
    assert converted == [b"version one"]  # cached
    os.utime(source, ns=(1, 1))  # reinstalled, same bytes: the MD5 says it is current
    encoders.smollm2_directory()
    assert len(converted) == 1
    source.write_bytes(b"version two")  # same size, new bytes
    encoders.smollm2_directory()
    source.write_bytes(b"a longer third version")
    encoders.smollm2_directory()
    assert converted == [b"version one", b"version two", b"a longer third version"]


def test_untrained_models_hold_the_encoding_stages_weights_plus_a_head(tmp_path):
    from transformers import GPT2Config

    folder = tmp_path / "tiny-gpt2"
    GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=30522).save_pretrained(folder)
    load_encoder("minilm").tokenizer.save_pretrained(folder)
    zoo = load_zoo_model(f"{folder}-untrained", seed=5)
    stage = load_encoder(str(folder), untrained=True, seed=5)
    assert (zoo.family, zoo.entry.trained) == ("causal", False)
    for key, value in stage.model.state_dict().items():
        assert torch.equal(zoo.model.base_model.state_dict()[key], value), key
    assert zoo.has_lm_head
    ids = torch.tensor([[101, 2054, 2003, 102]])
    with torch.no_grad():
        hidden = zoo.model(input_ids=ids, output_hidden_states=True).hidden_states[-1]
        np.testing.assert_allclose(hidden.numpy(), stage.model(input_ids=ids).last_hidden_state.numpy(), atol=1e-6)
    again = load_zoo_model(f"{folder}-untrained", seed=5)
    assert torch.equal(again.model.lm_head.weight, zoo.model.lm_head.weight)


def test_minilm_has_no_masked_head_and_glove_is_one_lookup_layer():
    minilm = load_zoo_model("minilm")
    assert (minilm.family, minilm.n_layers, minilm.width, minilm.has_lm_head) == ("masked", 6, 384, False)
    glove = load_zoo_model("glove-50")
    assert (glove.n_layers, glove.width, glove.is_lookup) == (0, 50, True)
