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
  (no header, four columns);
- ``QQP``: question pairs, duplicates when one rephrases the other, not when the thing or the action asked
  about differs (six columns, ``is_duplicate`` last);
- ``MNLI``: a premise and a hypothesis that it entails (a generalisation), contradicts (a negation or another
  actor) or leaves open (added information) (the release's 12 columns, 16 in ``dev_matched.tsv`` and
  ``dev_mismatched.tsv``, whose genres differ from the training file's as in the release).

Scores on it say that the stage works and that an encoder can learn these tasks; they are not GLUE
scores, and the stage's outputs say so.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from brainalign.files import atomic_path

SAMPLE_TASKS = ("SST-2", "MRPC", "STS-B", "CoLA", "QQP", "MNLI")
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


_HOW = [("How do I {v} {t}?", "What is the best way to {v} {t}?"), ("How can I {v} {t}?", "How should one {v} {t}?"),
        ("Why is it hard to {v} {t}?", "What makes it difficult to {v} {t}?")]
_Q_VERBS = ["learn", "fix", "clean", "paint", "sell", "build", "choose", "repair"]
_Q_THINGS = ["a bicycle", "a piano", "a garden fence", "an old laptop", "a kitchen table", "a wooden boat",
             "a leaking roof", "a used car"]


def _qqp(rng: np.random.Generator) -> tuple[str, str, int]:
    forms, verb, thing = _HOW[rng.integers(len(_HOW))], str(rng.choice(_Q_VERBS)), str(rng.choice(_Q_THINGS))
    first = forms[int(rng.integers(2))].format(v=verb, t=thing)
    label = int(rng.random() < 0.37)  # QQP's share of duplicates
    if label:
        second = forms[int(rng.integers(2))].format(v=verb, t=thing)
    elif rng.random() < 0.5:
        second = forms[int(rng.integers(2))].format(v=verb, t=str(rng.choice([x for x in _Q_THINGS if x != thing])))
    else:
        second = forms[int(rng.integers(2))].format(v=str(rng.choice([x for x in _Q_VERBS if x != verb])), t=thing)
    return first, second, label


_PLACES = ["in the park", "at the station", "in the kitchen", "on the beach", "in a small office", "near the river"]
_GENERAL = {"A man": "A person", "A woman": "A person", "A child": "A young person", "A dog": "An animal",
            "Two men": "Some people", "A girl": "A young person", "A cat": "An animal", "A chef": "A person"}
_BECAUSE = ["because it is Monday", "for the first time", "while it rains", "before dinner", "with great care"]
_NLI_LABELS = ("entailment", "neutral", "contradiction")


def _mnli(rng: np.random.Generator) -> tuple[str, str, str]:
    actor, action, thing = (_ACTORS[rng.integers(len(_ACTORS))][0], _ACTIONS[rng.integers(len(_ACTIONS))][0],
                            _THINGS[rng.integers(len(_THINGS))][0])
    place = str(rng.choice(_PLACES))
    if actor.startswith("Two"):
        action = action.replace("is ", "are ", 1)
    premise = f"{actor} {action} {thing} {place}."
    label = _NLI_LABELS[int(rng.integers(3))]
    if label == "entailment":
        hypothesis = f"{_GENERAL[actor]} {action} {thing}." if rng.random() < 0.5 else f"{actor} {action} something."
    elif label == "neutral":
        hypothesis = f"{actor} {action} {thing} {rng.choice(_BECAUSE)}."
    else:
        other = str(rng.choice([a for a, _ in _ACTORS if a != actor]))
        verb = action.split(" ", 1)
        hypothesis = (f"{actor} {verb[0]} not {verb[1]} anything." if rng.random() < 0.5
                      else f"Only {other.lower()} {'are' if other.startswith('Two') else 'is'} {verb[1]} {thing} "
                           f"{place}; {actor.lower()} {verb[0]} asleep.")
    return premise, hypothesis, label


_GENRES = {"train": ("fiction", "government", "slate", "telephone", "travel"), "dev_matched": ("fiction", "travel"),
           "dev_mismatched": ("letters", "verbatim")}


def _rows(task: str, rng: np.random.Generator, n: int, split: str = "train") -> list[str]:
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
    if task == "QQP":
        return [f"{i}\t{2 * i + 1}\t{2 * i + 2}\t{a}\t{b}\t{label}"
                for i, (a, b, label) in enumerate(_qqp(rng) for _ in range(n))]
    if task == "MNLI":
        genres = _GENRES[split]
        rows = []
        for i in range(n):
            premise, hypothesis, label = _mnli(rng)
            annotators = [label] * (1 if split == "train" else 5)
            rows.append("\t".join([str(i), str(100000 + i), f"{100000 + i}e", str(genres[i % len(genres)]),
                                   "( )", "( )", "(ROOT)", "(ROOT)", premise, hypothesis, *annotators, label]))
        return rows
    raise ValueError(f"no sample task {task!r}; the sample has {', '.join(SAMPLE_TASKS)}")


_MNLI_COLUMNS = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                 "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\t")
_HEADERS = {"SST-2": "sentence\tlabel", "MRPC": "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String",
            "STS-B": "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
            "CoLA": None, "QQP": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
            "MNLI": _MNLI_COLUMNS + "label1\tgold_label"}
_MNLI_DEV = _MNLI_COLUMNS + "label1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label"


def _splits(task: str, n_train: int, n_dev: int) -> list[tuple[str, int]]:
    """The task's files: train, then its dev split(s) (MNLI's matched and mismatched)."""
    return [("train", n_train)] + ([("dev_matched", n_dev), ("dev_mismatched", n_dev)] if task == "MNLI"
                                   else [("dev", n_dev)])


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
            for s, (split, n) in enumerate(_splits(task, n_train, n_dev)):
                rng = np.random.default_rng([seed, t, s])
                header = _MNLI_DEV if task == "MNLI" and split != "train" else _HEADERS[task]
                lines = ([header] if header else []) + _rows(task, rng, n, split)
                (tmp / task / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(root)
