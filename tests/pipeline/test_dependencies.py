"""dvc.yaml's code deps cover every project module each stage's script imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from brainalign.runs.code import ROOT, module_file, script_closure

REPOSITORY = ROOT.parents[1]


def stage_definitions() -> dict[str, dict]:
    """Every stage of dvc.yaml with its script and declared deps (foreach templates once: the code deps
    do not depend on the entry)."""
    stages = yaml.safe_load((REPOSITORY / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, definition in stages.items():
        body = definition.get("do", definition)
        script = body["cmd"].split()[1]
        out[name] = {"script": script, "deps": [d for d in body.get("deps", []) if "${" not in d]}
    return out


def interpreter_modules(script: Path) -> set[str]:
    """What a fresh interpreter imports when it loads the script without running its ``main``."""
    code = textwrap.dedent(f"""
        import json, runpy, sys
        runpy.run_path({str(script)!r}, run_name="not_main")
        print(json.dumps(sorted(m for m in sys.modules if m == "brainalign" or m.startswith("brainalign."))))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         cwd=REPOSITORY)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def covered(path: Path, deps: list[str]) -> bool:
    relative = path.relative_to(REPOSITORY).as_posix()
    return any(relative == d or relative.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("stage", sorted(stage_definitions()))
def test_declared_deps_cover_every_module_the_stage_imports(stage):
    definition = stage_definitions()[stage]
    script = REPOSITORY / definition["script"]
    assert definition["script"] in definition["deps"], f"{stage}: its script is not a dependency"
    static = set(script_closure(script))
    dynamic = interpreter_modules(script)
    assert dynamic <= static, f"{stage}: the import closure misses {sorted(dynamic - static)}"
    missing = sorted(m for m in static if not covered(module_file(m), definition["deps"]))
    assert not missing, f"{stage}: dvc.yaml deps do not cover {missing}"


def test_train_stage_lists_every_recipe_that_runs_once():
    """dvc.yaml's `train` list and the recipe registry name the same models (vanilla runs per dataset)."""
    from brainalign.finetuning.recipes import RECIPES

    listed = yaml.safe_load((REPOSITORY / "dvc.yaml").read_text())["stages"]["train"]["foreach"]
    assert sorted(listed) == sorted(n for n in RECIPES.names() if not RECIPES.get(n).per_dataset)
    assert [n for n in RECIPES.names() if RECIPES.get(n).per_dataset] == ["vanilla"]
