"""The language network as the simulation plants it and the report outlines it: spheres around MNI centres."""

from __future__ import annotations

import numpy as np

# Approximate MNI centres (mm) of left-hemisphere language regions (after Fedorenko et al. 2010's parcels).
LANGUAGE_REGIONS = {
    "L_IFGorb": (-47.0, 27.0, -4.0),
    "L_IFG": (-51.0, 15.0, 18.0),
    "L_MFG": (-41.0, 2.0, 47.0),
    "L_AntTemp": (-56.0, -5.0, -13.0),
    "L_PostTemp": (-57.0, -42.0, 6.0),
    "L_AngG": (-45.0, -64.0, 26.0),
}


def language_region_labels(coords: np.ndarray, affine: np.ndarray, radius_mm: float = 12.0) -> np.ndarray:
    """Per voxel, the number (1-based, in :data:`LANGUAGE_REGIONS` order) of the language region whose
    sphere of ``radius_mm`` holds it, 0 outside all; the first region wins where spheres overlap.

    ``coords`` are voxel indices into a volume whose ``affine`` maps them to MNI millimetres.
    """
    coords = np.asarray(coords)
    mni = coords @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]
    region = np.zeros(len(coords), dtype=np.int64)
    for number, centre in enumerate(LANGUAGE_REGIONS.values(), start=1):
        near = np.linalg.norm(mni - np.asarray(centre), axis=1) <= radius_mm
        region[near & (region == 0)] = number
    return region
