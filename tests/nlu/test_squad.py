"""SQuAD 2.0: the release-format reader and writer against a file written here by hand, the official
metrics against hand-worked values, BERT's windows and labels against the characters they cover, span
prediction from logits set by hand, and a tiny encoder learning the embedded sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from experiments import tiny_encoder

from brainalign.errors import InputError
from brainalign.features.encoders import load_encoder
from brainalign.nlu.squad import (NOTICE, SpanQA, SquadExample, SquadSplit, encode_squad, exact_score, f1_score,
                                  normalize_answer, predict_answers, read_squad, squad_metrics,
                                  write_sample, write_squad)

# The release layout, literally: an answerable question with three annotators' answers (two the same), an
# unanswerable one with a plausible answer, and a second article.
RELEASE = {
    "version": "v2.0",
    "data": [
        {"title": "Lantern_Society", "paragraphs": [
            {"context": "Mara Quill founded the Lantern Society in Oslo in 1887. It moved to Bergen.",
             "qas": [
                 {"question": "Who founded the Lantern Society?", "id": "56be85543aeaaa14008c9063",
                  "answers": [{"text": "Mara Quill", "answer_start": 0}, {"text": "Quill", "answer_start": 5},
                              {"text": "Mara Quill", "answer_start": 0}], "is_impossible": False},
                 {"question": "When did the society close?", "id": "5a8d7bf7df8bba001a0f9ab1", "answers": [],
                  "is_impossible": True, "plausible_answers": [{"text": "1887", "answer_start": 50}]},
             ]},
            {"context": "The society met every Monday.",
             "qas": [{"question": "When did the society meet?", "id": "56be85543aeaaa14008c9064",
                      "answers": [{"text": "every Monday", "answer_start": 16}], "is_impossible": False}]},
        ]},
        {"title": "Copper_Guild", "paragraphs": [
            {"context": "The Copper Guild built a clock tower.",
             "qas": [{"question": "What did the guild build?", "id": "x1",
                      "answers": [{"text": "a clock tower", "answer_start": 23}], "is_impossible": False}]},
        ]},
    ],
}

EXPECTED = [
    SquadExample("56be85543aeaaa14008c9063", "Lantern_Society",
                 "Mara Quill founded the Lantern Society in Oslo in 1887. It moved to Bergen.",
                 "Who founded the Lantern Society?", ("Mara Quill", "Quill", "Mara Quill"), (0, 5, 0), False),
    SquadExample("5a8d7bf7df8bba001a0f9ab1", "Lantern_Society",
                 "Mara Quill founded the Lantern Society in Oslo in 1887. It moved to Bergen.",
                 "When did the society close?", (), (), True, ("1887",), (50,)),
    SquadExample("56be85543aeaaa14008c9064", "Lantern_Society", "The society met every Monday.",
                 "When did the society meet?", ("every Monday",), (16,), False),
    SquadExample("x1", "Copper_Guild", "The Copper Guild built a clock tower.", "What did the guild build?",
                 ("a clock tower",), (23,), False),
]


def _write_json(path: Path, payload) -> Path:
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from brainalign.features.encoders import resolve_encoder

    return AutoTokenizer.from_pretrained(str(resolve_encoder("minilm")), local_files_only=True)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("squad-sample"), n_train=600, n_dev=150, seed=0)


# --- the release format --------------------------------------------------------------------------------------

def test_release_file_is_read_to_its_examples(tmp_path):
    split = read_squad(_write_json(tmp_path / "dev-v2.0.json", RELEASE))
    assert split.examples == EXPECTED
    assert split.version == "v2.0" and split.source == str(tmp_path / "dev-v2.0.json") and len(split) == 4


def test_v1_file_without_the_flag_is_answerable(tmp_path):
    v1 = {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "Oslo is a city.", "qas": [
        {"question": "Which city?", "id": "q", "answers": [{"text": "Oslo", "answer_start": 0}]}]}]}]}
    (example,) = read_squad(_write_json(tmp_path / "v1.json", v1)).examples
    assert example.is_impossible is False and example.answers == ("Oslo",) and example.answer_starts == (0,)


def test_written_file_is_the_release_layout_and_reads_back(tmp_path):
    """write_squad lays the questions out exactly as the release (the literal above, key for key), and the
    embedded sample survives read -> write -> read unchanged, subsampled or not."""
    split = read_squad(_write_json(tmp_path / "release.json", RELEASE))
    written = write_squad(tmp_path / "out" / "again.json", split)
    assert json.loads(written.read_text(encoding="utf-8")) == RELEASE
    paths = write_sample(tmp_path / "sample", n_train=40, n_dev=20, seed=3)
    for path in paths.values():
        original = read_squad(path)
        assert read_squad(write_squad(tmp_path / "copy.json", original)).examples == original.examples
        part = original.subsample(7, seed=1)
        assert len(part) == 7 and read_squad(write_squad(tmp_path / "part.json", part)).examples == part.examples
        assert [original.ids.index(i) for i in part.ids] == sorted(original.ids.index(i) for i in part.ids)


def _qa(**fields):
    qa = {"question": "Who founded it?", "id": "q1", "answers": [{"text": "Mara Quill", "answer_start": 0}],
          "is_impossible": False}
    qa.update(fields)
    return {k: v for k, v in qa.items() if v is not None}


def _file(*qas, context="Mara Quill founded it in Oslo."):
    return {"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"context": context, "qas": list(qas)}]}]}


QA = "data[0].paragraphs[0].qas[0]"


@pytest.mark.parametrize("payload, field, found", [
    ('{"version": "v2.0", "data": [', "file", "invalid JSON"),
    ([1, 2], "top level", "a list: 2 item(s)"),
    ({"version": "v2.0"}, "data", "no such key"),
    ({"version": "v2.0", "data": []}, "data", "none in 0 article(s)"),
    ({"version": "v2.0", "data": [{"title": "T"}]}, "data[0].paragraphs", "no such key"),
    ({"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"qas": []}]}]}, "data[0].paragraphs[0].context",
     "no such key"),
    (_file(_qa(id=None)), f"{QA}.id", "no such key"),
    (_file(_qa(question=None)), f"{QA}.question", "no such key"),
    (_file(_qa(id=17)), f"{QA}.id", "an integer: 17"),
    (_file(_qa(answers=[{"text": "Oslo", "answer_start": 3}])), f"{QA}.answers[0].answer_start",
     "3, where the context reads 'a Qu' (the text first occurs at 25)"),
    (_file(_qa(answers=[{"text": "Bergen", "answer_start": 0}])), f"{QA}.answers[0].answer_start",
     "nowhere in the context"),
    (_file(_qa(answers=[{"text": "Mara Quill", "answer_start": "0"}])), f"{QA}.answers[0].answer_start",
     "a string: '0'"),
    (_file(_qa(answers=[{"text": "Mara Quill", "answer_start": True}])), f"{QA}.answers[0].answer_start",
     "a boolean: True"),
    (_file(_qa(answers=[{"text": "Mara", "answer_start": -30}])), f"{QA}.answers[0].answer_start", "-30"),
    (_file(_qa(answers=[{"answer_start": 0}])), f"{QA}.answers[0].text", "no such key"),
    (_file(_qa(is_impossible=True)), f"{QA}.answers", "1 (first: 'Mara Quill')"),
    (_file(_qa(answers=[])), f"{QA}.answers", "an empty list"),
    (_file(_qa(is_impossible="no")), f"{QA}.is_impossible", "a string: 'no'"),
    (_file(_qa(), _qa(question="Where?")), "data[0].paragraphs[0].qas[1].id", "'q1' again (first at " + QA + ")"),
    (_file(_qa(answers=[], is_impossible=True, plausible_answers=[{"text": "Oslo"}])),
     f"{QA}.plausible_answers[0].answer_start", "no such key"),
])
def test_malformed_file_is_one_clear_error(tmp_path, payload, field, found):
    path = _write_json(tmp_path / "train-v2.0.json", payload)
    with pytest.raises(InputError) as error:
        read_squad(path)
    assert error.value.source == str(path) and error.value.field == field and found in error.value.found
    assert str(error.value).startswith(f"{path}: {field}: expected ")


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_squad(tmp_path / "absent.json")


# --- the official metrics ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, normalised", [
    ("The Lantern Society!", "lantern society"),
    ("  a  brass\ttelescope. ", "brass telescope"),
    ("Lantern-Society", "lanternsociety"),  # punctuation goes before words are split: the hyphen joins them
    ("theatre and an anthem", "theatre and anthem"),  # only whole words are articles
    ("THE", ""),
])
def test_normalisation_is_the_official_one(text, normalised):
    assert normalize_answer(text) == normalised


@pytest.mark.parametrize("gold, prediction, exact, f1", [
    ("Mara Quill", "mara quill.", 1, 1.0),
    ("Mara Quill", "Quill", 0, 2 / 3),  # P = 1/1, R = 1/2: 2 * 1 * 0.5 / 1.5
    ("the brass telescope", "a brass telescope in Oslo", 0, 2 / 3),  # {brass, telescope} of 4 predicted: P 1/2, R 1
    ("in in Oslo", "in Oslo Oslo", 0, 2 / 3),  # bags: common {in: 1, oslo: 1} = 2; P 2/3, R 2/3
    ("1887", "1888", 0, 0.0),
    ("", "", 1, 1.0),
    ("", "Oslo", 0, 0.0),
    ("Oslo", "", 0, 0.0),
])
def test_exact_and_f1_by_hand(gold, prediction, exact, f1):
    assert exact_score(gold, prediction) == exact
    assert f1_score(gold, prediction) == pytest.approx(f1)


def test_squad_metrics_by_hand():
    context = "Mara Quill built a brass telescope in Oslo in 1887."
    examples = [
        SquadExample("q1", "T", context, "Who?", ("Mara Quill", "Quill"), (0, 5), False),
        SquadExample("q2", "T", context, "What?", ("a brass telescope",), (17, ), False),
        SquadExample("q3", "T", context, "When?", ("1887",), (46,), False),
        SquadExample("q4", "T", context, "Why?", (), (), True),
        SquadExample("q5", "T", context, "How?", (), (), True),
    ]
    predictions = {"q1": "quill.", "q2": "the brass telescope in Oslo", "q3": "", "q4": "", "q5": "Oslo",
                   "not-asked": "ignored"}
    # q1: "quill" matches the second gold answer: EM 1, F1 1. q2: EM 0, F1 2/3 (P 2/4, R 2/2). q3: no answer
    # given: 0, 0. q4: "" for an unanswerable question: 1, 1. q5: an answer to an unanswerable question: 0, 0.
    scores = squad_metrics(SquadSplit(examples, "hand"), predictions)
    assert scores == pytest.approx({
        "exact": 100 * 2 / 5, "f1": 100 * (1 + 2 / 3 + 1) / 5, "total": 5,
        "HasAns_exact": 100 * 1 / 3, "HasAns_f1": 100 * (1 + 2 / 3) / 3, "HasAns_total": 3,
        "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2})
    only_answerable = squad_metrics(SquadSplit(examples[:3], "hand"), predictions)
    assert "NoAns_f1" not in only_answerable and only_answerable["f1"] == pytest.approx(100 * (5 / 3) / 3)


def test_gold_answers_that_normalise_to_nothing_count_as_no_answer():
    """The official script drops such gold answers, leaving [""]: the empty prediction then scores 1."""
    example = SquadExample("q", "T", "The end.", "Which word?", ("The",), (0,), False)
    assert squad_metrics(SquadSplit([example], "hand"), {"q": ""})["HasAns_exact"] == 100.0


def test_a_missing_prediction_is_an_error():
    example = SquadExample("q", "T", "Oslo.", "Where?", ("Oslo",), (0,), False)
    with pytest.raises(ValueError, match="no prediction for 1 of 1"):
        squad_metrics(SquadSplit([example], "hand"), {})


# --- windows and labels ------------------------------------------------------------------------------------

def test_sample_answers_map_back_through_the_offsets(sample, tokenizer):
    """Every answerable sample question is labelled, and its start and end pieces cover exactly the answer's
    characters; unanswerable questions are labelled [CLS]."""
    split = read_squad(sample["train"])
    features = encode_squad(tokenizer, split, max_length=128)
    assert len(features) == len(split)  # the sample's paragraphs fit one window
    for f in range(len(features)):
        example = split.examples[features.example_index[f]]
        start, end = features.start_positions[f], features.end_positions[f]
        if example.is_impossible:
            assert start == end == 0
            continue
        offsets, first = features.offsets[f], features.context_start[f]
        assert first <= start <= end < first + len(offsets)
        assert example.context[offsets[start - first, 0]:offsets[end - first, 1]] == example.answers[0]
        ids = features.ids[f]
        assert ids[0] == tokenizer.cls_token_id and ids[first - 1] == ids[-1] == tokenizer.sep_token_id
        assert (features.segments[f][:first] == 0).all() and (features.segments[f][first:] == 1).all()


def _slow_max_context(spans, position):
    """BERT's _check_is_max_context, as written there: the window with the best min(left, right) context."""
    best_score, best = None, None
    for index, (start, length) in enumerate(spans):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_score, best = score, index
    return best


def test_long_context_is_cut_into_strided_windows(tokenizer):
    """A context longer than max_length gives windows every doc_stride pieces; the answer is labelled in
    exactly the windows whose characters contain it, and each piece has its best context in one window."""
    sentences = [f"Member {n} of the club lived in house number {n + 100}." for n in range(12)]
    context = " ".join(sentences)
    answer = "house number 106"
    start = context.index(answer)
    split = SquadSplit([SquadExample("q", "T", context, "Where did member 6 live?", (answer,), (start,), False)],
                       "hand")
    question = tokenizer("Where did member 6 live?", add_special_tokens=False)["input_ids"]
    pieces = tokenizer(context, add_special_tokens=False)["input_ids"]
    max_length, stride = 48, 10
    room = max_length - len(question) - 3
    features = encode_squad(tokenizer, split, max_length=max_length, doc_stride=stride)
    n = len(features)
    assert n == 1 + -(-(len(pieces) - room) // stride)  # windows start at 0, 10, 20 ... until one reaches the end
    assert n > 3 and all(len(ids) <= max_length for ids in features.ids)
    window_starts = []
    for f in range(n):
        ids, first = features.ids[f], features.context_start[f]
        context_pieces = ids[first:-1]
        # the window is the context's pieces from some start on, each window stride pieces after the last
        at = next(s for s in range(len(pieces)) if list(pieces[s:s + len(context_pieces)]) == list(context_pieces))
        window_starts.append(at)
        assert list(ids[:first]) == [tokenizer.cls_token_id, *question, tokenizer.sep_token_id]
    assert window_starts == [stride * f for f in range(n)]
    assert window_starts[-1] + len(features.ids[-1]) - features.context_start[-1] - 1 == len(pieces)
    assert all(len(features.ids[f]) == max_length for f in range(n - 1))
    contains = []
    for f in range(n):
        offsets = features.offsets[f]
        holds = offsets[0, 0] <= start and start + len(answer) <= offsets[-1, 1]
        contains.append(holds)
        labelled = features.start_positions[f] > 0
        assert labelled == holds
        if labelled:
            s = features.start_positions[f] - features.context_start[f]
            e = features.end_positions[f] - features.context_start[f]
            assert context[offsets[s, 0]:offsets[e, 1]] == answer
        else:
            assert features.end_positions[f] == 0
    assert 2 <= sum(contains) < n  # the answer lies in the overlap of some windows, not in all
    spans = [(window_starts[f], len(features.offsets[f])) for f in range(n)]
    for position in range(len(pieces)):
        owners = [f for f in range(n) if window_starts[f] <= position < window_starts[f] + len(features.offsets[f])
                  and features.max_context[f][position - window_starts[f]]]
        assert owners == [_slow_max_context(spans, position)]


def test_batches_pad_and_carry_labels(sample, tokenizer):
    split = read_squad(sample["dev"])
    features = encode_squad(tokenizer, split, max_length=128)
    rows = np.array([3, 0])
    batch = features.batch(rows)
    width = max(len(features.ids[r]) for r in rows)
    assert batch["input_ids"].shape == (2, width)
    for i, r in enumerate(rows):
        n = len(features.ids[r])
        assert batch["input_ids"][i, :n].tolist() == features.ids[r].tolist()
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (width - n)
        assert (batch["input_ids"][i, n:] == tokenizer.pad_token_id).all()
    assert batch["start_positions"].tolist() == features.start_positions[rows].tolist()
    assert batch["end_positions"].tolist() == features.end_positions[rows].tolist()


# --- prediction from logits set by hand --------------------------------------------------------------------

class FixedLogits(torch.nn.Module):
    """A stand-in for SpanQA whose start and end logits are a fixed value per vocabulary id."""

    def __init__(self, tokenizer, start: dict[str, float], end: dict[str, float]) -> None:
        super().__init__()
        self.start = torch.zeros(len(tokenizer))
        self.end = torch.zeros(len(tokenizer))
        for table, values in ((self.start, start), (self.end, end)):
            for token, value in values.items():
                assert token in tokenizer.get_vocab(), token
                table[tokenizer.convert_tokens_to_ids(token)] = value

    def forward(self, input_ids, attention_mask, token_type_ids, **labels):
        return self.start[input_ids], self.end[input_ids]


CONTEXT = "Mara Quill founded the Lantern Society in Oslo in 1887."


def _one(question: str, context: str = CONTEXT) -> SquadSplit:
    return SquadSplit([SquadExample("q", "T", context, question, (), (), True)], "hand")


@pytest.mark.parametrize("start, end, kwargs, expected", [
    ({"lantern": 5}, {"society": 4}, {}, "Lantern Society"),  # 9 beats the null score 0
    ({"lantern": 5, "[CLS]": 5}, {"society": 4, "[CLS]": 4.5}, {}, ""),  # null 9.5 beats 9
    ({"lantern": 5, "[CLS]": 5}, {"society": 4, "[CLS]": 4.5}, {"null_threshold": 1.0}, "Lantern Society"),
    # the best end lies before the best start: the best valid pair is oslo..oslo (5 + 3)
    ({"oslo": 5}, {"mara": 6, "oslo": 3}, {}, "Oslo"),
    # a span of 11 pieces (mara qui ##ll ... 1887) is longer than max_answer_length 4: the next best start wins
    ({"mara": 5, "1887": 2}, {"1887": 5}, {"max_answer_length": 4}, "1887"),
    ({"mara": 5, "1887": 2}, {"1887": 5}, {}, CONTEXT[:-1]),
    # the question's own pieces (which) never start an answer, nor does a span end in [SEP]
    ({"which": 9, "qui": 1}, {"[SEP]": 9, "founded": 1}, {}, "Quill founded"),  # quill is qui ##ll
])
def test_prediction_from_fixed_logits(tokenizer, start, end, kwargs, expected):
    split = _one("Which society did Mara found?")
    features = encode_squad(tokenizer, split, max_length=64)
    assert predict_answers(FixedLogits(tokenizer, start, end), features, split, **kwargs) == {"q": expected}


class NullUnlessOslo(FixedLogits):
    """[CLS] scores ``null`` (start and end each) in the windows that hold "oslo", ``elsewhere`` in the others."""

    def __init__(self, tokenizer, null: float, elsewhere: float) -> None:
        super().__init__(tokenizer, {"oslo": 3}, {"oslo": 3})
        self.oslo, self.null, self.elsewhere = tokenizer.convert_tokens_to_ids("oslo"), null, elsewhere

    def forward(self, input_ids, attention_mask, token_type_ids, **labels):
        start, end = super().forward(input_ids, attention_mask, token_type_ids)
        cls = torch.where((input_ids == self.oslo).any(1), self.null, self.elsewhere)
        start[:, 0], end[:, 0] = cls, cls
        return start, end


def test_prediction_over_windows(tokenizer):
    """The best span is sought over all windows and the null score is the smallest over them (BERT's rule):
    "oslo" (3 + 3) lies in some windows of the long context below; [CLS] scores differ between windows."""
    context = " ".join(["The members met in a hall."] * 8 + ["They moved to Oslo."] + ["They met again."] * 8)
    split = _one("Where did they move?", context)
    features = encode_squad(tokenizer, split, max_length=32, doc_stride=8)
    holding = sum(tokenizer.convert_tokens_to_ids("oslo") in ids for ids in features.ids)
    assert len(features) > holding > 0
    # null min(2 + 2, 10 + 10) = 4 < 6 where oslo is, although the windows without it say 20
    assert predict_answers(NullUnlessOslo(tokenizer, 2, 10), features, split) == {"q": "Oslo"}
    # null min(10 + 10, 3.5 + 3.5) = 7 > 6: the windows without oslo hold the smallest null score
    assert predict_answers(NullUnlessOslo(tokenizer, 10, 3.5), features, split) == {"q": ""}


# --- the model ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_encoder(tmp_path_factory.mktemp("squad-encoder"), hidden=32, layers=2)


def test_loss_is_the_mean_of_the_unpadded_cross_entropies(tiny, sample):
    """The loss of a padded batch equals the mean over examples of (-log p(start) - log p(end)) / 2, each
    computed alone, unpadded; the head starts as BERT's (N(0, 0.02), zero bias), seeded."""
    encoder = load_encoder(str(tiny))
    split = read_squad(sample["dev"]).subsample(12, seed=0)
    features = encode_squad(encoder.tokenizer, split, max_length=128)
    model = SpanQA(encoder.model, seed=3).eval()
    assert torch.equal(model.qa_outputs.weight, SpanQA(encoder.model, seed=3).qa_outputs.weight)
    assert model.qa_outputs.bias.abs().max() == 0 and 0.01 < float(model.qa_outputs.weight.detach().std()) < 0.03
    rows = np.arange(len(features))
    assert len(set(features.lengths[rows])) > 1  # the batch really pads
    with torch.no_grad():
        together = float(model.loss(features.batch(rows)))
        alone = []
        for r in rows:
            start, end = model(**features.batch(np.array([r])))
            alone.append((-torch.log_softmax(start[0].double(), 0)[features.start_positions[r]]
                          - torch.log_softmax(end[0].double(), 0)[features.end_positions[r]]) / 2)
    assert together == pytest.approx(float(np.mean(alone)), rel=1e-5)


def test_sample_is_marked_and_deterministic(tmp_path):
    first = write_sample(tmp_path / "a", n_train=30, n_dev=10, seed=5)
    again = write_sample(tmp_path / "b", n_train=30, n_dev=10, seed=5)
    for split in ("train", "dev"):
        assert first[split].name == f"{split}-v2.0.json"
        assert first[split].read_bytes() == again[split].read_bytes()
        assert json.loads(first[split].read_text())["notice"] == NOTICE
    train, dev = read_squad(first["train"]), read_squad(first["dev"])
    assert len(train) == 30 and len(dev) == 10
    share = np.mean([e.is_impossible for e in read_squad(write_sample(tmp_path / "c", 600, 10)["train"]).examples])
    assert 0.2 < share < 0.45  # about a third unanswerable, as SQuAD 2.0
    assert all(len(e.plausible_answers) == 1 for e in train.examples if e.is_impossible)
