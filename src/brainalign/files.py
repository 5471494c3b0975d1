"""Writing files so that a crash never leaves a half-written one behind."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Works for files and directories alike: whatever the block writes at the temporary path replaces
    ``path`` in one rename (a directory already at ``path`` is removed first).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)) / target.name
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def md5_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The MD5 of a file's bytes (the hash DVC records for a file)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def link_or_copy(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Hard-link ``source`` at ``target`` (checkpoints are large), copying where a link is impossible."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
