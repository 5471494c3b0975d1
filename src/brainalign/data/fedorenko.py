"""Fedorenko et al. 2016 ECoG: high-gamma responses of language-responsive electrodes to 8-word sentences.

The layout Brain-Score packaged (``brainscore_language/data/fedorenko2016``): a MATLAB file whose name ends
in ``g_lang_v3.mat`` holding ``ecog`` (electrodes x 416 words: 52 sentences x 8 words, one value per word,
already z-scored) and a plain-text sentence list (52 lines of 8 space-separated words). The electrodes of
the five participants are stacked in order (47, 8, 9, 15 and 18 in the release); the file does not say
which electrode is whose, so ``electrodes_per_subject`` does. The real sentence list is not public (only
its first sentence, "ALEX WAS TIRED SO HE TOOK A NAP", appears in public code).

The path is a directory holding exactly one ``*g_lang_v3.mat`` and one ``*.txt`` sentence list (searched
recursively, so the packaging's ``ecog-Fedorenko2016/`` and ``sentences_8/`` folders work as they are).
Presentations are words; ``group`` is ``sentence`` (the model reads each sentence from its start).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.io

from brainalign.data.matfile import load_mat, write_mat73
from brainalign.data.presentations import BENCHMARK_SOURCES, Presentations, require_path
from brainalign.errors import InputError
from brainalign.files import atomic_path

ELECTRODES_PER_SUBJECT = (47, 8, 9, 15, 18)
WORDS_PER_SENTENCE = 8
FIRST_SENTENCE = "ALEX WAS TIRED SO HE TOOK A NAP"


def _one(path: Path, pattern: str, what: str) -> Path:
    found = sorted(p for p in path.rglob(pattern) if p.is_file())
    if len(found) != 1:
        raise InputError(path, pattern, f"exactly one {what}", f"{len(found)}: {[str(p) for p in found][:5]}")
    return found[0]


def read_sentences(path: str | os.PathLike, words_per_sentence: int = WORDS_PER_SENTENCE) -> list[list[str]]:
    """The sentence list: one sentence per non-empty line, each of ``words_per_sentence`` words."""
    path = Path(path)
    sentences = [line.split() for line in path.read_text().splitlines() if line.strip()]
    for number, words in enumerate(sentences, start=1):
        if len(words) != words_per_sentence:
            raise InputError(path, f"sentence {number}", f"{words_per_sentence} words", f"{len(words)}: {words}")
    return sentences


@BENCHMARK_SOURCES.register("fedorenko2016")
def read_fedorenko2016(path: Path, electrodes_per_subject: Sequence[int] = ELECTRODES_PER_SUBJECT,
                       words_per_sentence: int = WORDS_PER_SENTENCE) -> Presentations:
    """The ECoG matrix and sentence list under ``path``, as word presentations x electrodes.

    Parameters
    ----------
    path : path
        A directory with one ``*g_lang_v3.mat`` and one ``*.txt`` sentence list.
    electrodes_per_subject : sequence of int
        How many consecutive electrodes (rows of ``ecog``) each participant has, in order; must sum to the
        number of electrodes.
    words_per_sentence : int

    Raises
    ------
    InputError
        ``ecog`` is missing or not finite, its columns disagree with the sentence list's words, or
        ``electrodes_per_subject`` does not sum to its rows.
    """
    path = Path(path)
    require_path(path, "a directory with a *g_lang_v3.mat file and a sentence list", directory=True)
    mat_path = _one(path, "*g_lang_v3.mat", "ECoG file")
    text_path = _one(path, "*.txt", "sentence list")
    mat = load_mat(mat_path)
    if "ecog" not in mat:
        raise InputError(mat_path, "ecog", "a variable of that name",
                         f"variables {sorted(k for k in mat if not k.startswith('__'))}")
    ecog = np.asarray(mat["ecog"])
    if ecog.ndim != 2 or not np.issubdtype(ecog.dtype, np.number):
        raise InputError(mat_path, "ecog", "an electrodes x words numeric matrix",
                         f"a {ecog.dtype} array of shape {ecog.shape}")
    sentences = read_sentences(text_path, words_per_sentence)
    words = [w for sentence in sentences for w in sentence]
    if ecog.shape[1] != len(words):
        raise InputError(mat_path, "ecog", f"{len(words)} columns (one per word of {text_path.name}: "
                         f"{len(sentences)} sentences x {words_per_sentence})", f"shape {ecog.shape}")
    counts = [int(c) for c in electrodes_per_subject]
    if sum(counts) != ecog.shape[0] or min(counts, default=0) < 1:
        raise InputError(mat_path, "ecog", f"{sum(counts)} electrodes (rows), as electrodes_per_subject "
                         f"{counts} says", f"{ecog.shape[0]}")
    responses = ecog.T.astype(np.float32)
    bad = ~np.isfinite(responses)
    if bad.any():
        word, electrode = np.argwhere(bad)[0]
        raise InputError(mat_path, "ecog", "finite values",
                         f"NaN or infinity in {int(bad.any(axis=0).sum())} electrode(s), first at electrode "
                         f"{electrode + 1}, word {word + 1}")
    n = len(words)
    stimuli = pd.DataFrame({
        "stimulus_id": [str(i) for i in range(n)],
        "text": words,
        "sentence": np.repeat(np.arange(len(sentences)), words_per_sentence),
        "word_num": np.tile(np.arange(words_per_sentence), len(sentences)),
    })
    subjects = np.repeat([str(s) for s in range(1, len(counts) + 1)], counts)
    channels = pd.DataFrame({"channel_id": [str(i) for i in range(ecog.shape[0])], "subject": subjects,
                             "electrode": np.arange(ecog.shape[0])})
    return Presentations(stimuli=stimuli, responses=responses, channels=channels, group="sentence", kind="ecog",
                         source=str(mat_path), extra={"sentences_file": str(text_path),
                                                      "electrodes_per_subject": counts})


def write_fedorenko(directory: str | os.PathLike, ecog: np.ndarray, sentences: Sequence[str],
                    name: str = "ECoG_g_lang_v3.mat", v73: bool = False) -> tuple[Path, Path]:
    """Write the ECoG file (``ecog``: electrodes x words) and the sentence list into ``directory``.

    Returns
    -------
    (Path, Path)
        The ``.mat`` file and the ``sentences.txt`` written.
    """
    if not name.endswith("g_lang_v3.mat"):
        raise ValueError(f"name: expected a file name ending in g_lang_v3.mat, found {name!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    mat_path, text_path = directory / name, directory / "sentences.txt"
    ecog = np.asarray(ecog, dtype=np.float64)
    if v73:
        write_mat73(mat_path, {"ecog": ecog})
    else:
        with atomic_path(mat_path) as tmp:
            scipy.io.savemat(tmp, {"ecog": ecog}, do_compression=False)
    with atomic_path(text_path) as tmp:
        tmp.write_text("".join(f"{s}\n" for s in sentences))
    return mat_path, text_path
