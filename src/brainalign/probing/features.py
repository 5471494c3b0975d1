"""Story features: annotations of every word entry of a recording, in feature groups.

The Harry Potter release ships them as ``story_features.mat`` (reference section 9): a variable ``features``,
a 1 x G struct array of feature groups, each with ``type`` (the group's name, char), ``names`` (a cell of
feature names) and ``values`` (word entries x features, numeric), the rows aligned with the recording's
``words`` entries, fixations (``+``) included. Both MATLAB v5 and v7.3 files are read
(:mod:`brainalign.data.matfile`) and written (:func:`write_story_features`).

A user's own data can come as a features table instead: a tab-separated file with one row per word entry and
one column per feature named ``group/name`` (a column without ``/`` belongs to the group ``custom``), plus an
optional ``word`` column that is checked against the recording's words. :func:`read_features` reads either
kind, by suffix.

In memory a :class:`StoryFeatures` is a list of :class:`FeatureGroup`; a feature's flattened name is
``"<group>/<name>"`` (``"pos/NN"``, ``"punctuation/,"``), unique even where two groups share a name.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.io

from brainalign.data.matfile import load_mat, write_mat73
from brainalign.errors import ConfigError, InputError
from brainalign.files import atomic_path

VARIABLE = "features"
GROUP_FIELDS = ("type", "names", "values")
WORD_COLUMN = "word"
CUSTOM_GROUP = "custom"
# scipy stamps the creation time into the 116-byte header text of a v5 file; a fixed text makes the bytes (and so
# DVC's hash) a function of the content alone (as hp_fmri does for recordings).
HEADER_TEXT = b"MATLAB 5.0 MAT-file, Platform: posix, written by brainalign".ljust(116, b" ")
# Cells of a features table that stand for a missing value: reported as NaN, not as non-numeric text.
MISSING_TEXT = frozenset({"", "nan", "na", "n/a", "null", "none"})


@dataclass
class FeatureGroup:
    """One feature group: its name (``type``, as the release calls it), its features and their values.

    Parameters
    ----------
    type : str
        The group's name, e.g. ``"pos"``; it may not contain ``/``.
    names : list of str
        The features of the group, one per column of ``values``.
    values : ndarray of shape (n_entries, n_names)
        One row per word entry; stored as float64.
    """

    type: str
    names: list[str]
    values: np.ndarray

    def __post_init__(self) -> None:
        self.names = [str(n) for n in self.names]
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.values.ndim != 2 or self.values.shape[1] != len(self.names):
            raise ValueError(f"feature group {self.type!r}: expected values of shape (n_entries, {len(self.names)}), "
                             f"found {self.values.shape}")
        if "/" in self.type:
            raise ValueError(f"feature group {self.type!r}: a group's name may not contain '/'")


@dataclass
class StoryFeatures:
    """The feature groups of one story, all with one row per word entry.

    Parameters
    ----------
    groups : list of FeatureGroup
    source : str
        Where the features came from (a file, or what made them), for messages.
    """

    groups: list[FeatureGroup] = field(default_factory=list)
    source: str = ""

    def __post_init__(self) -> None:
        rows = {g.values.shape[0] for g in self.groups}
        if len(rows) > 1:
            raise ValueError(f"{self.source}: feature groups disagree on the number of entries: "
                             f"{[(g.type, g.values.shape[0]) for g in self.groups]}")
        types = [g.type for g in self.groups]
        if len(set(types)) != len(types):
            raise ValueError(f"{self.source}: feature group names must be distinct, found {types}")

    @property
    def names(self) -> list[str]:
        """Flattened feature names, ``"<group>/<name>"``, in column order of :meth:`matrix`."""
        return [f"{g.type}/{n}" for g in self.groups for n in g.names]

    @property
    def n_entries(self) -> int:
        """Word entries (rows); 0 without groups."""
        return self.groups[0].values.shape[0] if self.groups else 0

    def matrix(self) -> np.ndarray:
        """All features side by side: (n_entries, n_features), float64."""
        if not self.groups:
            return np.zeros((0, 0))
        return np.hstack([g.values for g in self.groups])

    def group_of(self, name: str) -> str:
        """The group of a flattened feature name.

        Raises
        ------
        KeyError
            If no group has that feature.
        """
        group, _, feature = name.partition("/")
        for g in self.groups:
            if g.type == group and feature in g.names:
                return group
        raise KeyError(f"{self.source}: no feature {name!r}")

    def select(self, names: Sequence[str]) -> StoryFeatures:
        """Only the features ``names`` (flattened), grouped by their groups in the order first named.

        Raises
        ------
        ConfigError
            If a name is not a feature of the story.
        """
        known = set(self.names)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"{self.source}: features {unknown} are not among the story's {len(known)} features "
                              f"(groups {[g.type for g in self.groups]}; names are '<group>/<name>')")
        by_type = {g.type: g for g in self.groups}
        chosen: dict[str, list[str]] = {}
        for name in dict.fromkeys(names):
            group, _, feature = name.partition("/")
            chosen.setdefault(group, []).append(feature)
        groups = []
        for group, features in chosen.items():
            source = by_type[group]
            columns = [source.names.index(f) for f in features]
            groups.append(FeatureGroup(group, features, source.values[:, columns]))
        return StoryFeatures(groups, self.source)


def read_features(path: str | os.PathLike, n_entries: int | None = None, words: Sequence[str] | None = None,
                  required_groups: Sequence[str] = ()) -> StoryFeatures:
    """Read story features from a release's ``.mat`` file or a user's ``.tsv`` table.

    Parameters
    ----------
    path : path
        ``story_features.mat`` (v5 or v7.3) or a features table (``.tsv``).
    n_entries : int, optional
        The recording's number of word entries; defaults to ``len(words)`` when ``words`` is given.
    words : sequence of str, optional
        The recording's word entries, to check a table's ``word`` column against.
    required_groups : sequence of str
        Groups that must be present.

    Raises
    ------
    InputError
        If the file is missing, of another kind, or malformed (see :func:`read_story_features` and
        :func:`read_features_table`).
    """
    path = Path(path)
    if n_entries is None and words is not None:
        n_entries = len(words)
    suffix = path.suffix.lower()
    if suffix == ".mat":
        return read_story_features(path, n_entries, required_groups)
    if suffix == ".tsv":
        return read_features_table(path, n_entries, words, required_groups)
    raise InputError(path, "file", "story features as a .mat file (the release's story_features.mat) or a .tsv "
                     "features table", f"the suffix {path.suffix or '(none)'!r}")


def read_story_features(path: str | os.PathLike, n_entries: int | None = None,
                        required_groups: Sequence[str] = ()) -> StoryFeatures:
    """Read the release's ``story_features.mat`` (MATLAB v5 or v7.3).

    Parameters
    ----------
    path : path
        The file; its variable ``features`` is a 1 x G struct array with fields ``type``, ``names`` and
        ``values`` (module docstring).
    n_entries : int, optional
        The recording's number of word entries: every group must have that many rows.
    required_groups : sequence of str
        Group names (``type``) that must be present.

    Returns
    -------
    StoryFeatures

    Raises
    ------
    InputError
        Naming the file and the field (e.g. ``features(3).values``): the variable or a field is missing; a
        type or name is not text; values are not a 2-D numeric matrix, do not have one column per name, are
        not finite, or do not have one row per word entry; two groups share a type; a required group is
        missing.
    """
    path = Path(path)
    mat = load_mat(path)
    if VARIABLE not in mat:
        present = sorted(k for k in mat if not k.startswith("__"))
        raise InputError(path, VARIABLE, "a variable of that name (a 1 x G struct array of feature groups)",
                         f"variables {present}")
    records = np.asarray(mat[VARIABLE])
    fields = records.dtype.names or ()
    if not fields:
        raise InputError(path, VARIABLE, f"a struct array with fields {list(GROUP_FIELDS)}",
                         f"a {records.dtype} array of shape {records.shape}")
    missing = [f for f in GROUP_FIELDS if f not in fields]
    if missing:
        raise InputError(path, f"{VARIABLE}.{missing[0]}", f"a field of every feature group (fields "
                         f"{list(GROUP_FIELDS)})", f"fields {list(fields)}")
    records = records.reshape(-1, order="F")  # MATLAB's linear order (a 1 x G array either way)
    if records.size == 0:
        raise InputError(path, VARIABLE, "at least one feature group", "an empty struct array")
    groups: list[FeatureGroup] = []
    seen: dict[str, int] = {}
    for i, record in enumerate(records, start=1):
        where = f"{VARIABLE}({i})"
        kind = _text(record["type"])
        if not kind or "/" in kind:
            raise InputError(path, f"{where}.type", "the group's name: non-empty text without '/'",
                             _describe(record["type"]))
        if kind in seen:
            raise InputError(path, f"{where}.type", "a group name no other group has",
                             f"{kind!r}, also the type of {VARIABLE}({seen[kind]})")
        seen[kind] = i
        names = _names(path, f"{where}.names", record["names"])
        values = np.asarray(record["values"])
        if values.ndim != 2 or values.dtype.kind not in "biuf":
            raise InputError(path, f"{where}.values", "a 2-D numeric matrix (word entries x features)",
                             _describe(record["values"]))
        if values.shape[1] != len(names):
            raise InputError(path, f"{where}.values", f"{len(names)} columns, one per name in {where}.names",
                             f"shape {values.shape}")
        values = values.astype(np.float64)
        _check_finite(path, f"{where}.values", kind, names, values)
        if n_entries is not None and values.shape[0] != n_entries:
            raise InputError(path, f"{where}.values", f"{n_entries} rows, one per word entry of the recording "
                             "(fixations included)", f"{values.shape[0]} rows")
        if groups and values.shape[0] != groups[0].values.shape[0]:
            raise InputError(path, f"{where}.values", f"{groups[0].values.shape[0]} rows, as "
                             f"{VARIABLE}(1).values has", f"{values.shape[0]} rows")
        groups.append(FeatureGroup(kind, names, values))
    _check_required(path, f"{VARIABLE}.type", groups, required_groups)
    return StoryFeatures(groups, str(path))


def read_features_table(path: str | os.PathLike, n_entries: int | None = None,
                        words: Sequence[str] | None = None, required_groups: Sequence[str] = ()) -> StoryFeatures:
    """Read a features table: a TSV with one row per word entry and one column per ``group/name`` feature.

    Parameters
    ----------
    path : path
        The table. A header row names the columns; a column named ``word`` (optional) holds the entries'
        text, every other column a feature (``group/name``; without ``/``: group ``custom``). Cells are
        taken literally (no quoting), so words may contain quotes.
    n_entries : int, optional
        The recording's number of word entries; defaults to ``len(words)`` when ``words`` is given.
    words : sequence of str, optional
        The recording's word entries: a ``word`` column must match them row by row.
    required_groups : sequence of str
        Groups that must be present.

    Returns
    -------
    StoryFeatures

    Raises
    ------
    InputError
        Naming the file and the column: the file is missing or empty; a column name is repeated or empty; a
        value is not a number, or not finite; the rows are not one per word entry; a word differs from the
        recording's; a required group is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file", "a features table (TSV)", "no such file")
    with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: a spreadsheet's byte-order mark
        lines = [row for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]
    lines = [row for row in lines if row]  # csv yields [] for a blank line (a trailing one, typically)
    if not lines:
        raise InputError(path, "header", "a header row of column names", "an empty file")
    header, rows = [c.strip() for c in lines[0]], lines[1:]
    for number, row in enumerate(rows, start=1):
        if len(row) != len(header):
            raise InputError(path, f"row {number}", f"{len(header)} tab-separated cells, one per column of the "
                             "header", f"{len(row)} cell(s) (line {number + 1} of the file)")
    seen: set[str] = set()
    for column in header:
        group, slash, name = column.partition("/")
        if not column or (slash and (not group or not name)):
            raise InputError(path, "header", "column names 'group/name' (or 'name', or 'word')",
                             f"the column name {column!r}")
        if column in seen:
            raise InputError(path, "header", "distinct column names", f"{column!r} twice")
        seen.add(column)
    features = [c for c in header if c != WORD_COLUMN]
    if not features:
        raise InputError(path, "header", "at least one feature column ('group/name')", f"columns {header}")
    if not rows:
        raise InputError(path, "rows", "one row per word entry", "no rows")
    if n_entries is None and words is not None:
        n_entries = len(words)
    if n_entries is not None and len(rows) != n_entries:
        raise InputError(path, "rows", f"{n_entries} rows, one per word entry of the recording (fixations "
                         "included)", f"{len(rows)} rows")
    cells = np.array(rows, dtype=object)
    if WORD_COLUMN in header and words is not None:
        table_words = cells[:, header.index(WORD_COLUMN)]
        for number, (mine, theirs) in enumerate(zip(table_words, words), start=1):
            if str(mine).strip() != str(theirs).strip():
                raise InputError(path, WORD_COLUMN, "the recording's word entries, row by row",
                                 f"{mine!r} at row {number} (line {number + 1}), where the recording has {theirs!r}")
    columns: dict[str, list[tuple[str, np.ndarray]]] = {}
    for column in features:
        values = _numeric_column(path, column, cells[:, header.index(column)])
        group, slash, name = column.partition("/")
        group, name = (group, name) if slash else (CUSTOM_GROUP, column)
        columns.setdefault(group, []).append((name, values))
    groups = [FeatureGroup(group, [n for n, _ in items], np.column_stack([v for _, v in items]))
              for group, items in columns.items()]
    _check_required(path, "header", groups, required_groups)
    return StoryFeatures(groups, str(path))


def write_story_features(path: str | os.PathLike, features: StoryFeatures, version: str = "5") -> None:
    """Write ``features`` as the release's ``story_features.mat``, atomically.

    Parameters
    ----------
    path : path
        Destination.
    features : StoryFeatures
    version : {"5", "7.3"}
        MATLAB file version: v5 (what the release holds; bytes depend on the content only) or v7.3 (HDF5).
    """
    if version not in ("5", "7.3"):
        raise ValueError(f"version: expected '5' or '7.3', found {version!r}")
    if version == "7.3":
        write_mat73(path, {VARIABLE: {"__struct_array__": True, "type": [g.type for g in features.groups],
                                      "names": [list(g.names) for g in features.groups],
                                      "values": [g.values for g in features.groups]}})
        return
    records = np.empty((1, len(features.groups)), dtype=[(f, object) for f in GROUP_FIELDS])
    for i, group in enumerate(features.groups):
        names = np.empty((1, len(group.names)), dtype=object)  # a cell; np.array would make a char matrix
        for j, name in enumerate(group.names):
            names[0, j] = name
        records[0, i] = (group.type, names, group.values)
    with atomic_path(path) as tmp:
        scipy.io.savemat(tmp, {VARIABLE: records}, do_compression=False, oned_as="column")
        with open(tmp, "r+b") as handle:
            handle.write(HEADER_TEXT)


def write_features_table(path: str | os.PathLike, features: StoryFeatures,
                         words: Sequence[str] | None = None) -> None:
    """Write ``features`` as a features table (TSV, ``word`` first when given), atomically.

    Values are written with ``repr`` precision, so that :func:`read_features_table` reads them back exactly.
    """
    if words is not None and len(words) != features.n_entries:
        raise ValueError(f"words: expected {features.n_entries} entries, found {len(words)}")
    bad = [w for w in words or () if "\t" in w or "\n" in w]
    if bad:
        raise ValueError(f"words: a table cell cannot hold tabs or line breaks, found {bad[0]!r}")
    header = ([WORD_COLUMN] if words is not None else []) + features.names
    matrix = features.matrix()
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write("\t".join(header) + "\n")
            for i in range(features.n_entries):
                cells = ([str(words[i])] if words is not None else []) + [repr(float(v)) for v in matrix[i]]
                handle.write("\t".join(cells) + "\n")


def _text(value: object) -> str:
    """A MATLAB char array as the loader gives it (a 1-element string array, or empty) as a str; '' if not text."""
    if isinstance(value, str):
        return value
    array = np.asarray(value)
    if array.dtype.kind != "U":
        return ""
    return "".join(str(x) for x in array.reshape(-1))


def _describe(value: object) -> str:
    array = np.asarray(value)
    if array.dtype.kind == "U":
        return f"the text {_text(value)!r}"
    kind = "cell" if array.dtype == object else f"{array.dtype}"
    return f"a {kind} array of shape {array.shape}"


def _names(path: Path, where: str, value: object) -> list[str]:
    """Feature names: a cell of char (the release), or a char matrix (rows padded with spaces)."""
    array = np.asarray(value)
    if array.dtype.kind == "U":
        names = [str(s).rstrip() for s in array.reshape(-1)]
    elif array.dtype == object:
        items = list(array.reshape(-1, order="F"))
        for number, item in enumerate(items, start=1):
            if not isinstance(item, str) and np.asarray(item).dtype.kind != "U":
                raise InputError(path, where, "a cell of feature names (char)",
                                 f"element {number}: {_describe(item)}")
        names = [_text(item) for item in items]
    else:
        raise InputError(path, where, "a cell of feature names (char)", _describe(value))
    if not names or any(not n for n in names):
        raise InputError(path, where, "a non-empty name for every feature", f"names {names}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(path, where, "distinct feature names", f"{repeated[0]!r} more than once")
    return names


def _check_finite(path: str | Path, where: str, group: str, names: list[str], values: np.ndarray) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise InputError(path, where, "finite numbers", f"{int(bad.sum())} NaN or infinite value(s) in group "
                         f"{group!r}, the first at row {row + 1}, column {column + 1} ({names[column]!r}): "
                         f"{values[row, column]}")


def _numeric_column(path: Path, column: str, cells: np.ndarray) -> np.ndarray:
    try:
        values = cells.astype(np.float64)  # the common case, at numpy's speed; float() accepts "nan" and "inf"
    except ValueError:
        values = np.empty(len(cells))
        for row, cell in enumerate(cells):
            text = str(cell).strip()
            try:
                values[row] = float(text)
            except ValueError:
                if text.lower() not in MISSING_TEXT:
                    raise InputError(path, column, "a number in every row", f"{text!r} at row {row + 1} "
                                     f"(line {row + 2})") from None
                values[row] = np.nan
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values))[0])
        raise InputError(path, column, "finite numbers", f"{int((~np.isfinite(values)).sum())} missing, NaN or "
                         f"infinite value(s), the first at row {row + 1} (line {row + 2}): {str(cells[row])!r}")
    return values


def _check_required(path: Path, where: str, groups: list[FeatureGroup], required: Sequence[str]) -> None:
    found = [g.type for g in groups]
    missing = [r for r in required if r not in found]
    if missing:
        raise InputError(path, where, f"the feature groups {list(required)}",
                         f"groups {found} (missing {missing})")
