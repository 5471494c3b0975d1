"""Fedorenko 2016 ECoG loader: electrodes x words transposed to words x electrodes, subjects from the
published electrode counts, sentence groups; one clear error per malformed input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from brainalign.data.fedorenko import FIRST_SENTENCE, read_fedorenko2016, write_fedorenko
from brainalign.errors import InputError

SENTENCES = [FIRST_SENTENCE] + [" ".join(f"W{s}_{w}" for w in range(8)) for s in range(1, 52)]


@pytest.fixture
def ecog():
    return np.random.default_rng(3).standard_normal((97, 416))


@pytest.mark.parametrize("v73", [False, True])
def test_words_by_electrodes_with_subjects_and_sentences(tmp_path, ecog, v73):
    write_fedorenko(tmp_path / "ecog-Fedorenko2016", ecog, SENTENCES, v73=v73)
    data = read_fedorenko2016(tmp_path)
    assert data.responses.shape == (416, 97)
    np.testing.assert_array_equal(data.responses, ecog.T.astype(np.float32))
    assert data.stimuli["text"].iloc[:8].tolist() == FIRST_SENTENCE.split()
    assert data.stimuli["text"].iloc[8] == "W1_0" and data.stimuli["sentence"].iloc[[7, 8, 415]].tolist() == [0, 1, 51]
    # Electrodes 1-47 are participant 1, 48-55 participant 2, ..., the last 18 participant 5.
    subjects = data.channels["subject"].tolist()
    assert subjects[46:48] == ["1", "2"] and subjects[55] == "3" and subjects[-18:] == ["5"] * 18
    assert [subjects.count(s) for s in "12345"] == [47, 8, 9, 15, 18]
    assert data.group == "sentence" and data.kind == "ecog"


def test_electrode_counts_must_add_up(tmp_path, ecog):
    mat, _ = write_fedorenko(tmp_path, ecog, SENTENCES)
    with pytest.raises(InputError) as error:
        read_fedorenko2016(tmp_path, electrodes_per_subject=[47, 8, 9, 15, 17])
    assert (error.value.source, error.value.field) == (str(mat), "ecog")
    assert "96 electrodes (rows)" in error.value.expected and error.value.found == "97"


def test_sentence_list_must_match_the_columns(tmp_path, ecog):
    mat, _ = write_fedorenko(tmp_path, ecog[:, :408], SENTENCES)
    with pytest.raises(InputError) as error:
        read_fedorenko2016(tmp_path)
    assert error.value.field == "ecog" and "416 columns" in error.value.expected
    assert error.value.found == "shape (97, 408)"


def test_missing_matrix_and_missing_values(tmp_path, ecog):
    mat, _ = write_fedorenko(tmp_path, ecog, SENTENCES)
    scipy.io.savemat(mat, {"ECOG": ecog})
    with pytest.raises(InputError) as error:
        read_fedorenko2016(tmp_path)
    assert (error.value.field, error.value.expected, error.value.found) == (
        "ecog", "a variable of that name", "variables ['ECOG']")
    ecog[5, 20] = np.nan
    scipy.io.savemat(mat, {"ecog": ecog})
    with pytest.raises(InputError, match="first at electrode 6, word 21"):
        read_fedorenko2016(tmp_path)


def test_a_short_sentence_is_named(tmp_path, ecog):
    _, text = write_fedorenko(tmp_path, ecog, SENTENCES[:3] + ["ONLY SEVEN WORDS IN THIS ONE HERE"] + SENTENCES[4:])
    with pytest.raises(InputError) as error:
        read_fedorenko2016(tmp_path)
    assert (error.value.source, error.value.field, error.value.expected) == (str(text), "sentence 4", "8 words")
