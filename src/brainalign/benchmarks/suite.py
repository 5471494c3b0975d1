"""The benchmarks: a dataset (a registered loader and its options), a metric and a ceiling, by name.

As Brain-Score language's ``benchmark_registry``, one entry per benchmark; ``params.yaml``'s
``benchmarks.suite`` names the entries it scores and points each at its files (the simulated twins by
default, a release directory for real data). The published values are Schrimpf et al. 2021's and
Brain-Score language 2.3.0's (reference section 7), shown beside ours in the report; they are never used
in a computation.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from brainalign.data.benchmark_sources import BENCHMARK_SOURCES
from brainalign.errors import ConfigError
from brainalign.registry import Registry

KINDS = ("neural", "reading_times")
CEILINGS = ("extrapolation", "split_half")


@dataclass(frozen=True)
class Benchmark:
    """What a benchmark is made of.

    Attributes
    ----------
    name : str
        Brain-Score's identifier (``Pereira2018.384sentences``).
    source : str
        The loader (:data:`brainalign.data.presentations.BENCHMARK_SOURCES`).
    kind : {"neural", "reading_times"}
        ``neural``: a cross-validated linear map from a layer to every channel; ``reading_times``: the
        correlation of a causal model's surprisal with the mean reading time (no fitted map, no layer).
    metric : str
        The default metric (:data:`brainalign.benchmarks.metrics.METRICS`) of a neural benchmark.
    ceiling : {"extrapolation", "split_half"}
        Brain-Score's subject-extrapolation ceiling (neural) or the readers' split-half ceiling.
    options : dict
        The loader's default options.
    subsets_per_k, heldout_participants : int, optional
        The extrapolation ceiling's sampling (Brain-Score's Pereira ceiling draws 10 subsets per pool size
        and 5 held-out participants; None: all).
    published : dict
        Published ceiling and ceiling-normalised best-layer scores, for the report.
    """

    name: str
    source: str
    kind: str
    metric: str
    ceiling: str
    options: dict[str, Any] = field(default_factory=dict)
    subsets_per_k: int | None = None
    heldout_participants: int | None = None
    published: dict[str, float] = field(default_factory=dict)


BENCHMARKS: Registry[Benchmark] = Registry("benchmark", "benchmarks.suite.<name>.benchmark")


def _register(benchmark: Benchmark) -> None:
    BENCHMARKS.register(benchmark.name)(benchmark)


_PEREIRA_SCORES = {"gpt2-xl": 1.04, "gpt2": 0.83, "bert-large": 0.75, "glove": 0.13}
_register(Benchmark("Pereira2018.384sentences", "pereira2018", "neural", "ridge_pearsonr", "extrapolation",
                    {"experiment": "384sentences"}, subsets_per_k=10, heldout_participants=5,
                    published={"ceiling": 0.3634, **_PEREIRA_SCORES}))
_register(Benchmark("Pereira2018.243sentences", "pereira2018", "neural", "ridge_pearsonr", "extrapolation",
                    {"experiment": "243sentences"}, subsets_per_k=10, heldout_participants=5,
                    published={"ceiling": 0.3538, **_PEREIRA_SCORES}))
_register(Benchmark("Fedorenko2016", "fedorenko2016", "neural", "ridge_pearsonr", "extrapolation",
                    published={"gpt2-xl": 0.82, "gpt2": 0.74, "bert-large": 0.07, "glove": 0.02}))
_register(Benchmark("Blank2014", "blank2014", "neural", "ridge_pearsonr", "extrapolation",
                    published={"ceiling": 0.2103, "gpt2-xl": 0.32, "gpt2": 0.20, "bert-large": 0.13,
                               "glove": -0.05}))
_register(Benchmark("Futrell2018", "futrell2018", "reading_times", "surprisal", "split_half",
                    published={"ceiling": 0.858, "gpt2-xl": 0.87, "gpt2": 0.70, "bert-large": 0.75,
                               "glove": 0.39, "distilgpt2 (raw, Brain-Score's test)": 0.361}))

SUITE_KEYS = ("benchmark", "path", "options", "metric", "source")


def suite_entry(params: dict, key: str) -> tuple[Benchmark, dict[str, Any]]:
    """The benchmark ``benchmarks.suite.<key>`` names and its settings (path, options, metric), checked."""
    suite = params.get("benchmarks", {}).get("suite", {})
    if key not in suite or not isinstance(suite[key], dict):
        raise ConfigError(f"params.yaml: benchmarks.suite: expected an entry {key!r}, found "
                          f"{sorted(suite) if isinstance(suite, dict) else suite!r}")
    entry = suite[key]
    unknown = sorted(set(entry) - set(SUITE_KEYS))
    if unknown or "benchmark" not in entry or "path" not in entry:
        raise ConfigError(f"params.yaml: benchmarks.suite.{key}: expected keys benchmark, path and optionally "
                          f"options, metric, source; found {sorted(entry)}")
    benchmark = BENCHMARKS.get(entry["benchmark"])
    source = entry.get("source") or benchmark.source
    loader = BENCHMARK_SOURCES.get(source)
    # A benchmark read from another source (a Brain-Score assembly) takes that loader's options only.
    options = {**(benchmark.options if source == benchmark.source else {}), **(entry.get("options") or {})}
    accepted = [name for name in inspect.signature(loader).parameters if name != "path"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"params.yaml: benchmarks.suite.{key}.options: expected options of the {source} loader "
                          f"({', '.join(accepted)}), found {', '.join(unknown)}")
    metric = entry.get("metric") or benchmark.metric
    return benchmark, {"path": str(entry["path"]), "options": options, "metric": metric, "source": source}
