"""SQuAD 2.0: the release JSON, an embedded made-up sample in its layout, BERT's span-QA recipe, the metrics.

- :func:`read_squad` / :func:`write_squad`: the release format (``train-v2.0.json``, ``dev-v2.0.json``):
  ``{"version", "data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question", "answers":
  [{"text", "answer_start"}], "is_impossible", "plausible_answers"?}]}]}]}``. The file is plain JSON and is
  checked, never trusted: every malformed file fails with one :class:`~brainalign.errors.InputError`
  naming the JSON path of the bad field (``data[3].paragraphs[0].qas[5].answers[0].answer_start``).
- :func:`write_sample`: the embedded sample, paragraphs generated from templates (people, societies,
  cities, years, objects) with several who/where/when/what questions each, about a third unanswerable
  (a fact the paragraph does not state, or an entity it does not mention, with a plausible answer as in
  SQuAD 2.0). It is **NOT SQuAD**: SQuAD cannot ship here (and nothing may be downloaded at run time),
  the sample only shows that the pipeline works and that an encoder can learn the task; no score on it
  is a SQuAD score.
- :func:`encode_squad`, :class:`SpanQA`, :func:`predict_answers`: BERT's SQuAD 2.0 recipe (Devlin et al.
  2019, ``run_squad.py``): ``[CLS] question [SEP] context window [SEP]``, the question cut to
  ``max_query_length`` pieces, the context cut into windows that start every ``doc_stride`` pieces (BERT's
  meaning of doc_stride: the step between windows, not their overlap); the answer's start and end pieces
  are the labels of a window that contains the whole answer, ``[CLS]`` (position 0) otherwise and for an
  unanswerable question; a linear layer gives each piece a start and an end logit; at prediction the best
  span over all windows of a question (start <= end, at most ``max_answer_length`` pieces, inside the
  context, its start piece in the window where it has most context) competes with the null score
  (start = end = [CLS], the smallest over windows), and the empty answer wins when the null score is
  higher.
- :func:`squad_metrics`: the official v2.0 evaluation script's exact match and F1 (answers normalised:
  lower case, no punctuation, no articles, single spaces; the best over gold answers; an unanswerable
  question's only gold answer is the empty string), in percent, overall and for answerable (``HasAns``)
  and unanswerable (``NoAns``) questions.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from brainalign.errors import ConfigError, InputError
from brainalign.files import atomic_path

log = logging.getLogger(__name__)

NOTICE = ("brainalign's embedded SQuAD-format sample (made-up template paragraphs in the SQuAD 2.0 release "
          "layout): NOT SQuAD; no score on it is a SQuAD score")


# --- the examples and the release format ----------------------------------------------------------------

@dataclass(frozen=True)
class SquadExample:
    """One question about one paragraph.

    ``answers`` and ``answer_starts`` (character offsets into ``context``) are parallel; both are empty
    when ``is_impossible``. The dev files list several annotators' answers (some repeated); training uses
    the first. ``plausible_answers``/``plausible_starts``: what an unanswerable question's writer had in
    mind, kept so that files round-trip; neither training nor scoring reads them.
    """

    id: str
    title: str
    context: str
    question: str
    answers: tuple[str, ...]
    answer_starts: tuple[int, ...]
    is_impossible: bool
    plausible_answers: tuple[str, ...] = ()
    plausible_starts: tuple[int, ...] = ()


@dataclass
class SquadSplit:
    """The questions of one file, in file order; ``source`` names the file, ``version`` is its ``version``."""

    examples: list[SquadExample]
    source: str
    version: str = "v2.0"

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.examples]

    def subsample(self, n: int | None, seed: int) -> SquadSplit:
        """``n`` questions drawn without replacement (seeded), in file order; all when ``n`` is None."""
        if n is None or n >= len(self):
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        return SquadSplit([self.examples[i] for i in keep],
                          f"{self.source} ({n} of {len(self)} questions, seed {seed})", self.version)


def _load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(path, "file", "a SQuAD-format JSON file", "no such file") from None
    except UnicodeDecodeError as error:
        raise InputError(path, "file", "UTF-8 text (SQuAD-format JSON)", f"undecodable bytes ({error.reason} at byte "
                         f"{error.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(path, "file", "JSON (the SQuAD release format)",
                         f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _get(path: Path, node: dict, key: str, where: str, kind: type, expected: str, default: Any = ...) -> Any:
    """``node[key]``, checked to be a ``kind`` (a boolean is no integer here: JSON keeps them apart)."""
    field = f"{where}.{key}" if where else key
    if key not in node:
        if default is not ...:
            return default
        raise InputError(path, field, expected, f"no such key (keys: {', '.join(map(str, node)) or 'none'})")
    value = node[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise InputError(path, field, expected, f"{_kind(value)}: {_short(value)}")
    return value


def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, (dict, list)):  # never the repr of a whole article
        return f"{len(value)} item(s)"
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _spans(path: Path, qa: dict, key: str, where: str, context: str, aligned: bool) -> tuple[tuple, tuple]:
    items = _get(path, qa, key, where, list, "a list of {text, answer_start} objects")
    texts, starts = [], []
    for a, answer in enumerate(items):
        at = f"{where}.{key}[{a}]"
        if not isinstance(answer, dict):
            raise InputError(path, at, "an object {text, answer_start}", f"{_kind(answer)}: {_short(answer)}")
        text = _get(path, answer, "text", at, str, "the answer's text (a non-empty string)")
        start = _get(path, answer, "answer_start", at, int, "the answer's character offset in the context (an "
                     "integer)")
        if not text:
            raise InputError(path, f"{at}.text", "the answer's text (a non-empty string)", "an empty string")
        if start < 0:
            raise InputError(path, f"{at}.answer_start", "a character offset from 0", str(start))
        if aligned and context[start:start + len(text)] != text:
            raise InputError(path, f"{at}.answer_start", f"the offset of {_short(text)} in the context",
                             f"{start}, where the context reads {_short(context[start:start + len(text)])}"
                             + (f" (the text first occurs at {context.find(text)})" if text in context else
                                " (the text is nowhere in the context)"))
        if not aligned and start > len(context):
            raise InputError(path, f"{at}.answer_start", f"an offset from 0 to {len(context)} (the context's length)",
                             str(start))
        texts.append(text)
        starts.append(start)
    return tuple(texts), tuple(starts)


def read_squad(path: str | os.PathLike) -> SquadSplit:
    """Read a file in the SQuAD release format (v2.0, or v1.1 which has no ``is_impossible``).

    Parameters
    ----------
    path : path
        ``train-v2.0.json``, ``dev-v2.0.json`` or any file in their layout.

    Returns
    -------
    SquadSplit
        The questions in file order.

    Raises
    ------
    InputError
        The file is missing or not JSON, or a field is missing, of the wrong type or inconsistent: an
        ``answer_start`` that does not point at its answer's text in the context, an unanswerable question
        with answers (or an answerable one without), an id used twice, a file without questions.
    """
    path = Path(path)
    root = _load_json(path)
    if not isinstance(root, dict):
        raise InputError(path, "top level", 'an object {"version", "data"}', f"{_kind(root)}: {_short(root)}")
    version = _get(path, root, "version", "", str, "the release version (a string, e.g. v2.0)", default="")
    data = _get(path, root, "data", "", list, "a list of articles {title, paragraphs}")
    examples: list[SquadExample] = []
    first_seen: dict[str, str] = {}
    for d, article in enumerate(data):
        at_article = f"data[{d}]"
        if not isinstance(article, dict):
            raise InputError(path, at_article, "an article {title, paragraphs}", f"{_kind(article)}: {_short(article)}")
        title = _get(path, article, "title", at_article, str, "the article's title (a string)", default="")
        paragraphs = _get(path, article, "paragraphs", at_article, list, "a list of paragraphs {context, qas}")
        for p, paragraph in enumerate(paragraphs):
            at_paragraph = f"{at_article}.paragraphs[{p}]"
            if not isinstance(paragraph, dict):
                raise InputError(path, at_paragraph, "a paragraph {context, qas}",
                                 f"{_kind(paragraph)}: {_short(paragraph)}")
            context = _get(path, paragraph, "context", at_paragraph, str, "the paragraph's text (a string)")
            qas = _get(path, paragraph, "qas", at_paragraph, list, "a list of questions {id, question, answers, "
                       "is_impossible}")
            for q, qa in enumerate(qas):
                examples.append(_read_qa(path, qa, f"{at_paragraph}.qas[{q}]", title, context, first_seen))
    if not examples:
        raise InputError(path, "data", "at least one question", f"none in {len(data)} article(s)")
    log.info("read %d questions (%d answerable) from %s", len(examples),
             sum(not e.is_impossible for e in examples), path)
    return SquadSplit(examples, str(path), version)


def _read_qa(path: Path, qa: Any, at: str, title: str, context: str, first_seen: dict[str, str]) -> SquadExample:
    if not isinstance(qa, dict):
        raise InputError(path, at, "a question {id, question, answers, is_impossible}", f"{_kind(qa)}: {_short(qa)}")
    qid = _get(path, qa, "id", at, str, "the question's id (a non-empty string)")
    if not qid:
        raise InputError(path, f"{at}.id", "the question's id (a non-empty string)", "an empty string")
    if qid in first_seen:
        raise InputError(path, f"{at}.id", "ids unique in the file", f"{qid!r} again (first at {first_seen[qid]})")
    first_seen[qid] = at
    question = _get(path, qa, "question", at, str, "the question's text (a string)")
    if not question.strip():
        raise InputError(path, f"{at}.question", f"the text of question {qid!r}", "an empty string")
    answers, starts = _spans(path, qa, "answers", at, context, aligned=True)
    # v1.1 files have no flag: every question there has answers
    impossible = _get(path, qa, "is_impossible", at, bool, "true or false", default=not answers)
    if impossible and answers:
        raise InputError(path, f"{at}.answers", f"no answers (question {qid!r} has is_impossible: true)",
                         f"{len(answers)} (first: {_short(answers[0])})")
    if not impossible and not answers:
        raise InputError(path, f"{at}.answers", f"at least one answer (question {qid!r} has is_impossible: false)",
                         "an empty list")
    plausible, plausible_starts = (), ()
    if "plausible_answers" in qa:
        # Only kept for round trips (nothing trains on or scores them), so only their structure is checked.
        plausible, plausible_starts = _spans(path, qa, "plausible_answers", at, context, aligned=False)
    return SquadExample(qid, title, context, question, answers, starts, impossible, plausible, plausible_starts)


def _answer_list(texts: Sequence[str], starts: Sequence[int]) -> list[dict]:
    return [{"text": t, "answer_start": int(s)} for t, s in zip(texts, starts)]


def squad_json(examples: Iterable[SquadExample], version: str = "v2.0") -> dict:
    """The release layout of ``examples``: consecutive questions with one title form an article, consecutive
    questions with one context a paragraph, so that reading it back gives the same questions in the same
    order."""
    data: list[dict] = []
    for e in examples:
        qa = {"id": e.id, "question": e.question, "answers": _answer_list(e.answers, e.answer_starts),
              "is_impossible": e.is_impossible}
        if e.plausible_answers:
            qa["plausible_answers"] = _answer_list(e.plausible_answers, e.plausible_starts)
        if not data or data[-1]["title"] != e.title:
            data.append({"title": e.title, "paragraphs": []})
        paragraphs = data[-1]["paragraphs"]
        if not paragraphs or paragraphs[-1]["context"] != e.context:
            paragraphs.append({"context": e.context, "qas": []})
        paragraphs[-1]["qas"].append(qa)
    return {"version": version, "data": data}


def write_squad(path: str | os.PathLike, split_or_examples: SquadSplit | Iterable[SquadExample],
                version: str | None = None, notice: str | None = None) -> Path:
    """Write questions in the release layout, atomically; :func:`read_squad` reads them back unchanged.

    Parameters
    ----------
    version : str, optional
        The file's ``version``: the split's own, or ``v2.0`` for a list of examples.
    notice : str, optional
        Written as a top-level ``notice`` (readers of the release format ignore keys they do not know).
    """
    if isinstance(split_or_examples, SquadSplit):
        examples, version = split_or_examples.examples, version or split_or_examples.version
    else:
        examples = list(split_or_examples)
    payload = squad_json(examples, version or "v2.0")
    if notice:
        payload = {"notice": notice, **payload}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return Path(path)


# --- the embedded sample (NOT SQuAD) ----------------------------------------------------------------------

_FIRST = ["Mara", "Ivo", "Tessa", "Orin", "Lena", "Bram", "Nadia", "Felix", "Ada", "Hugo", "Ines", "Pavel",
          "Rosa", "Tomas", "Elin", "Yusuf", "Clara", "Dmitri", "Greta", "Oskar", "Livia", "Anton", "Sanna", "Emil"]
_LAST = ["Quill", "Harrow", "Vance", "Mirelli", "Okafor", "Lindqvist", "Sato", "Brennan", "Castell", "Dufort",
         "Ekberg", "Farrow", "Galdi", "Holm", "Ivers", "Jansen", "Kovac", "Larkin", "Moreau", "Novak", "Pryce",
         "Rask", "Solberg", "Thorne"]
_ORG_NAMES = ["Lantern", "Copper", "Northern", "Silver", "Harbour", "Meridian", "Amber", "Granite", "Willow",
              "Falcon", "Crimson", "Ivory", "Juniper", "Beacon", "Cobalt", "Orchard"]
_ORG_KINDS = ["Society", "Guild", "Club", "Company", "Circle", "Institute", "League", "Workshop"]
_CITIES = ["Oslo", "Lisbon", "Krakow", "Ghent", "Turin", "Bergen", "Porto", "Lyon", "Leiden", "Tartu", "Graz",
           "Malmo", "Cork", "Bilbao", "Brno", "Aarhus", "Riga", "Bruges", "Utrecht", "Trieste"]
_OBJECTS = ["brass telescope", "printing press", "clock tower", "glass observatory", "small library",
            "wooden organ", "stone bridge", "weather station", "rowing boat", "lighthouse lamp", "music hall",
            "botanical garden"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


class _Paragraph:
    """A context assembled from pieces, remembering where each named fact's text starts."""

    def __init__(self) -> None:
        self.text = ""
        self.spans: dict[str, tuple[str, int]] = {}

    def sentence(self, *pieces: str | tuple[str, str]) -> None:
        line = ""
        marks = []
        for piece in pieces:
            text, tag = (piece, None) if isinstance(piece, str) else piece
            if not line:
                text = text[0].upper() + text[1:]
            if tag:
                marks.append((tag, text, len(line)))
            line += text
        offset = len(self.text) + (1 if self.text else 0)
        self.text = f"{self.text} {line}" if self.text else line
        for tag, text, at in marks:
            self.spans[tag] = (text, offset + at)


def _person(rng: np.random.Generator, taken: set[str]) -> str:
    while True:
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        if name not in taken:
            taken.add(name)
            return name


def _other(rng: np.random.Generator, pool: Sequence[str], exclude: Iterable[str]) -> str:
    exclude = set(exclude)
    return str(rng.choice([x for x in pool if x not in exclude]))


def _sample_paragraph(rng: np.random.Generator) -> tuple[str, str, list[dict]]:
    """One made-up paragraph, its title and its questions (answerable and not), answers located exactly."""
    people: set[str] = set()
    founder, maker, president = _person(rng, people), _person(rng, people), _person(rng, people)
    name, kind = str(rng.choice(_ORG_NAMES)), str(rng.choice(_ORG_KINDS))
    org, short = f"the {name} {kind}", f"the {kind.lower()}"
    city, city2 = (str(c) for c in rng.choice(_CITIES, 2, replace=False))
    year = int(rng.integers(1700, 1950))
    year2 = year + int(rng.integers(3, 60))
    thing = str(rng.choice(_OBJECTS))
    has_move, has_build, has_president = rng.random() < 0.6, rng.random() < 0.6, rng.random() < 0.55

    paragraph = _Paragraph()
    form = rng.integers(3)
    if form == 0:
        paragraph.sentence((founder, "founder"), " founded ", org, " in ", (city, "city"), " in ",
                           (str(year), "year"), ".")
    elif form == 1:
        paragraph.sentence("in ", (str(year), "year"), ", ", (founder, "founder"), " founded ", org, " in ",
                           (city, "city"), ".")
    else:
        paragraph.sentence(org, " was founded in ", (city, "city"), " in ", (str(year), "year"), " by ",
                           (founder, "founder"), ".")
    rest = []
    if has_move:
        rest.append([short, " moved to ", (city2, "city2"), " in ", (str(year2), "year2"), "."] if rng.random() < 0.5
                    else ["in ", (str(year2), "year2"), ", ", short, " moved to ", (city2, "city2"), "."])
    if has_build:
        rest.append([(maker, "maker"), " built ", (f"a {thing}", "thing"), " for its members."] if rng.random() < 0.5
                    else ["for its members, ", (maker, "maker"), " built ", (f"a {thing}", "thing"), "."])
    if has_president:
        rest.append(["its first president was ", (president, "president"), "."] if rng.random() < 0.5
                    else [(president, "president"), " served as its first president."])
    rest.append([short, " met every ", str(rng.choice(_DAYS)), "."])
    for s in rng.permutation(len(rest)):
        paragraph.sentence(*rest[s])

    def ask(question: str, tag: str) -> dict:
        return {"question": question[0].upper() + question[1:], "answer": paragraph.spans[tag]}

    def unanswerable(question: str, plausible: str) -> dict:
        return {"question": question[0].upper() + question[1:], "plausible": paragraph.spans[plausible]}

    other_org = f"the {_other(rng, _ORG_NAMES, [name])} {kind}"
    other_city = _other(rng, _CITIES, [city, city2])
    other_thing = _other(rng, _OBJECTS, [thing])
    answerable = [ask(f"who founded {org}?", "founder"), ask(f"where was {org} founded?", "city"),
                  ask(f"in which city was {org} founded?", "city"),
                  ask(f"in what year was {org} founded?", "year"), ask(f"when was {org} founded?", "year")]
    impossible = [unanswerable(f"who founded {other_org}?", "founder"),
                  unanswerable(f"when was {other_org} founded?", "year")]
    if has_move:
        answerable += [ask(f"where did {org} move?", "city2"), ask(f"when did {org} move to {city2}?", "year2")]
        impossible += [unanswerable(f"when did {org} move to {other_city}?", "year2")]
    else:
        impossible += [unanswerable(f"where did {org} move?", "city"),
                       unanswerable(f"when did {org} move to {city2}?", "year")]
    if has_build:
        answerable += [ask(f"what did {maker} build for {org}?", "thing"), ask(f"who built the {thing}?", "maker")]
        impossible += [unanswerable(f"who built the {other_thing}?", "maker")]
    else:
        impossible += [unanswerable(f"who built the {thing}?", "founder")]
    if has_president:
        answerable += [ask(f"who was the first president of {org}?", "president")]
    else:
        impossible += [unanswerable(f"who was the first president of {org}?", "founder")]
    n = int(rng.integers(3, 6))
    n_impossible = min(int(rng.binomial(n, 1 / 3)), len(impossible))
    n_answerable = min(n - n_impossible, len(answerable))
    picked = ([answerable[i] for i in rng.choice(len(answerable), n_answerable, replace=False)]
              + [impossible[i] for i in rng.choice(len(impossible), n_impossible, replace=False)])
    return f"{name}_{kind}", paragraph.text, [picked[i] for i in rng.permutation(len(picked))]


def _variants(text: str, start: int) -> list[tuple[str, int]]:
    """Other annotators' answers, as the dev files list them: the same span, or a shorter acceptable one."""
    if text.startswith("a "):
        return [(text, start), (text[2:], start + 2)]
    if " " in text and text[0].isupper():  # a person: the surname alone also answers
        first = text.index(" ") + 1
        return [(text, start), (text[first:], start + first)]
    return [(text, start), (text, start)]


def sample_examples(n: int, rng: np.random.Generator, dev: bool = False) -> list[SquadExample]:
    """``n`` questions of the embedded sample (several per paragraph); dev questions list two answers."""
    examples: list[SquadExample] = []
    ids: set[str] = set()
    while len(examples) < n:
        title, context, questions = _sample_paragraph(rng)
        for q in questions[:n - len(examples)]:
            qid = rng.bytes(12).hex()  # SQuAD's ids are 24 hex digits
            while qid in ids:
                qid = rng.bytes(12).hex()
            ids.add(qid)
            if "answer" in q:
                spans = _variants(*q["answer"]) if dev else [q["answer"]]
                examples.append(SquadExample(qid, title, context, q["question"], tuple(t for t, _ in spans),
                                             tuple(s for _, s in spans), False))
            else:
                text, start = q["plausible"]
                examples.append(SquadExample(qid, title, context, q["question"], (), (), True, (text,), (start,)))
    return examples


def write_sample(root: str | os.PathLike, n_train: int = 200, n_dev: int = 100, seed: int = 0) -> dict[str, Path]:
    """Write the embedded sample (NOT SQuAD) as ``<root>/train-v2.0.json`` and ``<root>/dev-v2.0.json``.

    ``n_train`` and ``n_dev`` count questions. Deterministic for a given ``seed``; each file is written
    atomically and carries a top-level ``notice`` saying what it is.
    """
    root = Path(root)
    paths = {}
    for s, (split, n) in enumerate((("train", n_train), ("dev", n_dev))):
        examples = sample_examples(n, np.random.default_rng([seed, s]), dev=split == "dev")
        paths[split] = write_squad(root / f"{split}-v2.0.json", examples, "v2.0", notice=NOTICE)
    return paths


# --- features: BERT's windows and labels --------------------------------------------------------------------

@dataclass
class SquadFeatures:
    """Tokenised windows (features), several per question when its context is long; unpadded.

    ``example_index[f]`` is the row in the split of feature ``f``'s question; ``context_start[f]`` the
    position of its first context piece; ``offsets[f]`` the character span in the context of each of its
    context pieces; ``max_context[f]`` whether each context piece has more context in this window than in
    any other (BERT's rule for which window may start an answer); ``start_positions``/``end_positions`` the
    labels (0, the [CLS] piece, for no answer in the window).
    """

    ids: list[np.ndarray]
    segments: list[np.ndarray]
    pad_id: int
    example_index: np.ndarray
    context_start: np.ndarray
    offsets: list[np.ndarray]
    max_context: list[np.ndarray]
    start_positions: np.ndarray
    end_positions: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(i) for i in self.ids])

    def features_of(self, row: int) -> np.ndarray:
        """The features (windows) of the split's question ``row``."""
        return np.flatnonzero(self.example_index == row)

    def batch(self, rows: np.ndarray, device: str = "cpu") -> dict[str, torch.Tensor]:
        """Rows padded to the batch's longest, with their start and end labels."""
        width = max(len(self.ids[r]) for r in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        segments = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            n = len(self.ids[r])
            ids[i, :n], segments[i, :n], mask[i, :n] = self.ids[r], self.segments[r], 1
        rows = np.asarray(rows)
        return {"input_ids": torch.from_numpy(ids).to(device), "token_type_ids": torch.from_numpy(segments).to(device),
                "attention_mask": torch.from_numpy(mask).to(device),
                "start_positions": torch.from_numpy(self.start_positions[rows].astype(np.int64)).to(device),
                "end_positions": torch.from_numpy(self.end_positions[rows].astype(np.int64)).to(device)}


@dataclass(frozen=True)
class _PairTemplate:
    """Where a tokenizer puts its special pieces around a pair: ``prefix A middle B suffix``, with segment ids."""

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    segments: tuple[int, int, int, int, int]  # of prefix, A, middle, B, suffix


def _pair_template(tokenizer) -> _PairTemplate:
    # transformers 5 no longer exposes build_inputs_with_special_tokens: read the layout off a probe pair.
    probe = tokenizer("a", "b", return_token_type_ids=True)
    ids, types, sequence = probe["input_ids"], probe["token_type_ids"], probe.sequence_ids(0)
    if sequence.count(0) != 1 or sequence.count(1) != 1:
        raise ConfigError(f"squad: tokenizer {type(tokenizer).__name__} splits the probe pair ('a', 'b') into "
                          f"{sequence}; expected one piece each")
    a, b = sequence.index(0), sequence.index(1)
    if a == 0:
        raise ConfigError(f"squad: tokenizer {type(tokenizer).__name__} puts no special piece (such as [CLS]) "
                          "before the question; BERT's SQuAD recipe scores 'no answer' at that piece")
    return _PairTemplate(tuple(ids[:a]), tuple(ids[a + 1:b]), tuple(ids[b + 1:]),
                         (types[0], types[a], types[a + 1] if b > a + 1 else types[b], types[b],
                          types[-1] if len(ids) > b + 1 else types[b]))


def _windows(n_tokens: int, room: int, doc_stride: int) -> list[tuple[int, int]]:
    """BERT's doc spans: windows of up to ``room`` pieces starting every ``doc_stride`` pieces, the last
    reaching the end."""
    spans, start = [], 0
    while True:
        length = min(room, n_tokens - start)
        spans.append((start, start + length))
        if start + length >= n_tokens:
            return spans
        start += min(length, doc_stride)


def _max_context(spans: list[tuple[int, int]], n_tokens: int) -> list[np.ndarray]:
    """For each window, whether each of its pieces has its best context there: the largest
    min(left, right) + 0.01 window length, the first window winning ties (BERT's _check_is_max_context)."""
    best = np.full(n_tokens, -np.inf)
    owner = np.zeros(n_tokens, dtype=int)
    for w, (start, end) in enumerate(spans):
        position = np.arange(start, end)
        score = np.minimum(position - start, end - 1 - position) + 0.01 * (end - start)
        better = score > best[start:end]
        best[start:end][better] = score[better]
        owner[start:end][better] = w
    return [owner[start:end] == w for w, (start, end) in enumerate(spans)]


def _token_span(offsets: np.ndarray, context: str, text: str, start: int) -> tuple[int, int] | None:
    """The first and last context pieces covering the answer's characters (white space trimmed)."""
    end = start + len(text)
    while start < end and context[start].isspace():
        start += 1
    while end > start and context[end - 1].isspace():
        end -= 1
    if start == end or not len(offsets):
        return None
    first = int(np.searchsorted(offsets[:, 0], start, side="right")) - 1  # the last piece starting at or before
    last = int(np.searchsorted(offsets[:, 1], end, side="left"))  # the first piece ending at or after
    if first < 0 or last >= len(offsets):
        return None
    return first, last


def encode_squad(tokenizer, split: SquadSplit, max_length: int = 384, doc_stride: int = 128,
                 max_query_length: int = 64) -> SquadFeatures:
    """Tokenise every question with windows of its context, labelled as BERT's SQuAD 2.0 recipe does.

    Parameters
    ----------
    tokenizer : transformers fast tokenizer
        Its character offsets map pieces back to the context.
    split : SquadSplit
    max_length : int
        Pieces in a window, special pieces included.
    doc_stride : int
        Pieces between the starts of consecutive windows of a long context (BERT's ``doc_stride``).
    max_query_length : int
        Question pieces kept (the rest are cut).

    Returns
    -------
    SquadFeatures
        One or more features per question, in the split's order. The label of each is the first answer's
        first and last piece where the window holds the whole answer, 0 ([CLS]) otherwise.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"squad: tokenizer {type(tokenizer).__name__} is not a fast tokenizer; character "
                          "offsets are needed to find answers")
    for name, value in (("max_length", max_length), ("doc_stride", doc_stride), ("max_query_length", max_query_length)):
        if value < 1:
            raise ConfigError(f"squad.{name}: expected a positive number of pieces, found {value}")
    template = _pair_template(tokenizer)
    n_special = len(template.prefix) + len(template.middle) + len(template.suffix)
    contexts = list(dict.fromkeys(e.context for e in split.examples))
    context_row = {c: i for i, c in enumerate(contexts)}
    tokenised = tokenizer(contexts, add_special_tokens=False, return_offsets_mapping=True)
    context_ids = [np.asarray(i, dtype=np.int64) for i in tokenised["input_ids"]]
    context_offsets = [np.asarray(o, dtype=np.int64).reshape(-1, 2) for o in tokenised["offset_mapping"]]
    questions = tokenizer([e.question for e in split.examples], add_special_tokens=False)["input_ids"]
    prefix, middle, suffix = (np.asarray(t, dtype=np.int64)
                              for t in (template.prefix, template.middle, template.suffix))
    seg = template.segments
    out: dict[str, list] = collections.defaultdict(list)
    for row, example in enumerate(tqdm(split.examples, desc="encoding SQuAD", leave=False,
                                       disable=len(split) < 5000)):
        question = np.asarray(questions[row][:max_query_length], dtype=np.int64)
        c = context_row[example.context]
        ids, offsets = context_ids[c], context_offsets[c]
        room = max_length - n_special - len(question)
        if room < 1:
            raise ConfigError(f"squad: max_length {max_length} leaves no room for the context after question "
                              f"{example.id!r} ({len(question)} pieces) and {n_special} special pieces")
        spans = _windows(len(ids), room, doc_stride)
        answer = None if example.is_impossible else _token_span(offsets, example.context, example.answers[0],
                                                                example.answer_starts[0])
        head = np.concatenate([prefix, question, middle])
        head_segments = np.concatenate([np.full(len(prefix), seg[0]), np.full(len(question), seg[1]),
                                        np.full(len(middle), seg[2])])
        for (start, end), best in zip(spans, _max_context(spans, len(ids))):
            out["ids"].append(np.concatenate([head, ids[start:end], suffix]))
            out["segments"].append(np.concatenate([head_segments, np.full(end - start, seg[3]),
                                                   np.full(len(suffix), seg[4])]).astype(np.int64))
            out["example_index"].append(row)
            out["context_start"].append(len(head))
            out["offsets"].append(offsets[start:end])
            out["max_context"].append(best)
            inside = answer is not None and start <= answer[0] and answer[1] < end
            out["start"].append(len(head) + answer[0] - start if inside else 0)
            out["end"].append(len(head) + answer[1] - start if inside else 0)
    features = SquadFeatures(out["ids"], out["segments"], int(tokenizer.pad_token_id),
                             np.asarray(out["example_index"], dtype=np.int64),
                             np.asarray(out["context_start"], dtype=np.int64), out["offsets"], out["max_context"],
                             np.asarray(out["start"], dtype=np.int64), np.asarray(out["end"], dtype=np.int64))
    log.info("encoded %d questions into %d windows (%d labelled with an answer)", len(split), len(features),
             int((features.start_positions > 0).sum()))
    return features


# --- the model ---------------------------------------------------------------------------------------------

class SpanQA(nn.Module):
    """An encoder with BERT's SQuAD head: a linear layer giving each piece a start and an end logit.

    Parameters
    ----------
    encoder : transformers model
        A BERT-family encoder (``AutoModel``).
    seed : int
        Seeds the head's initialisation, N(0, 0.02) as BERT's, with zero bias.
    """

    def __init__(self, encoder: nn.Module, seed: int = 0) -> None:
        super().__init__()
        self.encoder = encoder
        self.qa_outputs = nn.Linear(int(encoder.config.hidden_size), 2)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.qa_outputs.weight.copy_(torch.randn(self.qa_outputs.weight.shape, generator=generator) * 0.02)
            self.qa_outputs.bias.zero_()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor,
                **labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Start and end logits, (batch, pieces) each, float32; padding gets the lowest float so that
        neither the loss nor a prediction depends on how much a batch was padded."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        logits = self.qa_outputs(hidden).float()
        logits = logits.masked_fill(attention_mask.unsqueeze(-1) == 0, torch.finfo(torch.float32).min)
        return logits[..., 0], logits[..., 1]

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The mean of the start and end cross-entropies over the batch (BERT's SQuAD loss)."""
        start, end = self(**batch)
        return (nn.functional.cross_entropy(start, batch["start_positions"])
                + nn.functional.cross_entropy(end, batch["end_positions"])) / 2


@torch.inference_mode()
def span_logits(model: nn.Module, features: SquadFeatures, batch_size: int = 64,
                device: str = "cpu") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each feature's start and end logits (float32, unpadded), batches sorted by length."""
    model.eval()
    order = np.argsort(-features.lengths, kind="stable")
    starts: list[np.ndarray] = [np.empty(0, np.float32)] * len(features)
    ends: list[np.ndarray] = [np.empty(0, np.float32)] * len(features)
    for first in range(0, len(order), batch_size):
        rows = order[first:first + batch_size]
        start, end = model(**features.batch(rows, device))
        start, end = start.float().cpu().numpy(), end.float().cpu().numpy()
        for i, r in enumerate(rows):
            n = len(features.ids[r])
            starts[r], ends[r] = start[i, :n], end[i, :n]
    return starts, ends


@dataclass(frozen=True)
class Prediction:
    """A question's best span (``""`` when there is none), its score (start + end logit), the null score."""

    text: str
    score: float
    null_score: float


def predict_spans(model: nn.Module, features: SquadFeatures, split: SquadSplit, batch_size: int = 64,
                  device: str = "cpu", max_answer_length: int = 30, n_best: int = 20) -> dict[str, Prediction]:
    """Every question's best non-null span over its windows and its null score (see :func:`predict_answers`)."""
    starts, ends = span_logits(model, features, batch_size, device)
    best: dict[int, tuple[float, str]] = {}
    null: dict[int, float] = {}
    for f in range(len(features)):
        row = int(features.example_index[f])
        null[row] = min(null.get(row, np.inf), float(starts[f][0] + ends[f][0]))
        c0 = int(features.context_start[f])
        n = len(features.offsets[f])
        start, end = starts[f][c0:c0 + n], ends[f][c0:c0 + n]
        # BERT's candidates: the n_best highest start and end logits, then the valid pairs among them
        top_start = np.argsort(-start, kind="stable")[:n_best]
        top_end = np.argsort(-end, kind="stable")[:n_best]
        context, offsets = split.examples[row].context, features.offsets[f]
        for s in top_start:
            if not features.max_context[f][s]:
                continue
            for e in top_end:
                if e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(start[s] + end[e])
                if row not in best or score > best[row][0]:
                    best[row] = (score, context[offsets[s, 0]:offsets[e, 1]])
    return {example.id: Prediction(best[row][1] if row in best else "", best[row][0] if row in best else -np.inf,
                                   null.get(row, np.inf))
            for row, example in enumerate(split.examples)}


def predict_answers(model: nn.Module, features: SquadFeatures, split: SquadSplit, batch_size: int = 64,
                    device: str = "cpu", max_answer_length: int = 30, n_best: int = 20,
                    null_threshold: float = 0.0) -> dict[str, str]:
    """Each question's answer: its best span, or ``""`` when the null score wins (BERT's SQuAD 2.0 rule).

    Parameters
    ----------
    model : SpanQA or any module whose ``forward(**batch)`` returns (start_logits, end_logits)
    features : SquadFeatures
        :func:`encode_squad` of ``split``.
    max_answer_length : int
        The longest span, in pieces.
    n_best : int
        Candidate starts and ends per window (the highest logits).
    null_threshold : float
        The empty answer wins when null score - best span score > this (BERT's default 0).

    Returns
    -------
    dict
        Question id -> answer text (a slice of the context), ``""`` for no answer.
    """
    spans = predict_spans(model, features, split, batch_size, device, max_answer_length, n_best)
    return {qid: "" if not p.text or p.null_score - p.score > null_threshold else p.text for qid, p in spans.items()}


# --- the official evaluation --------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official script's normalisation: lower case, punctuation removed, articles removed, white space
    collapsed (in that order)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_score(gold: str, prediction: str) -> int:
    """1 when the normalised texts are equal."""
    return int(normalize_answer(gold) == normalize_answer(prediction))


def f1_score(gold: str, prediction: str) -> float:
    """Token F1 of the normalised texts (a bag of words); 1 when both are empty, 0 when only one is."""
    gold_tokens, predicted = normalize_answer(gold).split(), normalize_answer(prediction).split()
    if not gold_tokens or not predicted:
        return float(gold_tokens == predicted)
    same = sum((collections.Counter(gold_tokens) & collections.Counter(predicted)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(split: SquadSplit, predictions: dict[str, str]) -> dict[str, float]:
    """The official SQuAD v2.0 evaluation of ``predictions`` (question id -> answer, ``""`` for none).

    Per question the best exact match and F1 over its gold answers (those that normalise to nothing are
    dropped; an unanswerable question's only gold answer is ``""``). Returns ``exact`` and ``f1`` in percent
    and ``total``, and the same for answerable (``HasAns_*``) and unanswerable (``NoAns_*``) questions when
    the split has any (as the official script). Predictions for ids not in the split are ignored.

    Raises
    ------
    ConfigError
        A question of the split has no prediction (the official script cannot score that either).
    """
    missing = [e.id for e in split.examples if e.id not in predictions]
    if missing:
        raise ConfigError(f"squad: no prediction for {len(missing)} of {len(split)} questions of {split.source} "
                          f"(first: {missing[0]!r})")
    exact, f1, has_answer = [], [], []
    for e in split.examples:
        gold = [a for a in e.answers if normalize_answer(a)] or [""]
        prediction = predictions[e.id]
        exact.append(max(exact_score(a, prediction) for a in gold))
        f1.append(max(f1_score(a, prediction) for a in gold))
        has_answer.append(bool(e.answers))
    exact, f1, has_answer = np.asarray(exact, float), np.asarray(f1, float), np.asarray(has_answer)
    scores = {"exact": 100.0 * float(exact.mean()), "f1": 100.0 * float(f1.mean()), "total": float(len(exact))}
    for name, rows in (("HasAns", has_answer), ("NoAns", ~has_answer)):
        if rows.any():
            scores.update({f"{name}_exact": 100.0 * float(exact[rows].mean()),
                           f"{name}_f1": 100.0 * float(f1[rows].mean()), f"{name}_total": float(rows.sum())})
    return scores


def null_predictions(split: SquadSplit) -> dict[str, str]:
    """The baseline that never answers: ``""`` for every question."""
    return {e.id: "" for e in split.examples}
