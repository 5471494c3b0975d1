"""Code keys: the closure of brainalign modules a task imports, checked against the interpreter, and keys
that change whenever any module of that closure changes (and only then)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from brainalign.runs.code import ROOT, closure, code_key, module_file, script_closure

TASK_MODULES = ("brainalign.finetuning.tasks", "brainalign.nlu.runs")


def interpreter_modules(statement: str) -> set[str]:
    """The brainalign modules a fresh interpreter holds after running ``statement``: the truth the AST
    closure must contain (lazy imports inside functions are not run, so this is a lower bound)."""
    code = textwrap.dedent(f"""
        import json, sys
        {statement}
        print(json.dumps(sorted(m for m in sys.modules if m == "brainalign" or m.startswith("brainalign."))))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", TASK_MODULES)
def test_closure_contains_everything_the_interpreter_imports(module):
    static = set(closure(module))
    dynamic = interpreter_modules(f"import {module}")
    assert dynamic <= static, f"imported but missing from the closure: {sorted(dynamic - static)}"
    assert module in static and "brainalign" in static


def test_closure_follows_imports_inside_functions_and_relative_ones(tmp_path):
    """A hand-made package: ``a`` imports ``b`` inside a function and ``c`` relatively; ``d`` is unused."""
    root = tmp_path / "brainalign"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "a.py").write_text("def f():\n    from brainalign.sub import b\n\nfrom . import c\n")
    (root / "sub" / "b.py").write_text("import numpy\n")
    (root / "sub" / "c.py").write_text("from brainalign.e import thing\n")
    (root / "sub" / "d.py").write_text("")
    (root / "e.py").write_text("thing = 1\n")
    assert closure("brainalign.sub.a", root) == ["brainalign", "brainalign.e", "brainalign.sub", "brainalign.sub.a",
                                                 "brainalign.sub.b", "brainalign.sub.c"]


def test_the_old_hand_kept_lists_were_incomplete():
    """The issue's examples: GLUE runs import training.py; brain tasks import tokens.py and prepared.py."""
    assert "brainalign.finetuning.training" in closure("brainalign.nlu.runs")
    assert {"brainalign.stimuli.tokens", "brainalign.data.prepared"} <= set(closure("brainalign.finetuning.tasks"))


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("package") / "brainalign"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.mark.parametrize("module", TASK_MODULES)
def test_editing_any_module_of_the_closure_changes_the_key(module, package_copy):
    before = code_key(module, package_copy)
    assert before == code_key(module, ROOT)  # same files, same key, wherever the package lives
    for name in closure(module, package_copy):
        path = module_file(name, package_copy)
        original = path.read_text()
        path.write_text(original + "\n# an edit\n")
        try:
            assert code_key(module, package_copy) != before, f"editing {name} left the key of {module} unchanged"
        finally:
            path.write_text(original)
    assert code_key(module, package_copy) == before


def test_editing_a_module_outside_the_closure_keeps_the_key(package_copy):
    outside = sorted({m for m in closure("brainalign.report.pages", package_copy)}
                     - set(closure("brainalign.finetuning.tasks", package_copy)))
    assert "brainalign.report.pages" in outside
    path = module_file("brainalign.report.pages", package_copy)
    before, original = code_key("brainalign.finetuning.tasks", package_copy), path.read_text()
    path.write_text(original + "\n# an edit\n")
    try:
        assert code_key("brainalign.finetuning.tasks", package_copy) == before
    finally:
        path.write_text(original)


KEYS = """
from pathlib import Path
from brainalign.finetuning.tasks import Task, code_version
from brainalign.nlu.runs import GlueEncoder, GlueRun
from brainalign.nlu.finetune import GlueSettings
from brainalign.nlu.sample import write_sample
task = Task(model="finetuned", label="x", encoder={{"name": "minilm", "untrained": False, "seed": 0}},
            heads=[{{"dataset": "fmri", "subject": "1"}}], heldout_run=1, seed=0, phases=[["head", 1]],
            optimisation={{}}, runtime={{"device": "cpu", "bf16": False}}, inputs={{"code": code_version()}})
write_sample({sample!r}, 20, 10)
run = GlueRun(GlueEncoder("pretrained", {{"name": "minilm", "untrained": False, "seed": 0}}), "SST-2", 0,
              {sample!r}, GlueSettings())
print(task.key, run.key)
"""


def _keys(package_parent: Path, sample: Path) -> tuple[str, str]:
    """A brain task's and a GLUE run's keys, computed by a fresh interpreter importing the package at
    ``package_parent`` (so the keys come from the code as it is on disk there)."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    out = subprocess.run([sys.executable, "-c", KEYS.format(sample=str(sample))], capture_output=True, text=True,
                         env=env, check=True, cwd=package_parent)
    brain, glue = out.stdout.split()[-2:]
    return brain, glue


def test_editing_training_py_gives_glue_runs_and_brain_tasks_new_keys(package_copy, tmp_path):
    """End to end, as the issue asks: the optimiser and schedule module (finetuning/training.py) is
    imported by GLUE fine-tuning; an edit to it must never let a stale GLUE result be reused."""
    parent = package_copy.parent
    before = _keys(parent, tmp_path / "sample")
    training = package_copy / "finetuning" / "training.py"
    original = training.read_text()
    training.write_text(original.replace("def warmup_linear(", "def warmup_linear(  # the schedule, edited\n", 1))
    try:
        after = _keys(parent, tmp_path / "sample")
    finally:
        training.write_text(original)
    assert after[0] != before[0] and after[1] != before[1]
    # And a module neither imports (the report's pages) leaves both keys alone.
    pages = package_copy / "report" / "pages.py"
    original = pages.read_text()
    pages.write_text(original + "\n# an edit\n")
    try:
        assert _keys(parent, tmp_path / "sample") == before
    finally:
        pages.write_text(original)


def test_script_closure_reads_a_stage():
    stage = ROOT.parents[1] / "stages" / "train.py"
    modules = script_closure(stage)
    assert {"brainalign.finetuning.recipes", "brainalign.finetuning.recipes.joint", "brainalign.runs.executors",
            "brainalign.tracking"} <= set(modules)
