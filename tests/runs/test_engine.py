"""params.yaml's ``engine`` section: checked field by field, local when absent, the executor each engine gives; and
the local engine never needs Ray. (The task store it moves: tests/tracking.)"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import yaml
from conftest import REPOSITORY

from brainalign.errors import ConfigError
from brainalign.runs.distributed import RayExecutor
from brainalign.runs.engine import Engine, engine_settings, executor_for, workspace_engine
from brainalign.runs.executors import ForkExecutor, LocalExecutor
from brainalign.runs.store import TaskStore

VALID = {"kind": "ray", "address": "ray://head:10001", "num_cpus": 2, "num_gpus": 0.5, "max_retries": 3,
         "store": "/shared/tasks"}


def test_the_repository_params_run_locally_and_a_missing_section_is_local():
    assert workspace_engine(REPOSITORY) == Engine() == engine_settings({})
    assert Engine().kind == "local"


def test_a_valid_section_is_read_as_written():
    assert engine_settings({"engine": VALID}) == Engine(**VALID)


@pytest.mark.parametrize("field, value, expected", [
    ("kind", "slurm", "one of ['local', 'ray']"),
    ("address", "", "null (a Ray started by the stage), auto, ray://<head>:<port> or <head>:<port>"),
    ("num_cpus", 0, "CPUs per task, a number above 0"),
    ("num_cpus", "2", "CPUs per task, a number above 0"),
    ("num_gpus", True, "GPUs per task on CUDA, a number above 0 (a fraction shares a GPU)"),
    ("max_retries", -1, "a whole number, 0 or more"),
    ("max_retries", 1.5, "a whole number, 0 or more"),
    ("store", 7, "null (data/tasks of the repository) or a path every node sees"),
])
def test_a_bad_value_names_the_file_the_field_what_was_expected_and_what_was_found(field, value, expected):
    with pytest.raises(ConfigError) as error:
        engine_settings({"engine": {**VALID, field: value}}, "somewhere/params.yaml")
    assert str(error.value) == f"somewhere/params.yaml: engine.{field}: expected {expected}, found {value!r}"


def test_a_missing_or_unknown_key_is_refused():
    with pytest.raises(ConfigError, match=r"params.yaml: section 'engine': expected keys .* missing \['store'\] "
                                          r"and unknown \['workers'\]"):
        engine_settings({"engine": {**{k: v for k, v in VALID.items() if k != "store"}, "workers": 2}})


def test_each_engine_gives_its_executor():
    local = Engine()
    assert type(executor_for(engine=local)) is LocalExecutor
    assert type(executor_for(workers=2, engine=local)) is ForkExecutor
    # A forked process cannot use the CUDA context of its parent: one after another, in process.
    assert type(executor_for(workers=2, device="cuda", engine=local)) is LocalExecutor
    ray = executor_for(workers=2, device="cuda", fresh_process=True, engine=Engine(**VALID))
    assert isinstance(ray, RayExecutor) and ray.gpu and ray.fresh_process and ray.engine.num_gpus == 0.5
    assert not executor_for(engine=Engine(**VALID)).gpu


def test_engine_ray_without_ray_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: importing it fails
    with pytest.raises(ConfigError, match=r"^params.yaml: engine.kind: ray needs the ray package "
                                          r"\(pip install -e '.\[ray\]'\)"):
        executor_for(engine=Engine(kind="ray")).run([], TaskStore(tmp_path), lambda task, directory, on_epoch: {})


def test_the_engine_comes_from_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"engine": {**VALID, "kind": "local"}}))
    monkeypatch.chdir(tmp_path)
    assert workspace_engine() == Engine(**{**VALID, "kind": "local"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"engine": {**VALID, "num_cpus": -1}}))
    with pytest.raises(ConfigError, match=r"^params.yaml: engine.num_cpus: expected"):
        executor_for()


def test_the_local_engine_never_imports_ray(tmp_path):
    """``make test`` and ``make run`` need no Ray: the library, the tracking and a local grid leave it unimported."""
    code = textwrap.dedent("""
        import sys
        from brainalign import tracking
        from brainalign.runs import distributed
        from brainalign.runs.engine import executor_for
        from brainalign.runs.store import TaskStore
        import brainalign.benchmarks.evaluate, brainalign.decoding.experiment, brainalign.probing.experiment

        class Twice:
            namespace, label, source = "twice", "twice", None
            def __init__(self, n): self.n, self.key, self.id = n, str(n), f"twice/{n}"
            def payload(self): return {"n": self.n}

        work = lambda task, directory, on_epoch: {"twice": 2 * task.n}
        tasks = [Twice(n) for n in range(3)]
        forked = executor_for(2, progress=False).run(tasks, TaskStore(sys.argv[1]), work)
        assert [r["twice"] for r in forked] == [0, 2, 4]
        assert executor_for(progress=False).run(tasks, TaskStore(sys.argv[1]), work)[2] == {"twice": 4}
        print("ray" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                         cwd=REPOSITORY, env={**os.environ, "PYTHONPATH": str(REPOSITORY / "src")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
