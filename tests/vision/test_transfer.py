"""The transfer matrix between ROI cores and the asymmetry index: hand-worked index, a planted two-ROI asymmetry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from brainalign.errors import ConfigError, InputError
from brainalign.vision.evaluation import voxel_correlation
from brainalign.vision.gnet import GNetSettings, Participant, predict, train_gnet, train_gnet8r
from brainalign.vision.networks import load_network
from brainalign.vision.transfer import asymmetry_index, transfer_matrix

SIZE = 64


def frame(values, rois) -> pd.DataFrame:
    return pd.DataFrame(np.asarray(values, dtype=float), index=pd.Index(rois, name="source"),
                        columns=pd.Index(rois, name="target"))


# --- asymmetry index ------------------------------------------------------------------------------------------------

def test_asymmetry_index_hand_worked_three_rois():
    """Truth, by hand. Order A, B, C; rows are source cores. Source after target (the seed's "up"): B->A (d=1)
    -0.01, C->A (d=2) -0.02, C->B (d=1) -0.01: slope a_up = (-0.01 - 0.04 - 0.01) / (1 + 4 + 1) = -0.01.
    Source before target: A->B -0.03, A->C (d=2) -0.06, B->C -0.03: a_down = (-0.03 - 0.12 - 0.03) / 6 = -0.03.
    alpha = (-0.01 + 0.03) / (0.01 + 0.03) = 0.5."""
    matrix = frame([[0.0, -0.03, -0.06],
                    [-0.01, 0.0, -0.03],
                    [-0.02, -0.01, 0.0]], ["A", "B", "C"])
    assert asymmetry_index(matrix, order=("A", "B", "C")) == pytest.approx(0.5, abs=1e-12)


def test_asymmetry_index_uses_distance_slopes_not_means():
    """Truth, by hand: the seed fits a slope through the origin against the distance in the order, so far pairs
    weigh more than in a mean. Above (source after target): B->A -0.01 (d=1), C->A -0.04 (d=2), C->B -0.01 (d=1):
    a_up = (-0.01 - 0.08 - 0.01) / 6 = -1/60. Below, all -0.01: a_down = (-0.01 - 0.02 - 0.01) / 6 = -1/150.
    alpha = (-1/60 + 1/150) / (1/60 + 1/150) = -3/7 (means, -0.02 and -0.01, would give -1/3)."""
    matrix = frame([[0.0, -0.01, -0.01],
                    [-0.01, 0.0, -0.01],
                    [-0.04, -0.01, 0.0]], ["A", "B", "C"])
    assert asymmetry_index(matrix, order=("A", "B", "C")) == pytest.approx(-3 / 7, abs=1e-12)


def test_asymmetry_index_two_rois_order_subset_and_bad_matrices():
    """Truth, by hand: with two ROIs the slopes are the entries: (-0.01 + 0.05) / 0.06 = 2/3; only the ROIs of
    ``order`` enter, in its order; an all-zero matrix has no asymmetry (NaN); a missing ROI or a NaN entry is an
    InputError naming the axis."""
    matrix = frame([[0.0, -0.05, 9.0],
                    [-0.01, 0.0, 9.0],
                    [9.0, 9.0, 0.0]], ["V1", "V2", "extra"])
    assert asymmetry_index(matrix, order=("V1", "V2")) == pytest.approx(2 / 3, abs=1e-12)
    assert asymmetry_index(matrix.loc[["V2", "V1", "extra"], ["extra", "V1", "V2"]], order=("V1", "V2")) \
        == pytest.approx(2 / 3, abs=1e-12)
    assert np.isnan(asymmetry_index(frame(np.zeros((2, 2)), ["V1", "V2"]), order=("V1", "V2")))
    with pytest.raises(InputError, match="missing"):
        asymmetry_index(matrix)
    with pytest.raises(InputError, match="finite"):
        asymmetry_index(frame([[0.0, np.nan], [0.1, 0.0]], ["V1", "V2"]), order=("V1", "V2"))
    with pytest.raises(ConfigError):
        asymmetry_index(matrix, order=("V1",))


# --- planted transfer -----------------------------------------------------------------------------------------------

def smooth_images(rng: np.random.Generator, n: int, size: int = SIZE, grid: int = 5) -> np.ndarray:
    """Random colour fields smooth over ~size/grid pixels."""
    coarse = torch.from_numpy(rng.uniform(0, 255, (n, 3, grid, grid))).float()
    fine = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)
    return fine.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def prf_features(images: np.ndarray, kinds: list[str], rng: np.random.Generator) -> np.ndarray:
    """Each voxel a Gaussian pRF (random centre, width) over a luminance ("L": (R + G + B) / 3) or red-green
    ("C": R - G) map, or their sum ("LC"); z-scored over images."""
    x = images.astype(np.float64) / 255.0
    maps = {"L": x.mean(axis=3), "C": x[..., 0] - x[..., 1]}
    grid = np.arange(images.shape[1])
    out = np.zeros((len(images), len(kinds)))
    for v, kind in enumerate(kinds):
        cy, cx = rng.uniform(0.25, 0.75, size=2) * images.shape[1]
        sigma = rng.uniform(0.08, 0.15) * images.shape[1]
        g = np.exp(-((grid[:, None] - cy) ** 2 + (grid[None, :] - cx) ** 2) / (2 * sigma**2))
        g /= g.sum()
        parts = [(maps[k] * g).sum(axis=(1, 2)) for k in kind]
        out[:, v] = sum((p - p.mean()) / p.std() for p in parts)
    return (out - out.mean(0)) / out.std(0)


@pytest.fixture(scope="module")
def planted():
    """ROI A's voxels see luminance only; ROI B's see luminance plus red-green, which a core trained on A has no
    reason to keep. One participant; 400 training trials and 150 validation images."""
    rng = np.random.default_rng(11)
    images = smooth_images(rng, 550)
    train, valid = np.arange(400), np.arange(400, 550)
    kinds = {"A": ["L"] * 8, "B": ["L", "C"] * 4}
    noise = 0.4
    training, validation = {}, {}
    for roi, voxel_kinds in kinds.items():
        truth = prf_features(images, voxel_kinds, rng)
        responses = (truth + noise * rng.standard_normal(truth.shape)).astype(np.float32)
        training[roi] = [Participant("subj01", train, responses[train])]
        validation[roi] = [Participant("subj01", valid, responses[valid])]
    settings = GNetSettings(image_size=SIZE, widths=(2, 1), dropout=0.1, epochs=8, batch_size=25,
                            learning_rate=1e-2, progress=False, device="cpu")
    network = load_network("alexnet", seed=0)
    models = train_gnet8r(images, training, settings, network)
    matrix, details = transfer_matrix(models, images, training, validation, settings)
    return images, training, validation, settings, models, matrix, details


def test_planted_asymmetry_has_the_simulated_sign(planted):
    """Truth: the planted design. B's core carries what A needs (luminance), A's core lacks B's red-green, so
    entry A->B (A's core predicting B) is below entry B->A, and the asymmetry index with order (A, B) is positive
    (later cores transfer better to earlier ROIs: the published sign). A readout retrained on its own ROI's frozen
    core comes close to the jointly trained GNet8r (the diagonal is near 0)."""
    _, _, _, _, models, matrix, details = planted
    assert list(matrix.index) == ["A", "B"] and list(matrix.columns) == ["A", "B"]
    assert abs(matrix.loc["A", "A"]) < 0.05 and abs(matrix.loc["B", "B"]) < 0.05, matrix
    assert matrix.loc["A", "B"] < matrix.loc["B", "A"] - 0.05, matrix
    assert asymmetry_index(matrix, order=("A", "B")) > 0.3
    # the cores were good at their own ROIs to begin with
    for roi in ("A", "B"):
        assert np.median(details.own_r[roi]["subj01"]) > 0.5, details.own_r
    pd.testing.assert_frame_equal(details.per_participant["subj01"], matrix)


def test_entries_are_validation_r_differences(planted):
    """Truth: the validation trials, scored here through predict() and voxel_correlation: the target's own GNet8r
    r, and each entry = mean over the target's voxels of r(source core, new readout) - r(own GNet8r)."""
    images, _, validation, _, models, matrix, details = planted
    for target in ("A", "B"):
        v = validation[target][0]
        own = voxel_correlation(v.responses, predict(models[target].model, images[v.image_index], "subj01"))
        np.testing.assert_allclose(details.own_r[target]["subj01"], own, atol=1e-6)
        for source in ("A", "B"):
            expected = np.mean(details.r[(source, target)]["subj01"] - own)
            assert matrix.loc[source, target] == pytest.approx(expected, abs=1e-6)


def test_frozen_core_training_leaves_the_core_and_mean_untouched(planted):
    """Truth: the source model. New readouts trained on a frozen core: the core's weights and BatchNorm
    statistics, the pre-filter and the training mean are the source's, bit for bit, and the source is unchanged."""
    images, training, _, settings, models, _, _ = planted
    source = models["A"].model
    before = {k: v.clone() for k, v in source.state_dict().items()}
    result = train_gnet(images, training["B"], settings, core=source)
    after = result.model.state_dict()
    for key, value in before.items():
        assert torch.equal(source.state_dict()[key], value), key
        if not key.startswith("readouts."):
            assert torch.equal(after[key], value), key
    assert result.model.readout_names == ["subj01"]
    assert predict(result.model, images[:3], "subj01").shape == (3, 8)


def test_transfer_refuses_mismatched_rois_and_readouts(planted):
    images, training, validation, settings, models, _, _ = planted
    with pytest.raises(ConfigError, match="same ROIs"):
        transfer_matrix(models, images, {"A": training["A"]}, validation, settings)
    renamed = {**validation, "B": [Participant("subj02", v.image_index, v.responses) for v in validation["B"]]}
    with pytest.raises(InputError, match="training readouts"):
        transfer_matrix(models, images, training, renamed, settings)


def test_rows_trained_apart_assemble_into_the_matrix_by_hand():
    """Rows come from separate tasks: the assembled entries are the hand-computed mean differences, pooled over
    participants' voxels, and a missing row fails naming it."""
    from brainalign.vision.transfer import TransferDetails, assemble_matrix

    details = TransferDetails()
    details.own_r = {"V1": {"a": np.array([0.5, 0.7]), "b": np.array([0.6])},
                     "V2": {"a": np.array([0.4]), "b": np.array([0.2, 0.3])}}
    details.r = {("V1", "V1"): {"a": np.array([0.5, 0.7]), "b": np.array([0.6])},
                 ("V1", "V2"): {"a": np.array([0.1]), "b": np.array([0.2, 0.0])},
                 ("V2", "V1"): {"a": np.array([0.4, 0.4]), "b": np.array([0.3])},
                 ("V2", "V2"): {"a": np.array([0.4]), "b": np.array([0.3, 0.3])}}
    matrix, details = assemble_matrix(details, ["V1", "V2"])
    # V1 -> V2: differences -0.3 (a), 0.0 and -0.3 (b): mean -0.2; V2 -> V1: -0.1, -0.3, -0.3: mean -0.7 / 3
    np.testing.assert_allclose(matrix.to_numpy(), [[0.0, -0.2], [-0.7 / 3, 0.1 / 3]], atol=1e-12)
    np.testing.assert_allclose(details.per_participant["b"].to_numpy(), [[0.0, -0.15], [-0.3, 0.05]], atol=1e-12)
    del details.r[("V2", "V1")]
    with pytest.raises(InputError, match="V2->V1"):
        assemble_matrix(details, ["V1", "V2"])
