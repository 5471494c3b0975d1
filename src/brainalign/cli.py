"""The ``brainalign`` command, for use outside DVC.

    brainalign where                 where the pipeline's results are, and how to open MLflow
    brainalign ui [--port N]         the MLflow UI on 127.0.0.1 over this repository's store
    brainalign inspect PATH          summarise the recordings at PATH (--source hp_fmri|hp_meg|own)
    brainalign validate PATH         run the validation suites on the recordings at PATH
    brainalign encode-features --model NAME --text FILE --out FILE.npy
                                     every layer's word features of a text (as the features stage makes them)
"""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, NoReturn, Sequence

from brainalign.errors import BrainalignError
from brainalign.offline import go_offline

RESULTS = {
    "the report: open it in a browser (configuration, scores, every figure, MLflow run ids)": "reports/index.html",
    "score table (Parquet, long: model x participant x fold x seed x voxel x measure)": "data/scores/scores.parquet",
    "metrics (DVC metrics; `dvc metrics show`)": "metrics/",
    "encoding models: per-layer scores, shift-null tests, noise ceilings, layer curves": "data/encoding/",
    "Brain-Score language leaderboard: models x benchmarks, brain score vs next-word": "reports/leaderboard/",
    "Brain-Score benchmarks: per-layer, per-channel scores and ceilings; simulated twins": "data/benchmarks/",
    "decoding along fine-tuning trajectories: MAR, per-sentence ranks, RSA, tests; checkpoints": "data/decoding/",
    "figures (PNG, each with the CSV of its numbers)": "reports/figures/",
    "held-out predictions and checkpoints of every model (npy, safetensors + JSON cards)": "data/models/",
    "task store: every training task's spec, checkpoint and results (a cache)": "data/tasks/",
    "prepared folds, one directory per dataset": "data/prepared/",
    "simulated recordings / ground truth": "data/raw/, data/truth/",
}


def begin_stage() -> None:
    """What a stage script does before its imports: go offline, with caches inside the workspace (the
    working directory, as DVC runs a stage), and hold the garbage collector off until :func:`guarded`
    starts the stage's work.

    Loading torch, MLflow and its SQL store creates millions of objects that all stay alive, and the
    collector's passes over them while they load cost about 1 s of each stage's start-up
    (``perf/startup.py``); none of them is garbage.
    """
    go_offline(Path.cwd())
    gc.disable()


def guarded(main: Callable[[], None]) -> int:
    """Run a stage's ``main``; a brainalign error becomes one line on stderr and exit status 1.

    The garbage collector is on while ``main`` runs, whether or not :func:`begin_stage` held it off, and the
    objects alive when ``main`` starts (the loaded modules, mostly) are set aside from its passes meanwhile:
    the collections that ``main``'s own allocations trigger (the MLflow store loading, a training loop)
    then scan only ``main``'s objects instead of the whole of torch.
    """
    gc.freeze()
    gc.enable()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main()
    except BrainalignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        gc.unfreeze()
    return 0


def exit_stage(code: int, script: str) -> NoReturn:
    """End a stage script with exit status ``code``.

    When the interpreter was started to run ``script`` (as DVC runs a stage), the process ends without
    unloading its modules: tearing down torch, transformers and MLflow takes about 2 s at the end of
    every stage, for nothing. Exit handlers still run and the standard streams are flushed first; every
    output was already written and renamed into place. Run any other way (``runpy`` in the tests, a
    notebook), it raises ``SystemExit`` as usual.
    """
    started_for_script = any(arg.endswith(".py") and os.path.realpath(arg) == os.path.realpath(script)
                             for arg in sys.orig_argv[1:])
    if not started_for_script:
        raise SystemExit(code)
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def stage_argument(stage: str) -> str:
    """The dataset a ``foreach`` stage runs on: its one command-line argument (``stages/<stage>.py NAME``)."""
    if len(sys.argv) != 2:
        raise BrainalignError(f"stages/{stage}.py: expected one argument, the dataset name (a key of "
                              f"params.yaml's datasets), found {sys.argv[1:]}")
    return sys.argv[1]


# The commands import what they need when they run: `brainalign where` should not pay for torch.
def _where(args: argparse.Namespace) -> None:
    from brainalign.tracking import store_uri

    print("Results:")
    for what, path in RESULTS.items():
        print(f"  {path:<28} {what}")
    print(f"MLflow store: {store_uri()}")
    print("Open it with:  make ui   (or: brainalign ui), then browse http://127.0.0.1:5000")


def _ui(args: argparse.Namespace) -> None:
    from brainalign.tracking import artifact_root, store_uri

    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store_uri(),
               "--default-artifact-root", artifact_root().as_uri(), "--host", args.host, "--port", str(args.port)]
    print(" ".join(command))
    raise SystemExit(subprocess.call(command))


def _inspect(args: argparse.Namespace) -> None:
    from brainalign.data.datasets import read_dataset
    from brainalign.data.hp_fmri import read_hp_fmri

    path = args.path
    recordings = ([read_hp_fmri(path)] if str(path).endswith(".mat") else read_dataset(args.source, path))
    for rec in recordings:
        words = rec.story_words()
        rows, channels = ("words", "sensor x bin components") if rec.modality == "meg" else (
            "TRs", "voxels" if rec.coords is not None else "channels")
        print(f"{rec.source}: participant {rec.subject} ({rec.modality}), {rec.responses.shape[0]} {rows} x "
              f"{rec.n_channels} {channels}, runs {sorted(set(rec.runs.tolist()))}, {len(words)} words "
              f"({len(rec.words) - len(words)} fixations)"
              + (f", volume {rec.volume_shape}" if rec.volume_shape else ""))


def _validate(args: argparse.Namespace) -> None:
    from brainalign.data.datasets import read_dataset
    from brainalign.data.validation import validate_recordings

    tr = None if args.source == "hp_meg" else args.tr
    report = validate_recordings(read_dataset(args.source, args.path), runs=args.runs, tr=tr)
    print(report.summary())
    report.raise_for_failure()


def _encode_features(args: argparse.Namespace) -> None:
    from brainalign.errors import InputError
    from brainalign.features.layers import extract_features, load_feature_model

    text = Path(args.text)
    if not text.is_file():
        raise InputError(text, "--text", "a text file", "no such file")
    words = text.read_text(encoding="utf-8").split()
    if not words:
        raise InputError(text, "--text", "words separated by white space", "an empty file")
    model = load_feature_model(args.model, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial.npy")
    features = extract_features(model, words, context=args.context, pooling=args.pooling,
                                batch_size=args.batch_size, out=tmp, seed=args.seed)
    shape = features.shape
    del features
    os.replace(tmp, out)
    print(f"{out}: {shape[0]} layers x {shape[1]} words x {shape[2]} features (float32; layer 0 the embeddings); "
          f"load with numpy.load({str(out)!r}, mmap_mode='r')")
    out.with_suffix(".words.txt").write_text("\n".join(words) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    go_offline(os.getcwd())
    parser = argparse.ArgumentParser(prog="brainalign", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("where", help="where results are").set_defaults(func=_where)
    ui = commands.add_parser("ui", help="the MLflow UI on this repository's store")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(func=_ui)
    inspect = commands.add_parser("inspect", help="summarise recordings (a subject_N.mat, a directory, an .npz)")
    inspect.add_argument("path")
    inspect.add_argument("--source", default="hp_fmri", help="a dataset source (hp_fmri, hp_meg, own, ...)")
    inspect.set_defaults(func=_inspect)
    validate = commands.add_parser("validate", help="validate recordings")
    validate.add_argument("path")
    validate.add_argument("--source", default="hp_fmri", help="a dataset source (hp_fmri, hp_meg, own, ...)")
    validate.add_argument("--runs", type=int, nargs="+", default=[1, 2, 3, 4])
    validate.add_argument("--tr", type=float, default=2.0)
    validate.set_defaults(func=_validate)
    encode = commands.add_parser("encode-features", help="every layer's features of each word of a text")
    encode.add_argument("--model", required=True,
                        help="minilm, <architecture>-untrained, random-<width>, or a local model directory")
    encode.add_argument("--text", required=True, help="a text file (words separated by white space)")
    encode.add_argument("--out", default="features.npy", help="where to write the (layers, words, width) array")
    encode.add_argument("--context", type=int, default=20, help="preceding words in each word's window")
    encode.add_argument("--pooling", default="last", choices=["last", "cls"])
    encode.add_argument("--batch-size", type=int, default=32)
    encode.add_argument("--seed", type=int, default=0)
    encode.set_defaults(func=_encode_features)
    args = parser.parse_args(argv)
    return guarded(lambda: args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
