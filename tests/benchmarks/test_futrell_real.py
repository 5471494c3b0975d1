"""The Futrell 2018 benchmark on the real Natural Stories mean reading times, through the pipeline's own
stage (``stages/benchmark.py``), each score checked against an independent computation written here:
pandas reads the release file, words are aligned by hand on (item, zone), sentence starts found by this
test's own rule, wordfreq and scipy give the unigram baseline's |r|."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from conftest import run_stage
from experiments import shared_data, tiny_causal

REPOSITORY = Path(__file__).resolve().parents[2]


def _real() -> Path:
    return shared_data("naturalstories/naturalstories_RTS")


def _hand_aligned() -> pd.DataFrame:
    """Mean RT per word in story order, with this test's own sentence starts."""
    words = pd.read_csv(_real() / "all_stories.tok", sep="\t")
    info = pd.read_csv(_real() / "processed_wordinfo.tsv", sep="\t")
    table = words.merge(info[["item", "zone", "meanItemRT"]], on=["item", "zone"], how="left")
    table = table.sort_values(["item", "zone"]).reset_index(drop=True)
    ends = table["word"].str.contains(r"[.!?][\"')]*$", regex=True)
    first = np.r_[True, ends.to_numpy()[:-1]] | np.r_[True, table["item"].to_numpy()[1:] != table["item"].to_numpy()[:-1]]
    return table.assign(sentence_first=first)


def _unigram_bits(word: str) -> float:
    from wordfreq import word_frequency

    bare = re.sub(r"^[^\w]+|[^\w]+$", "", word).lower()
    frequency = word_frequency(bare, "en") if bare else 0.0
    return -max(np.log(frequency), -20.0) / np.log(2) if frequency > 0 else 20.0 / np.log(2)


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("futrell-real")
    tiny_causal(workdir / "tiny-gpt")
    params = yaml.safe_load((REPOSITORY / "params.yaml").read_text())
    params["benchmarks"]["suite"] = {"futrell2018": {"benchmark": "Futrell2018", "path": str(_real()),
                                                     "options": {"measure": "mean"}}}
    params["benchmarks"]["models"] = ["unigram", str(workdir / "tiny-gpt")]
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    os.environ["BRAINALIGN_TASK_STORE"] = str(workdir / "store")
    try:
        code, stderr = run_stage(workdir, "benchmark", "futrell2018")
    finally:
        os.environ.pop("BRAINALIGN_TASK_STORE", None)
    assert code == 0, stderr
    return workdir


def test_unigram_baseline_equals_an_independent_computation_and_is_significant(scored):
    summary = json.loads((scored / "data/benchmarks/scores/futrell2018/summary.json").read_text())
    rows = {row["model"]: row for row in summary["models"]}
    table = _hand_aligned()
    assert len(table) == 10256
    keep = ~table["sentence_first"] & table["meanItemRT"].notna()
    bits = table["word"].map(_unigram_bits)
    r, p = stats.pearsonr(bits[keep], table.loc[keep, "meanItemRT"])
    assert rows["unigram"]["raw"] == pytest.approx(abs(r), abs=1e-6)  # the responses are stored as float32
    assert r > 0.1 and p < 1e-10  # rarer words are read more slowly
    assert summary["ceiling"] is None  # per-word means: no readers to split


def test_language_model_score_equals_scipy_on_its_stored_surprisal(scored):
    summary = json.loads((scored / "data/benchmarks/scores/futrell2018/summary.json").read_text())
    model = next(row for row in summary["models"] if row["model"].endswith("tiny-gpt"))
    stored = list((scored / "store" / "benchmarks").glob("*/surprisal.npy"))
    surprisals = [np.load(path) for path in stored]
    table = _hand_aligned()
    keep = (~table["sentence_first"] & table["meanItemRT"].notna()).to_numpy()
    candidates = [abs(stats.pearsonr(s[keep & np.isfinite(s)], table["meanItemRT"].to_numpy()[keep & np.isfinite(s)])[0])
                  for s in surprisals if s.shape == (len(table),) and not np.allclose(s, table["word"].map(_unigram_bits))]
    assert len(candidates) == 1
    assert model["raw"] == pytest.approx(candidates[0], abs=1e-6)
