"""The Natural Scenes Dataset (NSD) in its release layout: paths, lazy readers, validation and writers.

The layout under an NSD root (Allen et al. 2022; reference section 10), as the release names it::

    nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5          imgBrick (n_images, H, W, 3) uint8 (73,000 x 425 x 425 x 3)
    nsddata/experiments/nsd/nsd_expdesign.mat             masterordering, subjectim, sharedix, basiccnt
    nsddata_betas/ppdata/subjNN/func1pt8mm/betas_fithrf_GLMdenoise_RR/
        betas_sessionSS.hdf5 | betas_sessionSS.nii.gz     int16 = percent signal change x 300
        ncsnr.nii.gz                                      noise-ceiling SNR per voxel
    nsddata/ppdata/subjNN/func1pt8mm/roi/
        prf-visualrois.nii.gz                             1 V1v, 2 V1d, 3 V2v, 4 V2d, 5 V3v, 6 V3d, 7 hV4;
                                                          0 none; -1 outside the brain
        nsdgeneral.nii.gz                                 1 inside the general visual ROI, 0 not, -1 outside

**Conventions.** ``nsd_expdesign.mat`` is MATLAB's, 1-based: ``masterordering`` (1 x n_trials) gives, for each
trial of the experiment, the column of ``subjectim`` shown; ``subjectim`` (n_subjects x n_images_per_subject)
holds 1-based NSD ids (rows of ``imgBrick``); ``sharedix`` (1 x n_shared) the 1-based ids every participant saw.
:class:`ExpDesign` holds them 0-based. Trial ``t`` (0-based, counted over sessions) shows NSD id
``subjectim[subject - 1, masterordering[t] - 1] - 1`` and lies in session ``t // trials_per_session + 1``
(750 trials a session in the release). In the release the first 1,000 columns of every row of ``subjectim`` are
the shared images (St-Yves et al.'s code splits on it); nothing here relies on it.

**Betas.** A session's NIfTI holds ``(x, y, z, trials)``; its HDF5 twin's dataset ``betas`` holds the same array
transposed, ``(trials, z, y, x)``: HDF5 stores row-major what MATLAB wrote column-major. Checked against the
NSD authors' code: MATLAB reads the HDF5 file with ``h5read(file, '/betas', [x y z 1], ...)``, so MATLAB sees
``(x, y, z, trials)``, which h5py shows reversed; St-Yves et al.'s GNet loader reads it with h5py as
``values.reshape((n_trials, -1), order='F')[:, mask.flatten()]`` with ``mask`` an ``(x, y, z)`` volume, which
selects the right voxels only if the h5py array is ``(trials, z, y, x)``. The int16 values are percent signal
change x 300; :func:`load_recording` divides by 300 and then z-scores each voxel within each session (population
standard deviation; a voxel constant over a session gets 0).

**Reading lazily.** NSD is hundreds of GB, so only the asked trials and voxels are read: HDF5 through h5py's
selection (a sorted list of trials, the voxels' bounding box), NIfTI through nibabel's array proxy (contiguous
runs of trials, the bounding box), images only the ``imgBrick`` rows asked. Every reader checks the shapes, dtypes
and index ranges it depends on and fails with one :class:`~brainalign.errors.InputError` naming the file and the
field.

**Writers** (:func:`write_stimuli`, :func:`write_expdesign`, :func:`write_betas`, :func:`write_volume`) write the
same layout, atomically and with the same bytes for the same content (the MAT header's creation date and the
gzip time stamp are fixed), with the 1.8 mm affine :data:`AFFINE`.
"""

from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import h5py
import nibabel as nib
import numpy as np
import scipy.io

from brainalign.data.matfile import load_mat
from brainalign.errors import ConfigError, InputError
from brainalign.files import atomic_path

SPACE = "func1pt8mm"
BETAS_VERSION = "betas_fithrf_GLMdenoise_RR"
#: Betas are stored as percent signal change times this factor, in int16.
BETA_SCALE = 300.0
#: The release's trials per scan session.
TRIALS_PER_SESSION = 750
#: prf-visualrois labels of each visual ROI (ventral and dorsal parts together).
ROI_LABELS = {"V1": (1, 2), "V2": (3, 4), "V3": (5, 6), "hV4": (7,)}
LABEL_NAMES = {1: "V1v", 2: "V1d", 3: "V2v", 4: "V2d", 5: "V3v", 6: "V3d", 7: "hV4"}
VOXEL_MM = 1.8
#: The affine the writers give every volume: 1.8 mm isotropic voxels, origin at voxel (0, 0, 0).
AFFINE = np.diag([VOXEL_MM, VOXEL_MM, VOXEL_MM, 1.0])
FORMATS = {"hdf5": ".hdf5", "nifti": ".nii.gz"}
EXPDESIGN_VARIABLES = ("masterordering", "subjectim", "sharedix")
# Trials read from a session file at once: bounds memory to this many bounding boxes of the voxels.
_TRIAL_BLOCK = 128
# MATLAB v5 header text (116 bytes): scipy writes the creation time here, which would make the bytes differ.
_MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: brainalign".ljust(116, b" ")


@dataclass(frozen=True)
class NsdLayout:
    """The paths of the NSD release under ``root``, named as the release names them.

    Parameters
    ----------
    root : path
        The folder holding ``nsddata``, ``nsddata_betas`` and ``nsddata_stimuli``.
    """

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def stimuli(self) -> Path:
        """``nsd_stimuli.hdf5``, whose dataset ``imgBrick`` holds every image."""
        return self.root / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5"

    @property
    def expdesign(self) -> Path:
        """``nsd_expdesign.mat``."""
        return self.root / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat"

    def betas_dir(self, subject: int) -> Path:
        """The folder of participant ``subject``'s single-trial betas (and ``ncsnr.nii.gz``)."""
        return self.root / "nsddata_betas" / "ppdata" / f"subj{subject:02d}" / SPACE / BETAS_VERSION

    def betas(self, subject: int, session: int, fmt: str = "hdf5") -> Path:
        """Session ``session``'s betas of participant ``subject`` in ``fmt`` ("hdf5" or "nifti")."""
        return self.betas_dir(subject) / f"betas_session{session:02d}{_suffix(fmt)}"

    def ncsnr(self, subject: int) -> Path:
        """``ncsnr.nii.gz`` beside the betas."""
        return self.betas_dir(subject) / "ncsnr.nii.gz"

    def roi(self, subject: int, name: str = "prf-visualrois") -> Path:
        """An ROI volume (``prf-visualrois``, ``nsdgeneral``) of participant ``subject``."""
        return self.root / "nsddata" / "ppdata" / f"subj{subject:02d}" / SPACE / "roi" / f"{name}.nii.gz"

    def sessions(self, subject: int, fmt: str = "hdf5") -> list[int]:
        """The sessions whose betas file exists in ``fmt``, consecutive from 1 (the first gap ends the list)."""
        found = []
        while self.betas(subject, len(found) + 1, fmt).exists():
            found.append(len(found) + 1)
        return found


@dataclass(frozen=True)
class ExpDesign:
    """``nsd_expdesign.mat``, 0-based.

    Attributes
    ----------
    masterordering : ndarray of int64, shape (n_trials,)
        For each trial of the experiment, the column of ``subjectim`` (the participant's image) shown.
    subjectim : ndarray of int64, shape (n_subjects, n_images_per_subject)
        NSD ids (rows of ``imgBrick``) of each participant's images.
    sharedix : ndarray of int64, shape (n_shared,)
        NSD ids of the images every participant saw (the validation images).
    source : str
        The file read, for messages.
    """

    masterordering: np.ndarray
    subjectim: np.ndarray
    sharedix: np.ndarray
    source: str = "nsd_expdesign.mat"


@dataclass
class VisionRecording:
    """One participant's single-trial responses to images, from the NSD layout.

    Attributes
    ----------
    subject : int
        NSD participant number, 1-based.
    responses : ndarray of float32, shape (n_trials, n_voxels)
        Betas / 300 (percent signal change), z-scored within each session unless loaded with ``zscore=False``.
    images : ndarray of int64, shape (n_trials,)
        0-based NSD id (row of ``imgBrick``) of each trial's image.
    sessions : ndarray of int64, shape (n_trials,)
        1-based session of each trial.
    rois : ndarray of str, shape (n_voxels,)
        "V1", "V2", "V3" or "hV4" (prf-visualrois labels 1-2, 3-4, 5-6, 7).
    voxels : ndarray of int64, shape (n_voxels, 3)
        (x, y, z) indices of each voxel in the volume, in the volume's C order (x slowest).
    ncsnr : ndarray of float32, shape (n_voxels,)
        The release's noise-ceiling SNR of each voxel.
    shared : ndarray of bool, shape (n_trials,)
        Whether the trial's image is in ``sharedix`` (the validation images).
    """

    subject: int
    responses: np.ndarray
    images: np.ndarray
    sessions: np.ndarray
    rois: np.ndarray
    voxels: np.ndarray
    ncsnr: np.ndarray
    shared: np.ndarray


def _suffix(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown betas format {fmt!r}; expected one of {sorted(FORMATS)}")
    return FORMATS[fmt]


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(path, "file", "an existing file", "no such file")


# ----------------------------------------------------------------------------------------------- experiment design
def _index_vector(path: Path, name: str, value: object, row: bool) -> np.ndarray:
    """A MATLAB numeric matrix of whole numbers as int64; ``row``: a 1 x n row vector, flattened."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf" or array.ndim != 2 or array.size == 0:
        shape = "a 1 x n numeric row vector" if row else "a non-empty 2-D numeric matrix"
        raise InputError(path, name, shape, f"{array.dtype} array of shape {array.shape}")
    if row and array.shape[0] != 1:
        raise InputError(path, name, "a 1 x n numeric row vector", f"shape {array.shape}")
    if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
        raise InputError(path, name, "whole numbers (1-based indices)", "non-integer or non-finite values")
    array = array.astype(np.int64)
    return array.reshape(-1) if row else array


def read_expdesign(path: str | os.PathLike) -> ExpDesign:
    """Read ``nsd_expdesign.mat`` (MATLAB v5 or v7.3) into 0-based arrays.

    Raises
    ------
    InputError
        A variable is missing, is not a matrix of whole numbers of the release's shape, or an index is out of
        range (``masterordering`` outside 1..n_images_per_subject, an id in ``subjectim`` or ``sharedix``
        below 1).
    """
    path = Path(path)
    _require_file(path)
    content = load_mat(path)
    present = sorted(k for k in content if not k.startswith("__"))
    for name in EXPDESIGN_VARIABLES:
        if name not in content:
            raise InputError(path, name, f"a variable {name!r}", f"variables {present}")
    order = _index_vector(path, "masterordering", content["masterordering"], row=True)
    subjectim = _index_vector(path, "subjectim", content["subjectim"], row=False)
    shared = _index_vector(path, "sharedix", content["sharedix"], row=True)
    per_subject = subjectim.shape[1]
    bad = (order < 1) | (order > per_subject)
    if bad.any():
        raise InputError(path, "masterordering", f"indices within 1..{per_subject} (the columns of subjectim)",
                         f"{order[bad][0]} at trial {np.flatnonzero(bad)[0] + 1}")
    for name, ids in (("subjectim", subjectim), ("sharedix", shared)):
        if ids.min() < 1:
            raise InputError(path, name, "1-based NSD ids (>= 1)", f"minimum {ids.min()}")
    return ExpDesign(order - 1, subjectim - 1, shared - 1, str(path))


def trial_images(design: ExpDesign, subject: int, n_trials: int) -> np.ndarray:
    """The 0-based NSD id of each of the first ``n_trials`` trials of participant ``subject`` (1-based).

    ``subjectim[subject - 1, masterordering[t]]`` in :class:`ExpDesign`'s 0-based terms, that is the release's
    ``subjectim[subject-1, masterordering[t]-1] - 1``.
    """
    n_subjects = design.subjectim.shape[0]
    if not 1 <= subject <= n_subjects:
        raise InputError(design.source, "subjectim", f"a row for participant {subject}", f"{n_subjects} rows")
    if not 0 <= n_trials <= len(design.masterordering):
        raise InputError(design.source, "masterordering", f"at least {n_trials} trials",
                         f"{len(design.masterordering)}")
    return design.subjectim[subject - 1, design.masterordering[:n_trials]]


# ------------------------------------------------------------------------------------------------------- images
def _image_brick(handle: h5py.File, path: Path) -> h5py.Dataset:
    if "imgBrick" not in handle or not isinstance(handle["imgBrick"], h5py.Dataset):
        raise InputError(path, "imgBrick", "a dataset 'imgBrick'", f"entries {sorted(handle)}")
    brick = handle["imgBrick"]
    if brick.ndim != 4 or brick.shape[-1] != 3 or brick.dtype != np.uint8:
        raise InputError(path, "imgBrick", "uint8 images of shape (n_images, height, width, 3)",
                         f"{brick.dtype} of shape {brick.shape}")
    return brick


def image_count(layout: NsdLayout) -> int:
    """The number of images in ``imgBrick`` (the NSD ids are 0..count-1), read without reading any image."""
    _require_file(layout.stimuli)
    with h5py.File(layout.stimuli, "r") as handle:
        return int(_image_brick(handle, layout.stimuli).shape[0])


def read_images(layout: NsdLayout, ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """The images of 0-based NSD ``ids`` (repeats allowed, any order), reading only those rows of ``imgBrick``.

    Returns
    -------
    ndarray of uint8, shape (len(ids), height, width, 3)
    """
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    _require_file(layout.stimuli)
    with h5py.File(layout.stimuli, "r") as handle:
        brick = _image_brick(handle, layout.stimuli)
        n = brick.shape[0]
        bad = (ids < 0) | (ids >= n)
        if bad.any():
            raise InputError(layout.stimuli, "imgBrick", f"a row for every id asked (0..{n - 1})",
                             f"id {ids[bad][0]}")
        unique, inverse = np.unique(ids, return_inverse=True)
        rows = np.empty((len(unique),) + brick.shape[1:], dtype=np.uint8)
        for start in range(0, len(unique), _TRIAL_BLOCK):
            chunk = unique[start:start + _TRIAL_BLOCK]
            rows[start:start + len(chunk)] = brick[chunk.tolist()]
    return rows[inverse]


# ------------------------------------------------------------------------------------------------------ volumes
def read_volume(path: str | os.PathLike, field: str, labels: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A 3-D NIfTI volume and its affine; ``labels``: whole-number values, returned as int64.

    ``field`` names the volume in messages (``prf-visualrois``, ``ncsnr``, ...).
    """
    path = Path(path)
    _require_file(path)
    try:
        image = nib.load(path)
        data = np.asarray(image.dataobj)
    except Exception as exc:  # nibabel raises several types for damaged or foreign files
        raise InputError(path, field, "a readable NIfTI volume", f"{type(exc).__name__}: {exc}") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(path, field, "a 3-D volume (x, y, z)", f"shape {data.shape}")
    if labels:
        if not np.all(np.isfinite(data)) or not np.all(data == np.round(data)):
            raise InputError(path, field, "whole-number labels", "non-integer values")
        data = data.astype(np.int64)
    return data, np.asarray(image.affine, dtype=np.float64)


def _check_grid(path: Path, grid: tuple[int, ...], expected: tuple[int, ...] | None, what: str) -> None:
    if expected is not None and tuple(grid) != tuple(expected):
        raise InputError(path, what, f"a voxel grid (x, y, z) of {tuple(expected)} (the ROI volume's)",
                         f"{tuple(grid)}")


def _check_affine(path: Path, affine: np.ndarray, expected: np.ndarray | None, field: str) -> None:
    if expected is not None and not np.allclose(affine, expected, atol=1e-3):
        raise InputError(path, field, "the ROI volume's affine", f"{np.round(affine, 3).tolist()}")


# -------------------------------------------------------------------------------------------------------- betas
def _runs(sorted_trials: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """Split sorted unique trials into contiguous runs: (start, stop, positions in the input)."""
    breaks = np.flatnonzero(np.diff(sorted_trials) != 1) + 1
    out = []
    for positions in np.split(np.arange(len(sorted_trials)), breaks):
        if len(positions):
            out.append((int(sorted_trials[positions[0]]), int(sorted_trials[positions[-1]]) + 1, positions))
    return out


def betas_trial_count(path: str | os.PathLike) -> int:
    """The number of trials in a session's betas file (HDF5 or NIfTI), read from its header."""
    path = Path(path)
    _require_file(path)
    if path.name.endswith(FORMATS["hdf5"]):
        with h5py.File(path, "r") as handle:
            return int(_betas_dataset(handle, path).shape[0])
    return int(_betas_image(path).shape[3])


def _betas_dataset(handle: h5py.File, path: Path) -> h5py.Dataset:
    if "betas" not in handle or not isinstance(handle["betas"], h5py.Dataset):
        raise InputError(path, "betas", "a dataset 'betas'", f"entries {sorted(handle)}")
    data = handle["betas"]
    if data.ndim != 4 or data.dtype != np.int16:
        raise InputError(path, "betas", "int16 of shape (trials, z, y, x) (percent signal change x 300)",
                         f"{data.dtype} of shape {data.shape}")
    return data


def _betas_image(path: Path) -> nib.Nifti1Image:
    try:
        image = nib.load(path)
    except Exception as exc:  # nibabel raises several types for damaged or foreign files
        raise InputError(path, "betas", "a readable NIfTI image", f"{type(exc).__name__}: {exc}") from exc
    if len(image.shape) != 4 or image.get_data_dtype() != np.int16:
        raise InputError(path, "betas", "int16 of shape (x, y, z, trials) (percent signal change x 300)",
                         f"{image.get_data_dtype()} of shape {image.shape}")
    return image


def read_betas(path: str | os.PathLike, voxels: np.ndarray, trials: Iterable[int] | None = None,
               grid: tuple[int, int, int] | None = None, affine: np.ndarray | None = None) -> np.ndarray:
    """The stored values (percent signal change x 300) of ``voxels`` at ``trials`` of one session's betas file.

    Reads only those trials and the voxels' bounding box: from HDF5 ``_TRIAL_BLOCK`` trials at a time, from
    NIfTI one contiguous run of trials at a time.

    Parameters
    ----------
    path : path
        ``betas_sessionSS.hdf5`` (dataset ``betas``, (trials, z, y, x)) or ``betas_sessionSS.nii.gz``
        ((x, y, z, trials)).
    voxels : ndarray of int, shape (n_voxels, 3)
        (x, y, z) indices.
    trials : iterable of int, optional
        0-based trials within the session, returned in the order given (repeats allowed); all by default.
    grid : tuple of int, optional
        The (x, y, z) shape the file's volume must have (the ROI volume's).
    affine : ndarray, optional
        The affine a NIfTI file must have (the ROI volume's); HDF5 files carry none.

    Returns
    -------
    ndarray of float32, shape (n_trials, n_voxels)
    """
    path = Path(path)
    _require_file(path)
    voxels = np.asarray(voxels, dtype=np.int64).reshape(-1, 3)
    hdf5 = path.name.endswith(FORMATS["hdf5"])
    handle = h5py.File(path, "r") if hdf5 else None
    try:
        if hdf5:
            data = _betas_dataset(handle, path)
            n_trials, file_grid = data.shape[0], tuple(data.shape[1:][::-1])
        else:
            image = _betas_image(path)
            n_trials, file_grid = image.shape[3], tuple(image.shape[:3])
        _check_grid(path, file_grid, grid, "betas")
        if not hdf5:
            _check_affine(path, image.affine, affine, "betas")
        if len(voxels) and (voxels.min() < 0 or np.any(voxels >= np.asarray(file_grid))):
            raise InputError(path, "betas", "a voxel grid (x, y, z) holding the voxels asked", f"{file_grid}")
        wanted = np.arange(n_trials) if trials is None else np.asarray(list(trials), dtype=np.int64)
        if len(wanted) and (wanted.min() < 0 or wanted.max() >= n_trials):
            raise InputError(path, "betas", f"trials 0..{n_trials - 1} covering the trials asked",
                             f"trial {wanted[(wanted < 0) | (wanted >= n_trials)][0]}")
        unique, inverse = np.unique(wanted, return_inverse=True)
        out = np.empty((len(unique), len(voxels)), dtype=np.float32)
        if len(voxels) == 0 or len(unique) == 0:
            return out[inverse]
        lo, hi = voxels.min(axis=0), voxels.max(axis=0) + 1
        local = voxels - lo
        if hdf5:
            for start in range(0, len(unique), _TRIAL_BLOCK):
                block = unique[start:start + _TRIAL_BLOCK]
                # (trials, z, y, x): a sorted list of trials and the box, as h5py selects.
                box = data[block.tolist(), lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
                out[start:start + len(block)] = box[:, local[:, 2], local[:, 1], local[:, 0]]
        else:
            # A gzip stream cannot seek back, so every proxy read decompresses from the file's start: one read
            # per contiguous run of trials.
            for first, stop, positions in _runs(unique):
                box = np.asarray(image.dataobj[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2], first:stop])
                out[positions] = box[local[:, 0], local[:, 1], local[:, 2], :].T
        return out[inverse]
    finally:
        if handle is not None:
            handle.close()


def zscore_sessions(values: np.ndarray, sessions: np.ndarray) -> np.ndarray:
    """Z-score each column within each session (population sd); a column constant over a session gets 0."""
    out = np.empty(values.shape, dtype=np.float32)
    for session in np.unique(sessions):
        rows = sessions == session
        block = values[rows].astype(np.float64)
        mean = block.mean(axis=0)
        sd = block.std(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[rows] = np.where(sd > 0, (block - mean) / sd, 0.0)
    return out


# ------------------------------------------------------------------------------------------------ the main entry
def load_recording(root: str | os.PathLike, subject: int, sessions: list[int] | None = None,
                   rois: Sequence[str] = ("V1", "V2", "V3", "hV4"), fmt: str = "hdf5",
                   zscore: bool = True) -> VisionRecording:
    """Participant ``subject``'s single-trial responses in visual ROIs, from an NSD root.

    Parameters
    ----------
    root : path
        The NSD root (see :class:`NsdLayout`).
    subject : int
        NSD participant, 1-based.
    sessions : list of int, optional
        1-based sessions to read; by default every session whose file exists, consecutive from 1.
    rois : sequence of str
        Among "V1", "V2", "V3", "hV4": the voxels whose prf-visualrois label belongs to one of them.
    fmt : {"hdf5", "nifti"}
        Which copy of the betas to read; both give the same numbers.
    zscore : bool
        Z-score each voxel within each session (after dividing by 300); False keeps percent signal change.

    Raises
    ------
    InputError
        A file is missing or malformed (named with its field), the sessions' voxel grids differ from the ROI
        volume's, the sessions' trial counts differ, ``masterordering`` is shorter than the sessions' trials,
        or ``subjectim`` names an image that ``imgBrick`` lacks.
    ConfigError
        An unknown ROI or format, or invalid session numbers.
    """
    layout = NsdLayout(root)
    _suffix(fmt)
    unknown = [name for name in rois if name not in ROI_LABELS]
    if unknown or not rois:
        raise ConfigError(f"unknown ROIs {unknown or list(rois)}; expected some of {list(ROI_LABELS)}")
    design = read_expdesign(layout.expdesign)
    n_images = image_count(layout)
    if design.subjectim.max() >= n_images:
        raise InputError(layout.expdesign, "subjectim", f"NSD ids within 1..{n_images} (the rows of imgBrick)",
                         f"{design.subjectim.max() + 1}")
    trial_images(design, subject, 0)  # checks that subjectim has the participant's row

    labels, affine = read_volume(layout.roi(subject), "prf-visualrois", labels=True)
    if labels.min() < -1 or labels.max() > max(LABEL_NAMES):
        raise InputError(layout.roi(subject), "prf-visualrois", f"labels within -1..{max(LABEL_NAMES)}",
                         f"{labels.min()}..{labels.max()}")
    wanted = [label for name in rois for label in ROI_LABELS[name]]
    voxels = np.argwhere(np.isin(labels, wanted))
    if not len(voxels):
        raise InputError(layout.roi(subject), "prf-visualrois", f"voxels labelled {sorted(wanted)} ({list(rois)})",
                         "none")
    name_of = {label: name for name, group in ROI_LABELS.items() for label in group}
    voxel_labels = labels[voxels[:, 0], voxels[:, 1], voxels[:, 2]]
    roi_names = np.array([name_of[int(label)] for label in voxel_labels])
    ncsnr_volume, ncsnr_affine = read_volume(layout.ncsnr(subject), "ncsnr")
    _check_grid(layout.ncsnr(subject), ncsnr_volume.shape, labels.shape, "ncsnr")
    _check_affine(layout.ncsnr(subject), ncsnr_affine, affine, "ncsnr")
    ncsnr = ncsnr_volume[voxels[:, 0], voxels[:, 1], voxels[:, 2]].astype(np.float32)

    if sessions is None:
        sessions = layout.sessions(subject, fmt)
        if not sessions:
            raise InputError(layout.betas(subject, 1, fmt), "file", "an existing file (session 1's betas)",
                             "no such file")
    sessions = [int(s) for s in sessions]
    if not sessions or min(sessions) < 1 or len(set(sessions)) != len(sessions):
        raise ConfigError(f"sessions must be distinct numbers >= 1; got {sessions}")

    per_session = None
    blocks, trials, session_of = [], [], []
    for session in sessions:
        path = layout.betas(subject, session, fmt)
        count = betas_trial_count(path)
        if per_session is None:
            per_session = count
        elif count != per_session:
            raise InputError(path, "betas", f"{per_session} trials (as session {sessions[0]})", f"{count}")
        first = (session - 1) * per_session
        if first + per_session > len(design.masterordering):
            raise InputError(layout.expdesign, "masterordering",
                             f"at least {first + per_session} trials (session {session} of {per_session})",
                             f"{len(design.masterordering)}")
        blocks.append(read_betas(path, voxels, grid=labels.shape, affine=affine))
        trials.append(np.arange(first, first + per_session))
        session_of.append(np.full(per_session, session, dtype=np.int64))
    values = np.concatenate(blocks) / BETA_SCALE
    trials = np.concatenate(trials)
    session_of = np.concatenate(session_of)
    responses = zscore_sessions(values, session_of) if zscore else values.astype(np.float32)
    images = trial_images(design, subject, int(trials.max()) + 1)[trials]
    return VisionRecording(subject=subject, responses=responses, images=images.astype(np.int64),
                           sessions=session_of, rois=roi_names, voxels=voxels.astype(np.int64), ncsnr=ncsnr,
                           shared=np.isin(images, design.sharedix))


# ------------------------------------------------------------------------------------------------------ writers
def write_stimuli(path: str | os.PathLike, images: np.ndarray) -> None:
    """Write ``nsd_stimuli.hdf5``: dataset ``imgBrick``, uint8 (n_images, H, W, 3), one chunk per image."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise InputError("images", "imgBrick", "uint8 of shape (n_images, height, width, 3)",
                         f"{images.dtype} of shape {images.shape}")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        handle.create_dataset("imgBrick", data=images, chunks=(1,) + images.shape[1:])


def session_counts(design: ExpDesign, trials_per_session: int) -> np.ndarray:
    """``basiccnt`` (3 x n_sessions): per session, how many distinct images it shows once, twice, three times.

    This is our reading of the release's ``basiccnt``; no reader here uses it.
    """
    n_sessions = -(-len(design.masterordering) // trials_per_session)
    counts = np.zeros((3, n_sessions))
    for session in range(n_sessions):
        shown = design.masterordering[session * trials_per_session:(session + 1) * trials_per_session]
        times = np.unique(shown, return_counts=True)[1]
        for k in range(3):
            counts[k, session] = np.sum(times == k + 1)
    return counts


def write_expdesign(path: str | os.PathLike, design: ExpDesign, trials_per_session: int) -> None:
    """Write ``nsd_expdesign.mat`` (MATLAB v5) from 0-based ``design``: 1-based doubles, the release's shapes.

    ``masterordering`` and ``sharedix`` as 1 x n rows, ``subjectim`` n_subjects x n_images_per_subject,
    ``basiccnt`` 3 x n_sessions (:func:`session_counts`).
    """
    if trials_per_session < 1:
        raise ConfigError(f"trials_per_session must be >= 1; got {trials_per_session}")
    content = {
        "masterordering": (np.asarray(design.masterordering, dtype=np.float64) + 1).reshape(1, -1),
        "subjectim": np.asarray(design.subjectim, dtype=np.float64) + 1,
        "sharedix": (np.asarray(design.sharedix, dtype=np.float64) + 1).reshape(1, -1),
        "basiccnt": session_counts(design, trials_per_session),
    }
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, content, do_compression=False)
    data = bytearray(buffer.getvalue())
    data[:116] = _MAT_HEADER
    with atomic_path(path) as tmp:
        tmp.write_bytes(bytes(data))


def _nifti_bytes(volume: np.ndarray, affine: np.ndarray) -> bytes:
    image = nib.Nifti1Image(volume, affine)
    image.header.set_data_dtype(volume.dtype)
    image.header.set_xyzt_units("mm", "sec")
    # Fixed gzip time stamp and no file name: the same volume gives the same bytes.
    return gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)


def write_volume(path: str | os.PathLike, volume: np.ndarray, affine: np.ndarray = AFFINE) -> None:
    """Write a 3-D volume (an ROI's labels, ``ncsnr``) as ``.nii.gz`` in its own dtype."""
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise InputError("volume", "shape", "(x, y, z)", str(volume.shape))
    payload = _nifti_bytes(volume, affine)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)


def write_betas(layout: NsdLayout, subject: int, session: int, betas: np.ndarray,
                affine: np.ndarray = AFFINE) -> None:
    """Write one session's betas, int16 (x, y, z, trials), as both ``.nii.gz`` and ``.hdf5`` (transposed)."""
    betas = np.asarray(betas)
    if betas.ndim != 4 or betas.dtype != np.int16:
        raise InputError("betas", "betas", "int16 of shape (x, y, z, trials)", f"{betas.dtype} of shape {betas.shape}")
    payload = _nifti_bytes(betas, affine)
    with atomic_path(layout.betas(subject, session, "nifti")) as tmp:
        tmp.write_bytes(payload)
    with atomic_path(layout.betas(subject, session, "hdf5")) as tmp, h5py.File(tmp, "w") as handle:
        handle.create_dataset("betas", data=np.ascontiguousarray(betas.transpose(3, 2, 1, 0)))
