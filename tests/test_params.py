"""params.yaml sections: exact keys, clear errors."""

from __future__ import annotations

import pytest

from brainalign.errors import ConfigError
from brainalign.params import field_names, load_params, section
from brainalign.recordings.simulated import SimulationConfig
from brainalign.training import Schedule


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

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    section(params, "simulate", field_names(SimulationConfig))
    section(params, "vanilla", field_names(Schedule) + ["init_std", "seed"])
    assert SimulationConfig(**params["simulate"]).snr == params["simulate"]["snr"]
