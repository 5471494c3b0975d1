"""Story features files: the release's story_features.mat (v5 and v7.3) and a user's features table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from brainalign.data.matfile import write_mat73
from brainalign.errors import ConfigError, InputError
from brainalign.probing.features import (FeatureGroup, StoryFeatures, read_features, read_features_table,
                                         read_story_features, write_features_table, write_story_features)

WORDS = ["Harry", "+", "looked", "at", "Ron."]


def example() -> StoryFeatures:
    rng = np.random.default_rng(18)
    return StoryFeatures([
        FeatureGroup("length", ["word_length", "sentence_length"], [[5, 4], [0, 0], [6, 4], [2, 4], [3, 4]]),
        FeatureGroup("pos", ["NNP", "VBD", "IN"], [[1, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]]),
        FeatureGroup("emotion", ["like"], [[0], [0], [1], [0], [0]]),  # one name: a 1 x 1 cell
        FeatureGroup("nnse", [f"dim{i}" for i in range(4)], rng.standard_normal((5, 4))),
    ], source="example")


def test_the_model_flattens_names_and_selects():
    features = example()
    assert features.names[:6] == ["length/word_length", "length/sentence_length", "pos/NNP", "pos/VBD", "pos/IN",
                                  "emotion/like"]
    assert features.n_entries == 5 and features.matrix().shape == (5, 10)
    assert features.group_of("pos/VBD") == "pos"
    with pytest.raises(KeyError):
        features.group_of("pos/NN")
    chosen = features.select(["pos/IN", "length/word_length", "pos/NNP"])
    assert chosen.names == ["pos/IN", "pos/NNP", "length/word_length"]
    assert chosen.matrix().tolist() == [[0, 1, 5], [0, 0, 0], [0, 0, 6], [1, 0, 2], [0, 1, 3]]
    with pytest.raises(ConfigError, match="pos/NN"):
        features.select(["pos/NN"])


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_both_versions_read_back_what_was_written(tmp_path, version):
    features = example()
    path = tmp_path / "story_features.mat"
    write_story_features(path, features, version=version)
    back = read_story_features(path, n_entries=5, required_groups=["pos", "length"])
    assert [(g.type, g.names) for g in back.groups] == [(g.type, g.names) for g in features.groups]
    np.testing.assert_array_equal(back.matrix(), features.matrix())
    assert back.source == str(path)


def test_v5_and_v73_read_identically_and_v5_bytes_depend_on_content_only(tmp_path):
    features = example()
    write_story_features(tmp_path / "a.mat", features)
    write_story_features(tmp_path / "b.mat", features)
    write_story_features(tmp_path / "c.mat", features, version="7.3")
    assert (tmp_path / "a.mat").read_bytes() == (tmp_path / "b.mat").read_bytes()
    v5, v73 = read_features(tmp_path / "a.mat"), read_features(tmp_path / "c.mat")
    assert v5.names == v73.names
    np.testing.assert_array_equal(v5.matrix(), v73.matrix())


def test_a_release_file_as_matlab_writes_it(tmp_path):
    # As MATLAB saves it: logical values, a names cell of char, written by scipy from a plain struct array.
    records = np.empty((1, 2), dtype=[("type", object), ("names", object), ("values", object)])
    records[0, 0] = ("verbs", np.array([["be", "see"]], dtype=object), np.array([[True, False], [False, True]]))
    records[0, 1] = ("punctuation", np.array([[","]], dtype=object), np.array([[0.0], [1.0]]))
    scipy.io.savemat(tmp_path / "story_features.mat", {"features": records})
    features = read_story_features(tmp_path / "story_features.mat", n_entries=2)
    assert features.names == ["verbs/be", "verbs/see", "punctuation/,"]
    assert features.matrix().tolist() == [[1, 0, 0], [0, 1, 1]]


def _records(**change) -> np.ndarray:
    """A struct array of two groups (3 entries), with fields replaced or dropped as ``change`` says."""
    groups = [{"type": "pos", "names": ["NN", "VB"], "values": np.array([[1.0, 0], [0, 1], [0, 0]])},
              {"type": "length", "names": ["word_length"], "values": np.array([[2.0], [3.0], [0.0]])}]
    for key, value in change.items():
        index, field = key.split("_", 1)
        groups[int(index[1:]) - 1][field] = value
    fields = [f for f in ("type", "names", "values") if all(f in g for g in groups)]
    records = np.empty((1, 2), dtype=[(f, object) for f in fields])
    for i, group in enumerate(groups):
        for field in fields:
            value = group[field]
            if field == "names" and isinstance(value, list):
                cell = np.empty((1, len(value)), dtype=object)
                for j, name in enumerate(value):
                    cell[0, j] = name
                value = cell
            records[field][0, i] = value
    return records


def _missing_values() -> np.ndarray:
    records = _records()
    out = np.empty(records.shape, dtype=[("type", object), ("names", object)])
    out["type"], out["names"] = records["type"], records["names"]
    return out


def _nan() -> np.ndarray:
    values = np.array([[2.0], [3.0], [0.0]])
    values[2, 0] = np.nan
    return _records(g2_values=values)


# name: (content of the file, n_entries, required groups, field the message names, a phrase of it)
MALFORMED = {
    "no features variable": ({"story": _records()}, None, (), "features", "variables ['story']"),
    "wrong word count": ({"features": _records()}, 5176, (), "features(1).values", "5176 rows"),
    "groups disagree on rows": ({"features": _records(g2_values=np.ones((4, 1)))}, None, (), "features(2).values",
                                "3 rows, as features(1).values has"),
    "NaN": ({"features": _nan()}, 3, (), "features(2).values", "row 3, column 1 ('word_length')"),
    "missing group": ({"features": _records()}, 3, ("pos", "characters"), "features.type",
                      "missing ['characters']"),
    "missing field": ({"features": _missing_values()}, 3, (), "features.values", "fields ['type', 'names']"),
    "names and columns disagree": ({"features": _records(g1_names=["NN", "VB", "JJ"])}, 3, (), "features(1).values",
                                   "3 columns, one per name"),
    "non-numeric values": ({"features": _records(g2_values=_records()["names"][0, 0])}, 3, (),
                           "features(2).values", "a 2-D numeric matrix"),
    "duplicate groups": ({"features": _records(g2_type="pos")}, 3, (), "features(2).type",
                         "also the type of features(1)"),
    "duplicate names": ({"features": _records(g1_names=["NN", "NN"])}, 3, (), "features(1).names", "'NN'"),
    "names not text": ({"features": _records(g1_names=np.array([[1.0, 2.0]]))}, 3, (), "features(1).names",
                       "a cell of feature names"),
    "type with a slash": ({"features": _records(g1_type="pos/tags")}, 3, (), "features(1).type", "'pos/tags'"),
}


@pytest.mark.parametrize("version", ["5", "7.3"])
@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_release_file_fails_with_one_message(tmp_path, case, version):
    content, n_entries, required, field, phrase = MALFORMED[case]
    path = tmp_path / "story_features.mat"
    if version == "7.3":
        write_mat73(path, content)
    else:
        scipy.io.savemat(path, content)
    with pytest.raises(InputError) as caught:
        read_features(path, n_entries=n_entries, required_groups=required)
    message = str(caught.value)
    assert caught.value.field == field
    assert message.startswith(f"{path}: {field}: expected ") and phrase in message and "\n" not in message


def _table(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "features.tsv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_table_reads_by_hand(tmp_path):
    # Words keep their quotes (no quoting); a column without a group goes to "custom"; groups keep first order.
    path = _table(tmp_path, 'word\tpos/NN\tsurprisal\tpos/VB\n"Harry,"\t1\t2.5\t0\n+\t0\t0\t0\nran.\t0\t-1e-3\t1\n')
    features = read_features(path, words=['"Harry,"', "+", "ran."], required_groups=["custom"])
    assert features.names == ["pos/NN", "pos/VB", "custom/surprisal"]
    assert features.matrix().tolist() == [[1, 0, 2.5], [0, 0, 0], [0, 1, -0.001]]


def test_a_table_written_reads_back_exactly(tmp_path):
    features = example()
    write_features_table(tmp_path / "features.tsv", features, words=WORDS)
    back = read_features_table(tmp_path / "features.tsv", words=WORDS)
    assert back.names == features.names
    np.testing.assert_array_equal(back.matrix(), features.matrix())


# name: (table text, words, field the message names, a phrase of it)
MALFORMED_TABLES = {
    "word mismatch": ("word\tpos/NN\nHarry\t1\n+\t0\nwalked.\t0\n", ["Harry", "+", "ran."], "word",
                      "'walked.' at row 3 (line 4), where the recording has 'ran.'"),
    "wrong word count": ("pos/NN\n1\n0\n", ["Harry", "+", "ran."], "rows", "3 rows"),
    "NaN": ("word\tpos/NN\tlength/word\nHarry\t1\t5\n+\t0\t\nran.\t0\t3\n", None, "length/word", "row 2 (line 3)"),
    "non-numeric": ("pos/NN\tpos/VB\n1\t0\nyes\t1\n", None, "pos/NN", "'yes' at row 2"),
    "duplicate columns": ("pos/NN\tpos/NN\n1\t0\n", None, "header", "'pos/NN' twice"),
    "ragged row": ("pos/NN\tpos/VB\n1\t0\n1\n", None, "row 2", "1 cell(s)"),
    "no feature column": ("word\nHarry\n", None, "header", "at least one feature column"),
    "half a name": ("pos/\n1\n", None, "header", "'pos/'"),
}


@pytest.mark.parametrize("case", list(MALFORMED_TABLES))
def test_a_malformed_table_fails_with_one_message(tmp_path, case):
    text, words, field, phrase = MALFORMED_TABLES[case]
    path = _table(tmp_path, text)
    with pytest.raises(InputError) as caught:
        read_features(path, words=words)
    message = str(caught.value)
    assert caught.value.field == field
    assert message.startswith(f"{path}: {field}: expected ") and phrase in message and "\n" not in message


def test_other_files_fail_with_one_message(tmp_path):
    with pytest.raises(InputError, match="suffix '.csv'"):
        read_features(tmp_path / "features.csv")
    with pytest.raises(InputError, match="no such file"):
        read_features(tmp_path / "features.tsv")
    (tmp_path / "broken.mat").write_bytes(b"not a MATLAB file")
    with pytest.raises(InputError, match="broken.mat: file"):
        read_features(tmp_path / "broken.mat")
