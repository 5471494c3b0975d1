"""Word-level facts the models need: content words, word length and unigram log-probability.

The seed paper trains and scores MEG on content words only (reference section 2): adjectives, adverbs,
auxiliary verbs, nouns, pronouns, proper nouns and verbs, including forms of *to be*. Without a tagger
offline, a word is a content word unless it is in the closed classes the paper leaves out (determiners,
prepositions, conjunctions, particles, numerals, interjections) or has no letters (punctuation). The
lists below are those closed classes of English; pronouns and auxiliaries are deliberately absent.
"""

from __future__ import annotations

import math
import re

import numpy as np

DETERMINERS = {"a", "an", "the", "this", "that", "these", "those", "each", "every", "either", "neither", "some",
               "any", "no", "all", "both", "half", "several", "many", "much", "few", "more", "most", "less",
               "least", "such", "what", "which", "whatever", "whichever", "another", "other"}
PREPOSITIONS = {"about", "above", "across", "after", "against", "along", "amid", "among", "around", "as", "at",
                "before", "behind", "below", "beneath", "beside", "besides", "between", "beyond", "by", "despite",
                "down", "during", "except", "for", "from", "in", "inside", "into", "like", "near", "of", "off",
                "on", "onto", "out", "outside", "over", "past", "per", "since", "through", "throughout", "till",
                "to", "toward", "towards", "under", "underneath", "unlike", "until", "up", "upon", "via", "with",
                "within", "without"}
CONJUNCTIONS = {"and", "but", "or", "nor", "so", "yet", "because", "although", "though", "if", "unless", "whether",
                "while", "whereas", "than", "once", "whenever", "wherever"}
PARTICLES = {"not", "n't"}
NUMERALS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
            "twelve", "twenty", "thirty", "forty", "fifty", "hundred", "thousand", "million", "first", "second",
            "third"}
INTERJECTIONS = {"oh", "ah", "uh", "um", "hey", "wow", "ouch", "alas", "hmm", "huh", "oops", "yes", "hello"}
FUNCTION_WORDS = DETERMINERS | PREPOSITIONS | CONJUNCTIONS | PARTICLES | NUMERALS | INTERJECTIONS

# The seed paper's dummies for pieces that are not the first piece of a word ([CLS], [SEP], continuations).
DUMMY_LENGTH = 0.0
DUMMY_LOG_PROBABILITY = -20.0


def bare(word: str) -> str:
    """The word without surrounding punctuation, lower-cased (``"Harry's,"`` -> ``"harry's"``)."""
    return re.sub(r"^[^\w]+|[^\w]+$", "", word).lower()


def is_content_word(word: str) -> bool:
    """Whether the seed paper would train and score MEG on this word (see the module docstring)."""
    token = bare(word)
    if not re.search(r"[^\W\d_]", token):
        return False
    return token not in FUNCTION_WORDS and not token.isdigit()


def word_length(word: str) -> float:
    """Letters and digits in the word (punctuation excluded, also inside it: ``well-known`` has 9)."""
    return float(sum(c.isalnum() for c in word))


def log_probability(word: str) -> float:
    """Natural log of the word's unigram frequency in English (wordfreq), floored at the dummy's -20."""
    from wordfreq import word_frequency

    token = bare(word)
    frequency = word_frequency(token, "en") if token else 0.0
    return max(math.log(frequency), DUMMY_LOG_PROBABILITY) if frequency > 0 else DUMMY_LOG_PROBABILITY


def word_properties(words: list[str]) -> np.ndarray:
    """Length and unigram log-probability of each word: (n_words, 2) float32."""
    return np.array([[word_length(w), log_probability(w)] for w in words], dtype=np.float32).reshape(-1, 2)
