"""The GLUE check's parts: the readers (release layout, hub cache, the embedded sample), the metrics
against hand-worked values, fine-tuning's batching, resumption and prediction order, and Table 1."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from experiments import tiny_encoder

from brainalign.features.encoders import load_encoder
from brainalign.errors import ConfigError, InputError
from brainalign.nlu.glue import TASKS, read_split, split_files
from brainalign.nlu.finetune import (Encoded, GlueSettings, SequenceClassifier, encode_split, finetune,
                                      length_grouped_batches, predict)
from brainalign.nlu.metrics import majority_predictions, task_metrics
from brainalign.nlu.runs import GlueEncoder, GlueRun, encoder_choices, execute
from brainalign.nlu.sample import SAMPLE_TASKS, write_sample
from brainalign.nlu.table import PAPER_COLUMNS, dvc_metrics, long_results, markdown, table1


def _write(path: Path, lines: list[str], bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- readers -------------------------------------------------------------------------------------------

def test_release_quirks_are_read(tmp_path):
    """CoLA without a header, MRPC behind a byte-order mark, an unescaped quote, MNLI's two dev files."""
    _write(tmp_path / "CoLA/train.tsv", ["gj04\t1\t\tThe sailors rode the breeze.", "gj04\t0\t*\tRode sailors the."])
    _write(tmp_path / "MRPC/dev.tsv", ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
                                      '1\t1\t2\tHe said "yes.\tHe agreed.'], bom=True)
    header = "index\tpromptID\tpairID\tgenre\ts1b\ts2b\ts1p\ts2p\tsentence1\tsentence2\tlabel1\tgold_label"
    for split, label in (("dev_matched", "neutral"), ("dev_mismatched", "contradiction")):
        _write(tmp_path / f"MNLI/{split}.tsv", [header, f"0\t1\t1\tfiction\t-\t-\t-\t-\tA cat.\tAn animal.\tx\t{label}"])
    cola = read_split(tmp_path, "CoLA", "train")
    assert cola.first == ["The sailors rode the breeze.", "Rode sailors the."] and cola.labels.tolist() == [1, 0]
    mrpc = read_split(tmp_path, "MRPC", "dev")
    assert mrpc.first == ['He said "yes.'] and mrpc.second == ["He agreed."] and mrpc.labels.tolist() == [1]
    assert read_split(tmp_path, "MNLI", "dev_matched").labels.tolist() == [1]  # entailment, neutral, contradiction
    assert read_split(tmp_path, "MNLI", "dev_mismatched").labels.tolist() == [2]


@pytest.mark.parametrize("content, field, found", [
    (["sentence\tlabel", "good film\t1", "bad film"], "line 3", "found 1"),
    (["sentence\tlabel", "good film\tpositive"], "label (line 2)", "'positive'"),
    (["text\tlabel", "good film\t1"], "header", "missing sentence"),
])
def test_malformed_release_file_is_one_clear_error(tmp_path, content, field, found):
    path = _write(tmp_path / "SST-2/train.tsv", content)
    with pytest.raises(InputError) as error:
        read_split(tmp_path, "SST-2", "train")
    assert error.value.source == str(path) and error.value.field == field and found in str(error.value)


def test_missing_task_and_unknown_names_are_clear(tmp_path):
    (tmp_path / "RTE").mkdir()
    _write(tmp_path / "RTE/train.tsv", ["index\tsentence1\tsentence2\tlabel"])
    with pytest.raises(InputError, match=r"RTE/dev.tsv: file: .*no such file \(in .*RTE: train.tsv\)"):
        read_split(tmp_path, "RTE", "dev")
    with pytest.raises(ConfigError, match="unknown task 'SST2'"):
        read_split(tmp_path, "SST2", "dev")
    with pytest.raises(ConfigError, match="MNLI has no split 'dev'"):
        split_files(tmp_path, "MNLI", "dev")
    _write(tmp_path / "STS-B/dev.tsv", ["sentence1\tsentence2\tscore", "a\tb\t7.5"])
    with pytest.raises(InputError, match="similarity scores from 0 to 5"):
        read_split(tmp_path, "STS-B", "dev")


def test_hub_cache_gives_the_release_files_examples(tmp_path):
    """A hub cache of nyu-mll/glue (parquet shards, the hub's label order) reads as the TSV does."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _write(tmp_path / "glue/RTE/dev.tsv", ["index\tsentence1\tsentence2\tlabel", "0\tA b.\tA.\tentailment",
                                          "1\tC d.\tE.\tnot_entailment", "2\tF.\tG.\tnot_entailment"])
    snapshot = tmp_path / "cache/datasets--nyu-mll--glue/snapshots/abc123/rte"
    snapshot.mkdir(parents=True)
    pq.write_table(pa.table({"sentence1": ["A b.", "C d."], "sentence2": ["A.", "E."], "label": [0, 1],
                             "idx": [0, 1]}), snapshot / "validation-00000-of-00002.parquet")
    pq.write_table(pa.table({"sentence1": ["F."], "sentence2": ["G."], "label": [1], "idx": [2]}),
                   snapshot / "validation-00001-of-00002.parquet")
    release, hub = read_split(tmp_path / "glue", "RTE", "dev"), read_split(tmp_path / "cache", "RTE", "dev")
    assert hub.first == release.first and hub.second == release.second
    assert hub.labels.tolist() == release.labels.tolist() == [0, 1, 1]
    pq.write_table(pa.table({"sentence1": ["x"], "sentence2": ["y"], "label": [-1]}),
                   snapshot / "validation-00001-of-00002.parquet")
    with pytest.raises(InputError, match="unlabelled test split"):
        read_split(tmp_path / "cache", "RTE", "dev")


def test_datasets_cache_arrow_reads_as_the_release(tmp_path):
    """The datasets library's own cache (Arrow IPC streams in nyu-mll___glue/<config>/<version>/<hash>/)."""
    import pyarrow as pa

    _write(tmp_path / "glue/SST-2/train.tsv", ["sentence\tlabel", "a fine film \t1", "dull \t0"])
    build = tmp_path / "cache/nyu-mll___glue/sst2/0.0.0/0123abcd"
    build.mkdir(parents=True)
    table = pa.table({"sentence": ["a fine film ", "dull "], "label": [1, 0], "idx": [0, 1]})
    with pa.OSFile(str(build / "glue-train.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    cached, release = read_split(tmp_path / "cache", "SST-2", "train"), read_split(tmp_path / "glue", "SST-2", "train")
    assert cached.first == release.first and cached.labels.tolist() == release.labels.tolist() == [1, 0]
    with pytest.raises(InputError, match=r"glue-validation\*.arrow"):
        read_split(tmp_path / "cache", "SST-2", "dev")


def test_embedded_sample_is_in_the_release_format(tmp_path):
    root = write_sample(tmp_path / "sample", n_train=120, n_dev=40, seed=3)
    assert "not GLUE" in (root / "README.md").read_text()
    assert (root / "MRPC/train.tsv").read_bytes().startswith(b"\xef\xbb\xbf")  # MRPC's byte-order mark
    assert not (root / "CoLA/dev.tsv").read_text().startswith("sentence")  # CoLA: no header
    for name in SAMPLE_TASKS:
        train = read_split(root, name, "train")
        for split in TASKS[name].dev_splits:  # MNLI: dev_matched and dev_mismatched
            dev = read_split(root, name, split)
            assert (len(train), len(dev)) == (120, 40)
            assert train.first != dev.first
        if TASKS[name].regression:
            assert 0 <= train.labels.min() < 1.5 and 4 < train.labels.max() <= 5
        elif name == "MNLI":  # three classes, each about a third
            assert np.bincount(train.labels, minlength=3).min() >= 120 / 3 - 15
        else:
            assert 0.3 <= train.labels.mean() <= 0.8, f"{name}: share of class 1 {train.labels.mean()}"
    again = write_sample(tmp_path / "again", n_train=120, n_dev=40, seed=3)
    assert (again / "SST-2/train.tsv").read_text() == (root / "SST-2/train.tsv").read_text()


def test_sample_nli_and_duplicate_labels_follow_their_rules(tmp_path):
    """QQP: duplicates share the verb and the thing asked about; MNLI: a contradiction negates or swaps the actor,
    a neutral hypothesis adds a clause, an entailment says less than the premise."""
    root = write_sample(tmp_path / "s", n_train=200, n_dev=10)
    from brainalign.nlu.sample import _Q_THINGS, _Q_VERBS

    def asked(question: str) -> tuple[str, str]:
        return (next(v for v in _Q_VERBS if f" {v} " in question), next(t for t in _Q_THINGS if question.endswith(f"{t}?")))

    qqp = read_split(root, "QQP", "train")
    for a, b, label in zip(qqp.first, qqp.second, qqp.labels):
        assert (asked(a) == asked(b)) == bool(label), (a, b)
    mnli = read_split(root, "MNLI", "train")
    for premise, hypothesis, label in zip(mnli.first, mnli.second, mnli.labels):
        kind = TASKS["MNLI"].labels[label]
        if kind == "contradiction":
            assert " not " in hypothesis or hypothesis.startswith("Only"), hypothesis
        elif kind == "neutral":  # the premise without its place, then a clause the premise does not state
            assert not hypothesis.startswith(premise[:-1]) and len(hypothesis.split()) > 4
        else:
            assert len(hypothesis) < len(premise) and " not " not in hypothesis, (premise, hypothesis)


def test_sample_sst2_labels_follow_its_rules(tmp_path):
    """Negation flips the adjective, the clause after 'but' decides: labels checked by re-reading the text."""
    from brainalign.nlu.sample import _NEGATIVE, _POSITIVE

    split = read_split(write_sample(tmp_path / "s", n_train=300, n_dev=10), "SST-2", "train")
    for text, label in zip(split.first, split.labels):
        clause = text.split(" but ")[-1].split()
        adjective = next(w for w in clause if w in _POSITIVE or w in _NEGATIVE)
        positive = (adjective in _POSITIVE) != ("not" in clause)
        assert positive == bool(label), text


# --- metrics -------------------------------------------------------------------------------------------

def test_metrics_against_hand_worked_values():
    # Confusion: TP 3, TN 2, FP 1, FN 2 (8 examples).
    labels = np.array([1, 1, 1, 1, 1, 0, 0, 0])
    predictions = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    tp, tn, fp, fn = 3, 2, 1, 2
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert task_metrics(TASKS["CoLA"], labels, predictions) == pytest.approx({"matthews": 100 * mcc})
    assert task_metrics(TASKS["MRPC"], labels, predictions) == pytest.approx(
        {"accuracy": 100 * 5 / 8, "f1": 100 * 2 * tp / (2 * tp + fp + fn)})
    scores, predicted = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.0, 5.0])
    # Pearson by hand: deviations (-1.5, -.5, .5, 1.5) and (-1.25, -2.25, .75, 2.75).
    pearson = (1.875 + 1.125 + 0.375 + 4.125) / math.sqrt(5.0 * (1.5625 + 5.0625 + 0.5625 + 7.5625))
    spearman = 1 - 6 * (1 + 1 + 0 + 0) / (4 * 15)  # ranks (1,2,3,4) against (2,1,3,4)
    assert task_metrics(TASKS["STS-B"], scores, predicted) == pytest.approx(
        {"pearson": 100 * pearson, "spearman": 100 * spearman})
    assert task_metrics(TASKS["STS-B"], scores, np.full(4, 2.0)) == {"pearson": 0.0, "spearman": 0.0}


def test_majority_baseline():
    assert majority_predictions(TASKS["RTE"], np.array([0, 1, 1]), 4).tolist() == [1, 1, 1, 1]
    assert majority_predictions(TASKS["STS-B"], np.array([1.0, 2.0, 4.5]), 2).tolist() == [2.5, 2.5]


# --- fine-tuning ---------------------------------------------------------------------------------------

def test_length_grouped_batches_cover_every_example_once():
    lengths = np.random.default_rng(0).integers(5, 60, size=1000)
    batches = length_grouped_batches(lengths, 32, torch.Generator().manual_seed(1))
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(1000))
    assert all(len(b) <= 32 for b in batches)
    # Sorting within pools: the padding wasted is far below a random batching's.
    waste = sum((lengths[b].max() - lengths[b]).sum() for b in batches)
    shuffled = np.random.default_rng(2).permutation(1000)
    random_waste = sum((lengths[b].max() - lengths[b]).sum() for b in np.array_split(shuffled, len(batches)))
    assert waste < 0.2 * random_waste
    again = length_grouped_batches(lengths, 32, torch.Generator().manual_seed(1))
    assert all((a == b).all() for a, b in zip(batches, again))


def test_batches_pad_to_their_longest_example():
    data = Encoded([np.array([101, 7, 102]), np.array([101, 102])], [np.zeros(3, int), np.zeros(2, int)], 0)
    batch = data.batch(np.array([1, 0]))
    assert batch["input_ids"].tolist() == [[101, 102, 0], [101, 7, 102]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_encoder(tmp_path_factory.mktemp("glue-encoder"), hidden=32, layers=2)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("glue-sample") / "glue", n_train=96, n_dev=40)


def test_prediction_does_not_depend_on_batching(tiny, sample):
    """Padding is masked: each example's output is the same alone as in a length-sorted batch."""
    encoder = load_encoder(str(tiny))
    dev = read_split(sample, "MRPC", "dev")
    model = SequenceClassifier(encoder.model, 1, seed=0)
    data = encode_split(encoder.tokenizer, dev, 128)
    together = predict(model, TASKS["STS-B"], data, batch_size=16)  # regression: the raw output, compared exactly
    alone = np.array([predict(model, TASKS["STS-B"], Encoded([data.ids[i]], [data.segments[i]], data.pad_id), 1)[0]
                      for i in range(len(dev))])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pooling", ["pooler", "mean"])
def test_interrupted_run_resumes_bitwise(tiny, sample, tmp_path, pooling):
    """Stopped after two of three epochs (its checkpoint kept), the run continues to the same weights and
    predictions as an uninterrupted run."""
    task = TASKS["SST-2"]
    train, dev = read_split(sample, task, "train"), read_split(sample, task, "dev")
    settings = GlueSettings(epochs=3, batch_size=16, learning_rate=1e-3, pooling=pooling)
    whole = finetune(load_encoder(str(tiny)), task, train, [dev], settings, seed=4, progress=False)
    checkpoint = tmp_path / "checkpoint.safetensors"

    class Stop(Exception):
        pass

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        finetune(load_encoder(str(tiny)), task, train, [dev], settings, seed=4, checkpoint=checkpoint,
                 on_epoch=stop_after_two, progress=False, checkpoint_every=0)
    replayed = []
    resumed = finetune(load_encoder(str(tiny)), task, train, [dev], settings, seed=4, checkpoint=checkpoint,
                       on_epoch=replayed.append, progress=False, checkpoint_every=0)
    assert resumed.resumed_at_epoch == 2 and [r.get("replayed", False) for r in replayed] == [True, True, False]
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in whole.history]
    np.testing.assert_array_equal(resumed.predictions["dev"], whole.predictions["dev"])


def test_regression_learns_on_the_standardised_scale(tiny, sample):
    """STS-B's predictions come back on the 0-5 scale, centred near the training mean."""
    task = TASKS["STS-B"]
    train, dev = read_split(sample, task, "train"), read_split(sample, task, "dev")
    result = finetune(load_encoder(str(tiny)), task, train, [dev], GlueSettings(epochs=2, batch_size=16), 0,
                      progress=False)
    predicted = result.predictions["dev"]
    assert abs(predicted.mean() - train.labels.mean()) < 0.5 * train.labels.std()


def test_execute_stores_and_reuses_a_run(tiny, sample, tmp_path):
    """A run's metrics are those of its stored predictions; the same run is then reused, a changed
    setting or data file makes a new one."""
    encoder = GlueEncoder("tiny", {"name": str(tiny), "untrained": False, "seed": 0})
    run = GlueRun(encoder, "MRPC", 0, str(sample), GlueSettings(epochs=1, batch_size=16), max_train=64)
    first = execute(run, tmp_path, progress=False)
    assert first["outcome"] == "trained" and first["n_train"] == 64
    stored = np.load(tmp_path / "glue" / first["key"] / "predictions.dev.npy")
    dev = read_split(sample, "MRPC", "dev")
    assert first["metrics"]["dev"] == pytest.approx(task_metrics(TASKS["MRPC"], dev.labels, stored))
    assert not (tmp_path / "glue" / first["key"] / "checkpoint.safetensors").exists()
    assert execute(run, tmp_path, progress=False)["outcome"] == "reused"
    changed = GlueRun(encoder, "MRPC", 0, str(sample), GlueSettings(epochs=1, batch_size=8), max_train=64)
    assert changed.key != run.key


def test_encoder_choices(tmp_path):
    base = {"name": "minilm", "untrained": False, "seed": 0}
    folder = tmp_path / "meg_transfer/checkpoints"
    folder.mkdir(parents=True)
    cards = {"meg_all_run1_seed0": [{"dataset": "meg", "subject": "A"}, {"dataset": "meg", "subject": "B"}],
             "fmri_1_run1_seed0": [{"dataset": "fmri", "subject": "1"}],
             "meg_all_run2_seed0": [{"dataset": "meg", "subject": "A"}, {"dataset": "meg", "subject": "B"}]}
    for label, participants in cards.items():
        run = int(label.split("run")[1][0])
        (folder / f"{label}.json").write_text(json.dumps({
            "task": label, "encoder": base, "encoder_trained": True, "encoder_weights": f"checkpoints/{label}.safetensors",
            "participants": participants, "heldout_run": run, "seed": 0}))
    chosen = encoder_choices(["pretrained", "meg_transfer"], base, tmp_path)
    assert chosen[0] == GlueEncoder("pretrained", base)
    assert chosen[1].weights == str(tmp_path / "meg_transfer/checkpoints/meg_all_run1_seed0.safetensors")
    with pytest.raises(ConfigError, match="neither 'pretrained'"):
        encoder_choices(["jiont"], base, tmp_path)
    with pytest.raises(InputError, match="no such file"):
        encoder_choices(["missing.safetensors"], base, tmp_path)


# --- Table 1 -------------------------------------------------------------------------------------------

def _result(encoder, task, seed, metrics, majority):
    return {"encoder": encoder, "task": task, "seed": seed, "metrics": metrics, "majority": majority}


def test_table1_layout_means_and_paper_columns():
    results = [_result("pretrained", "MNLI", s, {"dev_matched": {"accuracy": 80.0 + s},
                                                 "dev_mismatched": {"accuracy": 81.0}},
                       {"dev_matched": {"accuracy": 35.0}, "dev_mismatched": {"accuracy": 36.0}}) for s in (0, 1)]
    results += [_result("joint", "MNLI", 0, {"dev_matched": {"accuracy": 79.0}, "dev_mismatched": {"accuracy": 82.0}},
                        {"dev_matched": {"accuracy": 35.0}, "dev_mismatched": {"accuracy": 36.0}}),
                _result("pretrained", "CoLA", 0, {"dev": {"matthews": 40.0}}, {"dev": {"matthews": 0.0}})]
    table = table1(long_results(results), paper=True)
    assert list(table.index) == [("CoLA", "Matthews corr."), ("MNLI-m", "accuracy"), ("MNLI-mm", "accuracy")]
    assert list(table.columns) == ["pretrained", "pretrained SD", "joint", "majority", *PAPER_COLUMNS]
    assert table.loc[("MNLI-m", "accuracy"), "pretrained"] == 80.5
    assert table.loc[("MNLI-m", "accuracy"), "pretrained SD"] == pytest.approx(np.std([80, 81], ddof=1))
    assert np.isnan(table.loc[("CoLA", "Matthews corr."), "joint"])
    assert table.loc[("MNLI-mm", "accuracy"), PAPER_COLUMNS[2]] == 85.15
    text = markdown(table, "a notice")
    assert text.startswith("_a notice_") and "| MNLI-m | accuracy | 80.50 | 0.71 |  | 35.00 | 83.95 |" not in text
    assert "| MNLI-m | accuracy | 80.50 | 0.71 | 79.00 | 35.00 | 83.95 | 84.26 | 84.08 |" in text
    metrics = dvc_metrics(table, "a notice")
    assert metrics["data"] == "a notice" and metrics["joint"] == {"MNLI-m accuracy": 79.0, "MNLI-mm accuracy": 82.0}
    assert "pretrained SD" not in metrics and PAPER_COLUMNS[0] not in metrics
    assert isinstance(pd.read_csv(pd.io.common.StringIO(table.to_csv())), pd.DataFrame)


# --- the stage's parameters ----------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    ({"glue.tasks": ["RTE"]}, "the embedded sample has SST-2, MRPC, STS-B, CoLA, QQP, MNLI; RTE need(s) real GLUE data"),
    ({"glue.data": "/no/such/glue"}, "glue.data: expected 'sample', a GLUE release directory"),
    ({"glue.tasks": ["SST2"]}, "unknown task 'SST2'"),
    ({"glue.pooling": "max"}, "glue.pooling: expected one of pooler, cls, mean, found 'max'"),
    ({"glue.encoders": ["jiont"]}, "glue.encoders: 'jiont' is neither 'pretrained'"),
])
def test_stage_rejects_bad_parameters_with_one_message(tmp_path, overrides, message):
    from conftest import REPOSITORY, run_stage
    from experiments import set_params

    (tmp_path / "params.yaml").write_text((REPOSITORY / "params.yaml").read_text())
    set_params(tmp_path, overrides)
    code, stderr = run_stage(tmp_path, "glue")
    assert code == 1 and stderr.count("error:") == 1 and message in stderr, stderr
    assert not (tmp_path / "reports/glue").exists()
