"""Fine-tuning language models to predict brain recordings (Schwartz, Toneva & Wehbe 2019).

Linear heads, the optimiser and schedule, the encoder-with-heads model trained in phases, the task
that trains one model for one held-out run and seed, the seed paper's five models as grids of tasks,
and the exported checkpoints and predictions ``score`` reads.

May import: the base modules, ``config``, ``stimuli``, ``data``, ``features``, ``metrics``, ``runs``.
"""
