"""Scoring predictions against held-out recordings and comparing models: the k vs k test, R² and
Pearson r, the long-format score table, voxel-wise and participant-level comparison statistics, and
which examples fine-tuning changed.

May import: the base modules, ``stimuli``, ``data.prepared`` and ``finetuning.checkpoints`` (the
score table reads exported predictions).
"""
