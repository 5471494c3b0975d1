"""Pereira 2018 loader: the release layout (v5 and v7.3), atlas selection, the real sentences and labels, and
one clear error per malformed file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from experiments import shared_data
import scipy.io

from brainalign.data.pereira import read_pereira2018, write_pereira
from brainalign.errors import InputError

VOLUME = (3, 3, 2)
COORDS = np.array([[0, 0, 0], [1, 0, 0], [2, 1, 0], [0, 2, 1], [1, 1, 1], [2, 2, 1]])
ATLASES = {"languageLH": [np.array([2, 1]), np.array([4])], "languageRH": [np.array([5])],
           "MD": [np.array([3, 4, 6])]}


def shared(name: str) -> Path:
    return shared_data(name)


def small(directory: Path, participants=("P01", "M02"), v73=False, seed=0, sentences=None) -> dict:
    rng = np.random.default_rng(seed)
    examples = {}
    for participant in participants:
        examples[participant] = rng.standard_normal((6, 6)).astype(np.float32)
        write_pereira(directory, participant, examples[participant],
                      sentences or [f"Sentence {i}." for i in range(6)], [2, 2, 2, 1, 1, 1], ["Owl", "Bee"],
                      [1, 2], ["bird", "insect"], ATLASES, VOLUME, COORDS, v73=v73)
    return examples


def test_v5_and_v73_files_give_identical_data(tmp_path):
    small(tmp_path / "v5")
    small(tmp_path / "v73", v73=True)
    first, second = read_pereira2018(tmp_path / "v5"), read_pereira2018(tmp_path / "v73")
    np.testing.assert_array_equal(first.responses, second.responses)
    pd.testing.assert_frame_equal(first.stimuli, second.stimuli)
    pd.testing.assert_frame_equal(first.channels, second.channels)


def test_atlas_voxels_of_every_participant_side_by_side(tmp_path):
    examples = small(tmp_path)
    data = read_pereira2018(tmp_path)
    # Participants sorted by folder (M02, P01); within each, languageLH's ROIs (columns 2, 1 | 4), languageRH (5).
    assert data.channels["channel_id"].tolist() == ["M02.2", "M02.1", "M02.4", "M02.5",
                                                    "P01.2", "P01.1", "P01.4", "P01.5"]
    assert data.channels["region"].tolist()[:4] == ["languageLH"] * 3 + ["languageRH"]
    assert data.channels["roi"].tolist()[:4] == [1, 1, 2, 1]
    expected = np.hstack([examples["M02"][:, [1, 0, 3, 4]], examples["P01"][:, [1, 0, 3, 4]]])
    np.testing.assert_array_equal(data.responses, expected)
    # colToCoord is 1-based in the file and 0-based here: column 4 is COORDS[3].
    assert data.channels.loc[2, ["x", "y", "z"]].tolist() == [0, 2, 1]
    assert data.stimuli["passage"].tolist() == [2, 2, 2, 1, 1, 1]
    assert data.stimuli["passage_label"].tolist() == ["Bee"] * 3 + ["Owl"] * 3
    assert data.stimuli["topic"].tolist() == ["insect"] * 3 + ["bird"] * 3
    assert data.group == "passage" and data.subjects == ["M02", "P01"]
    # MD overlaps languageLH at column 4: a voxel is taken once.
    assert read_pereira2018(tmp_path, atlases=["languageLH", "MD"]).channels["column"].tolist()[:5] == [2, 1, 4, 3, 6]
    every = read_pereira2018(tmp_path, atlases=None, participants=["P01"])
    np.testing.assert_array_equal(every.responses, examples["P01"])


def _real_fixture(directory: Path, experiment: str) -> pd.DataFrame:
    """A two-participant release whose keys and labels are the real ones, keys written in shuffled order so
    that only correct 1-based decoding gives the right grouping."""
    lines = shared(f"pereira2018/stimuli_{experiment}.txt").read_text().splitlines()
    table = pd.read_csv(shared("pereira2018/Pereira2018_stimulus_set_20220209.csv"), index_col=0)
    table = table[table["experiment"] == experiment].reset_index(drop=True)
    assert table["sentence"].tolist() == lines  # the label file and the sentence list agree line for line
    rng = np.random.default_rng(7)
    passages = table.drop_duplicates("passage_index").set_index("passage_index")
    passage_key = list(rng.permutation(passages.index.to_numpy()))
    topics = sorted(table["passage_category"].unique())[::-1]
    for participant in ("P01", "M02"):
        write_pereira(directory, participant, rng.standard_normal((len(lines), 6)), lines,
                      [passage_key.index(p) + 1 for p in table["passage_index"]],
                      [f"{p}:{passages.loc[p, 'passage_label']}" for p in passage_key],
                      [topics.index(passages.loc[p, "passage_category"]) + 1 for p in passage_key], topics,
                      ATLASES, VOLUME, COORDS, experiment=experiment)
    return table


@pytest.mark.parametrize("experiment, n_passages, sizes", [("384sentences", 96, {4: 96}),
                                                           ("243sentences", 72, {3: 45, 4: 27})])
def test_real_sentences_come_back_with_their_passages_and_topics(tmp_path, experiment, n_passages, sizes):
    table = _real_fixture(tmp_path, experiment)
    data = read_pereira2018(tmp_path, experiment=experiment)
    assert data.stimuli["text"].tolist() == table["sentence"].tolist()
    assert data.stimuli["stimulus_id"].tolist() == table["stimulus_id"].tolist()
    assert data.stimuli["topic"].tolist() == table["passage_category"].tolist()
    assert [int(label.split(":")[0]) for label in data.stimuli["passage_label"]] == table["passage_index"].tolist()
    # Published design: passage sizes, 24 topics; 4 passages per topic in experiment 2, 3 in experiment 3.
    per_passage = data.stimuli.groupby("passage_label").size()
    assert len(per_passage) == n_passages and per_passage.value_counts().to_dict() == sizes
    passages_per_topic = data.stimuli.groupby("topic")["passage_label"].nunique()
    assert len(passages_per_topic) == 24 and set(passages_per_topic) == {n_passages // 24}
    first = {"384sentences": "An accordion is a portable musical instrument with two keyboards.",
             "243sentences": "Beekeeping encourages the conservation of local habitats."}[experiment]
    assert data.stimuli["text"].iloc[0] == first
    # Groups (the passage label ids of the file) follow the passages of the real label file.
    codes = pd.factorize(data.groups)[0]
    assert (codes == pd.factorize(table["passage_index"])[0]).all()


def _raw(directory: Path, **changes) -> Path:
    """A v5 file written directly with scipy, so that one variable can be wrong."""
    content = {"examples": np.ones((3, 2)), "keySentences": np.array([["a."], ["b."], ["c."]], dtype=object),
               "labelsPassageForEachSentence": np.array([[1.0], [1.0], [2.0]]),
               "keyPassages": np.array([["x", "y"]], dtype=object), "labelsPassageCategory": np.array([[1.0], [1.0]]),
               "keyPassageCategory": np.array([["t"]], dtype=object),
               "meta": {"atlases": np.array([["languageLH"]], dtype=object), "roiColumns": np.empty((1, 1), object)}}
    rois = np.empty((1, 1), dtype=object)
    rois[0, 0] = np.array([[1.0], [2.0]])
    content["meta"]["roiColumns"][0, 0] = rois
    content.update(changes)
    for name in [k for k, v in changes.items() if v is None]:
        del content[name]
    path = directory / "P01" / "examples_384sentences.mat"
    path.parent.mkdir(parents=True)
    scipy.io.savemat(path, content)
    return path


@pytest.mark.parametrize("change, options, field, expected, found", [
    (dict(keyPassages=None), {}, "keyPassages", "a variable of that name", "variables ["),
    (dict(keySentences=np.array([["a."], ["b."]], dtype=object)), {}, "keySentences",
     "3 sentences (one per row of examples)", "2"),
    (dict(examples=np.array([[1.0, 2.0], [np.nan, np.nan], [1.0, 1.0]])), {}, "examples", "finite values",
     "1 row(s) with NaN or infinity, first at row 2, column 1"),
    ({}, {"atlases": ["languageLH", "MD"]}, "meta.atlases", "atlas names among ['languageLH']", "['MD']"),
    (dict(labelsPassageForEachSentence=np.array([[1.0], [3.0], [2.0]])), {}, "labelsPassageForEachSentence",
     "1-based indices into keyPassages (1..2)", "3 at entry 2"),
])
def test_each_malformed_file_fails_once_and_clearly(tmp_path, change, options, field, expected, found):
    path = _raw(tmp_path, **change)
    with pytest.raises(InputError) as error:
        read_pereira2018(tmp_path, atlases=options.get("atlases", ["languageLH"]))
    assert (error.value.source, error.value.field) == (str(path), field)
    assert expected in error.value.expected and found in error.value.found


def test_participants_with_different_sentences_are_refused(tmp_path):
    small(tmp_path, participants=("P01",))
    small(tmp_path, participants=("M02",), sentences=[f"Sentence {i}." for i in range(5)] + ["Other."])
    with pytest.raises(InputError) as error:
        read_pereira2018(tmp_path)
    assert error.value.field == "keySentences" and error.value.source.endswith("P01/examples_384sentences.mat")
    assert "row 6: 'Other.'" in error.value.expected and "'Sentence 5.'" in error.value.found


def test_no_participant_with_the_experiment(tmp_path):
    small(tmp_path)
    with pytest.raises(InputError, match=r"<participant>/examples_243sentences.mat: expected at least one"):
        read_pereira2018(tmp_path, experiment="243sentences")


def test_the_real_sentences_go_through_the_simulated_twin_and_the_benchmark(tmp_path):
    """The real 384 sentences, passages and topics, written by the simulated twin, read back by the loader and
    scored: the generator model (a tiny local BERT) recovers the planted signal, the ceiling its truth."""
    import json

    from experiments import tiny_encoder

    from brainalign.benchmarks.evaluate import evaluate_benchmark
    from brainalign.benchmarks.simulate import BenchmarkSimulation, simulate_pereira
    from brainalign.benchmarks.suite import BENCHMARKS
    from brainalign.benchmarks.tasks import Reading
    from brainalign.runs.store import TaskStore

    from experiments import real_pereira_texts

    sentences, passages, topics = real_pereira_texts()
    encoder = tiny_encoder(tmp_path / "tiny-bert")
    settings = BenchmarkSimulation(generator=str(encoder), generator_layer=1, pereira_participants=4,
                                   pereira_voxels=(60, 40, 10, 10, 10))
    (tmp_path / "raw").mkdir(), (tmp_path / "truth").mkdir()
    simulate_pereira(tmp_path / "raw", tmp_path / "truth", settings, progress=False,
                     texts=(sentences, passages, topics))
    data = read_pereira2018(tmp_path / "raw")
    assert data.stimuli["text"].tolist() == sentences
    assert data.stimuli.groupby("topic")["passage"].nunique().eq(4).all() and data.stimuli["topic"].nunique() == 24
    assert data.n_channels == 4 * 100  # the language atlases' voxels only
    benchmark = BENCHMARKS.get("Pereira2018.384sentences")
    result = evaluate_benchmark(benchmark, "pereira2018", {"path": str(tmp_path / "raw"), "options": {},
                                                           "metric": "ridge_pearsonr", "source": "pereira2018"},
                                [str(encoder), "random-64"], Reading(), 50, TaskStore(tmp_path / "store"),
                                progress=False, data=data)
    truth = json.loads((tmp_path / "truth" / "truth.json").read_text())
    assert result.summary["ceiling"] == pytest.approx(truth["true_ceiling"], rel=0.15)
    rows = {row["model"]: row for row in result.summary["models"]}
    assert rows[str(encoder)]["normalised"] > 0.5 > 0.1 > rows["random-64"]["normalised"]
