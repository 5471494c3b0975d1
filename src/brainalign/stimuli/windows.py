"""The words preceding each TR: the input of the fMRI models (reference section 2).

A word belongs to the TR that starts at time ``t`` if ``t - span <= onset < t`` and it lies in the same
run; the TR is used only if its earliest word starts at least ``min_lead`` seconds before ``t``. With the
seed paper's ``span = 10.1`` and ``min_lead = 9.6`` and a word every 0.5 s, each TR gets 20 words.
Fixation entries are not words of the text and never enter a window.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SPAN = 10.1
MIN_LEAD = 9.6


def tr_windows(tr_times: np.ndarray, tr_runs: np.ndarray, words: pd.DataFrame, span: float = SPAN,
               min_lead: float = MIN_LEAD) -> pd.DataFrame:
    """The window of words of every TR.

    Parameters
    ----------
    tr_times, tr_runs : ndarray of shape (n_trs,)
        TR start times (seconds) and runs.
    words : DataFrame
        Columns ``word``, ``onset`` and ``run`` (see :meth:`Recording.story_words`), onsets increasing.
    span, min_lead : float
        The window rule, in seconds.

    Returns
    -------
    DataFrame with one row per TR: ``first_word`` (index into ``words``), ``n_words``, ``text`` (the words
    joined by spaces) and ``valid`` (the TR has a full window).
    """
    onsets = words["onset"].to_numpy(dtype=np.float64)
    word_runs = words["run"].to_numpy()
    texts = words["word"].astype(str).tolist()
    first = np.zeros(len(tr_times), dtype=np.int64)
    count = np.zeros(len(tr_times), dtype=np.int64)
    text = [""] * len(tr_times)
    for run in np.unique(tr_runs):
        in_run = np.flatnonzero(word_runs == run)
        run_onsets = onsets[in_run]
        rows = np.flatnonzero(tr_runs == run)
        lo = np.searchsorted(run_onsets, tr_times[rows] - span, side="left")
        hi = np.searchsorted(run_onsets, tr_times[rows], side="left")
        has_words = hi > lo
        first[rows[has_words]] = in_run[lo[has_words]]
        count[rows] = hi - lo
        for row, a, b in zip(rows, lo, hi):
            text[row] = " ".join(texts[j] for j in in_run[a:b])
    earliest = np.full(len(tr_times), np.inf)
    earliest[count > 0] = onsets[first[count > 0]]
    valid = (count > 0) & (earliest <= tr_times - min_lead)
    return pd.DataFrame({"first_word": first, "n_words": count, "text": text, "valid": valid})
