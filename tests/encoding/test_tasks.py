"""What decides reuse of encoding tasks: a local model's files, the words and the settings, not names alone."""

from experiments import tiny_encoder

from brainalign.encoding.tasks import Extraction, FeatureTask


def test_a_changed_local_model_gives_a_new_feature_key(tmp_path):
    model = tiny_encoder(tmp_path / "model", seed=0)
    words = ("The", "cat", "sat.")
    before = FeatureTask(str(model), words, Extraction()).key
    assert FeatureTask(str(model), words, Extraction()).key == before  # the same files: reused
    tiny_encoder(model, seed=1)  # other weights in the same directory
    after = FeatureTask(str(model), words, Extraction()).key
    assert after != before
    assert FeatureTask(str(model), words + ("Then",), Extraction()).key != after
    assert FeatureTask(str(model), words, Extraction(context=5)).key != after
    assert FeatureTask("random-8", words, Extraction()).key != FeatureTask("random-8", words, Extraction(seed=1)).key
