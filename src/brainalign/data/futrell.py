"""Futrell et al. 2018 Natural Stories self-paced reading times, in the files of ``naturalstories_RTS/``.

``all_stories.tok``
    Tab-separated ``word``, ``zone``, ``item``: one row per region (a word with its punctuation) of the 10
    stories (items), ``zone`` its 1-based position in the story; 10,256 rows.
``processed_RTs.tsv``
    Tab-separated, one row per reader and word: ``WorkerId``, ``WorkTimeInSeconds``, ``correct`` (questions
    answered correctly), ``item``, ``zone``, ``RT`` (ms), ``word``, ... Kept where ``100 < RT < 3000`` and
    ``correct > 4`` (as ``process_RTs.R`` and Brain-Score do); channels are readers, NaN where a reader has no
    kept RT for a word.
``processed_wordinfo.tsv``
    Tab-separated per-word aggregates ``word``, ``zone``, ``item``, ``nItem``, ``meanItemRT``, ... sorted by
    word, not position; one channel ``mean`` holds ``meanItemRT`` in story order.

Presentations are words in story order; ``group`` is ``story`` (the model reads each story from its start).
``sentence_first`` marks the first word of each sentence: a story's first word and any word after one ending
in ``.``, ``!`` or ``?`` (or one of them followed by a closing quote). Brain-Score scores surprisal against
reading times without those words.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from brainalign.data.presentations import BENCHMARK_SOURCES, Presentations, require_path
from brainalign.errors import InputError
from brainalign.files import atomic_path

log = logging.getLogger(__name__)

STORIES_FILE = "all_stories.tok"
RTS_FILE = "processed_RTs.tsv"
WORDINFO_FILE = "processed_wordinfo.tsv"
STORY_COLUMNS = ("word", "zone", "item")
RT_COLUMNS = ("WorkerId", "WorkTimeInSeconds", "correct", "item", "zone", "RT")
WORDINFO_COLUMNS = ("word", "zone", "item", "meanItemRT")
SENTENCE_ENDS = (".", "!", "?", ".'", "!'", "?'", '."', '!"', '?"')
MEASURES = ("auto", "readers", "mean")


def _read_tsv(path: Path, columns: tuple[str, ...], integers: tuple[str, ...], numbers: tuple[str, ...] = ()
              ) -> pd.DataFrame:
    # Everything as text first: a word such as "null" or "NA" must stay a word, and a bad number must be
    # reported with its row rather than turn into NaN.
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=[], quoting=3)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(path, "file", "a tab-separated table with a header", f"{type(exc).__name__}: {exc}") from exc
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(path, missing[0], f"columns {list(columns)}", f"columns {list(table.columns)}")
    for column in integers + numbers:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() | (~np.isfinite(values))
        if column in integers:
            bad |= values != np.round(values)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(path, column, "an integer" if column in integers else "a number",
                             f"{table[column].iloc[row]!r} at data row {row + 1}")
        table[column] = values.astype(np.int64 if column in integers else np.float64)
    return table


def read_stories(path: str | os.PathLike) -> pd.DataFrame:
    """``all_stories.tok`` in story order, with ``sentence_first``, ``sentence_in_story`` and ``sentence``.

    ``sentence`` numbers the sentences of the whole file from 0; ``sentence_in_story`` restarts per story.
    """
    path = Path(path)
    words = _read_tsv(path, STORY_COLUMNS, integers=("zone", "item"))
    duplicated = words.duplicated(["item", "zone"])
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise InputError(path, "zone", "one row per (item, zone)",
                         f"item {words['item'].iloc[row]} zone {words['zone'].iloc[row]} again at data row {row + 1}")
    words = words.sort_values(["item", "zone"], kind="stable").reset_index(drop=True)
    new_story = words["item"].ne(words["item"].shift()).to_numpy()
    previous_ends = np.r_[False, words["word"].str.endswith(SENTENCE_ENDS).to_numpy()[:-1]]
    first = new_story | previous_ends
    words["sentence_first"] = first
    words["sentence"] = np.cumsum(first) - 1
    words["sentence_in_story"] = words["sentence"] - words.groupby("item")["sentence"].transform("min")
    return words


@BENCHMARK_SOURCES.register("futrell2018")
def read_futrell2018(path: Path, measure: str = "auto", min_rt: float = 100.0, max_rt: float = 3000.0,
                     min_correct: int = 4) -> Presentations:
    """Natural Stories reading times under ``path`` (a ``naturalstories_RTS`` directory).

    Parameters
    ----------
    path : path
        Directory with ``all_stories.tok`` and ``processed_RTs.tsv`` and/or ``processed_wordinfo.tsv``.
    measure : {"auto", "readers", "mean"}
        ``readers``: one channel per reader from ``processed_RTs.tsv``; ``mean``: one channel of
        ``meanItemRT`` from ``processed_wordinfo.tsv``; ``auto``: readers when that file is there.
    min_rt, max_rt : float
        Per-reader RTs are kept where ``min_rt < RT < max_rt`` (ms).
    min_correct : int
        ... and where ``correct > min_correct``.
    """
    path = Path(path)
    require_path(path, "a naturalstories_RTS directory", directory=True)
    if measure not in MEASURES:
        raise InputError(path, "measure", f"one of {list(MEASURES)}", repr(measure))
    if measure == "auto":
        measure = "readers" if (path / RTS_FILE).is_file() else "mean"
    stories_path = path / STORIES_FILE
    require_path(stories_path, f"the story words ({STORIES_FILE})", directory=False)
    words = read_stories(stories_path)
    position = {key: i for i, key in enumerate(zip(words["item"], words["zone"]))}
    if measure == "readers":
        rts_path = path / RTS_FILE
        require_path(rts_path, f"per-reader reading times ({RTS_FILE})", directory=False)
        responses, channels = _reader_matrix(rts_path, position, min_rt, max_rt, min_correct)
        allow_missing, source = True, rts_path
    else:
        info_path = path / WORDINFO_FILE
        require_path(info_path, f"per-word mean reading times ({WORDINFO_FILE})", directory=False)
        responses, channels = _mean_column(info_path, words, position)
        allow_missing, source = False, info_path
    stimuli = pd.DataFrame({
        "stimulus_id": [f"{i}.{z}" for i, z in zip(words["item"], words["zone"])],
        "text": words["word"],
        "sentence": words["sentence"],
        "story": words["item"],
        "item": words["item"],
        "zone": words["zone"],
        "word": words["word"],
        "sentence_in_story": words["sentence_in_story"],
        "sentence_first": words["sentence_first"],
    })
    return Presentations(stimuli=stimuli, responses=responses, channels=channels, group="story",
                         kind="reading_times", source=str(source), allow_missing=allow_missing,
                         extra={"measure": measure, "stories_file": str(stories_path)})


def _locate(path: Path, table: pd.DataFrame, position: dict) -> np.ndarray:
    rows = np.array([position.get(key, -1) for key in zip(table["item"], table["zone"])], dtype=np.int64)
    if (rows < 0).any():
        row = int(np.flatnonzero(rows < 0)[0])
        raise InputError(path, "item/zone", f"(item, zone) pairs of {STORIES_FILE}",
                         f"item {table['item'].iloc[row]} zone {table['zone'].iloc[row]} "
                         f"at data row {int(table.index[row]) + 1}")  # the index is the file's row, even filtered
    return rows


def _reader_matrix(path: Path, position: dict, min_rt: float, max_rt: float, min_correct: int
                   ) -> tuple[np.ndarray, pd.DataFrame]:
    table = _read_tsv(path, RT_COLUMNS, integers=("item", "zone"), numbers=("RT", "correct", "WorkTimeInSeconds"))
    readers = list(dict.fromkeys(table["WorkerId"]))
    kept = table[(table["RT"] > min_rt) & (table["RT"] < max_rt) & (table["correct"] > min_correct)]
    rows = _locate(path, kept, position)
    reader_index = {r: i for i, r in enumerate(readers)}
    columns = kept["WorkerId"].map(reader_index).to_numpy()
    totals = np.zeros((len(position), len(readers)))
    counts = np.zeros((len(position), len(readers)))
    np.add.at(totals, (rows, columns), kept["RT"].to_numpy())
    np.add.at(counts, (rows, columns), 1)
    if (counts > 1).any():
        log.warning("%s: %d (reader, word) pairs have several RTs; their mean is used", path, int((counts > 1).sum()))
    responses = np.where(counts > 0, totals / np.maximum(counts, 1), np.nan).astype(np.float32)
    first = table.drop_duplicates("WorkerId").set_index("WorkerId")
    channels = pd.DataFrame({"channel_id": readers, "subject": readers,
                             "correct": first.loc[readers, "correct"].to_numpy(),
                             "WorkTimeInSeconds": first.loc[readers, "WorkTimeInSeconds"].to_numpy()})
    return responses, channels


def _mean_column(path: Path, words: pd.DataFrame, position: dict) -> tuple[np.ndarray, pd.DataFrame]:
    table = _read_tsv(path, WORDINFO_COLUMNS, integers=("item", "zone"), numbers=("meanItemRT",))
    rows = _locate(path, table, position)
    if len(table) != len(words) or len(np.unique(rows)) != len(rows):
        raise InputError(path, "item/zone", f"each of the {len(words)} words of {STORIES_FILE} once",
                         f"{len(table)} rows covering {len(np.unique(rows))} words")
    differ = np.flatnonzero(words["word"].to_numpy()[rows] != table["word"].to_numpy())
    if differ.size:
        row = int(differ[0])
        raise InputError(path, "word", f"the word of {STORIES_FILE} at item {table['item'].iloc[row]} zone "
                         f"{table['zone'].iloc[row]} ({words['word'].iloc[rows[row]]!r})",
                         f"{table['word'].iloc[row]!r} at data row {row + 1}")
    responses = np.empty((len(words), 1), dtype=np.float32)
    responses[rows, 0] = table["meanItemRT"].to_numpy()
    return responses, pd.DataFrame({"channel_id": ["mean"], "subject": ["mean"]})


def write_futrell(directory: str | os.PathLike, stories: pd.DataFrame, reading_times: pd.DataFrame | None = None,
                  wordinfo: pd.DataFrame | None = None) -> Path:
    """Write ``all_stories.tok`` and, if given, ``processed_RTs.tsv`` and ``processed_wordinfo.tsv``.

    Parameters
    ----------
    stories : DataFrame
        ``word``, ``zone``, ``item`` in story order.
    reading_times : DataFrame, optional
        One row per reader and word with at least :data:`RT_COLUMNS` (and usually ``word``).
    wordinfo : DataFrame, optional
        Per-word aggregates with at least :data:`WORDINFO_COLUMNS`; written sorted by word, as the release
        is (:func:`wordinfo_from_reading_times` makes one).

    Returns
    -------
    Path
        ``directory``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    parts = [(STORIES_FILE, stories[list(STORY_COLUMNS)])]
    if reading_times is not None:
        parts.append((RTS_FILE, reading_times))
    if wordinfo is not None:
        parts.append((WORDINFO_FILE, wordinfo.sort_values(["word", "item", "zone"], kind="stable")))
    for name, table in parts:
        with atomic_path(directory / name) as tmp:
            table.to_csv(tmp, sep="\t", index=False, quoting=3, lineterminator="\n")
    return directory


def wordinfo_from_reading_times(reading_times: pd.DataFrame, min_rt: float = 100.0, max_rt: float = 3000.0,
                                min_correct: int = 4) -> pd.DataFrame:
    """Per-word aggregates as ``process_RTs.R`` makes them: filter, then group by (word, zone, item).

    Columns ``word``, ``zone``, ``item``, ``nItem``, ``meanItemRT``, ``sdItemRT``, ``gmeanItemRT``,
    ``gsdItemRT`` (R's ``sd``: ddof 1).
    """
    kept = reading_times[(reading_times["RT"] > min_rt) & (reading_times["RT"] < max_rt)
                         & (reading_times["correct"] > min_correct)].assign(logRT=lambda t: np.log(t["RT"]))
    grouped = kept.groupby(["word", "zone", "item"], sort=True)
    return pd.DataFrame({
        "nItem": grouped["RT"].size(), "meanItemRT": grouped["RT"].mean(), "sdItemRT": grouped["RT"].std(ddof=1),
        "gmeanItemRT": np.exp(grouped["logRT"].mean()), "gsdItemRT": np.exp(grouped["logRT"].std(ddof=1)),
    }).reset_index()
