"""Futrell 2018 (Natural Stories) loader: the real per-word means read in place, per-reader RTs with the release's
filters on a hand-made table, and one clear error per malformed file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from experiments import shared_data

from brainalign.data.futrell import read_futrell2018, wordinfo_from_reading_times, write_futrell
from brainalign.errors import InputError



def shared(name: str) -> Path:
    return shared_data(name)


@pytest.fixture(scope="module")
def real():
    return read_futrell2018(shared("naturalstories/naturalstories_RTS"))


def test_real_stories_and_mean_reading_times(real):
    # The README of shared/data/naturalstories: 10 stories, these words per story, mean of meanItemRT 338.51.
    assert real.responses.shape == (10256, 1) and real.channels["channel_id"].tolist() == ["mean"]
    sizes = real.stimuli.groupby("story").size().tolist()
    assert sizes == [1073, 990, 1040, 1085, 1013, 1099, 999, 980, 1038, 939]
    assert real.responses.mean(dtype=np.float64) == pytest.approx(338.51, abs=0.005)
    # Hand-picked rows of processed_wordinfo.tsv (item, zone, word, meanItemRT).
    for item, zone, word, rt in [(1, 1, "If", 369.01190476190476), (1, 2, "you", 368.18390804597703),
                                 (5, 100, "the", 362.96774193548384), (10, 939, "Tourette's.", 991.1290322580645),
                                 (9, 344, "'Admiral", 426.0921052631579)]:
        row = real.stimuli.index[real.stimuli["stimulus_id"] == f"{item}.{zone}"][0]
        assert real.stimuli.loc[row, "word"] == word
        assert real.responses[row, 0] == pytest.approx(rt, rel=1e-6)
    # In reading order: story 1 opens "If you were to journey to the North".
    assert " ".join(real.stimuli["text"].iloc[:8]) == "If you were to journey to the North"
    assert real.group == "story" and real.kind == "reading_times"


def test_sentence_starts_match_the_sentence_counts(real):
    # README: tokens ending in . ? ! .' ?' !' per story; each story ends on one, so one sentence per ending.
    per_story = real.stimuli.groupby("story")["sentence_first"].sum().tolist()
    assert per_story == [57, 37, 55, 55, 46, 79, 52, 33, 48, 44]
    first = real.stimuli[real.stimuli["sentence_first"]]
    assert first["text"].iloc[:2].tolist() == ["If", real.stimuli["text"].iloc[first.index[1]]]
    previous = real.stimuli["text"].shift().iloc[first.index[1:]]
    assert previous.str.contains(r"[.!?]'?$").all()


def test_means_agree_with_the_neural_nlp_copy_outside_story_3(real):
    # An independent export of the same aggregates (2016, before the story-3 realignment), in reading order.
    old = pd.read_csv(shared("naturalstories-neural-nlp/stories_data.csv"))
    outside = (old["item"] != 3).to_numpy()
    assert (old["zone"].to_numpy() == real.stimuli["zone"].to_numpy()).all()
    np.testing.assert_allclose(real.responses[outside, 0], old["meanItemRT"].to_numpy()[outside], atol=1e-3)


def tiny_stories() -> pd.DataFrame:
    return pd.DataFrame({"word": ["Once", "upon", "time.", "'Hi!'", "said", "he.", "Done."],
                         "zone": [1, 2, 3, 4, 5, 6, 1], "item": [1, 1, 1, 1, 1, 1, 2]})


def tiny_rts() -> pd.DataFrame:
    rows = [  # WorkerId, correct, item, zone, RT
        ("A", 6, 1, 1, 300), ("A", 6, 1, 2, 100), ("A", 6, 1, 3, 2999), ("A", 6, 2, 1, 250),
        ("B", 5, 1, 1, 500), ("B", 5, 1, 2, 3000), ("B", 5, 1, 3, 101), ("B", 5, 1, 4, 400),
        ("C", 4, 1, 1, 350), ("C", 4, 1, 2, 350),  # C answered 4 questions: all dropped
    ]
    table = pd.DataFrame(rows, columns=["WorkerId", "correct", "item", "zone", "RT"])
    words = tiny_stories().set_index(["item", "zone"])["word"]
    return table.assign(WorkTimeInSeconds=1000, word=[words[(i, z)] for i, z in zip(table["item"], table["zone"])])


def test_reader_matrix_with_the_release_filters(tmp_path):
    write_futrell(tmp_path, tiny_stories(), reading_times=tiny_rts())
    data = read_futrell2018(tmp_path)
    assert data.channels["channel_id"].tolist() == ["A", "B", "C"] and data.allow_missing
    nan = np.nan
    expected = np.array([[300, 500, nan], [nan, nan, nan], [2999, 101, nan], [nan, 400, nan], [nan, nan, nan],
                         [nan, nan, nan], [250, nan, nan]], dtype=np.float32)
    np.testing.assert_array_equal(data.responses, expected)
    assert data.stimuli["sentence_first"].tolist() == [True, False, False, True, True, False, True]
    assert data.stimuli["sentence_in_story"].tolist() == [0, 0, 0, 1, 2, 2, 0]
    # The per-word means process_RTs.R would write equal the readers' means.
    info = wordinfo_from_reading_times(tiny_rts())
    assert info.set_index(["item", "zone"])["meanItemRT"].to_dict() == {(1, 1): 400.0, (1, 3): 1550.0,
                                                                        (1, 4): 400.0, (2, 1): 250.0}


def test_wordinfo_is_put_in_story_order(tmp_path):
    stories = tiny_stories()
    info = stories.assign(nItem=3, meanItemRT=np.arange(7) * 10.0 + 300)
    write_futrell(tmp_path, stories, wordinfo=info)
    assert pd.read_csv(tmp_path / "processed_wordinfo.tsv", sep="\t")["word"].iloc[0] == "'Hi!'"  # sorted by word
    data = read_futrell2018(tmp_path)
    assert data.responses[:, 0].tolist() == [300, 310, 320, 330, 340, 350, 360] and not data.allow_missing


def test_malformed_files_fail_once_and_clearly(tmp_path):
    write_futrell(tmp_path, tiny_stories(), reading_times=tiny_rts().drop(columns="RT"))
    with pytest.raises(InputError) as error:
        read_futrell2018(tmp_path)
    assert (error.value.source, error.value.field) == (str(tmp_path / "processed_RTs.tsv"), "RT")
    assert "columns ['WorkerId'" in error.value.expected and "'word']" in error.value.found

    rts = tiny_rts()
    rts.loc[3, "zone"] = 7
    write_futrell(tmp_path, tiny_stories(), reading_times=rts)
    with pytest.raises(InputError, match=r"item/zone: expected \(item, zone\) pairs of all_stories.tok, "
                                         r"found item 2 zone 7 at data row 4"):
        read_futrell2018(tmp_path)

    (tmp_path / "processed_RTs.tsv").unlink()
    info = tiny_stories().assign(meanItemRT=300.0)
    info.loc[2, "word"] = "time"
    write_futrell(tmp_path, tiny_stories(), wordinfo=info)
    with pytest.raises(InputError) as error:
        read_futrell2018(tmp_path)
    assert error.value.field == "word" and "'time.'" in error.value.expected and "'time'" in error.value.found

    shutil.copy(tmp_path / "all_stories.tok", tmp_path / "backup.tok")
    (tmp_path / "all_stories.tok").write_text("word\tzone\nIf\t1\n")
    with pytest.raises(InputError, match=r"all_stories.tok: item: expected columns \['word', 'zone', 'item'\]"):
        read_futrell2018(tmp_path)
