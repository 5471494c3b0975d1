"""Scoring predictions against held-out recordings and comparing models: the k vs k test, R² and
Pearson r, the measures params.yaml names (a registry), the long-format score table, voxel-wise and
participant-level comparison statistics, noise ceilings, and which examples fine-tuning changed.

May import: the base modules (``ridge`` among them: the ceilings' predictions), ``config`` (the score
section's checks), ``stimuli``, ``data.prepared`` and ``finetuning.checkpoints`` (the score table reads
exported predictions).
"""
