"""Registries: how params.yaml names a thing (a dataset source, an encoder, a model recipe, a metric).

Adding an entry is one decorated function or class in its own module, never an edit of a chain of ifs::

    SOURCES = Registry("dataset source", "datasets.<name>.source")

    @SOURCES.register("hp_fmri")
    def read_hp_fmri_dataset(path, participants): ...

    SOURCES.get("hp_fmri")        # the function
    SOURCES.get("hp_fmr")         # ConfigError: ... expected one of hp_fmri, hp_meg, own, simulated

A registry is filled when the module holding its entries is imported; the module that defines a
registry imports its entries' modules, so that ``get`` always sees all of them.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from brainalign.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind.

    Parameters
    ----------
    kind : str
        What the entries are, for messages (``"dataset source"``).
    field : str
        Where a user writes the name, for messages (``"datasets.<name>.source"``).
    """

    def __init__(self, kind: str, field: str) -> None:
        self.kind, self.field = kind, field
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that registers its function or class under ``name``."""
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry
        return add

    def get(self, name: str) -> T:
        """The entry called ``name``; an unknown name fails with the list of known ones."""
        if not isinstance(name, str) or name not in self._entries:
            raise ConfigError(f"params.yaml: {self.field}: expected one of {', '.join(self.names())}, "
                              f"found {name!r}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
