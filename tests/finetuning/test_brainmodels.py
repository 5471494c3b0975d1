"""Tests of tokenised windows, the brain model, its training loop and the task keys.

(``brainalign.stimuli.tokens``, ``brainalign.finetuning.model``, ``brainalign.finetuning.tasks``.) Every test uses a two-layer,
32-wide untrained BERT with the uncased BERT tokenizer (``experiments.tiny_encoder``); the truths are
hand-worked cases, slow references (one window at a time, numpy), or invariants (bitwise equality).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import time

import numpy as np
import pytest
import torch
from experiments import tiny_encoder

from brainalign.finetuning.model import (Block, BrainModel, Phase, Runtime, head_inputs, predict, read_checkpoint,
                                    task_weights, train_model)
from brainalign.features.encoders import load_encoder
from brainalign.errors import InputError
from brainalign.stimuli.lexicon import log_probability, word_length
from brainalign.finetuning.tasks import Task
from brainalign.runs.executors import order_tasks
from brainalign.stimuli.tokens import length_batches, read_tokens, tokenize_windows
from brainalign.finetuning.training import Schedule

QUIET = Runtime(progress=False)
WORDS = ("the cat sat on a mat while unbelievably curious dogs watched xylophonists play music quietly "
         "near Harry's well-known house, today.").split()
TIMING = ("seconds", "examples_per_second")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread is several times faster on a shared machine (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny BERT and its tokenizer (evaluation mode)."""
    return load_encoder(str(tiny_encoder(tmp_path_factory.mktemp("tiny") / "bert", hidden=32, layers=2)))


def random_texts(n: int, seed: int, longest: int = 12) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, longest + 1))) for _ in range(n)]


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different[:5]}"


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING + ("replayed",)} for r in history]


# --------------------------------------------------------------------------------------------- tokens


def test_short_windows_equal_the_tokenizers_own_encoding(tiny):
    """Truth: the tokenizer itself — a short window is ``tokenizer(text)["input_ids"]`` ([CLS] pieces [SEP])."""
    texts = ["the cat sat", "unbelievably curious dogs", "Harry's well-known house, today.", "cat"]
    tokens = tokenize_windows(tiny.tokenizer, texts, "cls")
    assert len(tokens) == 4
    for i, text in enumerate(texts):
        window = tokens.ids[tokens.offsets[i]:tokens.offsets[i + 1]].tolist()
        assert window == tiny.tokenizer(text)["input_ids"]
        assert window[0] == tiny.tokenizer.cls_token_id and window[-1] == tiny.tokenizer.sep_token_id
    assert tokens.target.tolist() == [0, 0, 0, 0]
    assert tokens.properties.tolist() == [[0.0, -20.0]] * 4
    assert tokens.pad_id == tiny.tokenizer.pad_token_id == 0


@pytest.mark.parametrize("max_length,kept", [
    (9, "unbelievably cat dog"),  # 7 pieces: exactly the budget, the 5-piece word at the cut is kept whole
    (8, "cat dog"),               # budget 6: "unbelievably" would need 7 -> dropped whole, not cut in pieces
    (4, "cat dog"),               # budget 2: "cat dog" fits exactly
    (3, "dog"),                   # budget 1: only the last word
])
def test_long_window_keeps_the_longest_suffix_of_whole_words(tiny, max_length, kept):
    """Truth: by hand — "one two unbelievably cat dog" is 1+1+5+1+1 pieces; the kept suffix is worked out
    by counting pieces, and its window is the tokenizer's encoding of those words alone."""
    text = "one two unbelievably cat dog"
    assert tiny.tokenizer.tokenize("unbelievably") == ["un", "##bel", "##ie", "##va", "##bly"]
    tokens = tokenize_windows(tiny.tokenizer, [text], "last_word", max_length=max_length)
    window = tokens.ids.tolist()
    assert window == tiny.tokenizer(kept)["input_ids"]
    assert len(window) <= max_length
    assert tiny.tokenizer.convert_ids_to_tokens(window)[tokens.target[0]] == "dog"


def test_last_word_target_is_its_first_piece_after_a_cut(tiny):
    """Truth: by hand — "one two cat unbelievably" with max_length 8 (6 pieces) keeps "cat unbelievably":
    [CLS] cat un ##bel ##ie ##va ##bly [SEP]; the target is "un", position 2."""
    tokens = tokenize_windows(tiny.tokenizer, ["one two cat unbelievably"], "last_word", max_length=8)
    pieces = tiny.tokenizer.convert_ids_to_tokens(tokens.ids.tolist())
    assert pieces == ["[CLS]", "cat", "un", "##bel", "##ie", "##va", "##bly", "[SEP]"]
    assert tokens.target.tolist() == [2]


def test_last_word_targets_and_properties(tiny):
    """Truth: by hand — the target is the position of the last word's first piece (checked by reading the
    pieces back); the properties are the last word's letters/digits and ln wordfreq frequency (floor -20)."""
    from wordfreq import word_frequency

    texts = ["the cat sat on xylophonists", "curious unbelievably", "near Harry's well-known,", "qzxqzxqzx",
             "the dogs"]
    tokens = tokenize_windows(tiny.tokenizer, texts, "last_word")
    first_pieces = ["x", "un", "well", tiny.tokenizer.tokenize("qzxqzxqzx")[0], "dogs"]
    for i, first in enumerate(first_pieces):
        pieces = tiny.tokenizer.convert_ids_to_tokens(tokens.ids[tokens.offsets[i]:tokens.offsets[i + 1]].tolist())
        assert pieces[tokens.target[i]] == first
    # hand-worked positions: [CLS] the cat sat on x ... -> 5; [CLS] curious un ... -> 2; [CLS] qz... -> 1
    assert tokens.target[0] == 5 and tokens.target[1] == 2 and tokens.target[3] == 1
    lengths = [12.0, 12.0, 9.0, 9.0, 4.0]  # "well-known," has 9 letters, the comma and hyphen do not count
    np.testing.assert_array_equal(tokens.properties[:, 0], lengths)
    # not in wordfreq's list (frequency 0): the floor
    assert word_frequency("xylophonists", "en") == 0 and tokens.properties[0, 1] == -20.0
    assert tokens.properties[3, 1] == -20.0
    expected = [math.log(word_frequency(w, "en")) for w in ("unbelievably", "well-known", "dogs")]
    np.testing.assert_allclose(tokens.properties[[1, 2, 4], 1], expected, rtol=1e-6)
    np.testing.assert_allclose(tokens.properties[:, 1], [log_probability(t.split()[-1]) for t in texts], rtol=1e-6)
    np.testing.assert_array_equal(tokens.properties[:, 0], [word_length(t.split()[-1]) for t in texts])


def test_batch_pads_with_pad_id_and_masks_exactly_the_real_tokens(tiny):
    """Truth: the tokenizer's encodings of the windows, padded by hand to the longest."""
    texts = ["cat", "the cat sat on a mat", "unbelievably curious"]
    tokens = tokenize_windows(tiny.tokenizer, texts, "cls")
    tokens.pad_id = 7  # a non-zero pad id, so padding by 0 would be caught
    batch = tokens.batch(np.array([2, 0, 1]))
    encoded = [tiny.tokenizer(texts[r])["input_ids"] for r in (2, 0, 1)]
    width = max(map(len, encoded))
    ids = [e + [7] * (width - len(e)) for e in encoded]
    mask = [[1] * len(e) + [0] * (width - len(e)) for e in encoded]
    assert batch["input_ids"].tolist() == ids
    assert batch["attention_mask"].tolist() == mask
    assert batch["target"].tolist() == [0, 0, 0]
    assert batch["properties"].shape == (3, 2)


def test_save_and_read_tokens_round_trip(tiny, tmp_path):
    """Truth: identity — every field read back equals the one saved."""
    tokens = tokenize_windows(tiny.tokenizer, random_texts(10, 1), "last_word")
    tokens.save(tmp_path / "tokens.npz")
    back = read_tokens(tmp_path / "tokens.npz")
    for name in ("texts", "ids", "offsets", "target", "properties"):
        np.testing.assert_array_equal(getattr(back, name), getattr(tokens, name))
    assert back.kind == "last_word" and back.pad_id == tokens.pad_id and back.texts.tolist() == tokens.texts.tolist()


@pytest.mark.parametrize("damage", ["offset_missing", "ids_truncated", "offset_past_end"])
def test_read_tokens_refuses_offsets_not_matching_ids_and_names_the_file(tiny, tmp_path, damage):
    """Truth: the documented contract — offsets are n + 1 values ending at len(ids); otherwise an InputError
    naming the file."""
    path = tmp_path / "tokens.npz"
    tokenize_windows(tiny.tokenizer, random_texts(5, 2), "cls").save(path)
    with np.load(path) as data:
        arrays = dict(data)
    if damage == "offset_missing":
        arrays["offsets"] = arrays["offsets"][:-1]
    elif damage == "ids_truncated":
        arrays["ids"] = arrays["ids"][:-1]
    else:
        arrays["offsets"] = arrays["offsets"] + np.r_[np.zeros(5, np.int64), 1]
    np.savez(path, **arrays)
    with pytest.raises(InputError) as error:
        read_tokens(path)
    assert str(path) in str(error.value)


def test_length_batches_without_generator_sorted_and_complete():
    """Truth: definition — every index once, lengths non-decreasing along the batches, full batches but the last."""
    lengths = np.array([5, 3, 9, 3, 7, 1, 12, 5, 2, 8, 4])
    batches = length_batches(lengths, 4)
    order = np.concatenate(batches)
    assert sorted(order.tolist()) == list(range(11))
    assert np.all(np.diff(lengths[order]) >= 0)
    assert [len(b) for b in batches] == [4, 4, 3]


def padding_waste(batches: list[np.ndarray], lengths: np.ndarray) -> int:
    return int(sum(len(b) * lengths[b].max() - lengths[b].sum() for b in batches))


def test_length_batches_with_generator_shuffled_complete_and_little_padding():
    """Truth: definition and a random baseline — each index once per epoch, batches of at most batch_size,
    reproducible by seed, new order per seed, and far less padding than a random split of the permutation."""
    lengths = np.random.default_rng(0).integers(3, 129, size=2000)
    batches = length_batches(lengths, 16, torch.Generator().manual_seed(3))
    order = np.concatenate(batches)
    assert sorted(order.tolist()) == list(range(2000))
    assert max(len(b) for b in batches) == 16 and len(batches) == 125
    same = length_batches(lengths, 16, torch.Generator().manual_seed(3))
    assert all(np.array_equal(a, b) for a, b in zip(batches, same)) and len(same) == len(batches)
    other = np.concatenate(length_batches(lengths, 16, torch.Generator().manual_seed(4)))
    assert not np.array_equal(order, other)
    generator = torch.Generator().manual_seed(3)
    epoch1 = np.concatenate(length_batches(lengths, 16, generator))
    epoch2 = np.concatenate(length_batches(lengths, 16, generator))
    assert not np.array_equal(epoch1, epoch2) and sorted(epoch2.tolist()) == list(range(2000))
    permutation = torch.randperm(2000, generator=torch.Generator().manual_seed(3)).numpy()
    random_split = [permutation[i:i + 16] for i in range(0, 2000, 16)]
    assert padding_waste(batches, lengths) < 0.1 * padding_waste(random_split, lengths)


# ---------------------------------------------------------------------------------------------- model


def test_head_widths_and_seeded_initialisation_paired_across_models(tiny):
    """Truth: the documented design — fMRI heads read the hidden size, MEG heads hidden + 2; a head's
    initial weights depend on (seed, name) only, not on the other heads of the model."""
    a = BrainModel(tiny.model, {"fmri:1": ("fmri", 3), "meg:A": ("meg", 4)}, init_std=0.02, seed=7)
    b = BrainModel(tiny.model, {"fmri:1": ("fmri", 3), "fmri:0": ("fmri", 6), "meg:B": ("meg", 4)},
                   init_std=0.02, seed=7)
    c = BrainModel(tiny.model, {"fmri:1": ("fmri", 3), "meg:A": ("meg", 4)}, init_std=0.02, seed=8)
    assert a.heads["fmri:1"].linear.in_features == 32 and a.heads["fmri:1"].linear.out_features == 3
    assert a.heads["meg:A"].linear.in_features == 34 and a.heads["meg:A"].linear.out_features == 4
    assert torch.equal(a.heads["fmri:1"].linear.weight, b.heads["fmri:1"].linear.weight)
    assert not torch.equal(a.heads["fmri:1"].linear.weight, c.heads["fmri:1"].linear.weight)
    assert not torch.equal(a.heads["meg:A"].linear.weight, c.heads["meg:A"].linear.weight)
    assert not torch.equal(a.heads["meg:A"].linear.weight[:, :4], b.heads["meg:B"].linear.weight[:, :4])
    weights = torch.cat([a.heads["fmri:1"].linear.weight.flatten(), a.heads["meg:A"].linear.weight.flatten()])
    assert 0.01 < float(weights.detach().std()) < 0.04
    assert torch.all(a.heads["fmri:1"].linear.bias == 0)


@pytest.mark.parametrize("kind", ["cls", "last_word"])
def test_batched_head_inputs_equal_one_window_at_a_time(tiny, kind):
    """Truth: slow reference — the encoder run on each window alone (no padding), its state at the target
    (plus the properties for last_word); batching by length with padding must not change it."""
    texts = random_texts(23, 5, longest=15) + ["one two cat unbelievably"]
    tokens = tokenize_windows(tiny.tokenizer, texts, kind)
    model = BrainModel(tiny.model, {})
    rows = np.random.default_rng(1).permutation(len(texts))[:20]
    out = head_inputs(model, tokens, rows, batch_size=4, runtime=QUIET)
    assert out.shape == (20, 32 + (2 if kind == "last_word" else 0))
    assert len(set(tokens.lengths[rows].tolist())) > 4  # windows of many lengths: padding happens
    tiny.model.eval()  # the reference runs without dropout, as head_inputs must
    with torch.no_grad():
        for i, row in enumerate(rows):
            ids = torch.from_numpy(tokens.ids[tokens.offsets[row]:tokens.offsets[row + 1]].astype(np.int64))[None]
            hidden = tiny.model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
            expected = hidden[0, tokens.target[row]].numpy()
            if kind == "last_word":
                expected = np.r_[expected, tokens.properties[row]]
            np.testing.assert_allclose(out[i], expected, atol=1e-5, rtol=0)


def test_features_leave_an_evaluation_mode_encoder_in_evaluation_mode(tiny):
    """Truth: determinism — ``word_states`` of a loaded (evaluation-mode) encoder is a fixed function of
    the words; computing ``cls_features`` (head_inputs on a fresh BrainModel) in between must not change
    it, e.g. by leaving the encoder's dropout switched on."""
    from brainalign.features.encoders import Encoder, cls_features, word_states

    encoder = Encoder(tiny.name, tiny.tokenizer, copy.deepcopy(tiny.model).eval())
    before = word_states(encoder, list(WORDS), layer=2, progress=False)
    cls_features(encoder, ["the cat sat", "unbelievably curious dogs"], progress=False)
    after = word_states(encoder, list(WORDS), layer=2, progress=False)
    np.testing.assert_array_equal(before, after)
    assert not encoder.model.training


def test_task_weights_hand_worked(tiny):
    """Truth: by hand — head a has data on 3 examples, b on 1: w_a = (1/3)/(1/3 + 1) = 0.25, w_b = 0.75;
    a row counts when any of its entries is present."""
    tokens = tokenize_windows(tiny.tokenizer, random_texts(4, 0), "cls")
    nan = np.nan
    a = np.array([[1.0, 2.0], [nan, 3.0], [4.0, nan], [nan, nan]])
    b = np.array([[nan], [nan], [nan], [5.0]])
    weights = task_weights([Block(tokens, np.arange(4), {"a": a, "b": b})])
    assert weights == pytest.approx({"a": 0.25, "b": 0.75}, abs=1e-12)


# ------------------------------------------------------------------------------------------- training


def training_blocks(tiny, n_fmri: int = 24, n_meg: int = 16) -> list[Block]:
    """An fMRI block with two heads (the second with data on half the examples) and a MEG block."""
    rng = np.random.default_rng(11)
    fmri = tokenize_windows(tiny.tokenizer, random_texts(n_fmri, 21), "cls")
    meg = tokenize_windows(tiny.tokenizer, random_texts(n_meg, 22), "last_word")
    partial = rng.normal(size=(n_fmri, 2)).astype(np.float32)
    partial[n_fmri // 2:] = np.nan
    return [Block(fmri, np.arange(n_fmri), {"fmri:1": rng.normal(size=(n_fmri, 3)).astype(np.float32),
                                            "fmri:2": partial}),
            Block(meg, np.arange(n_meg), {"meg:A": rng.normal(size=(n_meg, 4)).astype(np.float32)})]


HEADS = {"fmri:1": ("fmri", 3), "fmri:2": ("fmri", 2), "meg:A": ("meg", 4)}
SCHEDULE = Schedule(batch_size=8, learning_rate=1e-3, warmup_fraction=0.1, weight_decay=0.01)


def fresh_model(tiny, seed: int = 0) -> BrainModel:
    return BrainModel(copy.deepcopy(tiny.model), HEADS, init_std=0.02, seed=seed)


def count_encoder_calls(model: BrainModel) -> list[int]:
    calls = [0]
    forward = model.encoder.forward

    def counted(*args, **kwargs):
        calls[0] += 1
        return forward(*args, **kwargs)

    model.encoder.forward = counted
    return calls


def test_head_phase_learns_a_planted_map_from_cached_features_without_touching_the_encoder(tiny):
    """Truth: planted data — targets = cached features @ W + small noise; the head trained on them predicts
    held-out targets (r > 0.9). The frozen encoder is never run (the cache is used) and stays bit for bit."""
    rng = np.random.default_rng(3)
    n, n_train = 300, 200
    tokens = tokenize_windows(tiny.tokenizer, random_texts(n, 4, longest=3), "cls")
    features = rng.normal(size=(n, 32)).astype(np.float32)
    clean = features @ (0.5 * rng.normal(size=(32, 5))).astype(np.float32)
    noisy = (clean + 0.1 * rng.normal(size=clean.shape)).astype(np.float32)
    model = BrainModel(copy.deepcopy(tiny.model), {"fmri:1": ("fmri", 5)}, init_std=0.02, seed=0)
    before = state(model.encoder)
    calls = count_encoder_calls(model)
    block = Block(tokens, np.arange(n_train), {"fmri:1": noisy[:n_train]}, features=features)
    history = train_model(model, [block], [Phase("head", 40)],
                          Schedule(batch_size=16, learning_rate=1e-2, warmup_fraction=0.1, weight_decay=0.0),
                          seed=0, runtime=QUIET)
    assert calls[0] == 0
    assert_bitwise_equal(before, state(model.encoder))
    assert history[-1]["loss"] < 0.1 * history[0]["loss"]
    predicted = predict(model, "fmri:1", features[n_train:])
    for j in range(5):
        assert np.corrcoef(predicted[:, j], clean[n_train:, j])[0, 1] > 0.9
    # A full phase runs the encoder, and a head phase after it cannot use the (now stale) cache.
    seen = []
    block = Block(tokens, np.arange(40), {"fmri:1": noisy[:40]}, features=features)
    train_model(model, [block], [Phase("full", 1), Phase("head", 1)], SCHEDULE, seed=0, runtime=QUIET,
                on_epoch=lambda record: seen.append(calls[0]))
    assert 0 < seen[0] < seen[1]
    assert not all(torch.equal(before[k], v) for k, v in state(model.encoder).items())


def test_recorded_losses_are_the_masked_weighted_mse(tiny):
    """Truth: numpy reference — with learning rate 0 nothing moves, so one batch's loss.<head> is the mean
    of (prediction - target)^2 over the non-NaN targets (np.nanmean) and ``loss`` is sum_k w_k loss_k with
    the hand weights (n_1 = 24, n_2 = 12: w_1 = 1/3, w_2 = 2/3)."""
    rng = np.random.default_rng(5)
    tokens = tokenize_windows(tiny.tokenizer, random_texts(24, 6), "cls")
    features = rng.normal(size=(24, 32)).astype(np.float32)
    y1 = rng.normal(size=(24, 3)).astype(np.float32)
    y1[:, 1:][rng.random((24, 2)) < 0.4] = np.nan  # scattered NaN entries; column 0 keeps every row in
    y2 = rng.normal(size=(24, 2)).astype(np.float32)
    y2[12:] = np.nan
    model = BrainModel(copy.deepcopy(tiny.model), {"fmri:1": ("fmri", 3), "fmri:2": ("fmri", 2)},
                       init_std=0.5, seed=0)
    block = Block(tokens, np.arange(24), {"fmri:1": y1, "fmri:2": y2}, features=features)
    history = train_model(model, [block], [Phase("head", 1)],
                          Schedule(batch_size=24, learning_rate=0.0, warmup_fraction=0.0, weight_decay=0.0),
                          seed=0, runtime=QUIET)
    losses = {}
    for name, y in (("fmri:1", y1), ("fmri:2", y2)):
        linear = model.heads[name].linear
        prediction = features.astype(np.float64) @ linear.weight.detach().double().numpy().T
        losses[name] = np.nanmean((prediction - y) ** 2)
        assert history[0][f"loss.{name}"] == pytest.approx(losses[name], rel=1e-5)
    assert history[0]["loss"] == pytest.approx(losses["fmri:1"] / 3 + 2 * losses["fmri:2"] / 3, rel=1e-5)


def test_a_heads_training_ignores_the_other_heads_target_values(tiny):
    """Truth: independence — in a head phase each head has its own parameters and the task weights depend
    only on which targets are present, so changing head 2's values (same NaN pattern) leaves head 1 bit
    for bit, and NaN targets leave every weight finite."""
    blocks = training_blocks(tiny)
    features = np.random.default_rng(8).normal(size=(24, 32)).astype(np.float32)
    results = []
    for shift in (0.0, 5.0):
        fmri = blocks[0]
        targets = {"fmri:1": fmri.targets["fmri:1"], "fmri:2": fmri.targets["fmri:2"] * 3 + shift}
        model = BrainModel(copy.deepcopy(tiny.model), {"fmri:1": ("fmri", 3), "fmri:2": ("fmri", 2)},
                           init_std=0.02, seed=0)
        train_model(model, [Block(fmri.tokens, fmri.windows, targets, features)], [Phase("head", 3)],
                    SCHEDULE, seed=0, runtime=QUIET)
        results.append(state(model.heads))
    assert torch.equal(results[0]["fmri:1.linear.weight"], results[1]["fmri:1.linear.weight"])
    assert torch.equal(results[0]["fmri:1.linear.bias"], results[1]["fmri:1.linear.bias"])
    assert not torch.equal(results[0]["fmri:2.linear.weight"], results[1]["fmri:2.linear.weight"])
    assert all(torch.isfinite(v).all() for r in results for v in r.values())


def test_training_is_deterministic_by_seed(tiny):
    """Truth: reproducibility — two runs with the same seed from identical models give bitwise-identical
    weights and identical histories; another seed (same initial model) gives other weights."""
    blocks = training_blocks(tiny)
    runs = []
    for seed in (0, 0, 1):
        model = fresh_model(tiny)
        history = train_model(model, blocks, [Phase("full", 2)], SCHEDULE, seed=seed, runtime=QUIET)
        runs.append((state(model), without_timing(history)))
    assert_bitwise_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    different = [k for k in runs[0][0] if not torch.equal(runs[0][0][k], runs[2][0][k])]
    assert len(different) > len(runs[0][0]) // 2
    assert runs[0][1] != runs[2][1]


class Stop(Exception):
    pass


def stop_at(epoch: int):
    def on_epoch(record):
        if record["epoch"] == epoch:
            raise Stop

    return on_epoch


PHASES = [Phase("head", 2), Phase("full", 3)]


@pytest.fixture(scope="module")
def uninterrupted(tiny, tmp_path_factory):
    """Run A: [head 2, full 3] with a checkpoint, never interrupted."""
    model = fresh_model(tiny)
    path = tmp_path_factory.mktemp("run_a") / "checkpoint.safetensors"
    history = train_model(model, training_blocks(tiny), PHASES, SCHEDULE, seed=0, checkpoint=path, runtime=QUIET)
    return state(model), history


def test_history_losses_finite_and_lr_decays_to_zero_at_each_phase_end(uninterrupted):
    """Truth: the schedule's definition — linear decay to 0 over each phase's own steps, so the lr after
    the last epoch of a phase is 0 and positive before; epochs are numbered 1..5 over both phases."""
    _, history = uninterrupted
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5]
    assert [r["phase"] for r in history] == ["head", "head", "full", "full", "full"]
    assert all(math.isfinite(r[k]) for r in history for k in r if k.startswith("loss"))
    assert {k for k in history[0] if k.startswith("loss.")} == {"loss.fmri:1", "loss.fmri:2", "loss.meg:A"}
    assert history[1]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert history[4]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert history[0]["lr"] > 0 and history[2]["lr"] > 0 and history[3]["lr"] > 0


@pytest.mark.parametrize("stop", [3, 2, 1])
def test_resume_after_interruption_is_bitwise_identical(tiny, tmp_path, uninterrupted, stop):
    """Truth: run A — a run checkpointing every epoch, stopped after epoch ``stop`` (mid full phase, at the
    end of the head phase, mid head phase) and resumed from its checkpoint by a fresh model, ends bit for
    bit where A ends, with A's history; the resumed call first replays the finished epochs (replayed=True)."""
    final_a, history_a = uninterrupted
    path = tmp_path / "checkpoint.safetensors"
    with pytest.raises(Stop):
        train_model(fresh_model(tiny), training_blocks(tiny), PHASES, SCHEDULE, seed=0, checkpoint=path,
                    runtime=QUIET, on_epoch=stop_at(stop), checkpoint_every=0)
    assert len(read_checkpoint(path)[1]["history"]) == stop
    model = fresh_model(tiny)
    seen = []
    history = train_model(model, training_blocks(tiny), PHASES, SCHEDULE, seed=0, checkpoint=path, runtime=QUIET,
                          on_epoch=seen.append, checkpoint_every=0)
    assert_bitwise_equal(final_a, state(model))
    assert without_timing(history) == without_timing(history_a)
    assert [r["epoch"] for r in seen] == [1, 2, 3, 4, 5]
    assert [r.get("replayed", False) for r in seen] == [True] * stop + [False] * (5 - stop)


def test_checkpoints_wait_for_their_interval(tiny, tmp_path, uninterrupted):
    """Truth: run A, and the clock. Stopped after epoch 4 of 5, well inside the default 30 s between
    checkpoints, the run has written none (an epoch of seconds is cheaper to redo than to save); the
    re-run starts afresh, replays nothing, and ends bit for bit as A. Run to its end checkpointing every
    epoch, it writes the epochs before the last (the trained model is the caller's to save)."""
    final_a, history_a = uninterrupted
    path = tmp_path / "checkpoint.safetensors"
    started = time.perf_counter()
    with pytest.raises(Stop):
        train_model(fresh_model(tiny), training_blocks(tiny), PHASES, SCHEDULE, seed=0, checkpoint=path,
                    runtime=QUIET, on_epoch=stop_at(4))
    assert time.perf_counter() - started < 30 and not path.exists()
    model, seen = fresh_model(tiny), []
    history = train_model(model, training_blocks(tiny), PHASES, SCHEDULE, seed=0, checkpoint=path, runtime=QUIET,
                          on_epoch=seen.append)
    assert_bitwise_equal(final_a, state(model))
    assert without_timing(history) == without_timing(history_a)
    assert not any(r.get("replayed", False) for r in seen)
    every = tmp_path / "every.safetensors"
    train_model(fresh_model(tiny), training_blocks(tiny), PHASES, SCHEDULE, seed=0, checkpoint=every,
                runtime=QUIET, checkpoint_every=0)
    assert len(read_checkpoint(every)[1]["history"]) == 4


# ---------------------------------------------------------------------------------------------- tasks


def base_task(**changes) -> Task:
    task = Task(model="finetuned", label="finetuned/fmri/1/run1/seed0",
                encoder={"name": "minilm", "untrained": False, "seed": 0},
                heads=[{"dataset": "fmri", "subject": "1"}], heldout_run=1, seed=0,
                phases=[["head", 2], ["full", 3]],
                optimisation={"batch_size": 32, "learning_rate": 5e-5, "warmup_fraction": 0.1,
                              "weight_decay": 0.01, "decay_all": False, "init_std": 0.02},
                runtime={"device": "cpu", "bf16": False}, inputs={"code": "abc"})
    return dataclasses.replace(task, **changes)


@pytest.mark.parametrize("field,value", [
    ("seed", 1),
    ("phases", [["head", 2], ["full", 4]]),
    ("optimisation", {"batch_size": 32, "learning_rate": 1e-4, "warmup_fraction": 0.1, "weight_decay": 0.01,
                      "decay_all": False, "init_std": 0.02}),
    ("inputs", {"code": "abd"}),
    ("heads", [{"dataset": "fmri", "subject": "2"}]),
    ("heldout_run", 2),
    ("encoder", {"name": "minilm", "untrained": True, "seed": 0}),
    ("runtime", {"device": "cuda", "bf16": False}),
    ("model", "vanilla"),
])
def test_task_key_changes_with_every_determining_field(field, value):
    """Truth: the documented key — a hash of everything that determines the result."""
    assert base_task(**{field: value}).key != base_task().key


def test_task_key_ignores_the_label():
    """Truth: documented — the label is a readable name, not part of the key."""
    assert base_task(label="another name").key == base_task().key
    assert base_task().key == base_task().key


def test_order_tasks_puts_encoder_sources_first():
    """Truth: definition — a task starting from another task's encoder comes after it, in any input order."""
    a = base_task()
    b = base_task(model="frozen", encoder={"task": a.id})
    c = base_task(model="chained", encoder={"task": b.id})
    d = base_task(seed=5)
    for permutation in itertools.permutations([a, b, c, d]):
        ids = [t.id for t in order_tasks(list(permutation))]
        assert sorted(ids) == sorted(t.id for t in (a, b, c, d))
        assert ids.index(a.id) < ids.index(b.id) < ids.index(c.id)
