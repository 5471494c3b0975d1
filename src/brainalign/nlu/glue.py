"""GLUE tasks: what each one reads and scores, and readers for the release layout and the hub cache.

Two sources hold the same splits:

- the GLUE release layout, ``<root>/<TASK>/train.tsv`` and ``dev.tsv`` (MNLI: ``dev_matched.tsv`` and
  ``dev_mismatched.tsv``), read with quoting turned off (sentences carry unescaped quote characters),
  CoLA without a header, MRPC behind a UTF-8 byte-order mark;
- the caches the ``datasets`` library fills when it loads ``nyu-mll/glue``: the hub cache
  (``datasets--nyu-mll--glue/snapshots/<rev>/<config>/<split>-*.parquet``) or the datasets cache
  (``nyu-mll___glue/<config>/<version>/<hash>/glue-<split>*.arrow``), read with pyarrow when they are
  already on disk; nothing is downloaded, and the ``datasets`` library is not needed.

Labels are stored as the index into :attr:`GlueTask.labels`, in the order the hub uses, so both sources
give the same numbers; STS-B's label is its similarity score (0-5).
"""

from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainalign.errors import ConfigError, InputError


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task: its files, text and label columns, label set and metrics.

    ``columns`` name the release TSV's text columns (one or two) and its label column; ``positions`` give
    them by index instead, for CoLA's header-less files. ``labels`` is empty for a regression task.
    """

    name: str
    hub_config: str
    columns: tuple[str, ...]
    hub_columns: tuple[str, ...]
    labels: tuple[str, ...]
    metrics: tuple[str, ...]
    dev_splits: tuple[str, ...] = ("dev",)
    positions: tuple[int, ...] | None = None
    n_fields: int | None = None

    @property
    def regression(self) -> bool:
        return not self.labels

    @property
    def pair(self) -> bool:
        return len(self.columns) == 3

    @property
    def n_outputs(self) -> int:
        return 1 if self.regression else len(self.labels)


TASKS: dict[str, GlueTask] = {t.name: t for t in [
    GlueTask("CoLA", "cola", ("sentence", "label"), ("sentence", "label"), ("0", "1"), ("matthews",),
             positions=(3, 1), n_fields=4),
    GlueTask("SST-2", "sst2", ("sentence", "label"), ("sentence", "label"), ("0", "1"), ("accuracy",)),
    GlueTask("MRPC", "mrpc", ("#1 String", "#2 String", "Quality"), ("sentence1", "sentence2", "label"), ("0", "1"),
             ("accuracy", "f1")),
    GlueTask("QQP", "qqp", ("question1", "question2", "is_duplicate"), ("question1", "question2", "label"),
             ("0", "1"), ("accuracy", "f1")),
    GlueTask("STS-B", "stsb", ("sentence1", "sentence2", "score"), ("sentence1", "sentence2", "label"), (),
             ("pearson", "spearman")),
    GlueTask("MNLI", "mnli", ("sentence1", "sentence2", "gold_label"), ("premise", "hypothesis", "label"),
             ("entailment", "neutral", "contradiction"), ("accuracy",),
             dev_splits=("dev_matched", "dev_mismatched")),
    GlueTask("QNLI", "qnli", ("question", "sentence", "label"), ("question", "sentence", "label"),
             ("entailment", "not_entailment"), ("accuracy",)),
    GlueTask("RTE", "rte", ("sentence1", "sentence2", "label"), ("sentence1", "sentence2", "label"),
             ("entailment", "not_entailment"), ("accuracy",)),
    GlueTask("WNLI", "wnli", ("sentence1", "sentence2", "label"), ("sentence1", "sentence2", "label"), ("0", "1"),
             ("accuracy",)),
]}

# The hub names the dev splits "validation"; MNLI's are "validation_matched" and "validation_mismatched".
HUB_SPLITS = {"train": "train", "dev": "validation", "dev_matched": "validation_matched",
              "dev_mismatched": "validation_mismatched"}
HUB_DATASET = "datasets--nyu-mll--glue"
ARROW_DATASET = "nyu-mll___glue"


@dataclass
class GlueSplit:
    """The examples of one split: first (and second) texts, labels (class index, or score), source file."""

    task: GlueTask
    split: str
    first: list[str]
    second: list[str] | None
    labels: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.first)

    def subsample(self, n: int | None, seed: int) -> GlueSplit:
        """``n`` examples drawn without replacement (seeded), in their original order; all when ``n`` is None."""
        if n is None or n >= len(self):
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        return GlueSplit(self.task, self.split, [self.first[i] for i in keep],
                         None if self.second is None else [self.second[i] for i in keep], self.labels[keep],
                         f"{self.source} ({n} of {len(self)} examples, seed {seed})")


def glue_task(name: str) -> GlueTask:
    """The task called ``name`` (the release's spelling: ``SST-2``, ``STS-B``, ``CoLA`` ...)."""
    if name not in TASKS:
        raise ConfigError(f"glue: unknown task {name!r}; the GLUE tasks are {', '.join(TASKS)}")
    return TASKS[name]


def split_files(root: str | os.PathLike, task: GlueTask | str, split: str) -> list[Path]:
    """The file(s) holding one split: ``<root>/<TASK>/<split>.tsv``, or the hub cache's parquet shards.

    Raises
    ------
    InputError
        There is no such file.
    """
    task = glue_task(task) if isinstance(task, str) else task
    if split not in ("train", *task.dev_splits):
        raise ConfigError(f"glue: {task.name} has no split {split!r}; it has train, {', '.join(task.dev_splits)}")
    root = Path(root)
    arrow = next((d for d in (root / ARROW_DATASET, root / "datasets" / ARROW_DATASET, root)
                  if d.name == ARROW_DATASET and d.is_dir()), None)
    if arrow is not None:
        name = HUB_SPLITS[split]
        builds = sorted((arrow / task.hub_config).glob("*/*/"), key=lambda p: p.stat().st_mtime, reverse=True)
        for build in builds:
            files = sorted(build.glob(f"glue-{name}.arrow")) or sorted(build.glob(f"glue-{name}-*-of-*.arrow"))
            if files:
                return files
        raise InputError(arrow / task.hub_config, "file", f"glue-{name}*.arrow ({task.name} {split}) in a build of "
                         "nyu-mll/glue in the datasets cache", f"none in {len(builds)} build(s)")
    snapshots = hub_snapshots(root)
    if snapshots:
        name = HUB_SPLITS[split]
        for snapshot in snapshots:
            files = sorted((snapshot / task.hub_config).glob(f"{name}-*.parquet"))
            if files:
                return files
        raise InputError(snapshots[0] / task.hub_config, "file", f"{name}-*.parquet ({task.name} {split}) in a "
                         "snapshot of nyu-mll/glue", f"none in {len(snapshots)} snapshot(s)")
    path = root / task.name / f"{split}.tsv"
    if not path.exists():
        found = sorted(p.name for p in (root / task.name).glob("*.tsv")) if (root / task.name).is_dir() else []
        raise InputError(path, "file", f"{task.name}'s {split} split in the GLUE release layout "
                         f"(<dir>/{task.name}/{split}.tsv) or a hub cache holding nyu-mll/glue",
                         f"no such file (in {root / task.name}: {', '.join(found) or 'nothing'})")
    return [path]


def read_split(root: str | os.PathLike, task: GlueTask | str, split: str) -> GlueSplit:
    """Read one split of one task from ``root``: a GLUE release directory or a hub cache.

    Parameters
    ----------
    root : path
        A directory in the release layout (``<root>/<TASK>/<split>.tsv``), or a Hugging Face hub cache
        directory holding ``datasets--nyu-mll--glue`` (or that dataset's own directory).
    task : GlueTask or str
    split : str
        ``train``, ``dev``, or (MNLI) ``dev_matched`` / ``dev_mismatched``.

    Raises
    ------
    InputError
        The task's file is missing, or a row, column or label is not what the task needs.
    """
    task = glue_task(task) if isinstance(task, str) else task
    files = split_files(root, task, split)
    if files[0].suffix in (".parquet", ".arrow"):
        return _read_hub(files, task, split)
    return _read_tsv(files[0], task, split)


def hub_snapshots(root: Path) -> list[Path]:
    """The snapshot directories of ``nyu-mll/glue`` under ``root`` (a hub cache or the dataset's directory)."""
    for base in (root / HUB_DATASET, root / "hub" / HUB_DATASET, root):
        if base.name.startswith(HUB_DATASET) and (base / "snapshots").is_dir():
            return sorted((base / "snapshots").iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    return []


def _read_hub(files: list[Path], task: GlueTask, split: str) -> GlueSplit:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def table(path: Path) -> dict:
        if path.suffix == ".parquet":
            return pq.read_table(path).to_pydict()
        with pa.memory_map(str(path)) as source:  # the datasets library writes Arrow IPC streams
            return pa.ipc.open_stream(source).read_all().to_pydict()

    tables = [table(f) for f in files]
    for f, table in zip(files, tables):
        missing = [c for c in task.hub_columns if c not in table]
        if missing:
            raise InputError(f, "columns", f"{', '.join(task.hub_columns)}", f"{', '.join(table)} "
                             f"(missing {', '.join(missing)})")
    column = {c: [v for t in tables for v in t[c]] for c in task.hub_columns}
    labels = np.asarray(column[task.hub_columns[-1]], dtype=float if task.regression else int)
    _check_labels(labels, task, files[0], task.hub_columns[-1])
    return GlueSplit(task, split, [str(s) for s in column[task.hub_columns[0]]],
                     [str(s) for s in column[task.hub_columns[1]]] if task.pair else None, labels,
                     str(files[0]) if len(files) == 1 else f"{files[0]} (+{len(files) - 1} shards)")
def _read_tsv(path: Path, task: GlueTask, split: str) -> GlueSplit:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    if task.positions is not None:
        header, body, first_line = None, rows, 1
        n_fields, where = task.n_fields, list(task.positions)
        names = [f"column {p + 1}" for p in task.positions]
    else:
        if not rows:
            raise InputError(path, "header", f"a header naming {', '.join(task.columns)}", "an empty file")
        header, body, first_line = rows[0], rows[1:], 2
        missing = [c for c in task.columns if c not in header]
        if missing:
            raise InputError(path, "header", f"columns {', '.join(task.columns)}",
                             f"{', '.join(header)} (missing {', '.join(missing)})")
        n_fields, where, names = len(header), [header.index(c) for c in task.columns], list(task.columns)
    *text_at, label_at = where
    first, second, raw = [], [], []
    for number, row in enumerate(body, first_line):
        if not row:
            continue
        if len(row) != n_fields:
            raise InputError(path, f"line {number}", f"{n_fields} tab-separated fields"
                             + (f" ({', '.join(header)})" if header else ""), f"{len(row)}")
        first.append(row[text_at[0]])
        if task.pair:
            second.append(row[text_at[1]])
        raw.append(row[label_at])
    if not first:
        raise InputError(path, "rows", "at least one example", "none")
    labels = _parse_labels(raw, task, path, names[-1], first_line)
    return GlueSplit(task, split, first, second if task.pair else None, labels, str(path))


def _parse_labels(raw: list[str], task: GlueTask, path: Path, column: str, first_line: int) -> np.ndarray:
    if task.regression:
        values = np.empty(len(raw))
        for i, text in enumerate(raw):
            try:
                values[i] = float(text)
            except ValueError:
                raise InputError(path, f"{column} (line {i + first_line})", "a number from 0 to 5",
                                 repr(text)) from None
        _check_labels(values, task, path, column)
        return values
    index = {label: i for i, label in enumerate(task.labels)}
    bad = next((i for i, text in enumerate(raw) if text not in index), None)
    if bad is not None:
        raise InputError(path, f"{column} (line {bad + first_line})", f"one of {', '.join(task.labels)}",
                         repr(raw[bad]))
    return np.array([index[text] for text in raw], dtype=int)


def _check_labels(labels: np.ndarray, task: GlueTask, path, column: str) -> None:
    if task.regression:
        bad = ~np.isfinite(labels) | (labels < 0) | (labels > 5)
        if bad.any():
            raise InputError(path, column, "similarity scores from 0 to 5", f"{labels[bad][0]!r} "
                             f"({int(bad.sum())} out of range)")
    elif labels.size and (labels.min() < 0 or labels.max() >= len(task.labels)):
        raise InputError(path, column, f"class indices 0-{len(task.labels) - 1} ({', '.join(task.labels)})",
                         f"values from {labels.min()} to {labels.max()} (-1 marks an unlabelled test split)")
