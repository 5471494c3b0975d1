"""Encoding models: word features of any language model at every layer placed at the recording's rows
(word → TR, FIR delays), voxelwise ridge with himalaya (leave-one-run-out, per-channel penalties), held-out
scores in the long score table, and the dataset's noise ceilings.

May import: the base modules, ``data``, ``features``, ``metrics`` and ``runs`` (its tasks live in the store).
"""
