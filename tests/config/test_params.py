"""params.yaml sections: exact keys, clear errors."""

from __future__ import annotations

import pytest

from brainalign.errors import ConfigError
from brainalign.finetuning.grid import MODELS_PRESETS
from brainalign.finetuning.recipes import RECIPES, resolve
from brainalign.config.params import field_names, load_params, section
from brainalign.data.simulated import SimulationConfig


def test_section_checks_missing_and_unknown_keys():
    params = {"vanilla": {"epoch": 5, "seed": 0}}
    with pytest.raises(ConfigError) as info:
        section(params, "vanilla", ["epochs", "seed"])
    message = str(info.value)
    assert "'vanilla'" in message and "missing ['epochs']" in message and "unknown ['epoch']" in message
    assert section(params, "vanilla") == {"epoch": 5, "seed": 0}
    with pytest.raises(ConfigError, match="section 'score'"):
        section(params, "score")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no parameter file"):
        load_params(tmp_path / "params.yaml")


def test_the_projects_params_match_what_the_stages_read():
    """Truth: the dataclasses' fields (what the code accepts) against the committed params.yaml."""
    from pathlib import Path

    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    section(params, "simulate", field_names(SimulationConfig))
    for name in ("models", *RECIPES.names()):
        resolve(params, name)  # exactly the keys the model stages read, each null filled by the preset
    assert SimulationConfig(**params["simulate"]).snr == params["simulate"]["snr"]


def test_model_presets_fill_null_keys_and_explicit_values_win():
    """Truth: the reference's epochs (section 3) for the paper preset; an explicit value overrides a preset."""
    from pathlib import Path

    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    params["models"]["preset"] = "paper"
    assert (resolve(params, "finetuned")["head_epochs"], resolve(params, "finetuned")["full_epochs"]) == (10, 20)
    assert resolve(params, "joint")["full_epochs"] == 50
    assert [resolve(params, "participant_transfer")[k] for k in ("source_head_epochs", "source_full_epochs",
                                                                  "head_epochs")] == [2, 18, 10]
    assert [resolve(params, "meg_transfer")[k] for k in ("meg_head_epochs", "meg_full_epochs", "head_epochs",
                                                          "full_epochs")] == [10, 20, 10, 20]
    params["finetuned"]["full_epochs"] = 3
    assert resolve(params, "finetuned")["full_epochs"] == 3
    assert set(MODELS_PRESETS) == {"default", "paper"}
    assert all(set(RECIPES.get(n).presets) == {"default", "paper"} for n in RECIPES.names())


def test_model_params_errors_name_the_key():
    from pathlib import Path

    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    params["models"]["preset"] = "huge"
    with pytest.raises(ConfigError, match="models.preset.*'huge'"):
        resolve(params, "finetuned")
    params["models"]["preset"] = "default"
    params["joint"]["full_epochs"] = -1
    with pytest.raises(ConfigError, match="joint.full_epochs.*-1"):
        resolve(params, "joint")
    params["joint"]["full_epochs"] = None
    params["models"]["seeds"] = "0"
    with pytest.raises(ConfigError, match="models.seeds"):
        resolve(params, "models")
    params["models"]["seeds"] = None
    for bad in (-1, "often", True):
        params["models"]["checkpoint_every"] = bad
        with pytest.raises(ConfigError, match=f"models.checkpoint_every: expected seconds.*found {bad!r}"):
            resolve(params, "models")
