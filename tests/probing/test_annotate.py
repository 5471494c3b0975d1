"""The project's own story annotations, against hand-worked sentences and real stimulus sentences."""

from __future__ import annotations

import numpy as np
import pytest
from experiments import shared_data

from brainalign.probing.annotate import (DEPENDENCY_ROLES, POS_TAGS, annotate_story, dependency_role,
                                         lexicons)


def on(features, words, name):
    """The entries (as text) for which the flattened feature ``name`` is non-zero."""
    column = features.matrix()[:, features.names.index(name)]
    return [w for w, value in zip(words, column) if value != 0]


def tags(features, words, group):
    """Per entry the names of ``group`` that are on (one-hot groups: at most one)."""
    matrix, names = features.matrix(), features.names
    columns = [j for j, n in enumerate(names) if n.startswith(group + "/")]
    return [[names[j].split("/", 1)[1] for j in columns if matrix[i, j]] for i in range(len(words))]


def test_an_unambiguous_sentence_by_hand_with_a_fixation_inside():
    words = ["The", "old", "+", "man", "saw", "the", "dog."]
    features = annotate_story(words)
    assert features.n_entries == 7
    assert tags(features, words, "pos") == [["DT"], ["JJ"], [], ["NN"], ["VBD"], ["DT"], ["NN"]]
    # CoNLL-2008: determiners and adjectives of a noun are NMOD; "saw" heads the sentence.
    assert tags(features, words, "dependency") == [["NMOD"], ["NMOD"], [], ["SBJ"], ["ROOT"], ["NMOD"], ["OBJ"]]
    matrix = features.matrix()
    assert not matrix[2].any()  # the fixation carries nothing, and is no word of the sentence
    assert matrix[:, features.names.index("length/sentence_length")].tolist() == [6, 6, 0, 6, 6, 6, 6]
    assert matrix[:, features.names.index("length/word_length")].tolist() == [3, 3, 0, 3, 3, 3, 3]
    assert on(features, words, "punctuation/.") == ["dog."]
    assert on(features, words, "verbs/see") == ["saw"]


def test_lengths_and_punctuation_leave_quotes_aside():
    words = ['"Where?"', "she", "asked.", "It", "can't", "be", "Tamsin's,", "can", "it:", "no."]
    features = annotate_story(words)
    matrix = features.matrix()
    # Letters and digits only: Where, she, asked, It, cant, be, Tamsins, can, it, no.
    assert matrix[:, features.names.index("length/word_length")].tolist() == [5, 3, 5, 2, 4, 2, 7, 3, 2, 2]
    # '"Where?" she asked.' is one sentence (the next word is lower case); the second runs to "no.".
    assert matrix[:, features.names.index("length/sentence_length")].tolist() == [3] * 3 + [7] * 7
    assert on(features, words, "punctuation/.") == ['"Where?"', "asked.", "no."]
    assert on(features, words, "punctuation/,") == ["Tamsin's,"]
    assert on(features, words, "punctuation/:") == ["it:"]


def test_an_entry_of_several_tokens_is_tagged_by_its_first_word_token():
    # spaCy splits '"Brannoch,"' into quote, name, comma, quote, and "Tamsin's" into name and 's (POS): the
    # entry's head is the name, not the quote or the possessive.
    words = ['"Brannoch,"', "she", "called.", "Tamsin's", "brother", "walked", "home."]
    features = annotate_story(words)
    pos = tags(features, words, "pos")
    assert pos[0] == ["NNP"] and pos[3] == ["NNP"]
    assert tags(features, words, "dependency")[3] == ["NMOD"]  # a possessor modifies its noun


def test_characters_with_possessives_and_only_capitalised():
    words = ["Tamsin's", "friend", "Oskar", "Finch", "saw", "a", "crane", "and", "Brannoch."]
    features = annotate_story(words)
    assert on(features, words, "characters/tamsin") == ["Tamsin's"]
    assert on(features, words, "characters/oskar") == ["Oskar", "Finch"]
    assert on(features, words, "characters/brannoch") == ["Brannoch."]
    assert on(features, words, "characters/aldous") == []  # "crane" the bird is not Aldous Crane


def test_sticky_features_last_from_the_word_to_the_end_of_its_sentence():
    words = ["Tamsin's", "brother", "walked", "home,", "and", "+", "Brannoch", "ran.", "The", "cat", "sat.",
             "She", "was", "afraid", "of", "the", "dark", "water."]
    features = annotate_story(words)
    assert on(features, words, "motion/move") == ["walked", "ran.", "sat."]
    assert on(features, words, "motion/move_sticky") == ["walked", "home,", "and", "Brannoch", "ran.", "sat."]
    assert on(features, words, "emotion/fear") == ["afraid"]
    assert on(features, words, "emotion/fear_sticky") == ["afraid", "of", "the", "dark", "water."]
    assert on(features, words, "verbs/be") == ["was"]


def test_motion_needs_a_verb_and_like_as_a_preposition_is_no_emotion():
    words = ["Her", "hands", "were", "like", "ice.", "She", "liked", "it."]
    features = annotate_story(words)
    assert on(features, words, "motion/manipulate") == []  # the lexicon's "hand" would be a verb
    assert on(features, words, "emotion/like") == ["liked"]


def test_an_imperative_is_commanding():
    words = ['"Stay', "in", "the", 'light,"', "Tamsin", "said.", "She", "stayed", "in", "the", "light."]
    features = annotate_story(words)
    assert on(features, words, "emotion/commanding") == ['"Stay']
    assert on(features, words, "emotion/commanding_sticky") == ['"Stay', "in", "the", 'light,"', "Tamsin", "said."]


@pytest.mark.parametrize("label, head, role", [
    ("amod", "NOUN", "NMOD"), ("advmod", "ADJ", "AMOD"), ("advmod", "VERB", "ADV"), ("prep", "NOUN", "NMOD"),
    ("prep", "VERB", "ADV"), ("prep", "ADP", "PMOD"), ("nsubjpass", "VERB", "SBJ"), ("dative", "VERB", "IOBJ"),
    ("auxpass", "VERB", "VC"), ("conj", "VERB", "COORD"), ("cc", "VERB", "CC"), ("pobj", "ADP", "PMOD"),
    ("acomp", "VERB", "PRD"), ("parataxis", "VERB", "PRN"), ("prt", "VERB", "PRT"), ("no-such-label", "X", "DEP"),
])
def test_dependency_roles_follow_what_a_word_attaches_to(label, head, role):
    assert dependency_role(label, head) == role


def test_only_fixations_or_nothing():
    features = annotate_story(["+", "", "+"])
    assert features.matrix().shape == (3, len(features.names)) and not features.matrix().any()
    assert annotate_story([]).n_entries == 0


def test_the_whole_story_has_the_release_groups_one_hot_where_they_should():
    from brainalign.data.simulated import story_words

    words = story_words()
    words = words[:600] + ["+"] + words[600:]
    features = annotate_story(words)
    assert [g.type for g in features.groups] == ["length", "punctuation", "pos", "dependency", "verbs",
                                                 "characters", "motion", "emotion"]
    matrix = features.matrix()
    assert not matrix[600].any()
    story = np.arange(len(words)) != 600
    assert set(features.select([f"pos/{t}" for t in POS_TAGS]).matrix()[story].sum(1)) <= {0.0, 1.0}
    assert (features.select([f"dependency/{r}" for r in DEPENDENCY_ROLES]).matrix()[story].sum(1) == 1).all()
    for name in lexicons()["characters"]:
        assert matrix[:, features.names.index(f"characters/{name}")].sum() >= 1, name  # each is named in the story
    # A sticky feature is on wherever its word is, and more.
    for kind in ("motion", "emotion"):
        for name in lexicons()[kind]:
            word, sticky = (matrix[:, features.names.index(f"{kind}/{n}")] for n in (name, f"{name}_sticky"))
            assert (sticky >= word).all()


def test_real_sentences_hand_checked():
    # The first passage of Pereira et al. 2018 (experiment 2), shown word by word. Expected values worked by
    # hand (Penn tags; CoNLL-2008 roles; the sentences' word counts).
    path = shared_data("pereira2018") / "stimuli_384sentences.txt"
    sentences = path.read_text(encoding="utf-8").splitlines()[:4]
    words = " ".join(sentences).split()
    features = annotate_story(words)
    pos, role = tags(features, words, "pos"), tags(features, words, "dependency")
    expected = {1: ("accordion", "NN", "SBJ"), 2: ("is", "VBZ", "ROOT"), 6: ("instrument", "NN", "PRD"),
                8: ("two", "CD", "NMOD"), 9: ("keyboards.", "NNS", "PMOD"), 12: ("is", "VBZ", "VC"),
                13: ("used", "VBN", "ROOT"), 21: ("Accordions", "NNS", "SBJ"), 22: ("produce", "VBP", "ROOT"),
                23: ("sound", "NN", "OBJ"), 26: ("that", "WDT", "SBJ")}
    for i, (word, tag, dep) in expected.items():
        assert (words[i], pos[i], role[i]) == (word, [tag], [dep])
    lengths = features.matrix()[:, features.names.index("length/sentence_length")]
    assert lengths.tolist() == [10] * 10 + [11] * 11 + [10] * 10 + [11] * 11
    assert on(features, words, "verbs/be") == ["is", "is"]
