"""The registry type: names to entries; an unknown name fails with the known ones."""

from __future__ import annotations

import pytest

from brainalign.data.sources import SOURCES
from brainalign.errors import ConfigError
from brainalign.finetuning.recipe import RECIPES
from brainalign.registry import Registry


def test_register_get_and_list():
    things: Registry = Registry("thing", "section.thing")

    @things.register("b")
    def second() -> int:
        return 2

    things.register("a")(lambda: 1)
    assert things.get("b") is second
    assert things.names() == ["a", "b"] == list(things)
    assert "a" in things and "c" not in things


def test_unknown_name_fails_naming_the_field_and_the_known_names():
    things: Registry = Registry("thing", "section.thing")
    things.register("alpha")(object())
    things.register("beta")(object())
    with pytest.raises(ConfigError) as info:
        things.get("gamma")
    assert str(info.value) == "params.yaml: section.thing: expected one of alpha, beta, found 'gamma'"
    with pytest.raises(ConfigError, match="found 3"):
        things.get(3)


def test_a_name_registered_twice_is_refused():
    things: Registry = Registry("thing", "section.thing")
    things.register("a")(1)
    with pytest.raises(ValueError, match="'a' is registered twice"):
        things.register("a")(2)


def test_the_project_registries_hold_their_entries_once_imported():
    import brainalign.data.datasets  # noqa: F401  (imports every format module)
    import brainalign.finetuning.recipes  # noqa: F401

    assert SOURCES.names() == ["hp_fmri", "hp_meg", "own", "simulated"]
    assert RECIPES.names() == ["finetuned", "joint", "meg_transfer", "participant_transfer", "vanilla"]
