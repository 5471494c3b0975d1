"""Alignment of the model's and the brain's feature profiles, as the seed compares them.

A unit's *profile* is its held-out score for every feature: a layer's probe scores, a region's FReM gains
over the dummy decoder. Scores below zero (no better than the baseline) are clipped to 0, so that a profile
says how much of each feature a unit carries and a unit that carries nothing has the zero profile.

The alignment of a region and a layer is the cosine similarity of their profiles over the features both
were scored on (NaN where either profile is zero: a unit that carries nothing is aligned with nothing).
Computed over all features and over each family of feature groups (``syntactic`` against ``discourse``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from brainalign.errors import ConfigError, InputError

# The seed's contrast: feature groups of syntax against those of the story's content.
FAMILIES = {"syntactic": ["pos", "dependency", "punctuation", "length"],
            "discourse": ["characters", "motion", "emotion", "verbs"]}


def profiles(scores: pd.DataFrame, unit: str, value: str = "score") -> pd.DataFrame:
    """Units x features of ``value`` clipped at 0 (one row per ``unit``, one column per ``feature``).

    ``scores`` is long: one row per (unit, feature), e.g. averaged over participants beforehand.
    """
    missing = [c for c in (unit, "feature", value) if c not in scores.columns]
    if missing:
        raise InputError("scores", str(missing), f"columns {unit!r}, 'feature', {value!r}",
                         f"columns {list(scores.columns)}")
    if scores.duplicated([unit, "feature"]).any():
        raise InputError("scores", f"{unit}/feature", "one score per unit and feature", "duplicates")
    table = scores.pivot(index=unit, columns="feature", values=value)
    return table.clip(lower=0.0)


def cosine_alignment(brain: pd.DataFrame, model: pd.DataFrame, features: Sequence[str] | None = None
                     ) -> pd.DataFrame:
    """Regions x layers: the cosine similarity of each pair of profiles over the shared features.

    Parameters
    ----------
    brain, model : DataFrame
        Profiles (:func:`profiles`): one row per region, one per layer; one column per feature.
    features : sequence of str, optional
        Restrict to these features (a family); default: every feature both score.
    """
    shared = [f for f in brain.columns if f in set(model.columns)]
    if features is not None:
        shared = [f for f in shared if f in set(features)]
    if not shared:
        raise InputError("alignment", "feature", "features scored on both sides", "none in common")
    a = brain[shared].to_numpy(dtype=np.float64)
    b = model[shared].to_numpy(dtype=np.float64)
    # A feature not scored for some unit (NaN) counts as carrying nothing there.
    a, b = np.nan_to_num(a), np.nan_to_num(b)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = (a @ b.T) / np.outer(na, nb)
    cosine[(na == 0)[:, None] | (nb == 0)[None, :]] = np.nan
    return pd.DataFrame(cosine, index=brain.index, columns=model.index)


def family_of(feature: str, families: Mapping[str, Sequence[str]] = FAMILIES) -> str | None:
    """The family of a ``group/name`` feature, or None."""
    group = feature.split("/", 1)[0]
    for family, groups in families.items():
        if group in groups:
            return family
    return None


def check_families(families: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Families as params.yaml writes them: each a non-empty list of groups, no group in two."""
    seen: dict[str, str] = {}
    for family, groups in families.items():
        if not isinstance(groups, (list, tuple)) or not groups:
            raise ConfigError(f"params.yaml: probing.families.{family}: expected a list of feature groups, "
                              f"found {groups!r}")
        for group in groups:
            if group in seen:
                raise ConfigError(f"params.yaml: probing.families: group {group!r} is in both {seen[group]!r} "
                                  f"and {family!r}")
            seen[group] = family
    return {family: list(groups) for family, groups in families.items()}


def alignment_table(brain: pd.DataFrame, model: pd.DataFrame,
                    families: Mapping[str, Sequence[str]] = FAMILIES) -> pd.DataFrame:
    """Tidy alignment: one row per (family, region, layer) with ``cosine``; family ``all`` uses every feature.

    ``brain`` and ``model`` are profiles (:func:`profiles`).
    """
    rows = []
    shared = [f for f in brain.columns if f in set(model.columns)]
    for family in ["all", *families]:
        chosen = shared if family == "all" else [f for f in shared if family_of(f, families) == family]
        if not chosen:
            continue
        matrix = cosine_alignment(brain, model, chosen)
        long = matrix.rename_axis(index="region", columns="layer").stack(future_stack=True).rename("cosine")
        rows.append(long.reset_index().assign(family=family, n_features=len(chosen)))
    return pd.concat(rows, ignore_index=True)[["family", "region", "layer", "cosine", "n_features"]]


def family_means(scores: pd.DataFrame, unit: str, value: str = "score",
                 families: Mapping[str, Sequence[str]] = FAMILIES) -> pd.DataFrame:
    """Per unit and family, the mean clipped score of the family's features (the grouped bars)."""
    table = scores.assign(family=[family_of(f, families) for f in scores["feature"]]).dropna(subset=["family"])
    table = table.assign(clipped=table[value].clip(lower=0.0))
    return table.groupby([unit, "family"], as_index=False)["clipped"].mean().rename(columns={"clipped": value})
