"""Which of brainalign's own modules a piece of code runs, and one hash over them: a task's code key.

A result may be reused only while the code that computed it is unchanged. Rather than a hand-kept
list of files (which goes stale the day someone adds an import), the closure is read from the source:
every ``import`` and ``from ... import`` statement of a module, at any depth (inside functions too),
resolved the way the interpreter resolves it, followed through every ``brainalign`` module it reaches,
parent packages' ``__init__.py`` included (importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py``).
Third-party code is pinned by ``requirements.lock``, so it is not hashed here.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

from brainalign.files import md5_file

PACKAGE = "brainalign"
ROOT = Path(__file__).resolve().parents[1]  # src/brainalign


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The file of ``module`` (``brainalign.x.y``) under ``root``, or None when it is not one of ours."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _imports(path: Path, module: str, root: Path) -> set[str]:
    """The ``brainalign`` modules that the statements of one file import (with their parent packages)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.update(_parents(alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.update(_parents(base))
            for alias in node.names:  # ``from brainalign.data import prepared`` imports a module
                found.add(f"{base}.{alias.name}")
    return {m for m in found if module_file(m, root) is not None}


def closure(module: str, root: Path = ROOT) -> list[str]:
    """Every ``brainalign`` module that importing ``module`` runs, ``module`` included, sorted."""
    return list(_closure(module, root))


@lru_cache(maxsize=None)
def _closure(module: str, root: Path) -> tuple[str, ...]:
    if module_file(module, root) is None:
        raise ModuleNotFoundError(f"{module} is not a module of {root}")
    seen: set[str] = set()
    pending = _parents(module)
    while pending:
        name = pending.pop()
        if name in seen or module_file(name, root) is None:
            continue
        seen.add(name)
        pending.extend(_imports(module_file(name, root), name, root) - seen)
    return tuple(sorted(seen))


def script_closure(path: str | Path, root: Path = ROOT) -> list[str]:
    """The ``brainalign`` modules a script (a stage, say) imports, through every module it reaches."""
    direct = _imports(Path(path), "__main__", root)
    return sorted({m for name in direct for m in _closure(name, root)})


def code_key(module: str, root: Path = ROOT) -> str:
    """MD5 over the path and contents of every module in ``closure(module)``: a task's code key."""
    digest = hashlib.md5()
    for name in _closure(module, root):
        path = module_file(name, root)
        digest.update(f"{path.relative_to(root).as_posix()}:{md5_file(path)}\n".encode())
    return digest.hexdigest()
