"""The vision experiment as the stages run it: params.yaml's ``vision`` section, the data, and the tasks.

Every participant of ``vision.subjects`` is read from the NSD root ``vision.data`` (the real release or the
simulated twin: the same loader, :func:`brainalign.vision.nsd.load_recording`). The shared images' trials are
the validation set, never trained on; the other trials train, their last ``holdout`` share choosing pRFs,
penalties and epochs. Each model is a task of the store (:mod:`brainalign.runs.store`): a finished one is
reused, an interrupted GNet resumes from its per-epoch checkpoint, and a changed input or setting gets a new key.

- :class:`FwrfTask`: one participant's fwRF (:class:`~brainalign.vision.fwrf.FwRF`) on the feature maps of
  ``vision.network``.
- :class:`GNetTask`: GNet8j (one core, a readout per participant over all the ROIs' voxels) or one ROI's GNet8r.
- :class:`TransferTask`: the transfer matrix over the GNet8r cores (:func:`~brainalign.vision.transfer.transfer_matrix`).

:func:`score_rows` turns a model's validation predictions into rows of the one score table (``pearson_r``,
``noise_ceiling`` and ``explained_fraction`` per voxel, with the voxel's ROI).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from brainalign.config.params import section
from brainalign.errors import ConfigError, InputError
from brainalign.files import atomic_path, write_json
from brainalign.runs.code import code_key
from brainalign.runs.spec import StoredTask
from brainalign.vision.evaluation import explained_fraction, noise_ceiling, voxel_correlation
from brainalign.vision.nsd import ROI_LABELS, NsdLayout, VisionRecording, load_recording, read_images

KEYS = ["data", "dataset", "subjects", "sessions", "rois", "betas", "network", "weights", "network_seed", "device",
        "workers", "fwrf", "gnet", "transfer"]
FWRF_KEYS = ["layers", "n_features", "alphas", "prf_sizes", "min_size", "max_size", "spacing", "holdout",
             "candidate_batch", "dtype"]
GNET_KEYS = ["image_size", "widths", "dropout", "epochs", "batch_size", "learning_rate", "field_learning_rate", "l1",
             "holdout", "seed", "amp"]
TRANSFER_KEYS = ["epochs"]
FORMATS = ("hdf5", "nifti")


@dataclass(frozen=True)
class VisionPlan:
    """params.yaml's ``vision`` section, checked (``params.yaml`` comments say what each means)."""

    data: str
    dataset: str
    subjects: tuple[int, ...] | None
    sessions: tuple[int, ...] | None
    rois: tuple[str, ...]
    betas: str
    network: str
    weights: str | None
    network_seed: int
    device: str
    workers: int
    fwrf: dict
    gnet: dict
    transfer: dict


def vision_plan(params: dict) -> VisionPlan:
    """The ``vision`` section of ``params`` as a :class:`VisionPlan`, each value checked."""
    values = section(params, "vision", KEYS)
    fwrf = section(values, "fwrf", FWRF_KEYS, path="params.yaml: vision")
    gnet = section(values, "gnet", GNET_KEYS, path="params.yaml: vision")
    transfer = section(values, "transfer", TRANSFER_KEYS, path="params.yaml: vision")
    rois = values["rois"]
    if not isinstance(rois, list) or not rois or any(r not in ROI_LABELS for r in rois) or len(set(rois)) != len(rois):
        raise ConfigError(f"params.yaml: vision.rois: expected distinct ROIs among {list(ROI_LABELS)}, found {rois!r}")
    if values["betas"] not in FORMATS:
        raise ConfigError(f"params.yaml: vision.betas: expected one of {FORMATS}, found {values['betas']!r}")

    def numbers(key: str) -> tuple[int, ...] | None:
        value = values[key]
        if value == "all":
            return None
        if not isinstance(value, list) or not value or any(not isinstance(v, int) or v < 1 for v in value):
            raise ConfigError(f"params.yaml: vision.{key}: expected 'all' or a list of numbers >= 1, found {value!r}")
        return tuple(value)

    alphas = fwrf["alphas"]
    if not (isinstance(alphas, list) and len(alphas) == 3 and alphas[0] <= alphas[1] and int(alphas[2]) >= 1):
        raise ConfigError(f"params.yaml: vision.fwrf.alphas: expected [lowest log10, highest log10, count], "
                          f"found {alphas!r}")
    return VisionPlan(data=str(values["data"]), dataset=str(values["dataset"]), subjects=numbers("subjects"),
                      sessions=numbers("sessions"), rois=tuple(rois), betas=values["betas"],
                      network=str(values["network"]),
                      weights=None if values["weights"] in (None, "") else str(values["weights"]),
                      network_seed=int(values["network_seed"]), device=str(values["device"]),
                      workers=_workers(values["workers"]), fwrf=dict(fwrf),
                      gnet=dict(gnet), transfer=dict(transfer))


def _workers(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"params.yaml: vision.workers: expected a whole number >= 1, found {value!r}")
    return value


def executor(plan: VisionPlan):
    """The engine's executor (:func:`brainalign.runs.engine.executor_for`): locally, ``vision.workers`` forked
    processes on a CPU, one after another on a GPU; on Ray, each task in a fresh worker (they train)."""
    from brainalign.runs.engine import executor_for

    return executor_for(plan.workers, _device(plan), fresh_process=True)


@dataclass
class VisionData:
    """The participants' recordings and every image their trials show.

    Attributes
    ----------
    recordings : list of VisionRecording
    images : ndarray of uint8, shape (n_images, H, W, 3)
        The images the trials show, each once, in ascending NSD id.
    ids : ndarray of int64
        The NSD id (0-based) of each row of ``images``.
    md5 : str
        A digest of the images and every recording (the tasks' input hash).
    """

    recordings: list[VisionRecording]
    images: np.ndarray
    ids: np.ndarray
    md5: str

    def rows(self, recording: VisionRecording) -> np.ndarray:
        """The row of :attr:`images` each trial of ``recording`` shows."""
        return np.searchsorted(self.ids, recording.images)


def subjects_of(plan: VisionPlan) -> list[int]:
    """``vision.subjects``, or every ``subjNN`` folder of the betas when it says ``all``."""
    if plan.subjects is not None:
        return list(plan.subjects)
    root = NsdLayout(plan.data).betas_dir(1).parents[2]
    found = sorted(int(p.name[4:]) for p in root.glob("subj[0-9][0-9]") if p.is_dir()) if root.is_dir() else []
    if not found:
        raise InputError(root, "subjNN", "participant folders of the NSD betas", "none")
    return found


def read_data(plan: VisionPlan) -> VisionData:
    """Every chosen participant's ROI voxels and trials, and the images those trials show."""
    recordings = [load_recording(plan.data, subject, list(plan.sessions) if plan.sessions else None, plan.rois,
                                 fmt=plan.betas) for subject in subjects_of(plan)]
    ids = np.unique(np.concatenate([r.images for r in recordings]))
    images = read_images(NsdLayout(plan.data), ids)
    digest = hashlib.md5(images.tobytes())
    for r in recordings:
        for array in (r.responses, r.images, r.voxels, r.ncsnr, r.shared):
            digest.update(np.ascontiguousarray(array).tobytes())
    return VisionData(recordings, images, ids, digest.hexdigest())


def splits(recording: VisionRecording) -> tuple[np.ndarray, np.ndarray]:
    """Training trials (not shared; in trial order, so the last ones are the holdout) and validation trials."""
    train, validation = np.flatnonzero(~recording.shared), np.flatnonzero(recording.shared)
    if not len(train) or not len(validation):
        raise InputError(f"participant {recording.subject}", "shared",
                         "both shared (validation) and other (training) trials",
                         f"{len(validation)} shared and {len(train)} other trials")
    return train, validation


def readout_name(subject: int) -> str:
    return f"subj{subject:02d}"


# ------------------------------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class VisionTask(StoredTask):
    """What every vision task shares: the data's digest, the network and the settings."""

    data_md5: str
    network: str
    weights: str | None
    network_seed: int
    settings: tuple

    @cached_property
    def spec(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "settings"}, "settings": dict(self.settings),
                "kind": type(self).__name__, "code": code_key(__name__)}

    def params(self) -> dict:
        return {"network": self.network, "weights": self.weights or "untrained", "network_seed": self.network_seed,
                **dict(self.settings)}

    def tags(self) -> dict[str, str]:
        return {"input_md5.vision_data": self.data_md5}


@dataclass(frozen=True)
class FwrfTask(VisionTask):
    subject: int = 0
    namespace = "fwrf"

    @property
    def label(self) -> str:
        return f"fwrf/subj{self.subject:02d}"


@dataclass(frozen=True)
class GNetTask(VisionTask):
    roi: str | None = None  # None: GNet8j over every ROI
    subjects: tuple[int, ...] = ()
    namespace = "gnet"

    @property
    def label(self) -> str:
        return "gnet8j" if self.roi is None else f"gnet8r/{self.roi}"


@dataclass(frozen=True)
class TransferTask(VisionTask):
    """One row of the transfer matrix: new readouts for every ROI of ``targets`` on ``roi``'s frozen core."""

    roi: str = ""
    core: str = ""  # the source's GNet8r task id
    targets: tuple[str, ...] = ()
    namespace = "gnet-transfer"

    @property
    def label(self) -> str:
        return f"transfer/{self.roi}"


def _frozen(settings: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in settings.items()))


def tasks_for(plan: VisionPlan, data: VisionData) -> dict[str, Any]:
    """The plan's tasks: ``fwrf`` (per participant), ``gnet8j``, ``gnet8r`` (per ROI) and ``transfer`` (per source
    ROI: a row of the matrix)."""
    common = dict(data_md5=data.md5, network=plan.network, weights=plan.weights, network_seed=plan.network_seed)
    subjects = tuple(r.subject for r in data.recordings)
    gnet = _frozen(plan.gnet)
    gnet8r = {roi: GNetTask(**common, settings=gnet, roi=roi, subjects=subjects) for roi in plan.rois}
    transfer = _frozen({**plan.gnet, **{f"transfer_{k}": v for k, v in plan.transfer.items()}})
    return {"fwrf": [FwrfTask(**common, settings=_frozen(plan.fwrf), subject=s) for s in subjects],
            "gnet8j": GNetTask(**common, settings=gnet, roi=None, subjects=subjects),
            "gnet8r": gnet8r,
            "transfer": {roi: TransferTask(**common, settings=transfer, roi=roi, core=gnet8r[roi].id,
                                           targets=tuple(plan.rois)) for roi in plan.rois}}


# ------------------------------------------------------------------------------------------------- work


def _device(plan: VisionPlan) -> str:
    from brainalign.ridge import resolve_device

    return resolve_device(plan.device)


def _network(plan: VisionPlan):
    from brainalign.vision.networks import load_network

    return load_network(plan.network, plan.weights, plan.network_seed)


def fwrf_work(plan: VisionPlan, data: VisionData, progress: bool = True):
    """The store's work function for :class:`FwrfTask`: fit on the training trials, predict the validation
    trials; writes ``predictions.npy`` (validation trials x voxels) and ``prf.npz``."""
    from brainalign.vision.fwrf import FwRF, prf_grid
    from brainalign.vision.networks import feature_maps

    network = _network(plan)
    settings = plan.fwrf
    # Once, before any worker forks: every participant's model reads the same images' maps.
    maps = feature_maps(network, data.images, list(settings["layers"]), device=_device(plan))

    def work(task: FwrfTask, directory: Path, on_epoch=None) -> dict:
        started = time.perf_counter()
        recording = next(r for r in data.recordings if r.subject == task.subject)
        train, validation = splits(recording)
        rows = data.rows(recording)
        low, high, count = settings["alphas"]
        model = FwRF(grid=prf_grid(int(settings["prf_sizes"]), float(settings["min_size"]),
                                   float(settings["max_size"]), float(settings["spacing"])),
                     alphas=np.logspace(float(low), float(high), int(count)), holdout=float(settings["holdout"]),
                     n_features=int(settings["n_features"]), candidate_batch=int(settings["candidate_batch"]),
                     device=_device(plan), dtype=str(settings["dtype"]), progress=progress)
        model.fit(maps, recording.responses[train], rows[train])
        predictions = model.predict(maps, rows[validation])
        np.save(directory / "predictions.npy", predictions)
        np.savez(directory / "prf.npz", prf=model.prf_, alpha=model.alpha_, holdout_r=model.holdout_r_)
        seconds = time.perf_counter() - started
        return {"history": [], "seconds": seconds, "resumed_at_epoch": 0,
                "examples_per_second": len(train) / max(seconds, 1e-9), "provenance": network.provenance,
                "n_candidates": int(len(model.grid_)),
                "median_r": float(np.median(voxel_correlation(recording.responses[validation], predictions)))}

    return work


def gnet_participants(data: VisionData, roi: str | None, part: str) -> list:
    """GNet's readouts: per participant, its ``part`` ("train" or "validation") trials of ``roi``'s voxels (every
    ROI's when None)."""
    from brainalign.vision.gnet import Participant

    out = []
    for recording in data.recordings:
        train, validation = splits(recording)
        trials = train if part == "train" else validation
        voxels = np.ones(len(recording.rois), bool) if roi is None else recording.rois == roi
        if not voxels.any():
            raise InputError(f"participant {recording.subject}", "rois", f"voxels in {roi}", "none")
        # One readout per participant in every model (GNet8j's covers all ROIs; each GNet8r core has its own), so
        # the transfer matrix can be read per participant across ROIs.
        out.append(Participant(readout_name(recording.subject), data.rows(recording)[trials],
                               np.ascontiguousarray(recording.responses[np.ix_(trials, voxels)])))
    return out


def gnet_settings(plan: VisionPlan, progress: bool, epochs: int | None = None):
    from brainalign.vision.gnet import GNetSettings

    values = dict(plan.gnet)
    values["widths"] = tuple(values["widths"])
    if epochs is not None:
        values["epochs"] = int(epochs)
    return GNetSettings(**values, device=plan.device, progress=progress)


def gnet_work(plan: VisionPlan, data: VisionData, progress: bool = True):
    """The store's work function for :class:`GNetTask`: train (resuming from the task's checkpoint), write
    ``gnet.safetensors`` and ``predictions.npz`` (validation trials x voxels per readout)."""
    from brainalign.vision.gnet import save_gnet, train_gnet

    def work(task: GNetTask, directory: Path, on_epoch=None) -> dict:
        from brainalign.finetuning.model import read_checkpoint

        started = time.perf_counter()
        checkpoint = directory / "checkpoint.safetensors"
        resumed_at = len(read_checkpoint(checkpoint)[1]["history"]) if checkpoint.exists() else 0
        result = train_gnet(data.images, gnet_participants(data, task.roi, "train"), gnet_settings(plan, progress),
                            prefilter=_network(plan), checkpoint=checkpoint, on_epoch=on_epoch)
        save_gnet(directory / "gnet.safetensors", result)
        seconds = time.perf_counter() - started
        trained = [r for r in result.history if not r.get("replayed")]
        return {"history": result.history, "seconds": seconds, "resumed_at_epoch": resumed_at,
                "examples_per_second": float(np.mean([r["images_per_second"] for r in trained])) if trained else 0.0,
                "best_epoch": result.best_epoch, "provenance": result.provenance}

    return work


def transfer_work(plan: VisionPlan, data: VisionData, store, progress: bool = True):
    """The store's work function for :class:`TransferTask`: one row of the matrix, written as ``r.npz`` (the
    validation r of every target voxel, ``<target>/<readout>``) and ``best_epochs.json``; each training resumes
    from its checkpoint in ``entries/``."""
    from brainalign.vision.gnet import load_gnet
    from brainalign.vision.transfer import transfer_row

    def work(task: TransferTask, directory: Path, on_epoch=None) -> dict:
        started = time.perf_counter()
        core = load_gnet(store.directory(task.core) / "gnet.safetensors", device=_device(plan))
        training = {roi: gnet_participants(data, roi, "train") for roi in task.targets}
        validation = {roi: gnet_participants(data, roi, "validation") for roi in task.targets}
        (directory / "entries").mkdir(exist_ok=True)
        r, epochs = transfer_row(core, data.images, training, validation,
                                 gnet_settings(plan, progress, epochs=int(plan.transfer["epochs"])),
                                 checkpoint_dir=directory / "entries", name=task.roi)
        with atomic_path(directory / "r.npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **{f"{target}/{name}": values for target, row in r.items()
                                for name, values in row.items()})
        write_json(directory / "best_epochs.json", epochs)
        seconds = time.perf_counter() - started
        return {"history": [], "seconds": seconds, "resumed_at_epoch": 0, "examples_per_second": 0.0,
                "best_epochs": epochs}

    return work


def transfer_matrix_of(plan: VisionPlan, data: VisionData, store, tasks: dict[str, TransferTask],
                       gnet8r: dict[str, GNetTask]) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The matrix (pooled) and per participant from the finished rows in the store and each ROI's own GNet8r."""
    from brainalign.vision.gnet import load_gnet
    from brainalign.vision.transfer import TransferDetails, assemble_matrix, validation_r

    details = TransferDetails()
    for roi, task in tasks.items():
        with np.load(store.directory(task) / "r.npz") as stored:
            for key in stored.files:
                target, name = key.split("/")
                details.r.setdefault((roi, target), {})[name] = stored[key]
        model = load_gnet(store.directory(gnet8r[roi]) / "gnet.safetensors", device=_device(plan)).model
        details.own_r[roi] = {p.name: validation_r(model, data.images, p)
                              for p in gnet_participants(data, roi, "validation")}
    matrix, details = assemble_matrix(details, list(tasks))
    return matrix, details.per_participant


# ------------------------------------------------------------------------------------------------- scores


def score_rows(model: str, plan: VisionPlan, recording: VisionRecording, predictions: np.ndarray,
               voxels: np.ndarray | None = None, seed: int = 0) -> pd.DataFrame:
    """Rows of the one score table for a model's validation predictions of one participant.

    ``voxels`` (bool mask over the recording's voxels) says which voxels the predictions' columns are. Each
    validation trial is a single trial, so the ceiling is NSD's for ``n = 1``.
    """
    _, validation = splits(recording)
    voxels = np.ones(len(recording.rois), bool) if voxels is None else voxels
    index = np.flatnonzero(voxels)
    r = voxel_correlation(recording.responses[np.ix_(validation, index)], predictions)
    ceiling = noise_ceiling(recording.ncsnr[index], 1)
    fraction = explained_fraction(r, recording.ncsnr[index], 1)
    measures = {"pearson_r": r, "noise_ceiling": ceiling, "explained_fraction": fraction}
    n = len(index)
    return pd.DataFrame({
        "dataset": plan.dataset, "model": model, "subject": str(recording.subject), "fold": 0, "heldout_run": -1,
        "seed": seed, "voxel": np.tile(index, len(measures)), "measure": np.repeat(list(measures), n),
        "value": np.concatenate(list(measures.values())), "layer": -1, "feature_space": "image",
        "roi": np.tile(recording.rois[index], len(measures))})


def roi_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Median validation r, median ceiling and median explained fraction per model, participant and ROI."""
    wide = scores.pivot_table(index=["model", "subject", "roi", "voxel"], columns="measure", values="value").reset_index()
    return (wide.groupby(["model", "subject", "roi"], sort=False)[["pearson_r", "noise_ceiling", "explained_fraction"]]
            .median().reset_index())
