"""Which examples fine-tuning changed, and what those examples have in common (reference section 4).

Per example, the percent change of the Euclidean distance between prediction and recorded response from
before to after fine-tuning (averaged over runs by the caller); ``|change| >= 10 %`` is *changed* (the
seed paper: 146 changed against 1022 unchanged). Each feature of the examples is then compared between
changed and unchanged ones, its mean in each group with a bootstrap standard error (100 samples).

Features come from the words of each window (:func:`window_features`: what a simulation knows) or, for
real recordings, from a table the user annotates (:func:`read_feature_table`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from brainalign.errors import InputError
from brainalign.stimuli.lexicon import is_content_word, word_length

THRESHOLD = 10.0
# Word-length bins (letters and digits), as (column, lowest, highest) inclusive.
LENGTH_BINS = (("length_1_3", 1, 3), ("length_4_6", 4, 6), ("length_7_plus", 7, np.inf))


def percent_change(y_true: np.ndarray, pred_before: np.ndarray, pred_after: np.ndarray) -> np.ndarray:
    """Per example, ``100 * (d_after - d_before) / d_before``, ``d`` the prediction-to-target distance.

    Parameters
    ----------
    y_true, pred_before, pred_after : ndarray of shape (n_examples, n_channels) or (n_examples,)
        Recorded responses and the predictions before and after fine-tuning.

    Returns
    -------
    ndarray of shape (n_examples,), float64
        Negative where fine-tuning brought the prediction closer. ``d`` is the Euclidean distance over
        channels; NaN where ``d_before`` is 0 (no relative change is defined).

    Examples
    --------
    >>> percent_change(np.zeros((1, 2)), np.array([[3.0, 4.0]]), np.array([[0.0, 4.0]]))
    array([-20.])
    """
    arrays = {}
    for name, a in (("y_true", y_true), ("pred_before", pred_before), ("pred_after", pred_after)):
        a = np.asarray(a, dtype=np.float64)
        arrays[name] = a[:, None] if a.ndim == 1 else a
        if arrays[name].ndim != 2:
            raise InputError(f"<{name}>", "shape", "(n_examples, n_channels)", f"{a.shape}")
    shape = arrays["y_true"].shape
    for name, a in arrays.items():
        if a.shape != shape:
            raise InputError(f"<{name}>", "shape", f"{shape} (the shape of y_true)", f"{a.shape}")
    before = np.linalg.norm(arrays["pred_before"] - arrays["y_true"], axis=1)
    after = np.linalg.norm(arrays["pred_after"] - arrays["y_true"], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = 100.0 * (after - before) / before
    change[before == 0] = np.nan
    return change


def changed_mask(change: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Examples whose percent change is at least ``threshold`` in magnitude (NaN counts as unchanged)."""
    change = np.asarray(change, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.abs(change) >= threshold


def feature_prevalence(features: pd.DataFrame, changed: np.ndarray, n_boot: int = 100,
                       rng: np.random.Generator | int | None = None) -> pd.DataFrame:
    """Mean of each feature on changed and on unchanged examples, with bootstrap standard errors.

    Parameters
    ----------
    features : DataFrame
        One row per example (in the order of ``changed``), numeric or boolean columns; a 0/1 column's
        mean is how often the feature occurs.
    changed : bool array of shape (n_examples,)
        :func:`changed_mask`.
    n_boot : int
        Bootstrap samples.
    rng : numpy Generator or int, optional
        Source of the resampling (an int seeds a new ``numpy.random.default_rng``).

    Returns
    -------
    DataFrame
        One row per feature: ``feature``, ``changed_mean``, ``changed_se``, ``unchanged_mean``,
        ``unchanged_se``, ``n_changed``, ``n_unchanged``.

    Notes
    -----
    Each group is bootstrapped on its own: ``n_boot`` times, its examples are drawn with replacement (as
    many as it has) and the feature means taken; the SE is the standard deviation of those ``n_boot``
    means (``ddof=1``). The changed group is drawn first, then the unchanged, all from ``rng``, so a seed
    reproduces the result exactly. A group without examples has NaN mean and SE.
    """
    if not isinstance(features, pd.DataFrame):
        raise InputError("<features>", "type", "a pandas DataFrame (rows = examples)", type(features).__name__)
    changed = np.asarray(changed)
    if changed.shape != (len(features),):
        raise InputError("<changed>", "shape", f"({len(features)},) (one per row of features)", f"{changed.shape}")
    if changed.dtype != bool:
        raise InputError("<changed>", "dtype", "bool", str(changed.dtype))
    if n_boot < 2:
        raise InputError("<feature_prevalence>", "n_boot", "at least 2 bootstrap samples", str(n_boot))
    values = _numeric(features, "<features>")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    columns = {}
    for group, mask in (("changed", changed), ("unchanged", ~changed)):
        x = values[mask]
        if len(x):
            draws = rng.integers(0, len(x), size=(n_boot, len(x)))
            boot = np.stack([x[d].mean(axis=0) for d in draws])  # (n_boot, n_features); one draw at a time
            columns[f"{group}_mean"], columns[f"{group}_se"] = x.mean(axis=0), boot.std(axis=0, ddof=1)
        else:
            columns[f"{group}_mean"] = columns[f"{group}_se"] = np.full(values.shape[1], np.nan)
    return pd.DataFrame({"feature": [str(c) for c in features.columns], **columns,
                         "n_changed": int(changed.sum()), "n_unchanged": int((~changed).sum())})


def window_features(examples) -> pd.DataFrame:
    """Features of each example's window of words: what the simulation knows about its examples.

    Parameters
    ----------
    examples : DataFrame or PreparedSubject
        Prepared examples (:mod:`brainalign.data.prepared`), with the ``text`` column: the window's words
        joined by spaces (fMRI: the words before the TR; MEG: the words up to the content word).

    Returns
    -------
    DataFrame, one row per example (index ``example``, 0..n-1, in the order of the examples)
        ``n_words``: words in the window; ``content_share``: share of them that are content words
        (:func:`brainalign.stimuli.lexicon.is_content_word`; punctuation is not); ``mean_word_length``: mean
        number of letters and digits (:func:`brainalign.stimuli.lexicon.word_length`); ``length_1_3``,
        ``length_4_6``, ``length_7_plus``: share of words with that many letters and digits. Length
        columns count only words with at least one letter or digit (a lone dash has no length), so the
        three shares sum to 1; NaN where a window has no such word.
    """
    table = examples.examples if hasattr(examples, "examples") else examples
    if not isinstance(table, pd.DataFrame) or "text" not in table.columns:
        raise InputError("<examples>", "text", "prepared examples with a text column (the window's words)",
                         f"columns {list(getattr(table, 'columns', []))}")
    records = []
    for text in table["text"].astype(str):
        words = text.split()
        lengths = np.array([word_length(w) for w in words])
        lengths = lengths[lengths > 0]
        record = {"n_words": len(words),
                  "content_share": float(np.mean([is_content_word(w) for w in words])) if words else np.nan,
                  "mean_word_length": float(lengths.mean()) if len(lengths) else np.nan}
        for column, lo, hi in LENGTH_BINS:
            record[column] = float(((lengths >= lo) & (lengths <= hi)).mean()) if len(lengths) else np.nan
        records.append(record)
    columns = ["n_words", "content_share", "mean_word_length", *(c for c, _, _ in LENGTH_BINS)]
    out = pd.DataFrame(records, columns=columns)
    out["n_words"] = out["n_words"].astype(np.int64)
    out.index.name = "example"
    return out


def read_feature_table(path: str | os.PathLike, n_examples: int) -> pd.DataFrame:
    """Read a user's annotation of the examples: a CSV with one row per example.

    Parameters
    ----------
    path : path
        CSV with a header. An ``example`` column (or an unnamed first column, as ``DataFrame.to_csv``
        writes the index) gives each row's example, 0..n_examples-1, each exactly once, in any order;
        without one, the rows are the examples in order. Every other column is a feature: numbers, or
        ``True``/``False``, with no missing values.
    n_examples : int
        Examples of the participant (rows of the prepared examples).

    Returns
    -------
    DataFrame indexed by ``example`` (0..n_examples-1, sorted), one float column per feature.

    Raises
    ------
    InputError
        Naming the file, the column, what was expected and what was found.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file", "a CSV of example features", "no such file")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(path, "file", "a CSV with a header row", f"unreadable ({exc})") from exc
    index_column = "example" if "example" in table.columns else None
    if index_column is None and len(table.columns) and str(table.columns[0]).startswith("Unnamed: 0"):
        index_column = table.columns[0]
    if index_column is not None:
        ids = table[index_column]
        if not pd.api.types.is_integer_dtype(ids):
            raise InputError(path, str(index_column), "integer example numbers", f"values of type {ids.dtype}")
        ids = ids.to_numpy()
        duplicated = pd.Series(ids)[pd.Series(ids).duplicated()].unique()
        if len(duplicated):
            raise InputError(path, str(index_column), "each example once",
                             f"repeated example(s) {', '.join(map(str, duplicated[:5]))}")
        outside = ids[(ids < 0) | (ids >= n_examples)]
        if len(outside):
            raise InputError(path, str(index_column), f"example numbers 0..{n_examples - 1}",
                             f"{', '.join(map(str, outside[:5]))}")
        if len(ids) != n_examples:
            absent = np.setdiff1d(np.arange(n_examples), ids)
            raise InputError(path, str(index_column), f"all {n_examples} examples",
                             f"{len(ids)} rows; missing example(s) {', '.join(map(str, absent[:5]))}"
                             f"{' ...' if len(absent) > 5 else ''}")
        table = table.set_index(index_column).sort_index()
    elif len(table) != n_examples:
        raise InputError(path, "rows", f"{n_examples} rows (one per example) or an example column",
                         f"{len(table)} rows")
    table.index = pd.RangeIndex(n_examples, name="example")
    if not len(table.columns):
        raise InputError(path, "columns", "at least one feature column besides example", "none")
    values = _numeric(table, path)
    return pd.DataFrame(values, index=table.index, columns=[str(c) for c in table.columns])


def _numeric(table: pd.DataFrame, source) -> np.ndarray:
    """The table's columns as a float64 array, refusing text and missing or infinite values."""
    for column in table.columns:
        series = table[column]
        if not (pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series)):
            example = series.dropna().astype(str).head(1).tolist()
            raise InputError(source, str(column), "numbers or True/False",
                             f"values of type {series.dtype}{f', e.g. {example[0]!r}' if example else ''}")
        bad = ~np.isfinite(series.to_numpy(dtype=np.float64))
        if bad.any():
            raise InputError(source, str(column), "a finite value for every example",
                             f"{int(bad.sum())} missing or infinite, first at example {int(np.flatnonzero(bad)[0])}")
    return table.to_numpy(dtype=np.float64).reshape(len(table), len(table.columns))
