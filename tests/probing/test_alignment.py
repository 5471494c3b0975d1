"""Alignment by hand: clipped profiles, cosine similarities, families."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign.errors import ConfigError, InputError
from brainalign.probing.alignment import (alignment_table, check_families, cosine_alignment, family_means,
                                          family_of, profiles)


def long(unit: str, rows: dict[str, dict[str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{unit: u, "feature": f, "score": s} for u, scores in rows.items() for f, s in scores.items()])


def test_cosines_by_hand():
    brain = profiles(long("region", {"A": {"pos/NN": 0.3, "motion/fly": 0.4, "length/word_length": -0.2},
                                     "B": {"pos/NN": 0.0, "motion/fly": 0.0, "length/word_length": -0.1}}), "region")
    # Negative scores clip to 0: A = (0.3, 0.4, 0) in the pivot's column order (sorted names).
    assert brain.loc["A"].tolist() == [0.0, 0.4, 0.3]
    model = profiles(long("layer", {1: {"pos/NN": 3.0, "motion/fly": 4.0, "length/word_length": 0.0},
                                    2: {"pos/NN": 0.0, "motion/fly": 0.0, "length/word_length": 1.0},
                                    3: {"pos/NN": 4.0, "motion/fly": -3.0, "length/word_length": 0.0}}), "layer")
    cos = cosine_alignment(brain, model)
    assert cos.loc["A", 1] == pytest.approx(1.0)
    assert cos.loc["A", 2] == pytest.approx(0.0)
    # (0.3, 0.4) . (4, 0) / (0.5 * 4) = 0.6
    assert cos.loc["A", 3] == pytest.approx(0.6)
    # A region that carries nothing is aligned with nothing.
    assert cos.loc["B"].isna().all()
    only_pos = cosine_alignment(brain, model, ["pos/NN"])
    assert only_pos.loc["A", 1] == pytest.approx(1.0) and np.isnan(only_pos.loc["A", 2])


def test_families_split_the_table():
    brain = profiles(long("region", {"A": {"pos/NN": 1.0, "motion/fly": 1.0}}), "region")
    model = profiles(long("layer", {1: {"pos/NN": 1.0, "motion/fly": 0.0}}), "layer")
    table = alignment_table(brain, model)
    by = table.set_index("family")
    assert by.loc["all", "cosine"] == pytest.approx(1 / np.sqrt(2))
    assert by.loc["syntactic", "cosine"] == pytest.approx(1.0)
    assert np.isnan(by.loc["discourse", "cosine"])
    assert by.loc["syntactic", "n_features"] == 1
    assert family_of("characters/harry") == "discourse" and family_of("simulated/layer2") is None
    means = family_means(long("layer", {1: {"pos/NN": 0.4, "pos/DT": -0.2, "motion/fly": 0.1}}), "layer")
    assert means.set_index("family").loc["syntactic", "score"] == pytest.approx(0.2)


def test_bad_input_fails_with_one_message():
    with pytest.raises(InputError, match="one score per unit and feature"):
        profiles(pd.concat([long("layer", {1: {"pos/NN": 1.0}})] * 2), "layer")
    with pytest.raises(ConfigError, match="in both"):
        check_families({"a": ["pos"], "b": ["pos"]})
    with pytest.raises(InputError, match="none in common"):
        cosine_alignment(profiles(long("region", {"A": {"x/a": 1.0}}), "region"),
                         profiles(long("layer", {1: {"x/b": 1.0}}), "layer"))
