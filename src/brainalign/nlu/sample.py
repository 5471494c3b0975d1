"""The embedded GLUE-format sample: small made-up tasks in the release's exact file layout. NOT GLUE.

GLUE cannot ship here (its licences vary, and nothing may be downloaded at run time), so the offline
default fine-tunes on four small tasks this project generates from templates, written in the files and
quirks of the real release so that the same reader reads both:

- ``SST-2``: review snippets whose sentiment is carried by an adjective, flipped by "not", and decided
  by the clause after "but" (lower-case, tokenised, header ``sentence<TAB>label``);
- ``MRPC``: a news-like sentence and either a paraphrase (synonyms, clause order) or a near copy with
  one fact changed (a person, a number, a verb) (UTF-8 byte-order mark, five columns);
- ``STS-B``: a scene sentence and a variant with some of subject, verb and object replaced, scored 0-5
  by what was replaced (ten columns, score last);
- ``CoLA``: sentences that are grammatical, or broken by agreement, word order or a missing argument
  (no header, four columns).

Scores on it say that the stage works and that an encoder can learn these tasks; they are not GLUE
scores, and the stage's outputs say so.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from brainalign.files import atomic_path

SAMPLE_TASKS = ("SST-2", "MRPC", "STS-B", "CoLA")
NOTICE = ("brainalign's embedded GLUE-format sample (made-up template tasks in the release's file layout): "
          "these are not GLUE scores")

_SUBJECTS = ["the film", "this movie", "the story", "the script", "the acting", "the ending", "the soundtrack",
             "the director 's latest", "this comedy", "the sequel", "the cast", "the plot"]
_POSITIVE = ["charming", "moving", "brilliant", "funny", "gripping", "beautiful", "smart", "delightful",
             "powerful", "touching", "witty", "wonderful", "fresh", "warm"]
_NEGATIVE = ["dull", "tedious", "clumsy", "boring", "shallow", "predictable", "messy", "lifeless", "pointless",
             "awful", "bland", "tiresome", "flat", "stale"]
_ADVERBS = ["", "rather ", "very ", "often ", "quietly ", "thoroughly ", "consistently "]

_PEOPLE = ["the chairman", "Mr. Smith", "the minister", "the company 's chief", "Ms. Jones", "the senator",
           "the spokesman", "the governor", "the director", "Mr. Brown"]
_VERBS = [("said", "stated", "denied"), ("bought", "acquired", "sold"), ("raised", "increased", "cut"),
          ("rejected", "turned down", "accepted"), ("opened", "launched", "closed")]
_OBJECTS = ["the offer", "the plan", "the shares", "the factory", "the proposal", "the contract", "the deal",
            "the prices"]
_WHEN = [("on Monday", "Monday"), ("last week", "last week"), ("on Tuesday", "Tuesday"),
         ("in March", "in March"), ("late on Friday", "Friday night")]

_ACTORS = [("A man", "A guy"), ("A woman", "A lady"), ("A child", "A kid"), ("A dog", "A puppy"),
           ("Two men", "Two guys"), ("A girl", "A young girl"), ("A cat", "A kitten"), ("A chef", "A cook")]
_ACTIONS = [("is playing", "is playing"), ("is cutting", "is slicing"), ("is eating", "is eating"),
            ("is carrying", "is holding"), ("is washing", "is cleaning"), ("is painting", "is painting")]
_THINGS = [("a guitar", "a guitar"), ("an onion", "an onion"), ("a bowl of soup", "some soup"),
           ("a box", "a box"), ("a car", "a car"), ("a fence", "a wooden fence"), ("a ball", "a ball")]

_NAMES = ["Sarah", "John", "the teacher", "my sister", "the children", "Tom", "the doctor", "our neighbours"]
_SINGULAR = {"Sarah", "John", "the teacher", "my sister", "Tom", "the doctor"}
_TRANSITIVE = [("reads", "read"), ("writes", "write"), ("likes", "like"), ("sees", "see"), ("finds", "find")]
_BOOKS = ["the book", "a letter", "the report", "a poem", "the map", "the answer"]


def _sst2(rng: np.random.Generator) -> tuple[str, int]:
    def adjective(positive: bool) -> str:
        return str(rng.choice(_POSITIVE if positive else _NEGATIVE))

    subject = str(rng.choice(_SUBJECTS))
    kind = rng.integers(4)
    label = int(rng.integers(2))
    if kind == 0:
        text = f"{subject} is {rng.choice(_ADVERBS)}{adjective(label == 1)} . "
    elif kind == 1:
        text = f"{subject} feels {adjective(label == 1)} and {adjective(label == 1)} . "
    elif kind == 2:  # negation flips the adjective's sentiment
        text = f"{subject} is not {adjective(label == 0)} . "
    else:  # the clause after "but" decides, as in the treebank's phrases
        other = str(rng.choice(_SUBJECTS))
        text = f"{subject} is {adjective(label == 0)} , but {other} is {adjective(label == 1)} . "
    return text, label


def _mrpc_sentence(person: str, verb: str, thing: str, when: str, number: int, front: bool) -> str:
    core = f"{person} {verb} {thing} worth {number} million dollars"
    sentence = f"{when[0].upper()}{when[1:]}, {core}." if front else f"{core[0].upper()}{core[1:]} {when}."
    return sentence


def _mrpc(rng: np.random.Generator) -> tuple[str, str, int]:
    person, verbs, thing = str(rng.choice(_PEOPLE)), _VERBS[rng.integers(len(_VERBS))], str(rng.choice(_OBJECTS))
    when, number = _WHEN[rng.integers(len(_WHEN))], int(rng.integers(2, 90))
    first = _mrpc_sentence(person, verbs[0], thing, when[0], number, bool(rng.integers(2)))
    label = int(rng.random() < 0.68)  # MRPC's share of paraphrases
    second_person, second_verb, second_number = person, verbs[1], number
    if not label:
        change = rng.integers(3)
        if change == 0:
            second_person = str(rng.choice([p for p in _PEOPLE if p != person]))
        elif change == 1:
            second_verb = verbs[2]
        else:
            second_number = number + int(rng.integers(3, 40))
    second = _mrpc_sentence(second_person, second_verb, thing, when[1], second_number, bool(rng.integers(2)))
    return first, second, label


def _stsb(rng: np.random.Generator) -> tuple[str, str, float]:
    slots = [_ACTORS, _ACTIONS, _THINGS]
    costs = [1.5, 2.0, 1.5]  # what a replaced actor, action or thing takes off the 5 of an exact paraphrase
    picks = [int(rng.integers(len(s))) for s in slots]
    first = " ".join(s[p][0] for s, p in zip(slots, picks)) + "."
    score = 5.0
    words = []
    for slot, pick, cost in zip(slots, picks, costs):
        if rng.random() < 0.45:
            pick = int(rng.choice([i for i in range(len(slot)) if i != pick]))
            score -= cost
        words.append(slot[pick][int(rng.integers(2))])
    score = float(np.clip(score + rng.normal(0, 0.25), 0, 5))
    return first, " ".join(words) + ".", round(score, 3)


def _cola(rng: np.random.Generator) -> tuple[str, int]:
    name, verb, book = str(rng.choice(_NAMES)), _TRANSITIVE[rng.integers(len(_TRANSITIVE))], str(rng.choice(_BOOKS))
    singular = name in _SINGULAR
    right = verb[0] if singular else verb[1]
    wrong = verb[1] if singular else verb[0]
    if rng.random() < 0.7:  # CoLA's share of acceptable sentences
        words = [name, right, book]
        if rng.random() < 0.5:
            words += ["every morning"]
        return " ".join(words)[0].upper() + " ".join(words)[1:] + ".", 1
    kind = rng.integers(3)
    if kind == 0:
        words = [name, wrong, book]
    elif kind == 1:
        words = [right, name, book] if rng.random() < 0.5 else [book, name, right]
    else:
        words = [name, right, "to"]
    text = " ".join(words)
    return text[0].upper() + text[1:] + ".", 0


def _rows(task: str, rng: np.random.Generator, n: int) -> list[str]:
    if task == "SST-2":
        return [f"{text}\t{label}" for text, label in (_sst2(rng) for _ in range(n))]
    if task == "MRPC":
        return [f"{label}\t{1000000 + 2 * i}\t{1000001 + 2 * i}\t{a}\t{b}"
                for i, (a, b, label) in enumerate(_mrpc(rng) for _ in range(n))]
    if task == "STS-B":
        return [f"{i}\tmain-captions\tsample\t2026\t{i:04d}\tnone\tnone\t{a}\t{b}\t{score:.3f}"
                for i, (a, b, score) in enumerate(_stsb(rng) for _ in range(n))]
    if task == "CoLA":
        return [f"ba26\t{label}\t{'' if label else '*'}\t{text}" for text, label in (_cola(rng) for _ in range(n))]
    raise ValueError(f"no sample task {task!r}; the sample has {', '.join(SAMPLE_TASKS)}")


_HEADERS = {"SST-2": "sentence\tlabel", "MRPC": "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String",
            "STS-B": "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
            "CoLA": None}


def write_sample(root: str | os.PathLike, n_train: int = 200, n_dev: int = 100, seed: int = 0,
                 tasks: tuple[str, ...] = SAMPLE_TASKS) -> Path:
    """Write the sample in the GLUE release layout, ``<root>/<TASK>/{train,dev}.tsv``, plus a README.

    Deterministic for a given ``seed``; the directory is replaced atomically.
    """
    with atomic_path(root) as tmp:
        tmp.mkdir(parents=True)
        (tmp / "README.md").write_text(f"# {NOTICE}\n\nWritten by brainalign.nlu.sample.write_sample "
                                       f"(seed {seed}, {n_train} training and {n_dev} dev examples a task).\n")
        for t, task in enumerate(tasks):
            (tmp / task).mkdir()
            for s, (split, n) in enumerate((("train", n_train), ("dev", n_dev))):
                rng = np.random.default_rng([seed, t, s])
                lines = ([_HEADERS[task]] if _HEADERS[task] else []) + _rows(task, rng, n)
                (tmp / task / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(root)
