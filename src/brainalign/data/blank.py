"""Blank et al. 2014: fROI time courses of the language network while listening to Natural Stories.

The layout mirrors the files that neural-nlp and Brain-Score packaged from (``StoriesData_Dec2018/``, see
``brainscore_language/data/blank2014/data_packaging.py``), with the per-subject meta file left out:

``<UID>_<SessionID>_preprocessed.mat`` (one per participant, MATLAB v5 as released; v7.3 is read too)
    ``data.language.from90to100`` is a 1 x 12 struct array, one element per language fROI (``01_LH_PostTemp``
    ... ``12_RH_AngG``, :data:`FROIS`), whose ``timeseries`` is a struct with one field per story
    (``Boar``, ``Aqua``, ...): a voxels x TRs matrix. TR ``i`` (0-based) ends ``tr * (i + 1) - fixation``
    seconds after the story's text starts (``fixation`` = 8 s of fixation before it). An fROI whose
    ``timeseries`` is not a struct (NaN in the release) has no data for that participant and is skipped.
``stories_textgridsbyJeanne/<number>.TextGrid``
    Praat TextGrids (long text format) per story number (:data:`STORY_NUMBERS`: Boar 1 ... Tulips 9), whose
    ``words`` tier gives each word's start and end in seconds (empty and ``<s>``-style intervals ignored).

As Brain-Score does: each fROI's voxels are averaged (neuroids = participant x fROI); a TR gets the words
that ended after the previous TR's time and at most ``bold_shift`` seconds before its own (TRs at or before
``bold_shift`` get none), TRs with no new words are dropped. ``group`` is ``story``. The presentations'
``sentence`` column is the presentation's own number: TRs do not follow sentence boundaries.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.io

from brainalign.data.matfile import load_mat, write_mat73
from brainalign.data.presentations import BENCHMARK_SOURCES, Presentations, require_path
from brainalign.errors import InputError
from brainalign.files import atomic_path

log = logging.getLogger(__name__)

FROIS = ("01_LH_PostTemp", "02_LH_AntTemp", "03_LH_IFG", "04_LH_IFGorb", "05_LH_MFG", "06_LH_AngG",
         "07_RH_PostTemp", "08_RH_AntTemp", "09_RH_IFG", "10_RH_IFGorb", "11_RH_MFG", "12_RH_AngG")
STORY_NUMBERS = {"Boar": 1, "Aqua": 2, "MatchstickSeller": 3, "KingOfBirds": 4, "Elvis": 5, "MrSticky": 6,
                 "HighSchool": 7, "Roswell": 8, "Tulips": 9, "Tourette": 10}
TEXTGRID_FOLDER = "stories_textgridsbyJeanne"
IGNORED_WORDS = ("", "<s>", "</s>", "<s", "sp")
REGION, THRESHOLD = "language", "from90to100"
_INTERVAL = re.compile(r'xmin\s*=\s*([-+0-9.eE]+)\s*xmax\s*=\s*([-+0-9.eE]+)\s*text\s*=\s*"((?:[^"]|"")*)"')
_TIER = re.compile(r'item\s*\[\d+\]\s*:')


def read_textgrid_words(path: str | os.PathLike, tier: str = "words") -> pd.DataFrame:
    """The intervals of one tier of a Praat TextGrid (long text format): ``word``, ``time_start``, ``time_end``.

    Empty and silence intervals (:data:`IGNORED_WORDS`) are dropped; rows are sorted by ``time_end``.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    if "ooTextFile" not in text or "TextGrid" not in text:
        raise InputError(path, "header", 'a Praat TextGrid ("ooTextFile", "TextGrid")', repr(text[:40]))
    tiers = {}
    for block in _TIER.split(text)[1:]:
        name = re.search(r'name\s*=\s*"((?:[^"]|"")*)"', block)
        if name:
            tiers[name.group(1)] = block
    if tier not in tiers:
        raise InputError(path, "tier", f"a tier named {tier!r}", f"tiers {list(tiers)}")
    rows = [(m.group(3).replace('""', '"').strip(), float(m.group(1)), float(m.group(2)))
            for m in _INTERVAL.finditer(tiers[tier])]
    words = pd.DataFrame(rows, columns=["word", "time_start", "time_end"])
    words = words[~words["word"].isin(IGNORED_WORDS)]
    return words.sort_values("time_end", kind="stable").reset_index(drop=True)


def assign_words(word_ends: np.ndarray, tr_times: np.ndarray, bold_shift: float) -> np.ndarray:
    """The TR (0-based) each word goes to, or -1: the first TR whose time minus ``bold_shift`` is positive and
    not before the word's end (``tr_times`` ascending)."""
    shifted = np.asarray(tr_times, dtype=np.float64) - bold_shift
    usable = np.flatnonzero(shifted > 0)
    position = np.searchsorted(shifted[usable], np.asarray(word_ends, dtype=np.float64), side="left")
    return np.where(position < usable.size, usable[np.minimum(position, max(usable.size - 1, 0))], -1) \
        if usable.size else np.full(len(word_ends), -1)


def _participant_series(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """fROI -> story -> mean time course over the fROI's voxels."""
    mat = load_mat(path)
    where = f"data.{REGION}.{THRESHOLD}"
    if "data" not in mat:
        raise InputError(path, "data", "a variable of that name",
                         f"variables {sorted(k for k in mat if not k.startswith('__'))}")
    node = np.asarray(mat["data"])
    for depth, name in enumerate((REGION, THRESHOLD)):
        node = node.reshape(-1)
        if node.dtype.names is None or name not in node.dtype.names:
            parent = ".".join(["data", REGION, THRESHOLD][:depth + 1])
            raise InputError(path, f"{parent}.{name}", "a struct field of that name",
                             f"fields {list(node.dtype.names or [])} of {parent}")
        node = np.asarray(node[0][name])
    elements = node.reshape(-1, order="F")
    if elements.dtype.names is None or "timeseries" not in elements.dtype.names:
        raise InputError(path, f"{where}.timeseries", "a struct array with field timeseries",
                         f"fields {list(elements.dtype.names or [])}")
    if elements.size != len(FROIS):
        raise InputError(path, where, f"{len(FROIS)} fROIs", f"{elements.size}")
    series: dict[str, dict[str, np.ndarray]] = {}
    for index, froi in enumerate(FROIS):
        stories = np.asarray(elements[index]["timeseries"]).reshape(-1)
        if stories.dtype.names is None:
            log.warning("%s: %s(%d).timeseries is not a struct (no data for fROI %s); skipped",
                        path, where, index + 1, froi)
            continue
        series[froi] = {}
        for story in stories.dtype.names:
            voxels = np.asarray(stories[0][story])
            field = f"{where}({index + 1}).timeseries.{story}"
            if voxels.ndim != 2 or not np.issubdtype(voxels.dtype, np.number) or voxels.size == 0:
                raise InputError(path, field, "a voxels x TRs numeric matrix",
                                 f"a {voxels.dtype} array of shape {voxels.shape}")
            bad = ~np.isfinite(voxels)
            if bad.any():
                voxel, tr = np.argwhere(bad)[0]
                raise InputError(path, field, "finite values",
                                 f"NaN or infinity in {int(bad.any(axis=0).sum())} TR(s), first at TR {tr + 1}, "
                                 f"voxel {voxel + 1}")
            series[froi][story] = voxels.astype(np.float64).mean(axis=0)
    if not series:
        raise InputError(path, where, "at least one fROI with time courses", "none")
    return series


@BENCHMARK_SOURCES.register("blank2014")
def read_blank2014(path: Path, bold_shift: float = 4.0, tr: float = 2.0, fixation: float = 8.0,
                   participants: Sequence[str] | None = None) -> Presentations:
    """The fROI time courses and TextGrids under ``path``, as TR presentations x (participant, fROI).

    Parameters
    ----------
    path : path
        Directory with ``<UID>_<SessionID>_preprocessed.mat`` files and ``stories_textgridsbyJeanne/``.
    bold_shift : float
        Seconds the BOLD response lags the words.
    tr : float
        Seconds per TR.
    fixation : float
        Seconds of fixation before each story's text (TR ``i`` ends at ``tr * (i + 1) - fixation``).
    participants : sequence of str, optional
        UIDs to keep (Brain-Score keeps 5 with all 8 stories); default every file.

    Raises
    ------
    InputError
        A file is malformed, participants have different stories or TR counts, or a story has no TextGrid.
    """
    path = Path(path)
    require_path(path, "a directory of Blank 2014 *_preprocessed.mat files", directory=True)
    files = sorted(path.glob("*_preprocessed.mat"))
    uids = {f: f.name.split("_", 1)[0] for f in files}
    if participants is not None:
        wanted = [str(p) for p in participants]
        unknown = [p for p in wanted if p not in uids.values()]
        if unknown:
            raise InputError(path, "participants", f"UIDs among {sorted(uids.values())}", f"{unknown}")
        files = [f for f in files if uids[f] in wanted]
    if not files:
        raise InputError(path, "<UID>_<SessionID>_preprocessed.mat", "at least one participant file", "none")
    per_file = {f: _participant_series(f) for f in files}
    first = files[0]
    stories = sorted({s for series in per_file[first].values() for s in series}, key=lambda s: STORY_NUMBERS.get(s, 99))
    lengths: dict[str, int] = {}
    length_file: dict[str, str] = {}
    for file, series in per_file.items():
        for froi, by_story in series.items():
            if sorted(by_story, key=lambda s: STORY_NUMBERS.get(s, 99)) != stories:
                raise InputError(file, f"data.{REGION}.{THRESHOLD}({FROIS.index(froi) + 1}).timeseries",
                                 f"the stories {stories} (as {first.name})", f"{sorted(by_story)}")
            for story, course in by_story.items():
                expected = lengths.setdefault(story, course.size)
                length_file.setdefault(story, f"{file.name}, fROI {froi}")
                if course.size != expected:
                    raise InputError(file, f"data.{REGION}.{THRESHOLD}({FROIS.index(froi) + 1}).timeseries.{story}",
                                     f"{expected} TRs (as {length_file[story]})", f"{course.size}")
    unknown = [s for s in stories if s not in STORY_NUMBERS]
    if unknown:
        raise InputError(first, f"data.{REGION}.{THRESHOLD}.timeseries", f"story names among {list(STORY_NUMBERS)}",
                         f"{unknown}")
    rows, word_tables, kept_trs = [], [], {}
    for story in stories:
        grid = path / TEXTGRID_FOLDER / f"{STORY_NUMBERS[story]}.TextGrid"
        require_path(grid, f"the TextGrid of story {story}", directory=False)
        words = read_textgrid_words(grid)
        times = tr * (np.arange(lengths[story]) + 1) - fixation
        assigned = assign_words(words["time_end"].to_numpy(), times, bold_shift)
        if (assigned < 0).any():
            log.warning("%s: %d word(s) of %s end after the last TR minus the BOLD shift; not presented",
                        grid, int((assigned < 0).sum()), story)
        kept = np.unique(assigned[assigned >= 0])
        kept_trs[story] = kept
        for index in kept:
            rows.append({"story": story, "story_number": STORY_NUMBERS[story], "tr": int(index),
                         "time": float(times[index]), "text": " ".join(words["word"][assigned == index]),
                         "n_words": int((assigned == index).sum())})
        word_tables.append(words.assign(story=story, tr=assigned))
    stimuli = pd.DataFrame(rows)
    stimuli.insert(0, "stimulus_id", [f"{s}.{t}" for s, t in zip(stimuli["story"], stimuli["tr"])])
    stimuli.insert(2, "sentence", np.arange(len(stimuli)))
    columns, channels = [], []
    for file in files:
        for froi, by_story in per_file[file].items():
            columns.append(np.concatenate([by_story[s][kept_trs[s]] for s in stories]))
            channels.append({"channel_id": f"{uids[file]}.{froi}", "subject": uids[file], "region": froi,
                             "froi_index": FROIS.index(froi) + 1})
    return Presentations(stimuli=stimuli, responses=np.column_stack(columns).astype(np.float32),
                         channels=pd.DataFrame(channels), group="story", kind="fmri", source=str(path),
                         extra={"words": pd.concat(word_tables, ignore_index=True), "bold_shift": bold_shift,
                                "tr": tr, "fixation": fixation})


def write_blank_participant(directory: str | os.PathLike, uid: str, session: str,
                            timeseries: dict[str, Sequence[np.ndarray | None]], v73: bool = False) -> Path:
    """Write ``<uid>_<session>_preprocessed.mat``: per story, per fROI (12, in :data:`FROIS` order) a voxels x
    TRs matrix; an fROI given as None for every story is written as NaN (no data), as the release does.

    The release is MATLAB v5; ``v73=True`` writes the same content as MATLAB v7.3 (HDF5), which
    :func:`read_blank2014` reads identically."""
    stories = list(timeseries)
    elements = []
    for index in range(len(FROIS)):
        courses = {s: timeseries[s][index] for s in stories}
        missing = all(c is None for c in courses.values())
        elements.append(np.nan if missing else {s: np.asarray(c, dtype=np.float64) for s, c in courses.items()})
    path = Path(directory) / f"{uid}_{session}_preprocessed.mat"
    structs = np.empty((1, len(FROIS)), dtype=[("timeseries", object)])
    for index, element in enumerate(elements):
        structs[0, index]["timeseries"] = element
    content = {"data": {REGION: {THRESHOLD: structs}}}
    if v73:
        write_mat73(path, content)
        return path
    with atomic_path(path) as tmp:
        scipy.io.savemat(tmp, content, do_compression=False)
    return path


def write_textgrid(path: str | os.PathLike, words: pd.DataFrame, tier: str = "words") -> Path:
    """Write a Praat TextGrid (long text format) with one interval tier from ``word``, ``time_start``,
    ``time_end``; gaps between words become empty intervals, as Praat keeps a tier contiguous."""
    intervals, cursor = [], 0.0
    for row in words.sort_values("time_start").itertuples(index=False):
        if row.time_start > cursor:
            intervals.append((cursor, float(row.time_start), ""))
        intervals.append((float(row.time_start), float(row.time_end), str(row.word)))
        cursor = float(row.time_end)
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {cursor}",
             "tiers? <exists>", "size = 1", "item []:", "    item [1]:", '        class = "IntervalTier"',
             f'        name = "{tier}"', "        xmin = 0", f"        xmax = {cursor}",
             f"        intervals: size = {len(intervals)}"]
    for number, (start, end, text) in enumerate(intervals, start=1):
        escaped = text.replace('"', '""')
        lines += [f"        intervals [{number}]:", f"            xmin = {start!r}", f"            xmax = {end!r}",
                  f'            text = "{escaped}"']
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


def write_blank_textgrids(directory: str | os.PathLike, story_words: dict[str, pd.DataFrame]) -> Path:
    """Write ``stories_textgridsbyJeanne/<number>.TextGrid`` for each story; returns the folder."""
    folder = Path(directory) / TEXTGRID_FOLDER
    for story, words in story_words.items():
        write_textgrid(folder / f"{STORY_NUMBERS[story]}.TextGrid", words)
    return folder
