"""What a task is to the runner: a namespace, a label, a payload that determines its result, and the
task it starts from (if any). The key is a hash of the payload, so two tasks with the same key are the
same computation and a task whose inputs or code changed gets a new key.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Any, Protocol, runtime_checkable


def spec_key(payload: dict[str, Any]) -> str:
    """The key of a payload: SHA-256 of its canonical JSON, 20 hex digits."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


@runtime_checkable
class TaskSpec(Protocol):
    """The runner's view of a task (a brain model's training, a GLUE fine-tuning, ...).

    Attributes
    ----------
    namespace : str
        The folder of the store it lives in (``finetuned``, ``glue``).
    label : str
        A readable name (not part of the key).
    """

    namespace: str
    label: str

    def payload(self) -> dict[str, Any]:
        """Everything that determines the result (inputs' hashes and the code key included)."""

    @property
    def key(self) -> str:
        """``spec_key(self.payload())``."""

    @property
    def id(self) -> str:
        """``<namespace>/<key>``: its place in the store."""

    @property
    def source(self) -> str | None:
        """The id of the task whose result this one starts from, or None."""

    def params(self) -> dict[str, Any]:
        """What to record about the task (for a tracker): settings, not input hashes."""

    def tags(self) -> dict[str, str]:
        """Short strings to record with it: input hashes (``input_md5.<path>``) and names."""


class StoredTask:
    """What the task store needs of a task whose ``spec`` (a cached property) determines it."""

    namespace = ""
    source = None

    def payload(self) -> dict:
        return self.spec

    @cached_property
    def key(self) -> str:
        return spec_key(self.spec)

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.key}"
