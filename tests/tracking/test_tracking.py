"""Tracking: where the store is, and which hashes tag a stage's run."""

from __future__ import annotations

import hashlib

import yaml

from brainalign.tracking import flatten, input_hashes, main_repository, store_uri


def _pipeline(root, deps):
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": {"cmd": "true", "deps": deps}}}))
    (root / "params.yaml").write_text(yaml.safe_dump({"dataset": {"path": "raw"}}))


def test_main_repository_from_a_dvc_temporary_workspace(tmp_path, monkeypatch):
    """Truth: DVC runs --temp/--queue experiments in <repo>/.dvc/tmp/exps/<...>; the store stays in <repo>."""
    main = tmp_path / "project"
    copy = main / ".dvc" / "tmp" / "exps" / "standalone" / "tmpab12"
    (copy / "stages").mkdir(parents=True)
    _pipeline(main, [])
    _pipeline(copy, [])
    monkeypatch.delenv("BRAINALIGN_TRACKING_URI", raising=False)
    assert main_repository(copy / "stages") == main
    assert main_repository(main) == main
    assert store_uri(copy) == f"sqlite:///{main / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("BRAINALIGN_TRACKING_URI", "http://127.0.0.1:5000")
    assert store_uri(copy) == "http://127.0.0.1:5000"


def test_input_hashes_prefer_dvc_lock_for_outputs_of_earlier_stages(tmp_path):
    """Truth: an upstream output's md5 is read from dvc.lock; a source file's is its bytes' md5; params
    interpolate (${dataset.path}); a missing dependency says so."""
    _pipeline(tmp_path, ["data/features", "code.py", "${dataset.path}", "absent.txt"])
    (tmp_path / "code.py").write_text("print('hi')\n")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.txt").write_text("a")
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "encode": {"outs": [{"path": "data/features", "md5": "0123abcd.dir"}]},
        # The stage's own previous deps are stale and must not be used.
        "train": {"deps": [{"path": "code.py", "md5": "stale"}]}}}))
    hashes = input_hashes("train", tmp_path)
    assert hashes["data/features"] == "0123abcd.dir"
    assert hashes["code.py"] == hashlib.md5(b"print('hi')\n").hexdigest()
    listing = f"a.txt:{hashlib.md5(b'a').hexdigest()}\n".encode()
    assert hashes["raw"] == hashlib.md5(listing).hexdigest() + ".tree"
    assert hashes["absent.txt"] == "missing"


def test_input_hashes_take_earlier_outputs_inside_a_directory_from_dvc_lock(tmp_path):
    """Truth: a listing worked by hand. ``data/models`` is no stage's output, but ``data/models/a/x`` is:
    its entry is the md5 dvc.lock records (its bytes, which disagree, are not read), beside the md5 of
    the one file no stage wrote."""
    _pipeline(tmp_path, ["data/models"])
    (tmp_path / "data/models/a/x").mkdir(parents=True)
    (tmp_path / "data/models/a/x/weights.bin").write_bytes(b"not what dvc.lock says")
    (tmp_path / "data/models/notes.txt").write_text("n")
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "x": {"outs": [{"path": "data/models/a/x", "md5": "feed.dir"}]}}}))
    listing = f"a/x:feed.dir\nnotes.txt:{hashlib.md5(b'n').hexdigest()}\n".encode()
    assert input_hashes("train", tmp_path)["data/models"] == hashlib.md5(listing).hexdigest() + ".tree"


def test_flatten():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a.b": 1, "a.c": "[1, 2]", "d": "x"}
