"""Presentation activations against a slow reference: each presentation's context run alone, as Brain-Score does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from brainalign.benchmarks.activations import presentation_activations
from experiments import smollm2_tokenizer, tiny_zoo_model

from brainalign.benchmarks.zoo import LoadedModel, load_zoo_model
from brainalign.errors import InputError
from brainalign.features.encoders import load_encoder, load_static, named_static

# Three passages whose sentences arrive interleaved, as a benchmark's stimulus table may list them.
TEXTS = ["When the rain stopped, the old man walked back.", "A dog barked twice.", "He counted the boats.",
         "Nobody answered.", "The harbour was quiet again at last.", "Then it rained.", "The cat slept."]
GROUPS = ["p1", "p2", "p1", "p2", "p1", "p2", "p3"]


def wordpiece():
    return load_encoder("minilm").tokenizer


def tiny(kind: str, tokenizer) -> LoadedModel:
    return tiny_zoo_model(kind, tokenizer, layers=3, seed=0)


def reference(model: LoadedModel, texts, groups, max_length):
    """Presentation by presentation: the group so far joined by spaces, tokenised with left truncation, run
    alone; the state of the last token before the tokenizer's trailing special tokens."""
    tokenizer = model.tokenizer
    tokenizer.truncation_side = "left"
    special = set(tokenizer.all_special_ids)
    out = np.zeros((model.n_layers + 1, len(texts), model.width), dtype=np.float32)
    for i in range(len(texts)):
        context = " ".join(t for t, g in zip(texts[: i + 1], groups[: i + 1]) if g == groups[i])
        ids = tokenizer(context, truncation=True, max_length=max_length)["input_ids"]
        last = len(ids) - 1
        while ids[last] in special:
            last -= 1
        with torch.no_grad():
            hidden = model.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
        for layer, states in enumerate(hidden):
            out[layer, i] = states[0, last].numpy()
    return out


@pytest.mark.parametrize("kind, max_length", [("gpt2", 512), ("gpt2", 12), ("llama", 512), ("llama", 9),
                                              ("bert", 512), ("bert", 10)])
def test_one_pass_per_group_equals_each_context_run_alone_with_wordpiece(kind, max_length):
    # A short max_length forces later presentations past the limit: their context is cut from the left.
    model = tiny(kind, wordpiece())
    got = presentation_activations(model, TEXTS, GROUPS, batch_size=2, max_length=max_length, progress=False)
    assert got.shape == (4, len(TEXTS), 32) and got.dtype == np.float32
    np.testing.assert_allclose(got, reference(model, TEXTS, GROUPS, max_length), atol=3e-5)


@pytest.mark.parametrize("max_length", [1000, 7])
def test_one_pass_equals_reference_with_smollm2_byte_level_tokenizer(max_length):
    model = tiny("llama", smollm2_tokenizer())
    got = presentation_activations(model, TEXTS, GROUPS, batch_size=3, max_length=max_length, progress=False)
    np.testing.assert_allclose(got, reference(model, TEXTS, GROUPS, max_length), atol=3e-5)


def test_context_is_only_the_group_so_far():
    # A causal model's state of "He counted the boats." depends on p1's first sentence, not on p2's.
    model = tiny("gpt2", wordpiece())
    a = presentation_activations(model, TEXTS, GROUPS, progress=False)
    changed = list(TEXTS)
    changed[1] = "Something else entirely happened here."
    b = presentation_activations(model, changed, GROUPS, progress=False)
    np.testing.assert_allclose(a[:, [0, 2, 4, 6]], b[:, [0, 2, 4, 6]], atol=1e-6)
    assert np.abs(a[:, 3] - b[:, 3]).max() > 1e-3
    alone = presentation_activations(model, TEXTS, [f"g{i}" for i in range(len(TEXTS))], progress=False)
    np.testing.assert_allclose(alone[:, 0], a[:, 0], atol=1e-6)  # first of its group: no context either way
    assert np.abs(alone[:, 2] - a[:, 2]).max() > 1e-3


def test_glove_presentation_is_the_mean_of_its_words_vectors(tmp_path):
    model = load_zoo_model("glove-50")
    got = presentation_activations(model, ["The cat sat .", "zzqxw Cat"], [1, 1], out=tmp_path / "a.npy",
                                   progress=False)
    assert got.shape == (1, 2, 50) and isinstance(got, np.memmap)
    named = named_static("glove-50")
    table = np.load(named.vectors)
    row = {w: i for i, w in reversed(list(enumerate(pd.read_parquet(named.index).iloc[:, 0])))}
    # The published glove.6B.50d.txt begins "the 0.418 0.24968 -0.41242 0.1217 0.34527".
    np.testing.assert_allclose(table[row["the"], :5], [0.418, 0.24968, -0.41242, 0.1217, 0.34527])
    np.testing.assert_allclose(got[0, 0], (table[row["the"]] + table[row["cat"]] + table[row["sat"]]) / 3, rtol=1e-6)
    # No context (the first presentation does not leak in); an unknown word is a zero vector in the mean.
    np.testing.assert_allclose(got[0, 1], table[row["cat"]] / 2, rtol=1e-6)
    vectors, n_oov = load_static("glove-50").lookup(["Harbour,", "zzqxw", "dog's", '"quiet"'])
    assert n_oov == 1
    np.testing.assert_array_equal(vectors[0], table[row["harbour"]])
    np.testing.assert_array_equal(vectors[2], table[row["dog"]])
    np.testing.assert_array_equal(vectors[3], table[row["quiet"]])


def test_random_embedding_presentation_is_the_mean_of_fixed_word_vectors():
    model = load_zoo_model("random-16", seed=3)
    got = presentation_activations(model, ["the cat", "The dog ,", "cat"], ["a", "a", "b"], progress=False)
    the, cat, dog = (model.word_vectors([w])[0] for w in ("the", "cat", "dog"))
    np.testing.assert_allclose(got[0], np.stack([(the + cat) / 2, (the + dog) / 2, cat]), rtol=1e-6)
    other = load_zoo_model("random-16", seed=4)
    assert not np.allclose(other.word_vectors(["cat"])[0], cat)


def test_bad_input_is_named():
    model = load_zoo_model("random-4")
    with pytest.raises(InputError, match="one group per presentation"):
        presentation_activations(model, ["a", "b"], [1], progress=False)
    with pytest.raises(InputError, match="empty string"):
        presentation_activations(model, ["a", " "], [1, 1], progress=False)
