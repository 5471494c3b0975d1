"""Surprisal, next-word accuracy and (pseudo-)perplexity against slow token-by-token references, a model with
planted weights, and real WikiText-2 (SmolLM2 against its untrained architecture)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from brainalign.benchmarks.nextword import (
    next_word_accuracy,
    pseudo_log_likelihood,
    unigram_accuracy,
    wikitext_targets,
    word_surprisal,
)
from experiments import smollm2_tokenizer, tiny_zoo_model

from brainalign.benchmarks.zoo import LoadedModel, ZooModel, load_zoo_model
from brainalign.errors import ConfigError
from brainalign.features.encoders import load_encoder

REPOSITORY = Path(__file__).resolve().parents[2]
WIKITEXT = Path(os.environ.get("BRAINALIGN_SHARED_DATA", REPOSITORY / ".." / "shared" / "data")) / "wikitext-2"

STORY = ("If you were to journey to the North of England , you would come to a valley that is surrounded by moors "
         "as high as mountains").split()
OTHER = "Tulips bloomed everywhere , unbelievably .".split()


def tiny(kind: str, tokenizer) -> LoadedModel:
    return tiny_zoo_model(kind, tokenizer, layers=2, seed=1)


def slow_token_bits(model: LoadedModel, prefix: list[int], ids: list[int], begin_of=lambda t: 0) -> list[float]:
    """Token by token: the model run on prefix + the tokens before t (from ``begin_of(t)``), -log2 p(token t)."""
    out = []
    for t in range(len(ids)):
        context = prefix + ids[begin_of(t):t]
        if not context:
            out.append(float("nan"))
            continue
        with torch.no_grad():
            logits = model.model(input_ids=torch.tensor([context])).logits[0, -1].double()
        out.append(float(-torch.log_softmax(logits, -1)[ids[t]] / math.log(2)))
    return out


def word_ids(tokenizer, words):
    """Each word's ids as the tokenizer spells it inside the running text (the space before it included)."""
    pieces, previous = [], []
    for k in range(len(words)):
        ids = tokenizer(" ".join(words[: k + 1]), add_special_tokens=False)["input_ids"]
        assert ids[: len(previous)] == previous  # a word boundary never re-tokenises what came before
        pieces.append(ids[len(previous):])
        previous = ids
    return pieces


def test_smollm2_surprisal_is_the_sum_of_slow_token_by_token_surprisals_after_bos():
    tokenizer = smollm2_tokenizer()
    model = tiny("llama", tokenizer)
    pieces = word_ids(tokenizer, STORY)
    assert max(len(p) for p in pieces) > 1  # a word of several tokens: its surprisal is their sum
    flat = [t for p in pieces for t in p]
    # SmolLM2's tokenizer adds no special token, so its BOS (<|im_start|>, id 1) is prepended.
    assert tokenizer("a")["input_ids"] == tokenizer("a", add_special_tokens=False)["input_ids"]
    tokens = slow_token_bits(model, [tokenizer.bos_token_id], flat)
    expected = np.add.reduceat(tokens, np.cumsum([0] + [len(p) for p in pieces[:-1]]))
    got = word_surprisal(model, STORY + OTHER, ["s1"] * len(STORY) + ["s2"] * len(OTHER), progress=False)
    np.testing.assert_allclose(got[: len(STORY)], expected, rtol=1e-4)
    assert np.isfinite(got).all()


def test_strided_windows_keep_the_recent_context():
    # max_length 9 with the BOS: windows of 8 tokens advancing by 3; token t's context starts at its window.
    tokenizer = smollm2_tokenizer()
    model = tiny("llama", tokenizer)
    flat = [t for p in word_ids(tokenizer, STORY) for t in p]

    def begin_of(t):  # the first window scores 0..7; the k-th (k >= 1) begins at 3k and scores 3k+5 .. 3k+7
        return 0 if t < 8 else 3 * ((t - 8) // 3 + 1)

    expected = slow_token_bits(model, [tokenizer.bos_token_id], flat, begin_of)
    from brainalign.benchmarks.nextword import scan

    got = scan(model, [flat], max_length=9, stride=3, batch_size=3)[0].bits
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    full = scan(model, [flat])[0].bits
    assert np.abs(full[12:] - got[12:]).max() > 1e-3  # beyond the window, context was lost


def test_gpt2_with_wordpiece_conditions_on_cls_and_a_tokenizer_without_bos_gives_nan():
    tokenizer = load_encoder("minilm").tokenizer  # adds [CLS] first: that is the context of the first word
    model = tiny("gpt2", tokenizer)
    pieces = word_ids(tokenizer, OTHER)
    expected = np.add.reduceat(slow_token_bits(model, [tokenizer.cls_token_id], [t for p in pieces for t in p]),
                               np.cumsum([0] + [len(p) for p in pieces[:-1]]))
    np.testing.assert_allclose(word_surprisal(model, OTHER, [0] * len(OTHER), progress=False), expected, rtol=1e-4)

    class NoSpecials:  # the same tokenizer without special tokens and without BOS
        def __init__(self, inner):
            self.inner, self.bos_token_id, self.pad_token_id = inner, None, 0

        def __call__(self, text, add_special_tokens=True, **kwargs):
            return self.inner(text, add_special_tokens=False, **kwargs)

    bare = LoadedModel(model.entry, NoSpecials(tokenizer), model.model)
    got = word_surprisal(bare, OTHER, [0] * len(OTHER), progress=False)
    assert np.isnan(got[0]) and np.isfinite(got[1:]).all()
    flat = [t for p in pieces for t in p]
    rest = np.add.reduceat(slow_token_bits(model, [], flat)[len(pieces[0]):],
                           np.cumsum([0] + [len(p) for p in pieces[1:-1]]))
    np.testing.assert_allclose(got[1:], rest, rtol=1e-4)


class Successor(torch.nn.Module):
    """A planted causal model over a 10-token vocabulary: after token i it puts probability 0.9 on token
    i + 1 (mod 10), the rest spread evenly."""

    def __init__(self):
        super().__init__()
        self.config = type("Config", (), {"max_position_embeddings": 64, "hidden_size": 10,
                                          "num_hidden_layers": 0})()
        self.scale = torch.nn.Parameter(torch.zeros(1))

    def get_output_embeddings(self):
        return self.scale

    def forward(self, input_ids, attention_mask=None, **kwargs):
        p = torch.full((10, 10), 0.1 / 9)
        p[torch.arange(10), (torch.arange(10) + 1) % 10] = 0.9
        return type("Output", (), {"logits": torch.log(p)[input_ids]})()


class DigitTokenizer:
    """One token per digit word ("zero" … "nine"), no special tokens."""

    names = "zero one two three four five six seven eight nine".split()
    bos_token_id = pad_token_id = None

    def __call__(self, text, add_special_tokens=True, return_offsets_mapping=False):
        ids, offsets, position = [], [], 0
        for word in text.split(" "):
            ids.append(self.names.index(word) if word in self.names else 0)
            offsets.append((position, position + len(word)))
            position += len(word) + 1
        return {"input_ids": ids, "offset_mapping": offsets} if return_offsets_mapping else {"input_ids": ids}

    def decode(self, ids):
        return " " + self.names[ids[0]]


def test_accuracy_and_perplexity_of_a_planted_model_by_hand():
    model = LoadedModel(ZooModel("successor", "causal", True, None, "planted", ""), DigitTokenizer(), Successor())
    text = " one two three five six\n\n four five six seven\n"
    # Targets (Brain-Score): line 1 words 2..4 (two, three, five), line 3 words 2..3 (five, six).
    assert [t for _, _, t in wikitext_targets(text)] == ["two", "three", "five", "five", "six"]
    result = next_word_accuracy(model, text, progress=False)
    assert result["accuracy"] == pytest.approx(4 / 5)  # "three" is followed by "five", not "four"
    # Scored tokens: 4 + 3 (no BOS: a line's first token is unpredictable), one of them a miss (0.1 / 9).
    assert result["n_tokens"] == 7
    assert result["perplexity"] == pytest.approx(math.exp(-(6 * math.log(0.9) + math.log(0.1 / 9)) / 7))
    assert unigram_accuracy(text) == pytest.approx(2 / 5)


def test_accuracy_with_one_pass_per_line_equals_brain_score_per_context():
    # Brain-Score's rule: each context run alone, its argmax token decoded, stripped, compared with the target.
    tokenizer = smollm2_tokenizer()
    model = tiny("llama", tokenizer)
    text = " = Robert Boulter = \n\n the the the the the , the the . the the the\n"
    with torch.no_grad():
        model.model.lm_head.weight[tokenizer.convert_tokens_to_ids("Ġthe")] += 3.0  # make "the" often win
    correct = []
    for number, end, target in wikitext_targets(text):
        context = text.split("\n")[number].strip()[:end]
        ids = [tokenizer.bos_token_id] + tokenizer(context)["input_ids"]
        with torch.no_grad():
            token = int(model.model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        correct.append(tokenizer.decode([token]).strip() == target)
    result = next_word_accuracy(model, text, progress=False)
    assert 0 < sum(correct) < len(correct)
    assert result["accuracy"] == pytest.approx(np.mean(correct))


def test_pseudo_log_likelihood_equals_a_slow_loop():
    tokenizer = load_encoder("minilm").tokenizer
    model = tiny("bert", tokenizer)
    text = "The harbour was quiet again ."
    ids = tokenizer(text)["input_ids"]
    expected = []
    for i in range(1, len(ids) - 1):  # [CLS] and [SEP] are context only
        masked = list(ids)
        masked[i] = tokenizer.mask_token_id
        with torch.no_grad():
            logits = model.model(input_ids=torch.tensor([masked])).logits[0, i].double()
        expected.append(float(torch.log_softmax(logits, -1)[ids[i]]))
    result = pseudo_log_likelihood(model, [text], batch_size=3, progress=False)
    np.testing.assert_allclose(result["token_log_likelihoods"][0], expected, rtol=1e-5)
    assert result["pseudo_perplexity"] == pytest.approx(math.exp(-np.mean(expected)))
    assert next_word_accuracy(model, text, progress=False)["pseudo_perplexity"] == pytest.approx(
        result["pseudo_perplexity"])


def test_models_that_cannot_predict_words_are_refused():
    with pytest.raises(ConfigError, match="no language-model head"):
        word_surprisal(load_zoo_model("glove-50"), ["a"], [0])
    bert = tiny("bert", load_encoder("minilm").tokenizer)
    with pytest.raises(ConfigError, match="causal language model"):
        word_surprisal(bert, ["a"], [0])


def wikitext_or_fail() -> str:
    path = WIKITEXT / "test.txt"
    if not path.exists():
        message = f"WikiText-2 test is not at {path} (../shared/data/wikitext-2; set BRAINALIGN_SHARED_DATA)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path.read_text(encoding="utf-8")


def first_words(text: str, n_words: int) -> tuple[str, int]:
    """The first lines of ``text`` holding at least ``n_words`` words."""
    lines, n = [], 0
    for line in text.split("\n"):
        lines.append(line)
        n += len(line.split())
        if n >= n_words:
            break
    return "\n".join(lines) + "\n", n


def test_smollm2_predicts_real_wikitext_far_better_than_its_untrained_architecture():
    """The first ~1,000 words (~1,400 SmolLM2 tokens) of WikiText-2 test, the raw file read in place; the
    untrained architecture on the first ~300 of them (it is at chance on any stretch, and 2 cores are slow)."""
    raw = wikitext_or_fail()
    text, n = first_words(raw, 1000)
    short, _ = first_words(raw, 300)
    started = time.perf_counter()
    trained = next_word_accuracy(load_zoo_model("smollm2"), text, batch_size=4, progress=False)
    untrained = next_word_accuracy(load_zoo_model("smollm2-untrained"), short, batch_size=4, progress=False)
    unigram = unigram_accuracy(text)
    print(f"WikiText-2 first {n} words ({trained['n_targets']} targets, {trained['n_tokens']} tokens): SmolLM2 "
          f"accuracy {trained['accuracy']:.3f}, perplexity {trained['perplexity']:.1f}; untrained "
          f"{untrained['accuracy']:.3f}, {untrained['perplexity']:.0f} ({untrained['n_tokens']} tokens); unigram "
          f"{unigram:.3f} ({time.perf_counter() - started:.1f} s)")
    assert trained["n_targets"] > 900 and "instruction-tuned" in trained["label"]
    assert trained["accuracy"] > unigram + 0.1 and trained["accuracy"] > untrained["accuracy"] + 0.15
    assert untrained["perplexity"] > 20 * trained["perplexity"]
    assert trained["perplexity"] < 100  # a 135M model on Wikipedia; an untrained one is near the vocabulary size
