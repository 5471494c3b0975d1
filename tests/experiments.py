"""Small experiments for the tests: a scratch directory with params, recordings, prepared data, features.

``make_experiment`` copies the repository's ``params.yaml`` into a directory, applies overrides, and runs the
``simulate``, ``validate``, ``prepare`` and ``encode`` stages there in-process (as ``dvc repro`` would run them),
so the model stages and the task library can be run on it. ``tiny_encoder`` writes a two-layer BERT with the
packaged MiniLM's (uncased BERT) vocabulary, freshly initialised: a real encoder that trains in milliseconds.
"""

from __future__ import annotations

import json
import functools
import shutil
from pathlib import Path

import yaml
from conftest import REPOSITORY, run_stage

DATASETS = ("fmri", "meg")


SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def shared_data(name: str) -> Path:
    """``../shared/data/<name>`` (real public data, read in place): a CI run fails without it; elsewhere the
    test is skipped with the reason."""
    import os

    import pytest

    path = SHARED_DATA / name
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"the real data {path} is absent (it must be beside the repository in CI)")
        pytest.skip(f"the real data {path} is absent (CI unset: not a failure here)")
    return path


def with_minilm_tokenizer(directory: Path) -> Path:
    """Copy the packaged MiniLM's tokenizer files into a model directory."""
    from brainalign.features.encoders import resolve_encoder

    packaged = Path(resolve_encoder("minilm"))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (packaged / name).exists():
            shutil.copy2(packaged / name, directory / name)
    return directory


def tiny_encoder(directory: Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A small untrained BERT saved as a local model directory (safetensors + the MiniLM tokenizer files)."""
    import torch
    from transformers import BertConfig, BertModel

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=256)
    BertModel(config).save_pretrained(directory, safe_serialization=True)
    return with_minilm_tokenizer(directory)


def tiny_causal(directory: Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A small untrained GPT-2 (with its LM head) saved as a local model directory, with MiniLM's tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=30522, n_embd=hidden, n_layer=layers, n_head=2, n_positions=512,
                        bos_token_id=101, eos_token_id=102)
    GPT2LMHeadModel(config).save_pretrained(directory, safe_serialization=True)
    return with_minilm_tokenizer(directory)


def set_params(root: Path, overrides: dict) -> dict:
    """Update ``root/params.yaml`` with ``{"section.key": value}`` overrides; returns the whole params."""
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        node = params
        for part in parents:
            node = node[part]
        if key not in node:
            raise KeyError(f"params.yaml has no {dotted}")
        node[key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def make_experiment(root: Path, overrides: dict, datasets: tuple[str, ...] = DATASETS) -> Path:
    """Simulate, validate, prepare and encode an experiment in ``root`` with the params ``overrides``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPOSITORY / "params.yaml", root / "params.yaml")
    set_params(root, overrides)
    for stage, args in [("simulate", ())] + [(s, (d,)) for d in datasets for s in ("validate", "prepare", "encode")]:
        code, stderr = run_stage(root, stage, *args)
        assert code == 0, f"{stage} {args}: {stderr}"
    return root


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


@functools.lru_cache(maxsize=1)
def smollm2_tokenizer():
    """SmolLM2's tokenizer from the converted cache (read once per process: about 3 s a load)."""
    from transformers import AutoTokenizer

    from brainalign.features.encoders import smollm2_directory

    return AutoTokenizer.from_pretrained(str(smollm2_directory()), local_files_only=True)


def tiny_zoo_model(kind: str, tokenizer, layers: int = 3, seed: int = 0):
    """A small fresh model of each family (``gpt2``, ``llama``: causal; ``bert``: masked) with a real
    tokenizer, as the zoo loads models."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    from brainalign.benchmarks.zoo import LoadedModel, ZooModel

    vocab = len(tokenizer)
    torch.manual_seed(seed)
    model = {
        "gpt2": lambda: GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=layers, n_head=2, vocab_size=vocab)),
        "llama": lambda: LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                                                      num_attention_heads=2, num_key_value_heads=1, vocab_size=vocab,
                                                      bos_token_id=tokenizer.bos_token_id)),
        "bert": lambda: BertForMaskedLM(BertConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                                                   intermediate_size=64, vocab_size=vocab)),
    }[kind]().eval()
    family = "masked" if kind == "bert" else "causal"
    return LoadedModel(ZooModel(f"tiny-{kind}", family, False, None, f"tiny {kind}", ""), tokenizer, model)


def real_pereira_texts() -> tuple[list[str], "np.ndarray", "np.ndarray"]:
    """The real Pereira 2018 experiment 2 (read in place from ../shared/data): its 384 sentences in order, the
    1-based passage of each, and the 1-based topic of each passage (topics numbered alphabetically)."""
    import numpy as np
    import pandas as pd

    table = pd.read_csv(shared_data("pereira2018") / "Pereira2018_stimulus_set_20220209.csv")
    table = table[table["experiment"] == "384sentences"].sort_values("sentence_num")
    passages = table["passage_index"].to_numpy()
    topic_of = dict(zip(table["passage_index"], table["passage_category"]))
    names = sorted(set(topic_of.values()))
    topics = np.array([names.index(topic_of[p]) + 1 for p in sorted(topic_of)])
    return table["sentence"].tolist(), passages, topics


def run_resuming(con, tags: dict[str, dict[str, str]], dead: str) -> tuple[str, float]:
    """The one MLflow run that resumed the FAILED run ``dead`` (tagged and linked to it, FINISHED), and the epoch
    it resumed at; ``tags`` maps every task run's id to its tags, ``con`` is the MLflow SQLite store."""
    resuming = [run for run in tags if tags[run].get("resumes_run") == dead]
    assert len(resuming) == 1, resuming
    run = resuming[0]
    assert tags[run]["outcome"] == "resumed" and dead in tags[run]["mlflow.note.content"]
    assert con.execute("select status from runs where run_uuid = ?", (run,)).fetchone()[0] == "FINISHED"
    resumed_at = con.execute("select value from metrics where run_uuid = ? and key = 'resumed_at_epoch'",
                             (run,)).fetchone()[0]
    return run, resumed_at
