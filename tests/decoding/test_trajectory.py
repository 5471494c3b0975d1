"""Fine-tuning trajectories: the data each step sees, the masking recipes, and bitwise resumption after kill -9."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from experiments import tiny_encoder
from safetensors.torch import load_file

from brainalign.decoding.objectives import TrajectorySettings, corpus_sentences, make_objective
from brainalign.decoding.trajectory import build_objectives, plan_run, step_rows, train_trajectory
from brainalign.errors import ConfigError, InputError
from brainalign.features.encoders import load_encoder


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory) -> Path:
    return tiny_encoder(tmp_path_factory.mktemp("tiny") / "bert", hidden=32, layers=2)


@pytest.fixture(scope="module")
def tokenizer(encoder_dir):
    return load_encoder(str(encoder_dir)).tokenizer


def test_step_rows_walk_seeded_permutations_epoch_by_epoch():
    n, batch = 10, 4
    rows = np.concatenate([step_rows(n, batch, seed=3, step=s) for s in range(1, 6)])  # 20 rows: 2 epochs
    first = np.random.default_rng([3, 4, 0]).permutation(n)
    second = np.random.default_rng([3, 4, 1]).permutation(n)
    np.testing.assert_array_equal(rows, np.concatenate([first, second]))
    # a step's batch needs no replay of the steps before it
    np.testing.assert_array_equal(step_rows(n, batch, 3, 3), np.concatenate([first, second])[8:12])


def test_checkpoint_steps_end_at_the_last_step():
    assert TrajectorySettings(steps=20, checkpoint_every=5).checkpoint_steps == [5, 10, 15, 20]
    assert TrajectorySettings(steps=12, checkpoint_every=5).checkpoint_steps == [5, 10, 12]
    with pytest.raises(ConfigError):
        TrajectorySettings(steps=0)


def test_corpus_sentences_split_after_closing_quotes():
    assert corpus_sentences('He said "Go." She went!  Then   rain? Yes') == ['He said "Go."', "She went!", "Then rain?",
                                                                            "Yes"]


def _masked_words(objective, rows, tokenizer, step=1):
    batch = objective.batch(np.asarray(rows), step, "cpu")
    originals = [objective.ids[r] for r in rows]
    targets = batch["targets"].numpy()
    return batch, originals, targets


def test_masking_follows_berts_recipe(tokenizer):
    settings = TrajectorySettings(steps=1, max_length=64)
    lm = make_objective("lm", {"corpus": "story"}, tokenizer, settings, seed=0)
    rows = np.arange(lm.n_examples)
    batch, originals, targets = _masked_words(lm, rows, tokenizer)
    masked = batch["masked"].numpy()
    ids = batch["input_ids"].numpy()
    # targets are the original pieces at the masked positions, row-major
    expected = np.concatenate([originals[i][np.flatnonzero(masked[i, :len(originals[i])])] for i in range(len(rows))])
    np.testing.assert_array_equal(targets, expected)
    # about 15 % of the maskable pieces; never a special piece
    special = set(tokenizer.all_special_ids)
    assert not any(int(t) in special for t in expected)
    share = masked.sum() / sum(lm.maskable[r].sum() for r in rows)
    assert 0.13 < share < 0.17
    # 80 % [MASK], 10 % random, 10 % kept (over thousands of masked pieces)
    fed = ids[masked]
    assert abs(np.mean(fed == tokenizer.mask_token_id) - 0.8) < 0.04
    assert abs(np.mean(fed == targets) - 0.1) < 0.04
    # static masks: the same example is masked the same way at any step; dynamic ones change
    again, _, _ = _masked_words(lm, rows[:20], tokenizer, step=7)
    np.testing.assert_array_equal(again["masked"].numpy(), masked[:20, :again["masked"].shape[1]])
    dynamic = make_objective("lm_randommask", {"corpus": "story"}, tokenizer, settings, seed=0)
    a = dynamic.batch(rows[:20], 1, "cpu")["masked"].numpy()
    b = dynamic.batch(rows[:20], 2, "cpu")["masked"].numpy()
    assert (a != b).any()
    # next-sentence labels: about half random; none for lm_lmonly
    assert 0.4 < float(lm.is_random.float().mean()) < 0.6
    assert int(make_objective("lm_lmonly", {"corpus": "story"}, tokenizer, settings, 0).is_random.sum()) == 0


def test_content_only_masks_only_content_words(tokenizer):
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    settings = TrajectorySettings(steps=1, max_length=64)
    objective = make_objective("lm_contentonly", {"corpus": "story"}, tokenizer, settings, seed=0)
    rows = np.arange(60)
    batch = objective.batch(rows, 1, "cpu")
    masked = batch["masked"].numpy()
    assert masked.sum() > 50
    for i, r in enumerate(rows):
        for position in np.flatnonzero(masked[i]):
            piece = tokenizer.convert_ids_to_tokens(int(objective.ids[r][position]))
            assert piece.lstrip("#").lower() not in {"the", "a", "and", "of", "to", "was", "he", "she", "it"}
    # the function words of the corpus are never candidates
    first = tokenizer.convert_ids_to_tokens(objective.ids[0].tolist())
    stop = [j for j, p in enumerate(first) if p in ENGLISH_STOP_WORDS]
    assert stop and not objective.maskable[0][stop].any()


def test_scrambled_sentences_keep_their_words(tokenizer):
    settings = TrajectorySettings(steps=1, max_length=128)
    plain = make_objective("lm_lmonly", {"corpus": "story"}, tokenizer, settings, seed=0)
    scrambled = make_objective("lm_scrambled", {"corpus": "story"}, tokenizer, settings, seed=0)
    a, b = plain.ids[5], scrambled.ids[5]
    # same multiset of pieces in the first sentence (word order only differs), different order overall
    sep = tokenizer.sep_token_id
    first_a = a[1:list(a).index(sep)]
    first_b = b[1:list(b).index(sep)]
    words_a = tokenizer.decode(first_a).split()
    words_b = tokenizer.decode(first_b).split()
    assert sorted(words_a) == sorted(words_b) and words_a != words_b


def test_unknown_objective_and_bad_corpus_fail_clearly(tokenizer, tmp_path):
    with pytest.raises(ConfigError, match="decoding.trajectories.<name>.objective"):
        make_objective("lm_pos", {}, tokenizer, TrajectorySettings(), 0)
    with pytest.raises(InputError, match="no such file"):
        make_objective("lm", {"corpus": str(tmp_path / "missing.txt")}, tokenizer, TrajectorySettings(), 0)


SCRIPT = """
import sys, time
from pathlib import Path
from brainalign.decoding.objectives import TrajectorySettings
from brainalign.decoding.trajectory import build_objectives, plan_run, train_trajectory
from brainalign.features.encoders import load_encoder
encoder, directory = sys.argv[1], Path(sys.argv[2])
settings = TrajectorySettings(steps=30, checkpoint_every=5, batch_size=8, learning_rate=1e-3, max_length=48)
objectives = build_objectives("lm", {"objective": "lm", "corpus": "story"}, load_encoder(encoder).tokenizer,
                              settings, [0])
run = plan_run("lm", objectives[0], encoder, settings, 0)
directory.mkdir(parents=True, exist_ok=True)
slow = (lambda record: time.sleep(0.15)) if len(sys.argv) > 3 else None  # time to be killed; numbers unchanged
train_trajectory(run, objectives[0], directory, slow, progress=False)
"""


def _state_step(directory: Path) -> int:
    from safetensors import safe_open

    path = directory / "checkpoint.safetensors"
    try:
        with safe_open(str(path), framework="pt") as handle:
            return json.loads(handle.metadata()["history"])[-1]["step"]
    except Exception:  # absent, or being replaced this very moment
        return 0


def test_killed_trajectory_resumes_to_bitwise_identical_checkpoints(encoder_dir, tmp_path):
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    subprocess.run([sys.executable, "-c", SCRIPT, str(encoder_dir), str(reference)], check=True)
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, str(encoder_dir), str(resumed), "slow"])
    deadline = time.time() + 120
    while _state_step(resumed) < 10 and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = _state_step(resumed)
    assert 10 <= killed_at < 30 and not (resumed / "step-0030.safetensors").exists()
    subprocess.run([sys.executable, "-c", SCRIPT, str(encoder_dir), str(resumed)], check=True)
    for step in (5, 10, 15, 20, 25, 30):
        a = load_file(reference / f"step-{step:04d}.safetensors")
        b = load_file(resumed / f"step-{step:04d}.safetensors")
        assert sorted(a) == sorted(b)
        for name in a:
            assert bool((a[name] == b[name]).all()), f"step {step}: {name} differs after resuming"
    # the training moved the encoder (identical untrained copies would also "match")
    start = load_file(next(encoder_dir.glob("*.safetensors")))
    name = "embeddings.word_embeddings.weight"
    assert not bool((load_file(reference / "step-0030.safetensors")[name] == start[name]).all())
    card = json.loads((reference / "step-0030.json").read_text())
    assert card["step"] == 30 and card["objective"] == "lm" and card["seed"] == 0


def test_glue_trajectory_trains_and_reports_dev_accuracy_at_each_checkpoint(encoder_dir, tokenizer, tmp_path):
    from brainalign.decoding.data import objective_data

    entry, notice = objective_data({"objective": "glue", "task": "SST-2", "data": "sample"}, tmp_path)
    assert "not GLUE" in notice
    settings = TrajectorySettings(steps=60, checkpoint_every=30, batch_size=16, learning_rate=1e-3, max_length=64)
    objectives = build_objectives("sst2", entry, tokenizer, settings, [0])
    run = plan_run("sst2", objectives[0], str(encoder_dir), settings, 0)
    assert "root" not in run.options  # the scratch directory is not part of the key; the files' MD5 are
    assert any(name.startswith("SST-2/") for name in json.loads(run.inputs_json))
    records = []
    (tmp_path / "run").mkdir()
    result = train_trajectory(run, objectives[0], tmp_path / "run", records.append, progress=False)
    dev = [r for r in result["history"] if "dev.accuracy" in r]
    assert [r["step"] for r in dev] == [0, 30, 60]
    assert len(records) == 61 and records[0]["step"] == 0
    # step 0's dev accuracy, recomputed independently: the same seeded head on the untouched encoder
    import torch
    from sklearn.metrics import accuracy_score

    from brainalign.nlu.finetune import SequenceClassifier
    from brainalign.nlu.glue import read_split

    torch.manual_seed(0)
    model = SequenceClassifier(load_encoder(str(encoder_dir)).model, 2, 0.1, 0).eval()
    dev_split = read_split(entry["root"], "SST-2", "dev")
    with torch.inference_mode():
        batch = tokenizer(dev_split.first, truncation=True, max_length=64, padding=True, return_tensors="pt",
                          return_token_type_ids=True)
        predicted = model(**batch).argmax(-1).numpy()
    assert dev[0]["dev.accuracy"] == pytest.approx(100 * accuracy_score(dev_split.labels, predicted))
    # and the checkpoints hold a moved encoder
    start = load_file(next(encoder_dir.glob("*.safetensors")))
    moved = load_file(tmp_path / "run" / "step-0060.safetensors")
    assert not bool((moved["embeddings.word_embeddings.weight"] == start["embeddings.word_embeddings.weight"]).all())


def test_squad_trajectory_reports_exact_and_f1_at_each_checkpoint(encoder_dir, tokenizer, tmp_path):
    from brainalign.decoding.data import SQUAD_NOTICE, objective_data

    entry, notice = objective_data({"objective": "squad", "data": "sample"}, tmp_path)
    assert notice == SQUAD_NOTICE
    settings = TrajectorySettings(steps=6, checkpoint_every=3, batch_size=8, learning_rate=1e-3, max_length=96,
                                  max_train=64, max_dev=24)
    objectives = build_objectives("squad", entry, tokenizer, settings, [0])
    run = plan_run("squad", objectives[0], str(encoder_dir), settings, 0)
    assert set(json.loads(run.inputs_json)) == {"squad/train-v2.0.json", "squad/dev-v2.0.json"}
    (tmp_path / "run").mkdir()
    result = train_trajectory(run, objectives[0], tmp_path / "run", progress=False)
    dev = [r for r in result["history"] if "dev.f1" in r]
    assert [r["step"] for r in dev] == [0, 3, 6]
    # F1 gives partial credit where exact match gives none: never below it
    assert all(0 <= r["dev.exact"] <= r["dev.f1"] <= 100 for r in dev)
    assert sorted(p.name for p in (tmp_path / "run").glob("step-*.safetensors")) == ["step-0003.safetensors",
                                                                                    "step-0006.safetensors"]
