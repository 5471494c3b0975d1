"""Language-understanding checks of an encoder: today the GLUE benchmark (the seed paper's Table 1).

Task definitions and readers for the release layout and hub caches, the embedded GLUE-format sample,
BERT's fine-tuning recipe, scikit-learn/scipy metrics, runs keyed by everything that determines them,
and Table 1.

May import: the base modules, ``features``, ``finetuning`` (the optimiser and schedule, encoders a
brain model trained), ``runs``.
"""
