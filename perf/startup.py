"""Start-up: each stage's time from interpreter start to its first useful work, beside a bare ``python -c pass``.

A stage's start-up is what it pays before doing anything: the interpreter, its imports, reading params,
connecting to the MLflow store, hashing its inputs and starting its run. Each stage script of this checkout is
run as DVC runs it (``python stages/<stage>.py <args>``, in the workspace), with ``BRAINALIGN_STARTUP_PROBE`` set so
that it exits as soon as its MLflow run has started (``brainalign.tracking.stage_run``). Runs go to a
temporary MLflow store (created once, before timing: a stage of a pipeline finds the store already made),
so the workspace's own store is untouched. Prints, per stage, the best wall time of ``--repeats`` runs,
the time above the bare interpreter, and the three third-party packages whose imports cost it most
(``python -X importtime``, cumulative, top-level packages only).

    python perf/startup.py [--workspace .] [--repeats 3] [--target 3.0]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGE_SCRIPTS = Path(__file__).resolve().parents[1] / "stages"
# (stage name as DVC shows it, script, arguments)
STAGES = [
    ("simulate", "simulate", ()),
    ("validate@fmri", "validate", ("fmri",)),
    ("prepare@fmri", "prepare", ("fmri",)),
    ("encode@fmri", "encode", ("fmri",)),
    ("vanilla@fmri", "train", ("vanilla", "fmri")),
    ("train@finetuned", "train", ("finetuned",)),
    ("train@participant_transfer", "train", ("participant_transfer",)),
    ("train@meg_transfer", "train", ("meg_transfer",)),
    ("train@joint", "train", ("joint",)),
    ("glue", "glue", ()),
    ("score", "score", ()),
    ("report", "report", ()),
]


def run(command: list[str], workspace: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=workspace, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return elapsed, done.stderr


def heaviest_imports(stderr: str, own: str = "brainalign", n: int = 3) -> list[tuple[str, float]]:
    """The third-party packages whose import (cumulative, ``-X importtime``) costs most.

    A package counts once, where its top-level module is first imported, whichever module imports it;
    its time includes the packages it imports itself.
    """
    totals: dict[str, float] = {}
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", line)
        if match and "." not in match.group(2) and match.group(2) != own and not match.group(2).startswith("_"):
            totals[match.group(2)] = int(match.group(1)) / 1e6
    return sorted(totals.items(), key=lambda item: -item[1])[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path.cwd(),
                        help="a workspace after `make run` (params.yaml, dvc.lock and the data the stages hash)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target", type=float, default=3.0, help="seconds a stage may take to start")
    args = parser.parse_args()
    workspace = args.workspace.resolve()
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "BRAINALIGN_STARTUP_PROBE": "1",
               "BRAINALIGN_TRACKING_URI": f"sqlite:///{Path(scratch) / 'mlflow.db'}",
               "BRAINALIGN_TASK_STORE": str(Path(scratch) / "tasks")}
        created, _ = run([sys.executable, str(STAGE_SCRIPTS / "simulate.py")], workspace, env)  # creates the store
        bare = min(run([sys.executable, "-c", "pass"], workspace, env)[0] for _ in range(args.repeats))
        print(f"workspace {workspace}; best of {args.repeats}; MLflow store created in {created:.2f} s (once)")
        print(f"{'stage':30s} {'start-up s':>10s} {'above bare':>10s}  heaviest imports (s, cumulative)")
        print(f"{'python -c pass':30s} {bare:10.2f} {0.0:10.2f}")
        worst = 0.0
        for name, script, stage_args in STAGES:
            command = [sys.executable, str(STAGE_SCRIPTS / f"{script}.py"), *stage_args]
            best = min(run(command, workspace, env)[0] for _ in range(args.repeats))
            _, trace = run([sys.executable, "-X", "importtime", *command[1:]], workspace, env)
            heavy = ", ".join(f"{package} {seconds:.2f}" for package, seconds in heaviest_imports(trace))
            worst = max(worst, best)
            print(f"{name:30s} {best:10.2f} {best - bare:10.2f}  {heavy}")
        verdict = "within" if worst <= args.target else "over"
        print(f"slowest stage starts in {worst:.2f} s: {verdict} the {args.target:.1f} s target")


if __name__ == "__main__":
    main()
