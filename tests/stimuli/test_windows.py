"""Tests of the TR word windows (``brainalign.stimuli.windows.tr_windows``) against hand-worked cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign.stimuli.windows import MIN_LEAD, SPAN, tr_windows


def regular_words(start=20.0, step=0.5, n=80, run=1, prefix="w"):
    """Words ``{prefix}0, {prefix}1, ...`` every ``step`` seconds from ``start``; all values are exact in
    binary floating point."""
    return pd.DataFrame({"word": [f"{prefix}{i}" for i in range(n)],
                         "onset": start + step * np.arange(n),
                         "run": np.full(n, run)})


def reference_windows(tr_times, tr_runs, words, span, min_lead):
    """Brute force: for every TR scan every word (same run, t - span <= onset < t)."""
    rows = []
    for t, r in zip(tr_times, tr_runs):
        idx = [j for j in range(len(words))
               if words["run"].iloc[j] == r and t - span <= words["onset"].iloc[j] < t]
        n = len(idx)
        earliest = words["onset"].iloc[idx[0]] if n else np.inf
        rows.append({"n_words": n, "first_word": idx[0] if n else None,
                     "text": " ".join(str(words["word"].iloc[j]) for j in idx),
                     "valid": bool(n > 0 and earliest <= t - min_lead)})
    return rows


def test_defaults_are_the_seed_papers():
    """Truth: the module docstring (span 10.1 s, min lead 9.6 s)."""
    assert SPAN == 10.1
    assert MIN_LEAD == 9.6


def test_regular_grid_hand_worked():
    """Truth: hand-worked windows for words every 0.5 s from t = 20 (w0 at 20.0, wi at 20 + i/2) and TRs
    every 2 s from 0, with the default rule t - 10.1 <= onset < t, valid iff earliest <= t - 9.6."""
    words = regular_words()
    tr_times = np.arange(0.0, 64.0, 2.0)
    out = tr_windows(tr_times, np.ones(len(tr_times), dtype=int), words)
    assert list(out.columns) == ["first_word", "n_words", "text", "valid"]
    assert len(out) == len(tr_times)
    by_t = {float(t): out.iloc[i] for i, t in enumerate(tr_times)}

    # t = 40: window [29.9, 40): onsets 30.0, 30.5, ..., 39.5 -> w20..w39, 20 words (29.5 is outside,
    # the word at 40.0 is excluded). Earliest 30.0 <= 40 - 9.6 = 30.4 -> valid.
    row = by_t[40.0]
    assert row["n_words"] == 20
    assert row["first_word"] == 20
    assert row["text"] == " ".join(f"w{i}" for i in range(20, 40))
    assert bool(row["valid"]) is True

    # t = 30: window [19.9, 30): w0..w19, 20 words; earliest 20.0 <= 20.4 -> valid.
    row = by_t[30.0]
    assert (row["n_words"], row["first_word"], bool(row["valid"])) == (20, 0, True)
    assert row["text"] == " ".join(f"w{i}" for i in range(0, 20))

    # t = 28: window [17.9, 28): w0..w15 (20.0..27.5), 16 words; earliest 20.0 > 28 - 9.6 = 18.4 -> invalid.
    row = by_t[28.0]
    assert (row["n_words"], row["first_word"], bool(row["valid"])) == (16, 0, False)
    assert row["text"] == " ".join(f"w{i}" for i in range(0, 16))

    # t = 24: w0..w7, 8 words; 20.0 > 14.4 -> invalid.
    row = by_t[24.0]
    assert (row["n_words"], row["first_word"], bool(row["valid"])) == (8, 0, False)

    # t = 22: w0..w3 (20.0, 20.5, 21.0, 21.5), 4 words, invalid.
    assert (by_t[22.0]["n_words"], bool(by_t[22.0]["valid"])) == (4, False)

    # t = 20 and earlier: no word has onset < 20 -> 0 words, invalid, empty text.
    for t in (0.0, 2.0, 10.0, 18.0, 20.0):
        assert by_t[t]["n_words"] == 0
        assert bool(by_t[t]["valid"]) is False
        assert by_t[t]["text"] == ""

    # t = 32: window [21.9, 32): 22.0..31.5 -> w4..w23, 20 words, 22.0 <= 22.4 -> valid.
    assert (by_t[32.0]["n_words"], by_t[32.0]["first_word"], bool(by_t[32.0]["valid"])) == (20, 4, True)

    # t = 62 (story ended at 59.5): window [51.9, 62): 52.0..59.5 -> w64..w79, 16 words; earliest 52.0 <=
    # 62 - 9.6 = 52.4 -> valid under the rule as stated.
    assert (by_t[62.0]["n_words"], by_t[62.0]["first_word"], bool(by_t[62.0]["valid"])) == (16, 64, True)

    # Every TR from 30 to 60 has a full window of 20 words.
    for t in np.arange(30.0, 62.0, 2.0):
        assert by_t[float(t)]["n_words"] == 20


def test_window_boundaries():
    """Truth: the rule by hand: a word exactly at t - span is in, a word exactly at t is out, a word just
    before t - span is out."""
    t = 40.0
    assert t - SPAN == 29.9  # the float subtraction lands exactly on the literal 29.9
    words = pd.DataFrame({"word": ["early", "edge", "mid", "late", "at_t", "after"],
                          "onset": [np.nextafter(29.9, 0.0), 29.9, 35.0, np.nextafter(40.0, 0.0), 40.0, 41.0],
                          "run": [1] * 6})
    out = tr_windows(np.array([t]), np.array([1]), words)
    assert out["n_words"].tolist() == [3]
    assert out["first_word"].tolist() == [1]
    assert out["text"].tolist() == ["edge mid late"]
    assert out["valid"].tolist() == [True]  # 29.9 <= 30.4


def test_min_lead_boundary():
    """Truth: by hand with binary-exact span 10.5 and min_lead 9.5 at t = 40: earliest word at exactly
    30.5 is valid (<=), a word one ulp later is not."""
    exact = pd.DataFrame({"word": ["a", "b"], "onset": [30.5, 35.0], "run": [1, 1]})
    late = pd.DataFrame({"word": ["a", "b"], "onset": [np.nextafter(30.5, 99.0), 35.0], "run": [1, 1]})
    out_exact = tr_windows(np.array([40.0]), np.array([1]), exact, span=10.5, min_lead=9.5)
    out_late = tr_windows(np.array([40.0]), np.array([1]), late, span=10.5, min_lead=9.5)
    assert out_exact["n_words"].tolist() == [2] and out_exact["valid"].tolist() == [True]
    assert out_late["n_words"].tolist() == [2] and out_late["valid"].tolist() == [False]


def test_words_do_not_cross_runs():
    """Truth: by hand, two runs on one clock: run 1 words 20.0..109.5 (w0..w179), run 1 TRs 0..110;
    run 2 TRs 112..200, run 2 words from 130 (v0..). A TR at the start of run 2 gets no run-1 word."""
    run1 = regular_words(start=20.0, n=180, run=1, prefix="w")
    run2 = regular_words(start=130.0, n=140, run=2, prefix="v")
    words = pd.concat([run1, run2], ignore_index=True)
    tr_times = np.concatenate([np.arange(0.0, 112.0, 2.0), np.arange(112.0, 202.0, 2.0)])
    tr_runs = np.concatenate([np.ones(56, dtype=int), np.full(45, 2)])
    out = tr_windows(tr_times, tr_runs, words)
    by_t = {float(t): out.iloc[i] for i, t in enumerate(tr_times)}

    # t = 112, run 2: [101.9, 112) holds run-1 words w164..w179 on the clock, but they are run 1 -> none.
    assert by_t[112.0]["n_words"] == 0
    assert bool(by_t[112.0]["valid"]) is False
    # t = 130, run 2: [119.9, 130): no run-2 word before 130 -> none.
    assert by_t[130.0]["n_words"] == 0
    # t = 140, run 2: [129.9, 140): v0..v19 -> 20 words; first_word indexes the whole table (180 + 0).
    row = by_t[140.0]
    assert (row["n_words"], row["first_word"], bool(row["valid"])) == (20, 180, True)
    assert row["text"] == " ".join(f"v{i}" for i in range(20))
    # t = 110, run 1: [99.9, 110): w160..w179 -> 20 words, valid.
    row = by_t[110.0]
    assert (row["n_words"], row["first_word"], bool(row["valid"])) == (20, 160, True)
    assert row["text"] == " ".join(f"w{i}" for i in range(160, 180))
    # No run-2 TR text contains a run-1 word and vice versa.
    for i in range(len(tr_times)):
        tokens = out["text"].iloc[i].split()
        prefix = "w" if tr_runs[i] == 1 else "v"
        assert all(tok.startswith(prefix) for tok in tokens)


def test_empty_word_table():
    """Truth: with no words every TR has 0 words, empty text and is invalid."""
    words = pd.DataFrame({"word": pd.Series([], dtype=str), "onset": pd.Series([], dtype=float),
                          "run": pd.Series([], dtype=int)})
    out = tr_windows(np.array([0.0, 10.0, 20.0]), np.array([1, 1, 2]), words)
    assert out["n_words"].tolist() == [0, 0, 0]
    assert out["valid"].tolist() == [False, False, False]
    assert out["text"].tolist() == ["", "", ""]


def test_tr_in_run_without_words():
    """Truth: a run with TRs but no words at all gives 0 words there; the other run is unaffected."""
    words = regular_words(start=20.0, n=40, run=1)
    out = tr_windows(np.array([40.0, 40.0]), np.array([1, 3]), words)
    assert out["n_words"].tolist() == [20, 0]
    assert out["valid"].tolist() == [True, False]
    assert out["text"].tolist()[1] == ""


def test_matches_brute_force_on_irregular_words():
    """Truth: a brute-force scan of every word for every TR, on irregular onsets in two runs."""
    rng = np.random.default_rng(3)
    parts = []
    for run, (t0, t1) in [(1, (5.0, 100.0)), (2, (130.0, 230.0))]:
        onsets = np.sort(rng.uniform(t0, t1, size=150))
        parts.append(pd.DataFrame({"word": [f"r{run}_{i}" for i in range(150)], "onset": onsets,
                                   "run": np.full(150, run)}))
    words = pd.concat(parts, ignore_index=True)
    tr_times = np.concatenate([np.arange(0.0, 120.0, 1.5), np.arange(120.0, 240.0, 1.5)])
    tr_runs = np.concatenate([np.ones(80, dtype=int), np.full(80, 2)])
    out = tr_windows(tr_times, tr_runs, words)
    expected = reference_windows(tr_times, tr_runs, words, SPAN, MIN_LEAD)
    assert sum(e["valid"] for e in expected) > 50  # the case exercises valid and invalid TRs
    assert sum(not e["valid"] for e in expected) > 10
    for i, e in enumerate(expected):
        assert out["n_words"].iloc[i] == e["n_words"], i
        assert out["text"].iloc[i] == e["text"], i
        assert bool(out["valid"].iloc[i]) == e["valid"], i
        if e["n_words"]:
            assert out["first_word"].iloc[i] == e["first_word"], i


@pytest.mark.parametrize("span,min_lead", [(4.0, 3.0), (6.25, 6.25)])
def test_custom_rule_brute_force(span, min_lead):
    """Truth: brute-force scan with non-default span/min_lead on the regular grid."""
    words = regular_words(start=3.0, step=0.25, n=200)
    tr_times = np.arange(0.0, 60.0, 0.75)
    tr_runs = np.ones(len(tr_times), dtype=int)
    out = tr_windows(tr_times, tr_runs, words, span=span, min_lead=min_lead)
    expected = reference_windows(tr_times, tr_runs, words, span, min_lead)
    assert out["n_words"].tolist() == [e["n_words"] for e in expected]
    assert out["text"].tolist() == [e["text"] for e in expected]
    assert out["valid"].tolist() == [e["valid"] for e in expected]


def test_interleaved_runs_text_uses_only_words_of_the_tr_run():
    """Truth: by hand. The docstring asks for onsets increasing, not for each run's words to be contiguous;
    with two runs interleaved in one time-sorted table, the TR at t = 3 of run 1 has the run-1 words a1 (1.0)
    and c1 (2.0), so its text must be "a1 c1" (n_words is 2 either way).

    KNOWN BUG (windows.py, ``text = [" ".join(texts[f:f + c]) ...]``): the text is sliced from the whole
    table as if a run's words were contiguous, giving "a1 b2" (a run-2 word). The pipeline's
    ``story_words`` assigns runs from one clock, so its tables are contiguous and this does not arise there.
    """
    words = pd.DataFrame({"word": ["a1", "b2", "c1", "d2"], "onset": [1.0, 1.5, 2.0, 2.5], "run": [1, 2, 1, 2]})
    out = tr_windows(np.array([3.0, 3.0]), np.array([1, 2]), words)
    assert out["n_words"].tolist() == [2, 2]
    assert out["text"].tolist() == ["a1 c1", "b2 d2"]
